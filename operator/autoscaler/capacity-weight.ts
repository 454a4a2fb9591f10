/**
 * Replicas of one ModelDeployment can differ in capacity: spilled-over replicas run on another GPU
 * product with their own plan (operator/controller/spill.ts), e.g. fewer KV-cache tokens. A KV-cache
 * utilization of 0.9 on a replica with half the tokens is half the load of 0.9 on a full one. The
 * autoscaler counts demand in replicas of the preferred product (status.plan), so each pod's KV-cache
 * utilization is weighted by its KV tokens (the plan annotated on the pod) over the preferred plan's.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { ANNOTATIONS } from "../render/index.js";

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
