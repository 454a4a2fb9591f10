/**
 * A replica's token throughput at saturation, estimated from what the operator already knows (model,
 * GPU, tensor parallelism): the compute roofline of a forward pass, ~2 FLOPs per active parameter per
 * token (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", C_forward ≈ 2N), at an assumed
 * model FLOPs utilisation. Prefill of long prompts and batched decode both hit this bound; attention
 * over long contexts makes the real figure lower, which the policy's token utilisation target (0.5)
 * and the learned capacity (from pods seen saturated) absorb.
 */

/** Model FLOPs utilisation assumed for prefill-heavy serving (a stated assumption, as in sim/engine). */
export const ASSUMED_PREFILL_MFU = 0.5;
/** Tensor-parallel efficiency assumed for TP > 1 (all-reduce cost), as in sim/engine. */
export const ASSUMED_TENSOR_PARALLEL_EFFICIENCY = 0.85;

export interface ReplicaComputeShape {
  /** Parameters touched per token (the total for dense models). */
  activeParameters: number;
  /** Dense BF16 tensor throughput of one GPU, TFLOPS. */
  denseBf16Tflops: number;
  tensorParallelism: number;
}

/** Tokens per second (prompt + generation) one replica processes at saturation; null if unknown. */
export function estimateReplicaTokenCapacity(shape: ReplicaComputeShape): number | null {
  const { activeParameters, denseBf16Tflops, tensorParallelism } = shape;
  if (!(activeParameters > 0) || !(denseBf16Tflops > 0) || !(tensorParallelism >= 1)) return null;
  const parallel = tensorParallelism === 1 ? 1 : tensorParallelism * ASSUMED_TENSOR_PARALLEL_EFFICIENCY;
  return (denseBf16Tflops * 1e12 * ASSUMED_PREFILL_MFU * parallel) / (2 * activeParameters);
}
