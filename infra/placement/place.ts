import type { CarbonIntensity, CarbonIntensitySource } from "../carbon/types.js";
import { intensityForPlanning } from "../carbon/types.js";
import { StaticCarbonIntensitySource } from "../carbon/static-source.js";
import { solveLp, type MilpSolution } from "./highs-solver.js";
import { loadGcpRttTable } from "./rtt.js";
import {
  buildPlacementProblem,
  objectiveTerms,
  objectiveUpperBound,
  routeVar,
  slotVar,
  writeLp,
  type Objective,
  type PlacementProblem,
  type ResolvedInputs,
} from "./problem.js";
import {
  PlacementInfeasibleError,
  type ConstraintFamily,
  type FleetPlacement,
  type PlacementInput,
  type PlacementPlan,
  type PlacementStrategy,
  type RouteAssignment,
} from "./types.js";

/** Primary objective first, tie-break second: solved lexicographically. */
export const STRATEGY_OBJECTIVES: Readonly<Record<PlacementStrategy, readonly [Objective, Objective]>> = {
  "carbon-aware": ["emissions", "cost"],
  cheapest: ["cost", "latency"],
  nearest: ["latency", "cost"],
};

const HOURS_PER_YEAR = 8760;

let defaultStaticSource: StaticCarbonIntensitySource | undefined;

/** Intensity per candidate region and the RTT lookup, from the input or the shared data. */
export async function resolvePlacementInputs(
  input: PlacementInput,
): Promise<{ resolved: ResolvedInputs; intensities: Record<string, CarbonIntensity> }> {
  const intensities: Record<string, CarbonIntensity> = {};
  let source: CarbonIntensitySource | undefined = input.carbonSource;
  for (const region of input.regions) {
    if (region.gCO2PerKWh !== undefined) {
      intensities[region.region] = {
        gCO2PerKWh: region.gCO2PerKWh,
        source: "input",
        asOf: "input",
        kind: "yearly-average",
      };
      continue;
    }
    source ??= defaultStaticSource ??= StaticCarbonIntensitySource.fromSharedData();
    intensities[region.region] = await intensityForPlanning(source, region.region, input.carbonWindow);
  }
  const rtt = input.rtt ?? loadGcpRttTable();
  return {
    intensities,
    resolved: {
      intensities: input.regions.map((r) => intensities[r.region]?.gCO2PerKWh ?? 0),
      rttMs: (origin, region) => rtt.rttMs(origin, region),
    },
  };
}

/**
 * Places every model: the carbon-aware plan (least emissions) and, under the same constraints, the
 * cheapest and the nearest plans for comparison. Throws PlacementInfeasibleError naming the
 * binding constraint when no placement exists.
 */
export async function placeFleet(input: PlacementInput): Promise<FleetPlacement> {
  const { resolved, intensities } = await resolvePlacementInputs(input);
  const problem = buildPlacementProblem(input, resolved);
  const precheck = precheckFeasibility(problem, input, resolved);
  if (precheck.length > 0) throw infeasible(precheck);

  const warnings: string[] = [];
  for (const [region, figure] of Object.entries(intensities)) {
    if (figure.fallbackReason !== undefined)
      warnings.push(`${region}: carbon intensity from fallback (${figure.fallbackReason})`);
  }
  const plans: Partial<Record<PlacementStrategy, PlacementPlan>> = {};
  for (const strategy of ["carbon-aware", "cheapest", "nearest"] as const) {
    const solution = await solveStrategy(problem, STRATEGY_OBJECTIVES[strategy], input);
    if (solution === undefined) throw await diagnoseInfeasibility(input, resolved);
    if (solution.status === "time-limit")
      warnings.push(`${strategy}: solver hit its time limit; plan may be suboptimal`);
    plans[strategy] = evaluatePlan(problem, solution.values, strategy, solution.solverStatus);
  }
  const carbonAware = plans["carbon-aware"] as PlacementPlan;
  const cheapest = plans.cheapest as PlacementPlan;
  const nearest = plans.nearest as PlacementPlan;
  return {
    carbonAware,
    cheapest,
    nearest,
    intensities,
    comparison: {
      emissionsReductionVsCheapestPct: reductionPct(
        cheapest.emissionsGramsPerHour,
        carbonAware.emissionsGramsPerHour,
      ),
      emissionsReductionVsNearestPct: reductionPct(
        nearest.emissionsGramsPerHour,
        carbonAware.emissionsGramsPerHour,
      ),
      extraCostPerHourVsCheapest: carbonAware.costPerHour - cheapest.costPerHour,
      extraMeanRttMsVsNearest: carbonAware.meanRttMs - nearest.meanRttMs,
    },
    warnings,
  };
}

