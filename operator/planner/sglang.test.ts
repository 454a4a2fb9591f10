import { describe, expect, it } from "vitest";
import { findGpu } from "./gpus.js";
import { GiB, planModel, sglangReserve } from "./plan.js";
import { hfFixtureModel } from "./vllm-log-cases.js";

// SGLang sizes its KV pool from --mem-fraction-static: f x total memory holds weights and the pool.
// Public start-up log: Qwen3-235B-A22B-FP8 on 4 x H100, `--tp 4 --mem-fraction-static 0.93`:
// "KV Cache is allocated. #tokens: 367404, K size: 8.23 GB, V size: 8.23 GB"
// (https://github.com/vllm-project/vllm/issues/21348, SGLang side of the comparison).
const OBSERVED_TOKENS = 367_404;

describe("the SGLang memory model", () => {
  const h100 = findGpu("NVIDIA-H100-80GB-HBM3");
  if (!h100) throw new Error("no H100 in the catalogue");
  // The FP8 checkpoint has the same config as the bf16 one plus an fp8 quantization_config.
  const qwen235b = hfFixtureModel("Qwen/Qwen3-235B-A22B");
  const plan = planModel({
    model: qwen235b,
    gpu: h100,
    gpusPerNode: 8,
    engine: "sglang",
    quantization: "fp8",
    tensorParallelism: 4,
    gpuMemoryUtilization: 0.93,
    maxContextLength: 32_768,
  });

  it("matches SGLang's KV-cache tokens for Qwen3-235B-A22B-FP8 at TP 4 within 1 %", () => {
    if (!plan.ok) throw new Error(plan.message);
    const error = (plan.kvCacheTokensPerReplica - OBSERVED_TOKENS) / OBSERVED_TOKENS;
    console.log(
      `sglang: predicted ${plan.kvCacheTokensPerReplica} observed ${OBSERVED_TOKENS} (${(error * 100).toFixed(2)} %)`,
    );
    expect(Math.abs(error)).toBeLessThan(0.01);
  });

  it("caches every layer at one token per slot: 94 layers x 1 KV head per rank x 128 x 2 x 2 bytes", () => {
    if (!plan.ok) throw new Error(plan.message);
    expect(plan.kvCacheBytesPerTokenPerGpu).toBe(94 * 1 * 128 * 2 * 2);
    // K and V of 367,404 tokens: 8.23 GiB each, as the log says.
    expect((OBSERVED_TOKENS * plan.kvCacheBytesPerTokenPerGpu) / 2 / GiB).toBeCloseTo(8.23, 2);
  });

  it("keeps activations outside the static fraction: no activation or sampler reserve", () => {
    expect(sglangReserve(1)).toMatchObject({ activationBytes: 0, samplerBytes: 0 });
    expect(sglangReserve(4).totalBytes).toBeGreaterThan(sglangReserve(1).totalBytes);
  });

  it("holds more KV than vLLM at the same fraction on the same GPUs (vLLM also reserves activation memory)", () => {
    const vllm = planModel({
      model: qwen235b,
      gpu: h100,
      gpusPerNode: 8,
      engine: "vllm",
      quantization: "fp8",
      tensorParallelism: 4,
      gpuMemoryUtilization: 0.93,
      maxContextLength: 32_768,
    });
    if (!plan.ok || !vllm.ok) throw new Error("expected plans");
    expect(plan.kvCacheTokensPerReplica).toBeGreaterThan(vllm.kvCacheTokensPerReplica);
  });
});
