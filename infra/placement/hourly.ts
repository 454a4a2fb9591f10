/**
 * Hour-by-hour placement: the placement MILP of problem.ts over a horizon of hours, with the grid
 * intensity of every hour, a cost for starting replicas (a started replica loads its model for
 * `loadMinutes`, drawing idle power and billed while it serves nothing) and a minimum dwell (a started
 * replica runs for at least `minDwellHours`). Latency, quota, redundancy and cost-cap rows hold in
 * every block.
 *
 * Size control: hours are aggregated into blocks of `blockHours` (replicas change only at block
 * boundaries; a block is sized for its busiest hour and its emissions are summed hour by hour, which
 * stays linear because traffic inside a block is a fixed share of the block's peak). Longer horizons
 * are planned by a rolling horizon (planRolling): solve a window, commit its first hours, carry the
 * fleet and its recent starts into the next window.
 */
import { performance } from "node:perf_hooks";
import { solveLp } from "./highs-solver.js";
import { loadGcpRttTable } from "./rtt.js";
import {
  buildPlacementProblem,
  indexRoutes,
  type Objective,
  type PlacementProblem,
  type ResolvedInputs,
} from "./problem.js";
import { STRATEGY_OBJECTIVES } from "./place.js";
import { gpuPowerOf } from "./gpu-power.js";
import type { HourlyIntensity, LayeredIntensitySource } from "../carbon/intensity-source.js";
import {
  PlacementInfeasibleError,
  type PlacementInput,
  type PlacementStrategy,
  type ReplicaPlacement,
  type RouteAssignment,
} from "./types.js";

const HOUR_MS = 3_600_000;

export interface MoveCosts {
  /** Minutes a started replica spends loading its model before it serves; default 10. */
  loadMinutes: number;
  /** A started replica keeps running at least this many hours; default 3. */
  minDwellHours: number;
}

export const DEFAULT_MOVE_COSTS: MoveCosts = { loadMinutes: 10, minDwellHours: 3 };

export interface SlotCount {
  model: string;
  region: string;
  gpuProduct: string;
  replicas: number;
}

/** The fleet at the start of a horizon: what runs, and what was started in the hours before it. */
export interface FleetState {
  replicas: SlotCount[];
  /** Replicas started `hoursAgo` hours before the horizon (0 = in the hour just before it). */
  recentStarts?: Array<SlotCount & { hoursAgo: number }>;
}

export interface HourlyPlacementInput extends Omit<PlacementInput, "carbonSource" | "carbonWindow"> {
  /** Hours planned. */
  hours: number;
  /** Epoch ms of the first hour (reports only). */
  startMs?: number;
  /** gCO2/kWh of each candidate region for each hour (`hours` values); a region without one uses its gCO2PerKWh. */
  intensity: Readonly<Record<string, readonly number[]>>;
  /** Multiplier of each origin's demand for each hour; origins without one stay at 1. */
  demandShape?: Readonly<Record<string, readonly number[]>>;
  moves?: Partial<MoveCosts>;
  /** Hours per block (aggregation); default 1. */
  blockHours?: number;
  initial?: FleetState;
  /** Keep the first block's replicas for the whole horizon: a fixed placement, for comparison. */
  frozen?: boolean;
  /** Solve one model at a time when no quota can bind (exact; see planHourly); default true. */
  decompose?: boolean;
}

export interface HourReplica extends ReplicaPlacement {
  /** Replicas of this slot started at the beginning of this hour. */
  started: number;
  usableTokensPerSecondPerReplica: number;
  /** Energy of one replica drawing idle power for an hour, PUE included, kWh. */
  idleKWhPerReplicaHour: number;
  /** Extra energy per token/s served for an hour (the load-proportional part), kWh. */
  kWhPerTokenPerSecondHour: number;
  costPerReplicaHour: number;
}

export interface HourPlan {
  hour: number;
  startMs?: number;
  replicas: HourReplica[];
  routes: RouteAssignment[];
  /** Intensity the plan used for each region that holds replicas. */
  intensity: Record<string, number>;
  /** Where each of those figures came from (planFromSource only). */
  intensitySource?: Record<string, Pick<HourlyIntensity, "source" | "kind" | "fallbackReason">>;
  demandTokensPerSecond: number;
  emissionsGrams: number;
  /** Part of emissionsGrams spent loading started replicas. */
  moveEmissionsGrams: number;
  cost: number;
  moveCost: number;
  starts: number;
}

export interface HourlyTotals {
  emissionsGrams: number;
  moveEmissionsGrams: number;
  cost: number;
  moveCost: number;
  tokens: number;
  gCO2PerMillionTokens: number;
  meanRttMs: number;
  p95RttMs: number;
  starts: number;
  gpuHours: number;
}

export interface HourlyPlan {
  strategy: PlacementStrategy;
  hours: HourPlan[];
  totals: HourlyTotals;
  finalState: FleetState;
  blockHours: number;
  solveSeconds: number;
  solverStatus: string;
  /** Variables and rows of the MILP (last window for a rolling plan; summed over models when split). */
  size: { integers: number; continuous: number; rows: number };
  /** Solved one model at a time (`per-model`) or as one MILP (`joint`); for a rolling plan, the last window's. */
  decomposition?: "per-model" | "joint";
  /** Rolling plans: MILP windows solved, and how many were one joint MILP rather than one per model. */
  windows?: { total: number; joint: number };
}

