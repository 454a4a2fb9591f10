/**
 * Tenancy in the gateway process: informers on UsageTiers, Tenants and their key Secrets feed the
 * decisions (core.ts); `admit` is the request path's hook (server.ts calls it once per request, after
 * the body is read); the ticket it returns sees the answer's bytes (`observe`) and settles when the
 * request ends (`settle`, or the response closing). What this replica metered goes first to its usage
 * journal in the cluster (journal.ts: a ConfigMap per replica and tenant namespace, written every
 * journal interval), then a report loop folds the journal into each Tenant's status (optimistic
 * concurrency: GET, add, PUT /status with the resourceVersion; a 409 starts over). The fold's mark in
 * the status makes every batch count once: after a lost answer, after this process is killed and
 * started again under the same name, and when another replica folds the journal of one that is gone.
 *
 * Who reads the key Secrets: the gateway only, with get/list/watch on Secrets in the tenant namespaces
 * the chart lists (a Role in each, nothing cluster-wide), and it watches only those labelled
 * `gpufleet.io/tenant-key`. It keeps SHA-256 digests; the raw keys stay in the informer's cache only
 * as the API server sends them. The Authorization header is removed before a request goes to an engine.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { API_GROUP, API_VERSION, type Condition } from "../../operator/api/modeldeployment.js";
import { TENANT_KIND, TENANT_PLURAL, TIER_KIND, TIER_PLURAL, type Tenant, type UsageTier } from "../../operator/api/tenancy.js";
import { logger } from "../../operator/log/logger.js";
import { Informer } from "../../operator/runtime/informer.js";
import { type KubeClient, type KubeObject, isConflict, isNotFound, registerKind } from "../../operator/runtime/kube-client.js";
import type { Endpoint, ModelRoute } from "../fleet.js";
import type { CompletionRequest } from "../request.js";
import { type Admitted, TenancyCore, TenancyRefusal, type SecretView } from "./core.js";
import { utcDay } from "./limits.js";
import {
  type Fold,
  JOURNAL_KEY,
  JOURNAL_LABEL,
  type UsageJournal,
  appendBatch,
  emptyJournal,
  foldJournal,
  foldedSeq,
  isOrphan,
  journalFits,
  journalName,
  journalTenants,
  parseJournal,
  pruneJournal,
  serializeJournal,
  touched,
} from "./journal.js";
import { type UsageDelta, dayTokens, mergeUsage } from "./meter.js";
import type { TenancyMetrics } from "./metrics.js";
import { ANONYMOUS_TENANT, type TenantContext } from "./types.js";
import { UsageTap } from "./usage.js";

registerKind(`${API_GROUP}/${API_VERSION}`, TIER_KIND, { plural: TIER_PLURAL, namespaced: false });
registerKind(`${API_GROUP}/${API_VERSION}`, TENANT_KIND, { plural: TENANT_PLURAL, namespaced: true });

/** Label a Secret holding tenant API keys must carry for the gateway to read it. */
export const TENANT_KEY_LABEL = "gpufleet.io/tenant-key";

const log = logger.child({ component: "gateway-tenancy" });

/** What server.ts holds per request. */
export interface TenancyTicket {
  readonly context: TenantContext;
  /** A piece of the answer as sent to the client. */
  observe(chunk: Buffer, sse: boolean): void;
  /** The exchange finished with `status` after `endpoint` of `route` served it. */
  settle(status: number, route: ModelRoute, endpoint: Endpoint): void;
}

/** The request-path hook: server.ts depends on this interface only. */
export interface TenancyHook {
  /**
   * `viaAlias`: the request is the gateway's own hop for a step of that cascade alias (server.ts
   * learns it from the cascade, which alone can vouch for its hops).
   */
  admit(req: IncomingMessage, res: ServerResponse, body: Buffer, request: CompletionRequest, viaAlias?: string): TenancyTicket;
  /** The caller's tenant and tier, authentication only: nothing is admitted or metered. */
  identify(req: IncomingMessage): { tenant: string; tier: string } | undefined;
}

/** max_tokens (or max_completion_tokens) of a request body, when it gives a sane one. */
export function maxTokensOf(body: Buffer): number | undefined {
  try {
    const fields = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
    for (const name of ["max_completion_tokens", "max_tokens"]) {
      const value = fields[name];
      if (typeof value === "number" && Number.isInteger(value) && value > 0 && value <= 10_000_000) return value;
    }
  } catch {
    // already refused by parseCompletionRequest
  }
  return undefined;
}

