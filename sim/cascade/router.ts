/**
 * Gate (a): a router that sees only the prompt. A multinomial naive Bayes text classifier (TypeScript, no
 * library) over the prompt's words, its group (MMLU subject, AlpacaEval source set) and a length bucket,
 * trained to predict "escalating helps" (the large model's answer is better than the small one's).
 * Its score (log-odds) ranks prompts; the cascade escalates those above a threshold.
 */
import {
  type PromptClassifierRule,
  classifierScore,
  promptWords,
} from "../../gateway/cascade/decide.js";
import { MAX_CLASSIFIER_TERMS } from "../../operator/api/modelroute.js";
import type { PromptOutcome } from "./outcomes.js";

export function promptFeatures(o: Pick<PromptOutcome, "prompt" | "group" | "promptTokens">): string[] {
  const features = promptWords(o.prompt).map((w) => `w:${w}`);
  const group = `g:${o.group}`;
  const length = `len:${Math.floor(Math.log2(Math.max(1, o.promptTokens)))}`;
  // The group and the length bucket weigh as several words each.
  for (let k = 0; k < 4; k++) features.push(group, length);
  return features;
}

export interface NaiveBayes {
  score(features: readonly string[]): number;
}

export function trainNaiveBayes(
  examples: ReadonlyArray<{ features: string[]; label: boolean }>,
  alpha = 1,
): NaiveBayes {
  const counts: [Map<string, number>, Map<string, number>] = [new Map(), new Map()];
  const totals: [number, number] = [0, 0];
  const docs: [number, number] = [0, 0];
  const vocabulary = new Set<string>();
  for (const { features, label } of examples) {
    const c = label ? 1 : 0;
    docs[c]++;
    for (const f of features) {
      const m = counts[c] as Map<string, number>;
      m.set(f, (m.get(f) ?? 0) + 1);
      totals[c]++;
      vocabulary.add(f);
    }
  }
  const v = vocabulary.size;
  const prior = Math.log((docs[1] + 1) / (docs[0] + 1));
  return {
    score(features) {
      let s = prior;
      for (const f of features) {
        if (!vocabulary.has(f)) continue;
        const p1 = ((counts[1] as Map<string, number>).get(f) ?? 0) + alpha;
        const p0 = ((counts[0] as Map<string, number>).get(f) ?? 0) + alpha;
        s +=
          Math.log(p1 / ((totals[1] as number) + alpha * v)) -
          Math.log(p0 / ((totals[0] as number) + alpha * v));
      }
      return s;
    },
  };
}

/** Escalating helps: the large model's answer is strictly better. */
export function escalationHelps(o: PromptOutcome): boolean {
  return o.large.quality > o.small.quality;
}

/** Deterministic split by id (FNV-1a): "train" or "test", about half each. */
export function splitOf(id: string): "train" | "test" {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % 2 === 0 ? "train" : "test";
}

/**
 * A second prompt-only router: the rate at which escalating helped in the prompt's group (MMLU subject,
 * AlpacaEval source set) on the training half, shrunk towards the overall rate by `prior` pseudo-prompts,
 * with ties broken by prompt length. Returns the scorer (higher: escalate first).
 */
export function trainGroupRates(
  train: readonly Pick<PromptOutcome, "group" | "promptTokens" | "small" | "large">[],
  prior = 5,
): (o: Pick<PromptOutcome, "group" | "promptTokens">) => number {
  const byGroup = new Map<string, { n: number; helps: number }>();
  let helps = 0;
  for (const o of train) {
    const c = byGroup.get(o.group) ?? { n: 0, helps: 0 };
    c.n++;
    if (o.large.quality > o.small.quality) {
      c.helps++;
      helps++;
    }
    byGroup.set(o.group, c);
  }
  const overall = helps / Math.max(1, train.length);
  return (o) => {
    const c = byGroup.get(o.group) ?? { n: 0, helps: 0 };
    return (c.helps + prior * overall) / (c.n + prior) + 1e-6 * Math.log1p(Math.max(0, o.promptTokens));
  };
}

/** Standard scores (mean 0, deviation 1) of `xs`, with the mean and deviation of `reference` (default xs). Pure. */
export function standardize(xs: readonly number[], reference: readonly number[] = xs): number[] {
  const n = Math.max(1, reference.length);
  const mean = reference.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(reference.reduce((a, b) => a + (b - mean) ** 2, 0) / n) || 1;
  return xs.map((x) => (x - mean) / sd);
}

