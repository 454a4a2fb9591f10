/**
 * Endpoint picking: filter to ready, unsaturated endpoints; score each with the scorers (scorers.ts);
 * take away prefix and session affinity from pods loaded well above the mean (bounded loads); combine
 * with the user's weights; pick the best (ties: least loaded, then pod name); say why.
 *
 * `pickEndpoint` only reads the routing state; `recordPick` updates it once the request is sent.
 */
import { PrefixIndex, type PrefixIndexOptions } from "./prefix-index.js";
import { type BlockHashOptions, promptBlockHashes } from "./prefix.js";
import { estimatedLoad, kvCacheScores, prefixScores, queueScores, sessionScores } from "./scorers.js";
import { SessionTable, type SessionTableOptions } from "./session-table.js";
import type {
  EndpointState,
  PickLimits,
  PickReason,
  PickResult,
  PickWeights,
  RequestFeatures,
} from "./types.js";

/** What the picker remembers between requests (per model or shared: pod names are the keys). */
export interface RoutingState {
  prefix: PrefixIndex;
  sessions: SessionTable;
  blockHashing: BlockHashOptions;
}

export function newRoutingState(
  options: {
    prefix?: Partial<PrefixIndexOptions>;
    sessions?: Partial<SessionTableOptions>;
    blockHashing?: BlockHashOptions;
  } = {},
): RoutingState {
  return {
    prefix: new PrefixIndex(options.prefix),
    sessions: new SessionTable(options.sessions),
    blockHashing: options.blockHashing ?? {},
  };
}

/** Default weights (tuned with `npm run bench:routing`; see the README's Routing section). */
export const DEFAULT_PICK_WEIGHTS: PickWeights = { prefix: 2, queue: 1, kvCache: 0.5, session: 3 };

export const DEFAULT_PICK_LIMITS: PickLimits = {
  maxLoadPerEndpoint: Number.POSITIVE_INFINITY,
  affinityLoadFactor: 1.5,
  affinityLoadSlack: 4,
};

/** Weighted sum of per-scorer scores, per endpoint. */
export function combineScores(
  scores: {
    prefix: readonly number[];
    queue: readonly number[];
    kvCache: readonly number[];
    session: readonly number[];
  },
  weights: PickWeights,
): number[] {
  return scores.queue.map(
    (_, i) =>
      weights.prefix * (scores.prefix[i] ?? 0) +
      weights.queue * (scores.queue[i] ?? 0) +
      weights.kvCache * (scores.kvCache[i] ?? 0) +
      weights.session * (scores.session[i] ?? 0),
  );
}

export function pickEndpoint(
  request: RequestFeatures,
  endpoints: readonly EndpointState[],
  state: RoutingState,
  weights: PickWeights = DEFAULT_PICK_WEIGHTS,
  nowMs = 0,
  limits: PickLimits = DEFAULT_PICK_LIMITS,
): PickResult | undefined {
  const blockHashes = request.blockHashes ?? promptBlockHashes(request.prompt, state.blockHashing);
  const candidates = endpoints.filter((e) => e.ready && estimatedLoad(e) < limits.maxLoadPerEndpoint);
  if (candidates.length === 0) return undefined;
  if (candidates.length === 1) {
    const only = candidates[0] as EndpointState;
    return { endpoint: only, reason: "only-endpoint", scores: { [only.podName]: 1 }, blockHashes };
  }
  const loads = candidates.map(estimatedLoad);
  const meanLoad = loads.reduce((a, b) => a + b, 0) / loads.length;
  const affinityCap = meanLoad * limits.affinityLoadFactor + limits.affinityLoadSlack;
  const sessionPod =
    request.sessionKey === undefined ? undefined : state.sessions.lookup(request.sessionKey, nowMs);
  const overloaded = loads.map((l) => l > affinityCap);
  const parts = {
    prefix: prefixScores(candidates, blockHashes, state.prefix).map((s, i) => (overloaded[i] ? 0 : s)),
    queue: queueScores(candidates),
    kvCache: kvCacheScores(candidates),
    session: sessionScores(candidates, sessionPod).map((s, i) => (overloaded[i] ? 0 : s)),
  };
  const combined = combineScores(parts, weights);
  let best = 0;
  for (let i = 1; i < candidates.length; i++) {
    const d = (combined[i] as number) - (combined[best] as number);
    if (
      d > 1e-12 ||
      (Math.abs(d) <= 1e-12 &&
        ((loads[i] as number) < (loads[best] as number) ||
          ((loads[i] as number) === (loads[best] as number) &&
            (candidates[i] as EndpointState).podName < (candidates[best] as EndpointState).podName)))
    ) {
      best = i;
    }
  }
  const scores: Record<string, number> = {};
  candidates.forEach((e, i) => (scores[e.podName] = combined[i] as number));
  return {
    endpoint: candidates[best] as EndpointState,
    reason: pickReason(parts, weights, best),
    scores,
    blockHashes,
  };
}

/**
 * The scorer that gave the winner its largest weighted lead over the best of the others on that
 * scorer; least-loaded when the winner leads on none (a tie broken by load).
 */
function pickReason(
  parts: {
    prefix: readonly number[];
    queue: readonly number[];
    kvCache: readonly number[];
    session: readonly number[];
  },
  weights: PickWeights,
  best: number,
): PickReason {
  const lead = (xs: readonly number[], w: number): number => {
    let other = Number.NEGATIVE_INFINITY;
    xs.forEach((x, i) => {
      if (i !== best && x > other) other = x;
    });
    return w * ((xs[best] as number) - other);
  };
  const leads: Array<[PickReason, number]> = [
    ["session-affinity", lead(parts.session, weights.session)],
    ["prefix-affinity", lead(parts.prefix, weights.prefix)],
    ["least-loaded", lead(parts.queue, weights.queue)],
    ["kv-cache", lead(parts.kvCache, weights.kvCache)],
  ];
  let reason: PickReason = "least-loaded";
  let top = 1e-12;
  for (const [r, v] of leads) {
    if (v > top) {
      reason = r;
      top = v;
    }
  }
  return reason;
}

/** After sending: remember the prompt's blocks on the pod, and the session's pod. */
export function recordPick(
  state: RoutingState,
  request: RequestFeatures,
  pick: PickResult,
  nowMs: number,
): void {
  state.prefix.record(pick.endpoint.podName, pick.blockHashes, nowMs);
  if (request.sessionKey !== undefined)
    state.sessions.record(request.sessionKey, pick.endpoint.podName, nowMs);
}
