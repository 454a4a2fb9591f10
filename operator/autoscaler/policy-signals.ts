/**
 * Stage 1 of the policy, SIGNAL: what this one observation says, in replicas of demand.
 *
 * - `sortPods`: ready pods with usable metrics, ready pods without (and why), starting pods.
 * - `kvAndQueueDemand`: KV-cache demand (utilisation grown by the queue) and queue demand.
 * - `readTokenRates`: per-pod token rates from cumulative counters (saturated pods apart: the
 *   capacity is learned from them, ./policy-learning.ts).
 * - `tokenDemand`: the fleet's token rate as replicas at the utilisation target.
 * Nothing here remembers anything beyond the counters it is handed back; windows are stage 2.
 */
import {
  MIN_RATE_INTERVAL_MS,
  type AutoscalingConfig,
  type MetricsSample,
  type Observation,
  type PodObservation,
  type PodTokenCounter,
  type PolicyTuning,
} from "./policy-types.js";

/** Above this KV-cache utilisation a queued pod is memory-bound, not compute-bound. */
export const SATURATION_KV_CEILING = 0.8;
/**
 * Intervals in a row a pod must be saturated before its rate may move a capacity that has a prior.
 * A queue at two readings can be two bursts with idle time between; at every reading for a minute
 * (6 intervals of 10 s) it is a pod that cannot keep up. In the discrete-event simulation at the
 * planner's true speed, pods with a queue at two readings ran at 30-60% of their capacity.
 */
export const SUSTAINED_SATURATION_INTERVALS = 6;

export type UsablePod = PodObservation & { metrics: MetricsSample };

export interface SortedPods {
  ready: PodObservation[];
  starting: PodObservation[];
  /** Ready pods whose latest sample is fresh and well-formed. */
  usable: UsablePod[];
  /** One "name: why" per ready pod without usable metrics. */
  problems: string[];
  /** ready / usable: the silent ready pods are assumed as loaded as the measured ones. */
  scaleToReady: number;
  /**
   * Mean capacity of the ready replicas in replicas of the preferred product (PodObservation.capacityWeights;
   * 1 when all are alike). Demand measured in preferred replicas is divided by it to count replicas like the
   * ones running: three spilled replicas of a third the throughput serve what one preferred replica does.
   */
  meanWeight: { kv: number; throughput: number };
}

export function problemWithMetrics(pod: PodObservation, nowMs: number, stalenessMs: number): string | null {
  const m = pod.metrics;
  if (m === undefined) return pod.metricsError ? `scrape failed: ${pod.metricsError}` : "no metrics yet";
  const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
  if (!finite(m.kvCacheUtilization) || m.kvCacheUtilization < 0 || m.kvCacheUtilization > 1.0001)
    return "malformed kv-cache utilization";
  if (!finite(m.requestsWaiting) || m.requestsWaiting < 0) return "malformed waiting count";
  if (!finite(m.requestsRunning) || m.requestsRunning < 0) return "malformed running count";
  if (!finite(m.scrapedAtMs)) return "malformed scrape time";
  const age = nowMs - m.scrapedAtMs;
  if (age > stalenessMs) return `metrics ${Math.round(age / 1000)}s old`;
  if (pod.metricsError) return `last scrape failed: ${pod.metricsError}`;
  return null;
}

export function sortPods(observation: Observation, stalenessMs: number): SortedPods {
  const ready = observation.pods.filter((p) => p.phase === "ready");
  const starting = observation.pods.filter((p) => p.phase === "starting");
  const problems: string[] = [];
  const usable: UsablePod[] = [];
  for (const pod of ready) {
    const problem = problemWithMetrics(pod, observation.nowMs, stalenessMs);
    if (problem === null) usable.push(pod as UsablePod);
    else problems.push(`${pod.name}: ${problem}`);
  }
  const scaleToReady = usable.length > 0 ? ready.length / usable.length : 0;
  const mean = (pick: (w: { kv: number; throughput: number }) => number) =>
    ready.length === 0
      ? 1
      : ready.reduce((sum, p) => sum + (p.capacityWeights ? pick(p.capacityWeights) : 1), 0) / ready.length;
  const meanWeight = { kv: mean((w) => w.kv), throughput: mean((w) => w.throughput) };
  return { ready, starting, usable, problems, scaleToReady, meanWeight };
}

