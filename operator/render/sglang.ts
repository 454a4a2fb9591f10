import type { KvCacheDtype, Quantization } from "../api/modeldeployment.js";
import { RenderError } from "./errors.js";
import {
  assertNoManagedFlags,
  flagsIn,
  huggingFaceTokenEnv,
  type EngineContainerParts,
  type EngineRenderContext,
  type ModelLocation,
} from "./common.js";

/**
 * The SGLang container (lmsysorg/sglang): `python3 -m sglang.launch_server` with the plan's tensor
 * parallelism (`--tp`), context length (`--context-length`) and static memory fraction
 * (`--mem-fraction-static`: the share of GPU memory for weights and the KV pool, which the planner's
 * SGLang memory model sizes), the served name, port, and `--enable-metrics` for its Prometheus page.
 * Flags as in sgl-project/sglang python/sglang/srt/server_args.py. `/health` answers 200 once the
 * model is loaded, like vLLM's.
 */

/** Pinned release, a published tag of lmsysorg/sglang used by public deployments (e.g. `lmsysorg/sglang:v0.5.9`). */
export const SGLANG_DEFAULT_IMAGE = "lmsysorg/sglang:v0.5.9";
export const SGLANG_METRICS_PATH = "/metrics";
/** SchedulerMetricsCollector gauges (python/sglang/srt/metrics/collector.py): running + queued requests. */
export const SGLANG_IN_FLIGHT_METRICS = ["sglang:num_running_reqs", "sglang:num_queue_reqs"] as const;
/** The Gateway API Inference Extension's built-in engine name for SGLang; see LABELS in index.ts. */
export const SGLANG_GATEWAY_ENGINE_TYPE = "sglang";

/** `--quantization` for an online quantization SGLang applies itself; checkpoint schemes are detected. */
export function sglangQuantization(quantization: Quantization): string | undefined {
  return quantization === "fp8" ? "fp8" : undefined;
}

/** `--kv-cache-dtype`: SGLang takes auto, fp8_e4m3 and fp8_e5m2; 16-bit requests follow the model (auto). */
export function sglangKvCacheDtype(kvCacheDtype: KvCacheDtype): string | undefined {
  switch (kvCacheDtype) {
    case "fp8":
    case "fp8_e4m3":
      return "fp8_e4m3";
    case "fp8_e5m2":
      return "fp8_e5m2";
    default:
      return undefined;
  }
}

function modelArgs(model: ModelLocation): string[] {
  switch (model.kind) {
    case "huggingFace":
      return ["--model-path", model.repo, ...(model.revision ? ["--revision", model.revision] : [])];
    case "pvc":
      return ["--model-path", model.path];
    case "objectStore":
      throw new RenderError(
        "UnsupportedModelSource",
        "engine sglang cannot stream weights from an object store; use a huggingFace or pvc source, or engine vllm",
      );
  }
}

/** SGLang's argparse accepts `--tp` for `--tp-size` and underscores for dashes; compare one spelling. */
export function normalizeSglangFlag(flag: string): string {
  const canonical = flag.startsWith("--") ? `--${flag.slice(2).replaceAll("_", "-")}` : flag;
  return canonical === "--tp" ? "--tp-size" : canonical === "--model" ? "--model-path" : canonical;
}

export function sglangContainerParts(context: EngineRenderContext): EngineContainerParts {
  const { spec, plan, model, image } = context;
  const quantization = sglangQuantization(spec.model.quantization);
  const kvCacheDtype = sglangKvCacheDtype(spec.model.kvCacheDtype);
  const operatorArgs = [
    ...modelArgs(model),
    "--served-model-name",
    spec.model.name,
    "--tp-size",
    String(plan.tensorParallelism),
    "--context-length",
    String(plan.maxContextLength),
    "--mem-fraction-static",
    String(plan.gpuMemoryUtilization),
    ...(quantization ? ["--quantization", quantization] : []),
    ...(kvCacheDtype ? ["--kv-cache-dtype", kvCacheDtype] : []),
    "--enable-metrics",
    "--port",
    String(spec.serving.port),
    "--host",
    "0.0.0.0",
  ];
  const userArgs = spec.engine.args ?? [];
  assertNoManagedFlags(userArgs, flagsIn(operatorArgs), normalizeSglangFlag);
  return {
    image,
    command: ["python3", "-m", "sglang.launch_server"],
    args: [...operatorArgs, ...userArgs],
    env: huggingFaceTokenEnv(model),
    metricsPath: SGLANG_METRICS_PATH,
    inFlightRequestMetrics: SGLANG_IN_FLIGHT_METRICS,
    gatewayEngineType: SGLANG_GATEWAY_ENGINE_TYPE,
  };
}
