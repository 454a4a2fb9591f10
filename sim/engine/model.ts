/**
 * A small queueing model of vLLM-style continuous batching, in SIMULATED time.
 *
 * Nothing here reads a clock or sets a timer: the caller moves time forward with `advanceTo(nowMs)`
 * and the model runs the engine steps that complete by then. The HTTP engine simulator drives it with
 * wall-clock time; the trace-driven evaluation (sim/eval) drives it with a discrete-event loop that
 * jumps straight to `nextEventAtMs()`.
 *
 * What is modelled (after vLLM's v1 scheduler, github.com/vllm-project/vllm vllm/v1/core/sched):
 * - a paged KV cache of `kvCapacityTokens` in blocks of 16 tokens (vLLM's default `--block-size`);
 * - FCFS admission: the head of the waiting queue is admitted when the free blocks can hold its prompt
 *   plus a watermark (vLLM keeps 1% of blocks free, `watermark=0.01`), and fewer than `maxNumSeqs`
 *   requests run (vLLM's `--max-num-seqs` default 256);
 * - chunked prefill: each step spends a token budget (`--max-num-batched-tokens`) on one decode token
 *   per running sequence first, then on prompt chunks;
 * - when a decoding sequence needs a new block and none is free, the most recently admitted running
 *   request is preempted (recompute: its blocks are freed and it goes back to the front of the queue),
 *   as vLLM does under memory pressure;
 * - step time from a roofline: max(weight bytes / memory bandwidth, matmul FLOPs / (peak × MFU)) +
 *   KV bytes read / bandwidth + a fixed overhead. So TTFT and inter-token latency grow with load;
 * - automatic prefix caching (on by default, as in vLLM v1; see prefix-cache.ts): a request that names
 *   its prompt blocks (`EngineRequest.prefix`) reuses the longest cached run of leading blocks and skips
 *   their prefill (at least the last prompt token is always computed, as in vLLM); blocks no request
 *   uses stay cached in free KV space and are evicted least recently used when room is needed.
 *   `prefixCacheQueriesTotal` / `prefixCacheHitsTotal` count prompt tokens queried and found, once per
 *   request (vLLM v1's `vllm:prefix_cache_queries` / `vllm:prefix_cache_hits`);
 * - priority scheduling (`schedulingPolicy: "priority"`, vLLM's `--scheduling-policy priority`): the
 *   waiting queue is ordered by (request priority, arrival), a LOWER priority value first (vLLM's
 *   SchedulingPolicy.PRIORITY, a heap on (priority, arrival_time) in vllm/v1/core/sched/request_queue.py),
 *   and the request preempted when the KV cache runs out is the running one with the largest
 *   (priority, arrival) instead of the last admitted (vllm/v1/core/sched/scheduler.py). A preempted
 *   request goes back to its place in that order. Admission still stops at a head that does not fit.
 */
import { type CachedBlock, PrefixCache } from "./prefix-cache.js";

/** Parameters of one engine replica (derive them with `engineParamsFor`). */
export interface EngineParams {
  /** KV-cache capacity of the replica, in tokens. */
  kvCapacityTokens: number;
  /** Tokens per KV block (vLLM default 16). */
  blockSizeTokens: number;
  /** Maximum concurrently running sequences (vLLM `--max-num-seqs`, default 256). */
  maxNumSeqs: number;
  /** Token budget of one step, decode tokens plus prefill chunk (vLLM `--max-num-batched-tokens`). */
  maxNumBatchedTokens: number;
  /** Fraction of KV blocks kept free when admitting a new request (vLLM `watermark`, 0.01). */
  watermarkFraction: number;
  /** Time to stream the weights once per step (memory-bound floor of a decode step), ms. */
  weightReadMs: number;
  /** Compute time per token in a step (2 × active params / (peak FLOPs × MFU)), ms. */
  computeMsPerToken: number;
  /** Time to read one cached token's K and V for attention, ms. */
  kvReadMsPerToken: number;
  /** Fixed per-step cost (scheduling, sampling, kernel launches), ms. */
  stepOverheadMs: number;
  /** Longest prompt + output accepted (vLLM `--max-model-len`); longer requests are rejected. */
  maxModelLenTokens: number;
  /** Automatic prefix caching (vLLM `--enable-prefix-caching`, on by default in v1). Default true. */
  prefixCaching?: boolean;
}

/**
 * The identity of a prompt's leading blocks: `blockHashes[i]` names tokens [i × blockTokens,
 * (i + 1) × blockTokens) and everything before them (a hash chain, or the Mooncake trace's `hash_ids`).
 * Blocks past the prompt's end are ignored; the last block may be partial.
 */
