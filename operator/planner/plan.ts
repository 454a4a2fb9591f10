/**
 * GPU sizing planner: how many GPUs a model needs, at what tensor parallelism, and how much KV
 * cache (tokens, full-context sequences) a replica then holds. Pure functions, no cluster access.
 *
 * Memory model of one GPU of a replica (vLLM, which is what the default engine runs):
 *
 *   usable      = cudaVisible x gpuMemoryUtilization
 *   kv cache    = usable - weights/TP - reserve
 *   reserve     = nonTorch + activation + sampler
 *     nonTorch   = 0.25 GiB at TP 1 (CUDA context, cuBLAS workspaces), 2.1 GiB at TP > 1 (adds
 *                  NCCL and custom all-reduce buffers). Measured by vLLM v0.19 on H100: 0.24-0.27
 *                  GiB at TP 1, 2.06-2.17 GiB at TP 2-4 (llm-d-planner accuracy report).
 *     activation = maxNumBatchedTokens x intermediateSize x 7 bytes: the MLP is the peak of vLLM's
 *                  profiling forward pass; per token it holds gate+up (2 x I x 2 bytes), their
 *                  SiLU product (I x 2 bytes) and a transient (~I bytes). Not divided by TP: the
 *                  measured peak does not shrink with TP (1.89 GiB at TP 1, 2 and 4 for Llama 3.1
 *                  8B, same report), because the sampler's full-vocabulary logits dominate there.
 *     sampler    = maxNumSeqs x vocabSize x 12 bytes: fp32 logits plus two working copies for the
 *                  sampler warm-up batch of maxNumSeqs sequences.
 *   maxNumBatchedTokens / maxNumSeqs default to vLLM's serve defaults: 8192 / 1024 on >= 70 GiB
 *   GPUs other than A100, else 2048 / 256 (vllm/engine/arg_utils.py; the v0.19 H100 log cited in
 *   vllm-log-cases.ts prints "Defaulting max_num_batched_tokens to 8192" and "max_num_seqs to 1024").
 *
 * Calibrated against vLLM start-up logs quoted in public GitHub threads (vllm-log-cases.ts);
 * plan.test.ts reports the error per case and holds each within +-15 %.
 *
 * TensorRT-LLM sizes its KV cache as a fraction of the memory left after the engine is loaded
 * (KvCacheConfig.free_gpu_memory_fraction, default 0.9): kv = fraction x (cudaVisible - weights -
 * reserve). `gpuMemoryUtilization` is read as that fraction for engine `tensorrt-llm`.
 */
import { embeddingParameters, type ModelArchitecture } from "./models.js";
import { FULL_GPUS, cudaVisibleBytes, type GpuSpec } from "./gpus.js";

export const QUANTIZATIONS = ["none", "fp8", "awq", "gptq", "int8", "int4", "nvfp4", "mxfp4"] as const;
export type Quantization = (typeof QUANTIZATIONS)[number];
export const KV_CACHE_DTYPES = ["auto", "fp16", "bf16", "fp8", "fp8_e4m3", "fp8_e5m2"] as const;
export type KvCacheDtype = (typeof KV_CACHE_DTYPES)[number];
export const ENGINES = ["vllm", "tensorrt-llm", "sglang"] as const;
export type Engine = (typeof ENGINES)[number];

export const GiB = 1024 ** 3;
export const DEFAULT_GPU_MEMORY_UTILIZATION = 0.9;
/** Tokens per KV block: vLLM's default --block-size; TensorRT-LLM's default tokens_per_block. */
export const KV_BLOCK_TOKENS: Record<Engine, number> = { vllm: 16, "tensorrt-llm": 32, sglang: 1 };
/**
 * SGLang's memory model: `--mem-fraction-static` f of the GPU holds weights and the KV pool; the rest
 * is left to activations and CUDA graphs. After loading weights it allocates
 *   kv = f x total - weights - (memory already taken by the CUDA context, NCCL and communication buffers)
 * split into one-token slots (page size 1) of layers x KV heads per rank x head dim x 2 (K and V).
 * The overhead at TP > 1 is fitted on the one public log we have (Qwen3-235B-A22B-FP8, 4 x H100,
 * mem-fraction-static 0.93: "KV Cache is allocated. #tokens: 367404, K size: 8.23 GB, V size: 8.23 GB",
 * vllm-project/vllm#21348); the TP 1 figure is the CUDA context and cuBLAS workspace vLLM measures
 * (0.25 GiB) plus SGLang's own torch allocations before the pool, an estimate not yet checked on a log.
 */
export const SGLANG_OVERHEAD_GIB = { tp1: 0.6, tpN: 2.2 } as const;
/** AWQ/GPTQ checkpoints quantize in groups of 128 input channels (the common group_size). */
const INT4_GROUP_SIZE = 128;

