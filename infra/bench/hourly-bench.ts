/**
 * The hourly part of `npm run bench:placement`: the benchmark fleet of fleet-scenario.ts (same 20
 * candidate GCP regions, 5 models, 12 origins and demand) with a daily demand shape per origin
 * (demand-shape.ts), over 2023 with the hourly grid intensity of the regions whose zone is one of the
 * 16 of the shared hourly data (the other regions keep their yearly figure, which is also what they
 * are charged). Strategies, all under the same latency target, quotas and 2 regions per model:
 *
 * - yearly-static (today): one placement from yearly intensities (2023 means of the same hourly data,
 *   so only the time resolution differs), sized for every origin's daily peak, kept all year;
 * - yearly, re-sized hourly: the hourly planner fed the flat yearly figures (follows demand, not carbon);
 * - hourly re-planned: the hourly planner fed each day's hourly intensities (a perfect forecast);
 * - hourly + routing: its replicas, with each request sent by gateway/routing/region.ts pickRegion;
 * - hourly on a day-ahead forecast (the same hours of the day before: a persistence forecast with the
 *   real error of the data), with and without routing on the live value at request time: what a wrong
 *   forecast costs, and how much of it routing wins back;
 * - hourly + flexible load: `flexibleShare` of every origin's daily tokens may run at any hour of its
 *   day (batch work), moved to the hours whose cleanest reachable region is cleanest, never above the
 *   origin's own daily peak (so no extra peak capacity). A different service contract, shown apart;
 * - cheapest, nearest: the hourly planner with cost or RTT first (carbon-blind);
 * - yearly-static + routing: today's fleet, each request routed on the live intensity (routing alone);
 * - the ceiling, in two steps (`oracle`): hourly re-planned with free moves (no load time, no dwell)
 *   under the same quotas, then also with free capacity (no quota), then also with one region per model
 *   (no redundancy: what is left to the floor is whole replicas); and the floor no plan at this
 *   latency bound can beat: every token served at the cleanest region it can reach that hour, on
 *   replicas exactly as busy as allowed (no integrality, no redundancy, no quota, no moves);
 * - move-cost variants (`moveVariants`): the hourly re-planned row under other load times and dwells.
 *
 * Every plan is charged the real hourly intensity of every hour it runs. Days are sampled (every
 * `--day-step` days from 1 January, default 14) to bound the run time.
 */
import { performance } from "node:perf_hooks";
import { loadHourlyCarbonData, StaticCarbonIntensitySource, type HourlyCarbonData } from "../carbon/index.js";
import {
  gpuPowerOf,
  planHourly,
  planRolling,
  rttStats,
  type HourlyPlacementInput,
  type HourPlan,
} from "../placement/index.js";
import type { RttTable } from "../placement/rtt.js";
import { pickRegion, type RegionState } from "../../gateway/routing/region.js";
import { benchInput, CANDIDATES, ORIGINS, regions as candidateRegions } from "./fleet-scenario.js";
import { dailyShapes } from "./demand-shape.js";

const HOUR_MS = 3_600_000;
const YEAR = 2023;

export interface HourlyBenchOptions {
  /** Candidate regions: [region, price factor, L4 quota, H100 quota]. */
  candidates: typeof CANDIDATES;
  latencyTargetMs: number;
  dayStep: number;
  blockHours: number;
  loadMinutes: number;
  minDwellHours: number;
  /** Requests per origin and model per hour that routing places one by one. */
  routingChunks: number;
  /** Share of each origin's daily tokens that may run at any hour of the day (0: no flexible row). */
  flexibleShare: number;
  /** Also plan on a day-ahead persistence forecast. */
  forecast: boolean;
  /** Hours each rolling solve looks ahead (commits `blockHours`); default `blockHours` (myopic). */
  windowHours?: number;
  /** Also the ceiling rows: free moves, free moves + free capacity, and the per-token floor. */
  oracle: boolean;
  /** Extra hourly re-planned rows under other move costs (the trade-off). */
  moveVariants: ReadonlyArray<{ loadMinutes: number; minDwellHours: number }>;
  /**
   * Solve the hourly MILPs of every sampled day (default). False keeps only the rows that need no
   * per-day solve (yearly-static with and without routing, re-sized, cheapest, nearest, the floor),
   * which is what makes a full-year run (`dayStep` 1) take minutes.
   */
  replan?: boolean;
  /** Plan only days [firstDay, lastDay) of the year (0 = 1 January), still every dayStep from 1 January. */
  firstDay?: number;
  lastDay?: number;
  /** The finer quantized replica shapes of fleet-scenario.ts QUANTIZED (same GPUs' tokens/s per GPU). */
  quantized?: boolean;
}

