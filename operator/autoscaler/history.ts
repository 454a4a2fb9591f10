/**
 * The workload history one ModelDeployment's autoscaler keeps: token demand in fixed buckets (for
 * the forecast and the burst headroom), the replica capacity learned from what engines report, and
 * the times new replicas took to become ready. Plain JSON, bounded in size (MAX_BUCKETS buckets of
 * two numbers, MAX_READY_TIMES readiness times), so the operator can keep it in the cluster
 * (./history-store.ts) and a restarted or newly elected operator resumes from it. Pure functions;
 * an update returns a new object and never mutates its input (arrays are copied only when a bucket
 * closes, so a decision every 10 s stays cheap).
 */

export const HISTORY_VERSION = 1;
/** Bucket length: 5 minutes (288 a day). */
export const HISTORY_BUCKET_SECONDS = 300;
/** 15 days of buckets: two weeks of seasonality plus one day. */
export const MAX_BUCKETS = 15 * 288;
export const MAX_READY_TIMES = 16;

/** A replica's learned token capacity: the planner's figure as prior, then what the evidence shows. */
export interface LearnedCapacity {
  tokensPerSecond: number;
  /** Observations behind the figure (0: the prior or a figure from before the evidence was kept). */
  observations: number;
  /** The latest observations (tokens/s), at most CAPACITY_EVIDENCE; see `learnCapacity`. */
  evidence?: number[];
}

export interface WorkloadHistory {
  v: number;
  bucketSeconds: number;
  /** Start of the first bucket (ms since the epoch, a multiple of bucketSeconds). */
  startMs: number;
  /** Mean token demand (tokens/s) per bucket; null where nothing was measured. */
  tokensPerSecond: Array<number | null>;
  /** Index of dispersion of the token demand (tokens) per bucket; null where unmeasured. */
  dispersion: Array<number | null>;
  capacity: LearnedCapacity | null;
  /** Seconds from pod creation to Ready, newest last. */
  timeToReadySeconds: number[];
  /** The bucket being filled: sums over its samples. */
  open: { startMs: number; sum: number; n: number; dispersionSum: number; dispersionN: number } | null;
}

export function emptyHistory(bucketSeconds = HISTORY_BUCKET_SECONDS): WorkloadHistory {
  return {
    v: HISTORY_VERSION,
    bucketSeconds,
    startMs: 0,
    tokensPerSecond: [],
    dispersion: [],
    capacity: null,
    timeToReadySeconds: [],
    open: null,
  };
}

const finiteOrNull = (x: unknown): number | null =>
  typeof x === "number" && Number.isFinite(x) && x >= 0 ? x : null;

/**
 * A history read back from the cluster, checked field by field and cut to the bounds (anything
 * malformed becomes empty: the bytes are the operator's own, but a person may have edited them).
 */
export function parseHistory(value: unknown): WorkloadHistory | null {
  if (typeof value !== "object" || value === null) return null;
  const h = value as Record<string, unknown>;
  if (h.v !== HISTORY_VERSION) return null;
  const bucketSeconds = finiteOrNull(h.bucketSeconds);
  const startMs = finiteOrNull(h.startMs);
  if (bucketSeconds === null || bucketSeconds < 1 || startMs === null) return null;
  const list = (x: unknown): Array<number | null> =>
    Array.isArray(x) ? x.slice(-MAX_BUCKETS).map(finiteOrNull) : [];
  const tokensPerSecond = list(h.tokensPerSecond);
  const dispersion = list(h.dispersion);
  while (dispersion.length < tokensPerSecond.length) dispersion.unshift(null);
  dispersion.splice(0, dispersion.length - tokensPerSecond.length);
  const dropped = Array.isArray(h.tokensPerSecond) ? Math.max(0, h.tokensPerSecond.length - MAX_BUCKETS) : 0;
  const c = h.capacity as Record<string, unknown> | null | undefined;
  const capTps = finiteOrNull(c?.tokensPerSecond);
  const capN = finiteOrNull(c?.observations);
  const capEvidence = Array.isArray(c?.evidence)
    ? (c.evidence as unknown[])
        .slice(-CAPACITY_EVIDENCE)
        .map(finiteOrNull)
        .filter((x): x is number => x !== null && x > 0)
    : [];
  const o = h.open as Record<string, unknown> | null | undefined;
  const open =
    o && [o.startMs, o.sum, o.n, o.dispersionSum, o.dispersionN].every((x) => finiteOrNull(x) !== null)
      ? {
          startMs: o.startMs as number,
          sum: o.sum as number,
          n: o.n as number,
          dispersionSum: o.dispersionSum as number,
          dispersionN: o.dispersionN as number,
        }
      : null;
  return {
    v: HISTORY_VERSION,
    bucketSeconds,
    startMs: startMs + dropped * bucketSeconds * 1000,
    tokensPerSecond,
    dispersion,
    capacity:
      capTps !== null && capTps > 0 && capN !== null
        ? {
            tokensPerSecond: capTps,
            observations: capN,
            ...(capEvidence.length > 0 ? { evidence: capEvidence } : {}),
          }
        : null,
    timeToReadySeconds: Array.isArray(h.timeToReadySeconds)
      ? h.timeToReadySeconds
          .map(finiteOrNull)
          .filter((x): x is number => x !== null)
          .slice(-MAX_READY_TIMES)
      : [],
    open,
  };
}

