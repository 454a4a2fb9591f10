/**
 * Hugging Face `config.json` -> the planner's ModelArchitecture, generically (no per-model table).
 *
 * What is read, and why it matters for sizing:
 * - Attention: `num_key_value_heads` (GQA/MQA; absent = MHA), `head_dim` (given, else hidden / heads);
 *   MLA (`kv_lora_rank` + `qk_rope_head_dim`: the latent every rank caches, DeepSeek V2/V3, Kimi K2).
 * - Local attention layers: `layer_types` (gpt-oss, Gemma 3 in newer configs), `sliding_window_pattern`
 *   (Gemma 3: every Nth layer global), Gemma 2 (alternating). vLLM >= 0.10 allocates them in groups of
 *   equal size (its hybrid KV-cache manager), padding the larger kind: see `vllmKvLayerSlots` in plan.ts.
 * - MoE: routed experts (`num_experts` / `num_local_experts` / `n_routed_experts`), active experts
 *   (`num_experts_per_tok` / `experts_per_token`), shared experts (`n_shared_experts`,
 *   `shared_expert_intermediate_size`, Llama 4's one shared expert), which layers are dense
 *   (`first_k_dense_replace`, `mlp_only_layers`, `decoder_sparse_step`, `interleave_moe_layer_step`).
 * - `tie_word_embeddings`, `text_config` (multimodal wrappers: the language model is sized; the vision
 *   tower's weights come in through the safetensors total when one is known).
 * - `quantization_config`: fp8 (DeepSeek/Qwen block FP8), compressed-tensors (float/int, 8 or 4 bits),
 *   awq / gptq, modelopt (FP8, NVFP4), mxfp4 (gpt-oss: experts only), bitsandbytes 4/8-bit.
 *
 * Anything it cannot read throws HfConfigError naming the field, so the caller can put it in a condition.
 * Pure: no I/O. Parameter counts are what vLLM loads (multi-token-prediction layers are skipped).
 */
import type { MixtureOfExperts, ModelArchitecture } from "./models.js";
import type { Quantization } from "./plan.js";

export class HfConfigError extends Error {
  constructor(
    /** Dotted path of the field that could not be read, e.g. `text_config.layer_types[3]`. */
    readonly field: string,
    message: string,
  ) {
    super(`config.json field ${field}: ${message}`);
    this.name = "HfConfigError";
  }
}

/** The checkpoint's own quantization as read from `quantization_config`. */
export interface CheckpointQuantization {
  /** The planner's name for it. */
  readonly quantization: Quantization;
  /** Human-readable, e.g. `compressed-tensors int4 (group 128)`. */
  readonly description: string;
  /** Bytes per parameter of a quantized linear weight (scales and zero points included). */
  readonly bytesPerParameter: number;
  /** Attention projections stay 16-bit (mxfp4 in gpt-oss; a quantizer told to skip `self_attn`). */
  readonly attentionUnquantized: boolean;
  /** Dense MLPs / shared experts stay 16-bit (only routed experts quantized). */
  readonly denseMlpUnquantized: boolean;
}

/** Parameter counts by part, as vLLM loads them. */
export interface ParameterBreakdown {
  readonly embedding: number;
  readonly attention: number;
  readonly denseMlp: number;
  readonly routedExperts: number;
  readonly sharedExperts: number;
  /** Norms, routers, biases, attention sinks: never quantized. */
  readonly other: number;
  readonly total: number;
  readonly active: number;
  /** Multi-token-prediction layers in the checkpoint (not loaded by vLLM unless speculating). */
  readonly mtp: number;
}

export interface HfModel {
  readonly model: ModelArchitecture;
  readonly parameters: ParameterBreakdown;
  readonly quantization: CheckpointQuantization;
  /** Bytes of the weights as loaded: from the safetensors total when given, else computed. */
  readonly weightBytes: number;
}

