import { describe, expect, it } from "vitest";
import { TokenBucket } from "./bucket.js";
import { TenantLimiter, effectiveLimits, formatReset, msToUtcMidnight, type EffectiveLimits } from "./limits.js";

const T0 = Date.parse("2026-11-30T12:00:00Z");
const base: EffectiveLimits = { priority: 10, overLimit: "Reject", defaultMaxTokens: 100 };

describe("token bucket", () => {
  it("refills at capacity per period and never above capacity", () => {
    const bucket = new TokenBucket(600, 60_000, T0);
    expect(bucket.tryTake(600, T0)).toBe(600);
    expect(bucket.available(T0)).toBe(0);
    expect(bucket.available(T0 + 1_000)).toBeCloseTo(10);
    expect(bucket.available(T0 + 3_600_000)).toBe(600);
  });

  it("says how long until an amount fits, and caps a too-large amount at a full bucket", () => {
    const bucket = new TokenBucket(600, 60_000, T0);
    bucket.tryTake(600, T0);
    expect(bucket.msUntil(100, T0)).toBe(10_000);
    expect(bucket.tryTake(5000, T0 + 59_000)).toBeUndefined();
    expect(bucket.tryTake(5000, T0 + 60_000)).toBe(600);
  });

  it("goes into debt when settlement takes more than was reserved", () => {
    const bucket = new TokenBucket(600, 60_000, T0);
    bucket.tryTake(100, T0);
    bucket.adjust(100 - 900, T0);
    expect(bucket.available(T0)).toBe(-300);
    expect(bucket.msUntil(1, T0)).toBe(30_100);
  });
});

