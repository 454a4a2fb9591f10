/**
 * Real vLLM start-up logs quoted in public GitHub threads, used to validate and calibrate the
 * planner's KV-cache estimate (plan.test.ts checks each within KV_TOKEN_TOLERANCE).
 *
 * Each case records the configuration visible in the thread (model, GPU, TP, utilization,
 * context) and the KV-cache size vLLM reported. Older vLLM logs print "# GPU blocks: N" (tokens =
 * N x 16, the default block size) or the KV memory in GiB (tokens = GiB / per-token bytes per
 * GPU, rounded down to whole 16-token blocks); newer ones print "GPU KV cache size: N tokens".
 *
 * Scheduler settings (maxNumBatchedTokens / maxNumSeqs) are those of the vLLM version in the log:
 * V0 without chunked prefill profiled a batch of max_model_len tokens with max_num_seqs 256; V1 on
 * an H100 defaults to 8192 / 1024 (the v0.19 log below prints both defaults).
 */
import { readFileSync } from "node:fs";
import { findModel, defineModel, type ModelArchitecture } from "./models.js";
import { modelFromHfConfig } from "./hf-config.js";
import { findGpu, type GpuSpec } from "./gpus.js";
import type { Quantization } from "./plan.js";

export interface VllmLogCase {
  readonly name: string;
  /** The public thread the log is quoted in. */
  readonly url: string;
  readonly vllmVersion: string;
  /** What the log says, in short (figures only). */
  readonly logFacts: string;
  readonly model: ModelArchitecture;
  readonly gpu: GpuSpec;
  readonly quantization: Quantization;
  readonly tensorParallelism: number;
  readonly gpuMemoryUtilization: number;
  readonly maxContextLength: number;
  readonly maxNumBatchedTokens: number;
  readonly maxNumSeqs: number;
  /** KV-cache tokens per replica that vLLM reported. */
  readonly observedKvCacheTokens: number;
}

/** Tolerance on KV-cache tokens per replica, as a fraction of the observed value. */
export const KV_TOKEN_TOLERANCE = 0.1;
/** Ceiling on the median absolute error over all cases. */
export const KV_TOKEN_MEDIAN_TOLERANCE = 0.03;

function catalogueModel(name: string): ModelArchitecture {
  const model = findModel(name);
  if (!model) throw new Error(`vllm-log-cases: ${name} is not in the model catalogue`);
  return model;
}

function catalogueGpu(name: string): GpuSpec {
  const gpu = findGpu(name);
  if (!gpu) throw new Error(`vllm-log-cases: ${name} is not in the GPU catalogue`);
  return gpu;
}

/** GeForce RTX 3090 (not a data-centre part, so not in the catalogue): 23.58 GiB visible per the log. */
const RTX_3090: GpuSpec = {
  id: "rtx-3090-24gb",
  productLabel: "NVIDIA-GeForce-RTX-3090",
  aliases: [],
  architecture: "ampere",
  memoryMiB: 24_576,
  memoryGiB: 24,
  cudaVisibleGiB: 23.58,
  supportsFp8: false,
  memoryBandwidthGBps: 936,
  denseBf16Tflops: 71,
  boardPowerWatts: 350,
  nvlink: false,
};

/** Llama 2 7B (https://huggingface.co/meta-llama/Llama-2-7b-hf/blob/main/config.json): MHA, 32 KV heads. */
const LLAMA_2_7B = defineModel({
  id: "llama-2-7b",
  huggingFaceRepos: ["meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-7b-chat-hf"],
  totalParameters: 6_738_415_616,
  activeParameters: 6_738_415_616,
  layers: 32,
  hiddenSize: 4096,
  intermediateSize: 11_008,
  attentionHeads: 32,
  kvHeads: 32,
  headDim: 128,
  maxContextLength: 4096,
  vocabSize: 32_000,
  tiedEmbeddings: false,
  weightDtype: "float16",
});

const H100 = catalogueGpu("NVIDIA-H100-80GB-HBM3");

/**
 * A model sized from its own config.json (testdata/hf-configs/, sources in its README), as the
 * operator sizes a Hugging Face model the catalogue does not know. `safetensorsTotalBytes` is the
 * checkpoint's total (vision tower included for multimodal models), as the operator reads it from
 * model.safetensors.index.json.
 */
export function hfFixtureModel(repo: string, safetensorsTotalBytes?: number): ModelArchitecture {
  const file = new URL(`./testdata/hf-configs/${repo.replace("/", "--")}.json`, import.meta.url);
  const config: unknown = JSON.parse(readFileSync(file, "utf8"));
  return modelFromHfConfig(config, {
    repo,
    ...(safetensorsTotalBytes !== undefined ? { safetensorsTotalBytes } : {}),
  }).model;
}

