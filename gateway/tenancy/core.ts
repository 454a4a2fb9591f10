/**
 * The tenancy decisions of one gateway replica, without Kubernetes: from the Tenants, UsageTiers and
 * key Secrets it is given (`update`), it authenticates a request's key, applies the tenant's tier
 * (allowed models, concurrency, token and request buckets, the day's budget) and returns either a
 * TenantContext with a settlement handle or an error to answer with. The kube shell (store.ts) feeds
 * it from informers and writes what it metered into the Tenants' status.
 */
import type { Condition } from "../../operator/api/modeldeployment.js";
import type { Tenant, TenantStatus, UsageTier } from "../../operator/api/tenancy.js";
import { GatewayError } from "../errors.js";
import { KeyIndex, digestFromSecretValue, parseBearer, type KeyEntry } from "./keys.js";
import { TenantLimiter, effectiveLimits, type EffectiveLimits, type LimitName, type Reservation, utcDay } from "./limits.js";
import { Meter, dayTokens, replicasSharing, type Pricing, type ServedBy } from "./meter.js";
import type { TenancyMetrics } from "./metrics.js";
import { ANONYMOUS_TENANT, type TenantContext } from "./types.js";

/** Priority of requests admitted over a limit as sheddable: below every tier's band (tiers take 0..1000). */
export const SHEDDABLE_PRIORITY = -1;

export interface SecretView {
  namespace: string;
  name: string;
  /** data, base64 as the API returns it. */
  data: Readonly<Record<string, string>>;
}

export interface TenancyOptions {
  /** Tier of requests without an Authorization header; undefined: they get 401 (the default). */
  anonymousTier?: string | undefined;
  pricing: Pricing;
  /** This replica's name (in the Tenant status `gateways`). */
  replica: string;
  /** A replica that has not reported for this long no longer takes a share of the limits. */
  staleMs: number;
  metrics?: TenancyMetrics;
}

interface TenantState {
  key: string;
  tier: string;
  limiter: TenantLimiter;
  suspended: boolean;
  ready: Condition;
}

export interface Admitted {
  context: TenantContext;
  /** Rate-limit headers to send with the answer. */
  headers: Record<string, string>;
  /** The request ended; `usage` undefined: it never reached an engine (nothing used). */
  settle(usage: { promptTokens: number; completionTokens: number } | undefined, model: string, servedBy: ServedBy | undefined): void;
}

const condition = (status: "True" | "False", reason: string, message: string, now: number): Condition => ({
  type: "Ready",
  status,
  reason,
  message,
  lastTransitionTime: new Date(Math.floor(now / 1000) * 1000).toISOString(),
});

/** A refusal with the headers to send along (x-ratelimit-* on 429, WWW-Authenticate on 401). */
export class TenancyRefusal extends GatewayError {
  constructor(
    code: ConstructorParameters<typeof GatewayError>[0],
    message: string,
    readonly headers: Readonly<Record<string, string>>,
    retryAfterSeconds?: number,
  ) {
    super(code, message, retryAfterSeconds);
  }
}

const LIMIT_TEXT: Record<LimitName, string> = {
  concurrency: "concurrent requests",
  requests: "requests per minute",
  tokens: "tokens per minute",
  "tokens-day": "tokens per day",
};

/** A tier listing `models` may call `model` directly, or as a step of an alias it lists. Pure. */
export function modelAllowed(models: readonly string[], model: string, viaAlias: string | undefined): boolean {
  return models.includes(model) || (viaAlias !== undefined && models.includes(viaAlias));
}

export class TenancyCore {
  readonly meter: Meter;
  private keys = new KeyIndex<string>([]);
  private readonly tenants = new Map<string, TenantState>();
  /** Ready condition per tenant, also for tenants that cannot be served (no tier). */
  private readonly readiness = new Map<string, Condition>();
  private tiers = new Map<string, UsageTier>();
  private anonymous: TenantState | undefined;

  constructor(
    private readonly options: TenancyOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.meter = new Meter(options.pricing, now());
  }