export interface HfModelOptions {
  /** Hugging Face repo (becomes the id and the catalogue alias). */
  readonly repo: string;
  /** `metadata.total_size` of model.safetensors.index.json (or the sum of the safetensors headers). */
  readonly safetensorsTotalBytes?: number;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

class Reader {
  constructor(
    private readonly config: Json,
    private readonly prefix: string,
  ) {}

  path(key: string): string {
    return this.prefix ? `${this.prefix}.${key}` : key;
  }

  has(key: string): boolean {
    return this.config[key] !== undefined && this.config[key] !== null;
  }

  raw(key: string): unknown {
    return this.config[key];
  }

  /** First present key among `keys`, as a positive integer. */
  int(keys: string | readonly string[], fallback?: number): number {
    const list = typeof keys === "string" ? [keys] : keys;
    for (const key of list) {
      const value = this.config[key];
      if (value === undefined || value === null) continue;
      if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 1e12) {
        throw new HfConfigError(this.path(key), `expected a non-negative integer, got ${describe(value)}`);
      }
      return value;
    }
    if (fallback !== undefined) return fallback;
    throw new HfConfigError(this.path(list[0] ?? "?"), "missing");
  }

  bool(key: string, fallback: boolean): boolean {
    const value = this.config[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== "boolean")
      throw new HfConfigError(this.path(key), `expected true or false, got ${describe(value)}`);
    return value;
  }

  string(key: string): string | undefined {
    const value = this.config[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "string")
      throw new HfConfigError(this.path(key), `expected a string, got ${describe(value)}`);
    return value;
  }

  intList(key: string): number[] {
    const value = this.config[key];
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value) || value.length > 10_000 || !value.every((v) => Number.isInteger(v))) {
      throw new HfConfigError(this.path(key), `expected a list of integers, got ${describe(value)}`);
    }
    return value as number[];
  }
}

/** A short, bounded rendering of a config value for an error message (tenant bytes stay bounded). */
function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Layer kinds the KV cache knows. */
type LayerKind = "full" | "sliding";

const FULL_ATTENTION_NAMES = new Set(["full_attention", "global_attention", "attention", "global"]);
const SLIDING_ATTENTION_NAMES = new Set(["sliding_attention", "local_attention", "sliding_window", "local"]);

function layerKinds(reader: Reader, layers: number, modelType: string): LayerKind[] {
  const declared = reader.raw("layer_types");
  if (declared !== undefined && declared !== null) {
    if (!Array.isArray(declared) || declared.length !== layers) {
      throw new HfConfigError(
        reader.path("layer_types"),
        `expected a list of ${layers} layer types (num_hidden_layers), got ${describe(declared)}`,
      );
    }
    return declared.map((kind, index) => {
      if (typeof kind === "string" && FULL_ATTENTION_NAMES.has(kind)) return "full";
      if (typeof kind === "string" && SLIDING_ATTENTION_NAMES.has(kind)) return "sliding";
      throw new HfConfigError(
        `${reader.path("layer_types")}[${index}]`,
        `layer type ${describe(kind)} is not one gpufleet can size (full_attention, sliding_attention); ` +
          "recurrent/linear-attention layers keep a fixed-size state, not a KV cache per token",
      );
    });
  }
  const window = reader.has("sliding_window") ? reader.int("sliding_window") : 0;
  if (window === 0 || !reader.bool("use_sliding_window", true))
    return new Array<LayerKind>(layers).fill("full");
  if (reader.has("sliding_window_pattern")) {
    // Gemma 3: layer i is global when (i + 1) % pattern == 0.
    const pattern = reader.int("sliding_window_pattern");
    if (pattern < 1) throw new HfConfigError(reader.path("sliding_window_pattern"), "must be at least 1");
    return Array.from({ length: layers }, (_, i) => ((i + 1) % pattern === 0 ? "full" : "sliding"));
  }
  if (modelType.startsWith("gemma2")) {
    // Gemma 2 alternates: even layers local, odd layers global.
    return Array.from({ length: layers }, (_, i) => (i % 2 === 0 ? "sliding" : "full"));
  }
  if (modelType.startsWith("gemma3")) {
    return Array.from({ length: layers }, (_, i) => ((i + 1) % 6 === 0 ? "full" : "sliding"));
  }
  // Mistral-style: every layer windowed (Qwen's `max_window_layers` only matters with use_sliding_window).
  return new Array<LayerKind>(layers).fill("sliding");
}