export const VLLM_LOG_CASES: readonly VllmLogCase[] = [
  {
    // 62 layers: 52 sliding-window (1024) + 10 global. vLLM 0.19 groups them 10 to a group and warns
    // "Add 8 padding layers": a token costs 70 layers' KV (see vllmKvLayerSlots).
    name: "Gemma 3 27B it (hybrid sliding window, from config.json), 1 x H100, util 0.95 (vLLM 0.19)",
    url: "https://github.com/llm-d-incubation/llm-d-planner/blob/main/accuracy/results/v0.19.0/logs/google-gemma-3-27b-it--h100-80gb--tp1pp1dp1--8192.log",
    vllmVersion: "0.19.0",
    logFacts:
      "Add 8 padding layers; weights memory 51.45GiB; torch peak increase 3.99GiB; non-torch 0.26GiB; Available KV cache memory 19.53 GiB; GPU KV cache size 36,560 tokens; Maximum concurrency for 8,192 tokens 4.46x",
    // 27,432,406,640 parameters (text + SigLIP vision tower) x 2 bytes: the checkpoint's safetensors total.
    model: hfFixtureModel("google/gemma-3-27b-it", 27_432_406_640 * 2),
    gpu: H100,
    quantization: "none",
    tensorParallelism: 1,
    gpuMemoryUtilization: 0.95,
    maxContextLength: 8192,
    maxNumBatchedTokens: 8192,
    maxNumSeqs: 1024,
    observedKvCacheTokens: 36_560,
  },
  {
    // MXFP4 experts, 16-bit attention; alternating 128-token sliding-window and global layers (12 + 12).
    name: "gpt-oss-20b (MoE, MXFP4, sliding window, from config.json), 2 x H100, TP 2, util 0.90 (vLLM 0.19)",
    url: "https://github.com/llm-d-incubation/llm-d-planner/blob/main/accuracy/results/v0.19.0/logs/openai-gpt-oss-20b--h100-80gb--tp2pp1dp1--8192.log",
    vllmVersion: "0.19.0",
    logFacts:
      "Requested memory 0.90 (util), 71.27 GiB; weights memory 7.01GiB per rank; torch peak increase 2.87GiB; non-torch 2.07GiB; GPU KV cache size 2,591,776 tokens; Maximum concurrency for 8,192 tokens 316.07x",
    model: hfFixtureModel("openai/gpt-oss-20b"),
    gpu: H100,
    quantization: "mxfp4",
    tensorParallelism: 2,
    gpuMemoryUtilization: 0.9,
    maxContextLength: 8192,
    maxNumBatchedTokens: 8192,
    maxNumSeqs: 1024,
    observedKvCacheTokens: 2_591_776,
  },
  {
    name: "Qwen1.5-MoE-A2.7B (60 experts + shared expert, from config.json), 1 x H100, util 0.95 (vLLM 0.19)",
    url: "https://github.com/llm-d-incubation/llm-d-planner/blob/main/accuracy/results/v0.19.0/logs/qwen-qwen1-5-moe-a2-7b--h100-80gb--tp1pp1dp1--8192.log",
    vllmVersion: "0.19.0",
    logFacts:
      "weights memory 26.67GiB; torch peak increase 2.47GiB; non-torch 0.25GiB; Available KV cache memory 45.83 GiB; GPU KV cache size 250,304 tokens",
    model: hfFixtureModel("Qwen/Qwen1.5-MoE-A2.7B"),
    gpu: H100,
    quantization: "none",
    tensorParallelism: 1,
    gpuMemoryUtilization: 0.95,
    maxContextLength: 8192,
    maxNumBatchedTokens: 8192,
    maxNumSeqs: 1024,
    observedKvCacheTokens: 250_304,
  },
  {
    // The vision tower (about 0.4B parameters) stays 16-bit and is not in the text model the
    // config describes: without the safetensors total the weights are under-counted by ~0.9 GiB.
    name: "Mistral Small 3.1 24B W8A8 (compressed-tensors int8, from config.json), 1 x H100, util 0.95 (vLLM 0.19)",
    url: "https://github.com/llm-d-incubation/llm-d-planner/blob/main/accuracy/results/v0.19.0/logs/w8a8-mistral-small-24b--h100-80gb--tp1pp1dp1--8192.log",
    vllmVersion: "0.19.0",
    logFacts:
      "CompressedTensorsW8A8Int8; weights memory 24.07GiB; torch peak increase 2.18GiB; non-torch 0.26GiB; Available KV cache memory 48.73 GiB; GPU KV cache size 319,344 tokens",
    model: hfFixtureModel("RedHatAI/Mistral-Small-3.1-24B-Instruct-2503-quantized.w8a8"),
    gpu: H100,
    quantization: "int8",
    tensorParallelism: 1,
    gpuMemoryUtilization: 0.95,
    maxContextLength: 8192,
    maxNumBatchedTokens: 8192,
    maxNumSeqs: 1024,
    observedKvCacheTokens: 319_344,
  },
  {
    name: "Llama 3.3 70B FP8-dynamic (compressed-tensors W8A8 FP8), 4 x H100, TP 4, util 0.95 (vLLM 0.19)",
    url: "https://github.com/llm-d-incubation/llm-d-planner/blob/main/accuracy/results/v0.19.0/logs/fp8dyn-llama-3-3-70b--h100-80gb--tp4pp1dp1--8192.log",
    vllmVersion: "0.19.0",
    logFacts:
      "CompressedTensorsW8A8Fp8; weights memory 16.96GiB per rank; torch peak increase 1.97GiB; non-torch 2.21GiB; Available KV cache memory 54.09 GiB; GPU KV cache size 708,992 tokens",
    model: catalogueModel("meta-llama/Llama-3.3-70B-Instruct"),
    gpu: H100,
    quantization: "fp8",
    tensorParallelism: 4,
    gpuMemoryUtilization: 0.95,
    maxContextLength: 8192,
    maxNumBatchedTokens: 8192,
    maxNumSeqs: 1024,
    observedKvCacheTokens: 708_992,
  },
  {
    name: "Llama 3 8B, 1 x H100, TP 1, util 0.90 (vLLM 0.6.5)",
    url: "https://github.com/vllm-project/vllm/pull/10511",
    vllmVersion: "0.6.5.dev",
    logFacts:
      "total_gpu_memory 79.22GiB; weights 14.96GiB; non_torch 1.79GiB; activation peak 1.26GiB; available_kv_cache_memory 53.29GiB",
    model: catalogueModel("meta-llama/Meta-Llama-3-8B"),
    // The log reports 79.22 GiB CUDA-visible on this H100 (the catalogue keeps 79.19 from v0.19).
    gpu: { ...H100, cudaVisibleGiB: 79.22 },
    quantization: "none",
    tensorParallelism: 1,
    gpuMemoryUtilization: 0.9,
    maxContextLength: 8192,
    maxNumBatchedTokens: 8192,
    maxNumSeqs: 256,
    // 53.29 GiB / 128 KiB per token = 436,551 -> 27,284 blocks of 16.
    observedKvCacheTokens: 436_544,
  },
  {
    name: "Llama 3 8B, 2 x H100, TP 2, util 0.90 (vLLM 0.6.5)",
    url: "https://github.com/vllm-project/vllm/pull/10511",
    vllmVersion: "0.6.5.dev",
    logFacts:
      "can use 71.29GiB; weights 7.48GiB; non_torch 3.58GiB; activation peak 1.26GiB -> 58.97GiB KV per GPU",
    model: catalogueModel("meta-llama/Meta-Llama-3-8B"),
    gpu: { ...H100, cudaVisibleGiB: 79.22 },
    quantization: "none",
    tensorParallelism: 2,
    gpuMemoryUtilization: 0.9,
    maxContextLength: 8192,
    maxNumBatchedTokens: 8192,
    maxNumSeqs: 256,
    // 58.97 GiB / 64 KiB per token per GPU = 966,164 -> 60,385 blocks of 16.
    observedKvCacheTokens: 966_160,
  },
  {
    name: "Llama 3.1 8B Instruct, 1 x RTX 3090, util 0.90, 20k context (vLLM 0.6.x)",
    url: "https://github.com/vllm-project/vllm/issues/10517",
    vllmVersion: "0.6.x (V0)",
    logFacts:
      "weights 14.9888 GB; total_gpu_memory 23.58GiB; kv_cache_size 3.81GiB; # GPU blocks: 1952; concurrency for 20000 tokens 1.56x",
    model: catalogueModel("meta-llama/Llama-3.1-8B-Instruct"),
    gpu: RTX_3090,
    quantization: "none",
    tensorParallelism: 1,
    gpuMemoryUtilization: 0.9,
    maxContextLength: 20_000,
    maxNumBatchedTokens: 20_000,
    maxNumSeqs: 256,
    observedKvCacheTokens: 1952 * 16,
  },
  {
    name: "Llama 3.1 70B Instruct W8A8 (int8), 1 x 80 GB GPU, util 0.98, 2k context (vLLM 0.7 V1)",
    url: "https://github.com/vllm-project/vllm/pull/12569",
    vllmVersion: "0.7.x (V1)",
    logFacts:
      "weights 67.7229 GB; # GPU blocks: 1381; concurrency for 2048 tokens 10.79x. GPU not named; 67.7 GiB of weights at 0.98 only fit an 80 GB card (H100 assumed)",
    // The thread shows neither the GPU nor the scheduler settings: an 80 GB H100 and V1's large-GPU
    // defaults (8192 batched tokens, 1024 sequences) are assumed. This case is sensitive to them:
    // with 2048 / 256 the estimate would be 29,296 tokens (+33 %).
    model: catalogueModel("neuralmagic/Meta-Llama-3.1-70B-Instruct-quantized.w8a8"),
    gpu: H100,
    quantization: "int8",
    tensorParallelism: 1,
    gpuMemoryUtilization: 0.98,
    maxContextLength: 2048,
    maxNumBatchedTokens: 8192,
    maxNumSeqs: 1024,
    observedKvCacheTokens: 1381 * 16,
  },
  {
    name: "Llama 3.1 8B Instruct, 1 x H100, util 0.95 (vLLM 0.19)",
    url: "https://github.com/llm-d-incubation/llm-d-planner/pull/205",
    vllmVersion: "0.19.0",
    logFacts:
      "Model loading took 14.99 GiB; torch peak increase 1.89GiB; non-torch 0.25GiB; Available KV cache memory 58.11 GiB; GPU KV cache size 476,016 tokens",
    model: catalogueModel("meta-llama/Llama-3.1-8B-Instruct"),
    gpu: H100,
    quantization: "none",
    tensorParallelism: 1,
    gpuMemoryUtilization: 0.95,
    maxContextLength: 8192,
    maxNumBatchedTokens: 8192,
    maxNumSeqs: 1024,
    observedKvCacheTokens: 476_016,
  },
  {
    name: "Qwen2.5 7B Instruct, 1 x H100, util 0.95 (vLLM 0.19)",
    url: "https://github.com/llm-d-incubation/llm-d-planner/pull/205",
    vllmVersion: "0.19.0",
    logFacts:
      "weights 14.25 GiB; torch peak increase 2.21GiB; non-torch 0.24GiB; Available KV cache memory 58.53 GiB; GPU KV cache size 1,096,000 tokens",
    model: catalogueModel("Qwen/Qwen2.5-7B-Instruct"),
    gpu: H100,
    quantization: "none",
    tensorParallelism: 1,
    gpuMemoryUtilization: 0.95,
    maxContextLength: 8192,
    maxNumBatchedTokens: 8192,
    maxNumSeqs: 1024,
    observedKvCacheTokens: 1_096_000,
  },
  {
    // Gemma 2 alternates 4096-token sliding-window layers with global ones; vLLM 0.19 still
    // reports the token count as if every layer kept full context (54.12 GiB / 336 KiB per token).
    name: "Gemma 2 9B it, 1 x H100, util 0.95 (vLLM 0.19)",
    url: "https://github.com/llm-d-incubation/llm-d-planner/blob/main/accuracy/results/v0.19.0/logs/google-gemma-2-9b-it--h100-80gb--tp1pp1dp1--8192.log",
    vllmVersion: "0.19.0",
    logFacts:
      "total_memory 79.19GiB; max_num_batched_tokens 8192, max_num_seqs 1024 (defaults); weights 17.22GiB; torch peak increase 3.65GiB; non-torch 0.25GiB; Available KV cache memory 54.12 GiB; GPU KV cache size 168,880 tokens",
    model: catalogueModel("google/gemma-2-9b-it"),
    gpu: H100,
    quantization: "none",
    tensorParallelism: 1,
    gpuMemoryUtilization: 0.95,
    maxContextLength: 8192,
    maxNumBatchedTokens: 8192,
    maxNumSeqs: 1024,
    observedKvCacheTokens: 168_880,
  },
  {
    name: "Llama 2 7B, 1 x A100 80GB, util 0.90 (vLLM 0.2.5)",
    url: "https://github.com/vllm-project/vllm/pull/2031",
    vllmVersion: "0.2.5",
    logFacts: "Llama2-7B with TP=1 and 1xA100-80GB: # GPU blocks: 7351 (after the peak-memory fix)",
    model: LLAMA_2_7B,
    gpu: catalogueGpu("NVIDIA-A100-SXM4-80GB"),
    quantization: "none",
    tensorParallelism: 1,
    gpuMemoryUtilization: 0.9,
    maxContextLength: 4096,
    maxNumBatchedTokens: 4096,
    maxNumSeqs: 256,
    observedKvCacheTokens: 7351 * 16,
  },
];
