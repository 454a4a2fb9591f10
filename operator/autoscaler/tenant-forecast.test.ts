import { describe, expect, it } from "vitest";
import {
  emptyTenantHistory,
  POOLED_TENANTS,
  recordTenantBucket,
  replicasWithTenantFloor,
  tenantDemandFloor,
  type TenantDemandHistory,
  type TenantHistoryLimits,
} from "./tenant-forecast.js";

const BUCKET_S = 600;
const BUCKET_MS = BUCKET_S * 1000;
const PER_DAY = 144;
const DAY_MS = 86_400_000;
const LIMITS: TenantHistoryLimits = { maxTenants: 4, retainBuckets: 8 * PER_DAY, maxTenantNameLength: 16 };

/** `days` days of buckets, each tenant's rate from `rate(tenant, bucketOfDay, day)`. */
function historyOf(
  days: number,
  tenants: string[],
  rate: (tenant: string, bucketOfDay: number, day: number) => number,
  limits = LIMITS,
): TenantDemandHistory {
  let h = emptyTenantHistory(BUCKET_S);
  for (let b = 0; b < days * PER_DAY; b++)
    h = recordTenantBucket(
      h,
      b * BUCKET_MS,
      new Map(tenants.map((t) => [t, rate(t, b % PER_DAY, Math.floor(b / PER_DAY))])),
      limits,
    );
  return h;
}

/** A tenant that switches on at 09:00 for an hour (buckets 54–59) at 1,000 tokens/s, else sends nothing. */
const switchesOnAtNine = (bucketOfDay: number): number => (bucketOfDay >= 54 && bucketOfDay < 60 ? 1000 : 0);

describe("tenantDemandFloor: a tenant's demand at this time of day on the days before", () => {
  it("holds capacity for a tenant that switches on at the same time every day, before it does", () => {
    const h = historyOf(7, ["a"], (_t, b) => switchesOnAtNine(b));
    const nineOnDay8 = 7 * DAY_MS + 54 * BUCKET_MS;
    expect(tenantDemandFloor(h, nineOnDay8)?.tokensPerSecond).toBe(1000);
    // 10 minutes early still sees it (±10 min window); at 03:00 nothing.
    expect(tenantDemandFloor(h, nineOnDay8 - BUCKET_MS)?.tokensPerSecond).toBe(1000);
    expect(tenantDemandFloor(h, 7 * DAY_MS + 18 * BUCKET_MS)?.tokensPerSecond).toBe(0);
  });

  it("takes the median day: a tenant that ran at this hour on two days of seven adds nothing", () => {
    const h = historyOf(7, ["a"], (_t, b, day) => (day < 2 ? switchesOnAtNine(b) : 0));
    const nineOnDay8 = 7 * DAY_MS + 54 * BUCKET_MS;
    expect(tenantDemandFloor(h, nineOnDay8)?.tokensPerSecond).toBe(0);
    // The highest day (quantile 1) does hold it.
    expect(
      tenantDemandFloor(h, nineOnDay8, { quantile: 1, lookbackDays: 7, windowSeconds: 600, minDays: 3 })
        ?.tokensPerSecond,
    ).toBe(1000);
  });

  it("sums over tenants, each at its own time of day", () => {
    const h = historyOf(7, ["a", "b"], (t, b) => (t === "a" ? switchesOnAtNine(b) : 200));
    const floor = tenantDemandFloor(h, 7 * DAY_MS + 55 * BUCKET_MS);
    // a, b and the (empty) pool of everyone else.
    expect(floor).toEqual({ tokensPerSecond: 1200, tenantsCounted: 3 });
  });

  it("does nothing without history: none, or fewer days than minDays", () => {
    expect(tenantDemandFloor(emptyTenantHistory(BUCKET_S), 5 * DAY_MS)).toBeNull();
    const twoDays = historyOf(2, ["a"], () => 100);
    expect(tenantDemandFloor(twoDays, 2 * DAY_MS + 3 * BUCKET_MS)).toBeNull();
  });
});

describe("recordTenantBucket: bounded per-tenant history", () => {
  it("keeps at most maxTenants named tenants, pools the rest, and loses no demand", () => {
    const names = ["a", "b", "c", "d", "e", "f"];
    const h = historyOf(1, names, (t) => 10 * (names.indexOf(t) + 1));
    const named = Object.keys(h.tenants).filter((n) => n !== POOLED_TENANTS);
    expect(named.sort()).toEqual(["c", "d", "e", "f"]);
    const total = Object.values(h.tenants).reduce((s, series) => s + (series.at(-1) ?? 0), 0);
    expect(total).toBe(210);
  });

  it("keeps retainBuckets buckets and moves startMs with them", () => {
    const h = historyOf(9, ["a"], () => 1);
    expect(h.buckets).toBe(8 * PER_DAY);
    expect(h.startMs).toBe(PER_DAY * BUCKET_MS);
    expect(h.tenants["a"]?.length).toBe(8 * PER_DAY);
  });

  it("pools hostile input: overlong names, and drops rates that are not finite or negative", () => {
    let h = emptyTenantHistory(BUCKET_S);
    h = recordTenantBucket(
      h,
      0,
      new Map([
        ["x".repeat(1000), 5],
        ["nan", Number.NaN],
        ["neg", -3],
        ["inf", Number.POSITIVE_INFINITY],
        ["ok", 7],
      ]),
      LIMITS,
    );
    expect(h.tenants).toEqual({ [POOLED_TENANTS]: [5], ok: [7] });
  });

  it("records skipped buckets as unmeasured and ignores a bucket already recorded", () => {
    let h = recordTenantBucket(emptyTenantHistory(BUCKET_S), 0, new Map([["a", 1]]), LIMITS);
    h = recordTenantBucket(h, 3 * BUCKET_MS, new Map([["a", 2]]), LIMITS);
    expect(h.tenants["a"]).toEqual([1, null, null, 2]);
    expect(recordTenantBucket(h, BUCKET_MS, new Map([["a", 9]]), LIMITS)).toBe(h);
  });
});

describe("replicasWithTenantFloor", () => {
  const floor = { tokensPerSecond: 9000, tenantsCounted: 1 };
  it("raises the reactive answer to the floor at the policy's capacity and target", () => {
    // 9,000 / (2,000 × 0.75) = 6 replicas.
    expect(replicasWithTenantFloor(2, floor, 2000, 0.75, 96)).toBe(6);
  });
  it("never goes below the reactive answer nor above maxReplicas", () => {
    expect(replicasWithTenantFloor(10, floor, 2000, 0.75, 96)).toBe(10);
    expect(replicasWithTenantFloor(2, floor, 2000, 0.75, 4)).toBe(4);
  });
  it("is the reactive answer without a floor, a capacity or a target", () => {
    expect(replicasWithTenantFloor(2, null, 2000, 0.75, 96)).toBe(2);
    expect(replicasWithTenantFloor(2, floor, null, 0.75, 96)).toBe(2);
    expect(replicasWithTenantFloor(2, floor, 2000, null, 96)).toBe(2);
    expect(replicasWithTenantFloor(2, floor, 0, 0.75, 96)).toBe(2);
  });
});