export interface TenancyShellOptions {
  core: TenancyCore;
  metrics?: TenancyMetrics;
  /** GPU product and GPUs per replica of a ModelDeployment (its status.plan). */
  planOf: (namespace: string, name: string) => { gpuProduct: string; gpusPerReplica: number } | undefined;
  /** The engine's prompt + generation token counters of a pod (`namespace/pod`), as last scraped. */
  engineTokens: (pod: string) => number | undefined;
  replica: string;
  staleMs: number;
  now?: () => number;
}

/** The hook without Kubernetes (unit tests and the kube shell below share it). */
export class TenancyGate implements TenancyHook {
  protected readonly now: () => number;
  constructor(protected readonly options: TenancyShellOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Replicas this one counts as sharing a tenant's limits (it enforces 1/n of them); 0 for an unknown tenant. */
  replicasSharing(tenant: string): number {
    return this.options.core.limiterOf(tenant)?.replicasSharing ?? 0;
  }

  identify(req: IncomingMessage): { tenant: string; tier: string } | undefined {
    return this.options.core.identify(req.headers.authorization);
  }

  admit(req: IncomingMessage, res: ServerResponse, body: Buffer, request: CompletionRequest, viaAlias?: string): TenancyTicket {
    const authorization = req.headers.authorization;
    // The tenant's key is the gateway's business: engines never see it.
    delete req.headers.authorization;
    const promptTokens = request.features.promptTokens ?? Math.ceil(request.features.prompt.length / 4);
    let admitted: Admitted;
    try {
      admitted = this.options.core.admit(authorization, request.model, promptTokens, maxTokensOf(body), viaAlias);
    } catch (error) {
      if (error instanceof TenancyRefusal && !res.headersSent)
        for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
      throw error;
    }
    if (!res.headersSent) for (const [name, value] of Object.entries(admitted.headers)) res.setHeader(name, value);
    let tap: UsageTap | undefined;
    let settled = false;
    const promptChars = request.features.prompt.length;
    const settle = (status: number | undefined, route?: ModelRoute, endpoint?: Endpoint) => {
      if (settled) return;
      settled = true;
      // Metered: an answer the engine began with 2xx (complete, or cut after tokens were produced).
      const produced = tap !== undefined && status !== undefined && (status < 400 || status === 499 || status >= 500);
      if (!produced || !route || !endpoint) {
        admitted.settle(undefined, request.model, undefined);
        return;
      }
      const usage = tap!.result();
      const pod = `${endpoint.namespace}/${endpoint.podName}`;
      const plan = this.options.planOf(route.namespace, route.name);
      admitted.settle(
        usage,
        route.model,
        plan
          ? { pod, gpuProduct: plan.gpuProduct, gpusPerReplica: plan.gpusPerReplica, nodeName: endpoint.target.nodeName }
          : undefined,
      );
    };
    let upstreamStatus = 0;
    res.once("close", () => settle(undefined));
    return {
      context: admitted.context,
      observe: (chunk, sse) => {
        if (!tap) {
          tap = new UsageTap(promptChars, sse);
          upstreamStatus = res.statusCode;
        }
        tap.observe(chunk);
      },
      settle: (status, route, endpoint) => {
        const pod = `${endpoint.namespace}/${endpoint.podName}`;
        if (tap) this.options.core.meter.baseline(pod, this.options.engineTokens(pod));
        settle(upstreamStatus >= 400 ? upstreamStatus : status, route, endpoint);
      },
    };
  }
}

export interface TenancyOptions extends TenancyShellOptions {
  client: KubeClient;
  /** Namespaces of Tenants and their key Secrets (the gateway has a Role in each). */
  namespaces: string[];
  reportIntervalMs: number;
  /** How often usage metered since the last write goes to this replica's journal (write-ahead). */
  journalIntervalMs: number;
  /** Another replica's journal not written for this long is folded by this one and deleted. */
  orphanAfterMs: number;
}

interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}

interface ConfigMapObject extends KubeObject {
  data?: Record<string, string>;
}

