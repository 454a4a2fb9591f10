/**
 * Routing evaluation in simulated time: a trace replayed against a fixed fleet of simulated vLLM
 * engines (sim/engine/model.ts, with prefix caching) behind one router. The routers are gpufleet's
 * own picker (gateway/routing/, imported) and today's alternatives:
 *
 * - random: kube-proxy's choice for a Service (iptables/IPVS random);
 * - round-robin;
 * - least-request: Envoy's default LEAST_REQUEST, power of two random choices on the proxy's own
 *   active requests;
 * - CHWBL: KubeAI's prefix hash, consistent hashing with bounded loads (a ring of 256 virtual nodes per
 *   endpoint, key from the start of the prompt, an endpoint is skipped while its in-flight load exceeds
 *   1.25 × the mean load; KubeAI docs: PrefixHash strategy, replication 256, loadFactor 1.25,
 *   prefixCharLength 100 characters, i.e. the prompt's first block here);
 * - GIE-style: the Gateway API Inference Extension's default scheduling profile: a queue scorer
 *   (scraped waiting requests, min-max scaled), a KV-cache utilization scorer and a prefix-cache scorer
 *   (an approximate per-pod LRU index of blocks sent, the same bounded index as gpufleet's), equal
 *   weights, highest score wins.
 *
 * The router sees what a gateway sees: scraped metrics every `scrapeIntervalMs` and its own in-flight
 * counts (a request leaves them when its last token is out). Requests carry block ids: the Mooncake
 * trace's `hash_ids` (512-token blocks), chained into hashes once and used both by the engines' prefix
 * caches and by the routers. The Azure trace has none (a control: prefix scorers have nothing to see).
 */
import { PrefixIndex } from "../../gateway/routing/prefix-index.js";
import { chainHash, chainIds } from "../../gateway/routing/prefix.js";
import {
  DEFAULT_PICK_LIMITS,
  DEFAULT_PICK_WEIGHTS,
  newRoutingState,
  pickEndpoint,
  recordPick,
} from "../../gateway/routing/picker.js";
import { kvCacheScores, prefixScores } from "../../gateway/routing/scorers.js";
import type { EndpointState, PickLimits, PickWeights, RequestFeatures } from "../../gateway/routing/types.js";
import { EngineModel, type EngineParams } from "../engine/model.js";
import { quantile } from "./fleet.js";
import { MOONCAKE_BLOCK_TOKENS, seededRandom, type Trace, type TraceRequest } from "./traces.js";

export interface RoutedRequest {
  features: RequestFeatures;
  /** Key of the prompt's start, for hash-based routers (first block's hash, or unique without blocks). */
  prefixKey: number;
}

export interface Router {
  name: string;
  /** Index into `endpoints` (all ready) for this request; called once per request, in arrival order. */
  pick(request: RoutedRequest, endpoints: readonly EndpointState[], nowMs: number): number;
}

export function randomRouter(seed = 1): Router {
  const random = seededRandom(seed);
  return { name: "random (kube-proxy)", pick: (_r, endpoints) => Math.floor(random() * endpoints.length) };
}

export function roundRobinRouter(): Router {
  let next = 0;
  return { name: "round-robin", pick: (_r, endpoints) => next++ % endpoints.length };
}

/** Envoy LEAST_REQUEST with its default choice_count 2: the less busy of two random endpoints. */
export function leastRequestRouter(seed = 2): Router {
  const random = seededRandom(seed);
  return {
    name: "least-request (Envoy P2C)",
    pick: (_r, endpoints) => {
      const n = endpoints.length;
      const a = Math.floor(random() * n);
      let b = Math.floor(random() * (n - 1));
      if (b >= a) b++;
      if (n === 1) return 0;
      return (endpoints[b] as EndpointState).inFlight < (endpoints[a] as EndpointState).inFlight ? b : a;
    },
  };
}

