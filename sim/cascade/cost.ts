/**
 * $ per request of a model, from the replica the operator would deploy: the planner's GPUs per replica
 * (operator/planner via sim/eval/hardware.ts) and the engine model's step costs, priced per GPU-hour.
 *
 * A replica's time per request = prompt tokens × prefill time per token + output tokens × decode time
 * per token at full batch. The decode time is measured once per model by running a saturated replica of
 * the engine model (sim/engine/model.ts): 512 requests of 256 prompt + 256 output tokens at once.
 */
import { EngineModel } from "../engine/model.js";
import { replicaFor } from "../eval/hardware.js";

export interface ReplicaCost {
  model: string;
  gpu: string;
  gpusPerReplica: number;
  usdPerGpuHour: number;
  prefillSecondsPerToken: number;
  decodeSecondsPerToken: number;
}

export function replicaCost(model: string, gpu: string, usdPerGpuHour: number): ReplicaCost {
  const replica = replicaFor(model, gpu, { maxContextLength: 8192 });
  const engine = new EngineModel(replica.params, { tokenEvents: false });
  const n = 512;
  const prompt = 256;
  const output = 256;
  for (let i = 0; i < n; i++)
    engine.enqueue({ id: `r${i}`, promptTokens: prompt, maxOutputTokens: output, arrivalMs: 0 });
  let doneMs = 0;
  let finished = 0;
  for (let t = 1000; finished < n && t < 3600_000; t += 1000)
    for (const ev of engine.advanceTo(t))
      if (ev.kind === "finished") {
        finished++;
        doneMs = Math.max(doneMs, ev.atMs);
      }
  if (finished < n) throw new Error(`cost probe for ${model} did not finish`);
  const prefillSecondsPerToken = replica.params.computeMsPerToken / 1000;
  const decodeSecondsPerToken =
    Math.max(0, doneMs / 1000 - n * prompt * prefillSecondsPerToken) / (n * output);
  return {
    model: replica.modelName,
    gpu: replica.gpuName,
    gpusPerReplica: replica.gpusPerReplica,
    usdPerGpuHour,
    prefillSecondsPerToken,
    decodeSecondsPerToken,
  };
}

/** Dollars for one request of `promptTokens` in and `outputTokens` out. */
export function requestUsd(cost: ReplicaCost, promptTokens: number, outputTokens: number): number {
  const replicaSeconds =
    promptTokens * cost.prefillSecondsPerToken + outputTokens * cost.decodeSecondsPerToken;
  return (replicaSeconds * cost.gpusPerReplica * cost.usdPerGpuHour) / 3600;
}
