import { describe, expect, it } from "vitest";
import { defineModel, findModel, type ModelArchitecture } from "./models.js";
import { findGpu, type GpuSpec } from "./gpus.js";
import {
  GiB,
  formatPlan,
  kvCacheBytesPerToken,
  kvCacheBytesPerTokenPerGpu,
  planAcrossGpus,
  planModel,
  sizingTable,
  weightBytes,
  type Plan,
  type PlanError,
  type PlanResult,
} from "./plan.js";
import { KV_TOKEN_MEDIAN_TOLERANCE, KV_TOKEN_TOLERANCE, VLLM_LOG_CASES } from "./vllm-log-cases.js";

function model(name: string): ModelArchitecture {
  const found = findModel(name);
  if (!found) throw new Error(`unknown model ${name}`);
  return found;
}

function gpu(name: string): GpuSpec {
  const found = findGpu(name);
  if (!found) throw new Error(`unknown gpu ${name}`);
  return found;
}

function expectPlan(result: PlanResult): Plan {
  if (!result.ok) throw new Error(`expected a plan, got ${result.code}: ${result.message}`);
  return result;
}

function expectError(result: PlanResult): PlanError {
  if (result.ok) throw new Error(`expected an error, got a plan: ${result.explanation}`);
  return result;
}

const GB = 1e9;

describe("weight memory matches published figures", () => {
  it("Llama 3 70B in 16-bit is about 140 GB", () => {
    expect(weightBytes(model("llama-3.1-70b"), "none") / GB).toBeCloseTo(141.1, 0);
  });

  it("Mixtral 8x7B is about 94 GB: all 46.7B parameters are resident, not the 12.9B active", () => {
    const bytes = weightBytes(model("mixtral-8x7b"), "none");
    expect(bytes / GB).toBeGreaterThan(93);
    expect(bytes / GB).toBeLessThan(94);
  });

  it("Gemma 2 9B is about 18 GB", () => {
    const bytes = weightBytes(model("gemma-2-9b"), "none");
    expect(bytes / GB).toBeGreaterThan(18);
    expect(bytes / GB).toBeLessThan(19);
  });

  it("quantization shrinks the non-embedding weights only: int8 ~ 1 byte, int4 ~ 0.52 bytes per parameter", () => {
    const llama70b = model("llama-3.1-70b");
    // vLLM loaded Meta-Llama-3.1-70B W8A8 as 67.72 GiB (vllm PR 12569).
    expect(weightBytes(llama70b, "int8") / GiB).toBeCloseTo(67.7, 0);
    // AWQ-INT4 70B checkpoints are ~39.8 GB (4.16 bits/param + 16-bit embeddings and LM head).
    expect(weightBytes(llama70b, "awq") / GB).toBeGreaterThan(39);
    expect(weightBytes(llama70b, "awq") / GB).toBeLessThan(41);
    expect(weightBytes(llama70b, "fp8")).toBe(weightBytes(llama70b, "int8"));
    expect(weightBytes(llama70b, "int4")).toBe(weightBytes(llama70b, "gptq"));
  });
});

