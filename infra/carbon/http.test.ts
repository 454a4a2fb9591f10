import { describe, expect, it } from "vitest";
import { backoffDelayMs, DEFAULT_HTTP_POLICY } from "./http.js";
import { TtlCache } from "./ttl-cache.js";

describe("backoffDelayMs", () => {
  it("doubles from the base, caps at the maximum and adds at most 50% jitter", () => {
    const policy = { ...DEFAULT_HTTP_POLICY, backoffMs: 100, maxBackoffMs: 350 };
    expect([0, 1, 2, 3].map((retry) => backoffDelayMs(policy, retry, () => 0))).toEqual([100, 200, 350, 350]);
    expect(backoffDelayMs(policy, 1, () => 0.999)).toBeCloseTo(299.9, 6);
  });
});

describe("TtlCache", () => {
  it("shares one in-flight load between concurrent callers and does not cache failures", async () => {
    const cache = new TtlCache<number>(1_000, () => 0);
    let loads = 0;
    const load = async (): Promise<number> => {
      loads++;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return 7;
    };
    expect(await Promise.all([cache.getOrLoad("k", load), cache.getOrLoad("k", load)])).toEqual([7, 7]);
    expect(loads).toBe(1);
    await expect(cache.getOrLoad("bad", () => Promise.reject(new Error("down")))).rejects.toThrow("down");
    expect(await cache.getOrLoad("bad", () => Promise.resolve(3))).toBe(3);
  });
});