/** KubeAI-style consistent hashing with bounded loads on the prompt's first block. */
export function chwblRouter(replication = 256, loadFactor = 1.25): Router {
  let ring: Array<{ point: number; pod: string }> = [];
  let ringPods = "";
  const build = (endpoints: readonly EndpointState[]) => {
    const names = endpoints.map((e) => e.podName).join("\u0000");
    if (names === ringPods) return;
    ringPods = names;
    ring = [];
    for (const e of endpoints)
      for (let v = 0; v < replication; v++)
        ring.push({ point: chainHash(v, e.podName, 0, e.podName.length), pod: e.podName });
    ring.sort((x, y) => x.point - y.point);
  };
  return {
    name: "CHWBL (KubeAI prefix hash)",
    pick: (request, endpoints) => {
      build(endpoints);
      const index = new Map(endpoints.map((e, i) => [e.podName, i]));
      const total = endpoints.reduce((s, e) => s + e.inFlight, 0);
      const cap = Math.ceil(((total + 1) / endpoints.length) * loadFactor);
      // First ring point at or after the key, then clockwise to the first endpoint under the cap.
      let lo = 0;
      let hi = ring.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((ring[mid] as { point: number }).point < request.prefixKey) lo = mid + 1;
        else hi = mid;
      }
      for (let k = 0; k < ring.length; k++) {
        const i = index.get((ring[(lo + k) % ring.length] as { pod: string }).pod) as number;
        if ((endpoints[i] as EndpointState).inFlight + 1 <= cap) return i;
      }
      return index.get((ring[lo % ring.length] as { pod: string }).pod) as number;
    },
  };
}

/** GIE-style default profile: queue (min-max of scraped waiting) + KV utilization + prefix, weights 1:1:1. */
export function gieStyleRouter(maxBlocksPerPod: number, seed = 3): Router {
  const index = new PrefixIndex({ maxBlocksPerPod });
  const random = seededRandom(seed);
  return {
    name: "GIE-style (queue+KV+prefix)",
    pick: (request, endpoints, nowMs) => {
      const hashes = request.features.blockHashes ?? [];
      const waiting = endpoints.map((e) => e.metrics?.requestsWaiting ?? 0);
      const minQ = Math.min(...waiting);
      const maxQ = Math.max(...waiting);
      const queue = waiting.map((q) => (maxQ === minQ ? 1 : (maxQ - q) / (maxQ - minQ)));
      const kv = kvCacheScores(endpoints);
      const prefix = prefixScores(endpoints, hashes, index);
      let best: number[] = [];
      let bestScore = Number.NEGATIVE_INFINITY;
      endpoints.forEach((_, i) => {
        const score = (queue[i] as number) + (kv[i] as number) + (prefix[i] as number);
        if (score > bestScore + 1e-12) {
          best = [i];
          bestScore = score;
        } else if (Math.abs(score - bestScore) <= 1e-12) best.push(i);
      });
      const chosen = best[Math.floor(random() * best.length)] as number;
      index.record((endpoints[chosen] as EndpointState).podName, hashes, nowMs);
      return chosen;
    },
  };
}

/** gpufleet's picker, imported from gateway/routing (the code the gateway runs). */
export function gpufleetRouter(
  maxBlocksPerPod: number,
  weights: PickWeights = DEFAULT_PICK_WEIGHTS,
  limits: PickLimits = DEFAULT_PICK_LIMITS,
  name = "gpufleet",
): Router {
  const state = newRoutingState({ prefix: { maxBlocksPerPod } });
  return {
    name,
    pick: (request, endpoints, nowMs) => {
      const pick = pickEndpoint(request.features, endpoints, state, weights, nowMs, limits);
      if (pick === undefined) return 0;
      recordPick(state, request.features, pick, nowMs);
      return endpoints.indexOf(pick.endpoint);
    },
  };
}

export interface RoutingScenario {
  name: string;
  trace: Trace;
  params: EngineParams;
  replicas: number;
  scrapeIntervalMs: number;
  /** Tokens per trace block id (default MOONCAKE_BLOCK_TOKENS). */
  blockTokens?: number;
}

export interface RoutingResult {
  router: string;
  scenario: string;
  requests: number;
  finished: number;
  ttftP50: number;
  ttftP99: number;
  /** The tail beyond p99: in a trace whose p99 falls inside one burst, how late that burst's last requests are. */
  ttftP999: number;
  /** Prompt + output tokens of finished requests per second, first arrival to last finish. */
  tokensPerSecond: number;
  /** Prefix-cache hits / queries, in tokens, summed over the engines. */
  hitRatio: number;
  /** Mean over scrapes (with any load) of max / mean of the engines' running + waiting. */
  imbalance: number;
}

/**
 * The trace at `factor` times its load, as more users: copy c of a request arrives within ±jitter of the
 * original and names its blocks id + c × (max id + 1), so copies are other conversations with the same
 * shape, not free cache hits.
 */
