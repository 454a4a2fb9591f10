/**
 * Requests held while a model has no ready pod (scale from zero) or every pod is saturated.
 * Pure data structure in simulated or real time (the caller passes `nowMs`; nothing here sets a
 * timer): bounded per model (`maxPerModel`), bounded in models, bounded in wait (`expire` hands back
 * what waited past its deadline, the gateway answers 503).
 *
 * Priority under overload (issue 14 §2):
 * - Bands: an entry carries a `priority` (higher is released first; 0 without tenancy). A band is only
 *   released when every higher band of that model is empty.
 * - Fair within a band: weighted fair queueing by cost (tokens) between `fairnessKey`s (tenants). Each
 *   key's entries get start-time tags `S = max(V, F_prev)` and finish tags `F = S + cost / weight`; the
 *   entry with the smallest finish tag is released next and the band's virtual time `V` advances to its
 *   start tag. One key alone is served in arrival order (FIFO, the behaviour without tenancy).
 * - Shedding: `hold` with `nowMs` estimates when each held entry will be released from the recent release
 *   rate of that model (releases must be told their time: `release(model, max, nowMs)`), in release
 *   order. An entry that would be released after its deadline is shed now (the gateway answers 429)
 *   instead of waiting to fail later; the order puts the lowest band last, so it is shed first. When the
 *   queue is full, an arrival of a higher band evicts the last entry of the lowest band below it.
 *   Without a rate estimate (nothing released lately, e.g. scale from zero) nothing is shed by
 *   prediction; deadlines still bound every wait.
 */
export interface HoldQueueOptions {
  /** Held requests per model at most. */
  maxPerModel: number;
  /** Longest a request is held before `expire` returns it (bands without their own limit). */
  maxWaitMs: number;
  /** Models with held requests at most (a hostile client asking for many models cannot grow this). */
  maxModels: number;
  /** Longest wait per priority band; bands not listed use `maxWaitMs`. */
  bandMaxWaitMs?: Readonly<Record<number, number>>;
  /** Releases remembered per model to estimate its release rate (for shedding). */
  rateWindow?: number;
  /** Releases older than this do not count for the rate estimate. */
  rateHorizonMs?: number;
}

export const DEFAULT_HOLD_QUEUE_OPTIONS: HoldQueueOptions = {
  maxPerModel: 256,
  maxWaitMs: 120_000,
  maxModels: 256,
};

const DEFAULT_RATE_WINDOW = 32;
const DEFAULT_RATE_HORIZON_MS = 30_000;
/** Fewest releases in the window before their rate is trusted. */
const MIN_RATE_SAMPLES = 4;

/** How a held request is placed among others: its band, its fairness key, what it costs. */
export interface HoldClass {
  /** Band: higher is released first. Default 0. */
  priority?: number;
  /** Flows that share a band fairly (the tenant). Default "". */
  fairnessKey?: string;
  /** Cost in the fair share, e.g. prompt + max output tokens. Default 1; at least 1. */
  cost?: number;
  /** Weight of the fairness key in its band. Default 1. */
  weight?: number;
  /**
   * This entry's own wait limit (a usage tier's maxQueueWaitMs), at most its band's: its deadline, and
   * so the prediction that sheds it, use it. Default: the band's limit.
   */
  maxWaitMs?: number;
}

export interface HeldEntry<T> {
  ticket: number;
  model: string;
  item: T;
  heldAtMs: number;
  deadlineMs: number;
  priority: number;
  fairnessKey: string;
  cost: number;
  /** Weighted-fair-queueing tags within the band. */
  startTag: number;
  finishTag: number;
}

export type HoldOutcome<T = unknown> =
  | {
      held: true;
      ticket: number;
      deadlineMs: number;
      /** Entries of lower bands (or later in order) that this arrival pushed out: answer them 429. */
      shed: Array<HeldEntry<T>>;
    }
  | {
      held: false;
      reason: "queue-full" | "too-many-models" | "shed";
      /** With reason "shed": others this arrival's prediction shed as well (answer them 429 too). */
      shed?: Array<HeldEntry<T>>;
    };