interface Block {
  first: number;
  /** Hours in the block. */
  length: number;
}

/** Per demand and block: the busiest hour's tokens/s (capacity is sized for it) and Σ hours' share of it. */
interface BlockDemand {
  peak: number;
  shares: number[];
}

interface HourlyModel {
  problem: PlacementProblem;
  blocks: Block[];
  /** [demand][block] */
  demand: BlockDemand[][];
  /** [region][hour] */
  intensity: number[][];
  slotKWh: Array<{ idle: number; perToken: number }>;
  moves: MoveCosts;
  dwellBlocks: number;
  initialReplicas: number[];
  /** [slot][block]: replicas started before the horizon that must still run in that block. */
  carriedDwell: number[][];
}

const v = {
  n: (s: number, b: number) => `n${s}_${b}`,
  f: (r: number, b: number) => `f${r}_${b}`,
  a: (s: number, b: number) => `a${s}_${b}`,
  y: (m: number, g: number, b: number) => `y${m}_${g}_${b}`,
};

function slotKey(model: string, region: string, gpuProduct: string): string {
  return `${model}|${region}|${gpuProduct}`;
}

function validate(input: HourlyPlacementInput): void {
  const problems: string[] = [];
  if (!Number.isInteger(input.hours) || input.hours < 1 || input.hours > 24 * 31)
    problems.push("hours must be an integer in [1, 744]");
  const block = input.blockHours ?? 1;
  if (!Number.isInteger(block) || block < 1) problems.push("blockHours must be a positive integer");
  for (const region of input.regions) {
    const series = input.intensity[region.region];
    if (series === undefined) {
      if (region.gCO2PerKWh === undefined) problems.push(`no intensity for ${region.region}`);
    } else if (series.length < input.hours || series.slice(0, input.hours).some((x) => !(x >= 0))) {
      problems.push(`intensity of ${region.region} needs ${input.hours} non-negative values`);
    }
  }
  for (const [origin, shape] of Object.entries(input.demandShape ?? {})) {
    if (shape.length < input.hours || shape.slice(0, input.hours).some((x) => !(x >= 0)))
      problems.push(`demandShape of ${origin} needs ${input.hours} non-negative values`);
  }
  const moves = { ...DEFAULT_MOVE_COSTS, ...input.moves };
  if (!(moves.loadMinutes >= 0) || !(moves.minDwellHours >= 0))
    problems.push("move costs must be non-negative");
  if (problems.length > 0) throw new Error(`invalid hourly placement input: ${problems.join("; ")}`);
}

function buildModel(input: HourlyPlacementInput, rttMs: ResolvedInputs["rttMs"]): HourlyModel {
  validate(input);
  const hours = input.hours;
  const blockHours = input.blockHours ?? 1;
  const moves: MoveCosts = { ...DEFAULT_MOVE_COSTS, ...input.moves };
  const factor = (origin: string, hour: number): number => input.demandShape?.[origin]?.[hour] ?? 1;
  // The structure (slots, routes, bounds) is the single-period problem at each origin's peak demand,
  // with unit intensity: a slot's emissions are linear in the intensity, applied per hour below.
  const peakInput: PlacementInput = {
    ...input,
    models: input.models.map((m) => ({
      ...m,
      demand: m.demand.map((d) => {
        let peak = 0;
        for (let h = 0; h < hours; h++) peak = Math.max(peak, factor(d.origin, h));
        return {
          origin: d.origin,
          ...(d.tokensPerSecond !== undefined ? { tokensPerSecond: d.tokensPerSecond * peak } : {}),
          ...(d.requestsPerSecond !== undefined ? { requestsPerSecond: d.requestsPerSecond * peak } : {}),
        };
      }),
    })),
  };
  const problem = buildPlacementProblem(peakInput, { intensities: input.regions.map(() => 1), rttMs });
  const blocks: Block[] = [];
  for (let first = 0; first < hours; first += blockHours)
    blocks.push({ first, length: Math.min(blockHours, hours - first) });
  const peakFactorOfDemand = problem.demands.map((d) => {
    let peak = 0;
    for (let h = 0; h < hours; h++) peak = Math.max(peak, factor(d.origin, h));
    return peak;
  });
  const demand = problem.demands.map((d) =>
    blocks.map((block) => {
      const perHour: number[] = [];
      for (let h = block.first; h < block.first + block.length; h++)
        perHour.push(
          ((peakFactorOfDemand[d.index] ?? 0) > 0
            ? factor(d.origin, h) / (peakFactorOfDemand[d.index] ?? 1)
            : 0) * d.tokensPerSecond,
        );
      const peak = Math.max(0, ...perHour);
      return { peak, shares: perHour.map((x) => (peak > 0 ? x / peak : 0)) };
    }),
  );
  const intensity = input.regions.map((region) => {
    const series = input.intensity[region.region];
    return Array.from({ length: hours }, (_, h) => series?.[h] ?? region.gCO2PerKWh ?? 0);
  });
  const defaultPue = input.defaultPue ?? 1.1;
  const slotKWh = problem.slots.map((s) => {
    const pue = input.regions[s.region]?.pue ?? defaultPue;
    const power = gpuPowerOf(s.gpuProduct, input.gpuPower);
    const shape = input.models[s.model]?.replicaShapes.find((x) => x.gpuProduct === s.gpuProduct);
    return {
      idle: (s.gpusPerReplica * power.idlePowerW * pue) / 1000,
      perToken:
        (s.gpusPerReplica * (power.boardPowerW - power.idlePowerW) * pue) /
        1000 /
        (shape?.tokensPerSecondPerReplica ?? 1),
    };
  });
  const dwellBlocks = Math.ceil(moves.minDwellHours / blockHours);
  const bySlotKey = new Map(
    problem.slots.map((s) => [
      slotKey(problem.models[s.model] ?? "", problem.regions[s.region] ?? "", s.gpuProduct),
      s.index,
    ]),
  );
  const initialReplicas = problem.slots.map(() => 0);
  for (const r of input.initial?.replicas ?? []) {
    const index = bySlotKey.get(slotKey(r.model, r.region, r.gpuProduct));
    if (index !== undefined) initialReplicas[index] = (initialReplicas[index] ?? 0) + r.replicas;
  }
  const carriedDwell = problem.slots.map(() => blocks.map(() => 0));
  for (const r of input.initial?.recentStarts ?? []) {
    const index = bySlotKey.get(slotKey(r.model, r.region, r.gpuProduct));
    if (index === undefined) continue;
    blocks.forEach((block, b) => {
      // Started hoursAgo+1 hours before the horizon; it must run while its age is below the dwell.
      if (r.hoursAgo + 1 + block.first < moves.minDwellHours) {
        const row = carriedDwell[index] as number[];
        row[b] = (row[b] ?? 0) + r.replicas;
      }
    });
  }
  return { problem, blocks, demand, intensity, slotKWh, moves, dwellBlocks, initialReplicas, carriedDwell };
}