export const DEFAULT_HOURLY_BENCH: HourlyBenchOptions = {
  candidates: CANDIDATES,
  latencyTargetMs: 100,
  dayStep: 14,
  blockHours: 1,
  loadMinutes: 10,
  minDwellHours: 4,
  routingChunks: 20,
  flexibleShare: 0.25,
  forecast: true,
  oracle: true,
  moveVariants: [],
};

/** Quota that binds no plan of the benchmark (a model's whole peak demand fits in a region many times over). */
const FREE_QUOTA_GPUS = 100_000;

/** The candidates with every offered GPU product's quota lifted (free capacity). */
export function freeCapacity(candidates: typeof CANDIDATES): typeof CANDIDATES {
  return candidates.map(
    ([region, factor, l4, h100]) =>
      [region, factor, l4 > 0 ? FREE_QUOTA_GPUS : 0, h100 > 0 ? FREE_QUOTA_GPUS : 0] as const,
  );
}

/** Energy per token of one way to serve a model (a region's product), run exactly as busy as allowed. */
export interface ServeOption {
  region: string;
  gpuProduct: string;
  /** kWh per (token/s · hour): idle draw spread over the usable throughput plus the load-proportional part. */
  kWhPerTokenPerSecondHour: number;
  /** $ per (token/s · hour). */
  dollarsPerTokenPerSecondHour: number;
}

/** One origin's tokens of one model on the option the floor picks for them. */
export interface FloorRoute {
  model: string;
  origin: string;
  option: ServeOption;
  tokensPerSecond: number;
  rttMs: number;
  grams: number;
}

/**
 * The floor of one hour: each origin's tokens of each model served where energy × intensity is least
 * among the options it can reach within the latency target. Pure; a lower bound of every plan's
 * emissions under the same latency bound (it drops integrality, redundancy, quotas and moves).
 */
export function floorRoutes(
  demand: ReadonlyArray<{ model: string; origin: string; tokensPerSecond: number }>,
  options: Readonly<Record<string, readonly ServeOption[]>>,
  intensity: (region: string) => number,
  rttMs: (origin: string, region: string) => number | undefined,
  latencyTargetMs: number,
): FloorRoute[] {
  const out: FloorRoute[] = [];
  for (const d of demand) {
    if (d.tokensPerSecond <= 0) continue;
    let best: { option: ServeOption; rtt: number; grams: number } | undefined;
    for (const option of options[d.model] ?? []) {
      const rtt = rttMs(d.origin, option.region);
      if (rtt === undefined || rtt > latencyTargetMs) continue;
      const grams = d.tokensPerSecond * option.kWhPerTokenPerSecondHour * intensity(option.region);
      if (
        best === undefined ||
        grams < best.grams - 1e-12 ||
        (Math.abs(grams - best.grams) <= 1e-12 && rtt < best.rtt)
      )
        best = { option, rtt, grams };
    }
    if (best === undefined)
      throw new Error(`no region within ${latencyTargetMs} ms serves ${d.model} for ${d.origin}`);
    out.push({
      model: d.model,
      origin: d.origin,
      option: best.option,
      tokensPerSecond: d.tokensPerSecond,
      rttMs: best.rtt,
      grams: best.grams,
    });
  }
  return out;
}

/**
 * Moves `share` of each origin's daily demand to the hours with the lowest `score` (the cleanest
 * reachable intensity), filling each hour up to the origin's own daily peak; the rest keeps its shape.
 * Totals per origin are unchanged. Pure.
 */
export function shiftFlexible(
  shapes: Readonly<Record<string, readonly number[]>>,
  score: (origin: string, hour: number) => number,
  share: number,
): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [origin, shape] of Object.entries(shapes)) {
    const total = shape.reduce((a, b) => a + b, 0);
    const peak = Math.max(...shape);
    const next = shape.map((v) => v * (1 - share));
    let left = total * share;
    const hours = shape.map((_, h) => h).sort((a, b) => score(origin, a) - score(origin, b) || a - b);
    for (const h of hours) {
      if (left <= 0) break;
      const room = Math.max(0, peak - (next[h] ?? 0));
      const add = Math.min(room, left);
      next[h] = (next[h] ?? 0) + add;
      left -= add;
    }
    out[origin] = next;
  }
  return out;
}

interface Tally {
  grams: number;
  moveGrams: number;
  cost: number;
  tokens: number;
  hours: number;
  starts: number;
  /** Token-weighted RTTs: RTT (ms) -> tokens/s·hours served at it (RTTs come from a table: few values). */
  rtts: Map<number, number>;
  /** Per zone (or region without hourly data): tokens served and grams of their load. */
  byZone: Map<string, { tokens: number; intensityTokens: number }>;
  overCapacityTokens: number;
}

