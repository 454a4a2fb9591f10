/**
 * Models bigger than one node: tensor parallelism inside a node, pipeline parallelism across nodes.
 * Pure functions on top of plan.ts (which sizes one node); the reconciler calls `planReplica`.
 *
 * When no tensor-parallel degree lets the model and one full-context sequence fit on one node, the
 * replica is split into PP pipeline stages of TP GPUs each (TP = the largest valid degree up to the
 * node's GPUs), one engine pod per stage, PP pods per replica (a LeaderWorkerSet group). The smallest
 * PP at which every stage fits is chosen: fewer stages mean fewer nodes and less pipeline bubble.
 *
 * What a stage holds (vLLM's split, vllm/distributed/utils.py get_pp_indices): L // PP decoder layers
 * each, the L % PP left over going one each to the stages just before the last (the last stage also
 * carries the LM head and the sampler); the first stage holds the input embedding, the last the LM head
 * (a copy of the embedding when they are tied). Each stage's GPUs hold its layers' weights / TP, the
 * reserve (the sampler's share only on the last stage) and the KV cache of its layers only. Every
 * stage holds the KV of the same tokens, so a replica's KV tokens are the least over its stages.
 */
import { embeddingParameters } from "./models.js";
import { cudaVisibleBytes } from "./gpus.js";
import {
  GiB,
  bytesPerParameter,
  candidateTensorParallelisms,
  gib,
  kvCacheBytesPerToken,
  kvCacheBytesPerTokenPerGpu,
  memoryReserve,
  planModel,
  sglangReserve,
  vllmSchedulerDefaults,
  weightBytes,
  DEFAULT_GPU_MEMORY_UTILIZATION,
  KV_BLOCK_TOKENS,
  type Engine,
  type MemoryReserve,
  type Plan,
  type PlanError,
  type PlanInput,
} from "./plan.js";

/** The most pipeline stages gpufleet plans for one replica (nodes per LeaderWorkerSet group). */
export const MAX_PIPELINE_PARALLELISM = 8;

export interface PipelineStage {
  readonly index: number;
  /** First and last decoder layer of the stage (0-based, inclusive). */
  readonly firstLayer: number;
  readonly lastLayer: number;
  readonly layers: number;
  readonly holdsEmbedding: boolean;
  readonly holdsLmHead: boolean;
  readonly weightBytesPerGpu: number;
  readonly reserveBytesPerGpu: number;
  readonly kvCacheBytesPerGpu: number;
  readonly kvCacheBytesPerTokenPerGpu: number;
  readonly kvCacheTokens: number;
  readonly fits: boolean;
}

/** A plan that may span nodes. Single-node plans have pipelineParallelism 1 and one stage. */
export interface ReplicaPlan extends Plan {
  readonly pipelineParallelism: number;
  /** Engine pods (one per stage, each TP GPUs on one node) that make one replica. */
  readonly nodesPerReplica: number;
  readonly stages: readonly PipelineStage[];
}

export type ReplicaPlanResult = ReplicaPlan | PlanError;

export interface ReplicaPlanInput extends PlanInput {
  /** Ready, schedulable nodes of the pool the replica goes to: the most stages one replica may have. */
  readonly nodesInPool: number;
  /** "auto" (default): split across nodes only when one node cannot hold the model; 1 forbids it; N forces N stages. */
  readonly pipelineParallelism?: "auto" | number;
}

/** Decoder layers per stage as vLLM assigns them (see the header). */
export function pipelineLayerSplit(layers: number, stages: number): number[] {
  const base = Math.floor(layers / stages);
  const split = Array.from({ length: stages }, () => base);
  for (let i = 2; i < 2 + (layers % stages); i++) split[stages - i] = (split[stages - i] ?? 0) + 1;
  return split;
}

interface StageInputs {
  readonly input: ReplicaPlanInput;
  readonly engine: Engine;
  readonly quantization: NonNullable<PlanInput["quantization"]>;
  readonly kvCacheDtype: NonNullable<PlanInput["kvCacheDtype"]>;
  readonly maxContextLength: number;
  readonly gpuMemoryUtilization: number;
  readonly maxNumBatchedTokens: number;
  readonly maxNumSeqs: number;
}