export interface PromptPrefix {
  blockHashes: readonly number[];
  blockTokens: number;
}

export interface EngineRequest {
  id: string;
  promptTokens: number;
  maxOutputTokens: number;
  arrivalMs: number;
  /** Prompt block identities, for prefix caching; without it the request never hits the cache. */
  prefix?: PromptPrefix;
  /**
   * vLLM's per-request `priority` (lower is scheduled first; default 0). Only ordered by with
   * `schedulingPolicy: "priority"`; FCFS ignores it (the HTTP server refuses a non-zero one then, as vLLM).
   */
  priority?: number;
}

export type EngineEventKind = "first-token" | "token" | "finished" | "rejected";

export interface EngineEvent {
  requestId: string;
  kind: EngineEventKind;
  atMs: number;
  /** Index of the output token just produced (0 for the first token); for `finished`, the count. */
  tokenIndex: number;
}

export interface LatencySamples {
  /** Time to first token per request that got its first token, seconds (queueing included). */
  ttftSeconds: number[];
  /** Gap between consecutive output tokens, seconds (only when token events are recorded). */
  interTokenLatencySeconds: number[];
  /** Arrival to last token per finished request, seconds. */
  e2eRequestLatencySeconds: number[];
}

export interface EngineSnapshot {
  /** Share of KV blocks in use, 0..1 (vLLM's `vllm:kv_cache_usage_perc`). */
  kvCacheUtilization: number;
  requestsRunning: number;
  /** Requests that have arrived and wait for admission (vLLM's `vllm:num_requests_waiting`). */
  requestsWaiting: number;
  promptTokensTotal: number;
  generationTokensTotal: number;
  requestsFinishedTotal: number;
  requestsPreemptedTotal: number;
  requestsRejectedTotal: number;
  /** Requests dropped because their client went away (`abort`). */
  requestsAbortedTotal: number;
  ttftSecondsSum: number;
  ttftSecondsCount: number;
  /** Prompt tokens looked up in the prefix cache (vLLM `vllm:prefix_cache_queries`), once per request. */
  prefixCacheQueriesTotal: number;
  /** Of those, tokens found cached (vLLM `vllm:prefix_cache_hits`). */
  prefixCacheHitsTotal: number;
  /** Simulated time the engine has reached. */
  clockMs: number;
}

/** vLLM's `--scheduling-policy` (vllm/config/scheduler.py SchedulerPolicy): arrival order, or request priority. */
export type SchedulingPolicy = "fcfs" | "priority";

export interface EngineOptions {
  /** Emit a `token` event per output token and record inter-token samples (default true). */
  tokenEvents?: boolean;
  /** Default "fcfs". See the file header. */
  schedulingPolicy?: SchedulingPolicy;
}

interface RequestState {
  req: EngineRequest;
  /** Tokens to prefill before decoding: the prompt, or prompt + output so far after a preemption. */
  prefillTarget: number;
  /** Tokens of `prefillTarget` whose KV is computed. */
  prefilledTokens: number;
  /** Tokens whose KV this request holds now (what attention reads each step). */
  contextTokens: number;
  /** Output tokens produced. */
  generatedTokens: number;
  /** KV blocks held (own and shared cached ones). */
  blocks: number;
  /** Cached prefix blocks this request references (included in `blocks`). */
  shared: CachedBlock[];
  /** KV blocks of `shared`. */
  sharedBlocks: number;
  /** Leading prompt blocks (of `req.prefix`) that are cached or registered by this request. */
  cachedPrefixBlocks: number;
  /** Counted in the prefix-cache counters already (first admission only). */
  prefixCounted: boolean;
  firstTokenAtMs: number | null;
  lastTokenAtMs: number | null;
  /** False once preempted in the current step (cheaper than searching `running`). */
  isRunning: boolean;
}

export class EngineModel {
  readonly params: EngineParams;
  readonly schedulingPolicy: SchedulingPolicy;
  private readonly tokenEvents: boolean;
  private readonly totalBlocks: number;
  private readonly watermarkBlocks: number;
  private usedBlocks = 0;
  /**
   * Arrived or future requests. FCFS: in arrival order (preempted requests go back to the front).
   * Priority: in (priority, arrival) order, whether arrived or not (see `headIndex`).
   */
  private waiting: RequestState[] = [];
  /** Running requests in admission order (FCFS: the last one is preempted first). */
  private running: RequestState[] = [];
  private clock = 0;
  private pendingEvents: EngineEvent[] = [];
  private samples: LatencySamples = {
    ttftSeconds: [],
    interTokenLatencySeconds: [],
    e2eRequestLatencySeconds: [],
  };
  private counters = {
    promptTokensTotal: 0,
    generationTokensTotal: 0,
    requestsFinishedTotal: 0,
    requestsPreemptedTotal: 0,
    requestsRejectedTotal: 0,
    requestsAbortedTotal: 0,
    ttftSecondsSum: 0,
    ttftSecondsCount: 0,
    prefixCacheQueriesTotal: 0,
    prefixCacheHitsTotal: 0,
  };
  private readonly prefixCache: PrefixCache | null;
  /** Sum of context tokens (prompt computed + generated) over running sequences, kept incrementally. */
  private runningContextTokens = 0;

