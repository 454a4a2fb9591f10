/**
 * A per-tenant same-time-of-day demand floor for the autoscaler.
 *
 * Why: on ServeGen most of a reactive autoscaler's misses are tenants "switching on" from nothing
 * several times a day; the fleet is a model load (minutes) late there. The sum's seasonal forecast
 * scales today's level (0 before the switch-on), so it cannot see them. A tenant's own demand at
 * this time of day on the previous days can: the floor is, summed over tenants, a quantile (over the
 * last `lookbackDays` days) of each tenant's highest bucket within ±`windowSeconds` of the same time
 * of day. The highest within the window, so a switch-on a few minutes earlier or later than
 * yesterday's still counts; a quantile over days, so a tenant that ran at this hour on one day of
 * seven does not hold capacity every day.
 *
 * Pure functions over a bounded history: at most `maxTenants` named tenants (by volume), the rest
 * pooled under POOLED_TENANTS, at most `retainBuckets` buckets. Tenant names and rates come from
 * the gateway's metering, which tenants drive: every input is bounded and non-finite or negative
 * rates are dropped, never thrown on.
 *
 * Not wired into the operator yet: the benchmark (sim/eval/controllers.ts, `npm run bench:forecast --
 * --tenant-forecast`) found it buys share within the TTFT goal, not GPU-hours (README, Autoscaling), and
 * the gateway does not report per-tenant demand to the operator (the channel is designed there, not built).
 */
import { quantileOf } from "./policy-windows.js";

const DAY_MS = 86_400_000;
/** The series of every tenant not among the named ones. */
export const POOLED_TENANTS = "*";

export interface TenantDemandHistory {
  bucketSeconds: number;
  /** Start of bucket 0 (ms since the epoch). */
  startMs: number;
  /** Number of buckets recorded (every series has this length). */
  buckets: number;
  /** Per tenant, mean token demand (tokens/s) per bucket, oldest first; null: not measured. */
  tenants: Record<string, Array<number | null>>;
}

export interface TenantHistoryLimits {
  /** Named tenants kept (the rest pooled). */
  maxTenants: number;
  /** Buckets kept per tenant (the oldest dropped). */
  retainBuckets: number;
  /** Longest tenant name kept; longer names are pooled. */
  maxTenantNameLength: number;
}

export const DEFAULT_TENANT_HISTORY_LIMITS: TenantHistoryLimits = {
  maxTenants: 16,
  // 7 days of look-back plus the ±window and the horizon, at 10-minute buckets.
  retainBuckets: 8 * 144,
  maxTenantNameLength: 63,
};

export function emptyTenantHistory(bucketSeconds: number): TenantDemandHistory {
  return { bucketSeconds, startMs: 0, buckets: 0, tenants: {} };
}

const usableRate = (x: number): boolean => Number.isFinite(x) && x >= 0;
/** Mean of the measured buckets up to and including `index` (0 when none). */
function meanThrough(series: ReadonlyArray<number | null>, index: number): number {
  let sum = 0;
  let n = 0;
  for (let i = 0; i <= index; i++) {
    const x = series[i];
    if (x !== null && x !== undefined) {
      sum += x;
      n++;
    }
  }
  return n > 0 ? sum / n : 0;
}

/**
 * Record one finished bucket: each tenant's mean token demand over it. Buckets skipped since the
 * last one are recorded as unmeasured (null); a bucket at or before the last is ignored (a restart
 * replaying). A tenant not yet named takes a free slot, or the slot of the named tenant with the
 * lowest mean over its measured buckets when it sends more in this bucket than that mean (the
 * evicted series joins the pool, so the total stays whole); else it is pooled.
 * Returns a new history; the input is not mutated.
 */