export interface PlanInput {
  readonly model: ModelArchitecture;
  readonly gpu: GpuSpec;
  /** GPUs per node in the target pool; tensor parallelism never spans nodes. */
  readonly gpusPerNode: number;
  readonly quantization?: Quantization;
  readonly kvCacheDtype?: KvCacheDtype;
  /** Longest sequence (prompt + output) to serve; default: the model's maximum. */
  readonly maxContextLength?: number;
  /** vLLM --gpu-memory-utilization (default 0.9); TensorRT-LLM free_gpu_memory_fraction. */
  readonly gpuMemoryUtilization?: number;
  readonly tensorParallelism?: "auto" | number;
  readonly engine?: Engine;
  /** vLLM --max-num-batched-tokens; default: vLLM's hardware-dependent default. */
  readonly maxNumBatchedTokens?: number;
  /** vLLM --max-num-seqs; default: vLLM's hardware-dependent default. */
  readonly maxNumSeqs?: number;
  /** GPU memory of one replica's LoRA adapter slots (planner/lora.ts), split across its GPUs; default 0. */
  readonly loraBytesTotal?: number;
}

export interface MemoryReserve {
  readonly nonTorchBytes: number;
  readonly activationBytes: number;
  readonly samplerBytes: number;
  readonly totalBytes: number;
}

export interface Plan {
  readonly ok: true;
  readonly modelId: string;
  readonly gpuId: string;
  readonly gpuProductLabel: string;
  readonly engine: Engine;
  readonly quantization: Quantization;
  readonly kvCacheDtype: KvCacheDtype;
  readonly maxContextLength: number;
  readonly gpuMemoryUtilization: number;
  readonly tensorParallelism: number;
  /** GPUs one replica occupies (= tensorParallelism; no pipeline parallelism). */
  readonly gpusPerReplica: number;
  /** Bytes per weight parameter for the quantizable (non-embedding) weights. */
  readonly bytesPerParameter: number;
  readonly weightBytesTotal: number;
  readonly weightBytesPerGpu: number;
  /** 2 x layers x KV heads x head dim x dtype bytes (MLA: layers x latent width x bytes). */
  readonly kvCacheBytesPerToken: number;
  /** One rank's share per token: KV heads split across ranks, replicated when TP > KV heads. */
  readonly kvCacheBytesPerTokenPerGpu: number;
  readonly reserve: MemoryReserve;
  /** Memory the engine may use on each GPU (cudaVisible x utilization for vLLM). */
  readonly usableBytesPerGpu: number;
  readonly kvCacheBytesPerGpu: number;
  /** Tokens of KV cache one replica holds (every rank holds its share of the same tokens). */
  readonly kvCacheTokensPerReplica: number;
  /** Sequences of maxContextLength tokens that fit at once (vLLM's "Maximum concurrency"). */
  readonly maxConcurrentFullContextSequences: number;
  readonly warnings: readonly string[];
  readonly explanation: string;
}

export type Suggestion =
  | { readonly kind: "quantization"; readonly quantization: Quantization; readonly tensorParallelism: number }
  | {
      readonly kind: "gpu";
      readonly gpuId: string;
      readonly productLabel: string;
      readonly tensorParallelism: number;
      readonly gpusPerNode: number;
    }
  | { readonly kind: "context"; readonly maxContextLength: number; readonly tensorParallelism: number };

export interface PlanError {
  readonly ok: false;
  readonly code: "invalid-input" | "invalid-tensor-parallelism" | "does-not-fit";
  readonly message: string;
  /** What would make it fit (only for `does-not-fit`). */
  readonly suggestions: readonly Suggestion[];
}

export type PlanResult = Plan | PlanError;

// --- Formulas -------------------------------------------------------------------------------

/** Bytes per quantized weight parameter. */
export function bytesPerParameter(quantization: Quantization): number {
  switch (quantization) {
    case "none":
      return 2; // bf16 / fp16 checkpoints
    case "fp8":
    case "int8":
      return 1;
    case "awq":
    case "gptq":
    case "int4":
      // 4-bit weights + one fp16 scale and one packed 4-bit zero point per group of 128:
      // (4 + 16/128 + 4/128) bits = 4.156 bits = 0.5195 bytes.
      return (4 + 16 / INT4_GROUP_SIZE + 4 / INT4_GROUP_SIZE) / 8;
    case "nvfp4":
      // NVFP4: 4-bit values + one FP8 scale per 16.
      return (4 + 8 / 16) / 8;
    case "mxfp4":
      // OCP MXFP4: 4-bit values + one 8-bit shared exponent per 32.
      return (4 + 8 / 32) / 8;
  }
}

/**
 * Weight bytes of the whole model. Quantized checkpoints keep the input embedding and LM head in
 * the model dtype (AWQ/GPTQ/FP8/W8A8 tools skip them), so those stay at 2 bytes. For MoE models
 * all experts are resident: the total parameter count is what occupies memory.
 */