/** A second split of the training half (another bit of the same FNV-1a hash than `splitOf`): "fit" or "pick". */
export function foldOf(id: string): "fit" | "pick" {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return (h >>> 7) % 2 === 0 ? "fit" : "pick";
}

/**
 * A third prompt-only router, in the form a ModelRoute's promptClassifier takes (gateway/cascade/decide.ts):
 * L2-regularised logistic regression of "escalating helps" on the prompt's word counts (the words the
 * gateway reads, at most MAX_PROMPT_WORDS per prompt) and log2 of its tokens, fitted by full-batch
 * gradient descent with Adagrad steps (deterministic); then cut to the `maxTerms` words of largest
 * |weight| so that it fits the CRD. Sees only what the gateway sees: no subject or source set.
 */
export function trainLinearRouter(
  train: ReadonlyArray<Pick<PromptOutcome, "prompt" | "promptTokens" | "small" | "large">>,
  options: { l2?: number; epochs?: number; rate?: number; maxTerms?: number } = {},
): PromptClassifierRule {
  const l2 = options.l2 ?? 1e-3;
  const epochs = options.epochs ?? 60;
  const rate = options.rate ?? 0.5;
  const maxTerms = Math.min(options.maxTerms ?? MAX_CLASSIFIER_TERMS, MAX_CLASSIFIER_TERMS);
  const index = new Map<string, number>();
  const rows = train.map((o) => {
    const counts = new Map<number, number>();
    for (const w of promptWords(o.prompt)) {
      let i = index.get(w);
      if (i === undefined) index.set(w, (i = index.size));
      counts.set(i, (counts.get(i) ?? 0) + 1);
    }
    return { counts, length: Math.log2(Math.max(1, o.promptTokens)), label: o.large.quality > o.small.quality ? 1 : 0 };
  });
  const n = Math.max(1, rows.length);
  const w = new Float64Array(index.size);
  const g2 = new Float64Array(index.size).fill(1e-8);
  let bias = 0;
  let lengthWeight = 0;
  let g2Bias = 1e-8;
  let g2Length = 1e-8;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const grad = new Float64Array(index.size);
    let gBias = 0;
    let gLength = 0;
    for (const r of rows) {
      let z = bias + lengthWeight * r.length;
      for (const [i, c] of r.counts) z += (w[i] as number) * c;
      const err = 1 / (1 + Math.exp(-z)) - r.label;
      gBias += err;
      gLength += err * r.length;
      for (const [i, c] of r.counts) grad[i] = (grad[i] as number) + err * c;
    }
    for (let i = 0; i < w.length; i++) {
      const g = (grad[i] as number) / n + l2 * (w[i] as number);
      g2[i] = (g2[i] as number) + g * g;
      w[i] = (w[i] as number) - (rate * g) / Math.sqrt(g2[i] as number);
    }
    gBias /= n;
    gLength /= n;
    g2Bias += gBias * gBias;
    g2Length += gLength * gLength;
    bias -= (rate * gBias) / Math.sqrt(g2Bias);
    lengthWeight -= (rate * gLength) / Math.sqrt(g2Length);
  }
  const words = [...index.entries()]
    .filter(([word]) => word.length <= 40)
    .sort((a, b) => Math.abs(w[b[1]] as number) - Math.abs(w[a[1]] as number) || (a[0] < b[0] ? -1 : 1))
    .slice(0, maxTerms)
    .map(([word, i]) => [word, Math.max(-20, Math.min(20, w[i] as number))] as const);
  return { weights: new Map(words), bias, perPromptTokenDoubling: lengthWeight };
}

/** The score of an outcome's prompt under a ModelRoute promptClassifier, as the gateway computes it. */
export function linearRouterScore(rule: PromptClassifierRule, o: Pick<PromptOutcome, "prompt" | "promptTokens">): number {
  return classifierScore(promptWords(o.prompt), o.promptTokens, rule);
}

/** A promptClassifier as ModelRoute YAML fields (weights rounded to 4 decimals). */
export function classifierSpec(rule: PromptClassifierRule, escalateAbove: number): Record<string, unknown> {
  const r4 = (x: number) => Math.round(x * 1e4) / 1e4;
  return {
    terms: [...rule.weights].map(([word, weight]) => ({ word, weight: r4(weight) })),
    bias: r4(Math.max(-50, Math.min(50, rule.bias))),
    perPromptTokenDoubling: r4(Math.max(-20, Math.min(20, rule.perPromptTokenDoubling))),
    escalateAbove: r4(Math.max(-100, Math.min(100, escalateAbove))),
  };
}

