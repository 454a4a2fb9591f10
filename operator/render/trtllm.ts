import type { KvCacheDtype } from "../api/modeldeployment.js";
import {
  assertNoManagedFlags,
  flagsIn,
  huggingFaceTokenEnv,
  type EngineContainerParts,
  type EngineRenderContext,
  type ModelLocation,
} from "./common.js";
import { RenderError } from "./errors.js";

/**
 * The TensorRT-LLM container: NVIDIA's release image running `trtllm-serve`, the OpenAI-compatible
 * server of TensorRT-LLM. Flag names are those of NVIDIA/TensorRT-LLM tensorrt_llm/commands/serve.py
 * (click options `--tp_size`/`--tensor_parallel_size`, `--max_seq_len`,
 * `--kv_cache_free_gpu_memory_fraction`/`--free_gpu_memory_fraction`, `--backend`, `--revision`,
 * `--extra_llm_api_options`/`--config`; read at commit 00209af149e7774406881a37283dce303571eb11);
 * `trtllm-serve <model>` is routed to its `serve` subcommand by its DefaultGroup.
 *
 * Quantization is not a trtllm-serve flag: the PyTorch backend reads it from the checkpoint (ModelOpt's
 * hf_quant_config.json), so spec.model.quantization only informs sizing; point the source at a
 * pre-quantized checkpoint (e.g. nvidia/Llama-3.1-70B-Instruct-FP8). trtllm-serve has no served-model-name
 * flag either: it reports the model argument as the model id (the pod annotation carries spec.model.name).
 */

/** Pinned release: TensorRT-LLM 1.2 (release notes in docs/source/release-notes.md), NGC tag 1.2.1. */
export const TRTLLM_DEFAULT_IMAGE = "nvcr.io/nvidia/tensorrt-llm/release:1.2.1";
/**
 * Prometheus text lives on `/prometheus/metrics`, mounted only when `return_perf_metrics` is set; `/metrics`
 * is JSON iteration stats (tensorrt_llm/serve/openai_server.py, mount_metrics, at commit
 * 00057725d9a6591f033e44f31c219e2426827bb7).
 */
export const TRTLLM_METRICS_PATH = "/prometheus/metrics";
/** MetricsCollector gauges (tensorrt_llm/metrics/collector.py, prefix `trtllm_`, at commit 050f80def8df236e326949c8bd9dee10fd896a83). */
export const TRTLLM_IN_FLIGHT_METRICS = [
  "trtllm_num_requests_running",
  "trtllm_num_requests_waiting",
] as const;
/** The Gateway API Inference Extension's built-in engine name for trtllm-serve; see LABELS in index.ts. */
export const TRTLLM_GATEWAY_ENGINE_TYPE = "trtllm-serve";

/** Where the wrapper writes the LLM API options file trtllm-serve reads. */
export const TRTLLM_OPTIONS_PATH = "/tmp/gpufleet/llm-api-options.yaml";

/**
 * `kv_cache_config.dtype` (a PyTorch-backend field of KvCacheConfig in tensorrt_llm/llmapi/llm_args.py),
 * or none. FP8 there is E4M3; E5M2 has no TensorRT-LLM KV-cache kernel, so it is refused rather than
 * silently changed. fp16/bf16 are left to `auto`, which keeps the cache in the 16-bit model dtype.
 */
export function trtllmKvCacheDtype(kvCacheDtype: KvCacheDtype): string | undefined {
  switch (kvCacheDtype) {
    case "auto":
    case "fp16":
    case "bf16":
      return undefined;
    case "fp8":
    case "fp8_e4m3":
      return "fp8";
    case "fp8_e5m2":
      throw new RenderError(
        "UnsupportedKvCacheDtype",
        "kvCacheDtype fp8_e5m2 is not supported by tensorrt-llm (its FP8 KV cache is E4M3); use fp8 or fp8_e4m3",
      );
  }
}

/**
 * The LLM API options file. `return_perf_metrics` mounts `/prometheus/metrics` and
 * `enable_iter_perf_stats` feeds its iteration gauges (KV-cache utilization, running and waiting
 * requests) that the autoscaler and the preStop drain read. The KV fraction is repeated here because
 * older releases let the file's kv_cache_config replace the one built from the CLI flags.
 */
