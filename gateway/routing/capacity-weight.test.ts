import { describe, expect, it } from "vitest";
import { setCapacityWeights, staticEndpoint } from "../fleet.js";
import { PREFILL_SCORE_SMOOTHING_TOKENS, estimatedLoad, kvCacheScores, prefillScores } from "./scorers.js";

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

describe("endpoints of different token throughput (spill-over to a slower GPU product)", () => {
  const H100 = "NVIDIA-H100-80GB-HBM3";
  const A100 = "NVIDIA-A100-SXM4-80GB";

  it("weighs each pod by its plan's token throughput over the fastest pod's (GPU TFLOPS x GPUs), and leaves alike pods at 1", () => {
    const fast = staticEndpoint("h100-0", "127.0.0.31", 8000);
    const slow = staticEndpoint("a100-0", "127.0.0.32", 8000);
    fast.target = { ...fast.target, kvCacheTokens: 400_000, compute: { gpuProduct: H100, gpusPerReplica: 1 } };
    slow.target = { ...slow.target, kvCacheTokens: 400_000, compute: { gpuProduct: A100, gpusPerReplica: 1 } };
    setCapacityWeights([fast, slow]);
    // Same KV tokens (both 80 GB): only throughput tells them apart (312 vs 989 dense BF16 TFLOPS).
    expect(slow.capacityWeight).toBeUndefined();
    expect(slow.throughputWeight).toBeCloseTo(312 / 989, 6);
    expect(fast.throughputWeight).toBeUndefined();
    slow.target = { ...slow.target, compute: { gpuProduct: H100, gpusPerReplica: 1 } };
    setCapacityWeights([fast, slow]);
    expect(slow.throughputWeight).toBeUndefined();
  });

  it("counts load by the tighter capacity and prefill work in the fastest pod's time", () => {
    const metrics = { kvCacheUtilization: 0.2, requestsRunning: 2, requestsWaiting: 0, scrapedAtMs: 1 };
    const fast = { ...staticEndpoint("h100-0", "127.0.0.31", 8000), metrics };
    const slow = { ...staticEndpoint("a100-0", "127.0.0.32", 8000), metrics, throughputWeight: 0.25 };
    const both = { ...staticEndpoint("a100-1", "127.0.0.33", 8000), metrics, throughputWeight: 0.25, capacityWeight: 0.5 };
    expect([estimatedLoad(fast), estimatedLoad(slow), estimatedLoad(both)]).toEqual([2, 8, 8]);
    // Same backlog (2 requests of this 1,000-token prompt) and nothing cached: the slow pod's work takes 4x as long.
    const c = PREFILL_SCORE_SMOOTHING_TOKENS;
    const [f, s] = prefillScores([fast, slow], 1000, [0, 0]);
    expect(f).toBe(1);
    expect(s).toBeCloseTo((3000 + c) / (4 * 3000 + c), 6);
    // The slow pod's cached prefix can still win when the fast one must prefill everything and is busy.
    const busy = { ...fast, metrics: { ...metrics, requestsRunning: 20 } };
    const idleSlow = { ...slow, metrics: { ...metrics, requestsRunning: 0 } };
    const [b, i] = prefillScores([busy, idleSlow], 1000, [0, 1]);
    expect(i ?? 0).toBeGreaterThan(b ?? 1);
  });
});