interface Band {
  virtualTime: number;
  /** Last finish tag per fairness key (deleted once it is at or behind the virtual time and idle). */
  lastFinish: Map<string, number>;
}

interface ModelQueue<T> {
  entries: Array<HeldEntry<T>>;
  bands: Map<number, Band>;
  /** Times of recent releases (bounded ring, oldest first). */
  releases: number[];
}

/** Release order: higher band first, then smaller finish tag, then earlier ticket. */
function byReleaseOrder<T>(a: HeldEntry<T>, b: HeldEntry<T>): number {
  return b.priority - a.priority || a.finishTag - b.finishTag || a.ticket - b.ticket;
}

export class HoldQueue<T> {
  readonly options: HoldQueueOptions;
  private readonly queues = new Map<string, ModelQueue<T>>();
  private nextTicket = 1;

  constructor(options: Partial<HoldQueueOptions> = {}) {
    this.options = { ...DEFAULT_HOLD_QUEUE_OPTIONS, ...options };
    const { maxPerModel, maxWaitMs, maxModels } = this.options;
    if (!(maxPerModel >= 1) || !(maxWaitMs >= 0) || !(maxModels >= 1)) {
      throw new Error("HoldQueue needs maxPerModel >= 1, maxWaitMs >= 0, maxModels >= 1");
    }
    for (const [band, wait] of Object.entries(this.options.bandMaxWaitMs ?? {}))
      if (!Number.isFinite(Number(band)) || !(wait >= 0))
        throw new Error(`HoldQueue bandMaxWaitMs[${band}] must be a number >= 0`);
  }

  /** The wait limit of a band. */
  maxWaitFor(priority: number): number {
    return this.options.bandMaxWaitMs?.[priority] ?? this.options.maxWaitMs;
  }

  /**
   * Hold `item` for `model` in its band and fair share, or refuse it: when the model's queue (or the set
   * of models) is full and nothing of a lower band can make room, or when its predicted wait exceeds its
   * band's limit (`shed`). Lower-band entries this arrival pushes past their deadlines come back in `shed`.
   */
  hold(model: string, item: T, nowMs: number, cls: HoldClass = {}): HoldOutcome<T> {
    const priority = Number.isFinite(cls.priority) ? (cls.priority as number) : 0;
    const fairnessKey = cls.fairnessKey ?? "";
    const cost = Math.max(1, Number.isFinite(cls.cost) ? (cls.cost as number) : 1);
    const weight = cls.weight !== undefined && cls.weight > 0 && Number.isFinite(cls.weight) ? cls.weight : 1;
    let queue = this.queues.get(model);
    if (queue === undefined) {
      if (this.queues.size >= this.options.maxModels) return { held: false, reason: "too-many-models" };
      queue = { entries: [], bands: new Map(), releases: this.idleReleases.get(model) ?? [] };
      this.idleReleases.delete(model);
      this.queues.set(model, queue);
    }
    const shed: Array<HeldEntry<T>> = [];
    if (queue.entries.length >= this.options.maxPerModel) {
      // Full: the last entry (in release order) of the lowest band gives way to a higher band.
      const victim = queue.entries.reduce<HeldEntry<T> | undefined>(
        (worst, e) => (worst === undefined || byReleaseOrder(e, worst) > 0 ? e : worst),
        undefined,
      );
      if (victim === undefined || victim.priority >= priority) {
        if (queue.entries.length === 0) this.queues.delete(model);
        return { held: false, reason: "queue-full" };
      }
      this.remove(queue, victim.ticket);
      shed.push(victim);
    }
    let band = queue.bands.get(priority);
    if (band === undefined) queue.bands.set(priority, (band = { virtualTime: 0, lastFinish: new Map() }));
    const startTag = Math.max(band.virtualTime, band.lastFinish.get(fairnessKey) ?? 0);
    const finishTag = startTag + cost / weight;
    band.lastFinish.set(fairnessKey, finishTag);
    const ticket = this.nextTicket++;
    // Deadlines must not go backwards within a band even if the caller's clock does.
    let lastDeadline = Number.NEGATIVE_INFINITY;
    for (const e of queue.entries)
      if (e.priority === priority) lastDeadline = Math.max(lastDeadline, e.deadlineMs);
    const own = cls.maxWaitMs !== undefined && Number.isFinite(cls.maxWaitMs) && cls.maxWaitMs >= 0 ? cls.maxWaitMs : undefined;
    const deadlineMs =
      own !== undefined
        ? nowMs + Math.min(own, this.maxWaitFor(priority))
        : Math.max(nowMs + this.maxWaitFor(priority), lastDeadline);
    const entry: HeldEntry<T> = {
      ticket,
      model,
      item,
      heldAtMs: nowMs,
      deadlineMs,
      priority,
      fairnessKey,
      cost,
      startTag,
      finishTag,
    };
    queue.entries.push(entry);
    shed.push(...this.shedPredicted(queue, nowMs));
    const self = shed.findIndex((e) => e.ticket === ticket);
    if (self >= 0) {
      shed.splice(self, 1);
      if (queue.entries.length === 0) this.queues.delete(model);
      return { held: false, reason: "shed", shed };
    }
    return { held: true, ticket, deadlineMs, shed };
  }