function fmt(value: number): string {
  if (!Number.isFinite(value)) throw new Error(`non-finite coefficient ${value}`);
  return String(Number(value.toPrecision(12)));
}

function sum(terms: Array<[string, number]>): string {
  const kept = terms.filter(([, c]) => c !== 0);
  if (kept.length === 0) return "0 dummy";
  const parts = kept.map(([name, c], i) =>
    `${c < 0 ? "-" : i === 0 ? "" : "+"} ${fmt(Math.abs(c))} ${name}`.trim(),
  );
  const lines: string[] = [];
  for (let i = 0; i < parts.length; i += 8) lines.push(parts.slice(i, i + 8).join(" "));
  return lines.join("\n   ");
}

/** Objective terms of the horizon: hour-by-hour sums within each block, plus the cost of starts. */
function objectiveTerms(model: HourlyModel, objective: Objective): Array<[string, number]> {
  const { problem, blocks, demand, intensity, slotKWh, moves } = model;
  const loadHours = moves.loadMinutes / 60;
  const terms: Array<[string, number]> = [];
  blocks.forEach((block, b) => {
    for (const s of problem.slots) {
      const intensities = intensity[s.region] ?? [];
      if (objective === "emissions") {
        let grams = 0;
        for (let h = block.first; h < block.first + block.length; h++)
          grams += (slotKWh[s.index]?.idle ?? 0) * (intensities[h] ?? 0);
        terms.push([v.n(s.index, b), grams]);
        terms.push([
          v.a(s.index, b),
          loadHours * (slotKWh[s.index]?.idle ?? 0) * (intensities[block.first] ?? 0),
        ]);
      } else if (objective === "cost") {
        terms.push([v.n(s.index, b), s.costPerHour * block.length]);
        terms.push([v.a(s.index, b), s.costPerHour * loadHours]);
      }
    }
    if (objective === "cost") return;
    for (const r of problem.routes) {
      const slot = problem.slots[r.slot];
      const d = demand[r.demand]?.[b];
      if (slot === undefined || d === undefined) continue;
      let coefficient = 0;
      d.shares.forEach((share, i) => {
        coefficient +=
          objective === "emissions"
            ? share * (slotKWh[slot.index]?.perToken ?? 0) * (intensity[slot.region]?.[block.first + i] ?? 0)
            : share * r.rttMs;
      });
      terms.push([v.f(r.index, b), coefficient]);
    }
  });
  return terms;
}

function objectiveBound(model: HourlyModel, objective: Objective): number {
  // Loose: every slot at its bound for every block, every flow at its block peak.
  let bound = 0;
  const maxByVar = new Map<string, number>();
  model.blocks.forEach((_, b) => {
    for (const s of model.problem.slots) {
      maxByVar.set(v.n(s.index, b), s.maxReplicas);
      maxByVar.set(v.a(s.index, b), s.maxReplicas);
    }
    for (const r of model.problem.routes)
      maxByVar.set(v.f(r.index, b), model.demand[r.demand]?.[b]?.peak ?? 0);
  });
  for (const [name, c] of objectiveTerms(model, objective)) bound += Math.abs(c) * (maxByVar.get(name) ?? 0);
  return bound;
}

