import { describe, expect, it } from "vitest";
import { PrefixIndex } from "./prefix-index.js";

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

describe("PrefixIndex", () => {
  it("matches the leading blocks sent to a pod, and only on that pod", () => {
    const index = new PrefixIndex();
    index.record("pod-a", [1, 2, 3, 4], 0);
    expect(index.matchedBlocks("pod-a", [1, 2, 3, 4, 5])).toBe(4);
    expect(index.matchedBlocks("pod-a", [1, 2, 9, 4])).toBe(2);
    expect(index.matchedBlocks("pod-a", [9, 1, 2])).toBe(0);
    expect(index.matchedBlocks("pod-b", [1, 2])).toBe(0);
  });

  it("never holds more than maxBlocksPerPod per pod, evicting least recently sent first, tails before heads", () => {
    const index = new PrefixIndex({ maxBlocksPerPod: 10, maxPods: 4 });
    index.record("p", range(0, 6), 0); // blocks 0..5
    index.record("p", range(100, 6), 1); // 6 more: 2 of the first prompt's must go, its tail first
    expect(index.blockCount("p")).toBe(10);
    expect(index.matchedBlocks("p", range(100, 6))).toBe(6);
    expect(index.matchedBlocks("p", range(0, 6))).toBe(4);
    // Sending the old prefix again makes it recent: now the second prompt's tail goes.
    index.record("p", range(0, 2), 2);
    index.record("p", range(200, 3), 3);
    expect(index.matchedBlocks("p", range(0, 6))).toBe(2);
    expect(index.matchedBlocks("p", range(100, 6))).toBe(5);
    expect(index.blockCount("p")).toBe(10);
    // A prompt longer than the bound keeps its head.
    index.record("p", range(1000, 50), 4);
    expect(index.blockCount("p")).toBe(10);
    expect(index.matchedBlocks("p", range(1000, 50))).toBe(10);
  });

  it("bounds pods: the pod least recently sent to is dropped; retainPods drops vanished pods", () => {
    const index = new PrefixIndex({ maxBlocksPerPod: 100, maxPods: 2 });
    index.record("a", [1], 0);
    index.record("b", [2], 1);
    index.record("a", [3], 2);
    index.record("c", [4], 3); // drops b
    expect(index.podCount()).toBe(2);
    expect(index.matchedBlocks("b", [2])).toBe(0);
    expect(index.matchedBlocks("a", [1])).toBe(1);
    index.retainPods(new Set(["c"]));
    expect(index.podCount()).toBe(1);
    expect(index.totalBlocks()).toBe(1);
  });

  it("memory stays bounded under 100,000 distinct prompts", () => {
    const index = new PrefixIndex({ maxBlocksPerPod: 500, maxPods: 8 });
    for (let i = 0; i < 100_000; i++) index.record(`pod-${i % 8}`, range(i * 10, 10), i);
    expect(index.podCount()).toBe(8);
    expect(index.totalBlocks()).toBe(8 * 500);
    // More pods than the bound: still at most maxPods × maxBlocksPerPod.
    for (let i = 0; i < 1000; i++) index.record(`other-${i % 16}`, range(i * 1000, 600), i);
    expect(index.podCount()).toBe(8);
    expect(index.totalBlocks()).toBeLessThanOrEqual(8 * 500);
  });

  it("resizes: a smaller bound evicts a pod down to it on its next record", () => {
    const index = new PrefixIndex({ maxBlocksPerPod: 100 });
    index.record("a", range(0, 100), 1);
    index.resize(10);
    expect(index.blockCount("a")).toBe(100);
    index.record("a", range(1000, 4), 2);
    expect(index.blockCount("a")).toBe(10);
    expect(() => index.resize(0)).toThrow();
  });

  it("refuses bounds below 1", () => {
    expect(() => new PrefixIndex({ maxBlocksPerPod: 0 })).toThrow();
  });
});