export function weightBytes(model: ModelArchitecture, quantization: Quantization): number {
  // A checkpoint read from its own files knows its exact size at its own quantization.
  if (model.checkpoint !== undefined && model.checkpoint.quantization === quantization)
    return model.checkpoint.weightBytes;
  if (quantization === "none") return model.totalParameters * 2;
  const embedding = embeddingParameters(model);
  return (model.totalParameters - embedding) * bytesPerParameter(quantization) + embedding * 2;
}

export function kvCacheDtypeBytes(kvCacheDtype: KvCacheDtype): number {
  // `auto` follows the model dtype (bf16/fp16), also for FP8-quantized weights.
  return kvCacheDtype.startsWith("fp8") ? 1 : 2;
}

/**
 * Layers' worth of KV cache vLLM allocates per token. With only one kind of attention layer that is
 * the layer count. With local (sliding-window) and global layers mixed, vLLM >= 0.10's hybrid
 * KV-cache manager puts layers of one kind into groups of `groupSize` layers (the smaller kind's
 * count, or the larger's when it is < 1.25 x the smaller), pads the last group of each kind, and
 * gives every group the same number of blocks; so a token costs groups x groupSize layers
 * (vllm/v1/core/kv_cache_utils.py; the v0.19 log of Gemma 3 27B warns "Add 8 padding layers":
 * 52 local + 10 global layers -> 7 groups of 10 = 70 layer slots).
 */
export function vllmKvLayerSlots(model: ModelArchitecture): number {
  const local = model.slidingWindowLayers ?? 0;
  const global = model.layers - local;
  if (local === 0 || global === 0) return model.layers;
  const smaller = Math.min(local, global);
  const larger = Math.max(local, global);
  const groupSize = larger < smaller * 1.25 ? larger : smaller;
  return (Math.ceil(local / groupSize) + Math.ceil(global / groupSize)) * groupSize;
}

/** KV bytes per token for the whole replica (the layers vLLM allocates; see vllmKvLayerSlots). */
export function kvCacheBytesPerToken(
  model: ModelArchitecture,
  kvCacheDtype: KvCacheDtype,
  engine: Engine = "vllm",
): number {
  const bytes = kvCacheDtypeBytes(kvCacheDtype);
  const layers = engine === "vllm" ? vllmKvLayerSlots(model) : model.layers;
  if (model.attention.kind === "mla") {
    return layers * (model.attention.kvLoraRank + model.attention.qkRopeHeadDim) * bytes;
  }
  return 2 * layers * model.kvHeads * model.headDim * bytes;
}

/**
 * KV bytes per token on one rank. KV heads are split across ranks; when TP exceeds the KV head
 * count vLLM gives every rank one head (heads are replicated TP/kvHeads times). The MLA latent is
 * held whole by every rank.
 */
export function kvCacheBytesPerTokenPerGpu(
  model: ModelArchitecture,
  kvCacheDtype: KvCacheDtype,
  tensorParallelism: number,
  engine: Engine = "vllm",
): number {
  const bytes = kvCacheDtypeBytes(kvCacheDtype);
  if (model.attention.kind === "mla") return kvCacheBytesPerToken(model, kvCacheDtype, engine);
  const kvHeadsPerRank = Math.max(1, Math.floor(model.kvHeads / tensorParallelism));
  const layers = engine === "vllm" ? vllmKvLayerSlots(model) : model.layers;
  return 2 * layers * kvHeadsPerRank * model.headDim * bytes;
}

/** vLLM's serve defaults for --max-num-batched-tokens and --max-num-seqs on this GPU. */
export function vllmSchedulerDefaults(gpu: GpuSpec): { maxNumBatchedTokens: number; maxNumSeqs: number } {
  const large = gpu.cudaVisibleGiB >= 70 && !gpu.id.startsWith("a100");
  return large
    ? { maxNumBatchedTokens: 8192, maxNumSeqs: 1024 }
    : { maxNumBatchedTokens: 2048, maxNumSeqs: 256 };
}

/** Framework/activation reserve per GPU; see the header for the formula and its calibration. */
export function memoryReserve(
  model: ModelArchitecture,
  tensorParallelism: number,
  maxNumBatchedTokens: number,
  maxNumSeqs: number,
): MemoryReserve {
  const nonTorchBytes = (tensorParallelism === 1 ? 0.25 : 2.1) * GiB;
  // MoE layers: the fused-MoE kernel's intermediate caches hold, per token and active expert, the
  // gate+up output (2 x expert width), its activation (1 x) and the down output (hidden), 16-bit.
  const moeBytes =
    model.moe !== undefined
      ? maxNumBatchedTokens *
        model.moe.activeExpertsPerToken *
        (3 * (model.moe.expertIntermediateSize ?? model.intermediateSize) + model.hiddenSize) *
        2
      : 0;
  const activationBytes = Math.max(maxNumBatchedTokens * model.intermediateSize * 7, moeBytes);
  const samplerBytes = maxNumSeqs * model.vocabSize * 12;
  return {
    nonTorchBytes,
    activationBytes,
    samplerBytes,
    totalBytes: nonTorchBytes + activationBytes + samplerBytes,
  };
}

