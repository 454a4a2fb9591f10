import { logger } from "../log/logger.js";

/**
 * The controller's work queue, with client-go's workqueue semantics: a key is queued at most once,
 * never handled by two workers at once (a key added while it is being handled is handled again
 * afterwards), failures retry with per-key exponential backoff, and requeue-after keeps the earliest.
 */

export interface BackoffPolicy {
  baseDelayMs: number;
  maxDelayMs: number;
  /** Fraction of the delay randomly taken off (0..1), so that failing keys spread out. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseDelayMs: 500, maxDelayMs: 5 * 60_000, jitter: 0.1 };

/** Delay before retry number `failures` (1 = first retry): base·2^(failures-1), capped, minus jitter. */
export function backoffDelay(
  failures: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, failures - 1);
  // 2^exponent overflows to Infinity long after the cap; min() keeps it finite.
  const raw = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(exponent, 60));
  return Math.round(raw * (1 - policy.jitter * random()));
}

export type HandlerResult = { requeueAfterMs?: number } | void;
export type Handler = (key: string) => Promise<HandlerResult> | HandlerResult;

export interface WorkQueueOptions extends Partial<BackoffPolicy> {
  name?: string;
  /** Handlers running at once (on different keys). Default 1. */
  concurrency?: number;
  random?: () => number;
  /** Called whenever the number of queued keys changes (the queue-depth gauge). */
  onDepthChange?: (depth: number) => void;
  /** Called when a handler failed and the key is retried after `delayMs`. */
  onRetry?: (key: string, failures: number, delayMs: number, error: unknown) => void;
  /**
   * Keys for which this is true when added are taken before every other queued key (in their own FIFO
   * order); a queued key that becomes urgent is moved up. The controller marks ModelDeployments whose
   * spec it has not yet observed, so a new or changed one is not queued behind status-only re-reconciles.
   */
  urgent?: (key: string) => boolean;
  /** Called as a worker takes a key: how long it waited in the queue since it was (last) queued. */
  onWait?: (key: string, waitedMs: number) => void;
  now?: () => number;
}

