/**
 * From a placement plan to what the fleet stack provisions (pure): one cluster per region the plan
 * uses, one GPU node pool per GPU product placed there, and the ModelDeployments of that region,
 * pinned to the placed GPU product and sized to the placed replicas.
 */
import { parseRegionRef } from "../carbon/index.js";
import type { PlacementPlan, ReplicaShape } from "../placement/index.js";
import { gfdProductLabel, type ClusterCloud } from "../clusters/gpu-machines.js";
import { planGpuNodePool, type GpuNodePoolSpec } from "../clusters/node-pools.js";
import type { FleetModelDeployment, ModelDeploymentSpecInput } from "./gpufleet.js";

/** A model of the fleet config: its placement inputs and the ModelDeployment spec to run it with. */
export interface FleetModel {
  /** Also the ModelDeployment name (a DNS label). */
  name: string;
  replicaShapes: ReplicaShape[];
  /** The ModelDeployment spec; `gpu.products` and the replica counts are set from the placement. */
  deployment: ModelDeploymentSpecInput;
}

export interface ClusterPlan {
  /** Stable resource name, e.g. `gcp-europe-north1`. */
  name: string;
  cloud: ClusterCloud;
  region: string;
  gpuPools: GpuNodePoolSpec[];
  modelDeployments: FleetModelDeployment[];
}

/** `gcp:europe-north1` → `gcp-europe-north1`. */
export function clusterName(cloud: ClusterCloud, region: string): string {
  return `${cloud}-${region}`.toLowerCase().replace(/[^a-z0-9-]/g, "-");
}

/** `nvidia-h100-80gb` → `h100-80gb`: a short pool name (node group names are length-limited). */
export function poolName(gpuProduct: string): string {
  return gpuProduct.replace(/^nvidia-(tesla-)?/, "");
}

/**
 * The spec placed in one region: only the placed GPU product is allowed, and the replicas are the
 * placed ones (as the autoscaler's floor when autoscaling is on, so it may add burst replicas but
 * never goes below what the placement sized for the demand).
 */
export function placedSpec(
  base: ModelDeploymentSpecInput,
  gpuProduct: string,
  replicas: number,
): ModelDeploymentSpecInput {
  const spec: ModelDeploymentSpecInput = {
    ...base,
    gpu: { ...base.gpu, products: [gfdProductLabel(gpuProduct)] },
  };
  if (base.autoscaling?.enabled) {
    const maxReplicas = Math.max(base.autoscaling.maxReplicas ?? replicas, replicas);
    spec.autoscaling = { ...base.autoscaling, minReplicas: replicas, maxReplicas };
  } else {
    spec.replicas = replicas;
  }
  return spec;
}

export function planFleetClusters(plan: PlacementPlan, models: readonly FleetModel[]): ClusterPlan[] {
  const modelsByName = new Map(models.map((model) => [model.name, model]));
  const clusters = new Map<
    string,
    ClusterPlan & { poolRequests: Map<string, { gpus: number; gpusPerReplica: number }> }
  >();

  for (const placement of plan.replicas) {
    if (placement.replicas <= 0) continue;
    const model = modelsByName.get(placement.model);
    if (!model) throw new Error(`the placement placed unknown model ${placement.model}`);
    const ref = parseRegionRef(placement.region);
    if (ref.cloud !== "aws" && ref.cloud !== "gcp") {
      throw new Error(`region ${placement.region}: clusters are provisioned on aws and gcp only`);
    }
    const shape = model.replicaShapes.find((candidate) => candidate.gpuProduct === placement.gpuProduct);
    if (!shape) throw new Error(`model ${model.name} has no replica shape for ${placement.gpuProduct}`);

    const name = clusterName(ref.cloud, ref.id);
    let cluster = clusters.get(name);
    if (!cluster) {
      cluster = {
        name,
        cloud: ref.cloud,
        region: ref.id,
        gpuPools: [],
        modelDeployments: [],
        poolRequests: new Map(),
      };
      clusters.set(name, cluster);
    }
    const request = cluster.poolRequests.get(placement.gpuProduct) ?? { gpus: 0, gpusPerReplica: 1 };
    request.gpus += placement.gpus;
    // Machines must hold the largest replica of any model sharing the pool.
    request.gpusPerReplica = Math.max(request.gpusPerReplica, shape.gpusPerReplica);
    cluster.poolRequests.set(placement.gpuProduct, request);

    if (cluster.modelDeployments.some((md) => md.name === model.name)) {
      throw new Error(
        `model ${model.name} is placed twice in ${placement.region} (two GPU products); give each its own model entry`,
      );
    }
    cluster.modelDeployments.push({
      name: model.name,
      spec: placedSpec(model.deployment, placement.gpuProduct, placement.replicas),
      annotations: {
        "gpufleet.io/placement-strategy": plan.strategy,
        "gpufleet.io/placed-gpu-product": placement.gpuProduct,
        "gpufleet.io/placed-replicas": String(placement.replicas),
      },
    });
  }

  return [...clusters.values()]
    .map(({ poolRequests, ...cluster }) => ({
      ...cluster,
      gpuPools: [...poolRequests.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([gpuProduct, request]) =>
          planGpuNodePool(cluster.cloud, {
            name: poolName(gpuProduct),
            gpuProduct,
            gpus: request.gpus,
            gpusPerReplica: request.gpusPerReplica,
          }),
        ),
      modelDeployments: cluster.modelDeployments.sort((a, b) => a.name.localeCompare(b.name)),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** The placement report the stack exports: small, stable, readable in `pulumi stack output`. */
export function placementReport(plan: PlacementPlan): Record<string, unknown> {
  return {
    strategy: plan.strategy,
    totalGpus: plan.totalGpus,
    costPerHour: round(plan.costPerHour, 2),
    emissionsGramsPerHour: round(plan.emissionsGramsPerHour, 0),
    tCO2PerYear: round(plan.tCO2PerYear, 2),
    gCO2PerMillionTokens: round(plan.gCO2PerMillionTokens, 2),
    meanRttMs: round(plan.meanRttMs, 1),
    maxRttMs: round(plan.maxRttMs, 1),
    replicas: plan.replicas.map((r) => ({
      model: r.model,
      region: r.region,
      gpuProduct: r.gpuProduct,
      replicas: r.replicas,
      gpus: r.gpus,
    })),
  };
}

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
