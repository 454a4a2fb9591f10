import { gpuPowerOf, type GpuPowerSpec } from "./gpu-power.js";
import type { ConstraintFamily, ModelDemand, PlacementInput } from "./types.js";

/** A (model, region, GPU product) combination that may hold replicas: one integer variable. */
export interface Slot {
  index: number;
  model: number;
  region: number;
  gpuProduct: string;
  gpusPerReplica: number;
  /** Usable throughput of one replica (shape throughput × max utilization). */
  usableTokensPerSecond: number;
  costPerHour: number;
  /** Emissions of one replica drawing idle power, g/h. */
  idleGramsPerHour: number;
  /** Extra emissions per token/s served (load-proportional part of the power), g/h per token/s. */
  gramsPerHourPerTokenPerSecond: number;
  maxReplicas: number;
}

/** Demand of one model from one origin that a slot may serve: one continuous variable. */
export interface Route {
  index: number;
  demand: number;
  slot: number;
  rttMs: number;
}

export interface Demand {
  index: number;
  model: number;
  origin: string;
  tokensPerSecond: number;
}

/** The placement problem with every figure resolved to numbers, ready to write as a MILP. */
export interface PlacementProblem {
  models: string[];
  regions: string[];
  demands: Demand[];
  slots: Slot[];
  routes: Route[];
  minRegions: number[];
  /** Per (region, product): the GPU quota and the slots drawing on it. */
  quotas: Array<{ region: number; gpuProduct: string; quotaGpus: number; slots: number[] }>;
  costCapPerHour: number | undefined;
  relaxed: ReadonlySet<ConstraintFamily>;
}

export interface ResolvedInputs {
  /** gCO2/kWh per candidate region, same order as input.regions. */
  intensities: number[];
  rttMs: (origin: string, region: string) => number | undefined;
}

export function demandTokensPerSecond(
  model: ModelDemand,
): Array<{ origin: string; tokensPerSecond: number }> {
  return model.demand.map((d) => {
    if (d.tokensPerSecond !== undefined) return { origin: d.origin, tokensPerSecond: d.tokensPerSecond };
    if (d.requestsPerSecond !== undefined) {
      if (model.tokensPerRequest === undefined) {
        throw new Error(
          `model ${model.name}: demand from ${d.origin} is in requests/s but tokensPerRequest is not set`,
        );
      }
      return { origin: d.origin, tokensPerSecond: d.requestsPerSecond * model.tokensPerRequest };
    }
    throw new Error(
      `model ${model.name}: demand from ${d.origin} has neither tokensPerSecond nor requestsPerSecond`,
    );
  });
}

/**
 * Turns the input into variables. Routes exist only within the latency target (unless latency is
 * relaxed); a model gets slots only in regions some of its users can reach, so redundancy counts
 * regions that could take over its traffic.
 */