/** SGLang's memory outside weights and KV pool inside the static fraction (see SGLANG_OVERHEAD_GIB). */
export function sglangReserve(tensorParallelism: number): MemoryReserve {
  const nonTorchBytes = (tensorParallelism === 1 ? SGLANG_OVERHEAD_GIB.tp1 : SGLANG_OVERHEAD_GIB.tpN) * GiB;
  return { nonTorchBytes, activationBytes: 0, samplerBytes: 0, totalBytes: nonTorchBytes };
}

/** Why a tensor-parallel degree cannot be used, or undefined when it can. */
export function tensorParallelismProblem(
  model: ModelArchitecture,
  tensorParallelism: number,
  gpusPerNode: number,
  quantization: Quantization,
): string | undefined {
  const tp = tensorParallelism;
  if (!Number.isInteger(tp) || tp < 1) return `tensor parallelism must be a positive integer (got ${tp})`;
  if ((tp & (tp - 1)) !== 0) return `tensor parallelism ${tp} is not a power of two`;
  if (tp > gpusPerNode) return `tensor parallelism ${tp} exceeds the ${gpusPerNode} GPUs of one node`;
  if (model.attentionHeads % tp !== 0) {
    return `tensor parallelism ${tp} does not divide the ${model.attentionHeads} attention heads of ${model.id}`;
  }
  // vLLM (QKVParallelLinear): TP divides the KV heads, or the KV heads divide TP (replication).
  if (model.attention.kind === "gqa" && model.kvHeads % tp !== 0 && tp % model.kvHeads !== 0) {
    return `tensor parallelism ${tp} neither divides nor is a multiple of the ${model.kvHeads} KV heads of ${model.id}`;
  }
  // 4-bit kernels (Marlin) need each rank's slice of the MLP input to be whole quantization groups.
  const mlpWidth = model.quantizedIntermediateSize ?? model.intermediateSize;
  if (
    (quantization === "awq" || quantization === "gptq" || quantization === "int4") &&
    (mlpWidth / tp) % INT4_GROUP_SIZE !== 0
  ) {
    return `tensor parallelism ${tp} splits the ${mlpWidth}-wide MLP into ${mlpWidth / tp} columns per GPU, not a multiple of the 4-bit group size ${INT4_GROUP_SIZE}`;
  }
  return undefined;
}

/** Valid tensor-parallel degrees, smallest first. */
export function candidateTensorParallelisms(
  model: ModelArchitecture,
  gpusPerNode: number,
  quantization: Quantization,
): number[] {
  const candidates: number[] = [];
  for (let tp = 1; tp <= gpusPerNode; tp *= 2) {
    if (tensorParallelismProblem(model, tp, gpusPerNode, quantization) === undefined) candidates.push(tp);
  }
  return candidates;
}

// --- Evaluation at one TP degree --------------------------------------------------------------

interface Resolved {
  readonly model: ModelArchitecture;
  readonly gpu: GpuSpec;
  readonly gpusPerNode: number;
  readonly quantization: Quantization;
  readonly kvCacheDtype: KvCacheDtype;
  readonly maxContextLength: number;
  readonly gpuMemoryUtilization: number;
  readonly engine: Engine;
  readonly maxNumBatchedTokens: number;
  readonly maxNumSeqs: number;
  readonly loraBytesTotal: number;
}

interface Evaluation {
  readonly tensorParallelism: number;
  readonly weightBytesTotal: number;
  readonly weightBytesPerGpu: number;
  readonly kvCacheBytesPerTokenPerGpu: number;
  readonly reserve: MemoryReserve;
  readonly usableBytesPerGpu: number;
  readonly kvCacheBytesPerGpu: number;
  readonly kvCacheTokensPerReplica: number;
  readonly weightsFit: boolean;
  readonly fits: boolean;
}

