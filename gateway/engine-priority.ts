/**
 * A request's priority band passed on to the engine's own scheduler (issue 14). The gateway's hold queue
 * releases the highest band first, but once requests are in an engine's waiting queue they are served in
 * arrival order, unless the engine schedules by priority: vLLM run with `--scheduling-policy priority`
 * (ModelDeployment `spec.engine.schedulingPolicy: priority`) orders its waiting queue by the request
 * body's `priority` field, a LOWER value first, ties by arrival, and preempts the largest value first
 * when its KV cache runs out. Source: vLLM's OpenAI request models, `priority: int = 0`, "The priority of
 * the request (lower means earlier handling; default: 0). Any priority other than 0 will raise an error
 * if the served model does not use priority scheduling." (vllm/entrypoints/openai/protocol.py), and
 * SchedulerPolicy fcfs | priority (vllm/config/scheduler.py).
 *
 * So the field goes only to pods that run that policy, as the operator annotates them (a vLLM FCFS pod
 * would answer 400 to a non-zero value; TensorRT-LLM and SGLang have no such field): per pod, so during
 * a rollout that turns the policy on the old pods get the body unchanged. On those pods the gateway's
 * value replaces any `priority` the client sent, so a tenant cannot buy its way up the engine's queue.
 */
import { MAX_PRIORITY } from "../operator/api/tenancy.js";
import type { ScrapeTarget } from "../operator/metrics/scrape.js";
import { SHEDDABLE_PRIORITY } from "./tenancy/core.js";

/**
 * vLLM's `priority` for a gpufleet band (UsageTier.priority, 0..MAX_PRIORITY; SHEDDABLE_PRIORITY for
 * requests admitted over a Sheddable tier's limit; 0 without tenancy): the band negated, so a higher
 * band is scheduled first, bounded to [-MAX_PRIORITY, -SHEDDABLE_PRIORITY]. Band 0 gives 0, vLLM's default.
 */
export function vllmPriorityForBand(band: number): number {
  if (!Number.isFinite(band)) return 0;
  const bounded = Math.min(MAX_PRIORITY, Math.max(SHEDDABLE_PRIORITY, Math.round(band)));
  return bounded === 0 ? 0 : -bounded;
}

/** Whether requests sent to this pod carry their band in `priority`: a vLLM pod annotated as scheduling by priority. */
export function schedulesByPriority(target: ScrapeTarget): boolean {
  return target.engine === "vllm" && target.schedulingPolicy === "priority";
}

/** JSON whitespace (RFC 8259): space, tab, line feed, carriage return. */
function isJsonWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

/**
 * `body` (a JSON object that parsed, with at least its `model` member) with its top-level `priority` set
 * to `value`. When the client sent no `priority`, the member is added before the closing brace and the
 * client's bytes are kept as they are; value 0 then needs nothing (vLLM's default). When it sent one,
 * the body is parsed and serialized again with the gateway's value in its place.
 */
export function withEnginePriority(body: Buffer, value: number, clientSentPriority: boolean): Buffer {
  if (!Number.isSafeInteger(value)) throw new Error(`engine priority must be an integer, not ${value}`);
  if (clientSentPriority) {
    const fields = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
    fields.priority = value;
    return Buffer.from(JSON.stringify(fields));
  }
  if (value === 0) return body;
  let end = body.length - 1;
  while (end >= 0 && isJsonWhitespace(body[end] as number)) end--;
  if (end < 1 || body[end] !== 0x7d) throw new Error("the request body is not a JSON object");
  let last = end - 1;
  while (last >= 0 && isJsonWhitespace(body[last] as number)) last--;
  const member = `${body[last] === 0x7b ? "" : ","}"priority":${value}`;
  return Buffer.concat([body.subarray(0, end), Buffer.from(member), body.subarray(end)]);
}
