import type { V1Deployment, V1PodDisruptionBudget, V1Service } from "@kubernetes/client-node";
import type { LoraModule } from "./lora.js";
import type { EngineKind, ModelDeployment } from "../api/modeldeployment.js";

/**
 * The sizing planner's decision for one ModelDeployment, as the renderer needs it. The planner
 * (operator/planner/) produces it; the renderer only turns it into Kubernetes objects.
 */
export interface ResolvedPlan {
  /** `nvidia.com/gpu.product` label value of the chosen GPU, e.g. NVIDIA-H100-80GB-HBM3. */
  gpuProduct: string;
  /** GPUs one replica asks for (tensorParallelism x pipelineParallelism). */
  gpusPerReplica: number;
  tensorParallelism: number;
  /**
   * Pipeline stages of one replica, one pod (of tensorParallelism GPUs) each. Absent or 1: one pod per
   * replica (a Deployment); more: a LeaderWorkerSet group of that many pods (operator/render/leaderworkerset.ts).
   */
  pipelineParallelism?: number;
  /** What each stage holds, for people (status.plan.stages). */
  stages?: string;
  /**
   * Node labels all pods of one group must share (pod affinity on the LeaderWorkerSet group): the pool and,
   * where the pool's nodes carry one, the zone.
   */
  groupTopologyKeys?: string[];
  /** Tokens (prompt + output) one request may span: vLLM `--max-model-len`, trtllm-serve `--max_seq_len`. */
  maxContextLength: number;
  /** KV-cache capacity of one replica, in tokens (carried to the pods for observability and the simulator). */
  kvCacheTokensPerReplica: number;
  /** Share of each GPU's memory the engine may use, from spec.gpu.memoryUtilization. */
  gpuMemoryUtilization: number;
  /** Catalogue id of the model (e.g. llama-3.1-8b) or "custom". */
  modelId: string;
  /**
   * Weight memory of one whole replica (all its GPUs), GiB. Optional: when the planner gives it the
   * startup probe allows load time in proportion; without it the allowance is derived from the GPU count.
   */
  weightsGiBPerReplica?: number;
}

/** Operator-level default images, overriding the pinned `DEFAULT_IMAGES` (spec.engine.image wins over both). */
export interface EngineImages {
  vllm?: string;
  tensorrtLlm?: string;
  sglang?: string;
}

export interface RenderInput {
  /** The ModelDeployment as read from the API server: `metadata.uid` is needed for the owner reference. */
  modelDeployment: ModelDeployment;
  plan: ResolvedPlan;
  images?: EngineImages;
  /** LoRA adapters the pods load at start (default: spec.adapters); see operator/render/lora.ts. */
  loraModules?: readonly LoraModule[];
  /** Replicas of the Deployment when spill-over splits them across products (default spec.replicas). */
  replicas?: number;
}

/** The objects the reconciler server-side-applies for one ModelDeployment. */
export interface RenderedWorkload {
  deployment: V1Deployment;
  service: V1Service;
  podDisruptionBudget: V1PodDisruptionBudget;
}

export type { EngineKind };
