/**
 * The cascade's decision, as pure functions of (prompt features, the small model's confidence, tier,
 * thresholds): where a request starts (`startStep`), whether an answer is confident enough to keep
 * (`keepAnswer`), and the whole path for replay (`decideCascade`, what `npm run bench:cascade -- --replay`
 * runs over a CSV of per-prompt outcomes). The gateway (gateway/cascade/serve.ts) and the benchmark call
 * the same functions.
 */
import type { ConfidenceMetric, StreamingMode } from "../../operator/api/modelroute.js";

export interface CascadeStep {
  /** The model name the step answers as (its ModelDeployment's spec.model.name). */
  model: string;
  maxPromptTokens?: number;
}

/** A ModelRoute's rules, resolved (defaults filled in). */
export interface CascadeRules {
  steps: readonly CascadeStep[];
  largeForTiers: readonly string[];
  confidence?: { firstTokens: number; metric: ConfidenceMetric; minLogprob: number };
  streaming: StreamingMode;
}

export interface PromptFeatures {
  /** Estimated prompt tokens (characters / 4, like the gateway's picker). */
  promptTokens: number;
  /** The caller's usage tier, if tenancy is on. */
  tier?: string;
  stream?: boolean;
}

export type StartReason = "tier" | "prompt-length" | "stream-last" | "first";

export interface StartDecision {
  step: number;
  reason: StartReason;
  /** Whether the answer of `step` goes through the confidence gate. */
  gated: boolean;
}

/** Rough prompt tokens from characters (about 4 per token for English text, as the picker assumes). */
export function estimateTokens(chars: number): number {
  return Math.max(1, Math.ceil(chars / 4));
}

/** Where a request starts, before any model has answered. */
export function startStep(features: PromptFeatures, rules: CascadeRules): StartDecision {
  const last = rules.steps.length - 1;
  if (features.tier !== undefined && rules.largeForTiers.includes(features.tier))
    return { step: last, reason: "tier", gated: false };
  let step = 0;
  while (step < last) {
    const max = rules.steps[step]?.maxPromptTokens;
    if (max === undefined || features.promptTokens <= max) break;
    step++;
  }
  const reason: StartReason = step > 0 ? "prompt-length" : "first";
  if (step === last || rules.confidence === undefined) return { step, reason, gated: false };
  if (features.stream === true) {
    if (rules.streaming === "last") return { step: last, reason: "stream-last", gated: false };
    if (rules.streaming === "first") return { step, reason, gated: false };
  }
  return { step, reason, gated: true };
}

/**
 * One confidence from an answer's token logprobs (natural log): the mean or the minimum over the first
 * `firstTokens` tokens. Undefined when there are none (the gate then escalates: no evidence).
 */
export function confidenceOf(
  logprobs: readonly number[],
  metric: ConfidenceMetric,
  firstTokens: number,
): number | undefined {
  const head = logprobs
    .slice(0, Math.max(1, firstTokens))
    .filter((x) => Number.isFinite(x) || x === -Infinity);
  if (head.length === 0) return undefined;
  if (metric === "min") return Math.min(...head);
  return head.reduce((a, b) => a + b, 0) / head.length;
}

/** Whether an answer with this confidence is kept (true) or escalated to the next step (false). */
export function keepAnswer(confidence: number | undefined, minLogprob: number): boolean {
  return confidence !== undefined && confidence >= minLogprob;
}

export interface CascadeDecision {
  /** The step whose answer the client gets. */
  answeredBy: number;
  /** Steps that generated (at least the gate's first tokens), in order; the last one answered. */
  tried: number[];
  reason: StartReason | "confident" | "low-confidence";
}

/**
 * The whole path of one request, given each step's confidence on it (as the gate would measure it;
 * `confidenceAt(step)`). Replays a data set of per-prompt outcomes without a gateway.
 */
export function decideCascade(
  features: PromptFeatures,
  confidenceAt: (step: number) => number | undefined,
  rules: CascadeRules,
): CascadeDecision {
  const start = startStep(features, rules);
  if (!start.gated) return { answeredBy: start.step, tried: [start.step], reason: start.reason };
  const gate = rules.confidence as NonNullable<CascadeRules["confidence"]>;
  const last = rules.steps.length - 1;
  const tried: number[] = [];
  for (let step = start.step; step < last; step++) {
    tried.push(step);
    if (keepAnswer(confidenceAt(step), gate.minLogprob))
      return { answeredBy: step, tried, reason: "confident" };
  }
  tried.push(last);
  return { answeredBy: last, tried, reason: "low-confidence" };
}