const newTally = (): Tally => ({
  grams: 0,
  moveGrams: 0,
  cost: 0,
  tokens: 0,
  hours: 0,
  starts: 0,
  rtts: new Map(),
  byZone: new Map(),
  overCapacityTokens: 0,
});

/** Charges one planned hour at the real intensities (`actual` by region), with the plan's routes or `routes`. */
function charge(
  tally: Tally,
  hour: HourPlan,
  actual: (region: string) => number,
  zoneOf: (region: string) => string,
  loadHours: number,
  routes: HourPlan["routes"] = hour.routes,
  overCapacity = 0,
): void {
  const perToken = new Map<string, number>();
  for (const r of hour.replicas) {
    const g = actual(r.region);
    tally.grams += r.replicas * r.idleKWhPerReplicaHour * g;
    const move = r.started * loadHours * r.idleKWhPerReplicaHour * g;
    tally.grams += move;
    tally.moveGrams += move;
    tally.cost += r.replicas * r.costPerReplicaHour + r.started * loadHours * r.costPerReplicaHour;
    perToken.set(`${r.model}|${r.region}|${r.gpuProduct}`, r.kWhPerTokenPerSecondHour);
  }
  for (const route of routes) {
    const g = actual(route.region);
    tally.grams +=
      route.tokensPerSecond * (perToken.get(`${route.model}|${route.region}|${route.gpuProduct}`) ?? 0) * g;
    tally.tokens += route.tokensPerSecond * 3600;
    tally.rtts.set(route.rttMs, (tally.rtts.get(route.rttMs) ?? 0) + route.tokensPerSecond);
    const zone = zoneOf(route.region);
    const entry = tally.byZone.get(zone) ?? { tokens: 0, intensityTokens: 0 };
    entry.tokens += route.tokensPerSecond * 3600;
    entry.intensityTokens += route.tokensPerSecond * 3600 * g;
    tally.byZone.set(zone, entry);
  }
  tally.starts += hour.starts;
  tally.hours += 1;
  tally.overCapacityTokens += overCapacity * 3600;
}

/** Charges one hour of the floor: tokens on exactly as many (fractional) replicas as they need. */
function chargeFloor(
  tally: Tally,
  routes: readonly FloorRoute[],
  actual: (region: string) => number,
  zoneOf: (region: string) => string,
): void {
  for (const r of routes) {
    const g = actual(r.option.region);
    tally.grams += r.grams;
    tally.cost += r.tokensPerSecond * r.option.dollarsPerTokenPerSecondHour;
    tally.tokens += r.tokensPerSecond * 3600;
    tally.rtts.set(r.rttMs, (tally.rtts.get(r.rttMs) ?? 0) + r.tokensPerSecond);
    const zone = zoneOf(r.option.region);
    const entry = tally.byZone.get(zone) ?? { tokens: 0, intensityTokens: 0 };
    entry.tokens += r.tokensPerSecond * 3600;
    entry.intensityTokens += r.tokensPerSecond * 3600 * g;
    tally.byZone.set(zone, entry);
  }
  tally.hours += 1;
}

/**
 * Re-routes an hour's demand over its replicas with the gateway's region choice: each origin's demand
 * for a model in `chunks` requests, taken round-robin over origins, each sent to pickRegion's region
 * (lowest intensity now within the latency target, spill when full).
 */