export function recordTenantBucket(
  history: TenantDemandHistory,
  bucketStartMs: number,
  ratesByTenant: ReadonlyMap<string, number>,
  limits: TenantHistoryLimits = DEFAULT_TENANT_HISTORY_LIMITS,
): TenantDemandHistory {
  const bucketMs = history.bucketSeconds * 1000;
  if (!Number.isFinite(bucketStartMs) || !(bucketMs > 0)) return history;
  const start = history.buckets === 0 ? bucketStartMs : history.startMs;
  const index = Math.floor((bucketStartMs - start) / bucketMs);
  if (index < history.buckets) return history;
  // Grow every series to the new bucket (unmeasured buckets in between: null).
  const length = index + 1;
  const tenants: Record<string, Array<number | null>> = {};
  for (const [name, series] of Object.entries(history.tenants))
    tenants[name] = [...series, ...new Array<null>(length - series.length).fill(null)];
  const bucketOf = (name: string): Array<number | null> => {
    tenants[name] ??= new Array<null>(length).fill(null);
    return tenants[name];
  };
  const add = (name: string, rate: number): void => {
    const series = bucketOf(name);
    series[index] = (series[index] ?? 0) + rate;
  };
  // Every named tenant and the pool measured 0 in this bucket unless it sent something.
  for (const name of Object.keys(tenants)) (tenants[name] as Array<number | null>)[index] = 0;
  bucketOf(POOLED_TENANTS)[index] ??= 0;
  // Largest first, so the free slots go to the heaviest newcomers.
  const incoming = [...ratesByTenant].filter(([, rate]) => usableRate(rate)).sort((a, b) => b[1] - a[1]);
  for (const [name, rate] of incoming) {
    if (name === POOLED_TENANTS || name.length === 0 || name.length > limits.maxTenantNameLength) {
      add(POOLED_TENANTS, rate);
      continue;
    }
    if (name in tenants) {
      add(name, rate);
      continue;
    }
    const named = Object.keys(tenants).filter((n) => n !== POOLED_TENANTS);
    if (named.length < limits.maxTenants) {
      add(name, rate);
      continue;
    }
    const lightest = named
      .map((n) => ({ n, mean: meanThrough(tenants[n] as Array<number | null>, index) }))
      .sort((a, b) => a.mean - b.mean)[0];
    if (lightest && rate > lightest.mean) {
      const evicted = tenants[lightest.n] as Array<number | null>;
      const pool = bucketOf(POOLED_TENANTS);
      evicted.forEach((x, i) => {
        if (x !== null) pool[i] = (pool[i] ?? 0) + x;
      });
      delete tenants[lightest.n];
      add(name, rate);
    } else add(POOLED_TENANTS, rate);
  }
  // Keep the newest retainBuckets.
  const drop = Math.max(0, length - limits.retainBuckets);
  if (drop > 0)
    for (const name of Object.keys(tenants))
      tenants[name] = (tenants[name] as Array<number | null>).slice(drop);
  return {
    bucketSeconds: history.bucketSeconds,
    startMs: start + drop * bucketMs,
    buckets: length - drop,
    tenants,
  };
}

export interface TenantFloorOptions {
  /** Quantile over days of each tenant's demand at this time of day (0.5: the median day). */
  quantile: number;
  lookbackDays: number;
  /** Half-width of the time-of-day window: a tenant's day counts its highest bucket within it. */
  windowSeconds: number;
  /** Days with data a tenant needs before it adds to the floor. */
  minDays: number;
}

export const DEFAULT_TENANT_FLOOR_OPTIONS: TenantFloorOptions = {
  quantile: 0.5,
  lookbackDays: 7,
  windowSeconds: 600,
  minDays: 3,
};

export interface TenantDemandFloor {
  /** Σ over tenants of their same-time quantile (tokens/s). */
  tokensPerSecond: number;
  /** Tenants with enough days of history to count. */
  tenantsCounted: number;
}

/**
 * The demand floor at `atMs` (the time a replica ordered now would be ready): Σ over tenants of the
 * `quantile` over the last `lookbackDays` days of the tenant's highest bucket within ±windowSeconds
 * of the same time of day. Only whole buckets in the history count. Null when no tenant has
 * `minDays` days of history (no history: no floor).
 */
export function tenantDemandFloor(
  history: TenantDemandHistory,
  atMs: number,
  options: TenantFloorOptions = DEFAULT_TENANT_FLOOR_OPTIONS,
): TenantDemandFloor | null {
  const bucketMs = history.bucketSeconds * 1000;
  if (history.buckets === 0 || !(bucketMs > 0) || !Number.isFinite(atMs)) return null;
  const bucketAt = (ms: number): number => Math.floor((ms - history.startMs) / bucketMs);
  let tokensPerSecond = 0;
  let tenantsCounted = 0;
  for (const series of Object.values(history.tenants)) {
    const days: number[] = [];
    for (let day = 1; day <= options.lookbackDays; day++) {
      const then = atMs - day * DAY_MS;
      const from = Math.max(0, bucketAt(then - options.windowSeconds * 1000));
      const to = Math.min(history.buckets - 1, bucketAt(then + options.windowSeconds * 1000));
      let highest: number | null = null;
      for (let b = from; b <= to; b++) {
        const x = series[b];
        if (x !== null && x !== undefined) highest = Math.max(highest ?? 0, x);
      }
      if (highest !== null) days.push(highest);
    }
    if (days.length < Math.max(1, options.minDays)) continue;
    tokensPerSecond += quantileOf(days, options.quantile);
    tenantsCounted++;
  }
  return tenantsCounted === 0 ? null : { tokensPerSecond, tenantsCounted };
}

/**
 * The replica count with the floor: never below the reactive answer, the floor in replicas at the
 * policy's own capacity and utilisation target, within maxReplicas. Without a floor, capacity or
 * target, the reactive answer unchanged.
 */
export function replicasWithTenantFloor(
  reactiveReplicas: number,
  floor: TenantDemandFloor | null,
  replicaTokenCapacityPerSecond: number | null,
  utilizationTarget: number | null,
  maxReplicas: number,
): number {
  if (floor === null || replicaTokenCapacityPerSecond === null || utilizationTarget === null)
    return reactiveReplicas;
  if (!(replicaTokenCapacityPerSecond > 0) || !(utilizationTarget > 0)) return reactiveReplicas;
  const floorReplicas = Math.ceil(
    floor.tokensPerSecond / (replicaTokenCapacityPerSecond * utilizationTarget),
  );
  return Math.max(reactiveReplicas, Math.min(maxReplicas, floorReplicas));
}
