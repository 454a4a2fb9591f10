import { describe, expect, it } from "vitest";
import {
  MODEL_CATALOGUE,
  defineModel,
  embeddingParameters,
  findModel,
  normalizeModelName,
  type ModelArchitecture,
} from "./models.js";
import { kvCacheBytesPerToken } from "./plan.js";

/**
 * Parameter count recomputed from the architecture: embeddings, attention projections (Qwen2 adds
 * q/k/v biases), gated MLP (x experts + router for MoE) and RMSNorm weights. A mistyped layer
 * count, width or head figure moves this by far more than the 2 % allowed below.
 */
function parametersFromArchitecture(model: ModelArchitecture): number {
  const { hiddenSize: h, headDim: d, attentionHeads: heads, kvHeads: kv, intermediateSize: i } = model;
  const attention =
    h * heads * d * 2 + h * kv * d * 2 + (model.id.startsWith("qwen") ? heads * d + 2 * kv * d : 0);
  const experts = model.moe?.expertCount ?? 1;
  const mlp = 3 * h * i * experts + (model.moe ? h * experts : 0);
  const norms = (model.id.startsWith("gemma") ? 4 : 2) * h;
  return embeddingParameters(model) + model.layers * (attention + mlp + norms) + h;
}

describe("model catalogue", () => {
  it("contains every model the brief requires", () => {
    const required = [
      "llama-3.1-8b",
      "llama-3.1-70b",
      "llama-3.1-405b",
      "mistral-7b-v0.3",
      "mixtral-8x7b",
      "mixtral-8x22b",
      "gemma-2-9b",
      "gemma-2-27b",
      "qwen2.5-7b",
      "qwen2.5-72b",
      "llama-3.2-1b",
      "llama-3.2-3b",
    ];
    const ids = MODEL_CATALOGUE.map((model) => model.id);
    for (const id of required) expect(ids).toContain(id);
    expect(MODEL_CATALOGUE.some((model) => model.id.startsWith("deepseek") && model.moe !== undefined)).toBe(
      true,
    );
  });

  it("has unique ids and no Hugging Face repo claimed by two models", () => {
    const ids = MODEL_CATALOGUE.map((model) => model.id);
    expect(new Set(ids).size).toBe(ids.length);
    const repos = MODEL_CATALOGUE.flatMap((model) =>
      model.huggingFaceRepos.map((repo) => normalizeModelName(repo)),
    );
    const owners = new Map<string, string>();
    for (const model of MODEL_CATALOGUE) {
      for (const repo of model.huggingFaceRepos) {
        const key = normalizeModelName(repo);
        const owner = owners.get(key);
        expect(owner === undefined || owner === model.id, `${repo} claimed by ${owner} and ${model.id}`).toBe(
          true,
        );
        owners.set(key, model.id);
      }
    }
    expect(repos.length).toBeGreaterThan(MODEL_CATALOGUE.length);
  });

  it("keeps head counts consistent: KV heads divide attention heads, active <= total parameters", () => {
    for (const model of MODEL_CATALOGUE) {
      expect(model.attentionHeads % model.kvHeads, model.id).toBe(0);
      expect(model.activeParameters, model.id).toBeLessThanOrEqual(model.totalParameters);
      if (model.moe === undefined) expect(model.activeParameters, model.id).toBe(model.totalParameters);
      else expect(model.activeParameters, model.id).toBeLessThan(model.totalParameters / 2);
    }
  });

  // DeepSeek models (MLA projections, shared experts, a dense first layer) need a different
  // formula; their counts are checked against the model card figure only via the MoE ratio above.
  const recomputable = MODEL_CATALOGUE.filter((model) => !model.id.startsWith("deepseek"));
  it.each(recomputable.map((model) => [model.id, model] as const))(
    "%s: stated parameter count matches its architecture within 2%%",
    (_id, model) => {
      const recomputed = parametersFromArchitecture(model);
      expect(Math.abs(recomputed - model.totalParameters) / model.totalParameters).toBeLessThan(0.02);
    },
  );

  it("sizes DeepSeek-V2-Lite's MLA cache as one 576-wide latent per layer, not 2 x heads x head dim", () => {
    const model = findModel("deepseek-ai/DeepSeek-V2-Lite-Chat");
    expect(model?.attention).toEqual({ kind: "mla", kvLoraRank: 512, qkRopeHeadDim: 64 });
    // 27 layers x (512 + 64) elements x 2 bytes.
    expect(kvCacheBytesPerToken(model as ModelArchitecture, "auto")).toBe(27 * 576 * 2);
  });
});

describe("findModel", () => {
  it.each([
    ["llama-3.1-8b", "llama-3.1-8b"],
    ["meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"],
    ["META-LLAMA/Meta-Llama-3.1-8B-Instruct", "llama-3.1-8b"],
    ["Meta-Llama-3.1-70B-Instruct", "llama-3.1-70b"],
    ["hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", "llama-3.1-70b"],
    ["neuralmagic/Meta-Llama-3.1-70B-Instruct-quantized.w8a8", "llama-3.1-70b"],
    ["mistralai/Mistral-7B-Instruct-v0.3", "mistral-7b-v0.3"],
    ["mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b"],
    ["google/gemma-2-9b-it", "gemma-2-9b"],
    ["Qwen/Qwen2.5-72B-Instruct-AWQ", "qwen2.5-72b"],
    ["  qwen2.5-7b  ", "qwen2.5-7b"],
  ])("resolves %s to %s", (name, id) => {
    expect(findModel(name)?.id).toBe(id);
  });

  it("returns undefined for models it does not know", () => {
    expect(findModel("openai/gpt-oss-120b")).toBeUndefined();
    expect(findModel("llama-3.1-9b")).toBeUndefined();
  });
});

describe("defineModel (architecture override)", () => {
  const base = {
    id: "my-org-model",
    totalParameters: 1e9,
    activeParameters: 1e9,
    layers: 16,
    hiddenSize: 2048,
    intermediateSize: 8192,
    attentionHeads: 32,
    kvHeads: 8,
    headDim: 64,
    maxContextLength: 8192,
    vocabSize: 32_000,
    tiedEmbeddings: false,
    weightDtype: "bfloat16" as const,
  };

  it("fills repos and grouped-query attention by default", () => {
    const model = defineModel(base);
    expect(model.huggingFaceRepos).toEqual([]);
    expect(model.attention).toEqual({ kind: "gqa" });
    expect(model.layers).toBe(16);
  });

  it("rejects KV heads that do not divide attention heads and non-positive sizes, naming each", () => {
    expect(() => defineModel({ ...base, kvHeads: 6 })).toThrow(
      /attentionHeads \(32\) must be a multiple of kvHeads \(6\)/,
    );
    expect(() => defineModel({ ...base, layers: 0 })).toThrow(/layers must be a positive integer/);
    expect(() => defineModel({ ...base, activeParameters: 2e9 })).toThrow(/activeParameters/);
  });
});