describe("KV cache bytes per token", () => {
  it("is 2 x layers x KV heads x head dim x dtype bytes (Llama 3.1 8B: 128 KiB in bf16, 64 KiB in fp8)", () => {
    const llama8b = model("llama-3.1-8b");
    expect(kvCacheBytesPerToken(llama8b, "auto")).toBe(2 * 32 * 8 * 128 * 2);
    expect(kvCacheBytesPerToken(llama8b, "bf16")).toBe(131_072);
    expect(kvCacheBytesPerToken(llama8b, "fp8_e4m3")).toBe(65_536);
  });

  it("splits KV heads across tensor-parallel ranks", () => {
    const llama70b = model("llama-3.1-70b");
    expect(kvCacheBytesPerTokenPerGpu(llama70b, "auto", 4)).toBe(kvCacheBytesPerToken(llama70b, "auto") / 4);
    expect(kvCacheBytesPerTokenPerGpu(llama70b, "auto", 8)).toBe(kvCacheBytesPerToken(llama70b, "auto") / 8);
  });

  it("replicates KV heads when TP exceeds their count: every rank keeps one head", () => {
    const twoKvHeads = defineModel({
      id: "two-kv-heads",
      totalParameters: 3e9,
      activeParameters: 3e9,
      layers: 24,
      hiddenSize: 4096,
      intermediateSize: 8192,
      attentionHeads: 32,
      kvHeads: 2,
      headDim: 128,
      maxContextLength: 8192,
      vocabSize: 32_000,
      tiedEmbeddings: false,
      weightDtype: "bfloat16",
    });
    const oneHeadPerToken = 2 * 24 * 1 * 128 * 2;
    expect(kvCacheBytesPerTokenPerGpu(twoKvHeads, "auto", 2)).toBe(oneHeadPerToken);
    expect(kvCacheBytesPerTokenPerGpu(twoKvHeads, "auto", 4)).toBe(oneHeadPerToken);
    const plan = expectPlan(
      planModel({ model: twoKvHeads, gpu: gpu("l4"), gpusPerNode: 4, tensorParallelism: 4 }),
    );
    expect(plan.kvCacheBytesPerTokenPerGpu).toBe(oneHeadPerToken);
  });
});

describe("planModel: automatic tensor parallelism", () => {
  it("puts Llama 3.1 8B on one H100", () => {
    const plan = expectPlan(
      planModel({ model: model("llama-3.1-8b"), gpu: gpu("NVIDIA-H100-80GB-HBM3"), gpusPerNode: 8 }),
    );
    expect(plan.tensorParallelism).toBe(1);
    expect(plan.gpusPerReplica).toBe(1);
    expect(plan.gpuMemoryUtilization).toBe(0.9);
    expect(plan.maxContextLength).toBe(131_072);
    expect(plan.kvCacheTokensPerReplica).toBeGreaterThan(400_000);
    expect(plan.maxConcurrentFullContextSequences).toBeCloseTo(plan.kvCacheTokensPerReplica / 131_072, 1);
  });

  it("puts Llama 3.1 70B bf16 on 4 H100 (2 hold the weights but not one 128k sequence)", () => {
    const plan = expectPlan(
      planModel({ model: model("meta-llama/Llama-3.1-70B-Instruct"), gpu: gpu("h100"), gpusPerNode: 8 }),
    );
    expect([4, 8]).toContain(plan.tensorParallelism);
    expect(plan.tensorParallelism).toBe(4);
    expect(plan.kvCacheTokensPerReplica).toBeGreaterThanOrEqual(131_072);
    const atTp2 = expectError(
      planModel({ model: model("llama-3.1-70b"), gpu: gpu("h100"), gpusPerNode: 8, tensorParallelism: 2 }),
    );
    expect(atTp2.code).toBe("does-not-fit");
  });

  it("fits int4 (AWQ) Llama 3.1 70B with a 32k context on 2 L40S", () => {
    const plan = expectPlan(
      planModel({
        model: model("llama-3.1-70b"),
        quantization: "awq",
        gpu: gpu("NVIDIA-L40S"),
        gpusPerNode: 2,
        maxContextLength: 32_768,
      }),
    );
    expect(plan.tensorParallelism).toBe(2);
    expect(plan.weightBytesPerGpu / GiB).toBeGreaterThan(18);
    expect(plan.weightBytesPerGpu / GiB).toBeLessThan(19);
    expect(plan.maxConcurrentFullContextSequences).toBeGreaterThanOrEqual(1);
  });

  it("uses fp8 KV cache to double the tokens a replica holds", () => {
    const base = { model: model("llama-3.1-8b"), gpu: gpu("h100"), gpusPerNode: 1 };
    const bf16 = expectPlan(planModel(base));
    const fp8 = expectPlan(planModel({ ...base, kvCacheDtype: "fp8" }));
    expect(fp8.kvCacheTokensPerReplica / bf16.kvCacheTokensPerReplica).toBeCloseTo(2, 2);
  });

  it("sizes TensorRT-LLM's KV cache as the free-memory fraction of what weights and reserve leave", () => {
    const plan = expectPlan(
      planModel({ model: model("llama-3.1-8b"), gpu: gpu("h100"), gpusPerNode: 1, engine: "tensorrt-llm" }),
    );
    const expected = 0.9 * (79.19 * GiB - plan.weightBytesPerGpu - plan.reserve.totalBytes);
    expect(plan.kvCacheBytesPerGpu).toBeCloseTo(expected, -3);
    expect(plan.kvCacheTokensPerReplica % 32).toBe(0);
  });
});

