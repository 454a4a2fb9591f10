/**
 * `GpuFleet`: the in-cluster layer of a gpufleet installation, as one Pulumi component.
 *
 *   namespace ─┬─ ModelDeployment CRD (from crds/, kept on destroy by default)
 *              ├─ gpufleet Helm release (charts/gpufleet, local path: no chart download)
 *              ├─ optional NVIDIA GPU operator release (values computed here)
 *              └─ the ModelDeployments placed on this cluster (CustomResources)
 *
 * Works on any cluster the Kubernetes provider in `opts.provider(s)` points at: EKS, GKE, or the local
 * KWOK GPU cluster of the tests.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { parseAllDocuments } from "yaml";
import { REPO_ROOT } from "../../tools/binaries.js";
import {
  API_GROUP,
  API_VERSION,
  KIND,
  type ModelDeploymentSpec,
} from "../../operator/api/modeldeployment.js";

export const DEFAULT_CHART_PATH = join(REPO_ROOT, "charts", "gpufleet");
export const DEFAULT_CRDS_DIR = join(REPO_ROOT, "crds");

type DeepPartial<T> = T extends readonly unknown[]
  ? T
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> }
    : T;

/**
 * A ModelDeployment spec as written by users: every field the CRD defaults may be left out (the API
 * server fills the defaults and checks the schema and CEL rules).
 */
export type ModelDeploymentSpecInput = DeepPartial<ModelDeploymentSpec> & {
  model: DeepPartial<ModelDeploymentSpec["model"]>;
};

/** One ModelDeployment to create. */
export interface FleetModelDeployment {
  name: string;
  spec: ModelDeploymentSpecInput;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** Operator settings that map onto chart values (anything else goes in `chart.values`). */
export interface OperatorSettings {
  /** Operator pods; more than one requires leader election (the chart's schema enforces it). Default: the chart's (2). */
  replicas?: number;
  image?: { repository?: string; tag?: string; digest?: string };
  /** pino log level of the operator. */
  logLevel?: "fatal" | "error" | "warn" | "info" | "debug" | "trace";
  /** Autoscaler scrape interval, seconds. */
  scrapeIntervalSeconds?: number;
}

export interface GpuOperatorSettings {
  enabled: boolean;
  /**
   * Where the driver comes from. `preinstalled`: the node image ships it (EKS AL2023 NVIDIA AMIs,
   * GKE with gpuDriverInstallationConfig), so the GPU operator must not install one; `operator`:
   * the GPU operator installs it (plain images).
   */
  driver: "preinstalled" | "operator";
  /** Helm repository of NVIDIA's chart; default https://helm.ngc.nvidia.com/nvidia. */
  repository?: string;
  /** Chart version, e.g. v25.3.0. Pin it: an unpinned version changes what `up` installs. */
  version: string;
  /** Extra values merged over the computed ones. */
  values?: Record<string, unknown>;
}

export interface GpuFleetArgs {
  /** Namespace of the operator (created by the component). */
  namespace: string;
  /**
   * Namespace of the ModelDeployments; created unless it equals `namespace`. The operator watches
   * exactly this one (chart `watchNamespaces`), so its RBAC stays namespaced. Default: `namespace`.
   */
  modelNamespace?: string;
  crds?: {
    /** Default true. Set false when the CRD is managed elsewhere (another stack, `kubectl apply`). */
    install?: boolean;
    /**
     * Keep the CRD when the stack is destroyed. Default true: deleting a CRD deletes every
     * ModelDeployment of the cluster, including ones other stacks or users created.
     */
    retainOnDelete?: boolean;
    /** Folder of CRD YAML files; default the repository's crds/. */
    dir?: string;
  };
  chart?: {
    /** Local chart folder; default charts/gpufleet of this repository. */
    path?: string;
    /** Helm release name; default "gpufleet". */
    releaseName?: string;
    /** Raw values merged over those derived from `operator` (these win). */
    values?: Record<string, unknown>;
    /** Seconds Helm waits for the release's resources to be ready; default 300. */
    timeoutSeconds?: number;
  };
  operator?: OperatorSettings;
  gpuOperator?: GpuOperatorSettings;
  modelDeployments?: FleetModelDeployment[];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Deep merge of plain objects; `override` wins, arrays are replaced (as Helm merges values). */
export function mergeValues(
  base: Record<string, unknown>,
  override: Record<string, unknown>,
): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const existing = merged[key];
    merged[key] = isPlainObject(existing) && isPlainObject(value) ? mergeValues(existing, value) : value;
  }
  return merged;
}

