import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { ScrapeResult } from "../metrics/scrape.js";
import { kvCapacityWeight, throughputWeight } from "./capacity-weight.js";
import { observePods } from "./loop.js";
import { kvAndQueueDemand, readTokenRates, sortPods, tokenDemand } from "./policy-signals.js";
import type { PodObservation } from "./policy-types.js";

function readyPod(name: string, kvTokens: number): V1Pod {
  return {
    metadata: { name, annotations: { "gpufleet.io/kv-cache-tokens": String(kvTokens) }, creationTimestamp: "2026-06-01T00:00:00Z" as never },
    status: { phase: "Running", conditions: [{ type: "Ready", status: "True", lastTransitionTime: "2026-06-01T00:01:00Z" as never }] },
  };
}

const sample = (kv: number) =>
  ({ kvCacheUtilization: kv, requestsWaiting: 0, requestsRunning: 4, scrapedAtMs: 1 }) as never;

describe("replicas of different capacity in the autoscaler", () => {
  it("weighs a spilled-over pod's KV utilization by its KV tokens over the preferred plan's", () => {
    const pods = [readyPod("h100-0", 400_000), readyPod("a100-0", 200_000)];
    const results = [
      { ok: true, target: { podName: "h100-0" }, sample: sample(0.8) },
      { ok: true, target: { podName: "a100-0" }, sample: sample(0.8) },
    ] as unknown as ScrapeResult[];
    const observed = observePods(pods, results, new Map(), 400_000);
    expect(observed.map((p) => p.metrics?.kvCacheUtilization)).toEqual([0.8, 0.4]);
    // Without a reference (no plan yet) nothing is weighted.
    expect(observePods(pods, results, new Map()).map((p) => p.metrics?.kvCacheUtilization)).toEqual([0.8, 0.8]);
  });

  it("bounds the weight and ignores a missing or broken annotation", () => {
    expect(kvCapacityWeight(readyPod("x", 1), 1_000_000)).toBe(0.05);
    expect(kvCapacityWeight({ metadata: { annotations: { "gpufleet.io/kv-cache-tokens": "lots" } } }, 1000)).toBe(1);
    expect(kvCapacityWeight({}, 1000)).toBe(1);
  });
});

