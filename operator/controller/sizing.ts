import type { ModelDeployment } from "../api/modeldeployment.js";
import { findGpu } from "../planner/gpus.js";
import { defineModel, findModel, type ModelArchitecture } from "../planner/models.js";
import { GiB } from "../planner/plan.js";
import { planReplica } from "../planner/pipeline.js";
import { POOL_LABEL, ZONE_LABEL } from "./placement.js";
import type { ResolvedPlan } from "../render/types.js";
import type { GpuPool, SizeResult } from "./placement.js";
import { loraBufferBytes } from "../planner/lora.js";
import { loraEnabled, loraLimits } from "../render/lora.js";
import type { ModelConfigState } from "../hub/resolver.js";
import type { TenantObjectKind, TenantValueState } from "../hub/tenant-objects.js";
import { HfConfigError, modelFromHfConfig } from "../planner/hf-config.js";

export type ArchitectureResult =
  | { known: true; model: ModelArchitecture; source: string }
  | { known: false; message: string; reason: string };

/** How the reconciler sees the Hub: the resolver's synchronous cache lookup (operator/hub/resolver.ts). */
export type ModelConfigLookup = (
  repo: string,
  revision: string | undefined,
  subscriber: string,
  credential?: { readonly fingerprint: string; readonly token: string },
) => ModelConfigState;

/** How the reconciler sees a tenant's Secret or ConfigMap key (operator/hub/tenant-objects.ts). */
export interface TenantValues {
  lookup(kind: TenantObjectKind, namespace: string, name: string, key: string, subscriber: string): TenantValueState;
  /** Whether tokenSecretRef Secrets are read at all (the chart granted `get` on Secrets somewhere). */
  readTokens: boolean;
}

const PROBLEM_REASON = {
  NotFound: "ModelConfigNotFound",
  Forbidden: "ModelConfigUnauthorized",
  TooLarge: "ModelConfigInvalid",
  Unavailable: "ModelConfigUnavailable",
} as const;

/** Names a ModelDeployment gives its model, most specific first, for the catalogue lookup. */
function modelNameCandidates(modelDeployment: ModelDeployment): string[] {
  const { model } = modelDeployment.spec;
  const names: string[] = [];
  if (model.source.huggingFace) names.push(model.source.huggingFace.repo);
  if (model.source.uri) names.push(model.source.uri.replace(/\/+$/, "").split("/").pop() ?? "");
  if (model.source.pvc) names.push(model.source.pvc.path.replace(/\/+$/, "").split("/").pop() ?? "");
  names.push(model.name);
  return names.filter(Boolean);
}

/**
 * The architecture to size, from the most authoritative source that answers: the model's own
 * config.json (read from the Hub for huggingFace sources, with the tenant's token when the operator may
 * read it; from the named ConfigMap for pvc and uri sources), then the spec's inline architecture, then
 * the catalogue of known answers. While that read is pending or failing and nothing else knows the
 * model, the result says why (reason ModelConfigPending / ModelConfig*).
 */
export function resolveArchitecture(
  modelDeployment: ModelDeployment,
  hub?: ModelConfigLookup,
  tenant?: TenantValues,
): ArchitectureResult {
  const namespace = modelDeployment.metadata.namespace ?? "";
  const subscriber = `${namespace}/${modelDeployment.metadata.name}`;
  const { source } = modelDeployment.spec.model;
  let problem: { reason: string; message: string } | undefined;
  if (source.configMap && tenant) {
    const fromConfigMap = configMapArchitecture(tenant, namespace, source.configMap.name, source.configMap.key, subscriber);
    if (fromConfigMap.known) return fromConfigMap;
    problem = { reason: fromConfigMap.reason, message: fromConfigMap.message };
  } else if (source.huggingFace && hub) {
    const { repo, revision, tokenSecretRef } = source.huggingFace;
    let credential: { fingerprint: string; token: string } | undefined;
    if (tokenSecretRef && tenant?.readTokens) {
      const secret = tenant.lookup("Secret", namespace, tokenSecretRef.name, tokenSecretRef.key, subscriber);
      if (secret.state === "ready") credential = { fingerprint: secret.fingerprint, token: secret.value };
      else if (secret.state === "pending") problem = { reason: "ModelConfigPending", message: secret.message };
      else
        problem = {
          reason: PROBLEM_REASON[secret.problem],
          message: `token Secret for ${repo}: ${secret.message}${
            secret.problem === "Forbidden" ? "; list this namespace in the chart's hub.tenantTokenNamespaces" : ""
          }`,
        };
    }
    if (!problem) {
      const state = hub(repo, revision, subscriber, credential);
      if (state.state === "ready") return { known: true, model: state.model.model, source: state.source };
      problem =
        state.state === "pending"
          ? { reason: "ModelConfigPending", message: state.message }
          : { reason: state.reason, message: state.message };
    }
  }
  const inline = inlineArchitecture(modelDeployment);
  if (inline) return inline;
  const catalogued = catalogueArchitecture(modelDeployment);
  if (catalogued) return catalogued;
  if (problem) return { known: false, ...problem };
  const candidates = modelNameCandidates(modelDeployment);
  return {
    known: false,
    reason: "UnknownModel",
    message: `model ${candidates.join(" / ")} is not in gpufleet's catalogue: set spec.model.architecture (parameters, layers, hiddenSize, attentionHeads, kvHeads, maxContextLength, from its config.json), or for pvc and uri sources spec.model.source.configMap (a ConfigMap holding config.json), so it can be sized`,
  };
}

/** Parsed configs by fingerprint: a ConfigMap's config is parsed once per content, not per reconcile. */
const parsedConfigMaps = new Map<string, ArchitectureResult>();