  /** Rebuilds keys and limits from the cluster's objects; limiter state (buckets, in-flight) is kept. */
  update(input: { tenants: readonly Tenant[]; tiers: readonly UsageTier[]; secrets: readonly SecretView[] }): void {
    const now = this.now();
    this.tiers = new Map(input.tiers.map((t) => [t.metadata?.name ?? "", t]));
    const secrets = new Map(input.secrets.map((s) => [`${s.namespace}/${s.name}`, s]));
    const entries: KeyEntry<string>[] = [];
    const live = new Set<string>();
    for (const tenant of input.tenants) {
      const key = `${tenant.metadata?.namespace}/${tenant.metadata?.name}`;
      live.add(key);
      const tier = this.tiers.get(tenant.spec.tier);
      let ready: Condition;
      const problems: string[] = [];
      for (const apiKey of tenant.spec.apiKeys ?? []) {
        const secret = secrets.get(`${tenant.metadata?.namespace}/${apiKey.secretRef.name}`);
        const raw = secret?.data[apiKey.secretRef.key ?? "key"];
        const parsed = digestFromSecretValue(
          raw === undefined ? undefined : Buffer.from(raw, "base64"),
          apiKey.format ?? "Plain",
        );
        if ("digest" in parsed) entries.push({ digest: parsed.digest, owner: key });
        else if (!secret)
          problems.push(
            `key ${apiKey.name}: Secret ${apiKey.secretRef.name} not found (it must be in namespace ${tenant.metadata?.namespace} and carry the label gpufleet.io/tenant-key)`,
          );
        else problems.push(`key ${apiKey.name}: Secret ${apiKey.secretRef.name} key ${apiKey.secretRef.key}: ${parsed.problem}`);
      }
      if (!tier) ready = condition("False", "TierNotFound", `UsageTier ${tenant.spec.tier} does not exist; create it or change spec.tier.`, now);
      else if (problems.length === (tenant.spec.apiKeys ?? []).length)
        ready = condition("False", "NoUsableKey", problems.slice(0, 4).join("; "), now);
      else if (problems.length > 0) ready = condition("True", "SomeKeysUnusable", problems.slice(0, 4).join("; "), now);
      else ready = condition("True", "KeysResolved", `All API keys resolved; tier ${tenant.spec.tier}.`, now);
      this.readiness.set(key, ready);
      const limits = tier ? effectiveLimits(tier.spec, tenant.spec) : undefined;
      let state = this.tenants.get(key);
      if (!state && limits) {
        state = { key, tier: tenant.spec.tier, limiter: new TenantLimiter(limits, now), suspended: false, ready };
        this.tenants.set(key, state);
      }
      if (state) {
        if (limits) state.limiter.setLimits(limits, now);
        state.tier = tenant.spec.tier;
        state.suspended = tenant.spec.suspended === true || !limits;
        state.ready = ready;
        this.observeStatus(key, tenant.status);
      }
    }
    for (const key of this.tenants.keys()) if (!live.has(key)) this.tenants.delete(key);
    for (const key of this.readiness.keys()) if (!live.has(key)) this.readiness.delete(key);
    this.keys = new KeyIndex(entries);
    const anonymousTier = this.options.anonymousTier ? this.tiers.get(this.options.anonymousTier) : undefined;
    if (anonymousTier) {
      const limits = effectiveLimits(anonymousTier.spec, {});
      if (this.anonymous) this.anonymous.limiter.setLimits(limits, now);
      else
        this.anonymous = {
          key: ANONYMOUS_TENANT,
          tier: anonymousTier.metadata?.name ?? "",
          limiter: new TenantLimiter(limits, now),
          suspended: false,
          ready: condition("True", "Anonymous", "", now),
        };
    } else this.anonymous = undefined;
  }

  /** The Tenant's status as the API server has it: the day's shared usage and how many replicas share it. */
  observeStatus(key: string, status: TenantStatus | undefined): void {
    const state = this.tenants.get(key);
    if (!state) return;
    const now = this.now();
    state.limiter.setSharedDayUsage(utcDay(now), dayTokens(status, utcDay(now)));
    state.limiter.setShare(replicasSharing(status, this.options.replica, now, this.options.staleMs), now);
  }

  /** The Ready condition this replica would report for a tenant. */
  readyCondition(key: string): Condition | undefined {
    return this.readiness.get(key);
  }

  limiterOf(key: string): TenantLimiter | undefined {
    return key === ANONYMOUS_TENANT ? this.anonymous?.limiter : this.tenants.get(key)?.limiter;
  }

  get keyCount(): number {
    return this.keys.size;
  }

