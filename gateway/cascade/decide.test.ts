import { describe, expect, it } from "vitest";
import {
  type CascadeRules,
  MAX_PROMPT_WORDS,
  classifierScore,
  confidenceOf,
  keepThreshold,
  promptWords,
  decideCascade,
  estimateTokens,
  keepAnswer,
  startStep,
} from "./decide.js";

const rules: CascadeRules = {
  steps: [{ model: "llama-8b", maxPromptTokens: 2000 }, { model: "llama-70b" }],
  largeForTiers: ["gold"],
  confidence: { firstTokens: 4, metric: "mean", minLogprob: -0.5 },
  streaming: "hold",
};

describe("cascade start step", () => {
  it("starts at the small model, gated, for an ordinary prompt", () => {
    expect(startStep({ promptTokens: 100 }, rules)).toEqual({ step: 0, reason: "first", gated: true });
  });

  it("sends a tier listed in largeForTiers to the last step, ungated, whatever the prompt", () => {
    expect(startStep({ promptTokens: 10, tier: "gold" }, rules)).toEqual({
      step: 1,
      reason: "tier",
      gated: false,
    });
    expect(startStep({ promptTokens: 10, tier: "silver" }, rules).step).toBe(0);
  });

  it("skips steps whose maxPromptTokens the prompt exceeds (the bound itself stays)", () => {
    expect(startStep({ promptTokens: 2000 }, rules).step).toBe(0);
    expect(startStep({ promptTokens: 2001 }, rules)).toEqual({
      step: 1,
      reason: "prompt-length",
      gated: false,
    });
    const three: CascadeRules = {
      ...rules,
      steps: [
        { model: "1b", maxPromptTokens: 100 },
        { model: "8b", maxPromptTokens: 1000 },
        { model: "70b" },
      ],
    };
    expect(startStep({ promptTokens: 500 }, three)).toEqual({
      step: 1,
      reason: "prompt-length",
      gated: true,
    });
  });

  it("streaming: hold keeps the gate, first skips it, last goes to the large model", () => {
    expect(startStep({ promptTokens: 10, stream: true }, rules).gated).toBe(true);
    expect(startStep({ promptTokens: 10, stream: true }, { ...rules, streaming: "first" })).toEqual({
      step: 0,
      reason: "first",
      gated: false,
    });
    expect(startStep({ promptTokens: 10, stream: true }, { ...rules, streaming: "last" })).toEqual({
      step: 1,
      reason: "stream-last",
      gated: false,
    });
  });

  it("without a confidence gate nothing is gated", () => {
    const { confidence: _, ...ungated } = rules;
    expect(startStep({ promptTokens: 10 }, ungated)).toEqual({ step: 0, reason: "first", gated: false });
  });

  it("estimates tokens as characters / 4, at least 1", () => {
    expect(estimateTokens(0)).toBe(1);
    expect(estimateTokens(8001)).toBe(2001);
  });
});

describe("cascade confidence gate", () => {
  it("combines the first N logprobs by mean or minimum", () => {
    const lp = [-0.1, -0.2, -1.5, -0.2, -9];
    expect(confidenceOf(lp, "mean", 4)).toBeCloseTo(-0.5, 10);
    expect(confidenceOf(lp, "min", 4)).toBe(-1.5);
    expect(confidenceOf(lp, "min", 5)).toBe(-9);
    expect(confidenceOf([], "mean", 4)).toBeUndefined();
    expect(confidenceOf([Number.NaN, -0.3], "mean", 4)).toBeCloseTo(-0.3, 10);
  });

  it("keeps an answer at or above the threshold, escalates below it or without evidence", () => {
    expect(keepAnswer(-0.5, -0.5)).toBe(true);
    expect(keepAnswer(-0.51, -0.5)).toBe(false);
    expect(keepAnswer(undefined, -0.5)).toBe(false);
    expect(keepAnswer(Number.NEGATIVE_INFINITY, -20)).toBe(false);
  });

  it("decides the whole path from each step's confidence", () => {
    const conf = (c: number | undefined) => () => c;
    expect(decideCascade({ promptTokens: 10 }, conf(-0.2), rules)).toEqual({
      answeredBy: 0,
      tried: [0],
      reason: "confident",
    });
    expect(decideCascade({ promptTokens: 10 }, conf(-2), rules)).toEqual({
      answeredBy: 1,
      tried: [0, 1],
      reason: "low-confidence",
    });
    expect(decideCascade({ promptTokens: 10, tier: "gold" }, conf(-0.2), rules)).toEqual({
      answeredBy: 1,
      tried: [1],
      reason: "tier",
    });
    const three: CascadeRules = { ...rules, steps: [{ model: "1b" }, { model: "8b" }, { model: "70b" }] };
    const byStep = (step: number) => [-3, -0.1][step];
    expect(decideCascade({ promptTokens: 10 }, byStep, three)).toEqual({
      answeredBy: 1,
      tried: [0, 1],
      reason: "confident",
    });
  });
});

