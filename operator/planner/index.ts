/**
 * Public surface of the GPU sizing planner: model and GPU catalogues, the pure sizing functions
 * and their text renderings (used by `gpufleet plan` and the reconciler's placement step).
 */
export {
  MODEL_CATALOGUE,
  defineModel,
  findModel,
  normalizeModelName,
  type AttentionLayout,
  type MixtureOfExperts,
  type ModelArchitecture,
  type ModelArchitectureOverride,
} from "./models.js";
export {
  HfConfigError,
  modelFromHfConfig,
  readQuantization,
  type CheckpointQuantization,
  type HfModel,
  type HfModelOptions,
  type ParameterBreakdown,
} from "./hf-config.js";
export { FULL_GPUS, GPU_CATALOGUE, MIG_SLICES, findGpu, type GpuArchitecture, type GpuSpec } from "./gpus.js";
export {
  DEFAULT_GPU_MEMORY_UTILIZATION,
  ENGINES,
  KV_CACHE_DTYPES,
  QUANTIZATIONS,
  formatPlan,
  kvCacheBytesPerToken,
  vllmKvLayerSlots,
  kvCacheBytesPerTokenPerGpu,
  memoryReserve,
  planAcrossGpus,
  planModel,
  sizingTable,
  weightBytes,
  type AcrossGpusResult,
  type Engine,
  type GpuPool,
  type GpuRejection,
  type KvCacheDtype,
  type MemoryReserve,
  type Plan,
  type PlanError,
  type PlanInput,
  type PlanResult,
  type Quantization,
  type Suggestion,
} from "./plan.js";
