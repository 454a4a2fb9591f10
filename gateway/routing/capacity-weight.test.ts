import { describe, expect, it } from "vitest";
import { setCapacityWeights, staticEndpoint } from "../fleet.js";
import { estimatedLoad, kvCacheScores } from "./scorers.js";

describe("endpoints of different capacity (spill-over to another GPU product)", () => {
  it("weighs each pod by its KV tokens over the largest pod's, and leaves alike pods at 1", () => {
    const big = staticEndpoint("h100-0", "127.0.0.31", 8000);
    const small = staticEndpoint("a100-0", "127.0.0.32", 8000);
    big.target = { ...big.target, kvCacheTokens: 400_000 };
    small.target = { ...small.target, kvCacheTokens: 100_000 };
    setCapacityWeights([big, small]);
    expect(big.capacityWeight).toBeUndefined();
    expect(small.capacityWeight).toBe(0.25);
    small.target = { ...small.target, kvCacheTokens: 400_000 };
    setCapacityWeights([big, small]);
    expect(small.capacityWeight).toBeUndefined();
  });

  it("counts load and free KV cache in units of the largest pod", () => {
    const metrics = { kvCacheUtilization: 0.5, requestsRunning: 2, requestsWaiting: 0, scrapedAtMs: 1 };
    const big = { ...staticEndpoint("h100-0", "127.0.0.31", 8000), metrics };
    const small = { ...staticEndpoint("a100-0", "127.0.0.32", 8000), metrics, capacityWeight: 0.5 };
    expect(estimatedLoad(big)).toBe(2);
    expect(estimatedLoad(small)).toBe(4);
    expect(kvCacheScores([big, small])).toEqual([0.5, 0.25]);
  });
});
