/**
 * The small model's confidence, modelled where the data has none. The routing data sets carry no
 * logprobs, so the gate's signal is drawn per prompt from what is published about how well an LLM's
 * own token probabilities separate its right answers from its wrong ones:
 *
 * - Plaut, Nguyen & Trinh, "Softmax Probabilities (Mostly) Predict Large Language Model Correctness on
 *   Multiple-Choice Q&A" (arXiv 2402.13213, 2024): over ten open models and five multiple-choice sets
 *   (MMLU among them), the maximum softmax probability's AUROC for right vs wrong answers, averaged per
 *   model for the six best models, ranged from 60% to 69%. These are chat models; the paper also finds
 *   their probabilities miscalibrated (overconfident) though still predictive.
 * - OpenAI, "GPT-4 Technical Report" (arXiv 2303.08774, 2023), §3.2 / Figure 8: the pre-trained model is
 *   well calibrated on an MMLU subset, post-training degrades calibration.
 *
 * Model (binormal, the textbook ROC model): a latent score x ~ N(d, 1) when the small answer is adequate,
 * N(0, 1) when not, with d = √2·Φ⁻¹(AUROC) so that P(x_adequate > x_not) = AUROC exactly. The gate sees
 * c = log σ(x + b), a mean token logprob, with b set so that the mean of σ(x + b) equals the small
 * model's share of adequate answers (calibrated on average; only the ranking matters to the gate, so b
 * changes the thresholds' values, not the curve). Default AUROC 0.65, the middle of the published range;
 * the benchmark also reports 0.60, 0.69 and an optimistic 0.80.
 */
import { seededRandom } from "../eval/traces.js";

/** Standard normal CDF (Abramowitz & Stegun 7.1.26 for erf, |error| < 1.5e-7). */
export function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const erf =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-z * z);
  return x >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

/** Φ⁻¹ by bisection (accurate to ~1e-9 on (0, 1)). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`normalQuantile needs 0 < p < 1, got ${p}`);
  let lo = -10;
  let hi = 10;
  for (let k = 0; k < 80; k++) {
    const mid = (lo + hi) / 2;
    if (normalCdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Separation of the two normals for a given AUROC. */
export function separationForAuroc(auroc: number): number {
  return Math.SQRT2 * normalQuantile(auroc);
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/**
 * Modelled confidences (mean token logprobs) for prompts whose small answer is adequate or not, with the
 * given AUROC; deterministic for a seed.
 */
export function modelConfidences(adequate: readonly boolean[], auroc: number, seed: number): number[] {
  const d = separationForAuroc(auroc);
  const random = seededRandom(seed);
  const gaussian = () => {
    // Box-Muller; 1 - u keeps the log argument in (0, 1].
    const u = 1 - random();
    const v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const latent = adequate.map((ok) => (ok ? d : 0) + gaussian());
  const share = adequate.filter(Boolean).length / Math.max(1, adequate.length);
  const target = Math.min(0.999, Math.max(0.001, share));
  let lo = -20;
  let hi = 20;
  for (let k = 0; k < 60; k++) {
    const b = (lo + hi) / 2;
    const mean = latent.reduce((acc, x) => acc + sigmoid(x + b), 0) / Math.max(1, latent.length);
    if (mean < target) lo = b;
    else hi = b;
  }
  const b = (lo + hi) / 2;
  return latent.map((x) => Math.log(sigmoid(x + b)));
}

/** Empirical AUROC of scores for positives vs negatives (ties count half). */
export function auroc(scores: readonly number[], positive: readonly boolean[]): number {
  const order = scores.map((s, i) => [s, positive[i] === true] as const).sort((a, b) => a[0] - b[0]);
  let rankSum = 0;
  let pos = 0;
  let k = 0;
  while (k < order.length) {
    let j = k;
    while (
      j < order.length &&
      (order[j] as readonly [number, boolean])[0] === (order[k] as readonly [number, boolean])[0]
    )
      j++;
    const midRank = (k + 1 + j) / 2;
    for (let m = k; m < j; m++)
      if ((order[m] as readonly [number, boolean])[1]) {
        rankSum += midRank;
        pos++;
      }
    k = j;
  }
  const neg = order.length - pos;
  if (pos === 0 || neg === 0) return 0.5;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}