function writeHourlyLp(
  model: HourlyModel,
  weighted: ReadonlyArray<readonly [Objective, number]>,
  frozen: boolean,
): { lp: string; size: HourlyPlan["size"] } {
  const { problem, blocks, demand } = model;
  const rows: string[] = [];
  const { routesByDemand, routesBySlot } = indexRoutes(problem);
  const uses = new Map<string, { m: number; g: number; slots: number[] }>();
  for (const s of problem.slots) {
    const key = `${s.model}_${s.region}`;
    const entry = uses.get(key) ?? { m: s.model, g: s.region, slots: [] };
    entry.slots.push(s.index);
    uses.set(key, entry);
  }
  const indicators: string[] = [];
  let continuous = 0;
  blocks.forEach((block, b) => {
    for (const d of problem.demands) {
      const peak = demand[d.index]?.[b]?.peak ?? 0;
      const routes = routesByDemand.get(d.index) ?? [];
      continuous += routes.length;
      if (routes.length === 0) {
        if (peak > 0) rows.push(` dem${d.index}_${b}: 0 dummy = ${fmt(peak)}`);
        continue;
      }
      rows.push(` dem${d.index}_${b}: ${sum(routes.map((r) => [v.f(r, b), 1]))} = ${fmt(peak)}`);
    }
    for (const s of problem.slots) {
      const routes = routesBySlot.get(s.index) ?? [];
      if (routes.length > 0) {
        rows.push(
          ` cap${s.index}_${b}: ${sum([...routes.map((r): [string, number] => [v.f(r, b), 1]), [v.n(s.index, b), -s.usableTokensPerSecond]])} <= 0`,
        );
      }
      // Route by route, f <= peak · n: a route carries traffic only to a slot with a replica. Implied
      // by the integers (with the capacity row) but not by the LP relaxation when one origin's demand
      // is less than a replica serves: the facility-location tightening that makes the relaxation
      // round replicas up instead of sharing them out fractionally.
      for (const r of routes) {
        const peak = demand[problem.routes[r]?.demand ?? -1]?.[b]?.peak ?? 0;
        if (peak > 0 && peak < s.usableTokensPerSecond)
          rows.push(` ds${r}_${b}: ${v.f(r, b)} - ${fmt(peak)} ${v.n(s.index, b)} <= 0`);
      }
      // Starts: a >= n(b) - n(b-1); before the horizon, the initial fleet.
      const previous = b === 0 ? (model.initialReplicas[s.index] ?? 0) : undefined;
      if (previous === undefined)
        rows.push(
          ` st${s.index}_${b}: ${v.a(s.index, b)} - ${v.n(s.index, b)} + ${v.n(s.index, b - 1)} >= 0`,
        );
      else rows.push(` st${s.index}_${b}: ${v.a(s.index, b)} - ${v.n(s.index, b)} >= ${fmt(-previous)}`);
      // Dwell: whatever started in the last dwellBlocks blocks still runs.
      const recent: Array<[string, number]> = [[v.n(s.index, b), 1]];
      for (let k = Math.max(0, b - model.dwellBlocks + 1); k <= b; k++) recent.push([v.a(s.index, k), -1]);
      const carried = model.carriedDwell[s.index]?.[b] ?? 0;
      if (recent.length > 1 || carried > 0)
        rows.push(` dw${s.index}_${b}: ${sum(recent)} >= ${fmt(carried)}`);
      if (frozen && b > 0) rows.push(` fz${s.index}_${b}: ${v.n(s.index, b)} - ${v.n(s.index, 0)} = 0`);
    }
    if (!problem.relaxed.has("gpu-quota")) {
      problem.quotas.forEach((q, i) => {
        rows.push(
          ` q${i}_${b}: ${sum(q.slots.map((s): [string, number] => [v.n(s, b), problem.slots[s]?.gpusPerReplica ?? 0]))} <= ${fmt(q.quotaGpus)}`,
        );
      });
    }
    // Redundancy: y (in [0, 1]) may be positive only where the model has a replica. As replica counts
    // are integers, Σ y >= k forces k regions with at least one replica; y needs no integrality and
    // no big-M link (it appears in no objective).
    for (const use of uses.values()) {
      const y = v.y(use.m, use.g, b);
      indicators.push(y);
      rows.push(` u${use.m}_${use.g}_${b}: ${y} ${use.slots.map((s) => `- ${v.n(s, b)}`).join(" ")} <= 0`);
    }
    problem.models.forEach((_, m) => {
      const need = problem.minRegions[m] ?? 1;
      const ys = [...uses.values()]
        .filter((u) => u.m === m)
        .map((u): [string, number] => [v.y(m, u.g, b), 1]);
      if (ys.length === 0) {
        if (need > 0) rows.push(` red${m}_${b}: 0 dummy >= ${need}`);
      } else rows.push(` red${m}_${b}: ${sum(ys)} >= ${need}`);
    });
    if (problem.costCapPerHour !== undefined && problem.slots.length > 0) {
      rows.push(
        ` cc${b}: ${sum(problem.slots.map((s): [string, number] => [v.n(s.index, b), s.costPerHour]))} <= ${fmt(problem.costCapPerHour)}`,
      );
    }
  });
  const objective = new Map<string, number>();
  for (const [name, weight] of weighted) {
    for (const [variable, c] of objectiveTerms(model, name))
      objective.set(variable, (objective.get(variable) ?? 0) + weight * c);
  }
  const bounds: string[] = [" dummy = 0", ...indicators.map((y) => ` 0 <= ${y} <= 1`)];
  const generals: string[] = [];
  blocks.forEach((_, b) => {
    for (const s of problem.slots) {
      bounds.push(` 0 <= ${v.n(s.index, b)} <= ${s.maxReplicas}`);
      bounds.push(` 0 <= ${v.a(s.index, b)} <= ${s.maxReplicas}`);
      generals.push(v.n(s.index, b));
    }
  });
  const chunk = (names: string[]): string[] => {
    const lines: string[] = [];
    for (let i = 0; i < names.length; i += 16) lines.push(" " + names.slice(i, i + 16).join(" "));
    return lines;
  };
  const lp = [
    "Minimize",
    ` obj: ${sum([...objective])}`,
    "Subject To",
    ...rows,
    "Bounds",
    ...bounds,
    ...(generals.length > 0 ? ["Generals", ...chunk(generals)] : []),
    "End",
  ].join("\n");
  // Starts need no integrality: n is integer and a >= n(b) - n(b-1) with a minimised.
  return {
    lp: lp + "\n",
    size: {
      integers: generals.length,
      continuous: continuous + generals.length + indicators.length,
      rows: rows.length,
    },
  };
}

