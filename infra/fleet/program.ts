/**
 * The fleet stack: candidate regions + models + demand → placement (infra/placement, HiGHS MILP)
 * → one GPU cluster per chosen region (EKS or GKE) → gpufleet installed in each → the
 * ModelDeployments the placement assigned to it. Exports the placement report.
 *
 * `fleetProgram(config)` is the whole program as a function of its config, so unit tests run it
 * under Pulumi mocks and index.ts runs it from the stack config.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import {
  placeFleet,
  type CandidateRegion,
  type ModelDemand,
  type OriginDemand,
  type PlacementStrategy,
} from "../placement/index.js";
import { intensitySourceFromConfig, type CarbonSourceConfig } from "../carbon/intensity-source.js";
import { EksGpuCluster } from "../clusters/eks.js";
import { GkeGpuCluster } from "../clusters/gke.js";
import { planFleetClusters, placementReport, type ClusterPlan, type FleetModel } from "./fleet-plan.js";
import { GpuFleet, type GpuOperatorSettings, type OperatorSettings } from "./gpufleet.js";

export interface FleetModelConfig extends FleetModel {
  demand: OriginDemand[];
  tokensPerRequest?: number;
  minRegions?: number;
}

export interface FleetConfig {
  regions: CandidateRegion[];
  models: FleetModelConfig[];
  latencyTargetMs: number;
  /** Which plan to build; default carbon-aware (the others are reported for comparison). */
  strategy?: PlacementStrategy;
  minRegionsPerModel?: number;
  costCapPerHour?: number;
  /**
   * Where grid intensities come from: the same layered source (live API → hourly history → yearly)
   * the hourly planner and the gateway's region choice read. Without it: yearly figures only.
   * API keys come from the environment (GPUFLEET_ELECTRICITYMAPS_TOKEN, GPUFLEET_WATTTIME_*).
   */
  carbon?: CarbonSourceConfig;
  /** GCP project of the GKE clusters (required when a gcp region is chosen). */
  gcpProject?: string;
  kubernetesVersion?: string;
  /** Namespaces of every cluster. */
  namespace?: string;
  modelNamespace?: string;
  operator?: OperatorSettings;
  gpuOperator?: GpuOperatorSettings;
}

/** Checks the config shape (pure); returns the list of problems, empty when valid. */
export function validateFleetConfig(config: FleetConfig): string[] {
  const problems: string[] = [];
  if (!Array.isArray(config.regions) || config.regions.length === 0)
    problems.push("regions: at least one candidate region");
  if (!Array.isArray(config.models) || config.models.length === 0)
    problems.push("models: at least one model");
  if (!(config.latencyTargetMs > 0)) problems.push("latencyTargetMs: a positive number of milliseconds");
  for (const model of config.models ?? []) {
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(model.name))
      problems.push(`models.${model.name}: name must be a DNS label (it names the ModelDeployment)`);
    if (!model.deployment?.model) problems.push(`models.${model.name}: deployment.model is required`);
    if (!model.replicaShapes?.length) problems.push(`models.${model.name}: at least one replica shape`);
    if (!model.demand?.length) problems.push(`models.${model.name}: at least one demand origin`);
  }
  if (config.regions?.some((region) => region.region.startsWith("gcp:")) && !config.gcpProject) {
    problems.push("gcpProject: required when a gcp region is a candidate");
  }
  return problems;
}

export interface FleetOutputs {
  placement: Record<string, unknown>;
  comparison: Record<string, number>;
  clusters: Record<
    string,
    {
      cloud: string;
      region: string;
      gpuPools: Array<{ name: string; machineType: string; nodes: number }>;
      modelDeployments: pulumi.Output<string[]>;
    }
  >;
  kubeconfigs: pulumi.Output<Record<string, string>>;
}

