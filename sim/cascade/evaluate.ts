/**
 * Scores routing strategies on per-prompt outcomes: quality (mean of the answering model's quality, in
 * points of 100) and $ per 1k requests. The cascade's decisions come from gateway/cascade/decide.ts, the
 * function the gateway runs, so a CSV of real per-prompt confidences replays through exactly it.
 */
import { type CascadeRules, decideCascade } from "../../gateway/cascade/decide.js";
import { type ReplicaCost, requestUsd } from "./cost.js";
import type { PromptOutcome } from "./outcomes.js";

export interface Point {
  strategy: string;
  /** Share of requests answered by the large model, 0..1. */
  escalated: number;
  /** Mean quality × 100. */
  quality: number;
  usdPer1k: number;
  threshold?: number;
}

export interface Costs {
  small: ReplicaCost;
  large: ReplicaCost;
}

const usd = (c: ReplicaCost, o: PromptOutcome, side: "small" | "large", outputTokens?: number) =>
  requestUsd(c, o.promptTokens, outputTokens ?? o[side].outputTokens);

export function fixedPoint(
  strategy: string,
  outcomes: readonly PromptOutcome[],
  costs: Costs,
  large: boolean,
): Point {
  let q = 0;
  let dollars = 0;
  for (const o of outcomes) {
    q += large ? o.large.quality : o.small.quality;
    dollars += large ? usd(costs.large, o, "large") : usd(costs.small, o, "small");
  }
  const n = Math.max(1, outcomes.length);
  return { strategy, escalated: large ? 1 : 0, quality: (100 * q) / n, usdPer1k: (1000 * dollars) / n };
}

/** The two-step ModelRoute the benchmark evaluates, with the gate at `minLogprob`. */
export function benchRules(minLogprob: number, firstTokens = 8): CascadeRules {
  return {
    steps: [{ model: "small" }, { model: "large" }],
    largeForTiers: [],
    confidence: { firstTokens, metric: "mean", minLogprob },
    streaming: "hold",
  };
}

/**
 * The cascade with the confidence gate at `minLogprob`: kept answers cost the small model's whole answer;
 * escalated ones cost the small model's prompt and its first `firstTokens` tokens, then the large model.
 */
export function cascadePoint(
  outcomes: readonly PromptOutcome[],
  costs: Costs,
  minLogprob: number,
  firstTokens = 8,
  tierOf?: (o: PromptOutcome) => string | undefined,
  rules: CascadeRules = benchRules(minLogprob, firstTokens),
  /** The route's prompt classifier's score of each prompt (index in `outcomes`), when `rules` has one. */
  classifierScoreOf?: (index: number) => number,
): Point {
  let q = 0;
  let dollars = 0;
  let escalated = 0;
  for (const [index, o] of outcomes.entries()) {
    const tier = tierOf?.(o);
    const classifierScore = classifierScoreOf?.(index);
    const d = decideCascade(
      {
        promptTokens: o.promptTokens,
        ...(tier !== undefined ? { tier } : {}),
        ...(classifierScore !== undefined ? { classifierScore } : {}),
      },
      (step) => (step === 0 ? o.smallConfidence : undefined),
      rules,
    );
    if (d.answeredBy === 0) {
      q += o.small.quality;
      dollars += usd(costs.small, o, "small");
    } else {
      escalated++;
      q += o.large.quality;
      if (d.tried.includes(0))
        dollars += usd(costs.small, o, "small", Math.min(firstTokens, o.small.outputTokens));
      dollars += usd(costs.large, o, "large");
    }
  }
  const n = Math.max(1, outcomes.length);
  return {
    strategy: "cascade",
    escalated: escalated / n,
    quality: (100 * q) / n,
    usdPer1k: (1000 * dollars) / n,
    threshold: minLogprob,
  };
}

/** Prompt-only routing: escalate (before any generation) the prompts whose score is above `threshold`. */
export function promptRouterPoint(
  outcomes: readonly PromptOutcome[],
  scores: readonly number[],
  costs: Costs,
  threshold: number,
  strategy = "prompt-router",
): Point {
  let q = 0;
  let dollars = 0;
  let escalated = 0;
  outcomes.forEach((o, i) => {
    if ((scores[i] as number) > threshold) {
      escalated++;
      q += o.large.quality;
      dollars += usd(costs.large, o, "large");
    } else {
      q += o.small.quality;
      dollars += usd(costs.small, o, "small");
    }
  });
  const n = Math.max(1, outcomes.length);
  return {
    strategy,
    escalated: escalated / n,
    quality: (100 * q) / n,
    usdPer1k: (1000 * dollars) / n,
    threshold,
  };
}

/** A random split that spends `usdPer1k`: the expected quality of sending that share to the large model. */
export function randomAtCost(small: Point, large: Point, usdPer1k: number): Point {
  const f = Math.min(1, Math.max(0, (usdPer1k - small.usdPer1k) / (large.usdPer1k - small.usdPer1k)));
  return {
    strategy: "random",
    escalated: f,
    quality: small.quality + f * (large.quality - small.quality),
    usdPer1k: small.usdPer1k + f * (large.usdPer1k - small.usdPer1k),
  };
}

/** Thresholds at which the given share of scores lies below (so the share escalated steps evenly). */
export function quantileThresholds(scores: readonly number[], shares: readonly number[]): number[] {
  const sorted = [...scores].sort((a, b) => a - b);
  return shares.map((s) => {
    if (s <= 0) return Number.NEGATIVE_INFINITY;
    if (s >= 1) return Number.POSITIVE_INFINITY;
    const k = Math.min(sorted.length - 1, Math.max(0, Math.floor(s * sorted.length)));
    return sorted[k] as number;
  });
}

/** The cheapest point within `points` of the large model's quality, if any. */
export function cheapestWithin(points: readonly Point[], large: Point, points_ = 1): Point | undefined {
  return points
    .filter((p) => p.quality >= large.quality - points_)
    .sort((a, b) => a.usdPer1k - b.usdPer1k)[0];
}