export function buildPlacementProblem(
  input: PlacementInput,
  resolved: ResolvedInputs,
  relaxed: ReadonlySet<ConstraintFamily> = new Set(),
): PlacementProblem {
  validateInput(input);
  const maxUtilization = input.maxUtilization ?? 1;
  const defaultPue = input.defaultPue ?? 1.1;
  const demands: Demand[] = [];
  const slots: Slot[] = [];
  const routes: Route[] = [];
  const quotas = new Map<
    string,
    { region: number; gpuProduct: string; quotaGpus: number; slots: number[] }
  >();

  input.models.forEach((model, modelIndex) => {
    const firstDemand = demands.length;
    const modelDemands: Demand[] = demandTokensPerSecond(model)
      .filter((d) => d.tokensPerSecond > 0)
      .map((d, i) => ({
        index: firstDemand + i,
        model: modelIndex,
        origin: d.origin,
        tokensPerSecond: d.tokensPerSecond,
      }));
    const totalDemand = modelDemands.reduce((sum, d) => sum + d.tokensPerSecond, 0);
    demands.push(...modelDemands);

    input.regions.forEach((region, regionIndex) => {
      const reachable = modelDemands
        .map((d) => ({ demandIndex: d.index, rtt: resolved.rttMs(d.origin, region.region) }))
        .filter((r) => relaxed.has("latency") || (r.rtt !== undefined && r.rtt <= input.latencyTargetMs));
      // A model with no demand at all may still be placed for redundancy anywhere.
      if (reachable.length === 0 && modelDemands.length > 0) return;
      const intensity = resolved.intensities[regionIndex] ?? 0;
      const pue = region.pue ?? defaultPue;
      for (const offer of region.offers) {
        const shape = model.replicaShapes.find((s) => s.gpuProduct === offer.gpuProduct);
        if (shape === undefined) continue;
        const power: GpuPowerSpec = gpuPowerOf(offer.gpuProduct, input.gpuPower);
        const usable = shape.tokensPerSecondPerReplica * maxUtilization;
        const quotaReplicas = Math.floor(offer.quotaGpus / shape.gpusPerReplica);
        // More replicas than the model's whole demand needs never help, so the bound (and the
        // big-M of the region-use link) is the smaller of that and the quota: a tighter relaxation.
        const neededReplicas = Math.max(1, Math.ceil(totalDemand / usable));
        const maxReplicas = relaxed.has("gpu-quota")
          ? neededReplicas
          : Math.min(quotaReplicas, neededReplicas);
        if (maxReplicas <= 0) continue;
        const kWhPerHourPerWatt = (pue * intensity) / 1000;
        const slot: Slot = {
          index: slots.length,
          model: modelIndex,
          region: regionIndex,
          gpuProduct: offer.gpuProduct,
          gpusPerReplica: shape.gpusPerReplica,
          usableTokensPerSecond: usable,
          costPerHour: shape.gpusPerReplica * offer.pricePerGpuHour,
          idleGramsPerHour: shape.gpusPerReplica * power.idlePowerW * kWhPerHourPerWatt,
          // At its rated throughput a replica draws board power: the load-proportional share per token/s.
          gramsPerHourPerTokenPerSecond:
            (shape.gpusPerReplica * (power.boardPowerW - power.idlePowerW) * kWhPerHourPerWatt) /
            shape.tokensPerSecondPerReplica,
          maxReplicas,
        };
        slots.push(slot);
        const quotaKey = `${regionIndex}/${offer.gpuProduct}`;
        const quota = quotas.get(quotaKey) ?? {
          region: regionIndex,
          gpuProduct: offer.gpuProduct,
          quotaGpus: offer.quotaGpus,
          slots: [],
        };
        quota.slots.push(slot.index);
        quotas.set(quotaKey, quota);
        for (const r of reachable) {
          routes.push({ index: routes.length, demand: r.demandIndex, slot: slot.index, rttMs: r.rtt ?? 0 });
        }
      }
    });
  });

  return {
    models: input.models.map((m) => m.name),
    regions: input.regions.map((r) => r.region),
    demands,
    slots,
    routes,
    minRegions: input.models.map((m) => m.minRegions ?? input.minRegionsPerModel ?? 1),
    quotas: [...quotas.values()],
    costCapPerHour: input.costCapPerHour,
    relaxed,
  };
}

function validateInput(input: PlacementInput): void {
  const problems: string[] = [];
  if (!(input.latencyTargetMs > 0)) problems.push("latencyTargetMs must be positive");
  if (input.maxUtilization !== undefined && !(input.maxUtilization > 0 && input.maxUtilization <= 1)) {
    problems.push("maxUtilization must be in (0, 1]");
  }
  const names = new Set<string>();
  for (const model of input.models) {
    if (names.has(model.name)) problems.push(`model name ${model.name} appears twice`);
    names.add(model.name);
    for (const shape of model.replicaShapes) {
      if (!(shape.gpusPerReplica > 0) || !(shape.tokensPerSecondPerReplica > 0)) {
        problems.push(
          `model ${model.name}: replica shape ${shape.gpuProduct} needs positive gpusPerReplica and tokensPerSecondPerReplica`,
        );
      }
    }
  }
  const regions = new Set<string>();
  for (const region of input.regions) {
    if (regions.has(region.region)) problems.push(`region ${region.region} appears twice`);
    regions.add(region.region);
    for (const offer of region.offers) {
      if (offer.quotaGpus < 0 || offer.pricePerGpuHour < 0)
        problems.push(`region ${region.region}: negative quota or price for ${offer.gpuProduct}`);
    }
  }
  if (problems.length > 0) throw new Error(`invalid placement input: ${problems.join("; ")}`);
}

export type Objective = "emissions" | "cost" | "latency";