/** KV demand of one pod in "pods at 100% KV", counting the cache its queued requests would need. */
export function podKvDemand(m: MetricsSample, maxInflation: number): number {
  if (m.requestsWaiting <= 0) return m.kvCacheUtilization;
  if (m.requestsRunning <= 0) return Math.max(1, m.kvCacheUtilization);
  // A queue is a backlog, not a rate: it says "more than this pod holds", bounded so a burst that
  // drains in seconds does not order pods that would arrive minutes later.
  const inflation = Math.min(maxInflation, (m.requestsRunning + m.requestsWaiting) / m.requestsRunning);
  return m.kvCacheUtilization * inflation;
}

export interface KvAndQueue {
  kvDemandReplicas: number;
  queueDemandReplicas: number;
  /** Waiting in engines plus held at the gateway. */
  requestsWaiting: number;
  requestsRunning: number;
  /** Mean over pods with metrics (null when none). */
  kvCacheUtilization: number | null;
}

export function kvAndQueueDemand(
  pods: SortedPods,
  heldRequests: number | undefined,
  config: AutoscalingConfig,
  tuning: PolicyTuning,
): KvAndQueue {
  const { usable, ready, scaleToReady } = pods;
  // In preferred replicas (each pod's KV utilization is weighted by its KV tokens), then in replicas like the running ones.
  const kvDemandReplicas =
    (usable.reduce((s, p) => s + podKvDemand(p.metrics, tuning.maxQueueInflation), 0) * scaleToReady) /
    config.kvCacheUtilizationTarget /
    pods.meanWeight.kv;
  const held = Number.isFinite(heldRequests) ? Math.max(0, heldRequests ?? 0) : 0;
  const podsWaiting = usable.reduce((s, p) => s + p.metrics.requestsWaiting, 0);
  // Waiting requests are a backlog pinned to the pods that hold them (engines do not migrate
  // requests), so a queue asks for at most maxQueueInflation × the ready pods per decision; a queue
  // that persists keeps asking as the fleet grows.
  const queueDemandReplicas = Math.min(
    (podsWaiting * scaleToReady + held) / config.queueDepthTargetPerReplica,
    tuning.maxQueueInflation * ready.length,
  );
  return {
    kvDemandReplicas,
    queueDemandReplicas,
    requestsWaiting: podsWaiting + held,
    requestsRunning: usable.reduce((s, p) => s + p.metrics.requestsRunning, 0),
    kvCacheUtilization:
      usable.length > 0 ? usable.reduce((s, p) => s + p.metrics.kvCacheUtilization, 0) / usable.length : null,
  };
}

/** Prompt + generation token counter of a sample, or null when it carries no usable counter. */
export function tokenCounterTotal(m: MetricsSample): number | null {
  const counters = [m.promptTokensTotal, m.generationTokensTotal].filter((x) => x !== undefined);
  if (counters.length === 0) return null;
  if (!counters.every((x) => typeof x === "number" && Number.isFinite(x) && x >= 0)) return null;
  return counters.reduce((a, b) => a + b, 0);
}

/**
 * One pod's counter reading: a rate needs two readings of the same pod at least
 * MIN_RATE_INTERVAL_MS apart; a counter that went down means the engine restarted (re-baseline).
 * `finished` (the finished-requests counter, when the engine exports one) is kept with the reading.
 */
export function nextCounterReading(
  previous: PodTokenCounter | undefined,
  total: number,
  atMs: number,
  waiting: number,
  finished?: number,
): PodTokenCounter {
  const withFinished = finished === undefined ? {} : { requestsFinishedTotal: finished };
  if (previous === undefined || total < previous.tokensTotal || atMs < previous.atMs)
    return { atMs, tokensTotal: total, tokensPerSecond: null, waiting, ...withFinished };
  if (atMs - previous.atMs >= MIN_RATE_INTERVAL_MS)
    return {
      atMs,
      tokensTotal: total,
      tokensPerSecond: ((total - previous.tokensTotal) * 1000) / (atMs - previous.atMs),
      waiting,
      ...withFinished,
    };
  return previous;
}

/** A sample's finished-requests counter, or undefined when absent or malformed. */
function finishedCounter(m: MetricsSample): number | undefined {
  const x = m.requestsFinishedTotal;
  return typeof x === "number" && Number.isFinite(x) && x >= 0 ? x : undefined;
}

export interface TokenRates {
  podTokenCounters: Record<string, PodTokenCounter>;
  /** Sum of the measured pods' rates (null: no pod has a rate yet). */
  measuredTokensPerSecond: number | null;
  /** Rates measured this time on pods with a queue (saturated: what they did is what they can do). */
  saturatedRates: number[];
  /** Of those, the rates of pods saturated for SUSTAINED_SATURATION_INTERVALS intervals in a row. */
  sustainedRates: number[];
  /** Rates measured this time on pods without a queue. */
  otherRates: number[];
  /**
   * Tokens per finished request over this interval's new readings (the tokens the pods processed over
   * the requests they finished); null when no pod exports the counter or none finished.
   */
  tokensPerRequest: number | null;
}

