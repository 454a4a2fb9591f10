import { EventEmitter } from "node:events";
import { logger } from "../log/logger.js";
import {
  errorFromWatchStatus,
  isGone,
  isNotFound,
  objectKey,
  pathFor,
  type KubeClient,
  type KubeObject,
  type KubeStatus,
  type WatchEvent,
} from "./kube-client.js";
import { backoffDelay, type BackoffPolicy } from "./workqueue.js";
import { abortableSleep } from "./abortable-sleep.js";

/**
 * A list-then-watch cache of one kind, like client-go's reflector + indexer + shared informer.
 * It lists, then watches from the list's resourceVersion (with bookmarks and a server-side timeout),
 * and survives what long watches meet in practice:
 *  - watch expiry (HTTP 410 or an ERROR event with code 410): relist, and emit the differences as
 *    add/update/delete, including deletions that happened while it was not watching;
 *  - dropped or ended streams: rewatch from the last resourceVersion seen, with backoff on errors;
 *  - stale streams (connected, but no event or bookmark for `staleAfterMs`): abort and rewatch.
 */

export interface InformerOptions {
  apiVersion: string;
  kind: string;
  /** Watch only these namespaces (one list+watch each); omitted: all namespaces (or a cluster-scoped kind). */
  namespaces?: string[];
  labelSelector?: string;
  fieldSelector?: string;
  /** List page size. Default 500. */
  pageSize?: number;
  /**
   * Server-side watch timeout. Default: random in [300, 600) s like client-go's reflector, so that
   * many watches do not all expire together.
   */
  watchTimeoutSeconds?: number;
  /**
   * Abort a watch that delivered neither an event nor a bookmark for this long. The API server's watch
   * cache sends a bookmark about once a minute to watchers that allow them (`defaultBookmarkFrequency =
   * time.Minute` in k8s.io/apiserver/pkg/storage/cacher/cacher.go), so 2.5 minutes of silence means the
   * stream is dead. Default 150 s.
   */
  staleAfterMs?: number;
  /**
   * Backoff between failed list/watch attempts. Default 800 ms doubling to 5 s: the API server's return
   * after an outage is seen within 5 s (client-go's reflector waits up to 30 s, which kept the operator and
   * the gateway 22-25 s behind an API server back from an 8 s restart), and one attempt per informer every
   * 5 s is nothing to a recovering server. A watch that worked starts the count again.
   */
  backoff?: Partial<BackoffPolicy>;
  /** Name in logs. */
  name?: string;
}

export interface DeleteInfo {
  /** True when the deletion was inferred by a relist: the object shown is the last state seen, not the final one. */
  finalStateUnknown: boolean;
}

export interface InformerHandlers<T> {
  onAdd?: (obj: T) => void;
  onUpdate?: (oldObj: T, newObj: T) => void;
  onDelete?: (obj: T, info: DeleteInfo) => void;
}

const DEFAULT_BACKOFF: BackoffPolicy = { baseDelayMs: 800, maxDelayMs: 5_000, jitter: 0.1 };

/** What changed between two snapshots of the same stream. Pure: the relist decision. */
export function diffSnapshots<T extends KubeObject>(
  before: ReadonlyMap<string, T>,
  after: ReadonlyMap<string, T>,
): { added: T[]; updated: [T, T][]; deleted: T[] } {
  const added: T[] = [];
  const updated: [T, T][] = [];
  const deleted: T[] = [];
  for (const [key, next] of after) {
    const prev = before.get(key);
    if (!prev) added.push(next);
    else if (prev.metadata?.resourceVersion !== next.metadata?.resourceVersion) updated.push([prev, next]);
  }
  for (const [key, prev] of before) if (!after.has(key)) deleted.push(prev);
  return { added, updated, deleted };
}

type WatchOutcome = "ended" | "gone" | "stale" | "error" | "stopped";

/** One list+watch loop over one namespace (or all). */
class Stream<T extends KubeObject> {
  readonly cache = new Map<string, T>();
  synced = false;
  resourceVersion: string | undefined;
  private failures = 0;
  private abort: AbortController | undefined;
  /** Counters for tests and logs. */
  readonly stats = { lists: 0, watches: 0, relistsAfterGone: 0, staleAborts: 0, notServedRetries: 0, lastBackoffMs: 0 };