describe("tenant limiter: reservations and settlement", () => {
  it("reserves max_tokens while a request runs and gives back what it did not use", () => {
    const limiter = new TenantLimiter({ ...base, tokensPerMinute: 1000 }, T0);
    const a = limiter.admit(600, T0);
    expect(a.ok).toBe(true);
    // 400 left: a second 600-token reservation must wait.
    const b = limiter.admit(600, T0);
    expect(b).toEqual({ ok: false, limit: "tokens", retryAfterMs: 12_000 });
    if (!a.ok) throw new Error("unreachable");
    limiter.settle(a.reservation, 150, T0); // used 150 of 600
    expect(limiter.admit(600, T0).ok).toBe(true); // 850 left
  });

  it("settles only once", () => {
    const limiter = new TenantLimiter({ ...base, tokensPerMinute: 1000, maxConcurrentRequests: 5 }, T0);
    const a = limiter.admit(100, T0);
    if (!a.ok) throw new Error("refused");
    limiter.settle(a.reservation, 0, T0);
    limiter.settle(a.reservation, 0, T0);
    expect(limiter.inFlight).toBe(0);
    expect(limiter.headers(T0)["x-ratelimit-remaining-tokens"]).toBe("1000");
  });

  it("caps concurrent requests and frees the slot on settlement", () => {
    const limiter = new TenantLimiter({ ...base, maxConcurrentRequests: 2 }, T0);
    const a = limiter.admit(10, T0);
    expect(limiter.admit(10, T0).ok).toBe(true);
    expect(limiter.admit(10, T0)).toMatchObject({ ok: false, limit: "concurrency" });
    if (!a.ok) throw new Error("refused");
    limiter.settle(a.reservation, 10, T0);
    expect(limiter.admit(10, T0).ok).toBe(true);
  });

  it("counts requests per minute", () => {
    const limiter = new TenantLimiter({ ...base, requestsPerMinute: 2 }, T0);
    expect(limiter.admit(1, T0).ok).toBe(true);
    expect(limiter.admit(1, T0).ok).toBe(true);
    expect(limiter.admit(1, T0)).toEqual({ ok: false, limit: "requests", retryAfterMs: 30_000 });
  });

  it("keeps the day's budget across the status, unreported usage and reservations, and resets at UTC midnight", () => {
    const limiter = new TenantLimiter({ ...base, tokensPerDay: 1000 }, T0);
    limiter.setSharedDayUsage("2026-11-30", 700);
    const a = limiter.admit(200, T0);
    expect(a.ok).toBe(true);
    expect(limiter.admit(200, T0)).toEqual({ ok: false, limit: "tokens-day", retryAfterMs: 12 * 3_600_000 });
    if (!a.ok) throw new Error("refused");
    limiter.settle(a.reservation, 250, T0); // 700 + 250 unreported
    expect(limiter.dayTokensUsed(T0)).toBe(950);
    limiter.reported("2026-11-30", 250);
    limiter.setSharedDayUsage("2026-11-30", 950);
    expect(limiter.dayTokensUsed(T0)).toBe(950);
    const tomorrow = Date.parse("2026-12-01T00:00:01Z");
    expect(limiter.dayTokensUsed(tomorrow)).toBe(0);
    expect(limiter.admit(200, tomorrow).ok).toBe(true);
  });

  it("admits over-limit requests as sheddable when the tier says so, taking nothing from the buckets", () => {
    const limiter = new TenantLimiter({ ...base, overLimit: "Sheddable", tokensPerMinute: 100 }, T0);
    expect(limiter.admit(100, T0).ok).toBe(true);
    const over = limiter.admit(100, T0);
    expect(over).toMatchObject({ ok: true, reservation: { sheddable: true, tokens: 0 } });
    if (!over.ok) throw new Error("refused");
    limiter.settle(over.reservation, 500, T0);
    // the bucket is not pushed into debt by a sheddable request
    expect(limiter.headers(T0)["x-ratelimit-remaining-tokens"]).toBe("0");
    expect(limiter.dayTokensUsed(T0)).toBe(500 + 100);
  });

  it("enforces 1/n of the per-minute and concurrency limits when n replicas serve the tenant", () => {
    const limiter = new TenantLimiter({ ...base, tokensPerMinute: 1000, maxConcurrentRequests: 4 }, T0);
    limiter.setShare(2, T0);
    expect(limiter.admit(500, T0).ok).toBe(true);
    expect(limiter.admit(1, T0)).toMatchObject({ ok: false, limit: "tokens" });
    expect(limiter.headers(T0)["x-ratelimit-limit-tokens"]).toBe("1000");
    const c = new TenantLimiter({ ...base, maxConcurrentRequests: 3 }, T0);
    c.setShare(2, T0);
    expect(c.admit(1, T0).ok).toBe(true);
    expect(c.admit(1, T0)).toMatchObject({ ok: false, limit: "concurrency" });
  });

  it("bounds the overshoot when two replicas serve one tenant: one extra bucket plus one report interval's refill", () => {
    // tokensPerMinute L = 1200; the replicas learn of each other after one report interval F = 10 s.
    const limits = { ...base, tokensPerMinute: 1200 };
    const drain = (l: TenantLimiter, now: number): number => {
      let got = 0;
      for (;;) {
        const r = l.admit(10, now);
        if (!r.ok) return got;
        l.settle(r.reservation, 10, now);
        got += 10;
      }
    };
    const minute = (replicas: TenantLimiter[], shareAtMs: number): number => {
      let admitted = 0;
      for (let t = 0; t <= 60_000; t += 100) {
        if (t === shareAtMs) for (const l of replicas) l.setShare(replicas.length, T0 + t);
        for (const l of replicas) admitted += drain(l, T0 + t);
      }
      return admitted;
    };
    const one = minute([new TenantLimiter(limits, T0)], -1);
    const two = minute([new TenantLimiter(limits, T0), new TenantLimiter(limits, T0)], 10_000);
    // One replica, saturated for a minute from a full bucket: L + L = 2400.
    expect(one).toBe(2400);
    // Two replicas: the overshoot is the second replica's full bucket (L) plus the doubled refill
    // during F (L x F / 60 s = 200), the bound README states; after that the shares hold.
    expect(two - one).toBe(1200 + 200);
    const steady = minute([new TenantLimiter(limits, T0), new TenantLimiter(limits, T0)], 0);
    expect(steady).toBe(one);
  });

  it("gives OpenAI-style headers", () => {
    const limiter = new TenantLimiter({ ...base, tokensPerMinute: 6000, requestsPerMinute: 60, tokensPerDay: 100_000 }, T0);
    const r = limiter.admit(3000, T0);
    expect(r.ok).toBe(true);
    expect(limiter.headers(T0)).toEqual({
      "x-ratelimit-limit-requests": "60",
      "x-ratelimit-remaining-requests": "59",
      "x-ratelimit-reset-requests": "1s",
      "x-ratelimit-limit-tokens": "6000",
      "x-ratelimit-remaining-tokens": "3000",
      "x-ratelimit-reset-tokens": "30s",
      "x-ratelimit-limit-tokens-day": "100000",
      "x-ratelimit-remaining-tokens-day": "97000",
      "x-ratelimit-reset-tokens-day": "12h0m0s",
    });
  });

  it("formats resets as OpenAI does", () => {
    expect(formatReset(250)).toBe("250ms");
    expect(formatReset(6 * 60_000)).toBe("6m0s");
    expect(formatReset(61_500)).toBe("1m2s");
    expect(msToUtcMidnight(Date.parse("2026-11-30T23:59:59Z"))).toBe(1000);
  });

  it("takes the tenant's overrides over the tier's values", () => {
    const limits = effectiveLimits(
      { priority: 5, overLimit: "Reject", defaultMaxTokens: 64, tokensPerMinute: 100, models: ["a"] },
      { overrides: { tokensPerMinute: 50, priority: 7 } },
    );
    expect(limits).toEqual({ priority: 7, overLimit: "Reject", defaultMaxTokens: 64, tokensPerMinute: 50, models: ["a"] });
    expect(effectiveLimits({ priority: 1, overLimit: "Reject", defaultMaxTokens: 8, maxQueueWaitMs: 1500 }, {}).maxQueueWaitMs).toBe(1500);
  });
});