/** Reads the solution back hour by hour (traffic inside a block is its share of the block's peak). */
function readPlan(
  model: HourlyModel,
  input: HourlyPlacementInput,
  values: ReadonlyMap<string, number>,
): { hours: HourPlan[]; finalState: FleetState } {
  const { problem, blocks, demand, intensity, slotKWh, moves } = model;
  const loadHours = moves.loadMinutes / 60;
  const hours: HourPlan[] = [];
  const counts = problem.slots.map(() => blocks.map(() => 0));
  blocks.forEach((_, b) => {
    for (const s of problem.slots)
      (counts[s.index] as number[])[b] = Math.max(0, Math.round(values.get(v.n(s.index, b)) ?? 0));
  });
  blocks.forEach((block, b) => {
    for (let i = 0; i < block.length; i++) {
      const hour = block.first + i;
      const replicas: HourReplica[] = [];
      const used: Record<string, number> = {};
      let emissions = 0;
      let moveEmissions = 0;
      let cost = 0;
      let moveCost = 0;
      let starts = 0;
      for (const s of problem.slots) {
        const count = counts[s.index]?.[b] ?? 0;
        const before = b === 0 ? (model.initialReplicas[s.index] ?? 0) : (counts[s.index]?.[b - 1] ?? 0);
        const started = i === 0 ? Math.max(0, count - before) : 0;
        if (count === 0) continue;
        const region = problem.regions[s.region] ?? "";
        const g = intensity[s.region]?.[hour] ?? 0;
        used[region] = g;
        const kwh = slotKWh[s.index] ?? { idle: 0, perToken: 0 };
        emissions += count * kwh.idle * g;
        cost += count * s.costPerHour;
        moveEmissions += started * loadHours * kwh.idle * g;
        moveCost += started * loadHours * s.costPerHour;
        starts += started;
        replicas.push({
          model: problem.models[s.model] ?? "",
          region,
          gpuProduct: s.gpuProduct,
          replicas: count,
          gpus: count * s.gpusPerReplica,
          started,
          usableTokensPerSecondPerReplica: s.usableTokensPerSecond,
          idleKWhPerReplicaHour: kwh.idle,
          kWhPerTokenPerSecondHour: kwh.perToken,
          costPerReplicaHour: s.costPerHour,
        });
      }
      const routes: RouteAssignment[] = [];
      let tokens = 0;
      for (const r of problem.routes) {
        const d = problem.demands[r.demand];
        const slot = problem.slots[r.slot];
        const share = demand[r.demand]?.[b]?.shares[i] ?? 0;
        const flow = (values.get(v.f(r.index, b)) ?? 0) * share;
        if (d === undefined || slot === undefined || flow <= 1e-9) continue;
        emissions += flow * (slotKWh[slot.index]?.perToken ?? 0) * (intensity[slot.region]?.[hour] ?? 0);
        routes.push({
          model: problem.models[d.model] ?? "",
          origin: d.origin,
          region: problem.regions[slot.region] ?? "",
          gpuProduct: slot.gpuProduct,
          tokensPerSecond: flow,
          rttMs: r.rttMs,
        });
      }
      for (const d of problem.demands)
        tokens += (demand[d.index]?.[b]?.peak ?? 0) * (demand[d.index]?.[b]?.shares[i] ?? 0);
      hours.push({
        hour,
        ...(input.startMs !== undefined ? { startMs: input.startMs + hour * HOUR_MS } : {}),
        replicas,
        routes,
        intensity: used,
        demandTokensPerSecond: tokens,
        emissionsGrams: emissions + moveEmissions,
        moveEmissionsGrams: moveEmissions,
        cost: cost + moveCost,
        moveCost,
        starts,
      });
    }
  });
  const last = blocks.length - 1;
  const finalState: FleetState = {
    replicas: problem.slots.flatMap((s) => {
      const count = counts[s.index]?.[last] ?? 0;
      return count > 0
        ? [
            {
              model: problem.models[s.model] ?? "",
              region: problem.regions[s.region] ?? "",
              gpuProduct: s.gpuProduct,
              replicas: count,
            },
          ]
        : [];
    }),
    recentStarts: hours.flatMap((h) =>
      h.replicas
        .filter((r) => r.started > 0 && input.hours - 1 - h.hour < moves.minDwellHours)
        .map((r) => ({
          model: r.model,
          region: r.region,
          gpuProduct: r.gpuProduct,
          replicas: r.started,
          hoursAgo: input.hours - 1 - h.hour,
        })),
    ),
  };
  return { hours, finalState };
}