export function scaleUsers(trace: Trace, factor: number, seed = 7, jitterMs = 500): Trace {
  if (factor === 1) return trace;
  const random = seededRandom(seed);
  let maxId = 0;
  for (const r of trace.requests) for (const id of r.blockIds ?? []) if (id > maxId) maxId = id;
  const out: TraceRequest[] = [];
  for (const r of trace.requests) {
    const copies = Math.floor(factor) + (random() < factor - Math.floor(factor) ? 1 : 0);
    for (let c = 0; c < copies; c++) {
      const arrivalMs = c === 0 ? r.arrivalMs : Math.max(0, r.arrivalMs + (random() * 2 - 1) * jitterMs);
      const blockIds = r.blockIds?.map((id) => id + c * (maxId + 1));
      out.push({ ...r, arrivalMs, ...(blockIds ? { blockIds } : {}) });
    }
  }
  out.sort((a, b) => a.arrivalMs - b.arrivalMs);
  return { name: `${trace.name}×${factor}`, requests: out, durationMs: out[out.length - 1]?.arrivalMs ?? 0 };
}

/** `replicas` simulated engines and the gateway's view of them as ready, idle loopback pods (shared by the benches that replay traces through the picker). */
export function simulatedPods(params: EngineParams, replicas: number): { engines: EngineModel[]; endpoints: EndpointState[] } {
  const engines = Array.from({ length: replicas }, () => new EngineModel(params, { tokenEvents: false }));
  const endpoints: EndpointState[] = engines.map((_, i) => ({
    podName: `pod-${i}`,
    namespace: "bench",
    address: `127.0.0.${i + 2}:8000`,
    ready: true,
    inFlight: 0,
  }));
  return { engines, endpoints };
}

/** Replay `scenario` through `router`; deterministic. */
export function simulateRouting(scenario: RoutingScenario, router: Router): RoutingResult {
  const { params, replicas, scrapeIntervalMs, trace } = scenario;
  const blockTokens = scenario.blockTokens ?? MOONCAKE_BLOCK_TOKENS;
  const { engines, endpoints } = simulatedPods(params, replicas);
  for (const endpoint of endpoints) Object.assign(endpoint, { inFlightAtScrape: 0, pendingPrefillTokens: 0 });
  const pendingPrefill = new Map<string, number>();
  const ownerOf = new Map<string, number>();
  let lastFinishMs = 0;
  let finished = 0;
  let finishedTokens = 0;
  const tokensOf = new Map<string, number>();
  const drain = (i: number, nowMs: number) => {
    for (const ev of (engines[i] as EngineModel).advanceTo(nowMs)) {
      const ep = endpoints[i] as EndpointState;
      if (ev.kind === "first-token" || ev.kind === "rejected") {
        // The gateway sees the first streamed chunk: this request's prefill is no longer ahead of others.
        ep.pendingPrefillTokens = (ep.pendingPrefillTokens ?? 0) - (pendingPrefill.get(ev.requestId) ?? 0);
        pendingPrefill.delete(ev.requestId);
      }
      if (ev.kind !== "finished" && ev.kind !== "rejected") continue;
      ep.inFlight--;
      ownerOf.delete(ev.requestId);
      if (ev.kind === "finished") {
        finished++;
        finishedTokens += tokensOf.get(ev.requestId) ?? 0;
        if (ev.atMs > lastFinishMs) lastFinishMs = ev.atMs;
      }
      tokensOf.delete(ev.requestId);
    }
  };
  let imbalanceSum = 0;
  let imbalanceSamples = 0;
  const scrape = (nowMs: number) => {
    let max = 0;
    let sum = 0;
    engines.forEach((engine, i) => {
      drain(i, nowMs);
      const s = engine.snapshot(nowMs);
      const ep = endpoints[i] as EndpointState;
      ep.metrics = {
        kvCacheUtilization: s.kvCacheUtilization,
        requestsRunning: s.requestsRunning,
        requestsWaiting: s.requestsWaiting,
        scrapedAtMs: nowMs,
      };
      ep.inFlightAtScrape = ep.inFlight;
      const load = s.requestsRunning + s.requestsWaiting;
      max = Math.max(max, load);
      sum += load;
    });
    if (sum >= 1) {
      imbalanceSum += max / (sum / replicas);
      imbalanceSamples++;
    }
  };

  let nextScrapeMs = 0;
  const requests = trace.requests;
  for (let n = 0; n < requests.length; n++) {
    const tr = requests[n] as TraceRequest;
    const t = tr.arrivalMs;
    while (nextScrapeMs <= t) {
      scrape(nextScrapeMs);
      nextScrapeMs += scrapeIntervalMs;
    }
    for (let i = 0; i < replicas; i++) drain(i, t);
    const blockHashes = tr.blockIds ? chainIds(tr.blockIds) : [];
    const routed: RoutedRequest = {
      features: {
        model: "bench",
        prompt: "",
        blockHashes,
        promptTokens: tr.promptTokens,
        blockTokens,
      },
      prefixKey: blockHashes[0] ?? chainHash(n, "unique", 0, 6),
    };
    const i = router.pick(routed, endpoints, t);
    const id = `q${n}`;
    ownerOf.set(id, i);
    tokensOf.set(id, tr.promptTokens + tr.outputTokens);
    const ep = endpoints[i] as EndpointState;
    ep.inFlight++;
    ep.pendingPrefillTokens = (ep.pendingPrefillTokens ?? 0) + tr.promptTokens;
    pendingPrefill.set(id, tr.promptTokens);
    (engines[i] as EngineModel).enqueue({
      id,
      promptTokens: tr.promptTokens,
      maxOutputTokens: tr.outputTokens,
      arrivalMs: t,
      ...(blockHashes.length > 0 ? { prefix: { blockHashes, blockTokens } } : {}),
    });
  }
  const endMs = trace.durationMs + 24 * 3600_000;
  for (let i = 0; i < replicas; i++) drain(i, endMs);
  const ttft: number[] = [];
  let queries = 0;
  let hits = 0;
  for (const engine of engines) {
    ttft.push(...engine.takeSamples().ttftSeconds);
    const s = engine.snapshot();
    queries += s.prefixCacheQueriesTotal;
    hits += s.prefixCacheHitsTotal;
  }
  ttft.sort((a, b) => a - b);
  const spanMs = Math.max(1, lastFinishMs - (requests[0]?.arrivalMs ?? 0));
  return {
    router: router.name,
    scenario: scenario.name,
    requests: requests.length,
    finished,
    ttftP50: quantile(ttft, 0.5),
    ttftP99: quantile(ttft, 0.99),
    ttftP999: quantile(ttft, 0.999),
    tokensPerSecond: finishedTokens / (spanMs / 1000),
    hitRatio: queries === 0 ? 0 : hits / queries,
    imbalance: imbalanceSamples === 0 ? 1 : imbalanceSum / imbalanceSamples,
  };
}

