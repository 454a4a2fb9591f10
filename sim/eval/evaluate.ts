/** One evaluation scenario: a trace, a replica type, a latency goal, and every policy on it. */
import {
  aibrixKpaController,
  dynamoPlannerController,
  gpufleetController,
  kedaController,
  kubeAiController,
  llmdSaturationController,
  LLMD_DEFAULT_THRESHOLDS,
  type Bounds,
} from "./controllers.js";
import type { AutoscalingConfig } from "../../operator/autoscaler/policy.js";
import { effectiveTokenUtilizationTarget } from "../../operator/autoscaler/ttft-objective.js";
import { simulateFleet, type Controller, type FleetResult, type FleetScenario } from "./fleet.js";
import { replicaFor } from "./hardware.js";
import type { EngineParams } from "../engine/model.js";
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
   * The simulated engine's true speed relative to what the planner (and so every policy's capacity
   * prior) assumes: 0.7 = every step takes 1/0.7 as long as planned. Default 1.
   */
  engineSpeed?: number;
  /** Run each baseline's hindsight sweep and add its best row (default true). */
  tuneBaselines?: boolean;
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
  /** Per baseline: the setting its hindsight sweep chose (the row named `<name> tuned (...)`). */
  tuned: Array<{ baseline: string; chosen: FleetResult; meetsGoal: boolean }>;
}

/**
 * Engine parameters of a replica `speed` times as fast as `params` (every step-time term divided by
 * it; memory and batch limits unchanged). Models a planner whose roofline is off by that factor.
 */
export function withEngineSpeed(params: EngineParams, speed: number): EngineParams {
  if (!(speed > 0)) throw new Error(`engine speed must be positive, got ${speed}`);
  return {
    ...params,
    weightReadMs: params.weightReadMs / speed,
    computeMsPerToken: params.computeMsPerToken / speed,
    kvReadMsPerToken: params.kvReadMsPerToken / speed,
    stepOverheadMs: params.stepOverheadMs / speed,
  };
}

/**
 * The baseline's best setting for the goal, found with hindsight on this very scenario: the
 * cheapest run that meets the goal; if none does, the one closest to it.
 */
export function bestForGoal(
  results: FleetResult[],
  goalShare: number,
): { chosen: FleetResult; meetsGoal: boolean } {
  let best: FleetResult | undefined;
  for (const r of results) {
    if (!best) {
      best = r;
      continue;
    }
    const rMeets = r.withinTargetShare >= goalShare;
    const bMeets = best.withinTargetShare >= goalShare;
    if (
      rMeets !== bMeets
        ? rMeets
        : rMeets
          ? r.gpuHours < best.gpuHours
          : r.withinTargetShare > best.withinTargetShare
    )
      best = r;
  }
  if (!best) throw new Error("bestForGoal needs at least one result");
  return { chosen: best, meetsGoal: best.withinTargetShare >= goalShare };
}

/** The settings each baseline's hindsight sweep tries (its default included). */
export function baselineSweeps(
  bounds: Bounds,
  replicaTokenCapacity: number | null,
): Array<{ baseline: string; controllers: Controller[] }> {
  // The first setting of each sweep is the baseline's default.
  const sweeps = [
    { baseline: "kubeai", controllers: [100, 1, 2, 5, 10, 20, 40].map((t) => kubeAiController(bounds, t)) },
    { baseline: "keda", controllers: [5, 0.5, 1, 2, 3, 8].map((t) => kedaController(bounds, t)) },
    {
      baseline: "aibrix-kpa",
      controllers: [0.5, 0.05, 0.1, 0.2, 0.3, 0.4, 0.7].map((t) => aibrixKpaController(bounds, t)),
    },
    {
      baseline: "llm-d-saturation",
      controllers: [
        LLMD_DEFAULT_THRESHOLDS,
        ...[0.2, 0.3, 0.4, 0.5, 0.6].map((kvSpareTrigger) => ({
          ...LLMD_DEFAULT_THRESHOLDS,
          kvSpareTrigger,
        })),
        ...[0.3, 0.5, 0.7].map((kvSpareTrigger) => ({
          ...LLMD_DEFAULT_THRESHOLDS,
          kvSpareTrigger,
          queueSpareTrigger: 4,
        })),
      ].map((t) => llmdSaturationController(bounds, t)),
    },
  ];
  if (replicaTokenCapacity !== null)
    sweeps.push({
      baseline: "dynamo-planner",
      controllers: [1, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15].map((u) =>
        dynamoPlannerController(bounds, replicaTokenCapacity, u),
      ),
    });
  return sweeps;
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
  // The policies keep the planner's capacity (the prior); only the simulated engine changes speed.
  const params = withEngineSpeed(replica.params, def.engineSpeed ?? 1);
  const trace = scaleLoad(loadTrace(def.trace), def.loadScale);
  return {
    gpusPerReplica: replica.gpusPerReplica,
    gpufleetOverrides: {
      // The scenario's TTFT goal declared as the ModelDeployment's spec.autoscaling.ttftTargetSeconds:
      // the policy derives its headroom from it and the bursts it measures (operator/autoscaler/headroom.ts).
      ttftTargetSeconds: def.ttftTargetSeconds,
      ...(replica.replicaTokenCapacityPerSecond === null
        ? {}
        : { replicaTokenCapacityPerSecond: replica.replicaTokenCapacityPerSecond }),
    },
    fleet: {
      name: def.name,
      trace,
      params,
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
  // Every autoscaler starts from minReplicas, as a fresh deployment does: none is handed the
  // oracle's answer for the first window.
  const bounds: Bounds = {
    minReplicas: fleet.minReplicas,
    maxReplicas: def.maxReplicas,
    initialReplicas: fleet.minReplicas,
  };
  const capacity = gpufleetOverrides.replicaTokenCapacityPerSecond ?? null;
  const tuned: ScenarioOutcome["tuned"] = [];
  const baselineRows: FleetResult[] = [];
  for (const sweep of baselineSweeps(bounds, capacity)) {
    // The first controller of each sweep is the baseline at its defaults.
    const runs = ((def.tuneBaselines ?? true) ? sweep.controllers : sweep.controllers.slice(0, 1)).map((c) =>
      simulateFleet(fleet, c),
    );
    baselineRows.push(runs[0] as FleetResult);
    if (def.tuneBaselines ?? true) {
      const best = bestForGoal(runs, def.goalShare);
      const label = best.chosen.controller.includes("(")
        ? best.chosen.controller.replace("(", " tuned (")
        : `${best.chosen.controller} tuned (= defaults)`;
      baselineRows.push({ ...best.chosen, controller: label });
      tuned.push({ baseline: sweep.baseline, ...best });
    }
  }
  const controllers = [
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
    ...baselineRows,
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
    tuned,
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
    // The fixed rule of session 3 (T / (T + 2.25 s) on the peak) next to the derived headroom.
    gpufleetVariants: [
      {
        label: "gpufleet (fixed token target 0.47)",
        overrides: { tokenUtilizationTarget: effectiveTokenUtilizationTarget({ ttftTargetSeconds: 2 }) },
      },
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
        label: "gpufleet (fixed token target 0.69)",
        overrides: { tokenUtilizationTarget: effectiveTokenUtilizationTarget({ ttftTargetSeconds: 5 }) },
      },
    ],
  },
];