/** Totals over hours: grams, $, tokens, token-weighted mean and p95 RTT. */
export function hourlyTotals(hours: readonly HourPlan[]): HourlyTotals {
  let emissions = 0;
  let moveEmissions = 0;
  let cost = 0;
  let moveCost = 0;
  let tokensPerSecondHours = 0;
  let starts = 0;
  let gpuHours = 0;
  const rtts: Array<{ rtt: number; weight: number }> = [];
  for (const h of hours) {
    emissions += h.emissionsGrams;
    moveEmissions += h.moveEmissionsGrams;
    cost += h.cost;
    moveCost += h.moveCost;
    tokensPerSecondHours += h.demandTokensPerSecond;
    starts += h.starts;
    for (const r of h.replicas) gpuHours += r.gpus;
    for (const r of h.routes) rtts.push({ rtt: r.rttMs, weight: r.tokensPerSecond });
  }
  const tokens = tokensPerSecondHours * 3600;
  return {
    emissionsGrams: emissions,
    moveEmissionsGrams: moveEmissions,
    cost,
    moveCost,
    tokens,
    gCO2PerMillionTokens: tokens > 0 ? (emissions / tokens) * 1e6 : 0,
    ...rttStats(rtts),
    starts,
    gpuHours,
  };
}

/** Weighted mean and 95th percentile of RTTs. */
export function rttStats(samples: ReadonlyArray<{ rtt: number; weight: number }>): {
  meanRttMs: number;
  p95RttMs: number;
} {
  const total = samples.reduce((s, x) => s + x.weight, 0);
  if (total <= 0) return { meanRttMs: 0, p95RttMs: 0 };
  const mean = samples.reduce((s, x) => s + x.rtt * x.weight, 0) / total;
  const sorted = [...samples].sort((a, b) => a.rtt - b.rtt);
  let acc = 0;
  let p95 = sorted.at(-1)?.rtt ?? 0;
  for (const x of sorted) {
    acc += x.weight;
    if (acc >= 0.95 * total - 1e-9) {
      p95 = x.rtt;
      break;
    }
  }
  return { meanRttMs: mean, p95RttMs: p95 };
}

const TIE_BREAK_SCALE = 1e-9;

/**
 * Plans every hour of the horizon (blocks of `blockHours`). Throws PlacementInfeasibleError when
 * some block has no placement under the constraints.
 *
 * Models share nothing but GPU quotas and the cost cap. When no quota can bind (every model at the
 * most replicas it could ever use still fits every quota together) and there is no cost cap, the
 * MILP falls apart into one MILP per model, solved one after the other and merged: exactly the same
 * optimum, each part within the MIP gap of its own optimum so the sum within the gap of the whole,
 * and five MILPs of a fifth of the size cost far less than one (branch and bound grows faster than
 * linearly). Otherwise, as when quotas bind in the clean regions, one MILP.
 */
export async function planHourly(
  input: HourlyPlacementInput,
  strategy: PlacementStrategy = "carbon-aware",
): Promise<HourlyPlan> {
  if (input.models.length < 2 || input.costCapPerHour !== undefined || input.decompose === false)
    return planHourlyJoint(input, strategy);
  const rtt = input.rtt ?? loadGcpRttTable();
  const { problem } = buildModel(input, (origin, region) => rtt.rttMs(origin, region));
  const quotasCannotBind =
    problem.relaxed.has("gpu-quota") ||
    problem.quotas.every(
      (q) => q.slots.reduce((sum, s) => sum + (problem.slots[s]?.maxReplicas ?? 0) * (problem.slots[s]?.gpusPerReplica ?? 0), 0) <= q.quotaGpus,
    );
  if (!quotasCannotBind) return planHourlyJoint(input, strategy);
  const started = performance.now();
  const parts: HourlyPlan[] = [];
  for (const model of input.models) {
    const own = (r: SlotCount): boolean => r.model === model.name;
    parts.push(
      await planHourlyJoint(
        {
          ...input,
          models: [model],
          ...(input.initial
            ? {
                initial: {
                  replicas: input.initial.replicas.filter(own),
                  ...(input.initial.recentStarts ? { recentStarts: input.initial.recentStarts.filter(own) } : {}),
                },
              }
            : {}),
        },
        strategy,
      ),
    );
  }
  const merged = mergePlans(parts, strategy, input.blockHours ?? 1);
  const excess = quotaExcess(input, merged.hours);
  if (excess !== undefined)
    throw new Error(
      `per-model plans exceed the ${excess.gpuProduct} quota of ${excess.region} in hour ${excess.hour} (${excess.gpus} > ${excess.quotaGpus} GPUs): the decomposition check is wrong`,
    );
  return { ...merged, solveSeconds: (performance.now() - started) / 1000 };
}