describe("planModel: explicit tensor parallelism is validated", () => {
  const llama70b = { model: model("llama-3.1-70b"), gpu: gpu("h100"), gpusPerNode: 8 };

  it("refuses TP 3 as not a power of two and lists the valid degrees", () => {
    const error = expectError(planModel({ ...llama70b, tensorParallelism: 3 }));
    expect(error.code).toBe("invalid-tensor-parallelism");
    expect(error.message).toMatch(/3 is not a power of two/);
    expect(error.message).toMatch(/1, 2, 4, 8/);
  });

  it("refuses TP larger than the node", () => {
    const error = expectError(planModel({ ...llama70b, gpusPerNode: 4, tensorParallelism: 8 }));
    expect(error.message).toMatch(/exceeds the 4 GPUs of one node/);
  });

  it("refuses TP that does not divide the attention heads (Qwen2.5 7B has 28)", () => {
    const error = expectError(
      planModel({ model: model("qwen2.5-7b"), gpu: gpu("l4"), gpusPerNode: 8, tensorParallelism: 8 }),
    );
    expect(error.message).toMatch(/does not divide the 28 attention heads/);
  });

  it("refuses 4-bit TP that cuts the MLP off quantization-group boundaries, unless the checkpoint pads it", () => {
    const qwen72b = model("qwen2.5-72b");
    const input = {
      quantization: "awq" as const,
      gpu: gpu("l40s"),
      gpusPerNode: 8,
      maxContextLength: 8192,
      tensorParallelism: 4,
    };
    // Unpadded 29,568 columns / 4 = 7,392, not whole 128-column groups.
    const { quantizedIntermediateSize: _padded, ...unpadded } = qwen72b;
    expect(expectError(planModel({ ...input, model: defineModel(unpadded) })).message).toMatch(
      /7392 columns per GPU, not a multiple of the 4-bit group size 128/,
    );
    // Qwen's AWQ upload pads to 29,696, which TP 4 and 8 split cleanly.
    expect(expectPlan(planModel({ ...input, model: qwen72b })).tensorParallelism).toBe(4);
    expect(expectPlan(planModel({ ...input, model: qwen72b, tensorParallelism: 8 })).tensorParallelism).toBe(
      8,
    );
  });

  it("refuses a TP that is valid but too small to hold the weights, with the reason", () => {
    const error = expectError(planModel({ ...llama70b, tensorParallelism: 1 }));
    expect(error.code).toBe("does-not-fit");
    expect(error.message).toMatch(/TP 1: 131\.\d\d GiB weights/);
  });
});

