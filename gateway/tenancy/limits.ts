/**
 * A tenant's limits as one gateway replica enforces them: token buckets for tokens and requests per
 * minute, a concurrency count, and the UTC day's token budget. Admission reserves (prompt estimate +
 * max_tokens) and settlement replaces the reservation with what the engine reported. Pure apart from
 * the explicit clock.
 *
 * Across gateway replicas: each replica enforces 1/n of the per-minute and concurrency limits, n being
 * the replicas that served the tenant recently (they say so in the Tenant's status); the day's budget
 * is shared through the status itself (every replica adds what it metered). See README "Limits across
 * gateway replicas" for the error bound.
 */
import type { OverLimitAction, TenantSpec, UsageTierSpec } from "../../operator/api/tenancy.js";
import { TokenBucket } from "./bucket.js";

export interface EffectiveLimits {
  tokensPerMinute?: number;
  tokensPerDay?: number;
  requestsPerMinute?: number;
  maxConcurrentRequests?: number;
  priority: number;
  overLimit: OverLimitAction;
  models?: readonly string[];
  defaultMaxTokens: number;
  /** The tier's longest wait in the gateway's hold queue (UsageTier.maxQueueWaitMs). */
  maxQueueWaitMs?: number;
}

/** The tier's values with the tenant's overrides in their place. */
export function effectiveLimits(tier: UsageTierSpec, tenant: Pick<TenantSpec, "overrides">): EffectiveLimits {
  const o = tenant.overrides ?? {};
  const pick = (key: "tokensPerMinute" | "tokensPerDay" | "requestsPerMinute" | "maxConcurrentRequests") =>
    o[key] ?? tier[key];
  const limits: EffectiveLimits = {
    priority: o.priority ?? tier.priority ?? 0,
    overLimit: tier.overLimit ?? "Reject",
    defaultMaxTokens: tier.defaultMaxTokens ?? 1024,
  };
  for (const key of ["tokensPerMinute", "tokensPerDay", "requestsPerMinute", "maxConcurrentRequests"] as const) {
    const value = pick(key);
    if (value !== undefined) limits[key] = value;
  }
  if (tier.models) limits.models = tier.models;
  if (tier.maxQueueWaitMs !== undefined) limits.maxQueueWaitMs = tier.maxQueueWaitMs;
  return limits;
}

export type LimitName = "concurrency" | "requests" | "tokens" | "tokens-day";

export interface Reservation {
  /** Taken from the per-minute token bucket. */
  tokens: number;
  /** Counted against the day's budget until settled. */
  dayTokens: number;
  requests: number;
  concurrent: boolean;
  /** Admitted over a limit in the lowest band (overLimit: Sheddable): took nothing from the buckets. */
  sheddable: boolean;
  settled: boolean;
}

export type AdmitResult =
  | { ok: true; reservation: Reservation }
  | { ok: false; limit: LimitName; retryAfterMs: number };

const MINUTE_MS = 60_000;

export function utcDay(nowMs: number): string {
  return new Date(nowMs).toISOString().slice(0, 10);
}

export function msToUtcMidnight(nowMs: number): number {
  const next = new Date(nowMs);
  next.setUTCHours(24, 0, 0, 0);
  return next.getTime() - nowMs;
}