describe("replicas of different token throughput in the autoscaler", () => {
  const H100 = "NVIDIA-H100-80GB-HBM3";
  const A100 = "NVIDIA-A100-SXM4-80GB";
  const planned = (name: string, gpuProduct: string, tp: number, pp?: number): V1Pod => {
    const pod = readyPod(name, 400_000);
    pod.metadata!.annotations = {
      ...pod.metadata!.annotations,
      "gpufleet.io/gpu-product": gpuProduct,
      "gpufleet.io/tensor-parallelism": String(tp),
      ...(pp ? { "gpufleet.io/pipeline-parallelism": String(pp) } : {}),
    };
    return pod;
  };
  const reference = { gpuProduct: H100, gpusPerReplica: 1 };

  it("weighs a pod by its plan's token throughput over the preferred plan's: GPU TFLOPS x GPUs (with TP efficiency)", () => {
    // A100 312 vs H100 989 dense BF16 TFLOPS (operator/planner/gpus.ts).
    expect(throughputWeight(planned("a", A100, 1), reference)).toBeCloseTo(312 / 989, 6);
    expect(throughputWeight(planned("h", H100, 1), reference)).toBe(1);
    // Two A100s with TP 2: 2 x 0.85 (ASSUMED_TENSOR_PARALLEL_EFFICIENCY) of one.
    expect(throughputWeight(planned("a2", A100, 2), reference)).toBeCloseTo((312 * 2 * 0.85) / 989, 6);
    // A two-stage group computes on all its GPUs.
    expect(throughputWeight(planned("g", H100, 8, 2), { gpuProduct: H100, gpusPerReplica: 8 })).toBeCloseTo(16 / 8, 6);
    // Unknown product, missing or out-of-bounds annotations, no reference: 1.
    expect(throughputWeight(planned("x", "NVIDIA-Imaginary-9000", 1), reference)).toBe(1);
    expect(throughputWeight(readyPod("bare", 1), reference)).toBe(1);
    expect(throughputWeight(planned("big", A100, 999), reference)).toBe(1);
    expect(throughputWeight(planned("a", A100, 1), undefined)).toBe(1);
  });

  it("marks spilled pods with both weights and leaves alike pods unmarked", () => {
    const pods = [planned("h100-0", H100, 1), planned("a100-0", A100, 1)];
    const results = pods.map((p) => ({ ok: true, target: { podName: p.metadata!.name }, sample: sample(0.5) })) as unknown as ScrapeResult[];
    const observed = observePods(pods, results, new Map(), 400_000, reference);
    expect(observed[0]?.capacityWeights).toBeUndefined();
    expect(observed[1]?.capacityWeights?.kv).toBe(1);
    expect(observed[1]?.capacityWeights?.throughput).toBeCloseTo(312 / 989, 6);
  });

  it("learns a preferred replica's capacity from a saturated spilled pod, and counts token demand in replicas like the running ones", () => {
    const slow = 312 / 989;
    const at = (ms: number, tokens: number): PodObservation => ({
      name: "a100-0",
      phase: "ready",
      sinceMs: 0,
      capacityWeights: { kv: 1, throughput: slow },
      // Queued at both readings, KV below the saturation ceiling: saturated on compute.
      metrics: { kvCacheUtilization: 0.5, requestsWaiting: 3, requestsRunning: 8, scrapedAtMs: ms, promptTokensTotal: tokens, generationTokensTotal: 0 },
    });
    const first = readTokenRates(sortPods({ nowMs: 0, currentReplicas: 1, pods: [at(0, 0)] }, 30_000), {});
    const second = readTokenRates(sortPods({ nowMs: 10_000, currentReplicas: 1, pods: [at(10_000, 10_000)] }, 30_000), first.podTokenCounters);
    // 1,000 tokens/s on an A100 is what an H100 replica would do at ~3,170.
    expect(second.saturatedRates[0]).toBeCloseTo(1000 / slow, 3);
    expect(second.measuredTokensPerSecond).toBeCloseTo(1000, 6);

    // Three replicas of which two spilled to A100: they hold (1 + 2 x 0.315) / 3 of a preferred replica each.
    const sorted = sortPods(
      {
        nowMs: 0,
        currentReplicas: 3,
        pods: [
          { name: "h", phase: "ready", sinceMs: 0 },
          { name: "a1", phase: "ready", sinceMs: 0, capacityWeights: { kv: 1, throughput: slow } },
          { name: "a2", phase: "ready", sinceMs: 0, capacityWeights: { kv: 1, throughput: slow } },
        ],
      },
      30_000,
    );
    const mean = (1 + 2 * slow) / 3;
    expect(sorted.meanWeight.throughput).toBeCloseTo(mean, 6);
    // 3,000 tokens/s at a 3,000/s preferred capacity and a 0.5 target: 2 preferred replicas, 2 / mean of these.
    expect(tokenDemand(3000, 1, 3000, 0.5, sorted.meanWeight.throughput).tokenDemandReplicas).toBeCloseTo(2 / mean, 6);
    expect(tokenDemand(3000, 1, 3000, 0.5).tokenDemandReplicas).toBeCloseTo(2, 6);
  });

  it("counts KV demand of spilled replicas with fewer KV tokens in replicas like them, not in preferred ones", () => {
    // Every replica spilled to a product with half the KV tokens, each at the 0.8 target: demand is the 2 replicas running.
    const half = (name: string): PodObservation => ({
      name,
      phase: "ready",
      sinceMs: 0,
      capacityWeights: { kv: 0.5, throughput: 1 },
      metrics: { kvCacheUtilization: 0.8 * 0.5, requestsWaiting: 0, requestsRunning: 4, scrapedAtMs: 0 },
    });
    const sorted = sortPods({ nowMs: 0, currentReplicas: 2, pods: [half("a"), half("b")] }, 30_000);
    const config = { kvCacheUtilizationTarget: 0.8, queueDepthTargetPerReplica: 5 } as never;
    expect(kvAndQueueDemand(sorted, 0, config, { maxQueueInflation: 2 } as never).kvDemandReplicas).toBeCloseTo(2, 6);
  });
});
