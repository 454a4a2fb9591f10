import type { KvCacheDtype, Quantization } from "../api/modeldeployment.js";
import {
  assertNoManagedFlags,
  flagsIn,
  huggingFaceTokenEnv,
  type EngineContainerParts,
  type EngineRenderContext,
  type ModelLocation,
} from "./common.js";
import { LORA_RUNTIME_ENV, loraEnabled, loraModulesOf, vllmLoraArgs } from "./lora.js";

/**
 * The vLLM container (vllm/vllm-openai). The image's entrypoint is vLLM's OpenAI server, which takes
 * `--model` (vllm-project/vllm vllm/entrypoints/cli/serve.py: a positional model would win, the flag is
 * used otherwise), so only `args` are rendered and a simulator image that mimics the entrypoint works too.
 */

/**
 * Pinned release. v0.19.1 is a published tag of vllm/vllm-openai on Docker Hub (pinned, e.g., by public
 * deployments as `vllm/vllm-openai:v0.19.1`); it has float16/bfloat16 KV-cache dtypes and the Run:ai
 * streamer used for object-store URIs.
 */
export const VLLM_DEFAULT_IMAGE = "vllm/vllm-openai:v0.19.1";
export const VLLM_METRICS_PATH = "/metrics";
/** vLLM V1 gauges (vllm/v1/metrics/loggers.py), labelled model_name and engine; summed over engines. */
export const VLLM_IN_FLIGHT_METRICS = ["vllm:num_requests_running", "vllm:num_requests_waiting"] as const;
/** The Gateway API Inference Extension's built-in engine name for vLLM (and its default); see LABELS in index.ts. */
export const VLLM_GATEWAY_ENGINE_TYPE = "vllm";

/**
 * `--quantization` for the spec's weight quantization, or none.
 * - fp8: vLLM quantizes a 16-bit checkpoint to FP8 at load time ("online dynamic quantization").
 * - awq, gptq: omitted. vLLM reads the method from the checkpoint's quantization_config and upgrades it
 *   to the Marlin kernel where the GPU allows; naming `awq` explicitly pins the slower kernel
 *   (AWQMarlinConfig.override_quantization_method: "you specified quantization=awq explicitly, so forcing awq").
 * - int8, int4: omitted. vLLM has no method by those names (its QuantizationMethods list has
 *   compressed-tensors, experts_int8, bitsandbytes, …); INT8 (W8A8) and INT4 (W4A16) checkpoints carry
 *   their scheme in quantization_config and are detected from it.
 */
export function vllmQuantization(quantization: Quantization): string | undefined {
  return quantization === "fp8" ? "fp8" : undefined;
}

/**
 * `--kv-cache-dtype` for the spec's KV-cache dtype, or none for `auto`. vLLM's CacheDType
 * (vllm/config/cache.py) names 16-bit types `float16` / `bfloat16`; `fp8` is E4M3 on CUDA.
 */
export function vllmKvCacheDtype(kvCacheDtype: KvCacheDtype): string | undefined {
  switch (kvCacheDtype) {
    case "auto":
      return undefined;
    case "fp16":
      return "float16";
    case "bf16":
      return "bfloat16";
    case "fp8":
    case "fp8_e4m3":
    case "fp8_e5m2":
      return kvCacheDtype;
  }
}

/**
 * Model argument and loader flags per source. Object-store URIs are streamed by vLLM itself with the
 * Run:ai Model Streamer (`--load-format runai_streamer`, which accepts s3:// and gs:// models; docs.vllm.ai
 * models/extensions/runai_model_streamer) rather than copied by an init container: no second image to pin,
 * no node disk the size of the weights, and weights go to GPU memory while still downloading. Credentials
 * come from the pod's identity (IRSA / Workload Identity) or variables in spec.engine.env.
 */
function modelArgs(model: ModelLocation): string[] {
  switch (model.kind) {
    case "huggingFace":
      return ["--model", model.repo, ...(model.revision ? ["--revision", model.revision] : [])];
    case "pvc":
      return ["--model", model.path];
    case "objectStore":
      return ["--model", model.uri, "--load-format", "runai_streamer"];
  }
}

/**
 * vLLM flags managed whatever the spec, beyond the shared list (operator/api/engine-args.ts), refused at
 * render time. `--scheduling-policy`: spec.engine.schedulingPolicy sets it, and the gateway sends each
 * request's band as `priority` only to pods annotated with that field's value; a policy set in
 * engine.args would be invisible to it, and clients' own priority values would order the queue. (Not in
 * the shared CEL list: that rule's cost estimate is close to the API server's limit.)
 */
const VLLM_ALWAYS_MANAGED = ["--scheduling-policy"] as const;

/** vLLM's short spellings of flags the operator may set (vllm/engine/arg_utils.py). */
const VLLM_ALIAS_TARGET: Readonly<Record<string, string>> = {
  "-tp": "--tensor-parallel-size",
  "-q": "--quantization",
};

/**
 * vLLM's FlexibleArgumentParser accepts `--max_model_len` for `--max-model-len`, and the aliases
 * above; compare flags in one canonical spelling.
 */
export function normalizeVllmFlag(flag: string): string {
  const target = VLLM_ALIAS_TARGET[flag] ?? flag;
  return target.startsWith("--") ? `--${target.slice(2).replaceAll("_", "-")}` : target;
}

export function vllmContainerParts(context: EngineRenderContext): EngineContainerParts {
  const { spec, plan, model, image } = context;
  const quantization = vllmQuantization(spec.model.quantization);
  const kvCacheDtype = vllmKvCacheDtype(spec.model.kvCacheDtype);
  const operatorArgs = [
    ...modelArgs(model),
    "--served-model-name",
    spec.model.name,
    "--tensor-parallel-size",
    String(plan.tensorParallelism),
    "--max-model-len",
    String(plan.maxContextLength),
    "--gpu-memory-utilization",
    String(plan.gpuMemoryUtilization),
    ...(quantization ? ["--quantization", quantization] : []),
    ...(kvCacheDtype ? ["--kv-cache-dtype", kvCacheDtype] : []),
    // The gateway sets each request's `priority` from its tenant's band on pods annotated with this
    // (index.ts podAnnotations, gateway/engine-priority.ts).
    ...(spec.engine.schedulingPolicy === "priority" ? ["--scheduling-policy", "priority"] : []),
    "--port",
    String(spec.serving.port),
    "--host",
    "0.0.0.0",
    ...vllmLoraArgs(spec, context.loraModules ?? loraModulesOf(spec)),
  ];
  const userArgs = spec.engine.args ?? [];
  // Every flag rendered above is the operator's: a repeat later on the command line would silently win in
  // argparse. Flags rendered only for some specs (--quantization, --revision, …) stay free otherwise.
  assertNoManagedFlags(userArgs, [...flagsIn(operatorArgs), ...VLLM_ALWAYS_MANAGED], normalizeVllmFlag);
  return {
    image,
    args: [...operatorArgs, ...userArgs],
    // Adapters are added and removed on running engines through vLLM's runtime endpoints.
    env: [...huggingFaceTokenEnv(model), ...(loraEnabled(spec) ? [{ name: LORA_RUNTIME_ENV, value: "True" }] : [])],
    metricsPath: VLLM_METRICS_PATH,
    inFlightRequestMetrics: VLLM_IN_FLIGHT_METRICS,
    gatewayEngineType: VLLM_GATEWAY_ENGINE_TYPE,
  };
}