  constructor(params: EngineParams, options: EngineOptions = {}) {
    if (!(params.kvCapacityTokens >= params.blockSizeTokens)) {
      throw new Error(`kvCapacityTokens ${params.kvCapacityTokens} must hold at least one block`);
    }
    this.params = params;
    this.tokenEvents = options.tokenEvents ?? true;
    this.schedulingPolicy = options.schedulingPolicy ?? "fcfs";
    this.totalBlocks = Math.floor(params.kvCapacityTokens / params.blockSizeTokens);
    this.watermarkBlocks = Math.floor(this.totalBlocks * params.watermarkFraction);
    this.prefixCache = params.prefixCaching === false ? null : new PrefixCache();
  }

  /** Queue a request. It becomes eligible for admission at `arrivalMs`. */
  enqueue(req: EngineRequest): void {
    const needed = req.promptTokens + req.maxOutputTokens;
    if (
      req.promptTokens < 1 ||
      req.maxOutputTokens < 1 ||
      needed > this.params.maxModelLenTokens ||
      this.blocksFor(needed) > this.totalBlocks - this.watermarkBlocks
    ) {
      this.counters.requestsRejectedTotal++;
      this.pendingEvents.push({
        requestId: req.id,
        kind: "rejected",
        atMs: Math.max(req.arrivalMs, this.clock),
        tokenIndex: 0,
      });
      return;
    }
    const state: RequestState = {
      req,
      prefillTarget: req.promptTokens,
      prefilledTokens: 0,
      contextTokens: 0,
      generatedTokens: 0,
      blocks: 0,
      shared: [],
      sharedBlocks: 0,
      cachedPrefixBlocks: 0,
      prefixCounted: false,
      firstTokenAtMs: null,
      lastTokenAtMs: null,
      isRunning: false,
    };
    if (this.schedulingPolicy === "priority") {
      this.insertByPriority(state);
      return;
    }
    // Keep FCFS order by arrival; arrivals normally come in order, so this is an append.
    let i = this.waiting.length;
    while (i > 0 && (this.waiting[i - 1] as RequestState).req.arrivalMs > req.arrivalMs) i--;
    this.waiting.splice(i, 0, state);
  }

  /** Priority policy: after every waiting request of a lower or equal (priority, arrival). */
  private insertByPriority(state: RequestState): void {
    const key = priorityOf(state);
    let i = this.waiting.length;
    while (i > 0) {
      const before = this.waiting[i - 1] as RequestState;
      const p = priorityOf(before);
      if (p < key || (p === key && before.req.arrivalMs <= state.req.arrivalMs)) break;
      i--;
    }
    this.waiting.splice(i, 0, state);
  }

  /**
   * Index of the waiting request to admit next, or -1 when none has arrived by the clock. FCFS: the head
   * (the queue is in arrival order). Priority: the first arrived one in (priority, arrival) order.
   */
  private headIndex(): number {
    if (this.schedulingPolicy === "fcfs") {
      const head = this.waiting[0];
      return head !== undefined && head.req.arrivalMs <= this.clock ? 0 : -1;
    }
    return this.waiting.findIndex((r) => r.req.arrivalMs <= this.clock);
  }

  /** The earliest arrival among waiting requests (FCFS: the head's). */
  private earliestArrivalMs(): number | undefined {
    if (this.schedulingPolicy === "fcfs") return this.waiting[0]?.req.arrivalMs;
    let earliest: number | undefined;
    for (const r of this.waiting) if (earliest === undefined || r.req.arrivalMs < earliest) earliest = r.req.arrivalMs;
    return earliest;
  }

