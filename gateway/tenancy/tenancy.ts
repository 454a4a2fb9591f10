/**
 * Tenancy in the gateway process: informers on UsageTiers, Tenants and their key Secrets feed the
 * decisions (core.ts); `admit` is the request path's hook (server.ts calls it once per request, after
 * the body is read); the ticket it returns sees the answer's bytes (`observe`) and settles when the
 * request ends (`settle`, or the response closing). A report loop adds what this replica metered to
 * each Tenant's status (optimistic concurrency: GET, add, PUT /status with the resourceVersion; a 409
 * starts over), so every replica's usage is counted once and the status is the tenant's total. Each
 * report carries an id kept in the status beside the replica's name: a report whose answer was lost
 * is read back before the next one, so it is added once (never twice, never dropped).
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
import { type UsageDelta, dayTokens, mergeUsage, reportApplied } from "./meter.js";
import type { TenancyMetrics } from "./metrics.js";
import type { TenantContext } from "./types.js";
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
}

interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}

/** The tenancy of a gateway process: informers, the hook, the report loop. */
export class Tenancy extends TenancyGate {
  readonly informers;
  private timer: NodeJS.Timeout | undefined;
  private rebuildScheduled = false;
  private reporting: Promise<void> | undefined;
  private stopped = false;
  /** Last Ready condition written per tenant, to write it again only when it changes. */
  private readonly writtenReady = new Map<string, string>();
  /**
   * Per tenant, the report whose PUT got no answer (timeout, reset, 5xx): it may or may not be in the
   * status. The next report reads its id back from the status before adding anything (idempotence).
   */
  private readonly unconfirmed = new Map<string, { id: string; deltas: UsageDelta[] }>();
  /** Report ids: this process's random prefix and a sequence (a restarted replica never reuses one). */
  private readonly bootId = randomUUID().slice(0, 8);
  private reportSeq = 0;