function stageReserve(s: StageInputs, tp: number, last: boolean): MemoryReserve {
  if (s.engine === "sglang") return sglangReserve(tp);
  const full = memoryReserve(s.input.model, tp, s.maxNumBatchedTokens, s.maxNumSeqs);
  if (last) return full;
  // Only the last stage samples: the others hold no logits.
  return { ...full, samplerBytes: 0, totalBytes: full.totalBytes - full.samplerBytes };
}

/** Sizes every stage of a PP x TP split. */
export function evaluateStages(s: StageInputs, tp: number, pp: number): PipelineStage[] {
  const { model } = s.input;
  const total = weightBytes(model, s.quantization);
  // The embedding and LM head stay 16-bit (see weightBytes); the rest is spread over the layers.
  const matrixBytes = model.vocabSize * model.hiddenSize * 2;
  const decoderBytes = Math.max(0, total - embeddingParameters(model) * 2);
  const perTokenWholeModel = kvCacheBytesPerTokenPerGpu(model, s.kvCacheDtype, tp, s.engine);
  const visible = cudaVisibleBytes(s.input.gpu);
  const blockTokens = KV_BLOCK_TOKENS[s.engine];
  const split = pipelineLayerSplit(model.layers, pp);
  const stages: PipelineStage[] = [];
  let firstLayer = 0;
  split.forEach((layers, index) => {
    const holdsEmbedding = index === 0;
    const holdsLmHead = index === pp - 1;
    const stageBytes =
      (decoderBytes * layers) / model.layers + (holdsEmbedding ? matrixBytes : 0) + (holdsLmHead ? matrixBytes : 0);
    const weightBytesPerGpu = stageBytes / tp;
    const reserve = stageReserve(s, tp, holdsLmHead);
    const perToken = (perTokenWholeModel * layers) / model.layers;
    let kvCacheBytesPerGpu: number;
    let usable: number;
    if (s.engine === "tensorrt-llm") {
      usable = visible;
      kvCacheBytesPerGpu = s.gpuMemoryUtilization * (visible - weightBytesPerGpu - reserve.totalBytes);
    } else {
      usable = visible * s.gpuMemoryUtilization;
      kvCacheBytesPerGpu = usable - weightBytesPerGpu - reserve.totalBytes;
    }
    const kvCacheTokens =
      kvCacheBytesPerGpu > 0 && perToken > 0 ? Math.floor(kvCacheBytesPerGpu / (perToken * blockTokens)) * blockTokens : 0;
    stages.push({
      index,
      firstLayer,
      lastLayer: firstLayer + layers - 1,
      layers,
      holdsEmbedding,
      holdsLmHead,
      weightBytesPerGpu,
      reserveBytesPerGpu: reserve.totalBytes,
      kvCacheBytesPerGpu,
      kvCacheBytesPerTokenPerGpu: perToken,
      kvCacheTokens,
      fits: weightBytesPerGpu + reserve.totalBytes < usable && kvCacheTokens >= s.maxContextLength,
    });
    firstLayer += layers;
  });
  return stages;
}

function describeStage(stage: PipelineStage, tp: number): string {
  const extras = [stage.holdsEmbedding ? "embedding" : "", stage.holdsLmHead ? "LM head + sampler" : ""].filter(Boolean);
  return (
    `stage ${stage.index}: layers ${stage.firstLayer}-${stage.lastLayer}${extras.length ? ` + ${extras.join(" + ")}` : ""}, ` +
    `per GPU ${gib(stage.weightBytesPerGpu)} weights + ${gib(stage.reserveBytesPerGpu)} reserve, ${gib(stage.kvCacheBytesPerGpu)} KV = ` +
    `${stage.kvCacheTokens.toLocaleString("en-US")} tokens (x${tp} GPUs)`
  );
}

function singleNode(plan: Plan): ReplicaPlan {
  return {
    ...plan,
    pipelineParallelism: 1,
    nodesPerReplica: 1,
    stages: [
      {
        index: 0,
        firstLayer: 0,
        lastLayer: -1,
        layers: 0,
        holdsEmbedding: true,
        holdsLmHead: true,
        weightBytesPerGpu: plan.weightBytesPerGpu,
        reserveBytesPerGpu: plan.reserve.totalBytes,
        kvCacheBytesPerGpu: plan.kvCacheBytesPerGpu,
        kvCacheBytesPerTokenPerGpu: plan.kvCacheBytesPerTokenPerGpu,
        kvCacheTokens: plan.kvCacheTokensPerReplica,
        fits: true,
      },
    ],
  };
}