  /**
   * The client went away (vLLM aborts a request whose connection closed): drop `id` from the queue or
   * the running batch and give back its KV blocks (cached prefix blocks it registered stay cached, as
   * in vLLM). Nothing more is emitted for it. Call after `advanceTo(now)`: the step in progress keeps
   * its planned length, the aborted sequence is just not part of the next one. False if unknown.
   */
  abort(id: string): boolean {
    const w = this.waiting.findIndex((r) => r.req.id === id);
    if (w >= 0) {
      const [r] = this.waiting.splice(w, 1);
      // A preempted request waiting to resume holds no blocks; a fresh one holds none either.
      if (r && r.blocks > 0) this.releaseBlocks(r);
      this.counters.requestsAbortedTotal++;
      return true;
    }
    const i = this.running.findIndex((r) => r.req.id === id);
    if (i < 0) return false;
    const [r] = this.running.splice(i, 1);
    if (!r) return false;
    r.isRunning = false;
    this.releaseBlocks(r);
    this.runningContextTokens -= r.contextTokens;
    r.contextTokens = 0;
    this.counters.requestsAbortedTotal++;
    this.pendingEvents = this.pendingEvents.filter((e) => e.requestId !== id);
    return true;
  }

  /** Run every engine step that completes by `nowMs`; return the events produced, in time order. */
  advanceTo(nowMs: number): EngineEvent[] {
    for (;;) {
      if (!this.hasRunnableWork()) {
        const nextArrival = this.earliestArrivalMs();
        if (nextArrival !== undefined && nextArrival > this.clock && nextArrival <= nowMs) {
          this.clock = nextArrival;
          continue;
        }
        if (nowMs > this.clock) this.clock = nowMs;
        break;
      }
      const duration = this.planStepDuration();
      if (this.clock + duration > nowMs) break;
      this.runStep(duration);
    }
    const out = this.pendingEvents;
    this.pendingEvents = [];
    return out;
  }

  /** When the next event happens (end of the running step, or the next arrival), or null if idle. */
  nextEventAtMs(): number | null {
    if (this.pendingEvents.length > 0) return this.clock;
    if (this.hasRunnableWork()) return this.clock + this.planStepDuration();
    const nextArrival = this.earliestArrivalMs();
    return nextArrival ?? null;
  }

  /**
   * The engine's gauges and counters. `nowMs` (default: the model's clock) decides which queued
   * requests have arrived: the clock stays at the start of a step in progress, while a live server
   * has already queued what arrived since.
   */
  snapshot(nowMs = this.clock): EngineSnapshot {
    const arrivedBy = Math.max(this.clock, nowMs);
    let waitingArrived = 0;
    for (const w of this.waiting) if (w.req.arrivalMs <= arrivedBy) waitingArrived++;
    return {
      kvCacheUtilization: this.totalBlocks === 0 ? 0 : this.usedBlocks / this.totalBlocks,
      requestsRunning: this.running.length,
      requestsWaiting: waitingArrived,
      ...this.counters,
      clockMs: this.clock,
    };
  }

  /** Take (and clear) the latency samples recorded since the last call, for histograms. */
  takeSamples(): LatencySamples {
    const out = this.samples;
    this.samples = { ttftSeconds: [], interTokenLatencySeconds: [], e2eRequestLatencySeconds: [] };
    return out;
  }

  /** Requests admitted or waiting (arrived or not) — what a router's in-flight count sees. */
  inFlight(): number {
    return this.running.length + this.waiting.length;
  }