  constructor(
    private readonly informer: Informer<T>,
    readonly namespace: string | undefined,
    private readonly path: string,
  ) {}

  async run(stopSignal: AbortSignal): Promise<void> {
    // A stream that has listed before resumes its watch; a too-old resourceVersion (410) falls back to a list.
    let needList = !this.synced;
    while (!stopSignal.aborted) {
      let outcome: WatchOutcome;
      try {
        if (needList) {
          await this.relist(stopSignal);
          needList = false;
        }
        outcome = await this.watchOnce(stopSignal);
      } catch (err) {
        if (stopSignal.aborted) return;
        if (isGone(err)) {
          outcome = "gone";
        } else if (isNotFound(err) && !this.synced) {
          // The resource type is not served (an optional CRD, e.g. LeaderWorkerSet, not installed):
          // say so once, in one line, then retry quietly with backoff until it lists.
          this.stats.notServedRetries++;
          const line = { namespace: this.namespace, apiVersion: this.informer.options.apiVersion, kind: this.informer.options.kind };
          if (this.stats.notServedRetries === 1) this.informer.log.info(line, "resource type not served (404); retrying quietly until it is");
          else this.informer.log.debug(line, "resource type still not served (404)");
          outcome = "error";
        } else {
          this.informer.log.warn({ err, namespace: this.namespace }, "list/watch failed; retrying");
          outcome = "error";
        }
      }
      if (outcome === "stopped" || stopSignal.aborted) return;
      if (outcome === "gone") {
        // The resourceVersion we hold was compacted: only a fresh list can tell what changed.
        this.stats.relistsAfterGone++;
        needList = true;
        this.informer.log.info(
          { namespace: this.namespace, resourceVersion: this.resourceVersion },
          "watch expired (410); relisting",
        );
        continue;
      }
      if (outcome === "ended") {
        this.failures = 0;
        continue;
      }
      // error or stale: back off before the next attempt so a broken server is not hammered.
      this.failures++;
      this.stats.lastBackoffMs = backoffDelay(this.failures, this.informer.backoff);
      await abortableSleep(this.stats.lastBackoffMs, stopSignal);
    }
  }

  private async relist(stopSignal: AbortSignal): Promise<void> {
    this.stats.lists++;
    const list = await this.informer.client.list<T>(this.path, {
      labelSelector: this.informer.options.labelSelector,
      fieldSelector: this.informer.options.fieldSelector,
      limit: this.informer.options.pageSize ?? 500,
      signal: stopSignal,
    });
    const next = new Map<string, T>();
    for (const item of list.items) {
      // List items carry no apiVersion/kind; restore them so handlers get whole objects.
      const obj = {
        apiVersion: this.informer.options.apiVersion,
        kind: this.informer.options.kind,
        ...item,
      } as T;
      next.set(objectKey(obj), obj);
    }
    const diff = diffSnapshots(this.cache, next);
    this.cache.clear();
    for (const [k, v] of next) this.cache.set(k, v);
    this.resourceVersion = list.metadata.resourceVersion;
    this.synced = true;
    this.failures = 0;
    for (const obj of diff.added) this.informer.emitAdd(obj);
    for (const [prev, obj] of diff.updated) this.informer.emitUpdate(prev, obj);
    for (const obj of diff.deleted) this.informer.emitDelete(obj, { finalStateUnknown: true });
    this.informer.markSynced();
  }

