/**
 * Endpoint picking: filter to ready, unsaturated endpoints; score each with the scorers (scorers.ts);
 * take away prefix and session affinity from pods loaded well above the mean (bounded loads); combine
 * with the user's weights; pick the best (ties: least loaded, then rendezvous hashing); say why.
 *
 * `pickEndpoint` only reads the routing state; `recordPick` updates it once the request is sent.
 */
import { PrefixIndex, type PrefixIndexOptions } from "./prefix-index.js";
import { type BlockHashOptions, chainHash, promptBlockHashes } from "./prefix.js";
import {
  estimatedLoad,
  kvCacheScores,
  prefillScores,
  prefixScores,
  queueScores,
  sessionScores,
} from "./scorers.js";
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

/**
 * Default weights, tuned with `npm run bench:routing` (README, Routing): the prefill-work scorer
 * (backlog + uncached part of the prompt) does most of the balancing and already credits a cached
 * prefix in tokens; prefix affinity on top keeps conversations on their pod when the work is close;
 * free KV breaks near-ties; the load scorer is left at 0 because the prefill scorer falls back to the
 * load estimate when the gateway has no backlog figure. Session affinity, when a client sends a
 * session key, outweighs prefix affinity.
 */
export const DEFAULT_PICK_WEIGHTS: PickWeights = {
  prefix: 3,
  queue: 0,
  kvCache: 0.3,
  session: 4,
  prefill: 1,
};

export const DEFAULT_PICK_LIMITS: PickLimits = {
  maxLoadPerEndpoint: Number.POSITIVE_INFINITY,
  affinityLoadFactor: 1.5,
  affinityLoadSlack: 4,
};

export type ScorerName = keyof PickWeights;
export type ScorerScores = Record<ScorerName, readonly number[]>;

/** Weighted sum of per-scorer scores, per endpoint (a scorer left out or weighted 0 adds nothing). */
export function combineScores(scores: Partial<ScorerScores>, weights: PickWeights): number[] {
  const n = Math.max(0, ...Object.values(scores).map((xs) => xs.length));
  const out = new Array<number>(n).fill(0);
  for (const name of Object.keys(weights) as ScorerName[]) {
    const xs = scores[name];
    const w = weights[name];
    if (xs === undefined || w === 0) continue;
    for (let i = 0; i < n; i++) out[i] = (out[i] as number) + w * (xs[i] ?? 0);
  }
  return out;
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
  const prefillCap = limits.maxPendingPrefillTokens ?? Number.POSITIVE_INFINITY;
  const candidates = endpoints.filter(
    (e) =>
      e.ready &&
      estimatedLoad(e) < limits.maxLoadPerEndpoint &&
      !((e.pendingPrefillTokens ?? 0) > 0 && (e.pendingPrefillTokens ?? 0) >= prefillCap),
  );
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
  const shares = prefixScores(candidates, blockHashes, state.prefix);
  const promptTokens = request.promptTokens ?? Math.max(1, Math.ceil(request.prompt.length / 4));
  // The same bound on prefill backlog, when the gateway tracks it, with the slack in prompts of this size.
  const backlogs = candidates.map((e) => e.pendingPrefillTokens);
  const known = backlogs.filter((b): b is number => b !== undefined);
  const backlogCap =
    known.length === candidates.length
      ? (known.reduce((a, b) => a + b, 0) / known.length) * limits.affinityLoadFactor +
        limits.affinityLoadSlack * promptTokens
      : Number.POSITIVE_INFINITY;
  const overloaded = loads.map((l, i) => l > affinityCap || (backlogs[i] ?? 0) > backlogCap);
  const parts: ScorerScores = {
    prefix: shares.map((s, i) => (overloaded[i] ? 0 : s)),
    queue: queueScores(candidates),
    kvCache: kvCacheScores(candidates),
    session: sessionScores(candidates, sessionPod).map((s, i) => (overloaded[i] ? 0 : s)),
    prefill:
      weights.prefill === 0 ? candidates.map(() => 0) : prefillScores(candidates, promptTokens, shares),
  };
  const combined = combineScores(parts, weights);
  // Ties (an idle fleet, a prompt no pod holds): least loaded, then rendezvous hashing on the prompt's
  // most specific block, so that new prompts spread over the pods instead of piling on the first name.
  const key =
    blockHashes[blockHashes.length - 1] ??
    chainHash(0, request.prompt, 0, Math.min(request.prompt.length, 1024));
  const tieRank = candidates.map((e) => chainHash(key, e.podName, 0, e.podName.length));
  let best = 0;
  for (let i = 1; i < candidates.length; i++) {
    const d = (combined[i] as number) - (combined[best] as number);
    if (
      d > 1e-12 ||
      (Math.abs(d) <= 1e-12 &&
        ((loads[i] as number) < (loads[best] as number) ||
          ((loads[i] as number) === (loads[best] as number) &&
            (tieRank[i] as number) > (tieRank[best] as number))))
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
function pickReason(parts: ScorerScores, weights: PickWeights, best: number): PickReason {
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
    ["least-prefill", lead(parts.prefill, weights.prefill)],
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
