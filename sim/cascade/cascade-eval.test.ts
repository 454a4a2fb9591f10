import { describe, expect, it } from "vitest";
import { auroc, modelConfidences, normalCdf, normalQuantile, separationForAuroc } from "./confidence.js";
import { parseCsv } from "./csv.js";
import { cascadePoint, fixedPoint, quantileThresholds, randomAtCost } from "./evaluate.js";
import type { ReplicaCost } from "./cost.js";
import type { PromptOutcome } from "./outcomes.js";
import {
  classifierSpec,
  escalationHelps,
  foldOf,
  linearRouterScore,
  promptFeatures,
  splitOf,
  standardize,
  trainGroupRates,
  trainLinearRouter,
  trainNaiveBayes,
} from "./router.js";

const unitCost = (usdPerToken: number): ReplicaCost => ({
  model: "m",
  gpu: "g",
  gpusPerReplica: 1,
  usdPerGpuHour: 3600,
  prefillSecondsPerToken: 0,
  decodeSecondsPerToken: usdPerToken,
});

function outcome(id: number, smallOk: boolean, largeOk: boolean, conf?: number): PromptOutcome {
  return {
    id: `p${id}`,
    group: "g",
    prompt: "",
    promptTokens: 10,
    small: { quality: smallOk ? 1 : 0, outputTokens: 10 },
    large: { quality: largeOk ? 1 : 0, outputTokens: 10 },
    ...(conf !== undefined ? { smallConfidence: conf } : {}),
  };
}

describe("CSV", () => {
  it("reads quoted fields with commas, doubled quotes and line breaks", () => {
    expect(parseCsv('a,b\n"x, ""y""\nz",2\r\n3,4')).toEqual([
      ["a", "b"],
      ['x, "y"\nz', "2"],
      ["3", "4"],
    ]);
  });
});

describe("modelled confidence", () => {
  it("inverts the normal CDF", () => {
    expect(normalCdf(0)).toBeCloseTo(0.5, 6);
    expect(normalQuantile(0.975)).toBeCloseTo(1.96, 3);
  });

  it("draws confidences whose AUROC for adequate answers is the one asked for", () => {
    const adequate = Array.from({ length: 20_000 }, (_, i) => i % 3 !== 0);
    for (const target of [0.6, 0.65, 0.8]) {
      const conf = modelConfidences(adequate, target, 7);
      expect(auroc(conf, adequate)).toBeCloseTo(target, 1);
      expect(Math.abs(auroc(conf, adequate) - target)).toBeLessThan(0.015);
      // Logprobs, calibrated on average: mean probability equals the share adequate.
      expect(conf.every((c) => c <= 0)).toBe(true);
      const meanP = conf.reduce((a, c) => a + Math.exp(c), 0) / conf.length;
      expect(meanP).toBeCloseTo(2 / 3, 2);
    }
    expect(separationForAuroc(0.5)).toBeCloseTo(0, 6);
  });
});

