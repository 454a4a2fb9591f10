import { describe, expect, it } from "vitest";
import { findGpu } from "./gpus.js";
import { findModel } from "./models.js";
import { GiB } from "./plan.js";
import { pipelineLayerSplit, planReplica, type ReplicaPlanInput } from "./pipeline.js";

const h100 = findGpu("NVIDIA-H100-80GB-HBM3")!;
const a100 = findGpu("NVIDIA-A100-SXM4-80GB")!;
const llama405b = findModel("meta-llama/Llama-3.1-405B-Instruct")!;
const llama8b = findModel("meta-llama/Llama-3.1-8B-Instruct")!;

function input(overrides: Partial<ReplicaPlanInput> = {}): ReplicaPlanInput {
  return { model: llama405b, gpu: h100, gpusPerNode: 8, nodesInPool: 2, ...overrides };
}

describe("pipelineLayerSplit (vLLM's get_pp_indices)", () => {
  it("splits evenly when it can and gives the leftover layers to the stages before the last", () => {
    expect(pipelineLayerSplit(126, 2)).toEqual([63, 63]);
    expect(pipelineLayerSplit(10, 4)).toEqual([2, 3, 3, 2]);
    expect(pipelineLayerSplit(61, 4)).toEqual([15, 15, 16, 15]);
    for (const [layers, stages] of [[126, 3], [80, 7], [61, 8]] as const)
      expect(pipelineLayerSplit(layers, stages).reduce((a, b) => a + b, 0)).toBe(layers);
  });
});

describe("planReplica", () => {
  it("keeps a model that fits one node on one node (PP 1)", () => {
    const plan = planReplica(input({ model: llama8b }));
    expect(plan.ok).toBe(true);
    if (!plan.ok) return;
    expect(plan.pipelineParallelism).toBe(1);
    expect(plan.nodesPerReplica).toBe(1);
    expect(plan.gpusPerReplica).toBe(plan.tensorParallelism);
  });

  it("plans Llama 3.1 405B bf16 on 8 x H100 nodes as PP 2 x TP 8 and says what each stage holds", () => {
    const plan = planReplica(input());
    expect(plan.ok).toBe(true);
    if (!plan.ok) return;
    expect(plan.tensorParallelism).toBe(8);
    expect(plan.pipelineParallelism).toBe(2);
    expect(plan.nodesPerReplica).toBe(2);
    expect(plan.gpusPerReplica).toBe(16);
    const [first, last] = plan.stages;
    expect(first).toMatchObject({ firstLayer: 0, lastLayer: 62, layers: 63, holdsEmbedding: true, holdsLmHead: false });
    expect(last).toMatchObject({ firstLayer: 63, lastLayer: 125, layers: 63, holdsEmbedding: false, holdsLmHead: true });
    // 63 layers x 1 KV head per rank (8 KV heads / TP 8) x 128 x 2 (K, V) x 2 bytes.
    expect(first!.kvCacheBytesPerTokenPerGpu).toBe(63 * 1 * 128 * 2 * 2);
    // About 756 GiB of weights: 47 GiB per GPU per stage, where one node would need 94.
    expect(plan.weightBytesTotal / GiB).toBeCloseTo(755.9, 0);
    expect(first!.weightBytesPerGpu / GiB).toBeGreaterThan(46);
    expect(first!.weightBytesPerGpu / GiB).toBeLessThan(48.5);
    // The last stage also holds the sampler's logits: less KV room than the first.
    expect(last!.kvCacheTokens).toBeLessThan(first!.kvCacheTokens);
    expect(plan.kvCacheTokensPerReplica).toBe(last!.kvCacheTokens);
    expect(plan.kvCacheTokensPerReplica).toBeGreaterThanOrEqual(131_072);
    expect(plan.explanation).toMatch(/one node of 8 x NVIDIA-H100-80GB-HBM3 cannot hold it: at TP 8 each GPU would need 94.50 GiB of weights/);
    expect(plan.explanation).toMatch(/PP 2 x TP 8 = 16 x NVIDIA-H100-80GB-HBM3 on 2 nodes/);
    expect(plan.explanation).toMatch(/stage 0: layers 0-62 \+ embedding/);
    expect(plan.explanation).toMatch(/stage 1: layers 63-125 \+ LM head/);
  });

  it("refuses a pool with one node, naming the nodes needed and what else would fit", () => {
    const plan = planReplica(input({ gpu: a100, nodesInPool: 1 }));
    expect(plan.ok).toBe(false);
    if (plan.ok) return;
    expect(plan.code).toBe("does-not-fit");
    expect(plan.message).toMatch(/needs 2 nodes per replica \(PP 2 x TP 8 = 16 x NVIDIA-A100-SXM4-80GB\)/);
    expect(plan.message).toMatch(/pool has 1 ready node:/);
    expect(plan.suggestions.some((s) => s.kind === "quantization")).toBe(true);
  });

  it("does not split when pipelineParallelism is 1, and forces the split it is given", () => {
    const one = planReplica(input({ pipelineParallelism: 1 }));
    expect(one.ok).toBe(false);
    const four = planReplica(input({ pipelineParallelism: 4, nodesInPool: 4 }));
    expect(four.ok && four.pipelineParallelism).toBe(4);
    const tooMany = planReplica(input({ pipelineParallelism: 4 }));
    expect(tooMany.ok).toBe(false);
    expect(planReplica(input({ pipelineParallelism: 0 })).ok).toBe(false);
  });

  it("fits 405B in FP8 on one node: PP only when needed", () => {
    const plan = planReplica(input({ quantization: "fp8", maxContextLength: 32_768 }));
    expect(plan.ok && plan.pipelineParallelism).toBe(1);
  });

  it("more stages give a longer context room: PP 3 when 2 stages cannot hold the context on smaller memory", () => {
    const plan = planReplica(input({ gpuMemoryUtilization: 0.7, nodesInPool: 4 }));
    expect(plan.ok).toBe(true);
    if (!plan.ok) return;
    expect(plan.pipelineParallelism).toBeGreaterThan(2);
    expect(plan.explanation).toMatch(/PP 2 leaves a stage short/);
  });
});