/** Linear expression of an objective over the problem's variables. */
export function objectiveTerms(problem: PlacementProblem, objective: Objective): Array<[string, number]> {
  const terms: Array<[string, number]> = [];
  if (objective === "emissions") {
    for (const s of problem.slots) terms.push([slotVar(s.index), s.idleGramsPerHour]);
    for (const r of problem.routes) {
      const slot = problem.slots[r.slot];
      if (slot !== undefined) terms.push([routeVar(r.index), slot.gramsPerHourPerTokenPerSecond]);
    }
  } else if (objective === "cost") {
    for (const s of problem.slots) terms.push([slotVar(s.index), s.costPerHour]);
  } else {
    for (const r of problem.routes) terms.push([routeVar(r.index), r.rttMs]);
  }
  return terms;
}

export const slotVar = (index: number): string => `n${index}`;
export const routeVar = (index: number): string => `f${index}`;
export const useVar = (model: number, region: number): string => `y${model}_${region}`;

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) throw new Error(`non-finite coefficient ${value}`);
  return String(Number(value.toPrecision(12)));
}

function expression(terms: ReadonlyArray<[string, number]>): string {
  const kept = terms.filter(([, c]) => c !== 0);
  if (kept.length === 0) return `0 ${terms[0]?.[0] ?? "n0"}`;
  const parts = kept.map(([v, c], i) => {
    const sign = c < 0 ? "-" : i === 0 ? "" : "+";
    return `${sign} ${formatNumber(Math.abs(c))} ${v}`.trim();
  });
  // Short lines: the LP format allows an expression to continue on the next line.
  const lines: string[] = [];
  for (let i = 0; i < parts.length; i += 8) lines.push(parts.slice(i, i + 8).join(" "));
  return lines.join("\n   ");
}

/** A weighted sum of objectives, e.g. emissions plus a tiny cost tie-break. */
export type WeightedObjective = ReadonlyArray<readonly [Objective, number]>;

export interface WriteLpOptions {
  /** Pin replica counts per slot index (used to re-route traffic over a fixed placement). */
  fixedReplicas?: ReadonlyMap<number, number>;
  /** Upper bounds on other objectives (used to hold a primary objective at its optimum). */
  objectiveBounds?: ReadonlyArray<{ objective: Objective; atMost: number }>;
}

/** Loose upper bound of an objective over the feasible set, used to scale tie-break weights. */
export function objectiveUpperBound(problem: PlacementProblem, objective: Objective): number {
  let bound = 0;
  for (const s of problem.slots) {
    if (objective === "emissions") bound += s.maxReplicas * s.idleGramsPerHour;
    if (objective === "cost") bound += s.maxReplicas * s.costPerHour;
  }
  if (objective !== "cost") {
    const worstPerDemand = new Map<number, number>();
    for (const r of problem.routes) {
      const slot = problem.slots[r.slot];
      const coefficient = objective === "latency" ? r.rttMs : (slot?.gramsPerHourPerTokenPerSecond ?? 0);
      worstPerDemand.set(r.demand, Math.max(worstPerDemand.get(r.demand) ?? 0, coefficient));
    }
    for (const d of problem.demands) bound += (worstPerDemand.get(d.index) ?? 0) * d.tokensPerSecond;
  }
  return bound;
}

/** Route indices by demand and by slot. */
export function indexRoutes(problem: PlacementProblem): {
  routesByDemand: Map<number, number[]>;
  routesBySlot: Map<number, number[]>;
} {
  const routesByDemand = new Map<number, number[]>();
  const routesBySlot = new Map<number, number[]>();
  for (const r of problem.routes) {
    routesByDemand.set(r.demand, [...(routesByDemand.get(r.demand) ?? []), r.index]);
    routesBySlot.set(r.slot, [...(routesBySlot.get(r.slot) ?? []), r.index]);
  }
  return { routesByDemand, routesBySlot };
}

/**
 * Writes the MILP in CPLEX LP format: minimise the (weighted) objective subject to demand, capacity,
 * quota, region-use, redundancy and cost-cap rows (those not relaxed).
 */
