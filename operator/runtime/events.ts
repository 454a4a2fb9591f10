import { randomBytes } from "node:crypto";
import { logger } from "../log/logger.js";
import { isNotFound, microTime, pathFor, type KubeClient, type KubeObject } from "./kube-client.js";

/**
 * Records events.k8s.io/v1 Events about the objects the operator manages (what `kubectl describe` and
 * `kubectl events` show). A repeat of the same (object, type, reason, message) within the aggregation
 * window updates the `series` of the first Event instead of creating another object, so a flapping
 * condition does not flood etcd. Recording never throws: an event is worth a warning in the log, not
 * a failed reconcile.
 */

export const REPORTING_CONTROLLER = "gpufleet.io/operator";
export type EventType = "Normal" | "Warning";

export interface EventRecorderOptions {
  /** Component name in logs and the reporting instance prefix. Default `gpufleet`. */
  component?: string;
  /** This process (pod name / hostname): the event's reportingInstance. */
  host: string;
  reportingController?: string;
  /** Repeats within this long of the last occurrence join a series. Default 10 min. */
  aggregationWindowMs?: number;
  /** Distinct events remembered for aggregation. Default 4096. */
  maxCachedEvents?: number;
  now?: () => Date;
}

export interface EventsV1Event {
  apiVersion: "events.k8s.io/v1";
  kind: "Event";
  metadata: { name: string; namespace: string };
  eventTime: string;
  reportingController: string;
  reportingInstance: string;
  action: string;
  reason: string;
  note: string;
  type: EventType;
  regarding: {
    apiVersion?: string;
    kind?: string;
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
  };
  series?: { count: number; lastObservedTime: string };
}

interface SeriesEntry {
  namespace: string;
  name: string | undefined;
  count: number;
  writtenCount: number;
  lastObservedMs: number;
  chain: Promise<void>;
}

// API validation limits of events.k8s.io/v1 (note ≤ 1 kB, reason/action ≤ 128 characters).
const MAX_NOTE_BYTES = 1024;
const MAX_REASON = 128;

function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let out = Buffer.from(text)
    .subarray(0, maxBytes - 3)
    .toString("utf8");
  // A cut through a multi-byte character decodes to U+FFFD; drop it.
  out = out.replace(/\uFFFD$/, "");
  return `${out}...`;
}

/** Name of a new Event about `objectName`: `<object>.<hex time><random>` (unique, a valid DNS subdomain). */
export function eventName(objectName: string, now: Date): string {
  const suffix = `${(now.getTime() * 1000).toString(16)}${randomBytes(2).toString("hex")}`;
  return `${objectName.slice(0, 253 - suffix.length - 1)}.${suffix}`;
}

export class EventRecorder {
  private readonly client: KubeClient;
  private readonly options: Required<Omit<EventRecorderOptions, "now">> & { now: () => Date };
  private readonly series = new Map<string, SeriesEntry>();
  private readonly log;

  constructor(client: KubeClient, options: EventRecorderOptions) {
    this.client = client;
    this.options = {
      component: "gpufleet",
      reportingController: REPORTING_CONTROLLER,
      aggregationWindowMs: 10 * 60_000,
      maxCachedEvents: 4096,
      now: () => new Date(),
      ...options,
    };
    this.log = logger.child({ component: "events" });
  }

  /**
   * Records an event about `obj`. Resolves once written (or given up on); never rejects, so callers
   * may fire and forget.
   */
  record(obj: KubeObject, type: EventType, reason: string, message: string, action?: string): Promise<void> {
    try {
      return this.recordOrThrow(obj, type, reason, message, action);
    } catch (err) {
      this.log.warn({ err, reason }, "could not record event");
      return Promise.resolve();
    }
  }

  private recordOrThrow(
    obj: KubeObject,
    type: EventType,
    reason: string,
    message: string,
    action?: string,
  ): Promise<void> {
    const meta = obj.metadata ?? {};
    const now = this.options.now();
    const note = truncateUtf8(message, MAX_NOTE_BYTES);
    const regardingId =
      meta.uid ?? `${obj.apiVersion}/${obj.kind}/${meta.namespace ?? ""}/${meta.name ?? ""}`;
    const key = `${regardingId}|${type}|${reason}|${note}`;
    const existing = this.series.get(key);
    if (existing && now.getTime() - existing.lastObservedMs <= this.options.aggregationWindowMs) {
      existing.count++;
      existing.lastObservedMs = now.getTime();
      // Refresh its place in the LRU order.
      this.series.delete(key);
      this.series.set(key, existing);
      existing.chain = existing.chain.then(() => this.writeSeries(existing, obj, type, reason, note, action));
      return existing.chain;
    }
    const entry: SeriesEntry = {
      namespace: meta.namespace || "default",
      name: undefined,
      count: 1,
      writtenCount: 0,
      lastObservedMs: now.getTime(),
      chain: Promise.resolve(),
    };
    this.series.delete(key);
    this.series.set(key, entry);
    this.prune(now.getTime());
    entry.chain = this.create(entry, obj, type, reason, note, action);
    return entry.chain;
  }

  /** Forgets expired series and, past the size bound, the least recently seen ones. */
  private prune(nowMs: number): void {
    for (const [key, entry] of this.series) {
      if (
        this.series.size <= this.options.maxCachedEvents &&
        nowMs - entry.lastObservedMs <= this.options.aggregationWindowMs
      )
        break;
      this.series.delete(key);
    }
  }

  private async create(
    entry: SeriesEntry,
    obj: KubeObject,
    type: EventType,
    reason: string,
    note: string,
    action?: string,
  ): Promise<void> {
    const meta = obj.metadata ?? {};
    const now = this.options.now();
    const count = entry.count;
    const event: EventsV1Event = {
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      metadata: { name: eventName(meta.name ?? "unknown", now), namespace: entry.namespace },
      eventTime: microTime(now),
      reportingController: this.options.reportingController,
      reportingInstance: `${this.options.component}-${this.options.host}`.slice(0, 128),
      action: (action ?? reason).slice(0, MAX_REASON),
      reason: reason.slice(0, MAX_REASON),
      note,
      type,
      regarding: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resourceVersion: meta.resourceVersion,
      },
      // Occurrences that piled up while an earlier write failed are not lost.
      ...(count > 1
        ? { series: { count, lastObservedTime: microTime(new Date(entry.lastObservedMs)) } }
        : {}),
    };
    try {
      await this.client.create(event);
      entry.name = event.metadata.name;
      entry.writtenCount = count;
    } catch (err) {
      this.log.warn(
        { err, reason, regarding: `${meta.namespace ?? ""}/${meta.name ?? ""}` },
        "could not record event",
      );
    }
  }

  private async writeSeries(
    entry: SeriesEntry,
    obj: KubeObject,
    type: EventType,
    reason: string,
    note: string,
    action?: string,
  ): Promise<void> {
    // Several repeats queued behind one write: the first write already carried the latest count.
    if (entry.writtenCount >= entry.count) return;
    if (!entry.name) return this.create(entry, obj, type, reason, note, action);
    const count = entry.count;
    const path = pathFor({
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      namespace: entry.namespace,
      name: entry.name,
    });
    try {
      await this.client.patch(path, {
        series: { count, lastObservedTime: microTime(new Date(entry.lastObservedMs)) },
      });
      entry.writtenCount = count;
    } catch (err) {
      if (isNotFound(err)) {
        // The Event expired (the API server keeps them for an hour by default): start a new one.
        entry.name = undefined;
        return this.create(entry, obj, type, reason, note, action);
      }
      this.log.warn({ err, reason }, "could not update event series");
    }
  }
}