function provisionCluster(
  cluster: ClusterPlan,
  config: FleetConfig,
): { kubeconfig: pulumi.Output<string>; parent: pulumi.Resource } {
  if (cluster.cloud === "aws") {
    const eks = new EksGpuCluster(cluster.name, {
      region: cluster.region,
      gpuPools: cluster.gpuPools,
      ...(config.kubernetesVersion ? { kubernetesVersion: config.kubernetesVersion } : {}),
    });
    return { kubeconfig: eks.kubeconfig, parent: eks };
  }
  if (!config.gcpProject) throw new Error(`gcpProject is required for ${cluster.region}`);
  const gke = new GkeGpuCluster(cluster.name, {
    project: config.gcpProject,
    region: cluster.region,
    gpuPools: cluster.gpuPools,
  });
  return { kubeconfig: gke.kubeconfig, parent: gke };
}

export async function fleetProgram(config: FleetConfig): Promise<FleetOutputs> {
  const problems = validateFleetConfig(config);
  if (problems.length > 0) throw new Error(`invalid fleet config:\n- ${problems.join("\n- ")}`);

  const models: ModelDemand[] = config.models.map((model) => ({
    name: model.name,
    replicaShapes: model.replicaShapes,
    demand: model.demand,
    ...(model.tokensPerRequest !== undefined ? { tokensPerRequest: model.tokensPerRequest } : {}),
    ...(model.minRegions !== undefined ? { minRegions: model.minRegions } : {}),
  }));
  // Without `carbon` the placement keeps the yearly figures; with it, the mean over the next hours of
  // the layered source (live forecast where configured, else the same hours of history).
  const carbonSource = config.carbon ? intensitySourceFromConfig(config.carbon) : undefined;
  const now = Date.now();
  const windowMs = (config.carbon?.planningWindowHours ?? 24) * 3_600_000;
  const placement = await placeFleet({
    regions: config.regions,
    models,
    latencyTargetMs: config.latencyTargetMs,
    ...(carbonSource
      ? { carbonSource, carbonWindow: { start: new Date(now), end: new Date(now + windowMs) } }
      : {}),
    ...(config.minRegionsPerModel !== undefined ? { minRegionsPerModel: config.minRegionsPerModel } : {}),
    ...(config.costCapPerHour !== undefined ? { costCapPerHour: config.costCapPerHour } : {}),
  });
  const strategy = config.strategy ?? "carbon-aware";
  const plan =
    strategy === "carbon-aware"
      ? placement.carbonAware
      : strategy === "cheapest"
        ? placement.cheapest
        : placement.nearest;
  for (const warning of placement.warnings) void pulumi.log.warn(`placement: ${warning}`);

  const clusters: FleetOutputs["clusters"] = {};
  const kubeconfigs: Record<string, pulumi.Output<string>> = {};
  for (const cluster of planFleetClusters(plan, config.models)) {
    const { kubeconfig, parent } = provisionCluster(cluster, config);
    const provider = new k8s.Provider(
      `${cluster.name}-k8s`,
      { kubeconfig, enableServerSideApply: true },
      { parent },
    );
    const fleet = new GpuFleet(
      `${cluster.name}-gpufleet`,
      {
        namespace: config.namespace ?? "gpufleet-system",
        modelNamespace: config.modelNamespace ?? "models",
        modelDeployments: cluster.modelDeployments,
        ...(config.operator ? { operator: config.operator } : {}),
        ...(config.gpuOperator ? { gpuOperator: config.gpuOperator } : {}),
      },
      { provider, parent },
    );
    clusters[cluster.name] = {
      cloud: cluster.cloud,
      region: cluster.region,
      gpuPools: cluster.gpuPools.map((pool) => ({
        name: pool.name,
        machineType: pool.machine.machineType,
        nodes: pool.desiredNodes,
      })),
      modelDeployments: fleet.modelDeploymentNames,
    };
    kubeconfigs[cluster.name] = kubeconfig;
  }

  return {
    placement: placementReport(plan),
    comparison: placement.comparison,
    clusters,
    kubeconfigs: pulumi.secret(pulumi.all(kubeconfigs)),
  };
}