  private async watchOnce(stopSignal: AbortSignal): Promise<WatchOutcome> {
    // Stopped while listing: an abort listener added now would never fire and the watch would hang
    // stop() until its server-side timeout.
    if (stopSignal.aborted) return "stopped";
    this.stats.watches++;
    const abort = new AbortController();
    this.abort = abort;
    const onStop = () => abort.abort();
    stopSignal.addEventListener("abort", onStop, { once: true });
    const staleAfterMs = this.informer.options.staleAfterMs ?? 150_000;
    let outcome: WatchOutcome | undefined;
    let events = 0;
    const startedAt = Date.now();
    let staleTimer: NodeJS.Timeout | undefined;
    const armStaleTimer = () => {
      clearTimeout(staleTimer);
      staleTimer = setTimeout(() => {
        outcome ??= "stale";
        this.stats.staleAborts++;
        this.informer.log.warn(
          { namespace: this.namespace, staleAfterMs },
          "watch silent for too long; rewatching",
        );
        abort.abort();
      }, staleAfterMs);
    };
    armStaleTimer();
    try {
      await this.informer.client.watch<T>(
        this.path,
        {
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds: this.informer.options.watchTimeoutSeconds ?? Math.floor(300 + Math.random() * 300),
          labelSelector: this.informer.options.labelSelector,
          fieldSelector: this.informer.options.fieldSelector,
        },
        (event) => {
          if (outcome) return;
          // The stream works: a failure after this is the first of a new fault, not the next of the last one
          // (a watch resumes from its resourceVersion and never relists, so nothing else would reset it).
          if (events++ === 0) this.failures = 0;
          armStaleTimer();
          const result = this.apply(event);
          if (result) {
            outcome = result;
            abort.abort();
          }
        },
        abort.signal,
      );
    } finally {
      clearTimeout(staleTimer);
      stopSignal.removeEventListener("abort", onStop);
      this.abort = undefined;
    }
    if (stopSignal.aborted) return "stopped";
    // A stream the server closes at once without a single event is a failure, not a timeout: back off.
    if (!outcome && events === 0 && Date.now() - startedAt < 1000) return "error";
    return outcome ?? "ended";
  }

  /** Applies one watch event to the cache; returns an outcome when the watch must end. */
  private apply(event: WatchEvent<T>): WatchOutcome | undefined {
    if (event.type === "ERROR") {
      const err = errorFromWatchStatus(event.object as KubeStatus);
      if (err.isGone) return "gone";
      this.informer.log.warn({ namespace: this.namespace, err }, "watch ERROR event; rewatching");
      return "error";
    }
    const rv = event.object?.metadata?.resourceVersion;
    if (event.type === "BOOKMARK") {
      if (rv) this.resourceVersion = rv;
      return undefined;
    }
    const obj = {
      apiVersion: this.informer.options.apiVersion,
      kind: this.informer.options.kind,
      ...event.object,
    } as T;
    const key = objectKey(obj);
    const prev = this.cache.get(key);
    if (event.type === "DELETED") {
      this.cache.delete(key);
      this.informer.emitDelete(obj, { finalStateUnknown: false });
    } else {
      this.cache.set(key, obj);
      if (prev) this.informer.emitUpdate(prev, obj);
      else this.informer.emitAdd(obj);
    }
    if (rv) this.resourceVersion = rv;
    return undefined;
  }

  abortWatch(): void {
    this.abort?.abort();
  }
}

export class Informer<T extends KubeObject> {
  readonly options: InformerOptions;
  readonly client: KubeClient;
  readonly log;
  readonly backoff: BackoffPolicy;
  private readonly streams: Stream<T>[];
  private readonly emitter = new EventEmitter();
  private stopController: AbortController | undefined;
  private running: Promise<void>[] = [];
  private syncWaiters: (() => void)[] = [];

  constructor(client: KubeClient, options: InformerOptions) {
    this.client = client;
    this.options = options;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.log = logger.child({ component: "informer", informer: options.name ?? options.kind });
    const namespaces = options.namespaces?.length ? [...new Set(options.namespaces)] : [undefined];
    this.streams = namespaces.map(
      (ns) =>
        new Stream<T>(
          this,
          ns,
          pathFor({ apiVersion: options.apiVersion, kind: options.kind, namespace: ns }),
        ),
    );
    // Handlers are part of the controller; a throwing one must not take the informer down.
    this.emitter.setMaxListeners(50);
  }

  onAdd(handler: (obj: T) => void): this {
    this.emitter.on("add", handler);
    return this;
  }
  onUpdate(handler: (oldObj: T, newObj: T) => void): this {
    this.emitter.on("update", handler);
    return this;
  }
  onDelete(handler: (obj: T, info: DeleteInfo) => void): this {
    this.emitter.on("delete", handler);
    return this;
  }
  addHandlers(handlers: InformerHandlers<T>): this {
    if (handlers.onAdd) this.onAdd(handlers.onAdd);
    if (handlers.onUpdate) this.onUpdate(handlers.onUpdate);
    if (handlers.onDelete) this.onDelete(handlers.onDelete);
    return this;
  }

