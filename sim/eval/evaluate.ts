/** One evaluation scenario: a trace, a replica type, a latency goal, and every policy on it. */
import {
  aibrixKpaController,
  gpufleetController,
  kedaController,
  kubeAiController,
  llmdSaturationController,
  type Bounds,
} from "./controllers.js";
import type { AutoscalingConfig } from "../../operator/autoscaler/policy.js";
import {
  DEFAULT_TOKEN_UTILIZATION_TARGET,
  effectiveTokenUtilizationTarget,
} from "../../operator/autoscaler/ttft-objective.js";
import { simulateFleet, type FleetResult, type FleetScenario } from "./fleet.js";
import { replicaFor } from "./hardware.js";
import { laggedOracleSchedule, oracleSchedule, staticForPeak, type LaggedOracle } from "./oracle.js";
import { loadTrace, scaleLoad } from "./traces.js";

export interface ScenarioDefinition {
  name: string;
  /** `azure-code`, `mooncake` or a path to a .csv/.jsonl trace. */
  trace: string;
  /** Multiply the load while keeping its shape over time (1 = the trace as recorded). */
  loadScale: number;
  model: string;
  gpu: string;
  /** Longest prompt + output served (sizes the replica; smaller may fit on fewer GPUs). */
  maxContextLength: number;
  ttftTargetSeconds: number;
  /** Share of requests that must meet the TTFT target (0.99). */
  goalShare: number;
  modelLoadSeconds: number;
  scrapeIntervalSeconds: number;
  maxReplicas: number;
  oracleWindowSeconds: number;
  /**
   * Extra gpufleet rows with non-default settings, each labelled with what it changes (to show a
   * trade-off next to the defaults; the row named plain "gpufleet" always runs the defaults).
   */
  gpufleetVariants?: Array<{ label: string; overrides: Partial<AutoscalingConfig> }>;
}

export interface ScenarioOutcome {
  definition: ScenarioDefinition;
  fleet: FleetScenario;
  gpusPerReplica: number;
  staticReplicas: number;
  oracleSchedule: number[];
  /** The reactive reference: the oracle's per-window needs applied one or more windows late. */
  laggedOracle: LaggedOracle;
  results: FleetResult[];
}

export function buildFleetScenario(def: ScenarioDefinition): {
  fleet: FleetScenario;
  gpusPerReplica: number;
  /**
   * What the operator derives for the policy's token signal (operator/autoscaler/loop.ts
   * `policyConfig`): the replica capacity from the plan, the headroom from the TTFT objective.
   */
  gpufleetOverrides: Partial<AutoscalingConfig>;
} {
  const replica = replicaFor(def.model, def.gpu, { maxContextLength: def.maxContextLength });
  const trace = scaleLoad(loadTrace(def.trace), def.loadScale);
  return {
    gpusPerReplica: replica.gpusPerReplica,
    gpufleetOverrides: {
      // The scenario's TTFT goal declared as the ModelDeployment's spec.autoscaling.ttftTargetSeconds.
      tokenUtilizationTarget: effectiveTokenUtilizationTarget({ ttftTargetSeconds: def.ttftTargetSeconds }),
      ...(replica.replicaTokenCapacityPerSecond === null
        ? {}
        : { replicaTokenCapacityPerSecond: replica.replicaTokenCapacityPerSecond }),
    },
    fleet: {
      name: def.name,
      trace,
      params: replica.params,
      gpusPerReplica: replica.gpusPerReplica,
      modelLoadSeconds: def.modelLoadSeconds,
      scrapeIntervalSeconds: def.scrapeIntervalSeconds,
      ttftTargetSeconds: def.ttftTargetSeconds,
      minReplicas: 1,
      maxReplicas: def.maxReplicas,
    },
  };
}

export function evaluateScenario(def: ScenarioDefinition): ScenarioOutcome {
  const { fleet, gpusPerReplica, gpufleetOverrides } = buildFleetScenario(def);
  const staticPeak = staticForPeak(fleet, def.goalShare);
  const oracle = oracleSchedule(fleet, def.goalShare, def.oracleWindowSeconds * 1000, staticPeak.replicas);
  // Every autoscaler starts from the fleet the oracle uses for the first window, so none pays for
  // (or profits from) a cold first minute.
  const bounds: Bounds = {
    minReplicas: 1,
    maxReplicas: def.maxReplicas,
    initialReplicas: oracle.schedule[0] ?? 1,
  };
  const controllers = [
    kubeAiController(bounds),
    kedaController(bounds),
    aibrixKpaController(bounds),
    llmdSaturationController(bounds),
    gpufleetController(bounds, gpufleetOverrides),
    ...(def.gpufleetVariants ?? []).map((v) =>
      gpufleetController(bounds, { ...gpufleetOverrides, ...v.overrides }, 10, v.label),
    ),
  ];
  const windowMs = def.oracleWindowSeconds * 1000;
  const lagged = laggedOracleSchedule(fleet, def.goalShare, windowMs, oracle.independentSchedule);
  const results = [
    staticPeak.result,
    oracle.result,
    lagged.result,
    ...controllers.map((c) => simulateFleet(fleet, c)),
  ];
  return {
    definition: def,
    fleet,
    gpusPerReplica,
    staticReplicas: staticPeak.replicas,
    oracleSchedule: oracle.schedule,
    laggedOracle: lagged,
    results,
  };
}

export const DEFAULT_SCENARIOS: ScenarioDefinition[] = [
  {
    name: "azure-code · llama-3.1-8b · A100-80GB",
    trace: "azure-code",
    loadScale: 1,
    model: "llama-3.1-8b",
    gpu: "NVIDIA-A100-SXM4-80GB",
    maxContextLength: 16384,
    ttftTargetSeconds: 2,
    goalShare: 0.99,
    modelLoadSeconds: 60,
    scrapeIntervalSeconds: 10,
    maxReplicas: 32,
    oracleWindowSeconds: 300,
    // The objective (2 s) already gives the default headroom; show the next steps up instead.
    gpufleetVariants: [
      { label: "gpufleet (token target 0.5)", overrides: { tokenUtilizationTarget: 0.5 } },
      { label: "gpufleet (token target 0.6)", overrides: { tokenUtilizationTarget: 0.6 } },
    ],
  },
  {
    name: "mooncake · llama-3.1-8b · H100-80GB",
    trace: "mooncake",
    loadScale: 1,
    model: "llama-3.1-8b",
    gpu: "NVIDIA-H100-80GB-HBM3",
    maxContextLength: 131072,
    ttftTargetSeconds: 5,
    goalShare: 0.99,
    modelLoadSeconds: 90,
    scrapeIntervalSeconds: 10,
    maxReplicas: 32,
    oracleWindowSeconds: 300,
    gpufleetVariants: [
      {
        label: "gpufleet (no TTFT objective)",
        overrides: { tokenUtilizationTarget: DEFAULT_TOKEN_UTILIZATION_TARGET },
      },
    ],
  },
];