  /**
   * Releases per second of `model` lately (from the times given to `release`), or undefined when too
   * few releases were seen within the horizon.
   */
  releaseRate(model: string, nowMs: number): number | undefined {
    const times = this.queues.get(model)?.releases ?? this.idleReleases.get(model);
    if (times === undefined) return undefined;
    const horizon = this.options.rateHorizonMs ?? DEFAULT_RATE_HORIZON_MS;
    const recent = times.filter((t) => t >= nowMs - horizon);
    if (recent.length < MIN_RATE_SAMPLES) return undefined;
    // n releases make n - 1 intervals between the first and the last; a stall since the last one longer
    // than that span stretches it to now (the rate falls while nothing is released).
    const first = recent[0] as number;
    const last = recent[recent.length - 1] as number;
    const span = last - first;
    const spanMs = Math.max(1, nowMs - last > span ? nowMs - first : span);
    return ((recent.length - 1) / spanMs) * 1000;
  }

  /** Release history of models whose queue emptied (so the next burst has a rate at once). */
  private readonly idleReleases = new Map<string, number[]>();

  /** Removes (sheds) entries predicted to be released after their deadline, in release order. */
  private shedPredicted(queue: ModelQueue<T>, nowMs: number): Array<HeldEntry<T>> {
    const model = queue.entries[0]?.model;
    if (model === undefined) return [];
    const rate = this.releaseRate(model, nowMs);
    if (rate === undefined || !(rate > 0)) return [];
    const ordered = [...queue.entries].sort(byReleaseOrder);
    const out: Array<HeldEntry<T>> = [];
    let position = 0;
    for (const entry of ordered) {
      const predictedReleaseMs = nowMs + ((position + 1) / rate) * 1000;
      if (predictedReleaseMs > entry.deadlineMs) out.push(entry);
      else position++;
    }
    for (const e of out) this.remove(queue, e.ticket);
    return out;
  }

  /** Up to `max` held entries of `model`, highest band first and fair within it, removed from the queue. */
  release(model: string, max = Number.POSITIVE_INFINITY, nowMs?: number): Array<HeldEntry<T>> {
    const queue = this.queues.get(model);
    if (queue === undefined) return [];
    const n = Math.min(queue.entries.length, Math.max(0, Math.floor(max)));
    const out: Array<HeldEntry<T>> = [];
    for (let k = 0; k < n; k++) {
      let best: HeldEntry<T> | undefined;
      for (const e of queue.entries) if (best === undefined || byReleaseOrder(e, best) < 0) best = e;
      if (best === undefined) break;
      this.remove(queue, best.ticket);
      const band = queue.bands.get(best.priority);
      if (band) band.virtualTime = Math.max(band.virtualTime, best.startTag);
      out.push(best);
      if (nowMs !== undefined) {
        queue.releases.push(nowMs);
        const window = this.options.rateWindow ?? DEFAULT_RATE_WINDOW;
        if (queue.releases.length > window) queue.releases.splice(0, queue.releases.length - window);
      }
    }
    this.tidy(model, queue);
    return out;
  }

