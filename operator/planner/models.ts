/**
 * Catalogue of model architectures the sizing planner knows.
 *
 * Every architectural figure is taken from the model's `config.json` on Hugging Face (field names
 * in brackets: num_hidden_layers, hidden_size, intermediate_size, num_attention_heads,
 * num_key_value_heads, head_dim, max_position_embeddings, vocab_size, tie_word_embeddings,
 * num_local_experts / n_routed_experts, num_experts_per_tok). Parameter counts are the
 * safetensors totals shown on each model card ("Model size"), and are cross-checked against a
 * count recomputed from the architecture in models.test.ts, which catches a mistyped figure.
 *
 * Models the catalogue does not know are described with a `ModelArchitectureOverride` (same
 * fields) and turned into a full entry with `defineModel()`.
 */

import type { Quantization } from "./plan.js";

/** Attention layout, which decides what one token costs in KV cache. */
export type AttentionLayout =
  /** Multi-head / grouped-query attention: K and V per KV head per layer. */
  | { readonly kind: "gqa" }
  /**
   * Multi-head latent attention (DeepSeek-V2/V3). vLLM caches one compressed latent per token per
   * layer of `kvLoraRank + qkRopeHeadDim` elements instead of separate K and V heads, and every
   * tensor-parallel rank holds the whole latent (it is not split across ranks).
   * See vllm/attention/backends/mla (the cache entry is kv_lora_rank + qk_rope_head_dim wide).
   */
  | { readonly kind: "mla"; readonly kvLoraRank: number; readonly qkRopeHeadDim: number };

export interface MixtureOfExperts {
  /** Routed experts per MoE layer (num_local_experts / n_routed_experts). */
  readonly expertCount: number;
  /** Experts each token is routed to (num_experts_per_tok). */
  readonly activeExpertsPerToken: number;
  /** Always-on shared experts (DeepSeek n_shared_experts); 0 for Mixtral. */
  readonly sharedExpertCount: number;
  /** Width of one routed expert's MLP (moe_intermediate_size), when it differs from intermediateSize. */
  readonly expertIntermediateSize?: number;
}

/** What the checkpoint itself holds, read from its files (config.json, safetensors index). */
export interface CheckpointWeights {
  /** The quantization the checkpoint ships in (its `quantization_config`). */
  readonly quantization: Quantization;
  /** Bytes of the weights as the engine loads them. */
  readonly weightBytes: number;
  readonly description: string;
}

export interface ModelArchitecture {
  /** Catalogue id, lower case, e.g. `llama-3.1-8b`. */
  readonly id: string;
  /** Hugging Face repositories whose weights have this architecture (base, instruct, re-uploads). */
  readonly huggingFaceRepos: readonly string[];
  /** All parameters (for MoE: every expert); this is what weight memory is sized on. */
  readonly totalParameters: number;
  /** Parameters used per token (equals totalParameters for dense models). */
  readonly activeParameters: number;
  readonly layers: number;
  readonly hiddenSize: number;
  /** Feed-forward width of one MLP (for MoE: of one expert; for DeepSeek: of its dense layers). */
  readonly intermediateSize: number;
  readonly attentionHeads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly maxContextLength: number;
  readonly vocabSize: number;
  /** Input embedding and LM head share one matrix (tie_word_embeddings). */
  readonly tiedEmbeddings: boolean;
  /** Checkpoint dtype; `none` quantization keeps weights in this dtype. */
  readonly weightDtype: "bfloat16" | "float16";
  readonly attention: AttentionLayout;
  readonly moe?: MixtureOfExperts;
  /**
   * Sliding-window width of the local-attention layers (Gemma 2 alternates local and global
   * layers). vLLM's KV-cache size in tokens does not shrink with it (every layer group gets the same
   * number of blocks); the figure is informational.
   */
  readonly slidingWindow?: number;
  /**
   * How many layers use local (sliding-window) attention, when known from the config. vLLM >= 0.10
   * allocates local and global layers in equal-size groups; see `vllmKvLayerSlots` in plan.ts.
   */
  readonly slidingWindowLayers?: number;
  /** Exact weight bytes of the checkpoint as published (HF-derived models), used at its own quantization. */
  readonly checkpoint?: CheckpointWeights;
  /**
   * MLP width in the official 4-bit (AWQ/GPTQ) checkpoints when they pad it so every
   * tensor-parallel slice holds whole quantization groups (Qwen2.5-72B: 29568 -> 29696).
   */
  readonly quantizedIntermediateSize?: number;
}