/** The first (region, product, hour) whose replicas draw more GPUs than the quota there, if any. */
export function quotaExcess(
  input: Pick<PlacementInput, "regions">,
  hours: readonly HourPlan[],
): { region: string; gpuProduct: string; hour: number; gpus: number; quotaGpus: number } | undefined {
  const quota = new Map<string, number>();
  for (const region of input.regions)
    for (const offer of region.offers)
      quota.set(`${region.region}|${offer.gpuProduct}`, (quota.get(`${region.region}|${offer.gpuProduct}`) ?? 0) + offer.quotaGpus);
  for (const h of hours) {
    const used = new Map<string, number>();
    for (const r of h.replicas) used.set(`${r.region}|${r.gpuProduct}`, (used.get(`${r.region}|${r.gpuProduct}`) ?? 0) + r.gpus);
    for (const [key, gpus] of used) {
      const limit = quota.get(key) ?? 0;
      if (gpus > limit) {
        const [region = "", gpuProduct = ""] = key.split("|");
        return { region, gpuProduct, hour: h.hour, gpus, quotaGpus: limit };
      }
    }
  }
  return undefined;
}

/** Hour-by-hour union of per-model plans of the same horizon. */
function mergePlans(parts: readonly HourlyPlan[], strategy: PlacementStrategy, blockHours: number): HourlyPlan {
  const first = parts[0];
  if (first === undefined) throw new Error("mergePlans needs at least one plan");
  const hours: HourPlan[] = first.hours.map((h, i) => {
    const all = parts.map((p) => p.hours[i] as HourPlan);
    return {
      hour: h.hour,
      ...(h.startMs !== undefined ? { startMs: h.startMs } : {}),
      replicas: all.flatMap((x) => x.replicas),
      routes: all.flatMap((x) => x.routes),
      intensity: Object.assign({}, ...all.map((x) => x.intensity)) as Record<string, number>,
      demandTokensPerSecond: all.reduce((s, x) => s + x.demandTokensPerSecond, 0),
      emissionsGrams: all.reduce((s, x) => s + x.emissionsGrams, 0),
      moveEmissionsGrams: all.reduce((s, x) => s + x.moveEmissionsGrams, 0),
      cost: all.reduce((s, x) => s + x.cost, 0),
      moveCost: all.reduce((s, x) => s + x.moveCost, 0),
      starts: all.reduce((s, x) => s + x.starts, 0),
    };
  });
  const statuses = parts.map((p) => p.solverStatus);
  return {
    strategy,
    hours,
    totals: hourlyTotals(hours),
    finalState: {
      replicas: parts.flatMap((p) => p.finalState.replicas),
      recentStarts: parts.flatMap((p) => p.finalState.recentStarts ?? []),
    },
    blockHours,
    solveSeconds: parts.reduce((s, p) => s + p.solveSeconds, 0),
    solverStatus: statuses.find((x) => x !== "Optimal") ?? "Optimal",
    size: {
      integers: parts.reduce((s, p) => s + p.size.integers, 0),
      continuous: parts.reduce((s, p) => s + p.size.continuous, 0),
      rows: parts.reduce((s, p) => s + p.size.rows, 0),
    },
    decomposition: "per-model",
  };
}

/** Every hour of the horizon in one MILP (blocks of `blockHours`). */
async function planHourlyJoint(
  input: HourlyPlacementInput,
  strategy: PlacementStrategy,
): Promise<HourlyPlan> {
  const started = performance.now();
  const rtt = input.rtt ?? loadGcpRttTable();
  const model = buildModel(input, (origin, region) => rtt.rttMs(origin, region));
  const [primary, secondary] = STRATEGY_OBJECTIVES[strategy];
  const weight =
    (TIE_BREAK_SCALE * Math.max(1, objectiveBound(model, primary))) /
    Math.max(1, objectiveBound(model, secondary));
  const { lp, size } = writeHourlyLp(
    model,
    [
      [primary, 1],
      [secondary, weight],
    ],
    input.frozen === true,
  );
  const solution = await solveLp(lp, input.solver);
  if (solution.status === "infeasible") {
    throw new PlacementInfeasibleError(
      `no feasible hourly placement over ${input.hours} h: some hour's demand, redundancy or quota cannot be met within ${input.latencyTargetMs} ms (check that hour with placeFleet for the binding constraint)`,
      ["capacity"],
      [],
    );
  }
  if (solution.status === "error")
    throw new Error(`hourly placement solver failed: HiGHS status "${solution.solverStatus}"`);
  const { hours, finalState } = readPlan(model, input, solution.values);
  return {
    strategy,
    hours,
    totals: hourlyTotals(hours),
    finalState,
    blockHours: input.blockHours ?? 1,
    solveSeconds: (performance.now() - started) / 1000,
    solverStatus: solution.solverStatus,
    size,
    decomposition: "joint",
  };
}

export interface RollingOptions {
  /** Hours each solve looks ahead; default 24. */
  windowHours?: number;
  /** Hours committed from each solve before re-planning; default 6. */
  commitHours?: number;
  /**
   * Intensity the planner sees for the window starting at `hour` (e.g. a fresh forecast each time);
   * default the input's series.
   */
  intensityAt?: (hour: number, windowHours: number) => Promise<Readonly<Record<string, readonly number[]>>>;
}

