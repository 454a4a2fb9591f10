/**
 * `gpufleet plan`: the operator's own sizing plan for a model on a GPU type, computed locally by
 * operator/planner (the same code the reconciler runs), so what you see is what the operator does.
 */
import { findGpu, GPU_CATALOGUE } from "../planner/gpus.js";
import { findModel, MODEL_CATALOGUE, type ModelArchitecture } from "../planner/models.js";
import { planReplica, type ReplicaPlan } from "../planner/pipeline.js";
import {
  formatPlan,
  gib,
  type Engine,
  type KvCacheDtype,
  type PlanInput,
  type PlanResult,
  type Quantization,
} from "../planner/plan.js";
import { EXIT_ERROR, EXIT_OK, EXIT_USAGE, type PlanCommand } from "./args.js";
import { renderStructured } from "./output.js";

export interface CommandOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** A model read from its own config.json (by the shell: --config FILE or the Hub). */
export interface ResolvedModel {
  model: ModelArchitecture;
  /** Where the architecture came from, printed with the plan. */
  source: string;
}

/**
 * Pure: turns a parsed `plan` command into what to print and the exit code. `resolved` is the model
 * read from its config.json when the shell found one; else the catalogue answers.
 */
export function runPlan(command: PlanCommand, resolved?: ResolvedModel): CommandOutcome {
  const model = resolved?.model ?? findModel(command.model);
  if (!model) {
    const known = MODEL_CATALOGUE.map((entry) => entry.id).join(", ");
    return {
      exitCode: EXIT_USAGE,
      stdout: "",
      stderr: `error: unknown model "${command.model}"; known models: ${known}\n`,
    };
  }
  const gpu = findGpu(command.gpu);
  if (!gpu) {
    const known = GPU_CATALOGUE.filter((entry) => !entry.mig)
      .map((entry) => entry.id)
      .join(", ");
    return {
      exitCode: EXIT_USAGE,
      stdout: "",
      stderr: `error: unknown GPU "${command.gpu}"; known GPUs: ${known} (and their MIG slices)\n`,
    };
  }
  // The planner validates enum values itself and answers `invalid-input`, mapped to a usage error below.
  const input: PlanInput = {
    model,
    gpu,
    gpusPerNode: command.gpusPerNode,
    ...(command.quantization !== undefined
      ? { quantization: command.quantization as Quantization }
      : model.checkpoint
        ? { quantization: model.checkpoint.quantization }
        : {}),
    ...(command.kvCacheDtype !== undefined ? { kvCacheDtype: command.kvCacheDtype as KvCacheDtype } : {}),
    ...(command.engine !== undefined ? { engine: command.engine as Engine } : {}),
    ...(command.maxContextLength !== undefined ? { maxContextLength: command.maxContextLength } : {}),
    ...(command.tensorParallelism !== undefined ? { tensorParallelism: command.tensorParallelism } : {}),
    ...(command.gpuMemoryUtilization !== undefined
      ? { gpuMemoryUtilization: command.gpuMemoryUtilization }
      : {}),
  };
  const result: PlanResult = planReplica({ ...input, nodesInPool: command.nodes ?? 1 });
  const exitCode = result.ok ? EXIT_OK : result.code === "does-not-fit" ? EXIT_ERROR : EXIT_USAGE;
  if (command.output !== "table")
    return { exitCode, stdout: renderStructured(result, command.output), stderr: "" };
  if (result.ok)
    return {
      exitCode,
      stdout: `${resolved ? `source: ${resolved.source}\n` : ""}${formatPlan(result)}\n${formatStages(result as ReplicaPlan)}`,
      stderr: "",
    };
  // The planner's message already names what would fit; -o json|yaml gives the suggestions structured.
  return { exitCode, stdout: "", stderr: `error: ${result.message}\n` };
}

/** One line per pipeline stage of a plan that spans nodes (nothing for a plan on one node). */
export function formatStages(plan: ReplicaPlan): string {
  if (plan.pipelineParallelism <= 1) return "";
  const lines = [`pipeline parallelism ${plan.pipelineParallelism} x TP ${plan.tensorParallelism}: ${plan.nodesPerReplica} pods (nodes) per replica`];
  for (const stage of plan.stages)
    lines.push(
      `  stage ${stage.index}: layers ${stage.firstLayer}-${stage.lastLayer}${stage.holdsEmbedding ? " + embedding" : ""}${stage.holdsLmHead ? " + LM head" : ""}; per GPU ${gib(stage.weightBytesPerGpu)} weights, ${gib(stage.kvCacheBytesPerGpu)} KV = ${stage.kvCacheTokens.toLocaleString("en-US")} tokens`,
    );
  return `${lines.join("\n")}\n`;
}