interface DelayedAdd {
  at: number;
  timer: NodeJS.Timeout;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  /** Urgent keys, taken first (see WorkQueueOptions.urgent). */
  private readonly urgentQueue: string[] = [];
  /**
   * Queued keys: when each was queued and in which list it counts. A key moved up stays in the other
   * list as a stale entry, skipped when reached.
   */
  private readonly queued = new Map<string, { at: number; urgent: boolean }>();
  private readonly processing = new Set<string>();
  /** Keys added while being processed: processed once more when the current run finishes. */
  private readonly dirty = new Set<string>();
  private readonly delayed = new Map<string, DelayedAdd>();
  /** Per failing key: failures counted so far, and when the retry its last counted failure set is due (Date.now ms). */
  private readonly failures = new Map<string, { count: number; retryAtMs: number }>();
  private readonly policy: BackoffPolicy;
  private readonly concurrency: number;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly log;
  private handler: Handler | undefined;
  private shuttingDown = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly options: WorkQueueOptions = {}) {
    this.policy = {
      baseDelayMs: options.baseDelayMs ?? DEFAULT_BACKOFF.baseDelayMs,
      maxDelayMs: options.maxDelayMs ?? DEFAULT_BACKOFF.maxDelayMs,
      jitter: options.jitter ?? DEFAULT_BACKOFF.jitter,
    };
    this.concurrency = Math.max(1, options.concurrency ?? 1);
    this.random = options.random ?? Math.random;
    this.now = options.now ?? (() => performance.now());
    this.log = logger.child({ component: "workqueue", queue: options.name ?? "default" });
  }

  /** Keys waiting to be handled (not counting those in flight or waiting for a delay). */
  get length(): number {
    return this.queued.size;
  }

  /** Keys being handled right now. */
  get inFlight(): number {
    return this.processing.size;
  }

  /** Keys waiting for a requeue-after or backoff delay. */
  get delayedCount(): number {
    return this.delayed.size;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Failures of `key` since it last succeeded (or was forgotten). */
  numRequeues(key: string): number {
    return this.failures.get(key)?.count ?? 0;
  }

  add(key: string): void {
    if (this.shuttingDown) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    const urgent = this.options.urgent?.(key) ?? false;
    const entry = this.queued.get(key);
    if (entry) {
      if (urgent && !entry.urgent) {
        entry.urgent = true;
        this.urgentQueue.push(key);
        this.pump();
      }
      return;
    }
    this.queued.set(key, { at: this.now(), urgent });
    (urgent ? this.urgentQueue : this.queue).push(key);
    this.depthChanged();
    this.pump();
  }

  /** Adds `key` after `delayMs`; when a delayed add is already pending, the earlier one wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { at, timer });
  }

  /**
   * Adds `key` after its next backoff delay, and counts the failure, unless it came before the retry the
   * last counted one set was due: a key re-run early (an event for it came while it was handled, which
   * re-runs it at once) and failing again is the same failure, not a longer one. Otherwise a burst of
   * events during an API outage doubled the delay at each of them: ten in a second put the key's next
   * retry minutes away, long after the API was back (the chaos suite's stale ModelDeployment, under 30%
   * 500s: no event came for it after the faults, so nothing ran it again before the 5-minute backoff).
   * So the delay grows with the time a key has been failing, as a backoff should.
   */
  addRateLimited(key: string, error?: unknown): number {
    const nowMs = Date.now();
    const last = this.failures.get(key);
    const early = !!last && nowMs < last.retryAtMs;
    const count = early ? last.count : (last?.count ?? 0) + 1;
    const delayMs = early ? Math.max(0, last.retryAtMs - nowMs) : backoffDelay(count, this.policy, this.random);
    if (!early) this.failures.set(key, { count, retryAtMs: nowMs + delayMs });
    this.options.onRetry?.(key, count, delayMs, error);
    this.addAfter(key, delayMs);
    return delayMs;
  }

  /** Resets the backoff of `key` (call when it finally succeeded or was deleted). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** Starts the workers. A handler's throw retries the key with backoff; `requeueAfterMs` schedules it again. */
  start(handler: Handler): void {
    if (this.handler) throw new Error("work queue already started");
    this.handler = handler;
    this.pump();
  }

  /**
   * Stops taking work, drops queued and delayed keys, and waits for in-flight handlers.
   * Resolves true when they all finished, false when `timeoutMs` passed first.
   */
  async shutDown(timeoutMs = 30_000): Promise<boolean> {
    this.shuttingDown = true;
    for (const d of this.delayed.values()) clearTimeout(d.timer);
    this.delayed.clear();
    this.queue.length = 0;
    this.urgentQueue.length = 0;
    this.queued.clear();
    this.dirty.clear();
    this.depthChanged();
    if (this.processing.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true))),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (!drained)
      this.log.warn({ inFlight: [...this.processing] }, "shutdown timed out with handlers still running");
    return drained;
  }

  private depthChanged(): void {
    this.options.onDepthChange?.(this.queued.size);
  }

  private pump(): void {
    const handler = this.handler;
    if (!handler) return;
    while (!this.shuttingDown && this.processing.size < this.concurrency && this.queued.size > 0) {
      const urgent = this.urgentQueue.length > 0;
      const key = (urgent ? this.urgentQueue : this.queue).shift()!;
      const entry = this.queued.get(key);
      // A stale entry: the key was moved up (or already taken through its other entry).
      if (!entry || entry.urgent !== urgent) continue;
      this.queued.delete(key);
      this.options.onWait?.(key, this.now() - entry.at);
      this.processing.add(key);
      this.depthChanged();
      void this.process(handler, key);
    }
  }

  private async process(handler: Handler, key: string): Promise<void> {
    let result: HandlerResult = undefined;
    let failed = false;
    let error: unknown;
    try {
      result = await handler(key);
    } catch (err) {
      failed = true;
      error = err;
    }
    this.processing.delete(key);
    if (!this.shuttingDown) {
      if (failed) {
        const delayMs = this.addRateLimited(key, error);
        this.log.debug({ key, delayMs, err: error }, "handler failed; retrying with backoff");
      } else {
        this.forget(key);
        const requeueAfterMs = result?.requeueAfterMs;
        if (requeueAfterMs !== undefined && Number.isFinite(requeueAfterMs))
          this.addAfter(key, requeueAfterMs);
      }
      if (this.dirty.delete(key)) this.add(key);
    }
    if (this.processing.size === 0 && this.shuttingDown) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
    this.pump();
  }
}