  private blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.params.blockSizeTokens);
  }

  private hasRunnableWork(): boolean {
    if (this.running.length > 0) return true;
    return this.headIndex() >= 0;
  }

  /** Admit from the head of the queue while the KV cache (with watermark) and seat limit allow. */
  private admit(): void {
    for (;;) {
      const at = this.headIndex();
      if (at < 0) return;
      const head = this.waiting[at] as RequestState;
      if (this.running.length >= this.params.maxNumSeqs) return;
      // Hold the whole prompt (+1 for the first output token) up front: a request only starts when
      // its prompt fits, which is how the queue forms when the cache is full. Cached leading blocks
      // are shared, not allocated; free space still holding cached blocks counts as free.
      const hit = this.lookupPrefix(head);
      const need = this.blocksFor(head.prefillTarget + 1 - hit.coveredTokens);
      if (this.totalBlocks - this.usedBlocks - hit.reclaimedBlocks - need < this.watermarkBlocks) return;
      this.waiting.splice(at, 1);
      const cache = this.prefixCache;
      if (cache !== null && !head.prefixCounted) {
        head.prefixCounted = true;
        this.counters.prefixCacheQueriesTotal += head.req.promptTokens;
        this.counters.prefixCacheHitsTotal += hit.hitTokens;
      }
      if (cache !== null) {
        for (const block of hit.blocks) {
          this.usedBlocks += cache.acquire(block);
          head.sharedBlocks += block.engineBlocks;
        }
        head.shared = hit.blocks;
        head.cachedPrefixBlocks = hit.blocks.length;
        head.prefilledTokens = hit.hitTokens;
        head.contextTokens = hit.hitTokens;
        this.runningContextTokens += hit.hitTokens;
      }
      head.blocks = head.sharedBlocks + need;
      this.usedBlocks += need;
      this.makeRoom();
      head.isRunning = true;
      this.running.push(head);
    }
  }

  /** The cached leading blocks of a request's prompt, and what reusing them saves and costs. */
  private lookupPrefix(r: RequestState): {
    blocks: CachedBlock[];
    coveredTokens: number;
    hitTokens: number;
    reclaimedBlocks: number;
  } {
    const prefix = r.req.prefix;
    const cache = this.prefixCache;
    if (cache === null || prefix === undefined || prefix.blockTokens < 1) {
      return { blocks: [], coveredTokens: 0, hitTokens: 0, reclaimedBlocks: 0 };
    }
    const blocks: CachedBlock[] = [];
    let covered = 0;
    let reclaimed = 0;
    const promptTokens = r.req.promptTokens;
    for (const hash of prefix.blockHashes) {
      if (covered >= promptTokens) break;
      const block = cache.get(hash);
      if (block === undefined) break;
      blocks.push(block);
      covered += block.tokens;
      if (block.refs === 0) reclaimed += block.engineBlocks;
    }
    // vLLM computes at least the last prompt token (its logits give the first output token), in
    // whole blocks: a hit is at most the prompt minus one token, rounded down to a KV block.
    const bs = this.params.blockSizeTokens;
    const hitTokens = Math.min(covered, Math.floor((promptTokens - 1) / bs) * bs);
    return { blocks, coveredTokens: Math.min(covered, promptTokens), hitTokens, reclaimedBlocks: reclaimed };
  }

  /** Evict cached-but-free blocks until the blocks in use fit beside the cached ones. */
  private makeRoom(): void {
    const cache = this.prefixCache;
    if (cache === null) return;
    const overflow = this.usedBlocks + cache.evictableEngineBlocks - this.totalBlocks;
    if (overflow > 0) cache.evict(overflow);
  }

  /**
   * Once a request's prompt is computed, its full prompt blocks become cached (shared) blocks that
   * later requests can reuse; blocks another request already cached stay the request's own.
   */
  private registerPrefix(r: RequestState): void {
    const cache = this.prefixCache;
    const prefix = r.req.prefix;
    if (cache === null || prefix === undefined || prefix.blockTokens < 1) return;
    const promptTokens = r.req.promptTokens;
    for (let i = r.cachedPrefixBlocks; i < prefix.blockHashes.length; i++) {
      const start = i * prefix.blockTokens;
      const tokens = Math.min(prefix.blockTokens, promptTokens - start);
      if (tokens <= 0) break;
      const engineBlocks = this.blocksFor(tokens);
      if (r.blocks - r.sharedBlocks < engineBlocks) break;
      const block = cache.insert(prefix.blockHashes[i] as number, tokens, engineBlocks);
      if (block === undefined) break; // cached meanwhile by another request: the chain goes on there
      r.shared.push(block);
      r.sharedBlocks += engineBlocks;
      r.cachedPrefixBlocks = i + 1;
    }
  }

  /** Give back a request's KV blocks: its own are freed, its cached ones stay cached (free when unused). */
  private releaseBlocks(r: RequestState): void {
    this.usedBlocks -= r.blocks - r.sharedBlocks;
    if (this.prefixCache !== null && r.shared.length > 0)
      this.usedBlocks -= this.prefixCache.release(r.shared);
    r.blocks = 0;
    r.shared = [];
    r.sharedBlocks = 0;
    r.cachedPrefixBlocks = 0;
  }

  /** The duration of the step that would start now (admits first, so it reflects the batch). */
  private planStepDuration(): number {
    this.admit();
    const p = this.params;
    let budget = p.maxNumBatchedTokens;
    let decodeTokens = 0;
    let prefillTokens = 0;
    for (const r of this.running) {
      if (r.prefilledTokens >= r.prefillTarget) {
        if (budget > 0) {
          decodeTokens++;
          budget--;
        }
      }
    }
    for (const r of this.running) {
      if (budget <= 0) break;
      const remaining = r.prefillTarget - r.prefilledTokens;
      if (remaining > 0) {
        const chunk = Math.min(remaining, budget);
        prefillTokens += chunk;
        budget -= chunk;
      }
    }
    const batchTokens = decodeTokens + prefillTokens;
    const matmul = Math.max(p.weightReadMs, p.computeMsPerToken * batchTokens);
    const attention = p.kvReadMsPerToken * this.runningContextTokens;
    return matmul + attention + p.stepOverheadMs;
  }

  private runStep(duration: number): void {
    const p = this.params;
    const end = this.clock + duration;
    let budget = p.maxNumBatchedTokens;
    // Decode first (one token per sequence whose prompt is done), as vLLM's scheduler does.
    const decoding: RequestState[] = [];
    for (const r of this.running) {
      if (r.prefilledTokens >= r.prefillTarget && budget > 0) {
        decoding.push(r);
        budget--;
      }
    }
    const prefilling: Array<{ r: RequestState; chunk: number }> = [];
    for (const r of this.running) {
      if (budget <= 0) break;
      const remaining = r.prefillTarget - r.prefilledTokens;
      if (remaining > 0) {
        const chunk = Math.min(remaining, budget);
        prefilling.push({ r, chunk });
        budget -= chunk;
      }
    }
    this.clock = end;
    const finished = new Set<RequestState>();
    for (const { r, chunk } of prefilling) {
      r.prefilledTokens += chunk;
      r.contextTokens += chunk;
      this.runningContextTokens += chunk;
      if (r.prefilledTokens >= r.prefillTarget) {
        this.registerPrefix(r);
        this.emitToken(r, end, finished);
      }
    }
    for (const r of decoding) {
      if (!r.isRunning) continue; // preempted earlier in this step
      // The new token's KV needs a slot; take a block when the sequence crosses a block boundary.
      const needBlocks = this.blocksFor(r.contextTokens + 1);
      while (r.blocks < needBlocks) {
        if (this.usedBlocks < this.totalBlocks) {
          r.blocks++;
          this.usedBlocks++;
          this.makeRoom();
        } else {
          const victim = this.preemptionVictim();
          this.preempt(victim);
          if (victim === r) break;
        }
      }
      if (!r.isRunning) continue;
      this.emitToken(r, end, finished);
    }
    if (finished.size > 0) {
      this.running = this.running.filter((r) => !finished.has(r));
    }
  }

  private emitToken(r: RequestState, atMs: number, finished: Set<RequestState>): void {
    const index = r.generatedTokens;
    r.generatedTokens++;
    r.contextTokens++;
    this.runningContextTokens++;
    this.counters.generationTokensTotal++;
    if (index === 0) {
      r.firstTokenAtMs = atMs;
      this.counters.promptTokensTotal += r.req.promptTokens;
      const ttft = (atMs - r.req.arrivalMs) / 1000;
      this.samples.ttftSeconds.push(ttft);
      this.counters.ttftSecondsSum += ttft;
      this.counters.ttftSecondsCount++;
      this.pendingEvents.push({ requestId: r.req.id, kind: "first-token", atMs, tokenIndex: 0 });
    } else if (this.tokenEvents) {
      if (r.lastTokenAtMs !== null)
        this.samples.interTokenLatencySeconds.push((atMs - r.lastTokenAtMs) / 1000);
      this.pendingEvents.push({ requestId: r.req.id, kind: "token", atMs, tokenIndex: index });
    }
    r.lastTokenAtMs = atMs;
    if (r.generatedTokens >= r.req.maxOutputTokens) {
      finished.add(r);
      r.isRunning = false;
      this.releaseBlocks(r);
      this.runningContextTokens -= r.contextTokens;
      r.contextTokens = 0;
      this.counters.requestsFinishedTotal++;
      this.samples.e2eRequestLatencySeconds.push((atMs - r.req.arrivalMs) / 1000);
      this.pendingEvents.push({ requestId: r.req.id, kind: "finished", atMs, tokenIndex: r.generatedTokens });
    }
  }

  /**
   * The running request to preempt (`r`, which needs a block, is itself running, so there is one). FCFS:
   * the last admitted. Priority: the largest (priority, arrival), the last admitted among equals.
   */
  private preemptionVictim(): RequestState {
    // Requests that finished earlier in this step may sit at the tail; drop them first.
    while (this.running.length > 0 && !(this.running[this.running.length - 1] as RequestState).isRunning)
      this.running.pop();
    if (this.schedulingPolicy === "fcfs") return this.running[this.running.length - 1] as RequestState;
    let victim = this.running[this.running.length - 1] as RequestState;
    for (const r of this.running) {
      if (!r.isRunning) continue;
      const p = priorityOf(r);
      const v = priorityOf(victim);
      if (p > v || (p === v && r.req.arrivalMs > victim.req.arrivalMs)) victim = r;
    }
    return victim;
  }

  /**
   * Recompute-style preemption: free the request's KV and put it back in the queue: FCFS at the head,
   * priority in its (priority, arrival) place.
   */
  private preempt(victim: RequestState): void {
    const at = this.running.lastIndexOf(victim);
    if (at >= 0) this.running.splice(at, 1);
    victim.isRunning = false;
    this.releaseBlocks(victim);
    this.runningContextTokens -= victim.contextTokens;
    victim.contextTokens = 0;
    // On resume the prompt and the tokens generated so far are recomputed as one prefill; tokens
    // already streamed are not re-emitted (generatedTokens is kept).
    victim.prefilledTokens = 0;
    victim.prefillTarget = victim.req.promptTokens + victim.generatedTokens;
    this.counters.requestsPreemptedTotal++;
    if (this.schedulingPolicy === "priority") this.insertByPriority(victim);
    else this.waiting.unshift(victim);
  }
}

