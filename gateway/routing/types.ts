/**
 * The gateway's endpoint-picking vocabulary: what it knows about each pod of a model, what it knows
 * about a request, and what a pick returns. Pure data; no I/O anywhere in gateway/routing/.
 *
 * The gateway server (gateway/, outside routing/) fills `EndpointState` from its pod informer (ready
 * flag, `ip:port`), from the same scrapes the autoscaler uses (operator/metrics: `EngineMetricsSample`)
 * and from its own in-flight counter; it builds `RequestFeatures` from the request body and headers,
 * calls `pickEndpoint`, then `recordPick` once it has sent the request, and `releaseEndpoint`-style
 * bookkeeping of in-flight counts stays on its side.
 */
import type { EngineMetricsSample } from "../../operator/metrics/engines.js";

/** What the gateway knows about one pod that serves the request's model. */
export interface EndpointState {
  /** Pod name: the key of the per-pod prefix index and of session affinity. */
  podName: string;
  namespace: string;
  /** `ip:port` to dial (pod IP and the engine's `http` port). */
  address: string;
  /** The pod is Ready and not terminating. Only ready endpoints are picked. */
  ready: boolean;
  /**
   * Last successful scrape (operator/metrics). Absent before the first scrape or when the last one
   * failed: the picker then relies on the gateway's in-flight count alone.
   */
  metrics?: Pick<
    EngineMetricsSample,
    "kvCacheUtilization" | "requestsWaiting" | "requestsRunning" | "scrapedAtMs"
  >;
  /** Requests this gateway replica has sent to the pod and not yet seen finish (now). */
  inFlight: number;
  /**
   * This replica's `inFlight` at the time of the last scrape. Between scrapes the picker estimates the
   * pod's load as scraped running + waiting + (inFlight - inFlightAtScrape): requests sent since the
   * scrape count at once, and requests finished since then are taken off. Absent: 0.
   */
  inFlightAtScrape?: number;
  /**
   * Prompt tokens (approximate: characters / 4) of the requests this replica sent to the pod that have
   * not streamed their first token yet: the prefill backlog the pod still has to work through for this
   * gateway. Absent: the prefill scorer falls back to the load estimate.
   */
  pendingPrefillTokens?: number;
  /**
   * The pod's capacity relative to the largest of its model's pods (KV-cache tokens of its plan, which
   * differ when replicas spilled over to another GPU product), in (0, 1]. Load is counted in units of
   * the largest pod's capacity and free KV cache in its tokens. Absent: 1.
   */
  capacityWeight?: number;
  /**
   * The pod's token throughput relative to the fastest of its model's pods (its plan's GPU product x GPUs
   * per replica, operator/autoscaler/capacity-weight.ts), in (0, 1]: its load and its prefill work count
   * in units of the fastest pod's time. Absent: 1.
   */
  throughputWeight?: number;
}

/** What the picker knows about a request. */
export interface RequestFeatures {
  /** The OpenAI `model` field. */
  model: string;
  /**
   * The prompt as text: `/v1/completions` `prompt`, or chat `messages` flattened with `flattenChat`
   * (prefix.ts), so the same conversation prefix gives the same text.
   */
  prompt: string;
  /** Session key (header `x-session-id` by default), when the client sends one. */
  sessionKey?: string;
  /** Largest round trip to the serving region the request accepts, ms (gateway/region-router.ts). */
  latencyBudgetMs?: number;
  /**
   * The prompt's block hash chain (prefix.ts `promptBlockHashes`). Computed from `prompt` when absent;
   * a caller that already has block identities (the trace replay in the routing benchmark, whose
   * Mooncake `hash_ids` name 512-token blocks) passes them here instead.
   */
  blockHashes?: readonly number[];
  /** Prompt tokens, approximately (default: ceil(prompt characters / 4)). */
  promptTokens?: number;
  /** Tokens per entry of `blockHashes` (default: prefix.ts DEFAULT_BLOCK_CHARS / 4 = 64). */
  blockTokens?: number;
}

/** Why an endpoint was picked (the `reason` label of `gpufleet_gateway_picks_total`). */
export const PICK_REASONS = [
  /** One ready endpoint: nothing to choose. */
  "only-endpoint",
  /** The session key's pod, still ready and not overloaded. */
  "session-affinity",
  /** The pod that already holds the longest cached prefix of the prompt won on that score. */
  "prefix-affinity",
  /** Won on load: fewest waiting + running (estimated) requests. */
  "least-loaded",
  /** Won on free KV cache. */
  "kv-cache",
  /** Won on the least prefill work ahead of its first token (backlog + uncached part of the prompt). */
  "least-prefill",
] as const;
export type PickReason = (typeof PICK_REASONS)[number];

/** Weights of the scorers (each scorer scores 0..1; the combined score is the weighted sum). */
export interface PickWeights {
  /** Share of the prompt's blocks the pod is believed to hold (longest cached prefix). */
  prefix: number;
  /** Load: estimated waiting + running requests, relative to the least and most loaded pods. */
  queue: number;
  /** Free KV cache (1 - scraped utilization). */
  kvCache: number;
  /** 1 for the pod the session key last went to. */
  session: number;
  /**
   * Estimated prefill work before this request's first token on the pod: the pod's prefill backlog plus
   * the part of this prompt the pod does not hold cached, relative to the cheapest pod.
   */
  prefill: number;
}

/** Bounds that make the picker skip an endpoint (and hold the request when none is left). */
export interface PickLimits {
  /**
   * An endpoint whose estimated load (waiting + running + new in-flight) reaches this is saturated:
   * not picked. When every ready endpoint is saturated `pickEndpoint` returns undefined and the
   * gateway holds the request. Infinity: never.
   */
  maxLoadPerEndpoint: number;
  /**
   * An endpoint with a prefill backlog (`pendingPrefillTokens`) of this many tokens or more is
   * saturated too: requests beyond it wait at the gateway, where they can still go to whichever pod
   * frees first (a pod that just became ready included), instead of sharing one engine's prefill
   * (chunked prefill gives every admitted prompt a slice, so a burst makes every first token late).
   * A pod with no backlog always takes a request, however large. Infinity: never. The gateway sets it
   * per model from the plan: the prompt tokens one replica prefills within the TTFT objective.
   */
  maxPendingPrefillTokens?: number;
  /**
   * Prefix and session affinity give way to load when the affine pod's load exceeds the mean load
   * of the ready pods by more than this factor plus `affinityLoadSlack` requests (a bounded-load
   * rule, as in consistent hashing with bounded loads), or, when every pod has a prefill backlog
   * figure, its backlog exceeds the mean backlog by this factor plus `affinityLoadSlack` prompts of
   * this request's size.
   */
  affinityLoadFactor: number;
  affinityLoadSlack: number;
}

export interface PickResult {
  endpoint: EndpointState;
  reason: PickReason;
  /** Combined score of each candidate, by pod name (for debugging and tests). */
  scores: Record<string, number>;
  /** The prompt's block hashes, to pass to `recordPick`. */
  blockHashes: readonly number[];
}