/** Architecture for a model outside the catalogue: the same fields, repos optional. */
export type ModelArchitectureOverride = Omit<ModelArchitecture, "huggingFaceRepos" | "attention"> & {
  readonly huggingFaceRepos?: readonly string[];
  readonly attention?: AttentionLayout;
};

const GQA: AttentionLayout = { kind: "gqa" };

export const MODEL_CATALOGUE: readonly ModelArchitecture[] = [
  {
    // https://huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json
    id: "llama-3.2-1b",
    huggingFaceRepos: ["meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-1B-Instruct"],
    totalParameters: 1_235_814_400,
    activeParameters: 1_235_814_400,
    layers: 16,
    hiddenSize: 2048,
    intermediateSize: 8192,
    attentionHeads: 32,
    kvHeads: 8,
    headDim: 64,
    maxContextLength: 131_072,
    vocabSize: 128_256,
    tiedEmbeddings: true,
    weightDtype: "bfloat16",
    attention: GQA,
  },
  {
    // https://huggingface.co/meta-llama/Llama-3.2-3B/blob/main/config.json
    id: "llama-3.2-3b",
    huggingFaceRepos: ["meta-llama/Llama-3.2-3B", "meta-llama/Llama-3.2-3B-Instruct"],
    totalParameters: 3_212_749_824,
    activeParameters: 3_212_749_824,
    layers: 28,
    hiddenSize: 3072,
    intermediateSize: 8192,
    attentionHeads: 24,
    kvHeads: 8,
    headDim: 128,
    maxContextLength: 131_072,
    vocabSize: 128_256,
    tiedEmbeddings: true,
    weightDtype: "bfloat16",
    attention: GQA,
  },
  {
    // https://huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json
    id: "llama-3.1-8b",
    huggingFaceRepos: [
      "meta-llama/Llama-3.1-8B",
      "meta-llama/Llama-3.1-8B-Instruct",
      "meta-llama/Meta-Llama-3.1-8B",
      "meta-llama/Meta-Llama-3.1-8B-Instruct",
      // Llama 3 8B has the same architecture; only rope scaling and max context differ.
      "meta-llama/Meta-Llama-3-8B",
      "meta-llama/Meta-Llama-3-8B-Instruct",
    ],
    totalParameters: 8_030_261_248,
    activeParameters: 8_030_261_248,
    layers: 32,
    hiddenSize: 4096,
    intermediateSize: 14_336,
    attentionHeads: 32,
    kvHeads: 8,
    headDim: 128,
    maxContextLength: 131_072,
    vocabSize: 128_256,
    tiedEmbeddings: false,
    weightDtype: "bfloat16",
    attention: GQA,
  },
  {
    // https://huggingface.co/meta-llama/Llama-3.1-70B/blob/main/config.json
    id: "llama-3.1-70b",
    huggingFaceRepos: [
      "meta-llama/Llama-3.1-70B",
      "meta-llama/Llama-3.1-70B-Instruct",
      "meta-llama/Meta-Llama-3.1-70B",
      "meta-llama/Meta-Llama-3.1-70B-Instruct",
      "meta-llama/Llama-3.3-70B-Instruct",
      "meta-llama/Meta-Llama-3-70B",
      "meta-llama/Meta-Llama-3-70B-Instruct",
    ],
    totalParameters: 70_553_706_496,
    activeParameters: 70_553_706_496,
    layers: 80,
    hiddenSize: 8192,
    intermediateSize: 28_672,
    attentionHeads: 64,
    kvHeads: 8,
    headDim: 128,
    maxContextLength: 131_072,
    vocabSize: 128_256,
    tiedEmbeddings: false,
    weightDtype: "bfloat16",
    attention: GQA,
  },
  {
    // https://huggingface.co/meta-llama/Llama-3.1-405B/blob/main/config.json
    id: "llama-3.1-405b",
    huggingFaceRepos: [
      "meta-llama/Llama-3.1-405B",
      "meta-llama/Llama-3.1-405B-Instruct",
      "meta-llama/Meta-Llama-3.1-405B",
      "meta-llama/Meta-Llama-3.1-405B-Instruct",
    ],
    totalParameters: 405_853_388_800,
    activeParameters: 405_853_388_800,
    layers: 126,
    hiddenSize: 16_384,
    intermediateSize: 53_248,
    attentionHeads: 128,
    kvHeads: 8,
    headDim: 128,
    maxContextLength: 131_072,
    vocabSize: 128_256,
    tiedEmbeddings: false,
    weightDtype: "bfloat16",
    attention: GQA,
  },
  {
    // https://huggingface.co/mistralai/Mistral-7B-Instruct-v0.3/blob/main/config.json
    id: "mistral-7b-v0.3",
    huggingFaceRepos: ["mistralai/Mistral-7B-v0.3", "mistralai/Mistral-7B-Instruct-v0.3"],
    totalParameters: 7_248_023_552,
    activeParameters: 7_248_023_552,
    layers: 32,
    hiddenSize: 4096,
    intermediateSize: 14_336,
    attentionHeads: 32,
    kvHeads: 8,
    headDim: 128,
    maxContextLength: 32_768,
    vocabSize: 32_768,
    tiedEmbeddings: false,
    weightDtype: "bfloat16",
    attention: GQA,
  },
  {
    // https://huggingface.co/mistralai/Mixtral-8x7B-Instruct-v0.1/blob/main/config.json
    // 46.7B total / 12.9B active per the Mixtral announcement (mistral.ai/news/mixtral-of-experts).
    id: "mixtral-8x7b",
    huggingFaceRepos: ["mistralai/Mixtral-8x7B-v0.1", "mistralai/Mixtral-8x7B-Instruct-v0.1"],
    totalParameters: 46_702_792_704,
    activeParameters: 12_879_921_152,
    layers: 32,
    hiddenSize: 4096,
    intermediateSize: 14_336,
    attentionHeads: 32,
    kvHeads: 8,
    headDim: 128,
    maxContextLength: 32_768,
    vocabSize: 32_000,
    tiedEmbeddings: false,
    weightDtype: "bfloat16",
    attention: GQA,
    moe: { expertCount: 8, activeExpertsPerToken: 2, sharedExpertCount: 0 },
  },
  {
    // https://huggingface.co/mistralai/Mixtral-8x22B-Instruct-v0.1/blob/main/config.json
    // 141B total / 39B active per the announcement (mistral.ai/news/mixtral-8x22b).
    id: "mixtral-8x22b",
    huggingFaceRepos: ["mistralai/Mixtral-8x22B-v0.1", "mistralai/Mixtral-8x22B-Instruct-v0.1"],
    totalParameters: 140_630_071_296,
    activeParameters: 39_153_500_160,
    layers: 56,
    hiddenSize: 6144,
    intermediateSize: 16_384,
    attentionHeads: 48,
    kvHeads: 8,
    headDim: 128,
    maxContextLength: 65_536,
    vocabSize: 32_768,
    tiedEmbeddings: false,
    weightDtype: "bfloat16",
    attention: GQA,
    moe: { expertCount: 8, activeExpertsPerToken: 2, sharedExpertCount: 0 },
  },
  {
    // https://huggingface.co/google/gemma-2-9b-it/blob/main/config.json (head_dim 256,
    // sliding_window 4096 on alternate layers, tied embeddings).
    id: "gemma-2-9b",
    huggingFaceRepos: ["google/gemma-2-9b", "google/gemma-2-9b-it"],
    totalParameters: 9_241_705_984,
    activeParameters: 9_241_705_984,
    layers: 42,
    hiddenSize: 3584,
    intermediateSize: 14_336,
    attentionHeads: 16,
    kvHeads: 8,
    headDim: 256,
    maxContextLength: 8192,
    vocabSize: 256_000,
    tiedEmbeddings: true,
    weightDtype: "bfloat16",
    attention: GQA,
    slidingWindow: 4096,
  },
  {
    // https://huggingface.co/google/gemma-2-27b-it/blob/main/config.json
    id: "gemma-2-27b",
    huggingFaceRepos: ["google/gemma-2-27b", "google/gemma-2-27b-it"],
    totalParameters: 27_227_128_320,
    activeParameters: 27_227_128_320,
    layers: 46,
    hiddenSize: 4608,
    intermediateSize: 36_864,
    attentionHeads: 32,
    kvHeads: 16,
    headDim: 128,
    maxContextLength: 8192,
    vocabSize: 256_000,
    tiedEmbeddings: true,
    weightDtype: "bfloat16",
    attention: GQA,
    slidingWindow: 4096,
  },
  {
    // https://huggingface.co/Qwen/Qwen2.5-7B-Instruct/blob/main/config.json (32,768 native
    // context; 131,072 only with YaRN rope scaling, which vLLM needs to be told about).
    id: "qwen2.5-7b",
    huggingFaceRepos: ["Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-7B-Instruct"],
    totalParameters: 7_615_616_512,
    activeParameters: 7_615_616_512,
    layers: 28,
    hiddenSize: 3584,
    intermediateSize: 18_944,
    attentionHeads: 28,
    kvHeads: 4,
    headDim: 128,
    maxContextLength: 32_768,
    vocabSize: 152_064,
    tiedEmbeddings: false,
    weightDtype: "bfloat16",
    attention: GQA,
  },
  {
    // https://huggingface.co/Qwen/Qwen2.5-72B-Instruct/blob/main/config.json
    id: "qwen2.5-72b",
    huggingFaceRepos: ["Qwen/Qwen2.5-72B", "Qwen/Qwen2.5-72B-Instruct"],
    totalParameters: 72_706_203_648,
    activeParameters: 72_706_203_648,
    layers: 80,
    hiddenSize: 8192,
    intermediateSize: 29_568,
    // Qwen's AWQ/GPTQ uploads pad the MLP to 29,696 (= 29 x 1024) so TP 2/4/8 splits whole
    // 128-column groups: https://huggingface.co/Qwen/Qwen2.5-72B-Instruct-AWQ/blob/main/config.json
    quantizedIntermediateSize: 29_696,
    attentionHeads: 64,
    kvHeads: 8,
    headDim: 128,
    maxContextLength: 32_768,
    vocabSize: 152_064,
    tiedEmbeddings: false,
    weightDtype: "bfloat16",
    attention: GQA,
  },
  {
    // https://huggingface.co/deepseek-ai/deepseek-moe-16b-base/blob/main/config.json
    // Plain multi-head attention (16 heads x 128), 64 routed + 2 shared experts, 6 routed per token;
    // 16.4B total / 2.8B active per the model card.
    id: "deepseek-moe-16b",
    huggingFaceRepos: ["deepseek-ai/deepseek-moe-16b-base", "deepseek-ai/deepseek-moe-16b-chat"],
    totalParameters: 16_375_728_128,
    activeParameters: 2_828_000_000,
    layers: 28,
    hiddenSize: 2048,
    intermediateSize: 10_944,
    attentionHeads: 16,
    kvHeads: 16,
    headDim: 128,
    maxContextLength: 4096,
    vocabSize: 102_400,
    tiedEmbeddings: false,
    weightDtype: "bfloat16",
    attention: GQA,
    moe: { expertCount: 64, activeExpertsPerToken: 6, sharedExpertCount: 2 },
  },
  {
    // https://huggingface.co/deepseek-ai/DeepSeek-V2-Lite/blob/main/config.json
    // MLA: kv_lora_rank 512, qk_rope_head_dim 64 -> 576 cached elements per token per layer, the
    // same on every TP rank. 15.7B total / 2.4B active per the model card. headDim/kvHeads below
    // describe the query side (qk_nope 128 + rope 64 = 192) and are used only for TP divisibility.
    id: "deepseek-v2-lite",
    huggingFaceRepos: ["deepseek-ai/DeepSeek-V2-Lite", "deepseek-ai/DeepSeek-V2-Lite-Chat"],
    totalParameters: 15_706_484_224,
    activeParameters: 2_400_000_000,
    layers: 27,
    hiddenSize: 2048,
    intermediateSize: 10_944,
    attentionHeads: 16,
    kvHeads: 16,
    headDim: 192,
    maxContextLength: 163_840,
    vocabSize: 102_400,
    tiedEmbeddings: false,
    weightDtype: "bfloat16",
    attention: { kind: "mla", kvLoraRank: 512, qkRopeHeadDim: 64 },
    moe: { expertCount: 64, activeExpertsPerToken: 6, sharedExpertCount: 2 },
  },
];