/** This replica's journal in one tenant namespace, as far as it knows. */
interface JournalSlot {
  namespace: string;
  /** Read from the cluster once (this process's first look at a journal it may have left before a restart). */
  recovered: boolean;
  /** uid and resourceVersion of the ConfigMap; uid undefined: there is none (yet). */
  uid: string | undefined;
  resourceVersion: string | undefined;
  /** The journal as the cluster holds it. */
  journal: UsageJournal;
  /** A write without an answer (or refused): whether it landed is read back before anything else. */
  pending: { journal: UsageJournal; usage: Map<string, UsageDelta[]> } | undefined;
  /** Per tenant, the batch up to which its status holds this journal (from this replica's folds). */
  folded: Map<string, number>;
}

/** The tenancy of a gateway process: informers, the hook, the journal and the report loop. */
export class Tenancy extends TenancyGate {
  readonly informers;
  private timer: NodeJS.Timeout | undefined;
  private journalTimer: NodeJS.Timeout | undefined;
  private rebuildScheduled = false;
  /** Journal and status writes run one at a time, in order. */
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Last Ready condition written per tenant, to write it again only when it changes. */
  private readonly writtenReady = new Map<string, string>();
  private readonly slots = new Map<string, JournalSlot>();
  /** Stamped on this process's journal writes: tells its own landed write from an older process's. */
  private readonly bootId = randomUUID().slice(0, 8);

  constructor(private readonly shell: TenancyOptions) {
    super(shell);
    const namespaces = { namespaces: shell.namespaces };
    for (const namespace of shell.namespaces)
      this.slots.set(namespace, {
        namespace,
        recovered: false,
        uid: undefined,
        resourceVersion: undefined,
        journal: emptyJournal(shell.replica, this.now()),
        pending: undefined,
        folded: new Map(),
      });
    this.informers = {
      tiers: new Informer<UsageTier & KubeObject>(shell.client, {
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: TIER_KIND,
        name: "gateway-usagetiers",
      }),
      tenants: new Informer<Tenant & KubeObject>(shell.client, {
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: TENANT_KIND,
        name: "gateway-tenants",
        ...namespaces,
      }),
      secrets: new Informer<SecretObject>(shell.client, {
        apiVersion: "v1",
        kind: "Secret",
        name: "gateway-tenant-keys",
        labelSelector: TENANT_KEY_LABEL,
        ...namespaces,
      }),
    };
    for (const informer of Object.values(this.informers) as Informer<KubeObject>[])
      informer.addHandlers({
        onAdd: () => this.scheduleRebuild(),
        onUpdate: () => this.scheduleRebuild(),
        onDelete: () => this.scheduleRebuild(),
      });
  }

  /** Starts the informers; then folds what this replica's journal kept from before a restart, at once. */
  async start(syncTimeoutMs = 60_000): Promise<void> {
    for (const informer of Object.values(this.informers)) informer.start();
    await Promise.all(Object.values(this.informers).map((i) => i.waitForSync(syncTimeoutMs)));
    this.rebuild();
    this.schedule(0);
    this.scheduleJournal();
  }

