/**
 * Replicas of one ModelDeployment can differ in capacity: spilled-over replicas run on another GPU
 * product with their own plan (operator/controller/spill.ts), e.g. fewer KV-cache tokens, or a slower
 * GPU. A KV-cache utilization of 0.9 on a replica with half the tokens is half the load of 0.9 on a
 * full one; 1,000 tokens/s on an A100 replica (312 dense BF16 TFLOPS) is what ~3,200 would be on an
 * H100 one (989). The autoscaler counts demand in replicas of the preferred product (status.plan):
 * each pod's KV-cache utilization is weighted by its KV tokens (the plan annotated on the pod) over the
 * preferred plan's, and each pod's token rate by its plan's token throughput over the preferred plan's
 * (capacity.ts's estimate: GPU TFLOPS x GPUs per replica; the model is the same, so only the ratio counts).
 */
import type { V1Pod } from "@kubernetes/client-node";
import { findGpu } from "../planner/gpus.js";
import { ANNOTATIONS } from "../render/index.js";
import { podCompute, type PodCompute } from "../metrics/scrape.js";
import { estimateReplicaTokenCapacity } from "./capacity.js";

/** Weight of one pod's KV utilization: its KV tokens over the reference replica's, within [0.05, 20]; 1 when unknown. */
export function kvCapacityWeight(pod: V1Pod, referenceKvTokens: number | undefined): number {
  const own = Number(pod.metadata?.annotations?.[ANNOTATIONS.kvCacheTokens]);
  if (!referenceKvTokens || !(referenceKvTokens > 0) || !Number.isFinite(own) || own <= 0) return 1;
  return Math.min(20, Math.max(0.05, own / referenceKvTokens));
}

/** The sample with its KV-cache utilization in units of the reference replica's capacity. */
export function weighKvUtilization<S extends { kvCacheUtilization: number }>(sample: S, weight: number): S {
  return weight === 1 ? sample : { ...sample, kvCacheUtilization: sample.kvCacheUtilization * weight };
}

/**
 * A replica's token throughput relative to any other of the same model: capacity.ts's estimate per active
 * parameter (the model cancels out of every ratio). Undefined for a GPU product not in the catalogue.
 */
export function relativeTokenThroughput(compute: PodCompute | undefined): number | undefined {
  const gpu = compute ? findGpu(compute.gpuProduct) : undefined;
  if (!gpu || !compute) return undefined;
  return estimateReplicaTokenCapacity({ activeParameters: 1, denseBf16Tflops: gpu.denseBf16Tflops, tensorParallelism: compute.gpusPerReplica }) ?? undefined;
}

/**
 * Weight of one pod's token rate: its plan's token throughput over the reference plan's (status.plan),
 * within [0.05, 20]; 1 when either is unknown.
 */
export function throughputWeight(pod: V1Pod, reference: PodCompute | undefined): number {
  const own = relativeTokenThroughput(podCompute(pod));
  const ref = relativeTokenThroughput(reference);
  if (own === undefined || ref === undefined || !(ref > 0)) return 1;
  return Math.min(20, Math.max(0.05, own / ref));
}