  /** The entry `release(model, 1)` would return next, left in the queue (e.g. to check its band). */
  peek(model: string): HeldEntry<T> | undefined {
    let best: HeldEntry<T> | undefined;
    for (const e of this.queues.get(model)?.entries ?? []) if (best === undefined || byReleaseOrder(e, best) < 0) best = e;
    return best;
  }

  /** Entries whose deadline is at or before `nowMs`, removed, in deadline order. */
  expire(nowMs: number): Array<HeldEntry<T>> {
    const out: Array<HeldEntry<T>> = [];
    for (const [model, queue] of [...this.queues]) {
      const due = queue.entries.filter((e) => e.deadlineMs <= nowMs);
      for (const e of due) this.remove(queue, e.ticket);
      out.push(...due);
      this.tidy(model, queue);
    }
    return out.sort((a, b) => a.deadlineMs - b.deadlineMs || a.ticket - b.ticket);
  }

  /** Remove one entry (the client went away); true if it was held. */
  cancel(model: string, ticket: number): boolean {
    const queue = this.queues.get(model);
    if (queue === undefined) return false;
    const removed = this.remove(queue, ticket);
    this.tidy(model, queue);
    return removed;
  }

  /** The earliest deadline over all models (when to call `expire` next), or undefined if empty. */
  nextDeadlineMs(): number | undefined {
    let next: number | undefined;
    for (const queue of this.queues.values())
      for (const e of queue.entries) if (next === undefined || e.deadlineMs < next) next = e.deadlineMs;
    return next;
  }

  /** Held requests of `model`, all bands (the `held` of the demand annotation). */
  size(model: string): number {
    return this.queues.get(model)?.entries.length ?? 0;
  }

  /** Held requests of `model` per band. */
  sizeByBand(model: string): Map<number, number> {
    const out = new Map<number, number>();
    for (const e of this.queues.get(model)?.entries ?? [])
      out.set(e.priority, (out.get(e.priority) ?? 0) + 1);
    return out;
  }

  totalSize(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.entries.length;
    return n;
  }

  /** Models with held requests. */
  models(): string[] {
    return [...this.queues.keys()];
  }

  private remove(queue: ModelQueue<T>, ticket: number): boolean {
    const i = queue.entries.findIndex((e) => e.ticket === ticket);
    if (i < 0) return false;
    queue.entries.splice(i, 1);
    return true;
  }

  /** Drops an emptied model queue (keeping its release times) and idle fairness state. */
  private tidy(model: string, queue: ModelQueue<T>): void {
    if (queue.entries.length === 0) {
      this.queues.delete(model);
      if (queue.releases.length > 0) {
        this.idleReleases.set(model, queue.releases);
        // Bounded like the model queues themselves.
        if (this.idleReleases.size > this.options.maxModels) {
          const oldest = this.idleReleases.keys().next().value;
          if (oldest !== undefined) this.idleReleases.delete(oldest);
        }
      }
      return;
    }
    for (const [priority, band] of queue.bands) {
      const active = new Set<string>();
      for (const e of queue.entries) if (e.priority === priority) active.add(e.fairnessKey);
      if (active.size === 0) {
        queue.bands.delete(priority);
        continue;
      }
      for (const [key, finish] of band.lastFinish)
        if (!active.has(key) && finish <= band.virtualTime) band.lastFinish.delete(key);
    }
  }
}