/** The gpufleet chart values for these args (pure: unit-tested). */
export function gpufleetChartValues(args: GpuFleetArgs): Record<string, unknown> {
  const modelNamespace = args.modelNamespace ?? args.namespace;
  const operator = args.operator ?? {};
  const values: Record<string, unknown> = { watchNamespaces: [modelNamespace] };
  if (operator.replicas !== undefined) {
    values.replicaCount = operator.replicas;
    // One pod needs no Lease; the chart refuses leader election off with more than one.
    values.leaderElection = { enabled: operator.replicas > 1 };
  }
  if (operator.image) {
    values.image = Object.fromEntries(
      Object.entries(operator.image).filter(([, value]) => value !== undefined),
    );
  }
  const operatorValues: Record<string, unknown> = {};
  if (operator.logLevel) operatorValues.logLevel = operator.logLevel;
  if (operator.scrapeIntervalSeconds !== undefined)
    operatorValues.scrapeIntervalSeconds = operator.scrapeIntervalSeconds;
  if (Object.keys(operatorValues).length > 0) values.operator = operatorValues;
  return mergeValues(values, args.chart?.values ?? {});
}

/**
 * Values of NVIDIA's gpu-operator chart (pure). The device plugin and GPU Feature Discovery are what
 * the operator relies on: GFD labels `nvidia.com/gpu.product`, the device plugin advertises
 * `nvidia.com/gpu`. The operator's own pods must tolerate the GPU taint to reach GPU nodes.
 */