export function readTokenRates(
  pods: SortedPods,
  previousCounters: Record<string, PodTokenCounter>,
): TokenRates {
  const podTokenCounters: Record<string, PodTokenCounter> = {};
  const usable = new Set<PodObservation>(pods.usable);
  const saturatedRates: number[] = [];
  const sustainedRates: number[] = [];
  const otherRates: number[] = [];
  let measuredTokensPerSecond: number | null = null;
  let tokensDone = 0;
  let requestsDone = 0;
  for (const pod of pods.ready) {
    const previous = previousCounters[pod.name];
    const total = usable.has(pod) ? tokenCounterTotal((pod as UsablePod).metrics) : null;
    if (total === null) {
      if (previous !== undefined) podTokenCounters[pod.name] = previous; // keep the baseline across a gap
      continue;
    }
    const m = (pod as UsablePod).metrics;
    const finished = finishedCounter(m);
    let reading = nextCounterReading(previous, total, m.scrapedAtMs, m.requestsWaiting, finished);
    // Saturated on compute over the whole interval: a queue at both readings while the KV cache
    // still has room (a pod queueing for want of cache is bound by memory, which the KV signal
    // sizes; and a queue seen only at the end may be a burst that just arrived at an idle pod).
    const rate = reading.tokensPerSecond;
    if (reading !== previous && rate !== null) {
      const saturated =
        m.requestsWaiting > 0 && (previous?.waiting ?? 0) > 0 && m.kvCacheUtilization < SATURATION_KV_CEILING;
      const run = saturated ? (previous?.saturatedIntervals ?? 0) + 1 : 0;
      reading = { ...reading, saturatedIntervals: run };
      // Learned as a preferred replica's capacity: a spilled replica's rate over its throughput weight.
      const weight = pod.capacityWeights?.throughput ?? 1;
      const preferred = rate / (weight > 0 ? weight : 1);
      (saturated ? saturatedRates : otherRates).push(preferred);
      if (run >= SUSTAINED_SATURATION_INTERVALS) sustainedRates.push(preferred);
      const before = previous?.requestsFinishedTotal;
      if (previous !== undefined && finished !== undefined && before !== undefined && finished >= before) {
        tokensDone += total - previous.tokensTotal;
        requestsDone += finished - before;
      }
    }
    podTokenCounters[pod.name] = reading;
    if (reading.tokensPerSecond !== null)
      measuredTokensPerSecond = (measuredTokensPerSecond ?? 0) + reading.tokensPerSecond;
  }
  return {
    podTokenCounters,
    measuredTokensPerSecond,
    saturatedRates,
    sustainedRates,
    otherRates,
    tokensPerRequest: requestsDone > 0 && tokensDone > 0 ? tokensDone / requestsDone : null,
  };
}

/**
 * The fleet's token DEMAND from what it served and how the requests in it moved. Pods serve at most
 * their capacity, so while requests queue the served rate is the capacity, not the demand: a client
 * that switched on at twice the fleet's capacity shows as a fleet at 100%, and the token signal asked
 * for 1/target of the replicas up, while the queue signal is capped per decision (maxQueueInflation)
 * and held back by the pods starting (ServeGen m-small, fluid, day 10 12:20: 12 replicas and a step
 * to 17 replicas' worth; the fleet asked for 16, then grew by one or two a decision while the queue
 * reached 30,000). Conversely, while a backlog drains, the served rate is the capacity working it
 * off, and read as demand it ordered 45 replicas where the oracle needed 18. Conservation of
 * requests gives the demand: arrivals = finished + growth of the requests in the fleet, in tokens
 *     λ = served tokens/s + (inFlight_now − inFlight_then) / Δt × tokens per request,
 * with the tokens per request measured from the engines' counters (tokens over finished requests).
 * In flight, not waiting alone: pods that become ready admit part of the backlog, which leaves the
 * queue without being served. Applied only when one of the two readings holds a backlog of at least
 * `backlogRequests` (the caller passes the queue target times the ready pods): without one the
 * served rate is the demand, and the running count's step-to-step noise is not (one replica's queue
 * target for the whole fleet cost 5.7 GPU-h instead of 4.7 on the Mooncake hour, discrete-event, 1×,
 * for 97.22% against 97.07% within 5 s). Never below 0; null in, null out; without a
 * tokens-per-request figure or a previous reading, the served rate as it is.
 */
