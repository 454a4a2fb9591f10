import { describe, expect, it } from "vitest";
import {
  type CascadeRules,
  confidenceOf,
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