/** One strategy alone (used by the CLI and tests). */
export async function placeWithStrategy(
  input: PlacementInput,
  strategy: PlacementStrategy,
): Promise<PlacementPlan> {
  const { resolved } = await resolvePlacementInputs(input);
  const problem = buildPlacementProblem(input, resolved);
  const precheck = precheckFeasibility(problem, input, resolved);
  if (precheck.length > 0) throw infeasible(precheck);
  const solution = await solveStrategy(problem, STRATEGY_OBJECTIVES[strategy], input);
  if (solution === undefined) throw await diagnoseInfeasibility(input, resolved);
  return evaluatePlan(problem, solution.values, strategy, solution.solverStatus);
}

function reductionPct(baseline: number, value: number): number {
  return baseline > 0 ? ((baseline - value) / baseline) * 100 : 0;
}

/**
 * Weight of the tie-break objective relative to the primary: small enough that it cannot move the
 * primary by more than about 1e-9 of the primary's scale, large enough to order exact ties.
 */
const TIE_BREAK_SCALE = 1e-9;

/**
 * Minimises the primary objective with the secondary as a tie-break, in one weighted MILP (a
 * lexicographic second stage with the primary pinned is much slower on fleet-sized inputs). Two
 * cheap second steps make the tie-break real where the tiny weight alone cannot:
 * - latency as tie-break depends on routing only, so traffic is re-routed over the chosen replicas
 *   by an LP, sending it to the nearest replica with room;
 * - cost after a latency primary is minimised with latency held at the value found.
 */
async function solveStrategy(
  problem: PlacementProblem,
  [primary, secondary]: readonly [Objective, Objective],
  input: PlacementInput,
): Promise<MilpSolution | undefined> {
  const primaryScale = Math.max(1, objectiveUpperBound(problem, primary));
  const secondaryScale = Math.max(1, objectiveUpperBound(problem, secondary));
  const weight = (TIE_BREAK_SCALE * primaryScale) / secondaryScale;
  const solution = await solveLp(
    writeLp(problem, [
      [primary, 1],
      [secondary, weight],
    ]),
    input.solver,
  );
  if (solution.status === "infeasible") return undefined;
  if (solution.status === "error")
    throw new Error(`placement solver failed: HiGHS status "${solution.solverStatus}"`);
  if (secondary === "latency") {
    const fixedReplicas = new Map(
      problem.slots.map((s) => [s.index, Math.round(solution.values.get(slotVar(s.index)) ?? 0)]),
    );
    const rerouted = await solveLp(writeLp(problem, "latency", { fixedReplicas }), input.solver);
    return rerouted.status === "optimal"
      ? { ...rerouted, status: solution.status, solverStatus: solution.solverStatus }
      : solution;
  }
  if (primary === "latency") {
    const optimum = objectiveValue(problem, primary, solution.values);
    const atMost = optimum + 1e-7 * Math.max(1, Math.abs(optimum));
    const cheaper = await solveLp(
      writeLp(problem, secondary, { objectiveBounds: [{ objective: primary, atMost }] }),
      input.solver,
    );
    if (cheaper.status === "optimal" || cheaper.status === "time-limit") return cheaper;
  }
  return solution;
}