/**
 * Normalizes a model name or Hugging Face repo for lookup: lower case, no org prefix, no
 * `-instruct`/`-it`/`-chat`/`-hf` or quantization suffixes (`-awq`, `-fp8`, `-gptq-int4`, ...),
 * and no `meta-` prefix so `Meta-Llama-3.1-8B` and `Llama-3.1-8B` meet.
 */
export function normalizeModelName(nameOrRepo: string): string {
  let name = nameOrRepo.trim().toLowerCase();
  const slash = name.lastIndexOf("/");
  if (slash >= 0) name = name.slice(slash + 1);
  name = name.replace(/^meta-/, "");
  // Strip trailing variant/quantization words one at a time until none is left.
  const trailingVariant =
    /-(instruct|it|chat|hf|base|awq|gptq|int4|int8|w4a16|w8a8|fp8|fp8-dynamic|dynamic|quantized|bnb|4bit|8bit)$/;
  for (;;) {
    const next = name.replace(trailingVariant, "").replace(/\.(w4a16|w8a8)$/, "");
    if (next === name) break;
    name = next;
  }
  return name;
}

const lookupIndex: ReadonlyMap<string, ModelArchitecture> = (() => {
  const index = new Map<string, ModelArchitecture>();
  for (const model of MODEL_CATALOGUE) {
    index.set(normalizeModelName(model.id), model);
    for (const repo of model.huggingFaceRepos) index.set(normalizeModelName(repo), model);
  }
  return index;
})();