/**
 * Sizes one replica: on one node when it fits there (plan.ts), else as PP stages of TP GPUs on PP nodes.
 * Refuses, with what would work, a split the pool has too few nodes for.
 */
export function planReplica(input: ReplicaPlanInput): ReplicaPlanResult {
  const requested = input.pipelineParallelism ?? "auto";
  if (requested !== "auto" && (!Number.isInteger(requested) || requested < 1 || requested > MAX_PIPELINE_PARALLELISM))
    return {
      ok: false,
      code: "invalid-input",
      message: `pipelineParallelism must be "auto" or an integer from 1 to ${MAX_PIPELINE_PARALLELISM} (got ${requested})`,
      suggestions: [],
    };
  const single = requested === "auto" || requested === 1 ? planModel(input) : undefined;
  if (single?.ok) return singleNode(single);
  if (single && (requested === 1 || single.code !== "does-not-fit")) return single;

  const engine = input.engine ?? "vllm";
  const defaults = vllmSchedulerDefaults(input.gpu);
  const s: StageInputs = {
    input,
    engine,
    quantization: input.quantization ?? "none",
    kvCacheDtype: input.kvCacheDtype ?? "auto",
    maxContextLength: input.maxContextLength ?? input.model.maxContextLength,
    gpuMemoryUtilization: input.gpuMemoryUtilization ?? DEFAULT_GPU_MEMORY_UTILIZATION,
    maxNumBatchedTokens: input.maxNumBatchedTokens ?? defaults.maxNumBatchedTokens,
    maxNumSeqs: input.maxNumSeqs ?? defaults.maxNumSeqs,
  };
  const tpRequested = input.tensorParallelism ?? "auto";
  const validTps = candidateTensorParallelisms(input.model, input.gpusPerNode, s.quantization);
  const tp = tpRequested === "auto" ? validTps[validTps.length - 1] : tpRequested;
  if (tp === undefined || !validTps.includes(tp))
    return {
      ok: false,
      code: "invalid-tensor-parallelism",
      message: `${input.model.id} needs more than one node, and no valid tensor-parallel degree ${tpRequested === "auto" ? "" : `(asked ${tpRequested}) `}fits ${input.gpusPerNode}-GPU nodes (valid: ${validTps.join(", ") || "none"})`,
      suggestions: [],
    };
  const maxPp = Math.min(MAX_PIPELINE_PARALLELISM, input.model.layers);
  const tried = requested === "auto" ? Array.from({ length: maxPp - 1 }, (_, i) => i + 2) : [requested];
  let chosen: { pp: number; stages: PipelineStage[] } | undefined;
  let last: { pp: number; stages: PipelineStage[] } | undefined;
  for (const pp of tried) {
    const stages = evaluateStages(s, tp, pp);
    last = { pp, stages };
    if (stages.every((stage) => stage.fits)) {
      chosen = { pp, stages };
      break;
    }
  }
  const singleReason = single && !single.ok ? ` One node: ${single.message}` : "";
  if (!chosen) {
    const worst = last?.stages.reduce((a, b) => (b.kvCacheTokens < a.kvCacheTokens ? b : a));
    return {
      ok: false,
      code: "does-not-fit",
      message:
        `${input.model.id} does not fit ${last?.pp ?? "?"} pipeline stages of ${tp} x ${input.gpu.productLabel}` +
        (worst ? ` (${describeStage(worst, tp)}; context ${s.maxContextLength.toLocaleString("en-US")})` : "") +
        `.${singleReason}`,
      suggestions: single && !single.ok ? single.suggestions : [],
    };
  }
  const { pp, stages } = chosen;
  if (pp > input.nodesInPool)
    return {
      ok: false,
      code: "does-not-fit",
      message:
        `${input.model.id} needs ${pp} nodes per replica (PP ${pp} x TP ${tp} = ${pp * tp} x ${input.gpu.productLabel}) ` +
        `but the ${input.gpu.productLabel} pool has ${input.nodesInPool} ready node${input.nodesInPool === 1 ? "" : "s"}: ` +
        `add nodes to the pool, or allow a GPU or quantization that fits fewer nodes.${singleReason}`,
      suggestions: single && !single.ok ? single.suggestions : [],
    };
  return toReplicaPlan(s, tp, pp, stages, single);
}

