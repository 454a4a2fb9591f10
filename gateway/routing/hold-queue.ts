/**
 * Requests held while a model has no ready pod (scale from zero) or every pod is saturated.
 * Pure data structure in simulated or real time (the caller passes `nowMs`; nothing here sets a
 * timer): bounded per model (`maxPerModel`; beyond it `hold` refuses, the gateway answers 429), bounded
 * in models, bounded in wait (`maxWaitMs`; `expire` hands back what waited too long, the gateway
 * answers 503), released in arrival order (`release`, FIFO) when a pod becomes ready.
 *
 * Every entry of one model has the same wait bound, so deadlines grow along each queue and
 * expiring only ever looks at queue heads.
 */
export interface HoldQueueOptions {
  /** Held requests per model at most. */
  maxPerModel: number;
  /** Longest a request is held before `expire` returns it. */
  maxWaitMs: number;
  /** Models with held requests at most (a hostile client asking for many models cannot grow this). */
  maxModels: number;
}

export const DEFAULT_HOLD_QUEUE_OPTIONS: HoldQueueOptions = {
  maxPerModel: 256,
  maxWaitMs: 120_000,
  maxModels: 256,
};

export interface HeldEntry<T> {
  ticket: number;
  model: string;
  item: T;
  heldAtMs: number;
  deadlineMs: number;
}

export type HoldOutcome =
  | { held: true; ticket: number; deadlineMs: number }
  | { held: false; reason: "queue-full" | "too-many-models" };

export class HoldQueue<T> {
  readonly options: HoldQueueOptions;
  private readonly queues = new Map<string, Array<HeldEntry<T>>>();
  private nextTicket = 1;

  constructor(options: Partial<HoldQueueOptions> = {}) {
    this.options = { ...DEFAULT_HOLD_QUEUE_OPTIONS, ...options };
    const { maxPerModel, maxWaitMs, maxModels } = this.options;
    if (!(maxPerModel >= 1) || !(maxWaitMs >= 0) || !(maxModels >= 1)) {
      throw new Error("HoldQueue needs maxPerModel >= 1, maxWaitMs >= 0, maxModels >= 1");
    }
  }

  /** Hold `item` for `model`, or refuse when its queue (or the set of models) is full. */
  hold(model: string, item: T, nowMs: number): HoldOutcome {
    let queue = this.queues.get(model);
    if (queue === undefined) {
      if (this.queues.size >= this.options.maxModels) return { held: false, reason: "too-many-models" };
      queue = [];
      this.queues.set(model, queue);
    }
    if (queue.length >= this.options.maxPerModel) return { held: false, reason: "queue-full" };
    const ticket = this.nextTicket++;
    // Deadlines must not go backwards along the queue even if the caller's clock does.
    const last = queue[queue.length - 1];
    const deadlineMs = Math.max(nowMs + this.options.maxWaitMs, last?.deadlineMs ?? Number.NEGATIVE_INFINITY);
    queue.push({ ticket, model, item, heldAtMs: nowMs, deadlineMs });
    return { held: true, ticket, deadlineMs };
  }

  /** Up to `max` held entries of `model`, oldest first, removed from the queue. */
  release(model: string, max = Number.POSITIVE_INFINITY): Array<HeldEntry<T>> {
    const queue = this.queues.get(model);
    if (queue === undefined) return [];
    const out = queue.splice(0, Math.min(queue.length, Math.max(0, Math.floor(max))));
    if (queue.length === 0) this.queues.delete(model);
    return out;
  }

  /** Entries whose deadline is at or before `nowMs`, removed, in deadline order per model. */
  expire(nowMs: number): Array<HeldEntry<T>> {
    const out: Array<HeldEntry<T>> = [];
    for (const [model, queue] of [...this.queues]) {
      let n = 0;
      while (n < queue.length && (queue[n] as HeldEntry<T>).deadlineMs <= nowMs) n++;
      if (n > 0) out.push(...queue.splice(0, n));
      if (queue.length === 0) this.queues.delete(model);
    }
    return out;
  }

  /** Remove one entry (the client went away); true if it was held. */
  cancel(model: string, ticket: number): boolean {
    const queue = this.queues.get(model);
    if (queue === undefined) return false;
    const i = queue.findIndex((e) => e.ticket === ticket);
    if (i < 0) return false;
    queue.splice(i, 1);
    if (queue.length === 0) this.queues.delete(model);
    return true;
  }

  /** The earliest deadline over all models (when to call `expire` next), or undefined if empty. */
  nextDeadlineMs(): number | undefined {
    let next: number | undefined;
    for (const queue of this.queues.values()) {
      const head = queue[0];
      if (head !== undefined && (next === undefined || head.deadlineMs < next)) next = head.deadlineMs;
    }
    return next;
  }

  /** Held requests of `model` (the `held` of the demand annotation). */
  size(model: string): number {
    return this.queues.get(model)?.length ?? 0;
  }

  totalSize(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /** Models with held requests. */
  models(): string[] {
    return [...this.queues.keys()];
  }
}