/** A request's priority value (vLLM: lower first; 0 when unset or not finite). */
function priorityOf(r: RequestState): number {
  const p = r.req.priority;
  return p !== undefined && Number.isFinite(p) ? p : 0;
}

// ---------------------------------------------------------------------------------------------
// Deriving parameters from hardware and model
// ---------------------------------------------------------------------------------------------

/** What the model needs to know about an LLM (matches the planner's catalogue fields it uses). */
export interface ModelSpecForEngine {
  name: string;
  /** Total parameters, billions. */
  paramsBillion: number;
  /** Parameters touched per token, billions (equal to the total for dense models). */
  activeParamsBillion: number;
  layers: number;
  kvHeads: number;
  headDim: number;
  /** Bytes per weight (2 for BF16, 1 for FP8). */
  bytesPerParam: number;
  /** Bytes per KV-cache element (2 for BF16/FP16). */
  kvBytesPerElement: number;
  maxContextTokens: number;
}

/** What the model needs to know about a GPU. */
export interface GpuSpecForEngine {
  name: string;
  memoryGiB: number;
  memoryBandwidthGBps: number;
  /** Dense (no sparsity) BF16 tensor throughput, TFLOPS. */
  bf16DenseTflops: number;
}

/** The sizing decision for one replica (what the planner's `planModel()` decides). */
export interface ReplicaPlanForEngine {
  tensorParallelSize: number;
  kvCacheTokensPerReplica: number;
}

