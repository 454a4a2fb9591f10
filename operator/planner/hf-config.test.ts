import { readFileSync, readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { HfConfigError, modelFromHfConfig, readQuantization, type HfModel } from "./hf-config.js";
import { findModel } from "./models.js";
import { findGpu } from "./gpus.js";
import {
  kvCacheBytesPerToken,
  kvCacheBytesPerTokenPerGpu,
  planModel,
  vllmKvLayerSlots,
  weightBytes,
} from "./plan.js";

const DIR = new URL("./testdata/hf-configs/", import.meta.url);

function config(repo: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(`${repo.replace("/", "--")}.json`, DIR), "utf8")) as Record<
    string,
    unknown
  >;
}

function load(repo: string, safetensorsTotalBytes?: number): HfModel {
  return modelFromHfConfig(config(repo), {
    repo,
    ...(safetensorsTotalBytes !== undefined ? { safetensorsTotalBytes } : {}),
  });
}

function catalogue(name: string) {
  const model = findModel(name);
  if (!model) throw new Error(`not in the catalogue: ${name}`);
  return model;
}

describe("the collected config.json files", () => {
  const files = readdirSync(DIR).filter((name) => name.endsWith(".json"));

  it("are 20 or more real models, each listed with its source in the README", () => {
    expect(files.length).toBeGreaterThanOrEqual(20);
    const readme = readFileSync(new URL("README.md", DIR), "utf8");
    for (const file of files) expect(readme).toMatch(new RegExp(`\\|\\s*${file.replace(/\./g, "\\.")}\\s*\\|`));
  });

  it("map to an architecture, or fail naming the field they could not read", () => {
    const refused: string[] = [];
    for (const file of files) {
      const repo = file.replace(/\.json$/, "").replace("--", "/");
      try {
        const { model } = load(repo);
        expect(model.layers).toBeGreaterThan(0);
        expect(model.totalParameters).toBeGreaterThan(model.activeParameters * 0.99);
      } catch (error) {
        expect(error).toBeInstanceOf(HfConfigError);
        refused.push(`${repo}: ${(error as HfConfigError).field}`);
      }
    }
    // Exactly the one architecture with per-token state the planner does not model (linear attention).
    expect(refused.sort()).toEqual(["Qwen/Qwen3.5-27B: text_config.layer_types[0]"]);
  });
});