describe("strategies", () => {
  const costs = { small: unitCost(1 / 10), large: unitCost(10 / 10) };
  // 4 prompts: small right on 2 (confident), wrong on 2 (unconfident) where large is right.
  const set = [
    outcome(1, true, true, -0.1),
    outcome(2, true, false, -0.2),
    outcome(3, false, true, -2),
    outcome(4, false, true, -3),
  ];

  it("always-small and always-large", () => {
    expect(fixedPoint("s", set, costs, false)).toMatchObject({ quality: 50, usdPer1k: 1000 });
    expect(fixedPoint("l", set, costs, true)).toMatchObject({ quality: 75, usdPer1k: 10_000 });
  });

  it("the cascade keeps confident answers and pays the gate's tokens on escalated ones", () => {
    const p = cascadePoint(set, costs, -1, 8);
    expect(p.escalated).toBe(0.5);
    expect(p.quality).toBe(100);
    // kept: 2 × 10 tokens × $0.1; escalated: 2 × (8 × $0.1 + 10 × $1); per request × 1000.
    expect(p.usdPer1k).toBeCloseTo((1000 * (2 * 1 + 2 * (0.8 + 10))) / 4, 6);
  });

  it("quantile thresholds escalate the asked share; random at a cost interpolates", () => {
    const conf = set.map((o) => o.smallConfidence as number);
    const [none, half, all] = quantileThresholds(conf, [0, 0.5, 1]);
    expect(cascadePoint(set, costs, none as number).escalated).toBe(0);
    expect(cascadePoint(set, costs, half as number).escalated).toBe(0.5);
    expect(cascadePoint(set, costs, all as number).escalated).toBe(1);
    const s = fixedPoint("s", set, costs, false);
    const l = fixedPoint("l", set, costs, true);
    expect(randomAtCost(s, l, 5500)).toMatchObject({ escalated: 0.5, quality: 62.5 });
  });

  it("the prompt classifier learns which prompts the small model fails", () => {
    const make = (i: number): PromptOutcome => {
      const hard = i % 2 === 0;
      return {
        id: `q${i}`,
        group: hard ? "algebra" : "history",
        prompt: hard ? `solve the equation ${i}` : `who was the king ${i}`,
        promptTokens: 8,
        small: { quality: hard ? 0 : 1, outputTokens: 1 },
        large: { quality: 1, outputTokens: 1 },
      };
    };
    const all = Array.from({ length: 400 }, (_, i) => make(i));
    const train = all.filter((o) => splitOf(o.id) === "train");
    const test = all.filter((o) => splitOf(o.id) === "test");
    expect(train.length).toBeGreaterThan(100);
    expect(test.length).toBeGreaterThan(100);
    const nb = trainNaiveBayes(
      train.map((o) => ({ features: promptFeatures(o), label: escalationHelps(o) })),
    );
    const scores = test.map((o) => nb.score(promptFeatures(o)));
    expect(auroc(scores, test.map(escalationHelps))).toBeGreaterThan(0.99);
  });

  it("the group-rate router ranks a group where escalating helps more often first, shrunk towards the overall rate", () => {
    const o = (group: string, helps: boolean): PromptOutcome => ({
      id: `${group}-${Math.random()}`,
      group,
      prompt: "",
      promptTokens: 10,
      small: { quality: helps ? 0 : 1, outputTokens: 1 },
      large: { quality: 1, outputTokens: 1 },
    });
    const train = [
      ...Array.from({ length: 20 }, (_, i) => o("law", i < 15)),
      ...Array.from({ length: 20 }, (_, i) => o("history", i < 2)),
      o("rare", true),
    ];
    const rate = trainGroupRates(train, 5);
    expect(rate(o("law", false))).toBeGreaterThan(rate(o("history", false)));
    // One prompt of "rare" (helped) moves it only a little above the overall rate (18/41).
    expect(rate(o("rare", false))).toBeCloseTo((1 + 5 * (18 / 41)) / 6, 4);
    expect(rate(o("unseen", false))).toBeCloseTo(18 / 41, 4);
  });

  it("standardizes scores, and splits the training half again on another hash bit", () => {
    expect(standardize([1, 2, 3])).toEqual([-Math.sqrt(1.5), 0, Math.sqrt(1.5)]);
    const ids = Array.from({ length: 400 }, (_, i) => `id-${i}`).filter((id) => splitOf(id) === "train");
    const fit = ids.filter((id) => foldOf(id) === "fit").length;
    expect(fit).toBeGreaterThan(ids.length * 0.35);
    expect(fit).toBeLessThan(ids.length * 0.65);
  });
});

describe("ModelRoute promptClassifier router (logistic regression on the gateway's words)", () => {
  // Prompts with "integral" are where the large model helps; "hello" where it does not; filler words are noise.
  const make = (i: number): PromptOutcome => {
    const hard = i % 3 === 0;
    const words = [hard ? "integral" : "hello", `filler${i % 7}`, "the", "question"];
    return {
      id: `q${i}`,
      group: "",
      prompt: words.join(" "),
      promptTokens: 10 + (i % 5),
      small: { quality: hard ? 0 : 1, outputTokens: 5 },
      large: { quality: 1, outputTokens: 5 },
    };
  };
  const train = Array.from({ length: 300 }, (_, i) => make(i));
  const test = Array.from({ length: 300 }, (_, i) => make(i + 1000));

  it("learns the words that predict 'escalating helps' and ranks held-out prompts by them", () => {
    const rule = trainLinearRouter(train);
    expect(rule.weights.get("integral")).toBeGreaterThan(1);
    expect(rule.weights.get("hello") ?? 0).toBeLessThan(rule.weights.get("integral") as number);
    const scores = test.map((o) => linearRouterScore(rule, o));
    expect(auroc(scores, test.map(escalationHelps))).toBeGreaterThan(0.99);
  });

  it("keeps at most maxTerms words (largest |weight| first) and writes a spec within the CRD's bounds", () => {
    const rule = trainLinearRouter(train, { maxTerms: 2 });
    expect([...rule.weights.keys()].sort()).toEqual(["hello", "integral"]);
    const spec = classifierSpec({ ...rule, bias: 99 }, 500) as { terms: unknown[]; bias: number; escalateAbove: number };
    expect(spec.terms).toHaveLength(2);
    expect(spec.bias).toBe(50);
    expect(spec.escalateAbove).toBe(100);
  });
});