function evaluate(resolved: Resolved, tensorParallelism: number): Evaluation {
  const { model, gpu, engine } = resolved;
  const weightBytesTotal = weightBytes(model, resolved.quantization);
  // LoRA slots are weights the engine holds next to the model's (planner/lora.ts).
  const weightBytesPerGpu = (weightBytesTotal + resolved.loraBytesTotal) / tensorParallelism;
  const perToken = kvCacheBytesPerTokenPerGpu(model, resolved.kvCacheDtype, tensorParallelism, engine);
  const reserve =
    engine === "sglang"
      ? sglangReserve(tensorParallelism)
      : memoryReserve(model, tensorParallelism, resolved.maxNumBatchedTokens, resolved.maxNumSeqs);
  const visible = cudaVisibleBytes(gpu);
  let usableBytesPerGpu: number;
  let kvCacheBytesPerGpu: number;
  if (engine === "vllm" || engine === "sglang") {
    usableBytesPerGpu = visible * resolved.gpuMemoryUtilization;
    kvCacheBytesPerGpu = usableBytesPerGpu - weightBytesPerGpu - reserve.totalBytes;
  } else {
    usableBytesPerGpu = visible;
    kvCacheBytesPerGpu = resolved.gpuMemoryUtilization * (visible - weightBytesPerGpu - reserve.totalBytes);
  }
  const blockTokens = KV_BLOCK_TOKENS[engine];
  const blocks = kvCacheBytesPerGpu > 0 ? Math.floor(kvCacheBytesPerGpu / (perToken * blockTokens)) : 0;
  const kvCacheTokensPerReplica = blocks * blockTokens;
  const weightsFit = weightBytesPerGpu + reserve.totalBytes < usableBytesPerGpu;
  return {
    tensorParallelism,
    weightBytesTotal,
    weightBytesPerGpu,
    kvCacheBytesPerTokenPerGpu: perToken,
    reserve,
    usableBytesPerGpu,
    kvCacheBytesPerGpu,
    kvCacheTokensPerReplica,
    weightsFit,
    fits: weightsFit && kvCacheTokensPerReplica >= resolved.maxContextLength,
  };
}

/** Smallest valid TP at which the model and one full-context sequence fit, if any. */
function smallestFittingEvaluation(resolved: Resolved): Evaluation | undefined {
  for (const tp of candidateTensorParallelisms(resolved.model, resolved.gpusPerNode, resolved.quantization)) {
    const evaluation = evaluate(resolved, tp);
    if (evaluation.fits) return evaluation;
  }
  return undefined;
}

// --- Public entry points -------------------------------------------------------------------

function resolveInput(input: PlanInput): Resolved | PlanError {
  const problems: string[] = [];
  const quantization = input.quantization ?? "none";
  const kvCacheDtype = input.kvCacheDtype ?? "auto";
  const engine = input.engine ?? "vllm";
  const maxContextLength = input.maxContextLength ?? input.model.maxContextLength;
  const gpuMemoryUtilization = input.gpuMemoryUtilization ?? DEFAULT_GPU_MEMORY_UTILIZATION;
  const defaults = vllmSchedulerDefaults(input.gpu);
  const maxNumBatchedTokens = input.maxNumBatchedTokens ?? defaults.maxNumBatchedTokens;
  const maxNumSeqs = input.maxNumSeqs ?? defaults.maxNumSeqs;

  if (!QUANTIZATIONS.includes(quantization))
    problems.push(`unknown quantization "${quantization}" (one of ${QUANTIZATIONS.join(", ")})`);
  if (!KV_CACHE_DTYPES.includes(kvCacheDtype))
    problems.push(`unknown kvCacheDtype "${kvCacheDtype}" (one of ${KV_CACHE_DTYPES.join(", ")})`);
  if (!ENGINES.includes(engine)) problems.push(`unknown engine "${engine}" (one of ${ENGINES.join(", ")})`);
  if (!Number.isInteger(input.gpusPerNode) || input.gpusPerNode < 1)
    problems.push(`gpusPerNode must be a positive integer (got ${input.gpusPerNode})`);
  if (!Number.isInteger(maxContextLength) || maxContextLength < 1)
    problems.push(`maxContextLength must be a positive integer (got ${maxContextLength})`);
  else if (maxContextLength > input.model.maxContextLength) {
    problems.push(
      `maxContextLength ${maxContextLength} exceeds ${input.model.id}'s maximum of ${input.model.maxContextLength}`,
    );
  }
  if (!(gpuMemoryUtilization > 0 && gpuMemoryUtilization <= 1))
    problems.push(`gpuMemoryUtilization must be in (0, 1] (got ${gpuMemoryUtilization})`);
  if (!(maxNumBatchedTokens >= 1) || !(maxNumSeqs >= 1))
    problems.push("maxNumBatchedTokens and maxNumSeqs must be positive");
  if (
    engine === "tensorrt-llm" &&
    (quantization === "fp8" || kvCacheDtype.startsWith("fp8")) &&
    !input.gpu.supportsFp8
  ) {
    problems.push(
      `TensorRT-LLM FP8 needs FP8 tensor cores (Ada, Hopper, Blackwell); ${input.gpu.productLabel} has none`,
    );
  }
  const tp = input.tensorParallelism ?? "auto";
  if (tp !== "auto" && typeof tp !== "number") problems.push(`tensorParallelism must be "auto" or a number`);
  if (problems.length > 0)
    return { ok: false, code: "invalid-input", message: problems.join("; "), suggestions: [] };
  return {
    model: input.model,
    gpu: input.gpu,
    gpusPerNode: input.gpusPerNode,
    quantization,
    kvCacheDtype,
    maxContextLength,
    gpuMemoryUtilization,
    engine,
    maxNumBatchedTokens,
    maxNumSeqs,
    loraBytesTotal: input.loraBytesTotal ?? 0,
  };
}