export function routeHour(
  hour: HourPlan,
  intensity: (region: string) => number,
  rtt: RttTable,
  latencyTargetMs: number,
  chunks: number,
): { routes: HourPlan["routes"]; overCapacityTokensPerSecond: number } {
  const demand = new Map<string, number>();
  for (const r of hour.routes)
    demand.set(`${r.model}|${r.origin}`, (demand.get(`${r.model}|${r.origin}`) ?? 0) + r.tokensPerSecond);
  const capacity = new Map<string, Array<{ gpuProduct: string; capacity: number; load: number }>>();
  for (const r of hour.replicas) {
    const key = `${r.model}|${r.region}`;
    const list = capacity.get(key) ?? [];
    list.push({
      gpuProduct: r.gpuProduct,
      capacity: r.replicas * r.usableTokensPerSecondPerReplica,
      load: 0,
    });
    capacity.set(key, list);
  }
  const routes = new Map<string, HourPlan["routes"][number]>();
  let over = 0;
  const queue = [...demand].map(([key, tokens]) => {
    const [model = "", origin = ""] = key.split("|");
    return { model, origin, size: tokens / chunks, left: chunks };
  });
  for (let round = 0; round < chunks; round++) {
    for (const d of queue) {
      const states: RegionState[] = [];
      for (const [key, products] of capacity) {
        const [model, region = ""] = key.split("|");
        if (model !== d.model) continue;
        const ms = rtt.rttMs(d.origin, region);
        if (ms === undefined) continue;
        states.push({
          region,
          rttMs: ms,
          gCO2PerKWh: intensity(region),
          load: products.reduce((s, p) => s + p.load, 0),
          capacity: products.reduce((s, p) => s + p.capacity, 0),
        });
      }
      const pick = pickRegion({ latencyBudgetMs: latencyTargetMs, size: d.size }, states);
      if (pick === undefined) continue;
      const products = capacity.get(`${d.model}|${pick.region}`) ?? [];
      // Within the region, the product with the most room takes the request.
      const target = [...products].sort((a, b) => b.capacity - b.load - (a.capacity - a.load))[0];
      if (target === undefined) continue;
      if (target.load + d.size > target.capacity + 1e-9)
        over += Math.min(d.size, target.load + d.size - target.capacity);
      target.load += d.size;
      const key = `${d.model}|${d.origin}|${pick.region}|${target.gpuProduct}`;
      const existing = routes.get(key);
      if (existing) existing.tokensPerSecond += d.size;
      else
        routes.set(key, {
          model: d.model,
          origin: d.origin,
          region: pick.region,
          gpuProduct: target.gpuProduct,
          tokensPerSecond: d.size,
          rttMs: rtt.rttMs(d.origin, pick.region) ?? 0,
        });
    }
  }
  return { routes: [...routes.values()], overCapacityTokensPerSecond: over };
}

export interface StrategyResult {
  name: string;
  gCO2PerMTok: number;
  dollarsPerHour: number;
  dollarsPerMTok: number;
  meanRttMs: number;
  p95RttMs: number;
  startsPerDay: number;
  moveShareOfCarbonPct: number;
  overCapacityPct: number;
  byZone: Map<string, { tokens: number; intensityTokens: number }>;
}

function result(name: string, tally: Tally, days: number): StrategyResult {
  const stats = rttStats([...tally.rtts].map(([rtt, weight]) => ({ rtt, weight })));
  return {
    name,
    gCO2PerMTok: (tally.grams / tally.tokens) * 1e6,
    dollarsPerHour: tally.cost / tally.hours,
    dollarsPerMTok: (tally.cost / tally.tokens) * 1e6,
    meanRttMs: stats.meanRttMs,
    p95RttMs: stats.p95RttMs,
    startsPerDay: tally.starts / days,
    moveShareOfCarbonPct: (tally.moveGrams / tally.grams) * 100,
    overCapacityPct: (tally.overCapacityTokens / tally.tokens) * 100,
    byZone: tally.byZone,
  };
}

/** A tally as JSON (maps as entry lists), to save a range of days and merge ranges later. */
export type SavedTally = Omit<Tally, "rtts" | "byZone"> & {
  rtts: Array<[number, number]>;
  byZone: Array<[string, { tokens: number; intensityTokens: number }]>;
};

const SUMMED = ["grams", "moveGrams", "cost", "tokens", "hours", "starts", "overCapacityTokens"] as const;

function saveTally(t: Tally): SavedTally {
  const saved = { rtts: [...t.rtts], byZone: [...t.byZone] } as Partial<SavedTally>;
  for (const key of SUMMED) saved[key] = t[key];
  return saved as SavedTally;
}

function addTally(into: Tally, t: SavedTally): void {
  for (const key of SUMMED) into[key] += t[key];
  for (const [rtt, w] of t.rtts) into.rtts.set(rtt, (into.rtts.get(rtt) ?? 0) + w);
  for (const [zone, z] of t.byZone) {
    const e = into.byZone.get(zone) ?? { tokens: 0, intensityTokens: 0 };
    e.tokens += z.tokens;
    e.intensityTokens += z.intensityTokens;
    into.byZone.set(zone, e);
  }
}

/**
 * Results of disjoint day ranges of the same run (same options but the range), as one: tallies are
 * sums, so the merged figures are exactly those of one run over the union of the days. Every day is
 * planned from the same start fleet, so ranges can run apart (one after another, or on several cores).
 */