describe("prompt classifier rule", () => {
  const classifier = {
    weights: new Map([
      ["prove", 2],
      ["integral", 1.5],
      ["hello", -1],
    ]),
    bias: -1,
    perPromptTokenDoubling: 0.1,
  };
  const withClassifier = (extra: Partial<NonNullable<CascadeRules["promptClassifier"]>>): CascadeRules => ({
    ...rules,
    largeForTiers: [],
    promptClassifier: { ...classifier, ...extra },
  });

  it("reads lower-case words of 2+ letters or digits, at most MAX_PROMPT_WORDS of them", () => {
    expect(promptWords("Prove that x^2 >= 0, a HELLO-world 42!")).toEqual(["prove", "that", "hello", "world", "42"]);
    expect(promptWords("ab ".repeat(1000))).toHaveLength(MAX_PROMPT_WORDS);
  });

  it("scores bias + per-doubling x log2(prompt tokens) + each occurrence's weight", () => {
    expect(classifierScore(["prove", "prove", "hello", "other"], 16, classifier)).toBeCloseTo(-1 + 0.4 + 2 + 2 - 1, 9);
    expect(classifierScore([], 1, classifier)).toBe(-1);
  });

  it("starts a prompt scoring above escalateAbove at the next step (reason classifier), ungated on the last", () => {
    const r = withClassifier({ escalateAbove: 0.5 });
    expect(startStep({ promptTokens: 10, classifierScore: 0.6 }, r)).toEqual({ step: 1, reason: "classifier", gated: false });
    expect(startStep({ promptTokens: 10, classifierScore: 0.5 }, r)).toEqual({ step: 0, reason: "first", gated: true });
    // Without a score (no classifier on the caller's side) nothing changes.
    expect(startStep({ promptTokens: 10 }, r)).toEqual({ step: 0, reason: "first", gated: true });
    // Tier first; on a three-step ladder the classifier moves one step.
    expect(startStep({ promptTokens: 10, tier: "gold", classifierScore: 5 }, { ...r, largeForTiers: ["gold"] }).reason).toBe("tier");
    const three: CascadeRules = { ...r, steps: [{ model: "1b" }, { model: "8b" }, { model: "70b" }] };
    expect(startStep({ promptTokens: 10, classifierScore: 5 }, three)).toEqual({ step: 1, reason: "classifier", gated: true });
  });

  it("with confidenceWeight, raises the confidence a doubted prompt needs (and lowers it for a trusted one)", () => {
    const r = withClassifier({ confidenceWeight: 0.25 });
    expect(keepThreshold(r, { classifierScore: 2 })).toBeCloseTo(-0.5 + 0.5, 9);
    expect(keepThreshold(r, { classifierScore: -2 })).toBeCloseTo(-1, 9);
    expect(keepThreshold(r, {})).toBe(-0.5);
    expect(keepThreshold(rules, { classifierScore: 2 })).toBe(-0.5);
    // -0.3 is kept for a neutral prompt, escalated for a doubted one.
    expect(decideCascade({ promptTokens: 10, classifierScore: 0 }, () => -0.3, r).answeredBy).toBe(0);
    expect(decideCascade({ promptTokens: 10, classifierScore: 2 }, () => -0.3, r)).toEqual({
      answeredBy: 1,
      tried: [0, 1],
      reason: "low-confidence",
    });
  });
});