function positiveOrThrow(reader: Reader, key: string, value: number): number {
  if (value <= 0) throw new HfConfigError(reader.path(key), "must be positive");
  return value;
}

/** Reads `quantization_config` (on the top-level config; some wrappers put it on text_config). */
export function readQuantization(config: unknown, field = "quantization_config"): CheckpointQuantization {
  const none: CheckpointQuantization = {
    quantization: "none",
    description: "none (16-bit checkpoint)",
    bytesPerParameter: 2,
    attentionUnquantized: false,
    denseMlpUnquantized: false,
  };
  if (config === undefined || config === null) return none;
  if (!isObject(config)) throw new HfConfigError(field, `expected an object, got ${describe(config)}`);
  const method = config["quant_method"];
  if (typeof method !== "string")
    throw new HfConfigError(`${field}.quant_method`, `missing or not a string: ${describe(method)}`);
  const skipped = [config["modules_to_not_convert"], config["ignore"], config["exclude_modules"]]
    .filter(Array.isArray)
    .flat()
    .filter((entry): entry is string => typeof entry === "string");
  const attentionUnquantized = skipped.some((module) => /self_attn|\.attn|attention/.test(module));
  const base = { attentionUnquantized, denseMlpUnquantized: false };
  const int4 = (groupSize: number, zeroPoints: boolean): number =>
    (4 + 16 / groupSize + (zeroPoints ? 4 / groupSize : 0)) / 8;
  const groupOf = (value: unknown, path: string): number => {
    if (value === undefined || value === null || value === -1) return 128; // -1 = per channel: scales negligible
    if (typeof value !== "number" || !Number.isInteger(value) || value <= 0)
      throw new HfConfigError(path, `expected a positive group size, got ${describe(value)}`);
    return value;
  };
  switch (method.toLowerCase()) {
    case "fp8":
    case "fbgemm_fp8":
      return {
        ...base,
        quantization: "fp8",
        description: `${method} (8-bit float weights)`,
        bytesPerParameter: 1,
      };
    case "mxfp4":
      // OCP MXFP4: 4-bit values plus one 8-bit exponent per 32; gpt-oss quantizes only the routed experts.
      return {
        quantization: "mxfp4",
        description: "mxfp4 (4-bit experts, 16-bit attention)",
        bytesPerParameter: (4 + 8 / 32) / 8,
        attentionUnquantized: true,
        denseMlpUnquantized: true,
      };
    case "awq":
    case "gptq":
    case "awq_marlin":
    case "gptq_marlin": {
      const bits = config["bits"] ?? config["w_bit"] ?? 4;
      const group = groupOf(config["group_size"] ?? config["q_group_size"], `${field}.group_size`);
      const kind = method.toLowerCase().startsWith("awq") ? "awq" : "gptq";
      if (bits === 4)
        return {
          ...base,
          quantization: kind,
          description: `${kind} int4 (group ${group})`,
          bytesPerParameter: int4(group, true),
        };
      if (bits === 8)
        return {
          ...base,
          quantization: "int8",
          description: `${kind} int8`,
          bytesPerParameter: 1 + 2 / group,
        };
      throw new HfConfigError(`${field}.bits`, `${describe(bits)}-bit ${kind} is not supported (4 or 8)`);
    }
    case "bitsandbytes": {
      if (config["load_in_4bit"] === true)
        return {
          ...base,
          quantization: "int4",
          description: "bitsandbytes 4-bit",
          bytesPerParameter: (4 + 8 / 64) / 8,
        };
      if (config["load_in_8bit"] === true)
        return { ...base, quantization: "int8", description: "bitsandbytes 8-bit", bytesPerParameter: 1 };
      throw new HfConfigError(field, "bitsandbytes without load_in_4bit or load_in_8bit");
    }
    case "modelopt": {
      const algo = String(config["quant_algo"] ?? "").toUpperCase();
      if (algo === "FP8" || algo === "FP8_PER_CHANNEL_PER_TOKEN" || algo === "FP8_BLOCK")
        return { ...base, quantization: "fp8", description: "modelopt FP8", bytesPerParameter: 1 };
      if (algo === "NVFP4" || algo === "MIXED_PRECISION")
        return {
          ...base,
          quantization: "nvfp4",
          description: "modelopt NVFP4 (4-bit, fp8 scale per 16)",
          bytesPerParameter: (4 + 8 / 16) / 8,
        };
      throw new HfConfigError(
        `${field}.quant_algo`,
        `modelopt algorithm ${describe(config["quant_algo"])} is not supported (FP8, NVFP4)`,
      );
    }
    case "compressed-tensors": {
      const groups = config["config_groups"];
      if (!isObject(groups) || Object.keys(groups).length === 0)
        throw new HfConfigError(`${field}.config_groups`, "compressed-tensors without config_groups");
      const [name, group] = Object.entries(groups)[0] as [string, unknown];
      const weights = isObject(group) ? group["weights"] : undefined;
      if (!isObject(weights)) throw new HfConfigError(`${field}.config_groups.${name}.weights`, "missing");
      const bits = weights["num_bits"];
      const type = weights["type"];
      const path = `${field}.config_groups.${name}.weights`;
      if (bits === 8 && type === "float")
        return { ...base, quantization: "fp8", description: "compressed-tensors fp8", bytesPerParameter: 1 };
      if (bits === 8 && type === "int")
        return {
          ...base,
          quantization: "int8",
          description: "compressed-tensors int8 (w8a8)",
          bytesPerParameter: 1,
        };
      if (bits === 4 && type === "int") {
        const group = groupOf(weights["group_size"], `${path}.group_size`);
        return {
          ...base,
          quantization: "int4",
          description: `compressed-tensors int4 (w4a16, group ${group})`,
          bytesPerParameter: int4(group, weights["symmetric"] === false),
        };
      }
      if (bits === 4 && type === "float")
        return {
          ...base,
          quantization: "nvfp4",
          description: "compressed-tensors nvfp4",
          bytesPerParameter: (4 + 8 / 16) / 8,
        };
      throw new HfConfigError(
        `${path}.num_bits`,
        `${describe(bits)}-bit ${describe(type)} weights are not supported`,
      );
    }
    default:
      throw new HfConfigError(
        `${field}.quant_method`,
        `${describe(method)} is not a quantization gpufleet can size (fp8, compressed-tensors, awq, gptq, modelopt, mxfp4, bitsandbytes)`,
      );
  }
}

