import type { AdapterSpec, ModelDeploymentSpec } from "../api/modeldeployment.js";

/**
 * LoRA serving with vLLM. Facts used (vllm-project/vllm):
 * - `--enable-lora`, `--max-loras` (adapters one batch may mix, GPU slots), `--max-lora-rank` (slots are
 *   sized for it; accepted values in vllm/config/lora.py), `--lora-modules name=path ...` (adapters
 *   loaded at start; a path or a Hub repository id).
 * - Runtime updates: POST /v1/load_lora_adapter {lora_name, lora_path} and POST
 *   /v1/unload_lora_adapter {lora_name}, served only when the server runs with
 *   VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (vllm/entrypoints/openai, docs.vllm.ai features/lora).
 * - GET /v1/models lists the loaded adapters next to the base model, each with `parent` = base name.
 */
export const LORA_RUNTIME_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING";
export const LOAD_ADAPTER_PATH = "/v1/load_lora_adapter";
export const UNLOAD_ADAPTER_PATH = "/v1/unload_lora_adapter";
export const DEFAULT_MAX_LORAS = 4;
export const DEFAULT_MAX_LORA_RANK = 64;

export interface LoraModule {
  name: string;
  /** What vLLM's lora_path takes: a directory in the container or a Hub repository id. */
  path: string;
}

/** LoRA is on when the spec lists adapters or sets `lora` (so the last adapter's removal does not restart). */
export function loraEnabled(spec: Pick<ModelDeploymentSpec, "adapters" | "lora" | "engine">): boolean {
  return spec.engine.kind === "vllm" && (!!spec.lora || (spec.adapters?.length ?? 0) > 0);
}

export function loraLimits(spec: Pick<ModelDeploymentSpec, "lora">): { maxLoras: number; maxRank: number } {
  return { maxLoras: spec.lora?.maxLoras ?? DEFAULT_MAX_LORAS, maxRank: spec.lora?.maxRank ?? DEFAULT_MAX_LORA_RANK };
}

export function adapterPath(adapter: Pick<AdapterSpec, "source">): string {
  return adapter.source.huggingFace?.repo ?? adapter.source.path ?? "";
}

export function loraModulesOf(spec: Pick<ModelDeploymentSpec, "adapters">): LoraModule[] {
  return (spec.adapters ?? []).map((adapter) => ({ name: adapter.name, path: adapterPath(adapter) }));
}

/** `--lora-modules` values as vLLM parses them: `name=path`. */
export function loraModuleArg(module: LoraModule): string {
  return `${module.name}=${module.path}`;
}

/** The engine flags for LoRA; `startModules` are the adapters the pods load at start. */
export function vllmLoraArgs(spec: ModelDeploymentSpec, startModules: readonly LoraModule[]): string[] {
  if (!loraEnabled(spec)) return [];
  const { maxLoras, maxRank } = loraLimits(spec);
  return [
    "--enable-lora",
    "--max-loras",
    String(maxLoras),
    "--max-lora-rank",
    String(maxRank),
    ...(startModules.length ? ["--lora-modules", ...startModules.map(loraModuleArg)] : []),
  ];
}

/**
 * The `--lora-modules` values in a container's args (the adapters a running pod template starts with),
 * or undefined when the args carry none. Parses only what `vllmLoraArgs` writes.
 */
export function startModulesInArgs(args: readonly string[] | undefined): LoraModule[] | undefined {
  if (!args) return undefined;
  const at = args.indexOf("--lora-modules");
  if (at === -1) return undefined;
  const modules: LoraModule[] = [];
  for (const value of args.slice(at + 1)) {
    if (value.startsWith("-")) break;
    const equals = value.indexOf("=");
    if (equals <= 0) break;
    modules.push({ name: value.slice(0, equals), path: value.slice(equals + 1) });
  }
  return modules;
}
