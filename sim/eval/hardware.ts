/**
 * Builds engine-model parameters from the planner's catalogue and sizing (operator/planner/), so
 * the evaluation simulates exactly the replica the operator would deploy.
 */
import { findGpu } from "../../operator/planner/gpus.js";
import { findModel } from "../../operator/planner/models.js";
import { planModel, vllmSchedulerDefaults, type Plan } from "../../operator/planner/plan.js";
import { estimateReplicaTokenCapacity } from "../../operator/autoscaler/capacity.js";
import { engineParamsFor, type EngineParams, type EngineTuning } from "../engine/model.js";

export interface ReplicaSpec {
  modelName: string;
  gpuName: string;
  params: EngineParams;
  gpusPerReplica: number;
  plan: Plan;
  /** The token capacity the operator would hand the policy for this replica (operator/autoscaler/loop.ts). */
  replicaTokenCapacityPerSecond: number | null;
}

export interface ReplicaOptions {
  /** Longest prompt + output to serve (smaller values let a model fit on fewer GPUs). */
  maxContextLength?: number;
  tensorParallelism?: number;
  gpusPerNode?: number;
  tuning?: Partial<EngineTuning>;
}

export function replicaFor(modelName: string, gpuName: string, options: ReplicaOptions = {}): ReplicaSpec {
  const model = findModel(modelName);
  if (!model) throw new Error(`unknown model ${modelName}`);
  const gpu = findGpu(gpuName);
  if (!gpu) throw new Error(`unknown GPU ${gpuName}`);
  const plan = planModel({
    model,
    gpu,
    gpusPerNode: options.gpusPerNode ?? 8,
    ...(options.maxContextLength !== undefined ? { maxContextLength: options.maxContextLength } : {}),
    ...(options.tensorParallelism !== undefined ? { tensorParallelism: options.tensorParallelism } : {}),
  });
  if (!plan.ok) throw new Error(`cannot plan ${modelName} on ${gpuName}: ${plan.message}`);
  const kvElementBytes = plan.kvCacheBytesPerToken / (2 * model.layers * model.kvHeads * model.headDim);
  const scheduler = vllmSchedulerDefaults(gpu);
  const params = engineParamsFor(
    {
      name: model.id,
      paramsBillion: model.totalParameters / 1e9,
      activeParamsBillion: model.activeParameters / 1e9,
      layers: model.layers,
      kvHeads: model.kvHeads,
      headDim: model.headDim,
      bytesPerParam: plan.bytesPerParameter,
      kvBytesPerElement: kvElementBytes,
      maxContextTokens: plan.maxContextLength,
    },
    {
      name: gpu.productLabel,
      memoryGiB: gpu.memoryGiB,
      memoryBandwidthGBps: gpu.memoryBandwidthGBps,
      bf16DenseTflops: gpu.denseBf16Tflops,
    },
    { tensorParallelSize: plan.tensorParallelism, kvCacheTokensPerReplica: plan.kvCacheTokensPerReplica },
    {
      maxNumSeqs: scheduler.maxNumSeqs,
      maxNumBatchedTokens: scheduler.maxNumBatchedTokens,
      ...options.tuning,
    },
  );
  return {
    modelName: model.id,
    gpuName: gpu.productLabel,
    params,
    gpusPerReplica: plan.gpusPerReplica,
    plan,
    replicaTokenCapacityPerSecond: estimateReplicaTokenCapacity({
      activeParameters: model.activeParameters,
      denseBf16Tflops: gpu.denseBf16Tflops,
      tensorParallelism: plan.tensorParallelism,
    }),
  };
}