/** The language-model part of a config: `text_config` for multimodal wrappers, else the config itself. */
function languageConfig(config: Json): { reader: Reader; text: Json } {
  const text = config["text_config"];
  if (text !== undefined && text !== null) {
    if (!isObject(text)) throw new HfConfigError("text_config", `expected an object, got ${describe(text)}`);
    // Wrappers keep some fields only on the outer config (tie_word_embeddings, torch_dtype, vocab_size).
    const merged: Json = { ...text };
    for (const key of ["tie_word_embeddings", "torch_dtype", "dtype", "vocab_size"]) {
      if (merged[key] === undefined && config[key] !== undefined) merged[key] = config[key];
    }
    return { reader: new Reader(merged, "text_config"), text: merged };
  }
  return { reader: new Reader(config, ""), text: config };
}

function countLayers(kinds: readonly LayerKind[], kind: LayerKind): number {
  return kinds.filter((k) => k === kind).length;
}

/**
 * Maps a Hugging Face config.json to the planner's architecture, the checkpoint's quantization and
 * a parameter breakdown. Throws HfConfigError naming the field it could not read.
 */
export function modelFromHfConfig(config: unknown, options: HfModelOptions): HfModel {
  if (!isObject(config)) throw new HfConfigError("(root)", "config.json is not a JSON object");
  const { reader } = languageConfig(config);
  const modelType = (
    reader.string("model_type") ?? (typeof config["model_type"] === "string" ? config["model_type"] : "")
  ).toLowerCase();
  if (reader.has("index_topk")) {
    throw new HfConfigError(
      reader.path("index_topk"),
      "sparse-attention indexer (DeepSeek V3.2 / GLM-5 DSA) keeps a second per-token cache gpufleet does not model yet; set spec.model.architecture",
    );
  }
  if (
    modelType.includes("mamba") ||
    modelType.includes("nemotron_h") ||
    reader.has("ssm_state_size") ||
    reader.has("mamba_d_state")
  ) {
    throw new HfConfigError(
      reader.path("model_type"),
      `${describe(modelType)} has state-space (Mamba) layers, not sized by gpufleet`,
    );
  }

  const hidden = positiveOrThrow(reader, "hidden_size", reader.int(["hidden_size", "d_model", "n_embd"]));
  const layers = positiveOrThrow(
    reader,
    "num_hidden_layers",
    reader.int(["num_hidden_layers", "n_layer", "num_layers"]),
  );
  const heads = positiveOrThrow(reader, "num_attention_heads", reader.int(["num_attention_heads", "n_head"]));
  const kvHeadsRaw = reader.int(["num_key_value_heads", "num_kv_heads", "multi_query_group_num"], heads);
  const kvHeads = kvHeadsRaw === 0 ? heads : kvHeadsRaw;
  const vocab = positiveOrThrow(reader, "vocab_size", reader.int(["vocab_size", "padded_vocab_size"]));
  const maxContext = positiveOrThrow(
    reader,
    "max_position_embeddings",
    reader.int(["max_position_embeddings", "max_sequence_length", "seq_length", "n_positions"]),
  );
  const tied = reader.bool("tie_word_embeddings", modelType.startsWith("gemma"));
  const dtype = (reader.string("torch_dtype") ?? reader.string("dtype") ?? "bfloat16").toLowerCase();
  if (!["bfloat16", "float16", "float32"].includes(dtype)) {
    throw new HfConfigError(
      reader.path("torch_dtype"),
      `dtype ${describe(dtype)} is not bfloat16, float16 or float32`,
    );
  }
  if (heads % kvHeads !== 0) {
    throw new HfConfigError(
      reader.path("num_key_value_heads"),
      `${kvHeads} KV heads do not divide ${heads} attention heads`,
    );
  }

  // --- Attention -------------------------------------------------------------------------------
  const mla = reader.has("kv_lora_rank");
  let headDim: number;
  let attentionPerLayer: number;
  let otherPerLayer = 2 * hidden; // the two RMSNorms
  let attention: ModelArchitecture["attention"];
  const attentionBias = reader.bool("attention_bias", modelType === "qwen2" || modelType === "qwen2_moe");
  if (mla) {
    const kvLoraRank = positiveOrThrow(reader, "kv_lora_rank", reader.int("kv_lora_rank"));
    const rope = positiveOrThrow(reader, "qk_rope_head_dim", reader.int("qk_rope_head_dim"));
    const nope = reader.int("qk_nope_head_dim");
    const vHead = reader.int("v_head_dim", nope);
    const qLora = reader.has("q_lora_rank") ? reader.int("q_lora_rank") : 0;
    headDim = nope + rope;
    const q = qLora > 0 ? hidden * qLora + qLora * heads * headDim : hidden * heads * headDim;
    attentionPerLayer =
      q + hidden * (kvLoraRank + rope) + kvLoraRank * heads * (nope + vHead) + heads * vHead * hidden;
    otherPerLayer += kvLoraRank + qLora;
    attention = { kind: "mla", kvLoraRank, qkRopeHeadDim: rope };
  } else {
    headDim = reader.has("head_dim")
      ? positiveOrThrow(reader, "head_dim", reader.int("head_dim"))
      : hidden / heads;
    if (!Number.isInteger(headDim)) {
      throw new HfConfigError(
        reader.path("head_dim"),
        `missing, and hidden_size ${hidden} / ${heads} heads is not whole`,
      );
    }
    attentionPerLayer = hidden * heads * headDim + 2 * hidden * kvHeads * headDim + heads * headDim * hidden;
    if (attentionBias)
      otherPerLayer += heads * headDim + 2 * kvHeads * headDim + (modelType === "gpt_oss" ? hidden : 0);
    if (modelType.startsWith("qwen3") || modelType.startsWith("gemma3") || modelType === "olmo2")
      otherPerLayer += 2 * headDim;
    if (modelType === "gpt_oss") otherPerLayer += heads; // attention sinks
    attention = { kind: "gqa" };
  }
  if (modelType.startsWith("gemma2") || modelType.startsWith("gemma3")) otherPerLayer += 2 * hidden; // pre/post FFN norms

  const kinds = layerKinds(reader, layers, modelType);
  const slidingLayers = countLayers(kinds, "sliding");
  const slidingWindow = slidingLayers > 0 ? reader.int("sliding_window") : undefined;

  // --- MLP / MoE -------------------------------------------------------------------------------
  const experts = reader.int(["num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts"], 0);
  const denseIntermediate = reader.int(
    ["intermediate_size_mlp", "intermediate_size", "ffn_hidden_size", "n_inner"],
    0,
  );
  let moe: MixtureOfExperts | undefined;
  let moeLayers = 0;
  let expertParams = 0;
  let sharedPerLayer = 0;
  let routerPerLayer = 0;
  let expertBiasPerExpert = 0;
  if (experts > 1) {
    const active = positiveOrThrow(
      reader,
      "num_experts_per_tok",
      reader.int(["num_experts_per_tok", "experts_per_token", "moe_topk"]),
    );
    if (active > experts)
      throw new HfConfigError(reader.path("num_experts_per_tok"), `${active} active of ${experts} experts`);
    const expertWidth = positiveOrThrow(
      reader,
      "moe_intermediate_size",
      reader.int(["moe_intermediate_size", "expert_intermediate_size", "intermediate_size"]),
    );
    const isMoeLayer = moeLayerRule(reader, layers, modelType);
    moeLayers = Array.from({ length: layers }, (_, i) => i).filter(isMoeLayer).length;
    expertParams = 3 * hidden * expertWidth;
    routerPerLayer = hidden * experts;
    if (modelType === "gpt_oss") {
      // gpt-oss experts carry biases (gate_up 2 x width, down hidden); the router has one too.
      expertBiasPerExpert = 2 * expertWidth + hidden;
      routerPerLayer += experts;
    }
    let sharedCount = reader.int(["n_shared_experts", "num_shared_experts"], 0);
    let sharedWidth = expertWidth;
    if (reader.has("shared_expert_intermediate_size") && reader.int("shared_expert_intermediate_size") > 0) {
      sharedCount = 1;
      sharedWidth = reader.int("shared_expert_intermediate_size");
      routerPerLayer += hidden; // the shared expert's gate
    }
    if (modelType.startsWith("llama4")) {
      sharedCount = 1;
      sharedWidth = reader.int("intermediate_size");
    }
    sharedPerLayer = sharedCount * 3 * hidden * sharedWidth;
    moe = {
      expertCount: experts,
      activeExpertsPerToken: active,
      sharedExpertCount: sharedCount,
      expertIntermediateSize: expertWidth,
    };
  }
  const denseLayers = layers - moeLayers;
  if (denseLayers > 0 && denseIntermediate <= 0) {
    throw new HfConfigError(reader.path("intermediate_size"), "missing: the dense MLP width is needed");
  }
  const denseWidth = modelType.startsWith("llama4")
    ? reader.int(["intermediate_size_mlp", "intermediate_size"])
    : reader.int(["intermediate_size", "ffn_hidden_size", "n_inner"], 0);

  const embedding = vocab * hidden * (tied ? 1 : 2);
  const attentionTotal = layers * attentionPerLayer;
  const denseMlp = denseLayers * 3 * hidden * denseWidth;
  const routedExperts = moeLayers * experts * expertParams;
  const sharedExperts = moeLayers * sharedPerLayer;
  const other =
    layers * otherPerLayer + moeLayers * (routerPerLayer + experts * expertBiasPerExpert) + hidden;
  const total = embedding + attentionTotal + denseMlp + routedExperts + sharedExperts + other;
  const active = moe
    ? total - moeLayers * (moe.expertCount - moe.activeExpertsPerToken) * (expertParams + expertBiasPerExpert)
    : total;
  const mtpLayers = reader.int("num_nextn_predict_layers", 0);
  const perLayerAverage = (attentionTotal + denseMlp + routedExperts + sharedExperts + other) / layers;
  const parameters: ParameterBreakdown = {
    embedding,
    attention: attentionTotal,
    denseMlp,
    routedExperts,
    sharedExperts,
    other,
    total,
    active,
    // An MTP block is one more decoder layer (MoE when the model is) plus its projection.
    mtp: mtpLayers * (perLayerAverage + 2 * hidden * hidden),
  };

  const quantization = readQuantization(
    config["quantization_config"] ?? reader.raw("quantization_config"),
    config["quantization_config"] !== undefined ? "quantization_config" : reader.path("quantization_config"),
  );
  const q = quantization.bytesPerParameter;
  const computedWeightBytes =
    embedding * 2 +
    other * 2 +
    attentionTotal * (quantization.attentionUnquantized ? 2 : q) +
    (denseMlp + sharedExperts) * (quantization.denseMlpUnquantized ? 2 : q) +
    routedExperts * q;
  // The safetensors total also holds what vLLM does not load (MTP layers): take those out.
  const mtpBytes = parameters.mtp * (quantization.quantization === "none" ? 2 : q);
  const weightBytes =
    options.safetensorsTotalBytes !== undefined && options.safetensorsTotalBytes > 0
      ? Math.max(computedWeightBytes * 0.5, options.safetensorsTotalBytes - mtpBytes)
      : computedWeightBytes;

  const model: ModelArchitecture = {
    id: options.repo,
    huggingFaceRepos: [options.repo],
    totalParameters: total,
    activeParameters: active,
    layers,
    hiddenSize: hidden,
    intermediateSize: denseLayers > 0 ? denseWidth : (moe?.expertIntermediateSize ?? denseWidth),
    attentionHeads: heads,
    kvHeads: mla ? heads : kvHeads,
    headDim,
    maxContextLength: maxContext,
    vocabSize: vocab,
    tiedEmbeddings: tied,
    weightDtype: dtype === "float16" ? "float16" : "bfloat16",
    attention,
    ...(moe ? { moe } : {}),
    ...(slidingWindow !== undefined ? { slidingWindow, slidingWindowLayers: slidingLayers } : {}),
    checkpoint: {
      quantization: quantization.quantization,
      weightBytes,
      description: quantization.description,
    },
  };
  return { model, parameters, quantization, weightBytes };
}

/** Which decoder layers are MoE (the rest are dense MLPs). */
function moeLayerRule(reader: Reader, layers: number, modelType: string): (layer: number) => boolean {
  if (reader.has("first_k_dense_replace")) {
    const k = reader.int("first_k_dense_replace");
    const frequency = Math.max(1, reader.int("moe_layer_freq", 1));
    return (i) => i >= k && i % frequency === 0;
  }
  if (reader.has("interleave_moe_layer_step") || modelType.startsWith("llama4")) {
    const step = Math.max(1, reader.int("interleave_moe_layer_step", 1));
    return (i) => (i + 1) % step === 0;
  }
  const mlpOnly = new Set(reader.intList("mlp_only_layers"));
  const step = Math.max(1, reader.int("decoder_sparse_step", 1));
  void layers;
  return (i) => !mlpOnly.has(i) && (i + 1) % step === 0;
}