/** Close the open bucket (and any empty ones up to `bucketStartMs`), bounded to MAX_BUCKETS. */
function closeUpTo(h: WorkloadHistory, bucketStartMs: number): WorkloadHistory {
  const open = h.open;
  if (open === null || open.startMs >= bucketStartMs) return h;
  const bucketMs = h.bucketSeconds * 1000;
  const tokens = [...h.tokensPerSecond];
  const dispersion = [...h.dispersion];
  let startMs = h.startMs;
  if (tokens.length === 0) startMs = open.startMs;
  // Gaps (operator down, no data) are empty buckets, so index ↔ time stays exact.
  const index = Math.round((open.startMs - startMs) / bucketMs);
  while (tokens.length < index) {
    tokens.push(null);
    dispersion.push(null);
  }
  tokens.push(open.n > 0 ? Math.round((open.sum / open.n) * 10) / 10 : null);
  dispersion.push(open.dispersionN > 0 ? Math.round(open.dispersionSum / open.dispersionN) : null);
  const excess = Math.max(0, tokens.length - MAX_BUCKETS);
  return {
    ...h,
    startMs: startMs + excess * bucketMs,
    tokensPerSecond: excess > 0 ? tokens.slice(excess) : tokens,
    dispersion: excess > 0 ? dispersion.slice(excess) : dispersion,
    open: null,
  };
}

/** Fold one demand measurement (and the current dispersion estimate, if any) into the history. */
export function recordDemand(
  h: WorkloadHistory,
  atMs: number,
  tokensPerSecond: number,
  dispersion: number | null,
): WorkloadHistory {
  if (!Number.isFinite(tokensPerSecond) || tokensPerSecond < 0) return h;
  const bucketMs = h.bucketSeconds * 1000;
  const bucketStartMs = Math.floor(atMs / bucketMs) * bucketMs;
  if (h.open !== null && atMs < h.open.startMs) return h; // clock went back: ignore
  const closed = closeUpTo(h, bucketStartMs);
  const open = closed.open ?? { startMs: bucketStartMs, sum: 0, n: 0, dispersionSum: 0, dispersionN: 0 };
  const withDispersion = dispersion !== null && Number.isFinite(dispersion) && dispersion >= 0;
  return {
    ...closed,
    open: {
      startMs: open.startMs,
      sum: open.sum + tokensPerSecond,
      n: open.n + 1,
      dispersionSum: open.dispersionSum + (withDispersion ? dispersion : 0),
      dispersionN: open.dispersionN + (withDispersion ? 1 : 0),
    },
  };
}

/** Closed buckets as (time, value), oldest first, skipping empty ones. */
export function demandSeries(h: WorkloadHistory): Array<{ atMs: number; tokensPerSecond: number }> {
  const out: Array<{ atMs: number; tokensPerSecond: number }> = [];
  const bucketMs = h.bucketSeconds * 1000;
  h.tokensPerSecond.forEach((v, i) => {
    if (v !== null) out.push({ atMs: h.startMs + i * bucketMs, tokensPerSecond: v });
  });
  return out;
}