describe("parameter counts against the checkpoints' own totals", () => {
  // Exact safetensors totals (bytes / 2 for these bf16 checkpoints), kept in the catalogue with
  // their model cards as sources: within 0.1 %.
  it.each([
    ["meta-llama/Meta-Llama-3.1-8B", "llama-3.1-8b"],
    ["mistralai/Mixtral-8x7B-v0.1", "mixtral-8x7b"],
    ["deepseek-ai/DeepSeek-V2-Lite-Chat", "deepseek-v2-lite"],
  ])("%s matches the catalogue's safetensors total", (repo, id) => {
    const { parameters } = load(repo);
    const expected = catalogue(id).totalParameters;
    expect(Math.abs(parameters.total - expected) / expected).toBeLessThan(0.001);
  });

  // Model-card totals (Hugging Face "Model size" / the card's parameter table), with the card's
  // rounding: within 1 % or half the last printed digit, whichever is larger.
  it.each([
    ["Qwen/Qwen3-8B", 8.19e9, 0.005e9, "card: 8.2B; HF model size 8.19B"],
    ["Qwen/Qwen3-32B", 32.8e9, 0.05e9, "card: 32.8B"],
    ["Qwen/Qwen3-30B-A3B", 30.5e9, 0.05e9, "card: 30.5B total, 3.3B activated"],
    ["Qwen/Qwen3-235B-A22B", 235e9, 0.5e9, "card: 235B total, 22B activated"],
    ["Qwen/Qwen1.5-MoE-A2.7B", 14.3e9, 0.05e9, "card: 14.3B total, 2.7B activated"],
    ["deepseek-ai/DeepSeek-V3", 671e9, 0.5e9, "card: 671B main model + 14B MTP module"],
    ["openai/gpt-oss-120b", 116.8e9, 0.05e9, "card: 116.8B total, 5.1B active excluding embeddings"],
    ["openai/gpt-oss-20b", 20.9e9, 0.05e9, "card: 20.9B total, 3.6B active excluding embeddings"],
    ["meta-llama/Llama-4-Maverick-17B-128E-Instruct", 400e9, 0.5e9, "card: 400B total, 17B active"],
    ["ibm-granite/granite-3.1-8b-instruct", 8.17e9, 0.005e9, "HF model size 8.17B"],
  ])("%s: %d parameters (%s)", (repo, expected, rounding) => {
    const { parameters } = load(repo);
    const tolerance = Math.max(0.01 * expected, rounding);
    expect(Math.abs(parameters.total - expected)).toBeLessThanOrEqual(tolerance);
  });

  it("counts active parameters of MoE models from the routed experts per token", () => {
    // Model cards: Qwen3-30B-A3B 3.3B, Qwen3-235B-A22B 22B, DeepSeek-V3 37B, Kimi K2 32B activated;
    // gpt-oss counts active without embeddings (5.1B / 3.6B): add one embedding matrix back.
    expect(load("Qwen/Qwen3-30B-A3B").parameters.active / 1e9).toBeCloseTo(3.3, 0);
    expect(Math.abs(load("Qwen/Qwen3-235B-A22B").parameters.active / 1e9 - 22)).toBeLessThan(0.5);
    expect(Math.abs(load("deepseek-ai/DeepSeek-V3").parameters.active / 1e9 - 37)).toBeLessThan(1);
    expect(Math.abs(load("moonshotai/Kimi-K2-Instruct").parameters.active / 1e9 - 32)).toBeLessThan(1);
    const oss = load("openai/gpt-oss-120b").parameters;
    expect(Math.abs((oss.active - oss.embedding / 2) / 1e9 - 5.1)).toBeLessThan(0.1);
  });

  it("leaves DeepSeek's multi-token-prediction layer out of what vLLM loads, but reports it", () => {
    const { parameters } = load("deepseek-ai/DeepSeek-V3");
    expect(parameters.mtp / 1e9).toBeGreaterThan(10);
    expect(parameters.mtp / 1e9).toBeLessThan(15);
  });

  it("reads the text model out of multimodal wrappers (Llama 4 Scout keeps its language model in text_config)", () => {
    const { model } = load("meta-llama/Llama-4-Scout-17B-16E-Instruct");
    expect(model.layers).toBe(48);
    expect(model.kvHeads).toBe(8);
    expect(model.headDim).toBe(128);
  });
});

