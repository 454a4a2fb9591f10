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

/**
 * A ModelRoute's prompt classifier, resolved: a linear score of the prompt's words (each occurrence of a
 * listed word adds its weight), plus `perPromptTokenDoubling` times log2(prompt tokens), plus `bias`
 * (e.g. the log-odds of "the larger model answers better" from a logistic regression).
 */
export interface PromptClassifierRule {
  weights: ReadonlyMap<string, number>;
  bias: number;
  perPromptTokenDoubling: number;
  /** A prompt scoring above this starts at the next step (reason "classifier"). */
  escalateAbove?: number;
  /** With the confidence gate: an answer is kept when confidence >= minLogprob + confidenceWeight x score. */
  confidenceWeight?: number;
}

/** A ModelRoute's rules, resolved (defaults filled in). */
export interface CascadeRules {
  steps: readonly CascadeStep[];
  largeForTiers: readonly string[];
  confidence?: { firstTokens: number; metric: ConfidenceMetric; minLogprob: number };
  promptClassifier?: PromptClassifierRule;
  streaming: StreamingMode;
}

/** Words the classifier reads: lower-case runs of 2+ letters or digits, the first MAX_PROMPT_WORDS. */
export const MAX_PROMPT_WORDS = 256;

/** The prompt's words as the prompt classifier reads them (bounded: at most MAX_PROMPT_WORDS, 64 KiB of text). */
export function promptWords(text: string): string[] {
  const words: string[] = [];
  const re = /[a-z0-9]{2,}/g;
  const lower = text.slice(0, 65_536).toLowerCase();
  for (let m = re.exec(lower); m !== null && words.length < MAX_PROMPT_WORDS; m = re.exec(lower)) words.push(m[0]);
  return words;
}

/** The classifier's score of a prompt (its words and estimated tokens). Pure. */
export function classifierScore(
  words: readonly string[],
  promptTokens: number,
  classifier: Pick<PromptClassifierRule, "weights" | "bias" | "perPromptTokenDoubling">,
): number {
  let score = classifier.bias + classifier.perPromptTokenDoubling * Math.log2(Math.max(1, promptTokens));
  for (const w of words) score += classifier.weights.get(w) ?? 0;
  return score;
}

/** The confidence an answer needs to be kept: the gate's threshold, moved by the prompt classifier's score. */
export function keepThreshold(rules: CascadeRules, features: Pick<PromptFeatures, "classifierScore">): number {
  const minLogprob = rules.confidence?.minLogprob ?? 0;
  const weight = rules.promptClassifier?.confidenceWeight;
  if (weight === undefined || features.classifierScore === undefined) return minLogprob;
  return minLogprob + weight * features.classifierScore;
}

export interface PromptFeatures {
  /** Estimated prompt tokens (characters / 4, like the gateway's picker). */
  promptTokens: number;
  /** The caller's usage tier, if tenancy is on. */
  tier?: string;
  stream?: boolean;
  /** The route's prompt classifier's score of the prompt (`classifierScore`), when the route has one. */
  classifierScore?: number;
}

export type StartReason = "tier" | "prompt-length" | "classifier" | "stream-last" | "first";

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
  let reason: StartReason = step > 0 ? "prompt-length" : "first";
  const above = rules.promptClassifier?.escalateAbove;
  if (step < last && above !== undefined && features.classifierScore !== undefined && features.classifierScore > above) {
    step++;
    reason = "classifier";
  }
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
  const threshold = keepThreshold(rules, features);
  const last = rules.steps.length - 1;
  const tried: number[] = [];
  for (let step = start.step; step < last; step++) {
    tried.push(step);
    if (keepAnswer(confidenceAt(step), threshold))
      return { answeredBy: step, tried, reason: "confident" };
  }
  tried.push(last);
  return { answeredBy: last, tried, reason: "low-confidence" };
}