  /** Stops the loops, journals and reports what is left (best effort), deletes an emptied journal, stops the informers. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.journalTimer);
    await this.serial(async () => {
      await this.reportNow();
      for (const slot of this.slots.values()) await this.deleteEmptyJournal(slot);
    }).catch((err: unknown) => log.warn({ err: String(err) }, "final tenant usage report failed"));
    await Promise.all(Object.values(this.informers).map((i) => i.stop()));
  }

  /**
   * Stops as a killed process would: no journal write, no report, nothing deleted (a write already in
   * flight finishes). What was journaled is folded by this replica's next start or by another replica.
   */
  async stopWithoutFlush(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.journalTimer);
    await this.queue;
    await Promise.all(Object.values(this.informers).map((i) => i.stop()));
  }

  private scheduleRebuild(): void {
    if (this.rebuildScheduled) return;
    this.rebuildScheduled = true;
    setImmediate(() => {
      this.rebuildScheduled = false;
      this.rebuild();
    });
  }

  private rebuild(): void {
    const secrets: SecretView[] = this.informers.secrets.list().map((s) => ({
      namespace: s.metadata?.namespace ?? "",
      name: s.metadata?.name ?? "",
      data: s.data ?? {},
    }));
    this.shell.core.update({
      tenants: this.informers.tenants.list().filter((t) => !t.metadata?.deletionTimestamp),
      tiers: this.informers.tiers.list(),
      secrets,
    });
    this.shell.metrics?.keys.set(this.shell.core.keyCount);
  }

  /** Runs `work` after the journal and status work queued before it. */
  private serial(work: () => Promise<void>): Promise<void> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private schedule(delayMs = this.shell.reportIntervalMs): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.report()
        .catch((err: unknown) => log.warn({ err: String(err) }, "reporting tenant usage failed"))
        .finally(() => this.schedule());
    }, delayMs);
  }

  private scheduleJournal(): void {
    if (this.stopped) return;
    this.journalTimer = setTimeout(() => {
      void this.flushJournals()
        .catch((err: unknown) => log.warn({ err: String(err) }, "writing the usage journal failed"))
        .finally(() => this.scheduleJournal());
    }, this.shell.journalIntervalMs);
  }

  /** Writes usage metered since the last write to this replica's journals (the write-ahead step). */
  flushJournals(): Promise<void> {
    return this.serial(async () => {
      for (const slot of this.slots.values()) await this.writeJournal(slot);
    });
  }

  /**
   * Closes the attribution window, journals what is left, folds this replica's journals into Tenant
   * status (with a changed Ready condition), writes the journals without what was folded, and folds
   * other replicas' orphaned journals.
   */
  report(): Promise<void> {
    return this.serial(() => this.reportNow());
  }

  private async reportNow(): Promise<void> {
    const core = this.shell.core;
    core.meter.closeWindow(this.now(), this.shell.engineTokens);
    // Metered in Prometheus only: there is no Tenant object.
    core.meter.take(ANONYMOUS_TENANT);
    const readyChanged = new Set<string>();
    for (const tenant of this.informers.tenants.list()) {
      const key = `${tenant.metadata?.namespace}/${tenant.metadata?.name}`;
      const ready = core.readyCondition(key);
      if (ready && this.writtenReady.get(key) !== `${ready.status}/${ready.reason}/${ready.message}`) readyChanged.add(key);
    }
    for (const slot of this.slots.values()) {
      await this.writeJournal(slot);
      const names = new Set(slot.recovered && !slot.pending ? journalTenants(slot.journal) : []);
      for (const key of readyChanged) if (key.startsWith(`${slot.namespace}/`)) names.add(key.slice(slot.namespace.length + 1));
      const source = slot.uid && !slot.pending ? slot.journal : undefined;
      for (const name of names) {
        const folded = await this.foldTenant(slot.namespace, name, source, true);
        // A deleted Tenant: what the journal holds for it goes (its usage stays in the Prometheus counters).
        const upTo = folded === "gone" ? slot.journal.seq : source && folded ? folded.upTo : 0;
        slot.folded.set(name, Math.max(slot.folded.get(name) ?? 0, upTo));
      }
      await this.writeJournal(slot);
      if (!this.stopped) await this.foldOrphans(slot.namespace);
    }
  }

  private journalPath(namespace: string, name = ""): string {
    return `/api/v1/namespaces/${namespace}/configmaps${name ? `/${name}` : ""}`;
  }

  /**
   * Brings a slot in line with the cluster: its first read (a journal left by this replica's previous
   * process is taken over), or the outcome of a write that got no answer. False: the API server could
   * not tell; nothing is written until it can.
   */
  private async settleSlot(slot: JournalSlot): Promise<boolean> {
    if (slot.recovered && !slot.pending) return true;
    const name = journalName(this.shell.replica);
    let found: ConfigMapObject | undefined;
    try {
      found = await this.shell.client.get<ConfigMapObject>(this.journalPath(slot.namespace, name));
    } catch (error) {
      if (!isNotFound(error)) {
        this.shell.metrics?.journalWrites.inc({ result: "error" });
        log.warn({ namespace: slot.namespace, err: String(error) }, "could not read this replica's usage journal; usage stays in memory");
        return false;
      }
    }
    const pending = slot.pending;
    if (!found) {
      if (pending && slot.uid !== undefined) {
        // Deleted by another replica after it folded the journal. Whether the unanswered write landed
        // first (and was folded too) each tenant's mark in its status tells.
        const kept = await this.unfoldedOfLostWrite(slot.namespace, pending);
        if (!kept) return false;
        for (const [tenant, deltas] of kept) this.shell.core.meter.restore(`${slot.namespace}/${tenant}`, deltas);
        this.foldedByAnother(slot);
      } else if (pending) for (const [tenant, deltas] of pending.usage) this.shell.core.meter.restore(`${slot.namespace}/${tenant}`, deltas);
      Object.assign(slot, { uid: undefined, resourceVersion: undefined, journal: emptyJournal(this.shell.replica, this.now()), pending: undefined, recovered: true });
      slot.folded.clear();
      return true;
    }
    const journal = parseJournal(found.data?.[JOURNAL_KEY]);
    if (!journal)
      log.error({ namespace: slot.namespace, name }, "this replica's usage journal is unreadable; it is written anew (what it held is not counted)");
    const landed = pending !== undefined && journal !== undefined && journal.boot === pending.journal.boot && journal.write === pending.journal.write;
    if (pending && !landed)
      for (const [tenant, deltas] of pending.usage) this.shell.core.meter.restore(`${slot.namespace}/${tenant}`, deltas);
    if (found.metadata?.uid !== slot.uid) slot.folded.clear();
    Object.assign(slot, {
      uid: found.metadata?.uid,
      resourceVersion: found.metadata?.resourceVersion,
      journal: journal ?? emptyJournal(this.shell.replica, this.now()),
      pending: undefined,
      recovered: true,
    });
    return true;
  }

  /** The journal `slot` had confirmed was folded by another replica: its tokens are in status now (the limiter learns it). */
  private foldedByAnother(slot: JournalSlot): void {
    const day = utcDay(this.now());
    for (const batch of slot.journal.batches)
      for (const [tenant, deltas] of Object.entries(batch.tenants))
        if (batch.seq > (slot.folded.get(tenant) ?? 0)) this.shell.core.limiterOf(`${slot.namespace}/${tenant}`)?.reported(day, todayTokens(deltas, day));
  }

  /** The usage of a lost write to a journal since deleted that no Tenant status holds; undefined: could not read. */
  private async unfoldedOfLostWrite(
    namespace: string,
    pending: NonNullable<JournalSlot["pending"]>,
  ): Promise<Map<string, UsageDelta[]> | undefined> {
    const kept = new Map<string, UsageDelta[]>();
    for (const [tenant, deltas] of pending.usage) {
      try {
        const current = await this.shell.client.get<Tenant & KubeObject>(this.tenantPath(namespace, tenant));
        if (foldedSeq(current.status, this.shell.replica, pending.journal.epoch) < pending.journal.seq) kept.set(tenant, deltas);
      } catch (error) {
        if (!isNotFound(error)) return undefined;
      }
    }
    return kept;
  }

  /**
   * Writes this replica's journal in `slot.namespace`: without what its folds put in status, with the
   * usage metered since the last write as a new batch (and rewritten every third of orphanAfter, so
   * other replicas see it is alive). A write without an answer is read back first.
   */
  private async writeJournal(slot: JournalSlot): Promise<void> {
    if (!(await this.settleSlot(slot))) return;
    const core = this.shell.core;
    const now = this.now();
    const usage = new Map<string, UsageDelta[]>();
    for (const key of core.meter.tenantsWithUsage())
      if (key.startsWith(`${slot.namespace}/`)) usage.set(key.slice(slot.namespace.length + 1), core.meter.take(key));
    const pruned = pruneJournal(slot.journal, slot.folded);
    let next = appendBatch(pruned, usage, now);
    if (!journalFits(next)) {
      for (const [tenant, deltas] of usage) core.meter.restore(`${slot.namespace}/${tenant}`, deltas);
      usage.clear();
      next = pruned;
      this.shell.metrics?.journalWrites.inc({ result: "full" });
      log.warn({ namespace: slot.namespace }, "the usage journal is full; new usage waits in memory until folds make room");
    }
    const heartbeat = slot.uid !== undefined && now - Date.parse(next.writeTime) > this.shell.orphanAfterMs / 3;
    if (next === slot.journal && !heartbeat) return;
    if (next.write === slot.journal.write) next = touched(next, now);
    next = { ...next, boot: this.bootId };
    slot.pending = { journal: next, usage };
    const body: ConfigMapObject = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: journalName(this.shell.replica),
        namespace: slot.namespace,
        labels: { [JOURNAL_LABEL]: "true", "app.kubernetes.io/managed-by": "gpufleet-gateway" },
        ...(slot.resourceVersion ? { resourceVersion: slot.resourceVersion } : {}),
      },
      data: { [JOURNAL_KEY]: serializeJournal(next) },
    };
    try {
      const written = slot.uid
        ? await this.shell.client.replace<ConfigMapObject>(body, { path: this.journalPath(slot.namespace, journalName(this.shell.replica)), fieldManager: "gpufleet-gateway" })
        : await this.shell.client.create<ConfigMapObject>(body, { path: this.journalPath(slot.namespace), fieldManager: "gpufleet-gateway" });
      if (written.metadata?.uid !== slot.uid) slot.folded.clear();
      Object.assign(slot, { uid: written.metadata?.uid, resourceVersion: written.metadata?.resourceVersion, journal: next, pending: undefined });
      this.shell.metrics?.journalWrites.inc({ result: "ok" });
    } catch (error) {
      if (isNotFound(error) && slot.uid) {
        // Certainly not written: another replica folded the journal and deleted it (it took this one
        // for gone). Everything the journal held is in status; this usage starts a new journal.
        for (const [tenant, deltas] of usage) core.meter.restore(`${slot.namespace}/${tenant}`, deltas);
        this.foldedByAnother(slot);
        Object.assign(slot, { uid: undefined, resourceVersion: undefined, journal: emptyJournal(this.shell.replica, this.now()), pending: undefined });
        slot.folded.clear();
        this.shell.metrics?.journalWrites.inc({ result: "deleted" });
        log.warn({ namespace: slot.namespace }, "this replica's usage journal was folded and deleted by another replica; starting a new one");
        return;
      }
      // Landed or not, the next write reads it back first (the usage is in `pending` meanwhile).
      this.shell.metrics?.journalWrites.inc({ result: isConflict(error) ? "conflict" : "error" });
      log.warn({ namespace: slot.namespace, err: String(error) }, "could not confirm a usage journal write; the next write reads it back");
    }
  }

  /** Deletes this replica's journal when everything in it is in Tenant status (a clean stop leaves nothing behind). */
  private async deleteEmptyJournal(slot: JournalSlot): Promise<void> {
    if (slot.pending || !slot.uid || slot.journal.batches.length > 0 || this.shell.core.meter.tenantsWithUsage().length > 0) return;
    await this.shell.client
      .delete(this.journalPath(slot.namespace, journalName(this.shell.replica)), {
        preconditions: { uid: slot.uid, ...(slot.resourceVersion ? { resourceVersion: slot.resourceVersion } : {}) },
      })
      .catch(() => undefined);
  }

  /**
   * Folds the journals of replicas that stopped writing them (their pods are gone) into Tenant status,
   * each tenant once, then deletes each folded journal (only the version read: a journal its owner
   * wrote again meanwhile stays).
   */
  private async foldOrphans(namespace: string): Promise<void> {
    let list: ConfigMapObject[];
    try {
      list = (await this.shell.client.list<ConfigMapObject>(this.journalPath(namespace), { labelSelector: JOURNAL_LABEL, limit: 100 })).items;
    } catch (error) {
      log.warn({ namespace, err: String(error) }, "could not list usage journals");
      return;
    }
    const now = this.now();
    let folds = 0;
    for (const object of list) {
      const uid = object.metadata?.uid;
      if (!uid || object.metadata?.name === journalName(this.shell.replica)) continue;
      const journal = parseJournal(object.data?.[JOURNAL_KEY]);
      // One journal per replica name (its ConfigMap's name): a journal naming another replica is not folded.
      if (!journal || object.metadata?.name !== journalName(journal.replica)) continue;
      if (!isOrphan(journal, this.shell.replica, now, this.shell.orphanAfterMs)) continue;
      if (++folds > MAX_ORPHANS_PER_REPORT) return;
      let complete = true;
      for (const tenant of journalTenants(journal)) {
        const folded = await this.foldTenant(namespace, tenant, journal, false);
        if (folded === undefined) {
          complete = false;
          break;
        }
      }
      if (!complete) continue;
      try {
        await this.shell.client.delete(this.journalPath(namespace, object.metadata?.name), {
          preconditions: { uid, ...(object.metadata?.resourceVersion ? { resourceVersion: object.metadata.resourceVersion } : {}) },
        });
        this.shell.metrics?.reports.inc({ result: "orphan-folded" });
        log.info({ namespace, replica: journal.replica }, "folded the usage journal of a gone gateway replica");
      } catch (error) {
        if (!isNotFound(error) && !isConflict(error)) log.warn({ namespace, err: String(error) }, "could not delete a folded usage journal");
      }
    }
  }

  private tenantPath(namespace: string, name: string): string {
    return `/apis/${API_GROUP}/${API_VERSION}/namespaces/${namespace}/${TENANT_PLURAL}/${name}`;
  }

  /**
   * Adds what `source` (a journal) holds for Tenant `namespace/name` and its
   * status lacks (foldJournal), in one PUT with the resourceVersion (a 409 reads and folds again).
   * `own`: this replica's journal (its Ready condition goes along; its limiter learns what landed).
   * Undefined: not done (the next report tries again; a fold is idempotent); "gone": no such Tenant.
   */
  private async foldTenant(
    namespace: string,
    name: string,
    source: UsageJournal | undefined,
    own: boolean,
  ): Promise<{ upTo: number } | "gone" | undefined> {
    const core = this.shell.core;
    const key = `${namespace}/${name}`;
    const path = this.tenantPath(namespace, name);
    for (let attempt = 0; attempt < 4; attempt++) {
      let current: Tenant & KubeObject;
      try {
        current = await this.shell.client.get<Tenant & KubeObject>(path);
      } catch (error) {
        return this.reportFailed(key, error, "could not read the tenant to report usage; the next report tries again") === "gone" ? "gone" : undefined;
      }
      const now = this.now();
      const day = utcDay(now);
      const fold: Fold = source
        ? foldJournal(current.status, source, name, now, this.shell.staleMs, own)
        : { status: mergeUsage(current.status, [], this.shell.replica, now, this.shell.staleMs), deltas: [], upTo: 0 };
      const ready = own ? core.readyCondition(key) : undefined;
      const readyText = ready ? `${ready.status}/${ready.reason}/${ready.message}` : undefined;
      const readyChanged = readyText !== undefined && this.writtenReady.get(key) !== readyText;
      if (fold.deltas.length === 0 && !readyChanged) return { upTo: fold.upTo };
      const status = fold.status;
      if (ready) status.conditions = mergeCondition(current.status?.conditions, ready, current.metadata?.generation);
      if (current.metadata?.generation !== undefined) status.observedGeneration = current.metadata.generation;
      try {
        const written = await this.shell.client.replace<Tenant & KubeObject>(
          { ...current, status } as Tenant & KubeObject,
          { path: `${path}/status`, fieldManager: "gpufleet-gateway" },
        );
        this.shell.metrics?.reports.inc({ result: "ok" });
        this.shell.metrics?.reported(key, fold.deltas);
        const limiter = core.limiterOf(key);
        if (own) limiter?.reported(day, todayTokens(fold.deltas, day));
        limiter?.setSharedDayUsage(day, dayTokens(written.status, day));
        if (readyText !== undefined) this.writtenReady.set(key, readyText);
        return { upTo: fold.upTo };
      } catch (error) {
        if (isConflict(error)) {
          this.shell.metrics?.reports.inc({ result: "conflict" });
          continue;
        }
        // A timeout, a reset connection, a 5xx: applied or not, the next fold reads the mark back.
        return this.reportFailed(key, error, "could not confirm a tenant usage report; the next report reads it back") === "gone" ? "gone" : undefined;
      }
    }
    return undefined;
  }

  /** A report's GET or PUT failed: a deleted Tenant ends its reporting ("gone"), anything else waits for the next report. */
  private reportFailed(key: string, error: unknown, message: string): "gone" | "retry" {
    if (isNotFound(error)) {
      // The Tenant was deleted: its usage stays in the Prometheus counters only.
      this.shell.metrics?.reports.inc({ result: "gone" });
      return "gone";
    }
    this.shell.metrics?.reports.inc({ result: "error" });
    log.warn({ tenant: key, err: String(error) }, message);
    return "retry";
  }
}

/** Orphaned journals one report folds per namespace (the rest wait for the next). */
const MAX_ORPHANS_PER_REPORT = 8;

/** Tokens of `day` in a batch. */
function todayTokens(deltas: readonly UsageDelta[], day: string): number {
  return deltas.filter((d) => d.day === day).reduce((s, d) => s + d.promptTokens + d.completionTokens, 0);
}

/** Conditions with `ready` in place of the old Ready (its transition time kept when the status did not change). */
export function mergeCondition(
  conditions: readonly Condition[] | undefined,
  ready: Condition,
  generation: number | undefined,
): Condition[] {
  const old = conditions?.find((c) => c.type === ready.type);
  const next: Condition = {
    ...ready,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    lastTransitionTime: old && old.status === ready.status ? old.lastTransitionTime : ready.lastTransitionTime,
  };
  return [...(conditions ?? []).filter((c) => c.type !== ready.type), next];
}
