import { describe, expect, it } from "vitest";
import { estimateReplicaTokenCapacity } from "./capacity.js";

describe("estimateReplicaTokenCapacity", () => {
  it("puts Llama 3.1 8B on one A100 (312 dense BF16 TFLOPS) near 9,700 tokens/s at 50% MFU", () => {
    const capacity = estimateReplicaTokenCapacity({
      activeParameters: 8.03e9,
      denseBf16Tflops: 312,
      tensorParallelism: 1,
    });
    // 312e12 × 0.5 / (2 × 8.03e9) = 9,714
    expect(capacity).toBeCloseTo(9714, -1);
  });

  it("scales with tensor parallelism, minus the all-reduce cost", () => {
    const one = estimateReplicaTokenCapacity({
      activeParameters: 70e9,
      denseBf16Tflops: 989,
      tensorParallelism: 1,
    });
    const four = estimateReplicaTokenCapacity({
      activeParameters: 70e9,
      denseBf16Tflops: 989,
      tensorParallelism: 4,
    });
    expect((four ?? 0) / (one ?? 1)).toBeCloseTo(4 * 0.85, 6);
  });

  it("returns null for an unknown GPU or model rather than a made-up figure", () => {
    expect(
      estimateReplicaTokenCapacity({ activeParameters: 8e9, denseBf16Tflops: 0, tensorParallelism: 1 }),
    ).toBeNull();
    expect(
      estimateReplicaTokenCapacity({
        activeParameters: Number.NaN,
        denseBf16Tflops: 312,
        tensorParallelism: 1,
      }),
    ).toBeNull();
  });
});