describe("planModel: when nothing fits the error says what would", () => {
  it("names fp8/int4 or H200/B200 for Llama 3.1 405B bf16 on one 8 x L4 node", () => {
    const error = expectError(
      planModel({ model: model("llama-3.1-405b"), gpu: gpu("NVIDIA-L4"), gpusPerNode: 8 }),
    );
    expect(error.code).toBe("does-not-fit");
    expect(error.message).toMatch(/fp8|int4|H200|B200/);
    const gpuIds = error.suggestions
      .filter((s) => s.kind === "gpu")
      .map((s) => (s.kind === "gpu" ? s.productLabel : ""));
    expect(gpuIds).toContain("NVIDIA-H200");
    expect(gpuIds).toContain("NVIDIA-B200");
    // 811 GB of weights cannot fit 8 x 80 GB at any context.
    expect(gpuIds).not.toContain("NVIDIA-H100-80GB-HBM3");
    expect(error.suggestions.some((s) => s.kind === "context")).toBe(false);
  });

  it("names fp8 for Llama 3.1 405B bf16 on 8 x H100, and the suggested quantization really plans", () => {
    const input = { model: model("llama-3.1-405b"), gpu: gpu("h100"), gpusPerNode: 8 };
    const error = expectError(planModel(input));
    const quantization = error.suggestions.find((s) => s.kind === "quantization");
    expect(quantization).toEqual({ kind: "quantization", quantization: "fp8", tensorParallelism: 8 });
    expectPlan(planModel({ ...input, quantization: "fp8" }));
  });

  it("computes the longest context that fits, and that context then plans", () => {
    const input = {
      model: model("llama-3.1-70b"),
      quantization: "awq" as const,
      gpu: gpu("l40s"),
      gpusPerNode: 2,
    };
    const error = expectError(planModel(input));
    const context = error.suggestions.find((s) => s.kind === "context");
    if (context?.kind !== "context") throw new Error("expected a context suggestion");
    expect(context.maxContextLength).toBeLessThan(131_072);
    expect(context.maxContextLength).toBeGreaterThan(32_768);
    expect(error.message).toContain(`maxContextLength <= ${context.maxContextLength}`);
    const plan = expectPlan(planModel({ ...input, maxContextLength: context.maxContextLength }));
    expect(plan.maxConcurrentFullContextSequences).toBeGreaterThanOrEqual(1);
    expect(plan.maxConcurrentFullContextSequences).toBeLessThan(1.01);
  });
});

describe("planModel: input checks and warnings", () => {
  it("rejects a context longer than the model's", () => {
    const error = expectError(
      planModel({ model: model("gemma-2-9b"), gpu: gpu("l4"), gpusPerNode: 1, maxContextLength: 16_384 }),
    );
    expect(error.code).toBe("invalid-input");
    expect(error.message).toMatch(/exceeds gemma-2-9b's maximum of 8192/);
  });

  it("rejects FP8 on TensorRT-LLM without FP8 tensor cores, but lets vLLM run it weight-only with a warning", () => {
    const input = {
      model: model("llama-3.1-8b"),
      quantization: "fp8" as const,
      gpu: gpu("a100-80gb"),
      gpusPerNode: 1,
    };
    expect(expectError(planModel({ ...input, engine: "tensorrt-llm" })).code).toBe("invalid-input");
    const plan = expectPlan(planModel(input));
    expect(plan.warnings.join(" ")).toMatch(/no FP8 tensor cores/);
  });

  it("rejects a utilization outside (0, 1]", () => {
    expect(
      expectError(
        planModel({
          model: model("llama-3.1-8b"),
          gpu: gpu("h100"),
          gpusPerNode: 1,
          gpuMemoryUtilization: 1.2,
        }),
      ).code,
    ).toBe("invalid-input");
  });
});

describe("planAcrossGpus", () => {
  const pools = [
    { productLabel: "NVIDIA-L4", gpusPerNode: 8 },
    { productLabel: "NVIDIA-H100-80GB-HBM3", gpusPerNode: 8, availableGpus: 16 },
  ];

  it("returns the first allowed GPU that fits and why earlier ones were rejected", () => {
    const result = planAcrossGpus(
      { model: model("llama-3.1-70b") },
      ["NVIDIA-B200", "NVIDIA-L4", "NVIDIA-H100-80GB-HBM3"],
      pools,
      findGpu,
    );
    if (!result.ok) throw new Error(result.message);
    expect(result.plan.gpuProductLabel).toBe("NVIDIA-H100-80GB-HBM3");
    expect(result.rejected.map((r) => r.gpu)).toEqual(["NVIDIA-B200", "NVIDIA-L4"]);
    expect(result.rejected[0]?.reason).toMatch(/no pool offers NVIDIA-B200/);
    expect(result.rejected[1]?.reason).toMatch(/does not fit 8 x NVIDIA-L4/);
  });

  it("rejects a pool without enough free GPUs for one replica", () => {
    const result = planAcrossGpus(
      { model: model("llama-3.1-70b") },
      ["NVIDIA-H100-80GB-HBM3"],
      [{ productLabel: "NVIDIA-H100-80GB-HBM3", gpusPerNode: 8, availableGpus: 2 }],
      findGpu,
    );
    expect(result.ok).toBe(false);
    expect(result.rejected[0]?.reason).toMatch(/pool has 2 free NVIDIA-H100-80GB-HBM3, a replica needs 4/);
  });
});

describe("formatting", () => {
  it("formatPlan and sizingTable show TP, weights and KV tokens", () => {
    const plan = expectPlan(planModel({ model: model("llama-3.1-70b"), gpu: gpu("h100"), gpusPerNode: 8 }));
    const text = formatPlan(plan);
    expect(text).toMatch(/tensor parallelism\s+4/);
    expect(text).toContain(plan.kvCacheTokensPerReplica.toLocaleString("en-US"));
    const table = sizingTable([
      plan,
      planModel({ model: model("llama-3.1-70b"), gpu: gpu("h100"), gpusPerNode: 8, tensorParallelism: 3 }),
    ]);
    const lines = table.split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^model\s+gpu\s+quant\s+tp/);
    expect(lines[1]).toMatch(/^llama-3\.1-70b\s+NVIDIA-H100-80GB-HBM3\s+none\s+4 /);
    expect(lines[2]).toMatch(/error: invalid-tensor-parallelism$/);
  });
});