export function objectiveValue(
  problem: PlacementProblem,
  objective: Objective,
  values: ReadonlyMap<string, number>,
): number {
  return objectiveTerms(problem, objective).reduce(
    (sum, [name, coefficient]) => sum + coefficient * (values.get(name) ?? 0),
    0,
  );
}

/** Reads a solution back into replicas, routes and the figures the comparison reports. */
export function evaluatePlan(
  problem: PlacementProblem,
  values: ReadonlyMap<string, number>,
  strategy: PlacementStrategy,
  solverStatus: string,
): PlacementPlan {
  const replicasBySlot = problem.slots.map((s) => Math.max(0, Math.round(values.get(slotVar(s.index)) ?? 0)));
  let emissions = 0;
  let cost = 0;
  const replicas = problem.slots.flatMap((s) => {
    const count = replicasBySlot[s.index] ?? 0;
    if (count === 0) return [];
    emissions += count * s.idleGramsPerHour;
    cost += count * s.costPerHour;
    return [
      {
        model: problem.models[s.model] ?? "",
        region: problem.regions[s.region] ?? "",
        gpuProduct: s.gpuProduct,
        replicas: count,
        gpus: count * s.gpusPerReplica,
      },
    ];
  });
  const routes: RouteAssignment[] = [];
  let routedTokens = 0;
  let rttWeighted = 0;
  let maxRtt = 0;
  for (const r of problem.routes) {
    const demand = problem.demands[r.demand];
    const slot = problem.slots[r.slot];
    const flow = values.get(routeVar(r.index)) ?? 0;
    if (demand === undefined || slot === undefined || flow <= 1e-6 * demand.tokensPerSecond) continue;
    emissions += flow * slot.gramsPerHourPerTokenPerSecond;
    routedTokens += flow;
    rttWeighted += flow * r.rttMs;
    maxRtt = Math.max(maxRtt, r.rttMs);
    routes.push({
      model: problem.models[demand.model] ?? "",
      origin: demand.origin,
      region: problem.regions[slot.region] ?? "",
      gpuProduct: slot.gpuProduct,
      tokensPerSecond: flow,
      rttMs: r.rttMs,
    });
  }
  const demandTokensPerSecond = problem.demands.reduce((sum, d) => sum + d.tokensPerSecond, 0);
  const regionsPerModel: Record<string, string[]> = {};
  for (const model of problem.models) regionsPerModel[model] = [];
  for (const placement of replicas) {
    const list = regionsPerModel[placement.model] ?? [];
    if (!list.includes(placement.region)) list.push(placement.region);
    regionsPerModel[placement.model] = list;
  }
  return {
    strategy,
    replicas,
    routes,
    regionsPerModel,
    totalGpus: replicas.reduce((sum, p) => sum + p.gpus, 0),
    demandTokensPerSecond,
    emissionsGramsPerHour: emissions,
    tCO2PerYear: (emissions * HOURS_PER_YEAR) / 1e6,
    gCO2PerMillionTokens: demandTokensPerSecond > 0 ? (emissions / (demandTokensPerSecond * 3600)) * 1e6 : 0,
    costPerHour: cost,
    meanRttMs: routedTokens > 0 ? rttWeighted / routedTokens : 0,
    maxRttMs: maxRtt,
    solverStatus,
  };
}

interface Finding {
  family: ConstraintFamily;
  detail: string;
}

function infeasible(findings: Finding[], preamble?: string): PlacementInfeasibleError {
  const families = [...new Set(findings.map((f) => f.family))];
  return new PlacementInfeasibleError(
    `no feasible placement: ${preamble ? `${preamble}: ` : ""}${findings.map((f) => f.detail).join("; ")}`,
    families,
    findings.map((f) => f.detail),
  );
}

/**
 * Necessary conditions checked before solving, each naming the constraint that fails:
 * every origin has a region within the latency target, every model has enough reachable regions
 * for its redundancy, and the quota of those regions can carry the model's demand on its own.
 */