describe("KV-cache bytes per token, exact, per attention kind", () => {
  it("dense GQA with head_dim given: Qwen3-8B = 2 x 36 layers x 8 KV heads x 128 x 2 bytes", () => {
    const { model } = load("Qwen/Qwen3-8B");
    expect(kvCacheBytesPerToken(model, "auto")).toBe(2 * 36 * 8 * 128 * 2);
    expect(kvCacheBytesPerTokenPerGpu(model, "auto", 4)).toBe(2 * 36 * 2 * 128 * 2);
  });

  it("head_dim derived from hidden_size / heads: Llama 3.1 8B = 4096 / 32 = 128", () => {
    const { model } = load("meta-llama/Meta-Llama-3.1-8B");
    expect(model.headDim).toBe(128);
    expect(kvCacheBytesPerToken(model, "auto")).toBe(131_072);
  });

  it("MQA with hybrid layers: Gemma 3 1B (1 KV head; 22 local + 4 global -> 7 groups of 4 = 28 slots)", () => {
    const { model } = load("google/gemma-3-1b-it");
    expect(model.slidingWindowLayers).toBe(22);
    expect(vllmKvLayerSlots(model)).toBe(28);
    expect(kvCacheBytesPerToken(model, "auto")).toBe(2 * 28 * 1 * 256 * 2);
    // One KV head is replicated on every rank.
    expect(kvCacheBytesPerTokenPerGpu(model, "auto", 2)).toBe(2 * 28 * 1 * 256 * 2);
  });

  it("sliding-window hybrid: Gemma 3 27B pads 52 local layers to 60 beside 10 global (vLLM: 'Add 8 padding layers')", () => {
    const { model } = load("google/gemma-3-27b-it");
    expect(model.slidingWindow).toBe(1024);
    expect(vllmKvLayerSlots(model)).toBe(70);
    expect(kvCacheBytesPerToken(model, "auto")).toBe(2 * 70 * 16 * 128 * 2);
  });

  it("alternating layer_types: gpt-oss-20b (12 + 12, no padding) = 2 x 24 x 8 x 64 x 2", () => {
    const { model } = load("openai/gpt-oss-20b");
    expect(model.slidingWindow).toBe(128);
    expect(vllmKvLayerSlots(model)).toBe(24);
    expect(kvCacheBytesPerToken(model, "auto")).toBe(49_152);
    expect(kvCacheBytesPerTokenPerGpu(model, "auto", 2)).toBe(24_576);
  });

  it("MLA: DeepSeek-V3 caches kv_lora_rank + qk_rope_head_dim = 576 per layer, whole on every rank", () => {
    const { model } = load("deepseek-ai/DeepSeek-V3");
    expect(model.attention).toEqual({ kind: "mla", kvLoraRank: 512, qkRopeHeadDim: 64 });
    expect(kvCacheBytesPerToken(model, "auto")).toBe(61 * 576 * 2);
    expect(kvCacheBytesPerTokenPerGpu(model, "auto", 8)).toBe(61 * 576 * 2);
    expect(kvCacheBytesPerToken(model, "fp8")).toBe(61 * 576);
  });

  it("a windowed-but-disabled config (Qwen2.5, use_sliding_window false) is all global layers", () => {
    const { model } = load("Qwen/Qwen2.5-72B-Instruct-AWQ");
    expect(model.slidingWindowLayers).toBeUndefined();
    expect(vllmKvLayerSlots(model)).toBe(80);
  });
});

describe("the checkpoint's own quantization", () => {
  it.each([
    ["deepseek-ai/DeepSeek-V3", "fp8"],
    ["openai/gpt-oss-120b", "mxfp4"],
    ["nvidia/Qwen3-30B-A3B-NVFP4", "nvfp4"],
    ["RedHatAI/Mistral-Small-24B-Instruct-2501-quantized.w8a8", "int8"],
    ["RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16", "int4"],
    ["Qwen/Qwen2.5-72B-Instruct-AWQ", "awq"],
    ["Qwen/Qwen3-8B", "none"],
  ])("%s is %s", (repo, quantization) => {
    expect(load(repo).quantization.quantization).toBe(quantization);
  });

  it("sizes gpt-oss-120b at about 61 GiB: MXFP4 experts, 16-bit attention and embeddings", () => {
    // The published checkpoint is 65.3 GB (60.8 GiB) of safetensors.
    const { weightBytes: bytes, model } = load("openai/gpt-oss-120b");
    expect(bytes / 2 ** 30).toBeGreaterThan(60);
    expect(bytes / 2 ** 30).toBeLessThan(61.5);
    expect(weightBytes(model, "mxfp4")).toBe(bytes);
  });

  it("uses the safetensors total when it is known (vision towers, quantization scales included)", () => {
    const total = 27_432_406_640 * 2;
    const { model } = load("google/gemma-3-27b-it", total);
    expect(weightBytes(model, "none")).toBe(total);
  });

  it("subtracts the MTP layer vLLM does not load from DeepSeek's safetensors total", () => {
    const withTotal = load("deepseek-ai/DeepSeek-V3", 688_586_727_753);
    expect(withTotal.weightBytes).toBeLessThan(688_586_727_753);
    expect(withTotal.weightBytes / 1e9).toBeGreaterThan(670);
  });

  it("names the field it cannot read", () => {
    expect(() => readQuantization({ quant_method: "hqq" })).toThrow(/quantization_config.quant_method/);
    expect(() => readQuantization({ quant_method: "awq", bits: 3 })).toThrow(/quantization_config.bits/);
    expect(() =>
      readQuantization({
        quant_method: "compressed-tensors",
        config_groups: { g: { weights: { num_bits: 2, type: "int" } } },
      }),
    ).toThrow(/config_groups.g.weights.num_bits/);
  });
});