/** The most recent closed bucket's dispersion (the burst estimate right after a restart). */
export function lastDispersion(h: WorkloadHistory): number | null {
  for (let i = h.dispersion.length - 1; i >= Math.max(0, h.dispersion.length - 12); i--) {
    const d = h.dispersion[i];
    if (d !== null && d !== undefined) return d;
  }
  return null;
}

/** Evidence kept: the last this many rates that bound a replica's capacity from below. */
export const CAPACITY_EVIDENCE = 24;
/** Evidence needed before it replaces the prior (fewer only ever raise it). */
export const CAPACITY_MIN_EVIDENCE = 4;
/** Saturated rates below this share of the prior are taken for transient queues, not capacity. */
export const CAPACITY_PRIOR_FLOOR = 0.5;

/**
 * Fold capacity observations into the learned figure. `prior` is the planner's estimate.
 *
 * Every observation is a LOWER bound of what a replica can do: a pod with a queue at both ends of an
 * interval worked at least that fast, but a queue seen at two instants does not prove it was busy in
 * between (bursty arrivals queue for one engine step and leave the engine idle after), so most such
 * rates fall short of the capacity, and the more replicas share the load the shorter they fall; a
 * rate above the estimate on any pod proves the estimate low. A mean of those rates is biased low
 * and feeds on itself (in the discrete-event simulation at the planner's true speed a running mean
 * fell to 58% of the capacity in 15 minutes; the fleet grew, per-pod rates fell, and the mean with
 * them). So the estimate is the LARGEST of the last CAPACITY_EVIDENCE observations once there are
 * CAPACITY_MIN_EVIDENCE of them: an engine slower than planned has every saturated pod report the
 * lower figure, which replaces the prior within a few intervals; transient queues leave it near the
 * top. With a prior, saturated rates below CAPACITY_PRIOR_FLOOR of it are not evidence (a pod that
 * slow is queueing on a burst, or on memory, which the KV signal sizes). Until there is enough
 * evidence the prior holds, raised at once by any observation above it.
 */
export function learnCapacity(
  previous: LearnedCapacity | null,
  prior: number | null,
  saturatedRates: readonly number[],
  otherRates: readonly number[],
): LearnedCapacity | null {
  const valid = (x: number): boolean => Number.isFinite(x) && x > 0;
  let evidence = (previous?.evidence ?? []).filter(valid);
  const estimate = previous?.tokensPerSecond ?? prior;
  const add = (xs: number[]): void => {
    if (xs.length > 0)
      evidence = [...evidence, ...xs.map((x) => Math.round(x * 10) / 10)].slice(-CAPACITY_EVIDENCE);
  };
  add(saturatedRates.filter((x) => valid(x) && (prior === null || x >= CAPACITY_PRIOR_FLOOR * prior)));
  add(otherRates.filter((x) => valid(x) && estimate !== null && x > estimate));
  if (evidence.length === 0) return estimate === null ? null : { tokensPerSecond: estimate, observations: 0 };
  const largest = Math.max(...evidence);
  const learned =
    prior !== null && evidence.length < CAPACITY_MIN_EVIDENCE ? Math.max(prior, largest) : largest;
  return { tokensPerSecond: learned, observations: evidence.length, evidence };
}

/** Record a readiness time (seconds), keeping the last MAX_READY_TIMES. */
export function recordTimeToReady(h: WorkloadHistory, seconds: number): WorkloadHistory {
  if (!(Number.isFinite(seconds) && seconds > 0 && seconds < 24 * 3600)) return h;
  return { ...h, timeToReadySeconds: [...h.timeToReadySeconds, seconds].slice(-MAX_READY_TIMES) };
}

/** The learned time to ready: the median of recent observations, or `fallback` without any. */
export function learnedTimeToReady(h: WorkloadHistory, fallback: number): number {
  const xs = [...h.timeToReadySeconds].sort((a, b) => a - b);
  if (xs.length === 0) return fallback;
  return xs[Math.floor((xs.length - 1) / 2)] as number;
}