export function precheckFeasibility(
  problem: PlacementProblem,
  input: PlacementInput,
  resolved: ResolvedInputs,
): Finding[] {
  const findings: Finding[] = [];
  const target = input.latencyTargetMs;
  const routedDemands = new Set(problem.routes.map((r) => r.demand));
  for (const d of problem.demands) {
    if (routedDemands.has(d.index)) continue;
    const model = input.models[d.model];
    const runnable = input.regions.filter((r) =>
      r.offers.some((o) => model?.replicaShapes.some((s) => s.gpuProduct === o.gpuProduct)),
    );
    const nearest = runnable
      .map((r) => ({ region: r.region, rtt: resolved.rttMs(d.origin, r.region) }))
      .filter((r): r is { region: string; rtt: number } => r.rtt !== undefined)
      .sort((a, b) => a.rtt - b.rtt)[0];
    const hint =
      runnable.length === 0
        ? "no candidate region offers a GPU it runs on"
        : nearest === undefined
          ? `no RTT known from ${d.origin} to any candidate region`
          : `nearest candidate ${nearest.region} is ${nearest.rtt} ms away`;
    findings.push({
      family: "latency",
      detail: `latency: model ${problem.models[d.model]} has users at ${d.origin} but no candidate region within ${target} ms (${hint})`,
    });
  }
  problem.models.forEach((name, m) => {
    const slots = problem.slots.filter((s) => s.model === m);
    const regions = new Set(slots.map((s) => problem.regions[s.region]));
    const need = problem.minRegions[m] ?? 1;
    if (regions.size < need) {
      findings.push({
        family: "redundancy",
        detail:
          `redundancy: model ${name} must run in ${need} regions but only ${regions.size} candidate regions within ${target} ms ` +
          `of its users offer quota for it${regions.size > 0 ? ` (${[...regions].join(", ")})` : ""}`,
      });
    }
    const demand = problem.demands
      .filter((d) => d.model === m)
      .reduce((sum, d) => sum + d.tokensPerSecond, 0);
    const capacity = slots.reduce((sum, s) => sum + s.maxReplicas * s.usableTokensPerSecond, 0);
    if (slots.length > 0 && capacity < demand) {
      findings.push({
        family: "gpu-quota",
        detail:
          `gpu-quota: model ${name} needs ${round(demand)} tokens/s but the GPU quota of regions within ${target} ms ` +
          `of its users serves at most ${round(capacity)} tokens/s`,
      });
    }
  });
  return findings;
}

/** After an infeasible solve: which single constraint family, relaxed, makes a placement exist. */
async function diagnoseInfeasibility(
  input: PlacementInput,
  resolved: ResolvedInputs,
): Promise<PlacementInfeasibleError> {
  const findings: Finding[] = [];
  const families: ConstraintFamily[] = ["cost-cap", "gpu-quota", "redundancy", "latency"];
  for (const family of families) {
    if (family === "cost-cap" && input.costCapPerHour === undefined) continue;
    const relaxedProblem = buildPlacementProblem(input, resolved, new Set([family]));
    const solution = await solveLp(writeLp(relaxedProblem, "cost"), input.solver);
    if (solution.status !== "optimal" && solution.status !== "time-limit") continue;
    const cost = objectiveValue(relaxedProblem, "cost", solution.values);
    findings.push({
      family,
      detail:
        family === "cost-cap"
          ? `cost-cap: the cheapest placement meeting every other constraint costs ${round(cost)}/h, above the cap of ${input.costCapPerHour}/h`
          : family === "gpu-quota"
            ? `gpu-quota: the models together need more GPUs than the quotas of regions within ${input.latencyTargetMs} ms allow`
            : family === "redundancy"
              ? `redundancy: the models cannot each run in ${input.minRegionsPerModel ?? 1}+ regions within the other limits`
              : `latency: a placement exists only with a latency target above ${input.latencyTargetMs} ms`,
    });
  }
  if (findings.length === 0) {
    return infeasible([
      {
        family: "capacity",
        detail:
          "capacity: quota, latency, redundancy and cost cap are jointly infeasible; no single one relaxed alone restores feasibility",
      },
    ]);
  }
  return infeasible(findings, "relaxing any one of these alone makes a placement exist");
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