export function mergeHourlyResults(parts: readonly HourlyBenchResult[]): HourlyBenchResult {
  const first = parts[0];
  if (first === undefined) throw new Error("nothing to merge");
  const key = (o: HourlyBenchOptions): string =>
    JSON.stringify({ ...o, firstDay: undefined, lastDay: undefined });
  const seen = new Set<number>();
  for (const p of parts) {
    if (key(p.options) !== key(first.options))
      throw new Error("cannot merge runs with different options (only the day range may differ)");
    for (const d of p.dayIndices) {
      if (seen.has(d)) throw new Error(`day ${d} is in two of the merged runs`);
      seen.add(d);
    }
  }
  const names = first.tallies.map(([name]) => name);
  const merged = names.map((name) => {
    const t = newTally();
    for (const p of parts) {
      const saved = p.tallies.find(([n]) => n === name)?.[1];
      if (saved === undefined) throw new Error(`strategy ${name} missing from a merged run`);
      addTally(t, saved);
    }
    return [name, t] as const;
  });
  const days = parts.reduce((s, p) => s + p.days, 0);
  let errorSum = 0;
  let errorCount = 0;
  for (const p of parts)
    if (p.forecastMape !== undefined) {
      errorSum += p.forecastMape * p.days;
      errorCount += p.days;
    }
  return {
    ...first,
    days,
    dayIndices: [...seen].sort((a, b) => a - b),
    strategies: merged.map(([name, t]) => result(name, t, days)),
    tallies: merged.map(([name, t]) => [name, saveTally(t)]),
    solveSeconds: {
      perDayHourly: parts.flatMap((p) => p.solveSeconds.perDayHourly),
      total: parts.reduce((s, p) => s + p.solveSeconds.total, 0),
    },
    forecastMape: errorCount > 0 ? errorSum / errorCount : undefined,
  };
}

export interface HourlyBenchResult {
  options: HourlyBenchOptions;
  days: number;
  /** Days of 2023 planned (0 = 1 January). */
  dayIndices: number[];
  /** Every strategy's sums, to save and merge day ranges (mergeHourlyResults). */
  tallies: Array<[string, SavedTally]>;
  hourlyRegions: Array<{ region: string; zone: string; mean2023: number }>;
  strategies: StrategyResult[];
  solveSeconds: { perDayHourly: number[]; total: number };
  size: { integers: number; continuous: number; rows: number };
  /** Mean absolute percentage error of the day-ahead forecast over the hourly regions. */
  forecastMape?: number | undefined;
}

