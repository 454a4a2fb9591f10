/**
 * One pure function per scorer. Each returns, for every candidate endpoint in order, a score in 0..1
 * (higher is better); `combineScores` weighs them (picker.ts).
 */
import type { PrefixIndex } from "./prefix-index.js";
import type { EndpointState } from "./types.js";

/**
 * The pod's load as this gateway replica can best tell: scraped running + waiting, plus what it sent
 * since that scrape minus what finished since (inFlight - inFlightAtScrape); never below its own
 * in-flight count. Without a scrape: its own in-flight count.
 */
export function estimatedLoad(e: EndpointState): number {
  // A smaller or slower replica (spill-over on another GPU product) is as loaded by fewer requests: the
  // tighter of its KV-cache and token-throughput capacities counts.
  const capacity = Math.min(weightOf(e.capacityWeight), weightOf(e.throughputWeight));
  return requestLoad(e) / capacity;
}

function weightOf(weight: number | undefined): number {
  return weight !== undefined && weight > 0 ? weight : 1;
}

/** estimatedLoad in requests, not weighed by capacity. */
function requestLoad(e: EndpointState): number {
  const own = Math.max(0, e.inFlight);
  if (e.metrics === undefined) return own;
  const scraped = e.metrics.requestsRunning + e.metrics.requestsWaiting;
  return Math.max(own, scraped + own - Math.max(0, e.inFlightAtScrape ?? 0));
}

/** Prefix affinity: the share of the prompt's blocks the pod is believed to hold as a cached prefix. */
export function prefixScores(
  endpoints: readonly EndpointState[],
  hashes: readonly number[],
  index: PrefixIndex,
): number[] {
  if (hashes.length === 0) return endpoints.map(() => 0);
  return endpoints.map((e) => index.matchedBlocks(e.podName, hashes) / hashes.length);
}

/**
 * Load: (least load + 1) / (load + 1). The least-loaded pod scores 1; a pod with twice its load (+1)
 * scores 1/2. A ratio rather than min-max scaling, so that 3 against 2 requests is a small difference
 * and 30 against 2 a large one.
 */
export function queueScores(endpoints: readonly EndpointState[]): number[] {
  const loads = endpoints.map(estimatedLoad);
  const least = Math.min(...loads);
  return loads.map((l) => (least + 1) / (l + 1));
}

/**
 * Free KV cache: 1 - scraped utilization. A pod not scraped yet scores like the mean of the others
 * (or 0.5 if none is), so it is neither favoured nor shunned for lack of data.
 */
export function kvCacheScores(endpoints: readonly EndpointState[]): number[] {
  const known = endpoints.filter((e) => e.metrics !== undefined);
  const fallback =
    known.length === 0
      ? 0.5
      : known.reduce((s, e) => s + (1 - (e.metrics?.kvCacheUtilization ?? 0)), 0) / known.length;
  // Free KV cache in tokens of the largest pod: a smaller replica's free share counts for less.
  return endpoints.map((e) =>
    e.metrics === undefined
      ? fallback
      : (1 - Math.min(1, Math.max(0, e.metrics.kvCacheUtilization))) * Math.min(1, Math.max(0, e.capacityWeight ?? 1)),
  );
}

/** Session affinity: 1 for the pod the session last went to, 0 for the others. */
export function sessionScores(endpoints: readonly EndpointState[], sessionPod: string | undefined): number[] {
  return endpoints.map((e) => (sessionPod !== undefined && e.podName === sessionPod ? 1 : 0));
}

/**
 * Prefill work ahead of the request's first token on each pod, in tokens of the fastest pod's time: the
 * pod's prefill backlog (`pendingPrefillTokens`, or, without it, its requests × this prompt's size) plus
 * the share of this prompt the pod does not hold cached (`1 - prefixShare`), over its token-throughput
 * weight. Scored (least + c) / (cost + c), c below.
 */
/**
 * Smoothing of the prefill score, in tokens (about 0.27 s of Llama 3.1 8B prefill on an H100): pods
 * whose prefill work differs by much less than this score alike, so prefix affinity decides between
 * them. Tuned with `npm run bench:routing` (512, 2,048, 4,096, 8,192 tried; 8,192 kept the best hit
 * ratio at both loads of the Mooncake trace, TTFT p99 within 5% of the best of the four).
 */
export const PREFILL_SCORE_SMOOTHING_TOKENS = 8192;

export function prefillScores(
  endpoints: readonly EndpointState[],
  promptTokens: number,
  prefixShares: readonly number[],
): number[] {
  const tokens = Math.max(1, promptTokens);
  const costs = endpoints.map((e, i) => {
    const backlog = e.pendingPrefillTokens ?? requestLoad(e) * tokens;
    // In time, not tokens: a replica of a third the token throughput takes three times as long over both.
    const work = Math.max(0, backlog) + tokens * (1 - Math.min(1, Math.max(0, prefixShares[i] ?? 0)));
    return work / weightOf(e.throughputWeight);
  });
  const least = Math.min(...costs);
  const c = PREFILL_SCORE_SMOOTHING_TOKENS;
  return costs.map((cost) => (least + c) / (cost + c));
}