/** Why one node at TP `tp` cannot hold the replica, in one clause. */
function oneNodeShortfall(s: StageInputs, tp: number): string {
  const node = `one node of ${s.input.gpusPerNode} x ${s.input.gpu.productLabel}`;
  const weightsPerGpu = weightBytes(s.input.model, s.quantization) / tp;
  const reserve = stageReserve(s, tp, true).totalBytes;
  const visible = cudaVisibleBytes(s.input.gpu);
  const usable = s.engine === "tensorrt-llm" ? visible : visible * s.gpuMemoryUtilization;
  if (weightsPerGpu + reserve >= usable)
    return `${node} cannot hold it: at TP ${tp} each GPU would need ${gib(weightsPerGpu)} of weights + ${gib(reserve)} reserve, ${gib(usable)} usable`;
  return `${node} cannot hold it: at TP ${tp} the KV cache left per GPU holds fewer than ${s.maxContextLength.toLocaleString("en-US")} tokens`;
}

function toReplicaPlan(
  s: StageInputs,
  tp: number,
  pp: number,
  stages: PipelineStage[],
  single: ReturnType<typeof planModel> | undefined,
): ReplicaPlan {
  const { model, gpu } = s.input;
  const kvTokens = Math.min(...stages.map((stage) => stage.kvCacheTokens));
  const maxConcurrent = Math.floor((kvTokens / s.maxContextLength) * 100) / 100;
  const heaviest = stages.reduce((a, b) => (b.weightBytesPerGpu > a.weightBytesPerGpu ? b : a));
  const reserve = stageReserve(s, tp, true);
  const visible = cudaVisibleBytes(gpu);
  const usable = s.engine === "tensorrt-llm" ? visible : visible * s.gpuMemoryUtilization;
  const weightDtype = s.quantization === "none" ? (model.weightDtype === "bfloat16" ? "bf16" : "fp16") : s.quantization;
  const whyNotOne = single && !single.ok ? `${oneNodeShortfall(s, tp)}; ` : "";
  const whyNotFewer = pp > 2 ? `PP ${pp - 1} leaves a stage short; ` : "";
  const explanation =
    `${model.id} (${weightDtype} weights ${gib(weightBytes(model, s.quantization))}): ${whyNotOne}${whyNotFewer}` +
    `planned as PP ${pp} x TP ${tp} = ${pp * tp} x ${gpu.productLabel} on ${pp} nodes (${s.engine}), one pod per stage: ` +
    stages.map((stage) => describeStage(stage, tp)).join("; ") +
    `. A replica holds ${kvTokens.toLocaleString("en-US")} KV tokens (the least stage; ${maxConcurrent} sequences of ${s.maxContextLength.toLocaleString("en-US")} tokens).`;
  return {
    ok: true,
    modelId: model.id,
    gpuId: gpu.id,
    gpuProductLabel: gpu.productLabel,
    engine: s.engine,
    quantization: s.quantization,
    kvCacheDtype: s.kvCacheDtype,
    maxContextLength: s.maxContextLength,
    gpuMemoryUtilization: s.gpuMemoryUtilization,
    tensorParallelism: tp,
    gpusPerReplica: tp * pp,
    bytesPerParameter: bytesPerParameter(s.quantization),
    weightBytesTotal: weightBytes(model, s.quantization),
    weightBytesPerGpu: heaviest.weightBytesPerGpu,
    kvCacheBytesPerToken: kvCacheBytesPerToken(model, s.kvCacheDtype, s.engine),
    kvCacheBytesPerTokenPerGpu: Math.max(...stages.map((stage) => stage.kvCacheBytesPerTokenPerGpu)),
    reserve,
    usableBytesPerGpu: usable,
    kvCacheBytesPerGpu: Math.min(...stages.map((stage) => stage.kvCacheBytesPerGpu)),
    kvCacheTokensPerReplica: kvTokens,
    maxConcurrentFullContextSequences: maxConcurrent,
    warnings: [
      `pipeline parallelism across ${pp} nodes: every request crosses the inter-node network ${pp - 1} time(s) per token; a replica is ${pp} pods that fail and restart together`,
    ],
    explanation,
    pipelineParallelism: pp,
    nodesPerReplica: pp,
    stages,
  };
}

/** GiB, rounded to hundredths (status figures). */
export function roundGiB(bytes: number): number {
  return Math.round((bytes / GiB) * 100) / 100;
}