export function trtllmLlmApiOptions(gpuMemoryFraction: number, kvCacheDtype: string | undefined): string {
  return [
    "return_perf_metrics: true",
    "enable_iter_perf_stats: true",
    "kv_cache_config:",
    `  free_gpu_memory_fraction: ${gpuMemoryFraction}`,
    ...(kvCacheDtype ? [`  dtype: ${kvCacheDtype}`] : []),
    "",
  ].join("\n");
}

/**
 * ConfigMap-free: a POSIX shell writes the options file, then execs trtllm-serve with the container args
 * (`"$@"`, `$0` = trtllm-serve), so the engine is PID 1's replacement and receives SIGTERM directly. The
 * content comes from `trtllmLlmApiOptions` (fixed keys, numbers, enum values), quoted heredoc: no expansion.
 */
export function trtllmCommand(options: string, optionsPath: string = TRTLLM_OPTIONS_PATH): string[] {
  const directory = optionsPath.slice(0, optionsPath.lastIndexOf("/"));
  const script = `mkdir -p ${directory} && cat > ${optionsPath} <<'GPUFLEET_EOF'\n${options}GPUFLEET_EOF\nexec trtllm-serve "$@"\n`;
  return ["/bin/sh", "-c", script, "trtllm-serve"];
}

function modelArgs(model: ModelLocation): string[] {
  switch (model.kind) {
    case "huggingFace":
      return [model.repo, ...(model.revision ? ["--revision", model.revision] : [])];
    case "pvc":
      return [model.path];
    case "objectStore":
      // trtllm-serve loads from a local path or the Hugging Face Hub only; streaming from object storage
      // would need an init container copying the weights to node disk first (not offered yet).
      throw new RenderError(
        "UnsupportedModelSource",
        `engine tensorrt-llm cannot load ${model.uri}: trtllm-serve reads Hugging Face repos or local paths; use source.pvc or source.huggingFace, or engine vllm`,
      );
  }
}

/** click's second spellings of the options the operator sets. */
const TRTLLM_ALIAS_TARGET: Readonly<Record<string, string>> = {
  "--tensor_parallel_size": "--tp_size",
  "--free_gpu_memory_fraction": "--kv_cache_free_gpu_memory_fraction",
  "--config": "--extra_llm_api_options",
};

export function normalizeTrtllmFlag(flag: string): string {
  return TRTLLM_ALIAS_TARGET[flag] ?? flag;
}

export function trtllmContainerParts(context: EngineRenderContext): EngineContainerParts {
  const { spec, plan, model, image } = context;
  const kvCacheDtype = trtllmKvCacheDtype(spec.model.kvCacheDtype);
  const operatorArgs = [
    ...modelArgs(model),
    "--host",
    "0.0.0.0",
    "--port",
    String(spec.serving.port),
    // The PyTorch backend is the default since 1.0; named so the options file's PyTorch-only fields apply.
    "--backend",
    "pytorch",
    "--tp_size",
    String(plan.tensorParallelism),
    "--max_seq_len",
    String(plan.maxContextLength),
    // Not the same measure as vLLM's --gpu-memory-utilization: a share of the memory left after weights
    // and activations, given to the KV cache. The planner's utilization is the closest operator knob.
    "--kv_cache_free_gpu_memory_fraction",
    String(plan.gpuMemoryUtilization),
    "--extra_llm_api_options",
    TRTLLM_OPTIONS_PATH,
  ];
  const userArgs = spec.engine.args ?? [];
  // A second --extra_llm_api_options would replace ours and drop the metrics the autoscaler needs.
  assertNoManagedFlags(userArgs, flagsIn(operatorArgs), normalizeTrtllmFlag);
  return {
    image,
    command: trtllmCommand(trtllmLlmApiOptions(plan.gpuMemoryUtilization, kvCacheDtype)),
    args: [...operatorArgs, ...userArgs],
    env: huggingFaceTokenEnv(model),
    metricsPath: TRTLLM_METRICS_PATH,
    inFlightRequestMetrics: TRTLLM_IN_FLIGHT_METRICS,
    gatewayEngineType: TRTLLM_GATEWAY_ENGINE_TYPE,
  };
}