/**
 * Local parameter table. The planner (operator/planner/) owns the real catalogue; this small copy
 * keeps the simulator self-contained until it can import the planner's exports.
 * Model shapes: the models' config.json on Hugging Face (meta-llama/Llama-3.1-8B-Instruct,
 * meta-llama/Llama-3.1-70B-Instruct: hidden 4096/8192, 32/80 layers, 8 KV heads, head dim 128,
 * max_position_embeddings 131072). Parameter counts: Meta's Llama 3.1 model card (8.03B, 70.6B).
 */
export const ENGINE_MODELS: Record<string, ModelSpecForEngine> = {
  "llama-3.1-8b": {
    name: "llama-3.1-8b",
    paramsBillion: 8.03,
    activeParamsBillion: 8.03,
    layers: 32,
    kvHeads: 8,
    headDim: 128,
    bytesPerParam: 2,
    kvBytesPerElement: 2,
    maxContextTokens: 131072,
  },
  "llama-3.1-70b": {
    name: "llama-3.1-70b",
    paramsBillion: 70.6,
    activeParamsBillion: 70.6,
    layers: 80,
    kvHeads: 8,
    headDim: 128,
    bytesPerParam: 2,
    kvBytesPerElement: 2,
    maxContextTokens: 131072,
  },
};

/**
 * GPU figures from NVIDIA's data sheets: H100 SXM 80GB HBM3 3.35 TB/s, 989 dense BF16 TFLOPS
 * (1,979 with sparsity); A100 SXM4 80GB 2,039 GB/s, 312 BF16 TFLOPS; L4 24GB 300 GB/s, 121 dense
 * BF16 TFLOPS (242 with sparsity). Names follow the GPU feature discovery `nvidia.com/gpu.product`
 * label.
 */
export const ENGINE_GPUS: Record<string, GpuSpecForEngine> = {
  "NVIDIA-H100-80GB-HBM3": {
    name: "NVIDIA-H100-80GB-HBM3",
    memoryGiB: 80,
    memoryBandwidthGBps: 3350,
    bf16DenseTflops: 989,
  },
  "NVIDIA-A100-SXM4-80GB": {
    name: "NVIDIA-A100-SXM4-80GB",
    memoryGiB: 80,
    memoryBandwidthGBps: 2039,
    bf16DenseTflops: 312,
  },
  "NVIDIA-L4": { name: "NVIDIA-L4", memoryGiB: 24, memoryBandwidthGBps: 300, bf16DenseTflops: 121 },
};

/** KV-cache bytes one token takes: K and V, per layer, per KV head. */
export function kvBytesPerToken(model: ModelSpecForEngine): number {
  return 2 * model.layers * model.kvHeads * model.headDim * model.kvBytesPerElement;
}

/**
 * A fallback sizing when the planner is not at hand: vLLM gives `gpu_memory_utilization` (0.9) of
 * each GPU to weights + activations + KV; we reserve 2 GiB per GPU for activations and CUDA graphs.
 */