export function gpuOperatorValues(settings: GpuOperatorSettings): Record<string, unknown> {
  const preinstalled = settings.driver === "preinstalled";
  const gpuToleration = { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" };
  const values: Record<string, unknown> = {
    driver: { enabled: !preinstalled },
    // NVIDIA AMIs and GKE's managed driver also ship the container toolkit.
    toolkit: { enabled: !preinstalled },
    devicePlugin: { enabled: true },
    gfd: { enabled: true },
    nfd: { enabled: true },
    dcgmExporter: { enabled: true },
    daemonsets: { tolerations: [gpuToleration] },
    operator: { defaultRuntime: "containerd" },
  };
  return mergeValues(values, settings.values ?? {});
}

/** CRD objects of every *.yaml in `dir` (sorted by file name). */
export function readCrds(dir: string = DEFAULT_CRDS_DIR): Array<Record<string, unknown>> {
  const files = readdirSync(dir)
    .filter((file) => file.endsWith(".yaml") || file.endsWith(".yml"))
    .sort();
  const crds: Array<Record<string, unknown>> = [];
  for (const file of files) {
    for (const document of parseAllDocuments(readFileSync(join(dir, file), "utf8"))) {
      const object = document.toJSON() as unknown;
      if (isPlainObject(object) && object.kind === "CustomResourceDefinition") crds.push(object);
    }
  }
  if (crds.length === 0) throw new Error(`no CustomResourceDefinition in ${dir}`);
  return crds;
}

export class GpuFleet extends pulumi.ComponentResource {
  /** Namespace of the operator. */
  readonly namespace: pulumi.Output<string>;
  /** Namespace of the ModelDeployments. */
  readonly modelNamespace: pulumi.Output<string>;
  readonly crds: k8s.apiextensions.v1.CustomResourceDefinition[];
  readonly release: k8s.helm.v3.Release;
  readonly gpuOperatorRelease?: k8s.helm.v3.Release;
  readonly modelDeployments: k8s.apiextensions.CustomResource[];
  /** Helm release status (`deployed` after a successful install). */
  readonly releaseStatus: pulumi.Output<string>;
  /** `<namespace>/<name>` of each ModelDeployment created. */
  readonly modelDeploymentNames: pulumi.Output<string[]>;

  constructor(name: string, args: GpuFleetArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("gpufleet:index:GpuFleet", name, {}, opts);
    const child = { parent: this };
    const modelNamespaceName = args.modelNamespace ?? args.namespace;

    const namespace = new k8s.core.v1.Namespace(`${name}-ns`, { metadata: { name: args.namespace } }, child);
    const modelNamespace =
      modelNamespaceName === args.namespace
        ? namespace
        : new k8s.core.v1.Namespace(`${name}-models-ns`, { metadata: { name: modelNamespaceName } }, child);

    const crdSettings = args.crds ?? {};
    this.crds =
      crdSettings.install === false
        ? []
        : readCrds(crdSettings.dir).map((crd) => {
            const metadata = crd.metadata as { name: string };
            return new k8s.apiextensions.v1.CustomResourceDefinition(
              `${name}-crd-${metadata.name}`,
              {
                // Only the name: other metadata (labels from the generator) would be fine, but keeping
                // it minimal avoids fighting `kubectl apply`-managed fields on shared clusters.
                metadata: {
                  name: metadata.name,
                  // Take ownership if the CRD already exists (server-side apply with force).
                  annotations: { "pulumi.com/patchForce": "true" },
                },
                spec: crd.spec as k8s.types.input.apiextensions.v1.CustomResourceDefinitionSpec,
              },
              { ...child, retainOnDelete: crdSettings.retainOnDelete ?? true },
            );
          });

    const releaseName = args.chart?.releaseName ?? "gpufleet";
    this.release = new k8s.helm.v3.Release(
      `${name}-operator`,
      {
        name: releaseName,
        chart: args.chart?.path ?? DEFAULT_CHART_PATH,
        namespace: namespace.metadata.name,
        // The CRD is a resource of its own above: Helm never upgrades chart CRDs anyway.
        skipCrds: true,
        values: gpufleetChartValues(args),
        timeout: args.chart?.timeoutSeconds ?? 300,
        atomic: false,
        cleanupOnFail: true,
      },
      { ...child, dependsOn: [namespace, modelNamespace, ...this.crds] },
    );

    if (args.gpuOperator?.enabled) {
      this.gpuOperatorRelease = new k8s.helm.v3.Release(
        `${name}-gpu-operator`,
        {
          name: "gpu-operator",
          chart: "gpu-operator",
          version: args.gpuOperator.version,
          repositoryOpts: { repo: args.gpuOperator.repository ?? "https://helm.ngc.nvidia.com/nvidia" },
          namespace: "gpu-operator",
          createNamespace: true,
          values: gpuOperatorValues(args.gpuOperator),
          timeout: 900,
        },
        child,
      );
    }

    this.modelDeployments = (args.modelDeployments ?? []).map(
      (deployment) =>
        new k8s.apiextensions.CustomResource(
          `${name}-md-${deployment.name}`,
          {
            apiVersion: `${API_GROUP}/${API_VERSION}`,
            kind: KIND,
            metadata: {
              name: deployment.name,
              namespace: modelNamespace.metadata.name,
              labels: { "app.kubernetes.io/managed-by": "pulumi", ...deployment.labels },
              ...(deployment.annotations ? { annotations: deployment.annotations } : {}),
            },
            spec: deployment.spec,
          },
          // After the operator: a ModelDeployment created before it is only reconciled later.
          { ...child, dependsOn: [this.release, ...this.crds] },
        ),
    );

    this.namespace = namespace.metadata.name;
    this.modelNamespace = modelNamespace.metadata.name;
    this.releaseStatus = this.release.status.apply((status) => status.status);
    this.modelDeploymentNames = pulumi.all(
      this.modelDeployments.map((md) => pulumi.interpolate`${md.metadata.namespace}/${md.metadata.name}`),
    );
    this.registerOutputs({
      namespace: this.namespace,
      modelNamespace: this.modelNamespace,
      releaseStatus: this.releaseStatus,
      modelDeploymentNames: this.modelDeploymentNames,
    });
  }
}