/** Finds a catalogue model by id, repo or repo name, ignoring case, org and variant suffixes. */
export function findModel(nameOrRepo: string): ModelArchitecture | undefined {
  return lookupIndex.get(normalizeModelName(nameOrRepo));
}

/** Checks an override and fills its defaults; throws with every problem found. */
export function defineModel(override: ModelArchitectureOverride): ModelArchitecture {
  const problems: string[] = [];
  const positiveIntegers: (keyof ModelArchitectureOverride)[] = [
    "layers",
    "hiddenSize",
    "intermediateSize",
    "attentionHeads",
    "kvHeads",
    "headDim",
    "maxContextLength",
    "vocabSize",
  ];
  for (const field of positiveIntegers) {
    const value = override[field];
    if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
      problems.push(`${field} must be a positive integer (got ${String(value)})`);
    }
  }
  if (!(override.totalParameters > 0)) problems.push("totalParameters must be positive");
  if (!(override.activeParameters > 0) || override.activeParameters > override.totalParameters) {
    problems.push("activeParameters must be positive and at most totalParameters");
  }
  if (override.attentionHeads % override.kvHeads !== 0) {
    problems.push(
      `attentionHeads (${override.attentionHeads}) must be a multiple of kvHeads (${override.kvHeads})`,
    );
  }
  if (override.id.trim() === "") problems.push("id must not be empty");
  if (problems.length > 0) {
    throw new Error(`invalid model architecture ${override.id}: ${problems.join("; ")}`);
  }
  return {
    ...override,
    huggingFaceRepos: override.huggingFaceRepos ?? [],
    attention: override.attention ?? GQA,
  };
}

/** Parameters in the input embedding plus the LM head (one matrix when tied). */
export function embeddingParameters(model: ModelArchitecture): number {
  return model.vocabSize * model.hiddenSize * (model.tiedEmbeddings ? 1 : 2);
}