export function writeLp(
  problem: PlacementProblem,
  objective: Objective | WeightedObjective,
  options: WriteLpOptions = {},
): string {
  const rows: string[] = [];
  const { routesByDemand, routesBySlot } = indexRoutes(problem);
  // Demand: every origin's tokens/s is routed somewhere.
  for (const d of problem.demands) {
    const routes = routesByDemand.get(d.index) ?? [];
    if (routes.length === 0) {
      // No reachable slot: an explicit infeasible row keeps the model honest (0 = demand).
      rows.push(` demand${d.index}: 0 ${slotVar(0)} = ${formatNumber(d.tokensPerSecond)}`);
      continue;
    }
    rows.push(
      ` demand${d.index}: ${expression(routes.map((r) => [routeVar(r), 1]))} = ${formatNumber(d.tokensPerSecond)}`,
    );
  }
  // Capacity: what a slot serves fits in its replicas.
  for (const s of problem.slots) {
    const routes = routesBySlot.get(s.index) ?? [];
    if (routes.length === 0) continue;
    const terms: Array<[string, number]> = [
      ...routes.map((r): [string, number] => [routeVar(r), 1]),
      [slotVar(s.index), -s.usableTokensPerSecond],
    ];
    rows.push(` capacity${s.index}: ${expression(terms)} <= 0`);
  }
  if (!problem.relaxed.has("gpu-quota")) {
    problem.quotas.forEach((q, i) => {
      const terms = q.slots.map((s): [string, number] => [slotVar(s), problem.slots[s]?.gpusPerReplica ?? 0]);
      rows.push(` quota${i}: ${expression(terms)} <= ${formatNumber(q.quotaGpus)}`);
    });
  }
  // Region use: y = 1 iff the model has replicas there.
  const slotsByUse = new Map<string, Slot[]>();
  for (const s of problem.slots) {
    const key = useVar(s.model, s.region);
    slotsByUse.set(key, [...(slotsByUse.get(key) ?? []), s]);
  }
  for (const [y, slots] of slotsByUse) {
    for (const s of slots) rows.push(` link${s.index}: ${slotVar(s.index)} - ${s.maxReplicas} ${y} <= 0`);
    rows.push(` use_${y}: ${y} ${slots.map((s) => `- ${slotVar(s.index)}`).join(" ")} <= 0`);
  }
  if (!problem.relaxed.has("redundancy")) {
    problem.models.forEach((_, m) => {
      const uses = [...slotsByUse.keys()].filter((y) => y.startsWith(`y${m}_`));
      const need = problem.minRegions[m] ?? 1;
      if (uses.length === 0) {
        if (need > 0) rows.push(` redundancy${m}: 0 ${slotVar(0)} >= ${need}`);
        return;
      }
      rows.push(` redundancy${m}: ${expression(uses.map((y) => [y, 1]))} >= ${need}`);
    });
  }
  if (problem.costCapPerHour !== undefined && !problem.relaxed.has("cost-cap") && problem.slots.length > 0) {
    rows.push(
      ` costcap: ${expression(objectiveTerms(problem, "cost"))} <= ${formatNumber(problem.costCapPerHour)}`,
    );
  }
  (options.objectiveBounds ?? []).forEach((b, i) => {
    rows.push(
      ` bound${i}_${b.objective}: ${expression(objectiveTerms(problem, b.objective))} <= ${formatNumber(b.atMost)}`,
    );
  });
  const weighted: WeightedObjective = typeof objective === "string" ? [[objective, 1]] : objective;
  const objectiveByVariable = new Map<string, number>();
  for (const [name, weight] of weighted) {
    for (const [variable, coefficient] of objectiveTerms(problem, name)) {
      objectiveByVariable.set(variable, (objectiveByVariable.get(variable) ?? 0) + weight * coefficient);
    }
  }
  const lp: string[] = [
    "Minimize",
    ` obj: ${expression([...objectiveByVariable])}`,
    "Subject To",
    ...rows,
    "Bounds",
  ];
  for (const s of problem.slots) {
    const fixed = options.fixedReplicas?.get(s.index);
    lp.push(
      fixed === undefined
        ? ` 0 <= ${slotVar(s.index)} <= ${s.maxReplicas}`
        : ` ${slotVar(s.index)} = ${fixed}`,
    );
  }
  if (problem.slots.length === 0) lp.push(" 0 <= n0 <= 0");
  const generals = problem.slots.map((s) => slotVar(s.index));
  if (generals.length > 0) lp.push("Generals", ...chunk(generals));
  if (slotsByUse.size > 0) lp.push("Binaries", ...chunk([...slotsByUse.keys()]));
  lp.push("End");
  return lp.join("\n") + "\n";
}

function chunk(names: string[]): string[] {
  const lines: string[] = [];
  for (let i = 0; i < names.length; i += 16) lines.push(" " + names.slice(i, i + 16).join(" "));
  return lines;
}