export function arrivalTokenRate(
  servedTokensPerSecond: number | null,
  previous: ReadonlyArray<{ atMs: number; waiting?: number; inFlight?: number }>,
  now: { waiting: number; inFlight: number },
  tokensPerRequest: number | null,
  backlogRequests: number,
  nowMs: number,
): number | null {
  if (servedTokensPerSecond === null || tokensPerRequest === null || !(tokensPerRequest > 0))
    return servedTokensPerSecond;
  let last: { atMs: number; waiting?: number; inFlight?: number } | undefined;
  for (let i = previous.length - 1; i >= 0 && last === undefined; i--) {
    const p = previous[i];
    if (p && p.waiting !== undefined && p.inFlight !== undefined && p.atMs < nowMs) last = p;
  }
  if (last?.waiting === undefined || last.inFlight === undefined) return servedTokensPerSecond;
  const seconds = (nowMs - last.atMs) / 1000;
  if (!(seconds * 1000 >= MIN_RATE_INTERVAL_MS) || Math.max(last.waiting, now.waiting) < backlogRequests)
    return servedTokensPerSecond;
  const growth = (now.inFlight - last.inFlight) / seconds;
  return Math.max(0, servedTokensPerSecond + growth * tokensPerRequest);
}

export interface TokenDemand {
  /** The fleet's rate: measured pods' rates scaled to all ready pods (null: none measured). */
  tokensPerSecond: number | null;
  /** That rate in replicas at the utilisation target (null: no rate or no capacity). */
  tokenDemandReplicas: number | null;
}

export function tokenDemand(
  measuredTokensPerSecond: number | null,
  scaleToReady: number,
  capacity: number | null,
  utilizationTarget: number,
  /** SortedPods.meanWeight.throughput: `capacity` is a preferred replica's; the running ones may be slower. */
  meanThroughputWeight = 1,
): TokenDemand {
  // Silent ready pods are assumed as busy as the measured ones (as for KV); pods too new to have a
  // rate yet are not extrapolated, so a batch of fresh pods does not multiply the old pods' rate.
  const tokensPerSecond = measuredTokensPerSecond === null ? null : measuredTokensPerSecond * scaleToReady;
  const perReplica =
    capacity === null ? null : capacity * (meanThroughputWeight > 0 ? meanThroughputWeight : 1);
  const tokenDemandReplicas =
    tokensPerSecond !== null && perReplica !== null
      ? tokensPerSecond / (perReplica * utilizationTarget)
      : null;
  return { tokensPerSecond, tokenDemandReplicas };
}

/**
 * A backlog that is draining: while the fleet's queue shrinks, the served token rate is the fleet's
 * capacity working the backlog off, not the demand, so the token signal asks for no more than the
 * replicas requested; and the queue asks only for what would still wait when a replica ordered now
 * is ready (the queue less its measured drain rate × the time to ready). After a client switched on
 * from nothing, the pods that came up worked off the backlog at full speed, and both signals read
 * that as demand: the fleet grew to maxReplicas for a load the oracle carried on 10. On ServeGen
 * m-small (tuning, fluid, days 8–14): 2,048 → 1,934 GPU-h, 98.24% → 98.18% within 2 s.
 * A queue shorter than one replica's queue target is requests between engine steps, not a backlog.
 */
export function drainingBacklog(
  previous: ReadonlyArray<{ atMs: number; waiting?: number }>,
  waitingNow: number,
  queueDemandReplicas: number,
  tokenDemandReplicas: number | null,
  currentReplicas: number,
  horizonSeconds: number,
  nowMs: number,
): { queueDemandReplicas: number; tokenDemandReplicas: number | null } {
  let last: { atMs: number; waiting?: number } | undefined;
  for (let i = previous.length - 1; i >= 0; i--) {
    const p = previous[i];
    if (p && p.waiting !== undefined && p.atMs < nowMs) {
      last = p;
      break;
    }
  }
  const unchanged = { queueDemandReplicas, tokenDemandReplicas };
  // A few requests between engine steps come and go; a backlog is at least one replica's queue target.
  if (!last || last.waiting === undefined || !(waitingNow < last.waiting) || !(queueDemandReplicas >= 1))
    return unchanged;
  const drainPerSecond = (last.waiting - waitingNow) / ((nowMs - last.atMs) / 1000);
  const remaining = Math.max(0, waitingNow - drainPerSecond * horizonSeconds);
  return {
    queueDemandReplicas:
      waitingNow > 0 ? queueDemandReplicas * (remaining / waitingNow) : queueDemandReplicas,
    tokenDemandReplicas: tokenDemandReplicas === null ? null : Math.min(tokenDemandReplicas, currentReplicas),
  };
}