  constructor(private readonly shell: TenancyOptions) {
    super(shell);
    const namespaces = { namespaces: shell.namespaces };
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

  async start(syncTimeoutMs = 60_000): Promise<void> {
    for (const informer of Object.values(this.informers)) informer.start();
    await Promise.all(Object.values(this.informers).map((i) => i.waitForSync(syncTimeoutMs)));
    this.rebuild();
    this.schedule();
  }

  /** Stops the loop, reports what is left (best effort), stops the informers. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.reporting;
    await this.report().catch(() => undefined);
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

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.reporting = this.report()
        .catch((err: unknown) => log.warn({ err: String(err) }, "reporting tenant usage failed"))
        .finally(() => {
          this.reporting = undefined;
          this.schedule();
        });
    }, this.shell.reportIntervalMs);
  }

  /** Closes the attribution window and adds each tenant's usage (and a changed Ready condition) to its status. */
  async report(): Promise<void> {
    const core = this.shell.core;
    core.meter.closeWindow(this.now(), this.shell.engineTokens);
    const tenants = new Set([...core.meter.tenantsWithUsage(), ...this.unconfirmed.keys()]);
    for (const tenant of this.informers.tenants.list()) {
      const key = `${tenant.metadata?.namespace}/${tenant.metadata?.name}`;
      const ready = core.readyCondition(key);
      if (ready && this.writtenReady.get(key) !== `${ready.status}/${ready.reason}/${ready.message}`) tenants.add(key);
    }
    for (const key of tenants) {
      if (key === "anonymous") {
        core.meter.take(key); // metered in Prometheus only: there is no Tenant object
        continue;
      }
      await this.reportTenant(key);
    }
  }

  /**
   * Adds this replica's usage of `key` to its status. At most one report per tenant is unconfirmed (its
   * PUT got no answer): each attempt first reads it back; applied, it is done; not applied, it is sent
   * again with the same id, alone (a late arrival of the first PUT and the second cannot both apply:
   * both carry a resourceVersion, and whichever lands first changes it). New usage waits its turn.
   */
  private async reportTenant(key: string): Promise<void> {
    const core = this.shell.core;
    const [namespace, name] = key.split("/") as [string, string];
    const fresh = core.meter.take(key);
    let freshSent = false;
    const path = `/apis/${API_GROUP}/${API_VERSION}/namespaces/${namespace}/${TENANT_PLURAL}/${name}`;
    for (let attempt = 0; attempt < 4 && !freshSent; attempt++) {
      let current: Tenant & KubeObject;
      try {
        current = await this.shell.client.get<Tenant & KubeObject>(path);
      } catch (error) {
        if (this.reportFailed(key, error, "could not read the tenant to report usage; keeping it for the next report") === "gone") return;
        break;
      }
      const now = this.now();
      const day = utcDay(now);
      const limiter = core.limiterOf(key);
      let earlier = this.unconfirmed.get(key);
      if (earlier && reportApplied(current.status, this.shell.replica, earlier.id)) {
        this.unconfirmed.delete(key);
        this.shell.metrics?.reports.inc({ result: "applied-earlier" });
        this.shell.metrics?.reported(key, earlier.deltas);
        limiter?.reported(day, todayTokens(earlier.deltas, day));
        earlier = undefined;
      }
      const ready = core.readyCondition(key);
      const readyText = ready ? `${ready.status}/${ready.reason}/${ready.message}` : undefined;
      if (!earlier && fresh.length === 0 && (readyText === undefined || this.writtenReady.get(key) === readyText)) return;
      const report = earlier ?? { id: `${this.bootId}-${++this.reportSeq}`, deltas: fresh };
      const status = mergeUsage(current.status, report.deltas, this.shell.replica, now, this.shell.staleMs, report.id);
      if (ready) status.conditions = mergeCondition(current.status?.conditions, ready, current.metadata?.generation);
      if (current.metadata?.generation !== undefined) status.observedGeneration = current.metadata.generation;
      // Until the API server answers, this report's outcome is unknown.
      this.unconfirmed.set(key, report);
      if (!earlier) freshSent = true;
      try {
        const written = await this.shell.client.replace<Tenant & KubeObject>(
          { ...current, status } as Tenant & KubeObject,
          { path: `${path}/status`, fieldManager: "gpufleet-gateway" },
        );
        this.unconfirmed.delete(key);
        this.shell.metrics?.reports.inc({ result: "ok" });
        this.shell.metrics?.reported(key, report.deltas);
        limiter?.reported(day, todayTokens(report.deltas, day));
        limiter?.setSharedDayUsage(day, dayTokens(written.status, day));
        if (readyText !== undefined) this.writtenReady.set(key, readyText);
        // An earlier report went through: the new usage goes next (the loop runs again).
      } catch (error) {
        if (isConflict(error)) {
          // Refused on its resourceVersion: this PUT is certainly not applied (an earlier one may be).
          if (!earlier) {
            this.unconfirmed.delete(key);
            freshSent = false;
          }
          this.shell.metrics?.reports.inc({ result: "conflict" });
          continue;
        }
        // A timeout, a reset connection, a 5xx: the PUT may have been applied; the next report reads it back.
        if (this.reportFailed(key, error, "could not confirm a tenant usage report; the next report reads it back") === "gone") return;
        break;
      }
    }
    if (!freshSent) core.meter.restore(key, fresh);
  }

  /** A report's GET or PUT failed: a deleted Tenant ends its reporting ("gone"), anything else waits for the next report. */
  private reportFailed(key: string, error: unknown, message: string): "gone" | "retry" {
    if (isNotFound(error)) {
      // The Tenant was deleted: its usage stays in the Prometheus counters only.
      this.unconfirmed.delete(key);
      this.shell.metrics?.reports.inc({ result: "gone" });
      return "gone";
    }
    this.shell.metrics?.reports.inc({ result: "error" });
    log.warn({ tenant: key, err: String(error) }, message);
    return "retry";
  }
}

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
