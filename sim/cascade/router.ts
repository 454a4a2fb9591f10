/**
 * Gate (a): a router that sees only the prompt. A multinomial naive Bayes text classifier (TypeScript, no
 * library) over the prompt's words, its group (MMLU subject, AlpacaEval source set) and a length bucket,
 * trained to predict "escalating helps" (the large model's answer is better than the small one's).
 * Its score (log-odds) ranks prompts; the cascade escalates those above a threshold.
 */
import type { PromptOutcome } from "./outcomes.js";

const MAX_WORDS = 256;

export function promptFeatures(o: Pick<PromptOutcome, "prompt" | "group" | "promptTokens">): string[] {
  const words = o.prompt.toLowerCase().match(/[a-z0-9]{2,}/g) ?? [];
  const features = words.slice(0, MAX_WORDS).map((w) => `w:${w}`);
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