/**
 * Blocks a prefix index keeps per pod: twice what the engine's KV cache holds. The engine frees a
 * finished request's blocks but keeps them cached until room is needed, and the index is ordered by
 * send time, not by the engine's release order. Tried on the Mooncake trace at 1× load on 4 pods: 0.5×
 * and 1× the engine's capacity gave a lower hit ratio than 2× (5.9%, 7.5%, 7.7%), 4× no more.
 */
export function prefixIndexBlocksFor(kvCapacityTokens: number, blockTokens: number): number {
  return Math.max(1, Math.floor((2 * kvCapacityTokens) / blockTokens));
}

/** Every router of the comparison, fresh (routers keep state). */
export function allRouters(params: EngineParams, blockTokens = MOONCAKE_BLOCK_TOKENS): Router[] {
  const maxBlocksPerPod = prefixIndexBlocksFor(params.kvCapacityTokens, blockTokens);
  return [
    randomRouter(),
    roundRobinRouter(),
    leastRequestRouter(),
    chwblRouter(),
    gieStyleRouter(maxBlocksPerPod),
    gpufleetRouter(maxBlocksPerPod),
  ];
}

/**
 * Hit ratio of one LRU cache of `capacityTokens` over the trace's request sequence alone (no timing,
 * no compute), as the Mooncake paper's Figure 9 counts it: each request hits its longest cached run of
 * leading blocks (in tokens, capped at its prompt), then all its blocks become most recent, head last.
 */
export function sequenceHitRatio(
  trace: Trace,
  capacityTokens: number,
  blockTokens = MOONCAKE_BLOCK_TOKENS,
): number {
  const capacityBlocks = Math.floor(capacityTokens / blockTokens);
  const lru = new Map<number, true>();
  let hit = 0;
  let total = 0;
  for (const r of trace.requests) {
    const ids = r.blockIds ?? [];
    let k = 0;
    while (k < ids.length && lru.has(ids[k] as number)) k++;
    hit += Math.min(k * blockTokens, r.promptTokens);
    total += r.promptTokens;
    for (let i = ids.length - 1; i >= 0; i--) {
      lru.delete(ids[i] as number);
      lru.set(ids[i] as number, true);
    }
    while (lru.size > capacityBlocks) lru.delete(lru.keys().next().value as number);
  }
  return total === 0 ? 0 : hit / total;
}
