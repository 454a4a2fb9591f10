import type { CarbonIntensity, CarbonIntensitySource, RegionRef, TimeWindow } from "../carbon/types.js";
import type { GpuPowerSpec } from "./gpu-power.js";
import type { RttTable } from "./rtt.js";
import type { SolverOptions } from "./highs-solver.js";

/** One GPU product a region offers, with the quota granted there and its list price. */
export interface GpuOffer {
  gpuProduct: string;
  quotaGpus: number;
  pricePerGpuHour: number;
}

export interface CandidateRegion {
  /** `cloud:region`, e.g. `gcp:europe-north1`. */
  region: RegionRef;
  offers: GpuOffer[];
  /** Power usage effectiveness of the data centre; default PlacementInput.defaultPue. */
  pue?: number;
  /** Grid intensity to use; when absent it is looked up from PlacementInput.carbonSource. */
  gCO2PerKWh?: number;
}

/** One way to run a model: a GPU product, how many GPUs a replica takes, and what a replica serves. */
export interface ReplicaShape {
  gpuProduct: string;
  /** From the sizing planner (tensor parallel × pipeline parallel). */
  gpusPerReplica: number;
  /** Sustained throughput of one replica at the latency SLO, in the same tokens the demand counts. */
  tokensPerSecondPerReplica: number;
}

export interface OriginDemand {
  /** Where users are: an Electricity Maps zone (`US-MIDA-PJM`) or a cloud region (`gcp:us-east5`). */
  origin: string;
  tokensPerSecond?: number;
  /** Converted with ModelDemand.tokensPerRequest. */
  requestsPerSecond?: number;
}

export interface ModelDemand {
  name: string;
  replicaShapes: ReplicaShape[];
  demand: OriginDemand[];
  tokensPerRequest?: number;
  /** Overrides PlacementInput.minRegionsPerModel. */
  minRegions?: number;
}

export interface PlacementInput {
  regions: CandidateRegion[];
  models: ModelDemand[];
  /** Largest RTT allowed between a user origin and the region serving it. */
  latencyTargetMs: number;
  /** Redundancy: each model runs in at least this many regions (default 1). */
  minRegionsPerModel?: number;
  /** Optional ceiling on the fleet's GPU cost, currency units per hour. */
  costCapPerHour?: number;
  /** Default: the shared GCP inter-region matrix. */
  rtt?: RttTable;
  /** Power per GPU product; default the local GPU_POWER table. */
  gpuPower?: Readonly<Record<string, GpuPowerSpec>>;
  /** Default 1.1 (Google reports a fleet-wide trailing-twelve-month PUE of about 1.1). */
  defaultPue?: number;
  /** Fraction of a replica's throughput that may be used (headroom for bursts); default 1. */
  maxUtilization?: number;
  /** Looked up for regions without gCO2PerKWh; default the static shared-data source. */
  carbonSource?: CarbonIntensitySource;
  /** When set and the source has forecasts, the forecast mean over this window is used. */
  carbonWindow?: TimeWindow;
  solver?: SolverOptions;
}

export type PlacementStrategy = "carbon-aware" | "cheapest" | "nearest";

export interface ReplicaPlacement {
  model: string;
  region: RegionRef;
  gpuProduct: string;
  replicas: number;
  gpus: number;
}

export interface RouteAssignment {
  model: string;
  origin: string;
  region: RegionRef;
  gpuProduct: string;
  tokensPerSecond: number;
  rttMs: number;
}

export interface PlacementPlan {
  strategy: PlacementStrategy;
  replicas: ReplicaPlacement[];
  routes: RouteAssignment[];
  /** Regions holding at least one replica, per model. */
  regionsPerModel: Record<string, RegionRef[]>;
  totalGpus: number;
  demandTokensPerSecond: number;
  emissionsGramsPerHour: number;
  tCO2PerYear: number;
  gCO2PerMillionTokens: number;
  costPerHour: number;
  /** Token-weighted mean RTT from origin to serving region. */
  meanRttMs: number;
  maxRttMs: number;
  solverStatus: string;
}

export interface FleetPlacement {
  carbonAware: PlacementPlan;
  cheapest: PlacementPlan;
  nearest: PlacementPlan;
  /** Intensity used for each candidate region, with its source. */
  intensities: Record<RegionRef, CarbonIntensity>;
  /** Carbon-aware against each baseline: positive = carbon-aware emits less / costs more / is farther. */
  comparison: {
    emissionsReductionVsCheapestPct: number;
    emissionsReductionVsNearestPct: number;
    extraCostPerHourVsCheapest: number;
    extraMeanRttMsVsNearest: number;
  };
  warnings: string[];
}

/** Names of the constraint families, as used in infeasibility reports. */
export type ConstraintFamily = "latency" | "gpu-quota" | "redundancy" | "cost-cap" | "capacity";

export class PlacementInfeasibleError extends Error {
  constructor(
    message: string,
    /** The constraint families found binding; each explained in `details`. */
    readonly bindingConstraints: ConstraintFamily[],
    readonly details: string[],
  ) {
    super(message);
    this.name = "PlacementInfeasibleError";
  }
}
