import type { ModelDeployment } from "../api/modeldeployment.js";
import { findGpu } from "../planner/gpus.js";
import { defineModel, findModel, type ModelArchitecture } from "../planner/models.js";
import { GiB, planModel } from "../planner/plan.js";
import type { ResolvedPlan } from "../render/types.js";
import type { GpuPool, SizeResult } from "./placement.js";

export type ArchitectureResult = { known: true; model: ModelArchitecture } | { known: false; message: string };

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

/** The architecture to size: the spec's override, else the catalogue entry its repo, path or name matches. */
export function resolveArchitecture(modelDeployment: ModelDeployment): ArchitectureResult {
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
      };
    } catch (error) {
      return { known: false, message: `spec.model.architecture: ${(error as Error).message}` };
    }
  }
  const candidates = modelNameCandidates(modelDeployment);
  for (const name of candidates) {
    const model = findModel(name);
    if (model) return { known: true, model };
  }
  return {
    known: false,
    message: `model ${candidates.join(" / ")} is not in gpufleet's catalogue: set spec.model.architecture (parameters, layers, hiddenSize, attentionHeads, kvHeads, maxContextLength, from its config.json) so it can be sized`,
  };
}

/** Sizes one replica of the ModelDeployment on one pool's GPUs with the planner. */
export function sizeOnPool(modelDeployment: ModelDeployment, model: ModelArchitecture, pool: GpuPool): SizeResult<ResolvedPlan> {
  const gpu = findGpu(pool.gpuProduct);
  if (!gpu) return { fits: false, message: `GPU product ${pool.gpuProduct} is not in gpufleet's GPU catalogue` };
  const { spec } = modelDeployment;
  const result = planModel({
    model,
    gpu,
    gpusPerNode: pool.gpusPerNode,
    quantization: spec.model.quantization,
    kvCacheDtype: spec.model.kvCacheDtype,
    ...(spec.model.maxContextLength ? { maxContextLength: spec.model.maxContextLength } : {}),
    gpuMemoryUtilization: spec.gpu.memoryUtilization,
    tensorParallelism: spec.gpu.tensorParallelism,
    engine: spec.engine.kind,
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
    },
  };
}

/** GPU memory one replica occupies, to rank fits when the user names no GPU order. */
export function gpuMemoryPerReplica(plan: ResolvedPlan): number {
  return (findGpu(plan.gpuProduct)?.memoryMiB ?? Number.MAX_SAFE_INTEGER) * plan.gpusPerReplica;
}
