import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { ScrapeResult } from "../metrics/scrape.js";
import { kvCapacityWeight } from "./capacity-weight.js";
import { observePods } from "./loop.js";

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