/**
 * Rolling horizon: solve `windowHours`, keep the first `commitHours`, carry the fleet (and its recent
 * starts, for the dwell) into the next window. Each window can see a newer forecast.
 */
export async function planRolling(
  input: HourlyPlacementInput,
  strategy: PlacementStrategy = "carbon-aware",
  options: RollingOptions = {},
): Promise<HourlyPlan> {
  const started = performance.now();
  const window = options.windowHours ?? 24;
  const commit = Math.min(options.commitHours ?? 6, window);
  const hours: HourPlan[] = [];
  let state = input.initial;
  let status = "Optimal";
  let size: HourlyPlan["size"] = { integers: 0, continuous: 0, rows: 0 };
  let decomposition: HourlyPlan["decomposition"];
  const windows = { total: 0, joint: 0 };
  for (let first = 0; first < input.hours; first += commit) {
    const length = Math.min(window, input.hours - first);
    const keep = Math.min(commit, length);
    const full = options.intensityAt
      ? await options.intensityAt(first, length)
      : sliceSeries(input.intensity, first, length);
    const windowInput: HourlyPlacementInput = {
      ...input,
      hours: length,
      ...(input.startMs !== undefined ? { startMs: input.startMs + first * HOUR_MS } : {}),
      intensity: full,
      ...(input.demandShape ? { demandShape: sliceSeries(input.demandShape, first, length) } : {}),
      ...(state ? { initial: state } : {}),
    };
    const plan = await planHourly(windowInput, strategy);
    if (plan.solverStatus !== "Optimal") status = plan.solverStatus;
    size = plan.size;
    decomposition = plan.decomposition;
    windows.total += 1;
    if (plan.decomposition === "joint" && input.models.length > 1) windows.joint += 1;
    const kept = plan.hours.slice(0, keep).map((h) => ({ ...h, hour: h.hour + first }));
    hours.push(...kept);
    state = stateAfter(kept, input.moves?.minDwellHours ?? DEFAULT_MOVE_COSTS.minDwellHours, first + keep);
  }
  return {
    strategy,
    hours,
    totals: hourlyTotals(hours),
    finalState: state ?? { replicas: [] },
    blockHours: input.blockHours ?? 1,
    solveSeconds: (performance.now() - started) / 1000,
    solverStatus: status,
    size,
    ...(decomposition ? { decomposition } : {}),
    windows,
  };
}

function sliceSeries(
  series: Readonly<Record<string, readonly number[]>>,
  first: number,
  length: number,
): Record<string, number[]> {
  return Object.fromEntries(
    Object.entries(series).map(([k, values]) => [k, values.slice(first, first + length)]),
  );
}

/** The fleet after the given hours: the last hour's replicas and the starts still inside the dwell. */
export function stateAfter(hours: readonly HourPlan[], minDwellHours: number, endHour: number): FleetState {
  const last = hours.at(-1);
  return {
    replicas: (last?.replicas ?? []).map((r) => ({
      model: r.model,
      region: r.region,
      gpuProduct: r.gpuProduct,
      replicas: r.replicas,
    })),
    recentStarts: hours.flatMap((h) =>
      h.replicas
        .filter((r) => r.started > 0 && endHour - 1 - h.hour < minDwellHours)
        .map((r) => ({
          model: r.model,
          region: r.region,
          gpuProduct: r.gpuProduct,
          replicas: r.started,
          hoursAgo: endHour - 1 - h.hour,
        })),
    ),
  };
}

/**
 * Plans `input.hours` hours from `startMs` with intensities from the intensity source, rolling: each
 * window asks the source again (the live forecast as it is then; history or yearly figures for hours
 * the live source cannot give), so a source that fails mid-horizon leaves no hour unplanned.
 */
export async function planFromSource(
  input: Omit<HourlyPlacementInput, "intensity" | "startMs">,
  source: LayeredIntensitySource,
  startMs: number,
  strategy: PlacementStrategy = "carbon-aware",
  options: Omit<RollingOptions, "intensityAt"> & { beforeWindow?: (hour: number) => void } = {},
): Promise<HourlyPlan> {
  const regions = input.regions.map((r) => r.region);
  const provenance = new Map<number, Record<string, HourlyIntensity>>();
  const plan = await planRolling({ ...input, startMs, intensity: {} }, strategy, {
    ...options,
    intensityAt: async (hour, length) => {
      options.beforeWindow?.(hour);
      const { intensity, provenance: detail } = await source.seriesFor(
        regions,
        startMs + hour * HOUR_MS,
        length,
      );
      for (let i = 0; i < length; i++) {
        provenance.set(
          hour + i,
          Object.fromEntries(regions.map((r) => [r, detail[r]?.[i] as HourlyIntensity])),
        );
      }
      return intensity;
    },
  });
  for (const h of plan.hours) {
    const detail = provenance.get(h.hour);
    if (detail === undefined) continue;
    h.intensitySource = Object.fromEntries(
      Object.keys(h.intensity).map((region) => {
        const d = detail[region];
        return [
          region,
          {
            source: d?.source ?? "unknown",
            kind: d?.kind ?? "yearly-average",
            ...(d?.fallbackReason ? { fallbackReason: d.fallbackReason } : {}),
          },
        ];
      }),
    );
  }
  return plan;
}
