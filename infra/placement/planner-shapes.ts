import { findGpu, findModel, planModel, type PlanInput } from "../../operator/planner/index.js";
import type { ReplicaShape } from "./types.js";

export interface ShapeRequest {
  /** Planner catalogue id or Hugging Face repo, e.g. `llama-3.1-70b`. */
  model: string;
  /** Cloud accelerator name as offered by the region, e.g. `nvidia-h100-80gb`. */
  gpuProduct: string;
  /** GPUs per node in that region's pool; tensor parallelism stays within a node. Default 8. */
  gpusPerNode?: number;
  /** Sustained tokens/s of one replica: a measured or benchmarked figure the planner cannot know. */
  tokensPerSecondPerReplica: number;
  /** Extra planner options (context length, quantization…). */
  plan?: Partial<Omit<PlanInput, "model" | "gpu" | "gpusPerNode">>;
}

/**
 * A replica shape whose GPU count comes from the sizing planner (`planModel`), or undefined with the
 * planner's reason when the model does not fit on that GPU.
 */
export function replicaShapeFromPlanner(request: ShapeRequest): { shape?: ReplicaShape; reason?: string } {
  const model = findModel(request.model);
  const gpu = findGpu(request.gpuProduct) ?? findGpu(request.gpuProduct.replace(/^nvidia-/i, ""));
  if (model === undefined) return { reason: `unknown model ${request.model}` };
  if (gpu === undefined) return { reason: `unknown GPU ${request.gpuProduct}` };
  const plan = planModel({ ...request.plan, model, gpu, gpusPerNode: request.gpusPerNode ?? 8 });
  if (!plan.ok) return { reason: plan.message };
  return {
    shape: {
      gpuProduct: request.gpuProduct,
      gpusPerReplica: plan.gpusPerReplica,
      tokensPerSecondPerReplica: request.tokensPerSecondPerReplica,
    },
  };
}