  /**
   * Starts the list+watch loops (idempotent). After a `stop()`, starting again resumes each watch from
   * the last resourceVersion seen (no relist unless the server answers 410).
   */
  start(): void {
    if (this.stopController) return;
    const stop = new AbortController();
    this.stopController = stop;
    this.running = this.streams.map((s) => s.run(stop.signal));
  }

  /** Stops watching and waits for the loops to end. The cache stays readable. */
  async stop(): Promise<void> {
    this.stopController?.abort();
    await Promise.allSettled(this.running);
    this.running = [];
    this.stopController = undefined;
  }

  /** True once every namespace has been listed at least once. */
  get hasSynced(): boolean {
    return this.streams.every((s) => s.synced);
  }

  /** Resolves once synced; rejects after `timeoutMs` (default: wait forever). */
  waitForSync(timeoutMs?: number): Promise<void> {
    if (this.hasSynced) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter = () => {
        clearTimeout(timer);
        resolve();
      };
      this.syncWaiters.push(waiter);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.syncWaiters = this.syncWaiters.filter((w) => w !== waiter);
          reject(new Error(`informer ${this.options.kind} not synced within ${timeoutMs} ms`));
        }, timeoutMs);
      }
    });
  }

  get(namespace: string | undefined, name: string): T | undefined {
    const key = namespace ? `${namespace}/${name}` : name;
    for (const s of this.streams) {
      if (s.namespace !== undefined && s.namespace !== namespace) continue;
      const hit = s.cache.get(key);
      if (hit) return hit;
    }
    return undefined;
  }

  getByKey(key: string): T | undefined {
    for (const s of this.streams) {
      const hit = s.cache.get(key);
      if (hit) return hit;
    }
    return undefined;
  }

  list(filter?: (obj: T) => boolean): T[] {
    const out: T[] = [];
    for (const s of this.streams)
      for (const obj of s.cache.values()) if (!filter || filter(obj)) out.push(obj);
    return out;
  }

  /** Last resourceVersion seen per namespace ("" key: all namespaces). */
  resourceVersions(): Record<string, string | undefined> {
    return Object.fromEntries(this.streams.map((s) => [s.namespace ?? "", s.resourceVersion]));
  }

  /**
   * Totals of lists, watches, relists after 410, stale aborts and 404 retries, and the longest of the
   * streams' last backoff delays (for tests and debugging).
   */
  stats(): { lists: number; watches: number; relistsAfterGone: number; staleAborts: number; notServedRetries: number; lastBackoffMs: number } {
    const total = { lists: 0, watches: 0, relistsAfterGone: 0, staleAborts: 0, notServedRetries: 0, lastBackoffMs: 0 };
    for (const s of this.streams) {
      total.lists += s.stats.lists;
      total.watches += s.stats.watches;
      total.relistsAfterGone += s.stats.relistsAfterGone;
      total.staleAborts += s.stats.staleAborts;
      total.notServedRetries += s.stats.notServedRetries;
      total.lastBackoffMs = Math.max(total.lastBackoffMs, s.stats.lastBackoffMs);
    }
    return total;
  }

  /** Ends the current watches (they are re-established from the last resourceVersion). For tests. */
  restartWatches(): void {
    for (const s of this.streams) s.abortWatch();
  }

  /** @internal */
  markSynced(): void {
    if (!this.hasSynced) return;
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    for (const w of waiters) w();
  }

  /** @internal */
  emitAdd(obj: T): void {
    this.safeEmit("add", obj);
  }
  /** @internal */
  emitUpdate(prev: T, obj: T): void {
    this.safeEmit("update", prev, obj);
  }
  /** @internal */
  emitDelete(obj: T, info: DeleteInfo): void {
    this.safeEmit("delete", obj, info);
  }

  private safeEmit(event: string, ...args: unknown[]): void {
    for (const listener of this.emitter.listeners(event)) {
      try {
        (listener as (...a: unknown[]) => void)(...args);
      } catch (err) {
        this.log.error({ err, event }, "informer handler threw");
      }
    }
  }
}