  /**
   * Who presents `authorization`, without admitting or metering anything (no bucket, no counter moves):
   * for decisions taken before admission, e.g. a cascade's `largeForTiers`. Undefined for no or an
   * unknown key (the admission that follows answers 401) and for a tenant that cannot be served.
   */
  identify(authorization: string | string[] | undefined): { tenant: string; tier: string } | undefined {
    let state: TenantState | undefined;
    if (authorization === undefined) state = this.anonymous;
    else {
      const presented = parseBearer(authorization);
      const owner = presented === undefined ? undefined : this.keys.match(presented);
      state = owner === undefined ? undefined : this.tenants.get(owner);
    }
    if (!state || state.suspended) return undefined;
    return { tenant: state.key, tier: state.tier };
  }

  /**
   * Authenticates and admits a request for `model` that may use up to `reserveTokens` (prompt estimate;
   * the completion's max_tokens is added here, or the tier's defaultMaxTokens). Throws GatewayError:
   * 401 (no or unknown key), 403 (suspended, model not allowed), 429 (over a limit, overLimit Reject).
   * `viaAlias`: the request is a step of that cascade alias (the gateway's own hop): a tier that may
   * call the alias may call its step models; the request is still limited and metered as `model`.
   */
  admit(
    authorization: string | string[] | undefined,
    model: string,
    promptTokens: number,
    maxTokens: number | undefined,
    viaAlias?: string,
  ): Admitted {
    const metrics = this.options.metrics;
    let state: TenantState | undefined;
    if (authorization === undefined && this.anonymous) state = this.anonymous;
    else {
      const presented = parseBearer(authorization);
      const owner = presented === undefined ? undefined : this.keys.match(presented);
      state = owner === undefined ? undefined : this.tenants.get(owner);
      if (owner !== undefined && !state) {
        metrics?.rejected.inc({ tenant: owner, reason: "suspended" });
        throw new GatewayError("permission_denied", "This tenant's UsageTier does not exist.");
      }
      if (!state) {
        metrics?.authFailures.inc({ reason: authorization === undefined ? "missing" : "invalid" });
        throw new TenancyRefusal(
          "invalid_api_key",
          authorization === undefined
            ? "You didn't provide an API key. Send it as `Authorization: Bearer <key>`."
            : "Incorrect API key provided.",
          { "www-authenticate": 'Bearer realm="gpufleet"' },
        );
      }
    }
    const tenant = state.key;
    if (state.suspended) {
      metrics?.rejected.inc({ tenant, reason: "suspended" });
      throw new GatewayError("permission_denied", "This tenant is suspended or its UsageTier does not exist.");
    }
    const limiter = state.limiter;
    const limits: EffectiveLimits = limiter.effective;
    if (limits.models && !modelAllowed(limits.models, model, viaAlias)) {
      metrics?.rejected.inc({ tenant, reason: "model-not-allowed" });
      throw new GatewayError("model_not_allowed", `Your tier (${state.tier}) may not call this model.`);
    }
    const now = this.now();
    const reserve = Math.max(1, promptTokens) + (maxTokens ?? limits.defaultMaxTokens);
    const result = limiter.admit(reserve, now);
    if (!result.ok) {
      metrics?.rejected.inc({ tenant, reason: result.limit });
      throw new TenancyRefusal(
        "rate_limit_exceeded",
        `Rate limit reached for ${LIMIT_TEXT[result.limit]} (tenant ${tenant}, tier ${state.tier}).`,
        limiter.headers(now),
        Math.max(1, Math.ceil(result.retryAfterMs / 1000)),
      );
    }
    const reservation: Reservation = result.reservation;
    const context: TenantContext = {
      tenant,
      tier: state.tier,
      priority: reservation.sheddable ? SHEDDABLE_PRIORITY : limits.priority,
      fairnessKey: tenant,
      ...(limits.maxQueueWaitMs !== undefined ? { maxWaitMs: limits.maxQueueWaitMs } : {}),
      ...(limits.models ? { allowedModels: limits.models } : {}),
      ...(reservation.sheddable ? { overLimit: true } : {}),
    };
    if (reservation.sheddable) metrics?.rejected.inc({ tenant, reason: "admitted-sheddable" });
    return {
      context,
      headers: limiter.headers(now),
      settle: (usage, servedModel, servedBy) => {
        if (reservation.settled) return;
        const used = usage ? usage.promptTokens + usage.completionTokens : 0;
        const at = this.now();
        limiter.settle(reservation, used, at);
        if (!usage) return;
        this.meter.record(tenant, servedModel, usage, servedBy, at);
        metrics?.observe(tenant, servedModel, usage);
      },
    };
  }
}