export function localReplicaPlan(
  model: ModelSpecForEngine,
  gpu: GpuSpecForEngine,
  tensorParallelSize?: number,
): ReplicaPlanForEngine {
  const gib = 1024 ** 3;
  const weightsBytes = model.paramsBillion * 1e9 * model.bytesPerParam;
  const perToken = kvBytesPerToken(model);
  const candidates = tensorParallelSize !== undefined ? [tensorParallelSize] : [1, 2, 4, 8];
  for (const tp of candidates) {
    const usable = tp * (gpu.memoryGiB * gib * 0.9 - 2 * gib) - weightsBytes;
    const kvTokens = Math.floor(usable / perToken);
    // Prefer the smallest TP that leaves room for a few long requests (32k tokens of KV).
    if (kvTokens >= 32768 || tensorParallelSize !== undefined) {
      return { tensorParallelSize: tp, kvCacheTokensPerReplica: Math.max(0, kvTokens) };
    }
  }
  throw new Error(`${model.name} does not fit on 8 × ${gpu.name}`);
}

/** Tuning knobs of the step-time model; the defaults are stated assumptions, not measurements. */
export interface EngineTuning {
  /** Model FLOPs utilisation of prefill/matmul work (0.5: typical of vLLM prefill on Hopper). */
  mfu: number;
  /** Achieved share of peak memory bandwidth when streaming weights and KV (0.8). */
  bandwidthEfficiency: number;
  /** Efficiency of tensor parallelism (all-reduce cost), applied for TP > 1 (0.85). */
  tensorParallelEfficiency: number;
  stepOverheadMs: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
}

export const DEFAULT_ENGINE_TUNING: EngineTuning = {
  mfu: 0.5,
  bandwidthEfficiency: 0.8,
  tensorParallelEfficiency: 0.85,
  stepOverheadMs: 2,
  // vLLM defaults: --max-num-seqs 256; --max-num-batched-tokens 8192 for online serving with
  // chunked prefill (vllm/engine/arg_utils.py usage-context defaults).
  maxNumSeqs: 256,
  maxNumBatchedTokens: 8192,
};

/** Derive engine parameters for `model` on `gpu` sized by `plan` (roofline, see the file header). */
export function engineParamsFor(
  model: ModelSpecForEngine,
  gpu: GpuSpecForEngine,
  plan: ReplicaPlanForEngine,
  tuning: Partial<EngineTuning> = {},
): EngineParams {
  const t = { ...DEFAULT_ENGINE_TUNING, ...tuning };
  const tp = plan.tensorParallelSize;
  const parallel = tp === 1 ? 1 : tp * t.tensorParallelEfficiency;
  const bandwidthBytesPerMs = (gpu.memoryBandwidthGBps * 1e9 * t.bandwidthEfficiency * parallel) / 1000;
  const flopsPerMs = (gpu.bf16DenseTflops * 1e12 * t.mfu * parallel) / 1000;
  const weightsBytes = model.activeParamsBillion * 1e9 * model.bytesPerParam;
  return {
    kvCapacityTokens: plan.kvCacheTokensPerReplica,
    blockSizeTokens: 16,
    maxNumSeqs: t.maxNumSeqs,
    maxNumBatchedTokens: t.maxNumBatchedTokens,
    watermarkFraction: 0.01,
    weightReadMs: weightsBytes / bandwidthBytesPerMs,
    // A forward pass costs ~2 FLOPs per active parameter per token (Kaplan et al. 2020, "Scaling
    // Laws for Neural Language Models", C_forward ≈ 2N).
    computeMsPerToken: (2 * model.activeParamsBillion * 1e9) / flopsPerMs,
    kvReadMsPerToken: kvBytesPerToken(model) / bandwidthBytesPerMs,
    stepOverheadMs: t.stepOverheadMs,
    maxModelLenTokens: Math.min(model.maxContextTokens, plan.kvCacheTokensPerReplica),
  };
}

/** Convenience: parameters for catalogue names, sized with the local plan. */
export function engineParamsForNames(
  modelName: string,
  gpuName: string,
  tuning: Partial<EngineTuning> = {},
): EngineParams {
  const model = ENGINE_MODELS[modelName];
  const gpu = ENGINE_GPUS[gpuName];
  if (!model) throw new Error(`unknown model ${modelName} (known: ${Object.keys(ENGINE_MODELS).join(", ")})`);
  if (!gpu) throw new Error(`unknown GPU ${gpuName} (known: ${Object.keys(ENGINE_GPUS).join(", ")})`);
  return engineParamsFor(model, gpu, localReplicaPlan(model, gpu), tuning);
}