/**
 * Sizes one model on one GPU type: picks (or checks) the tensor-parallel degree and reports
 * weight, reserve and KV-cache memory, KV tokens per replica and full-context concurrency.
 */
export function planModel(input: PlanInput): PlanResult {
  const resolved = resolveInput(input);
  if ("ok" in resolved) return resolved;
  const requested = input.tensorParallelism ?? "auto";

  if (requested !== "auto") {
    const problem = tensorParallelismProblem(
      resolved.model,
      requested,
      resolved.gpusPerNode,
      resolved.quantization,
    );
    if (problem !== undefined) {
      const valid = candidateTensorParallelisms(resolved.model, resolved.gpusPerNode, resolved.quantization);
      return {
        ok: false,
        code: "invalid-tensor-parallelism",
        message: `${problem}; valid degrees for ${resolved.model.id} on ${resolved.gpusPerNode}-GPU nodes: ${valid.join(", ") || "none"}`,
        suggestions: [],
      };
    }
    const evaluation = evaluate(resolved, requested);
    if (!evaluation.fits) return doesNotFit(resolved, [evaluation]);
    return toPlan(resolved, evaluation);
  }

  const candidates = candidateTensorParallelisms(resolved.model, resolved.gpusPerNode, resolved.quantization);
  if (candidates.length === 0) {
    return {
      ok: false,
      code: "invalid-tensor-parallelism",
      message: `no power-of-two tensor parallelism up to ${resolved.gpusPerNode} divides ${resolved.model.id}'s ${resolved.model.attentionHeads} attention heads and ${resolved.model.kvHeads} KV heads`,
      suggestions: [],
    };
  }
  const evaluations = candidates.map((tp) => evaluate(resolved, tp));
  const fitting = evaluations.find((evaluation) => evaluation.fits);
  return fitting ? toPlan(resolved, fitting) : doesNotFit(resolved, evaluations);
}

function toPlan(resolved: Resolved, evaluation: Evaluation): Plan {
  const { model, gpu, quantization, kvCacheDtype, engine } = resolved;
  const warnings: string[] = [];
  if (quantization === "fp8" && !gpu.supportsFp8) {
    warnings.push(
      `${gpu.productLabel} has no FP8 tensor cores: vLLM runs FP8 checkpoints weight-only (W8A16 Marlin), same memory, slower compute`,
    );
  }
  if (kvCacheDtype.startsWith("fp8") && !gpu.supportsFp8) {
    warnings.push(
      `FP8 KV cache on ${gpu.productLabel} is stored as FP8 but computed in 16-bit; it saves memory, not time`,
    );
  }
  if (model.slidingWindow !== undefined) {
    warnings.push(
      `${model.id} has ${model.slidingWindow}-token sliding-window layers; KV tokens are counted as vLLM's hybrid allocator counts them (every layer group gets the same blocks)`,
    );
  }
  if (gpu.mig !== undefined && evaluation.tensorParallelism > 1) {
    warnings.push(
      "MIG slices cannot communicate over NVLink/P2P; tensor parallelism across slices is not supported by vLLM",
    );
  }
  const maxConcurrent =
    Math.floor((evaluation.kvCacheTokensPerReplica / resolved.maxContextLength) * 100) / 100;
  const weightDtype =
    quantization === "none" ? (model.weightDtype === "bfloat16" ? "bf16" : "fp16") : quantization;
  const tp = evaluation.tensorParallelism;
  const explanation =
    `${model.id} (${weightDtype} weights ${gib(evaluation.weightBytesTotal)}) on ${tp} x ${gpu.productLabel} (TP ${tp}, ${engine}): ` +
    `per GPU ${gib(evaluation.weightBytesPerGpu)} weights + ${gib(evaluation.reserve.totalBytes)} reserve of ${gib(evaluation.usableBytesPerGpu)} usable ` +
    `leaves ${gib(evaluation.kvCacheBytesPerGpu)} KV cache = ${evaluation.kvCacheTokensPerReplica.toLocaleString("en-US")} tokens ` +
    `(${maxConcurrent} sequences of ${resolved.maxContextLength.toLocaleString("en-US")} tokens).`;
  return {
    ok: true,
    modelId: model.id,
    gpuId: gpu.id,
    gpuProductLabel: gpu.productLabel,
    engine,
    quantization,
    kvCacheDtype,
    maxContextLength: resolved.maxContextLength,
    gpuMemoryUtilization: resolved.gpuMemoryUtilization,
    tensorParallelism: tp,
    gpusPerReplica: tp,
    bytesPerParameter: bytesPerParameter(quantization),
    weightBytesTotal: evaluation.weightBytesTotal,
    weightBytesPerGpu: evaluation.weightBytesPerGpu,
    kvCacheBytesPerToken: kvCacheBytesPerToken(model, kvCacheDtype, engine),
    kvCacheBytesPerTokenPerGpu: evaluation.kvCacheBytesPerTokenPerGpu,
    reserve: evaluation.reserve,
    usableBytesPerGpu: evaluation.usableBytesPerGpu,
    kvCacheBytesPerGpu: evaluation.kvCacheBytesPerGpu,
    kvCacheTokensPerReplica: evaluation.kvCacheTokensPerReplica,
    maxConcurrentFullContextSequences: maxConcurrent,
    warnings,
    explanation,
  };
}