describe("validation against real vLLM start-up logs", () => {
  const errors: string[] = [];
  const absoluteErrors: number[] = [];
  it.each(VLLM_LOG_CASES.map((c) => [c.name, c] as const))(
    `%s: KV tokens within ±${KV_TOKEN_TOLERANCE * 100}%%`,
    (_name, logCase) => {
      const plan = expectPlan(
        planModel({
          model: logCase.model,
          gpu: logCase.gpu,
          gpusPerNode: 8,
          quantization: logCase.quantization,
          tensorParallelism: logCase.tensorParallelism,
          gpuMemoryUtilization: logCase.gpuMemoryUtilization,
          maxContextLength: logCase.maxContextLength,
          maxNumBatchedTokens: logCase.maxNumBatchedTokens,
          maxNumSeqs: logCase.maxNumSeqs,
        }),
      );
      const relativeError =
        (plan.kvCacheTokensPerReplica - logCase.observedKvCacheTokens) / logCase.observedKvCacheTokens;
      absoluteErrors.push(Math.abs(relativeError));
      errors.push(
        `${(relativeError * 100).toFixed(1).padStart(6)} %  predicted ${plan.kvCacheTokensPerReplica} observed ${logCase.observedKvCacheTokens}  ${logCase.name}`,
      );
      expect(Math.abs(relativeError)).toBeLessThanOrEqual(KV_TOKEN_TOLERANCE);
    },
  );

  it("covers at least five cases over several models and GPUs, and prints the error per case", () => {
    expect(VLLM_LOG_CASES.length).toBeGreaterThanOrEqual(5);
    expect(new Set(VLLM_LOG_CASES.map((c) => c.model.id)).size).toBeGreaterThanOrEqual(4);
    expect(new Set(VLLM_LOG_CASES.map((c) => c.gpu.id)).size).toBeGreaterThanOrEqual(3);
    for (const c of VLLM_LOG_CASES) expect(c.url).toMatch(/^https:\/\/github\.com\//);
    const sorted = [...absoluteErrors].sort((a, b) => a - b);
    const median =
      ((sorted[Math.floor((sorted.length - 1) / 2)] ?? 0) +
        (sorted[Math.ceil((sorted.length - 1) / 2)] ?? 0)) /
      2;
    // Test files may print: this is the per-case error report.
    console.log(
      `planner KV-cache error vs vLLM logs (median |error| ${(median * 100).toFixed(1)} %):\n${errors.join("\n")}`,
    );
    expect(sorted.length).toBe(VLLM_LOG_CASES.length);
    expect(median).toBeLessThanOrEqual(KV_TOKEN_MEDIAN_TOLERANCE);
  });
});