describe("configs the planner cannot read", () => {
  it("names the missing field", () => {
    const broken = { ...config("Qwen/Qwen3-8B") };
    delete broken["num_hidden_layers"];
    expect(() => modelFromHfConfig(broken, { repo: "x/y" })).toThrow(
      /config.json field num_hidden_layers: missing/,
    );
  });

  it("names a field of the wrong type, without echoing unbounded input", () => {
    const broken = { ...config("Qwen/Qwen3-8B"), hidden_size: "x".repeat(10_000) };
    const error = (() => {
      try {
        modelFromHfConfig(broken, { repo: "x/y" });
      } catch (caught) {
        return caught as HfConfigError;
      }
      throw new Error("expected a failure");
    })();
    expect(error.field).toBe("hidden_size");
    expect(error.message.length).toBeLessThan(200);
  });

  it("refuses linear-attention layers, naming the layer_types entry", () => {
    expect(() => load("Qwen/Qwen3.5-27B")).toThrow(/text_config.layer_types\[0\].*linear_attention/);
  });

  // A constructed input, not a published file: DeepSeek-V3's config with the sparse-attention indexer
  // fields that DeepSeek V3.2 and GLM-5 configs add (index_topk, index_n_heads, index_head_dim).
  it("refuses a sparse-attention indexer (DSA), naming index_topk", () => {
    const dsa = { ...config("deepseek-ai/DeepSeek-V3"), index_topk: 2048, index_n_heads: 64, index_head_dim: 128 };
    expect(() => modelFromHfConfig(dsa, { repo: "x/y" })).toThrow(/config.json field index_topk/);
  });

  // Also constructed: Llama 3.1 8B's config with a ModelOpt FP8 block, the form of NVIDIA's FP8 checkpoints.
  it("reads a ModelOpt FP8 quantization block", () => {
    const fp8 = {
      ...config("meta-llama/Meta-Llama-3.1-8B"),
      quantization_config: { quant_method: "modelopt", quant_algo: "FP8", kv_cache_quant_algo: "FP8" },
    };
    expect(modelFromHfConfig(fp8, { repo: "x/y" }).quantization.quantization).toBe("fp8");
  });

  it("refuses a non-object", () => {
    expect(() => modelFromHfConfig([1, 2], { repo: "x/y" })).toThrow(HfConfigError);
  });
});

describe("planning a model the catalogue never knew, from its config", () => {
  it("puts Qwen3-30B-A3B-NVFP4 on one H100 and gpt-oss-120b on one H100 at their own quantizations", () => {
    const h100 = findGpu("NVIDIA-H100-80GB-HBM3");
    if (!h100) throw new Error("no H100");
    for (const repo of ["nvidia/Qwen3-30B-A3B-NVFP4", "openai/gpt-oss-120b"]) {
      const { model, quantization } = load(repo);
      const plan = planModel({
        model,
        gpu: h100,
        gpusPerNode: 8,
        quantization: quantization.quantization,
        maxContextLength: 32_768,
      });
      expect(plan.ok && plan.tensorParallelism).toBe(1);
    }
  });

  it("finds DeepSeek-V3 in FP8 (627 GiB of weights) too big for one 8 x H100 node and right for 8 x H200", () => {
    const h100 = findGpu("NVIDIA-H100-80GB-HBM3");
    const h200 = findGpu("NVIDIA-H200");
    if (!h100 || !h200) throw new Error("GPU missing from the catalogue");
    const { model } = load("deepseek-ai/DeepSeek-V3");
    const onH100 = planModel({
      model,
      gpu: h100,
      gpusPerNode: 8,
      quantization: "fp8",
      maxContextLength: 32_768,
    });
    expect(onH100.ok).toBe(false);
    const onH200 = planModel({
      model,
      gpu: h200,
      gpusPerNode: 8,
      quantization: "fp8",
      maxContextLength: 32_768,
    });
    expect(onH200.ok && onH200.tensorParallelism).toBe(8);
  });
});