/** Builds the "does not fit" error and computes what would make it fit. */
function doesNotFit(resolved: Resolved, tried: readonly Evaluation[]): PlanError {
  const { model, gpu } = resolved;
  const suggestions: Suggestion[] = [];

  // 1. A more aggressive quantization (the TP rule still applies: auto).
  const quantizationOrder: Quantization[] = gpu.supportsFp8 ? ["fp8", "int4"] : ["int8", "int4"];
  const currentBytes = bytesPerParameter(resolved.quantization);
  for (const quantization of quantizationOrder) {
    if (bytesPerParameter(quantization) >= currentBytes) continue;
    const evaluation = smallestFittingEvaluation({ ...resolved, quantization });
    if (evaluation)
      suggestions.push({
        kind: "quantization",
        quantization,
        tensorParallelism: evaluation.tensorParallelism,
      });
  }

  // 2. A larger GPU from the catalogue: same node size first, else an 8-GPU node.
  for (const gpusPerNode of [...new Set([resolved.gpusPerNode, 8])]) {
    for (const candidate of FULL_GPUS) {
      if (candidate.cudaVisibleGiB <= gpu.cudaVisibleGiB) continue;
      if (suggestions.some((s) => s.kind === "gpu" && s.gpuId === candidate.id)) continue;
      const defaults = vllmSchedulerDefaults(candidate);
      const evaluation = smallestFittingEvaluation({ ...resolved, gpu: candidate, gpusPerNode, ...defaults });
      if (evaluation) {
        suggestions.push({
          kind: "gpu",
          gpuId: candidate.id,
          productLabel: candidate.productLabel,
          tensorParallelism: evaluation.tensorParallelism,
          gpusPerNode,
        });
      }
    }
    if (suggestions.some((s) => s.kind === "gpu")) break;
  }

  // 3. A shorter context at the largest TP tried (where the most KV cache is).
  const largest = tried.reduce(
    (best, e) => (e.kvCacheTokensPerReplica > best.kvCacheTokensPerReplica ? e : best),
    tried[0] as Evaluation,
  );
  if (largest.weightsFit && largest.kvCacheTokensPerReplica > 0) {
    suggestions.push({
      kind: "context",
      maxContextLength: largest.kvCacheTokensPerReplica,
      tensorParallelism: largest.tensorParallelism,
    });
  }

  const triedText = tried
    .map((e) =>
      e.weightsFit
        ? `TP ${e.tensorParallelism}: KV cache holds ${e.kvCacheTokensPerReplica.toLocaleString("en-US")} of ${resolved.maxContextLength.toLocaleString("en-US")} tokens`
        : `TP ${e.tensorParallelism}: ${gib(e.weightBytesPerGpu)} weights + ${gib(e.reserve.totalBytes)} reserve exceed ${gib(e.usableBytesPerGpu)} usable per GPU`,
    )
    .join("; ");
  const fixes = suggestions.map(describeSuggestion);
  const message =
    `${model.id} (${resolved.quantization === "none" ? model.weightDtype : resolved.quantization}, ${resolved.maxContextLength.toLocaleString("en-US")}-token context) ` +
    `does not fit ${resolved.gpusPerNode} x ${gpu.productLabel} (${triedText}).` +
    (fixes.length > 0
      ? ` Would fit with: ${fixes.join("; ")}.`
      : " No catalogue quantization, GPU or context length makes it fit.");
  return { ok: false, code: "does-not-fit", message, suggestions };
}

function describeSuggestion(suggestion: Suggestion): string {
  switch (suggestion.kind) {
    case "quantization":
      return `quantization ${suggestion.quantization} (TP ${suggestion.tensorParallelism})`;
    case "gpu":
      return `GPU ${suggestion.productLabel} (TP ${suggestion.tensorParallelism}, ${suggestion.gpusPerNode} per node)`;
    case "context":
      return `maxContextLength <= ${suggestion.maxContextLength} (TP ${suggestion.tensorParallelism})`;
  }
}

export interface GpuPool {
  /** GFD product label (or any name findGpu accepts) of the pool's GPUs. */
  readonly productLabel: string;
  readonly gpusPerNode: number;
  /** GPUs currently free in the pool; omitted = not limiting. */
  readonly availableGpus?: number;
}

export interface GpuRejection {
  readonly gpu: string;
  readonly reason: string;
}

export type AcrossGpusResult =
  | {
      readonly ok: true;
      readonly plan: Plan;
      readonly pool: GpuPool;
      readonly rejected: readonly GpuRejection[];
    }
  | { readonly ok: false; readonly message: string; readonly rejected: readonly GpuRejection[] };