export async function runHourlyBench(
  rtt: RttTable,
  staticSource: StaticCarbonIntensitySource,
  options: HourlyBenchOptions = DEFAULT_HOURLY_BENCH,
  data: HourlyCarbonData = loadHourlyCarbonData("lca"),
  progress: (line: string) => void = () => undefined,
): Promise<HourlyBenchResult> {
  const started = performance.now();
  const base = benchInput(
    options.latencyTargetMs,
    rtt,
    undefined,
    options.candidates,
    options.quantized === true,
  );
  const regions = base.regions.map((r) => r.region);
  const yearStart = Date.UTC(YEAR, 0, 1);
  const yearEnd = Date.UTC(YEAR + 1, 0, 1);
  const hourlyRegions = regions.flatMap((region) => {
    const zone = data.zoneOf(region);
    const mean = data.mean(region, yearStart, yearEnd);
    return zone !== undefined && mean !== undefined ? [{ region, zone, mean2023: mean }] : [];
  });
  const yearly = new Map<string, number>(
    regions.map((region) => [
      region,
      hourlyRegions.find((h) => h.region === region)?.mean2023 ??
        staticSource.intensitySync(region).gCO2PerKWh,
    ]),
  );
  const actualAt = (hourMs: number) => (region: string) =>
    data.covers(region) ? (data.at(region, hourMs)?.gCO2PerKWh ?? 0) : (yearly.get(region) ?? 0);
  const zoneOf = (region: string): string => data.zoneOf(region) ?? `${region} (yearly)`;
  const shapes = dailyShapes(ORIGINS.map(([o]) => o));
  const flat = (hours: number): Record<string, number[]> =>
    Object.fromEntries(regions.map((r) => [r, new Array<number>(hours).fill(yearly.get(r) ?? 0)]));
  const repeatShapes = (days: number): Record<string, number[]> =>
    Object.fromEntries(
      Object.entries(shapes).map(([o, s]) => [
        o,
        Array.from({ length: 24 * days }, (_, h) => s[h % 24] ?? 1),
      ]),
    );
  const common: Omit<HourlyPlacementInput, "hours" | "intensity"> = {
    ...base,
    moves: { loadMinutes: options.loadMinutes, minDwellHours: options.minDwellHours },
    blockHours: options.blockHours,
    solver: { timeLimitSeconds: 30, mipRelativeGap: 1e-2 },
  };
  const rolling = {
    windowHours: Math.max(options.windowHours ?? options.blockHours, options.blockHours),
    commitHours: options.blockHours,
  };
  const loadHours = options.loadMinutes / 60;
  const freeMoves = { loadMinutes: 0, minDwellHours: 0 };
  const freeCapacityRegions = candidateRegions(freeCapacity(options.candidates));
  // Energy per token of every (model, region, product) the candidates offer, at the allowed utilisation.
  const pue = base.defaultPue ?? 1.1;
  const maxUtilization = base.maxUtilization ?? 1;
  const serveOptions: Record<string, ServeOption[]> = Object.fromEntries(
    base.models.map((m) => [
      m.name,
      base.regions.flatMap((region) =>
        region.offers.flatMap((offer) => {
          const shape = m.replicaShapes.find((x) => x.gpuProduct === offer.gpuProduct);
          if (shape === undefined) return [];
          const power = gpuPowerOf(offer.gpuProduct, base.gpuPower);
          const usable = shape.tokensPerSecondPerReplica * maxUtilization;
          const idleKWh = (shape.gpusPerReplica * power.idlePowerW * pue) / 1000;
          const loadKWh =
            (shape.gpusPerReplica * (power.boardPowerW - power.idlePowerW) * pue) /
            1000 /
            shape.tokensPerSecondPerReplica;
          return [
            {
              region: region.region,
              gpuProduct: offer.gpuProduct,
              kWhPerTokenPerSecondHour: idleKWh / usable + loadKWh,
              dollarsPerTokenPerSecondHour: (shape.gpusPerReplica * offer.pricePerGpuHour) / usable,
            },
          ];
        }),
      ),
    ]),
  );

  progress("planning the yearly-static, cheapest and nearest fleets");
  const staticPlan = await planHourly({
    ...common,
    hours: 24,
    intensity: flat(24),
    demandShape: repeatShapes(1),
    blockHours: 24,
  });
  const staticHours = staticPlan.hours.map((h) => ({
    ...h,
    starts: 0,
    replicas: h.replicas.map((r) => ({ ...r, started: 0 })),
  }));
  // Carbon-blind and yearly plans repeat every day (same demand, flat intensities): one day, from the
  // static fleet, stands for every day.
  const warm = {
    replicas: (staticPlan.hours[0]?.replicas ?? []).map((r) => ({
      model: r.model,
      region: r.region,
      gpuProduct: r.gpuProduct,
      replicas: r.replicas,
    })),
  };
  const steady = async (strategy: "carbon-aware" | "cheapest" | "nearest"): Promise<HourPlan[]> =>
    (
      await planRolling(
        { ...common, hours: 24, intensity: flat(24), demandShape: repeatShapes(1), initial: warm },
        strategy,
        rolling,
      )
    ).hours;
  const resized = await steady("carbon-aware");
  const cheapest = await steady("cheapest");
  const nearest = await steady("nearest");
  const initial = {
    replicas: (resized.at(-1)?.replicas ?? []).map((r) => ({
      model: r.model,
      region: r.region,
      gpuProduct: r.gpuProduct,
      replicas: r.replicas,
    })),
  };

  const tallies = {
    static: newTally(),
    resized: newTally(),
    hourly: newTally(),
    routed: newTally(),
    cheapest: newTally(),
    nearest: newTally(),
    forecast: newTally(),
    forecastRouted: newTally(),
    flexible: newTally(),
    staticRouted: newTally(),
    noMoves: newTally(),
    freeCapacity: newTally(),
    noRedundancy: newTally(),
    floor: newTally(),
  };
  const variantTallies = options.moveVariants.map(() => newTally());
  let forecastErrorSum = 0;
  let forecastErrorCount = 0;
  const perDay: number[] = [];
  let size = staticPlan.size;
  let days = 0;
  const dayIndices: number[] = [];
  for (let dayStart = yearStart; dayStart < yearEnd; dayStart += options.dayStep * 24 * HOUR_MS) {
    const dayIndex = Math.round((dayStart - yearStart) / (24 * HOUR_MS));
    if (dayIndex < (options.firstDay ?? 0) || dayIndex >= (options.lastDay ?? Number.POSITIVE_INFINITY))
      continue;
    dayIndices.push(dayIndex);
    days += 1;
    const intensity: Record<string, number[]> = Object.fromEntries(
      regions.map((r) => [r, Array.from({ length: 24 }, (_, h) => actualAt(dayStart + h * HOUR_MS)(r))]),
    );
    const t = performance.now();
    const replan = options.replan !== false;
    const plan = replan
      ? await planRolling(
          { ...common, hours: 24, startMs: dayStart, intensity, demandShape: repeatShapes(1), initial },
          "carbon-aware",
          rolling,
        )
      : undefined;
    if (plan) {
      perDay.push((performance.now() - t) / 1000);
      size = plan.size;
    }
    let forecastPlan: HourPlan[] | undefined;
    if (replan && options.forecast) {
      // Day-ahead persistence forecast: each region's same hour of the day before.
      const forecast: Record<string, number[]> = Object.fromEntries(
        regions.map((r) => [
          r,
          Array.from({ length: 24 }, (_, h) => actualAt(dayStart - 24 * HOUR_MS + h * HOUR_MS)(r)),
        ]),
      );
      for (const { region } of hourlyRegions)
        for (let h = 0; h < 24; h++) {
          const actual = intensity[region]?.[h] ?? 0;
          if (actual > 0) {
            forecastErrorSum += Math.abs((forecast[region]?.[h] ?? 0) - actual) / actual;
            forecastErrorCount += 1;
          }
        }
      forecastPlan = (
        await planRolling(
          {
            ...common,
            hours: 24,
            startMs: dayStart,
            intensity: forecast,
            demandShape: repeatShapes(1),
            initial,
          },
          "carbon-aware",
          rolling,
        )
      ).hours;
    }
    const dayInput = {
      ...common,
      hours: 24,
      startMs: dayStart,
      intensity,
      demandShape: repeatShapes(1),
      initial,
    };
    let noMovesPlan: HourPlan[] | undefined;
    let freeCapacityPlan: HourPlan[] | undefined;
    let noRedundancyPlan: HourPlan[] | undefined;
    if (replan && options.oracle) {
      noMovesPlan = (await planRolling({ ...dayInput, moves: freeMoves }, "carbon-aware", rolling)).hours;
      freeCapacityPlan = (
        await planRolling(
          { ...dayInput, regions: freeCapacityRegions, moves: freeMoves },
          "carbon-aware",
          rolling,
        )
      ).hours;
      noRedundancyPlan = (
        await planRolling(
          { ...dayInput, regions: freeCapacityRegions, moves: freeMoves, minRegionsPerModel: 1 },
          "carbon-aware",
          rolling,
        )
      ).hours;
    }
    const variantPlans: HourPlan[][] = [];
    for (const moves of replan ? options.moveVariants : [])
      variantPlans.push((await planRolling({ ...dayInput, moves }, "carbon-aware", rolling)).hours);
    let flexiblePlan: HourPlan[] | undefined;
    if (replan && options.flexibleShare > 0) {
      // Planned on the same (perfect) hourly figures as the hourly row, so only the demand differs.
      const reachable = new Map(
        ORIGINS.map(([o]) => [
          o,
          regions.filter((r) => (rtt.rttMs(o, r) ?? Number.POSITIVE_INFINITY) <= options.latencyTargetMs),
        ]),
      );
      const score = (origin: string, h: number): number =>
        Math.min(...(reachable.get(origin) ?? []).map((r) => intensity[r]?.[h] ?? Number.POSITIVE_INFINITY));
      flexiblePlan = (
        await planRolling(
          {
            ...common,
            hours: 24,
            startMs: dayStart,
            intensity,
            demandShape: shiftFlexible(shapes, score, options.flexibleShare),
            initial,
          },
          "carbon-aware",
          rolling,
        )
      ).hours;
    }
    for (let h = 0; h < 24; h++) {
      const actual = actualAt(dayStart + h * HOUR_MS);
      const hourly = plan?.hours[h];
      if (plan && hourly === undefined) throw new Error(`hourly plan lacks hour ${h}`);
      charge(tallies.static, staticHours[h] as HourPlan, actual, zoneOf, loadHours);
      charge(tallies.resized, resized[h] as HourPlan, actual, zoneOf, loadHours);
      charge(tallies.cheapest, cheapest[h] as HourPlan, actual, zoneOf, loadHours);
      charge(tallies.nearest, nearest[h] as HourPlan, actual, zoneOf, loadHours);
      // A plan as planned, and the same replicas with each request routed on the live intensity.
      const chargeWithRouting = (planned: Tally, routedTally: Tally, hourPlan: HourPlan): void => {
        charge(planned, hourPlan, actual, zoneOf, loadHours);
        const live = routeHour(hourPlan, actual, rtt, options.latencyTargetMs, options.routingChunks);
        charge(
          routedTally,
          hourPlan,
          actual,
          zoneOf,
          loadHours,
          live.routes,
          live.overCapacityTokensPerSecond,
        );
      };
      if (hourly) chargeWithRouting(tallies.hourly, tallies.routed, hourly);
      const onForecast = forecastPlan?.[h];
      if (onForecast) chargeWithRouting(tallies.forecast, tallies.forecastRouted, onForecast);
      const flexible = flexiblePlan?.[h];
      if (flexible) charge(tallies.flexible, flexible, actual, zoneOf, loadHours);
      const staticRouted = routeHour(
        staticHours[h] as HourPlan,
        actual,
        rtt,
        options.latencyTargetMs,
        options.routingChunks,
      );
      charge(
        tallies.staticRouted,
        staticHours[h] as HourPlan,
        actual,
        zoneOf,
        loadHours,
        staticRouted.routes,
        staticRouted.overCapacityTokensPerSecond,
      );
      const noMoves = noMovesPlan?.[h];
      if (noMoves) charge(tallies.noMoves, noMoves, actual, zoneOf, 0);
      const free = freeCapacityPlan?.[h];
      if (free) charge(tallies.freeCapacity, free, actual, zoneOf, 0);
      const single = noRedundancyPlan?.[h];
      if (single) charge(tallies.noRedundancy, single, actual, zoneOf, 0);
      options.moveVariants.forEach((moves, i) => {
        const planned = variantPlans[i]?.[h];
        if (planned) charge(variantTallies[i] as Tally, planned, actual, zoneOf, moves.loadMinutes / 60);
      });
      if (options.oracle) {
        const demand = base.models.flatMap((m) =>
          m.demand.map((d) => ({
            model: m.name,
            origin: d.origin,
            tokensPerSecond: (d.tokensPerSecond ?? 0) * (shapes[d.origin]?.[h] ?? 1),
          })),
        );
        chargeFloor(
          tallies.floor,
          floorRoutes(demand, serveOptions, actual, (o, r) => rtt.rttMs(o, r), options.latencyTargetMs),
          actual,
          zoneOf,
        );
      }
    }
    if (days % 10 === 0)
      progress(`${days} days planned, ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
  const row = (name: string, t: Tally): [string, Tally] => [name, t];
  const named: Array<[string, Tally]> = [
    row("yearly-static (today)", tallies.static),
    row("yearly, re-sized hourly", tallies.resized),
    ...(options.replan !== false
      ? [row("hourly re-planned", tallies.hourly), row("hourly + routing", tallies.routed)]
      : []),
    ...(options.replan !== false && options.forecast
      ? [
          row("hourly on day-ahead forecast", tallies.forecast),
          row("  + routing on live values", tallies.forecastRouted),
        ]
      : []),
    ...(options.replan !== false && options.flexibleShare > 0
      ? [row(`hourly + ${Math.round(options.flexibleShare * 100)}% flexible load`, tallies.flexible)]
      : []),
    row("yearly-static + routing", tallies.staticRouted),
    ...(options.replan !== false ? options.moveVariants : []).map((m, i) =>
      row(`hourly, load ${m.loadMinutes} min, dwell ${m.minDwellHours} h`, variantTallies[i] as Tally),
    ),
    ...(options.oracle && options.replan !== false
      ? [
          row("ceiling: free moves", tallies.noMoves),
          row("  + free capacity", tallies.freeCapacity),
          row("  + one region per model", tallies.noRedundancy),
        ]
      : []),
    ...(options.oracle ? [row("floor: cleanest reachable", tallies.floor)] : []),
    row("cheapest", tallies.cheapest),
    row("nearest", tallies.nearest),
  ];
  const forecastMape = forecastErrorCount > 0 ? forecastErrorSum / forecastErrorCount : undefined;
  return {
    options,
    days,
    dayIndices,
    hourlyRegions,
    strategies: named.map(([name, t]) => result(name, t, days)),
    tallies: named.map(([name, t]) => [name, saveTally(t)]),
    forecastMape,
    solveSeconds: { perDayHourly: perDay, total: (performance.now() - started) / 1000 },
    size,
  };
}

/** Zones whose token share or served intensity changed most between two strategies, by grams saved. */
export function zoneGains(
  from: StrategyResult,
  to: StrategyResult,
): Array<{ zone: string; fromShare: number; toShare: number; fromIntensity: number; toIntensity: number }> {
  const total = (r: StrategyResult): number => [...r.byZone.values()].reduce((s, z) => s + z.tokens, 0);
  const ft = total(from);
  const tt = total(to);
  const zones = new Set([...from.byZone.keys(), ...to.byZone.keys()]);
  return [...zones]
    .map((zone) => {
      const a = from.byZone.get(zone) ?? { tokens: 0, intensityTokens: 0 };
      const b = to.byZone.get(zone) ?? { tokens: 0, intensityTokens: 0 };
      return {
        zone,
        fromShare: a.tokens / ft,
        toShare: b.tokens / tt,
        fromIntensity: a.tokens > 0 ? a.intensityTokens / a.tokens : 0,
        toIntensity: b.tokens > 0 ? b.intensityTokens / b.tokens : 0,
      };
    })
    .sort((x, y) => y.toShare - x.toShare);
}