/** OpenAI's reset format: "250ms", "45s", "6m0s", "1h2m3s". */
export function formatReset(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  if (whole < 1000) return `${whole}ms`;
  const total = Math.ceil(whole / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

export class TenantLimiter {
  private limits: EffectiveLimits;
  private share = 1;
  private tokensBucket: TokenBucket | undefined;
  private requestsBucket: TokenBucket | undefined;
  private concurrent = 0;
  /** The day's tokens as the Tenant status last said (every replica's reports), for `sharedDay`. */
  private sharedDayTokens = 0;
  private sharedDay = "";
  /** Tokens this replica settled and has not reported yet. */
  private unreportedDayTokens = 0;
  private unreportedDay = "";
  /** Tokens reserved by requests in flight. */
  private reservedDayTokens = 0;

  constructor(limits: EffectiveLimits, now: number) {
    this.limits = limits;
    this.rebuild(now);
  }

  get effective(): EffectiveLimits {
    return this.limits;
  }

  get replicasSharing(): number {
    return this.share;
  }

  get inFlight(): number {
    return this.concurrent;
  }

  setLimits(limits: EffectiveLimits, now: number): void {
    const before = this.limits;
    this.limits = limits;
    if (
      before.tokensPerMinute !== limits.tokensPerMinute ||
      before.requestsPerMinute !== limits.requestsPerMinute
    )
      this.rebuild(now);
  }

  /** The number of gateway replicas serving this tenant now (this one included); at least 1. */
  setShare(replicas: number, now: number): void {
    const share = Math.max(1, Math.floor(replicas));
    if (share === this.share) return;
    this.share = share;
    if (this.limits.tokensPerMinute !== undefined)
      this.tokensBucket?.resize(this.limits.tokensPerMinute / share, now);
    if (this.limits.requestsPerMinute !== undefined)
      this.requestsBucket?.resize(this.limits.requestsPerMinute / share, now);
  }

  private rebuild(now: number): void {
    const { tokensPerMinute, requestsPerMinute } = this.limits;
    this.tokensBucket =
      tokensPerMinute === undefined ? undefined : new TokenBucket(tokensPerMinute / this.share, MINUTE_MS, now);
    this.requestsBucket =
      requestsPerMinute === undefined ? undefined : new TokenBucket(requestsPerMinute / this.share, MINUTE_MS, now);
  }

  /** The day's total from the Tenant status (all replicas' reports, this one's included). */
  setSharedDayUsage(day: string, tokens: number): void {
    this.sharedDay = day;
    this.sharedDayTokens = tokens;
  }

  /** This replica reported `tokens` of `day` (they are in the status now). */
  reported(day: string, tokens: number): void {
    if (day === this.unreportedDay) this.unreportedDayTokens = Math.max(0, this.unreportedDayTokens - tokens);
  }

  /** Tokens counted against today's budget: the status, this replica's unreported usage, and reservations. */
  dayTokensUsed(now: number): number {
    const today = utcDay(now);
    const shared = this.sharedDay === today ? this.sharedDayTokens : 0;
    const unreported = this.unreportedDay === today ? this.unreportedDayTokens : 0;
    return shared + unreported + this.reservedDayTokens;
  }

  private concurrencyShare(): number | undefined {
    const cap = this.limits.maxConcurrentRequests;
    return cap === undefined ? undefined : Math.max(1, Math.floor(cap / this.share));
  }

  /** Admits a request that may use up to `reserveTokens` (prompt estimate + max_tokens), or says which limit refuses it. */
  admit(reserveTokens: number, now: number): AdmitResult {
    const refusal = this.firstRefusal(reserveTokens, now);
    if (refusal) {
      if (this.limits.overLimit === "Sheddable")
        return {
          ok: true,
          reservation: { tokens: 0, dayTokens: 0, requests: 0, concurrent: false, sheddable: true, settled: false },
        };
      return { ok: false, ...refusal };
    }
    const tokens = this.tokensBucket?.tryTake(reserveTokens, now) ?? 0;
    const requests = this.requestsBucket?.tryTake(1, now) ?? 0;
    this.concurrent++;
    this.reservedDayTokens += reserveTokens;
    return {
      ok: true,
      reservation: { tokens, dayTokens: reserveTokens, requests, concurrent: true, sheddable: false, settled: false },
    };
  }

  private firstRefusal(reserveTokens: number, now: number): { limit: LimitName; retryAfterMs: number } | undefined {
    const concurrency = this.concurrencyShare();
    // A slot frees when a request ends; 1 s is a fair guess to tell a client.
    if (concurrency !== undefined && this.concurrent >= concurrency) return { limit: "concurrency", retryAfterMs: 1000 };
    const requestsWait = this.requestsBucket?.msUntil(1, now) ?? 0;
    if (requestsWait > 0) return { limit: "requests", retryAfterMs: requestsWait };
    const tokensWait = this.tokensBucket?.msUntil(reserveTokens, now) ?? 0;
    if (tokensWait > 0) return { limit: "tokens", retryAfterMs: tokensWait };
    const perDay = this.limits.tokensPerDay;
    if (perDay !== undefined && this.dayTokensUsed(now) + Math.min(reserveTokens, perDay) > perDay)
      return { limit: "tokens-day", retryAfterMs: msToUtcMidnight(now) };
    return undefined;
  }

  /** The request ended having used `usedTokens` (prompt + completion; 0 if it never reached an engine). */
  settle(reservation: Reservation, usedTokens: number, now: number): void {
    if (reservation.settled) return;
    reservation.settled = true;
    const today = utcDay(now);
    if (this.unreportedDay !== today) {
      this.unreportedDay = today;
      this.unreportedDayTokens = 0;
    }
    this.unreportedDayTokens += usedTokens;
    if (reservation.sheddable) return;
    this.tokensBucket?.adjust(reservation.tokens - usedTokens, now);
    this.reservedDayTokens = Math.max(0, this.reservedDayTokens - reservation.dayTokens);
    if (reservation.concurrent) this.concurrent = Math.max(0, this.concurrent - 1);
  }

  /**
   * OpenAI-style rate-limit headers, for the tenant as a whole: limits as declared, remaining as this
   * replica's share times the replicas sharing (an estimate when several serve the tenant).
   */
  headers(now: number): Record<string, string> {
    const out: Record<string, string> = {};
    const put = (suffix: string, limit: number, bucket: TokenBucket | undefined) => {
      if (!bucket) return;
      const remaining = Math.max(0, Math.min(limit, Math.floor(bucket.available(now) * this.share)));
      out[`x-ratelimit-limit-${suffix}`] = String(limit);
      out[`x-ratelimit-remaining-${suffix}`] = String(remaining);
      out[`x-ratelimit-reset-${suffix}`] = formatReset(bucket.msUntilFull(now));
    };
    if (this.limits.requestsPerMinute !== undefined) put("requests", this.limits.requestsPerMinute, this.requestsBucket);
    if (this.limits.tokensPerMinute !== undefined) put("tokens", this.limits.tokensPerMinute, this.tokensBucket);
    const perDay = this.limits.tokensPerDay;
    if (perDay !== undefined) {
      out["x-ratelimit-limit-tokens-day"] = String(perDay);
      out["x-ratelimit-remaining-tokens-day"] = String(Math.max(0, perDay - this.dayTokensUsed(now)));
      out["x-ratelimit-reset-tokens-day"] = formatReset(msToUtcMidnight(now));
    }
    return out;
  }
}
