/**
 * `GkeGpuCluster`: a regional GKE cluster for gpufleet: the default node pool removed, a small CPU
 * pool for the operator and system pods, and one node pool per GPU pool with `guestAccelerators`
 * and GKE-managed driver installation (`gpuDriverInstallationConfig.gpuDriverVersion: LATEST`,
 * cloud.google.com/kubernetes-engine/docs/how-to/gpus "Manually install / automatic driver
 * installation"), so no driver DaemonSet is needed.
 */
import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";
import { gpuProductMachines } from "./gpu-machines.js";
import { cloudTaintEffect, type GpuNodePoolSpec } from "./node-pools.js";

export interface GkeGpuClusterArgs {
  project: string;
  /** GCP region, e.g. europe-north1. */
  region: string;
  /** Zones of the region that have the GPUs (GPU availability differs per zone); default: GKE's choice. */
  nodeLocations?: string[];
  releaseChannel?: "RAPID" | "REGULAR" | "STABLE";
  gpuPools: GpuNodePoolSpec[];
  systemPool?: { machineType?: string; nodesPerZone?: number };
  /** "LATEST" or "DEFAULT" (GKE's default driver for the version). */
  gpuDriverVersion?: "LATEST" | "DEFAULT";
  labels?: Record<string, string>;
}

const OAUTH_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"];

/** A kubeconfig that authenticates with gke-gcloud-auth-plugin (pure). */
export function gkeKubeconfig(clusterName: string, endpoint: string, caCertificate: string): string {
  const context = `gke_${clusterName}`;
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: context,
        cluster: { server: `https://${endpoint}`, "certificate-authority-data": caCertificate },
      },
    ],
    contexts: [{ name: context, context: { cluster: context, user: context } }],
    "current-context": context,
    users: [
      {
        name: context,
        user: {
          exec: {
            apiVersion: "client.authentication.k8s.io/v1beta1",
            command: "gke-gcloud-auth-plugin",
            installHint:
              "Install gke-gcloud-auth-plugin: https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl",
            provideClusterInfo: true,
          },
        },
      },
    ],
  });
}

export class GkeGpuCluster extends pulumi.ComponentResource {
  readonly cluster: gcp.container.Cluster;
  readonly gpuNodePools: gcp.container.NodePool[];
  readonly kubeconfig: pulumi.Output<string>;

  constructor(name: string, args: GkeGpuClusterArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("gpufleet:clusters:GkeGpuCluster", name, {}, opts);
    const provider = new gcp.Provider(
      `${name}-gcp`,
      { project: args.project, region: args.region },
      { parent: this },
    );
    const child = { parent: this, provider };
    const labels = { "gpufleet-cluster": name, ...args.labels };

    this.cluster = new gcp.container.Cluster(
      `${name}-gke`,
      {
        location: args.region,
        ...(args.nodeLocations ? { nodeLocations: args.nodeLocations } : {}),
        // A cluster needs a node pool at creation; the pools below replace it.
        removeDefaultNodePool: true,
        initialNodeCount: 1,
        releaseChannel: { channel: args.releaseChannel ?? "REGULAR" },
        workloadIdentityConfig: { workloadPool: `${args.project}.svc.id.goog` },
        resourceLabels: labels,
        deletionProtection: false,
      },
      child,
    );

    const systemPool = args.systemPool ?? {};
    new gcp.container.NodePool(
      `${name}-system`,
      {
        cluster: this.cluster.name,
        location: args.region,
        nodeCount: systemPool.nodesPerZone ?? 1,
        nodeConfig: {
          machineType: systemPool.machineType ?? "e2-standard-4",
          oauthScopes: OAUTH_SCOPES,
          labels: { "gpufleet.io/pool": "system" },
          resourceLabels: labels,
        },
      },
      child,
    );

    this.gpuNodePools = args.gpuPools.map((pool) => {
      const acceleratorType = gpuProductMachines(pool.gpuProduct).gcp?.acceleratorType;
      if (!acceleratorType) throw new Error(`GCP offers no ${pool.gpuProduct}`);
      return new gcp.container.NodePool(
        `${name}-${pool.name}`,
        {
          cluster: this.cluster.name,
          location: args.region,
          ...(args.nodeLocations ? { nodeLocations: args.nodeLocations } : {}),
          // Per-zone counts: the pool spans the cluster's zones, the autoscaler adds nodes where GPUs are.
          initialNodeCount: pool.desiredNodes,
          autoscaling: {
            totalMinNodeCount: pool.minNodes,
            totalMaxNodeCount: pool.maxNodes,
            locationPolicy: "ANY",
          },
          management: { autoRepair: true, autoUpgrade: true },
          nodeConfig: {
            machineType: pool.machine.machineType,
            oauthScopes: OAUTH_SCOPES,
            guestAccelerators: [
              {
                type: acceleratorType,
                count: pool.machine.gpusPerMachine,
                gpuDriverInstallationConfig: { gpuDriverVersion: args.gpuDriverVersion ?? "LATEST" },
              },
            ],
            labels: pool.labels,
            taints: pool.taints.map((taint) => ({
              key: taint.key,
              value: taint.value,
              effect: cloudTaintEffect(taint.effect),
            })),
            diskSizeGb: 500,
            diskType: "pd-ssd",
            resourceLabels: { ...labels, "gpufleet-pool": pool.name },
          },
        },
        { ...child, ignoreChanges: ["initialNodeCount"] },
      );
    });

    this.kubeconfig = pulumi
      .all([this.cluster.name, this.cluster.endpoint, this.cluster.masterAuth])
      .apply(([clusterName, endpoint, masterAuth]) =>
        gkeKubeconfig(clusterName, endpoint, masterAuth.clusterCaCertificate ?? ""),
      );
    this.registerOutputs({ kubeconfig: pulumi.secret(this.kubeconfig) });
  }
}