function configMapArchitecture(
  tenant: TenantValues,
  namespace: string,
  name: string,
  key: string,
  subscriber: string,
): ArchitectureResult {
  const state = tenant.lookup("ConfigMap", namespace, name, key, subscriber);
  if (state.state === "pending") return { known: false, reason: "ModelConfigPending", message: state.message };
  if (state.state === "failed") return { known: false, reason: PROBLEM_REASON[state.problem], message: state.message };
  const cached = parsedConfigMaps.get(state.fingerprint);
  if (cached) return cached;
  const where = `ConfigMap ${namespace}/${name} key ${key}`;
  let result: ArchitectureResult;
  try {
    const config: unknown = JSON.parse(state.value);
    const model = modelFromHfConfig(config, { repo: `${namespace}/${name}` });
    result = { known: true, model: model.model, source: `config.json from ${where}` };
  } catch (error) {
    const message =
      error instanceof HfConfigError
        ? error.message
        : error instanceof SyntaxError
          ? "is not JSON"
          : (error as Error).message;
    result = { known: false, reason: "ModelConfigInvalid", message: `${where}: ${message.slice(0, 300)}` };
  }
  parsedConfigMaps.set(state.fingerprint, result);
  if (parsedConfigMaps.size > 256) parsedConfigMaps.delete(parsedConfigMaps.keys().next().value as string);
  return result;
}

function catalogueArchitecture(modelDeployment: ModelDeployment): ArchitectureResult | undefined {
  for (const name of modelNameCandidates(modelDeployment)) {
    const model = findModel(name);
    if (model) return { known: true, model, source: `catalogue entry ${model.id}` };
  }
  return undefined;
}

function inlineArchitecture(modelDeployment: ModelDeployment): ArchitectureResult | undefined {
  const override = modelDeployment.spec.model.architecture;
  if (override) {
    const billions = 1e9;
    try {
      return {
        known: true,
        model: defineModel({
          id: `custom/${modelDeployment.metadata.name}`,
          totalParameters: override.parameters * billions,
          activeParameters: (override.activeParameters ?? override.parameters) * billions,
          layers: override.layers,
          hiddenSize: override.hiddenSize,
          // Without the config's figure, the usual SwiGLU ratio (Llama 2 7B: 11008/4096 ≈ 2.7; Llama 3: 3.5).
          intermediateSize: override.intermediateSize ?? Math.round(override.hiddenSize * 3.5),
          attentionHeads: override.attentionHeads,
          kvHeads: override.kvHeads,
          headDim: override.headDim ?? Math.floor(override.hiddenSize / override.attentionHeads),
          maxContextLength: override.maxContextLength,
          vocabSize: override.vocabSize ?? 32_000,
          tiedEmbeddings: false,
          weightDtype: "bfloat16",
        }),
        source: "spec.model.architecture",
      };
    } catch (error) {
      return {
        known: false,
        reason: "UnknownModel",
        message: `spec.model.architecture: ${(error as Error).message}`,
      };
    }
  }
  return undefined;
}

/** Sizes one replica of the ModelDeployment on one pool's GPUs with the planner. */
export function sizeOnPool(
  modelDeployment: ModelDeployment,
  model: ModelArchitecture,
  pool: GpuPool,
): SizeResult<ResolvedPlan> {
  const gpu = findGpu(pool.gpuProduct);
  if (!gpu)
    return { fits: false, message: `GPU product ${pool.gpuProduct} is not in gpufleet's GPU catalogue` };
  const { spec } = modelDeployment;
  // A checkpoint that ships quantized (its config's quantization_config) is sized as it is, unless
  // the spec asks for a different quantization explicitly.
  const quantization =
    spec.model.quantization === "none" && model.checkpoint
      ? model.checkpoint.quantization
      : spec.model.quantization;
  const result = planReplica({
    model,
    gpu,
    gpusPerNode: pool.gpusPerNode,
    nodesInPool: pool.nodeNames.length,
    pipelineParallelism: spec.gpu.pipelineParallelism ?? "auto",
    quantization,
    kvCacheDtype: spec.model.kvCacheDtype,
    ...(spec.model.maxContextLength ? { maxContextLength: spec.model.maxContextLength } : {}),
    gpuMemoryUtilization: spec.gpu.memoryUtilization,
    tensorParallelism: spec.gpu.tensorParallelism,
    engine: spec.engine.kind,
    ...(loraEnabled(spec)
      ? { loraBytesTotal: loraBufferBytes(model, loraLimits(spec).maxLoras, loraLimits(spec).maxRank) }
      : {}),
  });
  if (!result.ok) return { fits: false, message: result.message };
  return {
    fits: true,
    plan: {
      gpuProduct: pool.gpuProduct,
      gpusPerReplica: result.gpusPerReplica,
      tensorParallelism: result.tensorParallelism,
      maxContextLength: result.maxContextLength,
      kvCacheTokensPerReplica: result.kvCacheTokensPerReplica,
      gpuMemoryUtilization: result.gpuMemoryUtilization,
      modelId: result.modelId,
      weightsGiBPerReplica: Math.round((result.weightBytesTotal / GiB) * 100) / 100,
      ...(result.pipelineParallelism > 1
        ? {
            pipelineParallelism: result.pipelineParallelism,
            stages: result.explanation,
            groupTopologyKeys: [
              ...(pool.poolNames.length ? [POOL_LABEL] : []),
              ...(pool.zones?.length ? [ZONE_LABEL] : []),
            ],
          }
        : {}),
    },
  };
}

/** GPU memory one replica occupies, to rank fits when the user names no GPU order. */
export function gpuMemoryPerReplica(plan: ResolvedPlan): number {
  return (findGpu(plan.gpuProduct)?.memoryMiB ?? Number.MAX_SAFE_INTEGER) * plan.gpusPerReplica;
}