/**
 * Returns the plan for the first allowed GPU (in preference order) that has a pool and fits, with
 * the reason each earlier one was rejected. `resolveGpu` maps a label to a catalogue GPU.
 */
export function planAcrossGpus(
  input: Omit<PlanInput, "gpu" | "gpusPerNode">,
  allowedGpus: readonly string[],
  pools: readonly GpuPool[],
  resolveGpu: (label: string) => GpuSpec | undefined,
): AcrossGpusResult {
  const rejected: GpuRejection[] = [];
  for (const allowed of allowedGpus) {
    const gpu = resolveGpu(allowed);
    if (!gpu) {
      rejected.push({ gpu: allowed, reason: "not in the GPU catalogue" });
      continue;
    }
    const pool = pools.find((p) => resolveGpu(p.productLabel)?.id === gpu.id);
    if (!pool) {
      rejected.push({ gpu: allowed, reason: `no pool offers ${gpu.productLabel}` });
      continue;
    }
    const result = planModel({ ...input, gpu, gpusPerNode: pool.gpusPerNode });
    if (!result.ok) {
      rejected.push({ gpu: allowed, reason: result.message });
      continue;
    }
    if (pool.availableGpus !== undefined && pool.availableGpus < result.gpusPerReplica) {
      rejected.push({
        gpu: allowed,
        reason: `pool has ${pool.availableGpus} free ${gpu.productLabel}, a replica needs ${result.gpusPerReplica}`,
      });
      continue;
    }
    return { ok: true, plan: result, pool, rejected };
  }
  return {
    ok: false,
    message: `no allowed GPU fits ${input.model.id}: ${rejected.map((r) => `${r.gpu}: ${r.reason}`).join(" | ")}`,
    rejected,
  };
}

// --- Presentation ---------------------------------------------------------------------------

export function gib(bytes: number): string {
  return `${(bytes / GiB).toFixed(2)} GiB`;
}

/** Multi-line human-readable summary of a plan (for `gpufleet plan`). */
export function formatPlan(plan: Plan): string {
  const rows: [string, string][] = [
    ["model", plan.modelId],
    ["gpu", `${plan.gpuProductLabel} (${plan.gpuId})`],
    ["engine", plan.engine],
    ["quantization", `${plan.quantization} (${plan.bytesPerParameter.toFixed(3)} bytes/param)`],
    ["kv cache dtype", plan.kvCacheDtype],
    ["tensor parallelism", String(plan.tensorParallelism)],
    ["gpus per replica", String(plan.gpusPerReplica)],
    ["weights", `${gib(plan.weightBytesTotal)} total, ${gib(plan.weightBytesPerGpu)} per GPU`],
    [
      "reserve per GPU",
      `${gib(plan.reserve.totalBytes)} (non-torch ${gib(plan.reserve.nonTorchBytes)}, activation ${gib(plan.reserve.activationBytes)}, sampler ${gib(plan.reserve.samplerBytes)})`,
    ],
    ["usable per GPU", `${gib(plan.usableBytesPerGpu)} (utilization ${plan.gpuMemoryUtilization})`],
    ["kv cache per GPU", gib(plan.kvCacheBytesPerGpu)],
    [
      "kv bytes per token",
      `${plan.kvCacheBytesPerToken.toLocaleString("en-US")} (${plan.kvCacheBytesPerTokenPerGpu.toLocaleString("en-US")} per GPU)`,
    ],
    ["kv tokens per replica", plan.kvCacheTokensPerReplica.toLocaleString("en-US")],
    ["max context", plan.maxContextLength.toLocaleString("en-US")],
    ["full-context sequences", String(plan.maxConcurrentFullContextSequences)],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  const lines = rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`);
  for (const warning of plan.warnings) lines.push(`warning: ${warning}`);
  lines.push(plan.explanation);
  return lines.join("\n");
}

/** One-line-per-plan table (model, GPU, TP, weights/GPU, KV tokens, full-context sequences). */
export function sizingTable(results: readonly PlanResult[]): string {
  const header = ["model", "gpu", "quant", "tp", "weights/gpu", "kv/gpu", "kv tokens", "max ctx", "seqs"];
  const rows = results.map((result) =>
    result.ok
      ? [
          result.modelId,
          result.gpuProductLabel,
          result.quantization,
          String(result.tensorParallelism),
          gib(result.weightBytesPerGpu),
          gib(result.kvCacheBytesPerGpu),
          result.kvCacheTokensPerReplica.toLocaleString("en-US"),
          result.maxContextLength.toLocaleString("en-US"),
          String(result.maxConcurrentFullContextSequences),
        ]
      : ["-", "-", "-", "-", "-", "-", "-", "-", `error: ${result.code}`],
  );
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const render = (row: readonly string[]): string =>
    row
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join("  ")
      .trimEnd();
  return [render(header), ...rows.map(render)].join("\n");
}
