/**
 * `npm run bench:cascade`: the cascade's cost-quality curve on the public routing data
 * (../shared/data/routing/), against always-small, always-large and a random split at the same cost.
 *
 *   npm run bench:cascade                      every data set, gates (a) and (b), markdown tables
 *   npm run bench:cascade -- --auroc 0.8       gate (b) with another modelled AUROC (default 0.65)
 *   npm run bench:cascade -- --write-csv DIR   also write each set's per-prompt outcomes (test half) as CSV
 *   npm run bench:cascade -- --write-route DIR also write each set's ModelRoute with its trained promptClassifier
 *   npm run bench:cascade -- --replay FILE.csv [--small llama-3.1-8b] [--large llama-3.1-70b] [--gpu ...]
 *       replays a CSV of per-prompt outcomes with real confidences through gateway/cascade/decide.ts:
 *       columns id,prompt_tokens,small_confidence,small_quality,large_quality,small_output_tokens,
 *       large_output_tokens[,tier]; `--large-tiers gold,...` sends those tiers to the large model.
 *
 * Gate (a), prompt only: a naive Bayes text classifier trained on one half of each set (split by id) and
 * scored on the other; also the ModelRoute's own prompt rule, a length threshold. Gate (b), the logprob
 * gate: the small model's confidence is modelled (sim/cascade/confidence.ts, from published calibration
 * figures) because the data carries no logprobs. Every figure is on the test half.
 * Costs: the planner's GPUs per replica and the engine model's step times (sim/cascade/cost.ts), priced
 * with the gateway's illustrative GPU price table.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type CascadeRules, type PromptClassifierRule } from "../../gateway/cascade/decide.js";
import { stringify } from "yaml";
import { auroc, modelConfidences } from "./confidence.js";
import { type ReplicaCost, replicaCost } from "./cost.js";
import { csvField, csvObjects } from "./csv.js";
import {
  type Point,
  benchRules,
  cascadePoint,
  cheapestWithin,
  fixedPoint,
  promptRouterPoint,
  quantileThresholds,
  randomAtCost,
} from "./evaluate.js";
import {
  type OutcomeSet,
  type PromptOutcome,
  loadAlpacaLadders,
  loadRouteLlmGsm8k,
  loadRouteLlmMmlu,
  smallAdequate,
} from "./outcomes.js";
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
import { GPU_PRICES, PRICE_GPU } from "./prices.js";

const SHARES = Array.from({ length: 21 }, (_, k) => k / 20);
const MAIN_AUROC = 0.65;
const SEEDS = [1, 2, 3, 4, 5];
const FIRST_TOKENS = 8;

const fmt = (p: Point) =>
  `| ${p.strategy} | ${(100 * p.escalated).toFixed(0)}% | ${p.quality.toFixed(2)} | ${p.usdPer1k.toFixed(4)} |`;

function costsFor(set: Pick<OutcomeSet, "smallCatalogue" | "largeCatalogue">, gpu: string) {
  const price = GPU_PRICES[gpu];
  if (price === undefined) throw new Error(`no price for ${gpu}`);
  return {
    small: replicaCost(set.smallCatalogue, gpu, price),
    large: replicaCost(set.largeCatalogue, gpu, price),
  };
}

function averagePoints(runs: Point[][]): Point[] {
  return (runs[0] ?? []).map((_, k) => {
    const at = runs.map((r) => r[k] as Point);
    const mean = (f: (p: Point) => number) => at.reduce((a, p) => a + f(p), 0) / at.length;
    return {
      strategy: at[0]!.strategy,
      escalated: mean((p) => p.escalated),
      quality: mean((p) => p.quality),
      usdPer1k: mean((p) => p.usdPer1k),
    };
  });
}

interface SetReport {
  name: string;
  lines: string[];
  headline: string;
  /** The ModelRoute promptClassifier trained on the training half, and its threshold at the cheapest point within 1 point. */
  classifier: { rule: PromptClassifierRule; escalateAbove: number };
}

/** The regularisation strengths tried for the promptClassifier router; the one ranking best on the held-out fold is kept. */
const L2_GRID = [1e-4, 1e-3, 1e-2];

/** The promptClassifier router: logistic regression, L2 chosen on the held-out fold of the training half. */
function trainClassifierRouter(train: readonly PromptOutcome[]): { rule: PromptClassifierRule; l2: number; foldAuroc: number } {
  const fit = train.filter((o) => foldOf(o.id) === "fit");
  const pick = train.filter((o) => foldOf(o.id) === "pick");
  const scored = L2_GRID.map((l2) => {
    const rule = trainLinearRouter(fit, { l2 });
    return { l2, foldAuroc: auroc(pick.map((o) => linearRouterScore(rule, o)), pick.map(escalationHelps)) };
  });
  const best = scored.reduce((a, b) => (b.foldAuroc > a.foldAuroc ? b : a));
  return { rule: trainLinearRouter(train, { l2: best.l2 }), l2: best.l2, foldAuroc: best.foldAuroc };
}

/** A two-step route whose only rule is the prompt classifier, escalating above `escalateAbove`. */
function classifierRules(rule: PromptClassifierRule, escalateAbove: number): CascadeRules {
  return {
    steps: [{ model: "small" }, { model: "large" }],
    largeForTiers: [],
    promptClassifier: { ...rule, escalateAbove },
    streaming: "hold",
  };
}

function evaluateSet(set: OutcomeSet, gpu: string, aurocs: number[]): SetReport {
  const costs = costsFor(set, gpu);
  const train = set.outcomes.filter((o) => splitOf(o.id) === "train");
  const test = set.outcomes.filter((o) => splitOf(o.id) === "test");
  const small = fixedPoint("always-small", test, costs, false);
  const large = fixedPoint("always-large", test, costs, true);
  const lines: string[] = [];
  lines.push(
    `### ${set.name} (${test.length} test prompts of ${set.outcomes.length}; quality = ${set.qualityUnit})`,
  );
  lines.push(
    `Costs on ${gpu}: ${set.smallModel} as ${costs.small.model} (${costs.small.gpusPerReplica} GPU/replica), ${set.largeModel} as ${costs.large.model} (${costs.large.gpusPerReplica} GPU/replica); ${set.costNote}.`,
  );
  lines.push(
    "",
    "| strategy | escalated | quality | $ / 1k req |",
    "|---|---|---|---|",
    fmt(small),
    fmt(large),
  );

  // Gate (a): naive Bayes on the prompt, trained on the other half.
  const nb = trainNaiveBayes(train.map((o) => ({ features: promptFeatures(o), label: escalationHelps(o) })));
  const nbScores = test.map((o) => nb.score(promptFeatures(o)));
  const nbAuc = auroc(nbScores, test.map(escalationHelps));
  const nbThresholds = quantileThresholds(
    nbScores,
    SHARES.map((s) => 1 - s),
  );
  const nbPoints = nbThresholds.map((t) =>
    promptRouterPoint(test, nbScores, costs, t, "(a) prompt classifier"),
  );
  // Gate (a'): the ModelRoute's own prompt rule, longer prompts to the large model.
  const lengths = test.map((o) => o.promptTokens);
  const lenPoints = quantileThresholds(
    lengths,
    SHARES.map((s) => 1 - s),
  ).map((t) => promptRouterPoint(test, lengths, costs, t, "(a) prompt length"));
  // Gate (a''): the escalation rate of the prompt's group (subject) on the training half.
  const groupRate = trainGroupRates(train);
  const groupScores = test.map(groupRate);
  const groupAuc = auroc(groupScores, test.map(escalationHelps));
  const groupPoints = quantileThresholds(
    groupScores,
    SHARES.map((s) => 1 - s),
  ).map((t) => promptRouterPoint(test, groupScores, costs, t, "(a) group rate"));
  // Gate (a, fourth router): a ModelRoute promptClassifier (logistic regression on the words the gateway
  // reads, at most 256 words kept), scored through the gateway's own decision (decideCascade, the route's rule).
  const classifier = trainClassifierRouter(train);
  const linScores = test.map((o) => linearRouterScore(classifier.rule, o));
  const linAuc = auroc(linScores, test.map(escalationHelps));
  const linPoints = quantileThresholds(
    linScores,
    SHARES.map((s) => 1 - s),
  ).map((t) => ({
    ...cascadePoint(test, costs, 0, FIRST_TOKENS, undefined, classifierRules(classifier.rule, t), (i) => linScores[i] as number),
    strategy: "(a) promptClassifier",
    threshold: t,
  }));
  // The bound no gate beats: escalate exactly the prompts where the large answer is better.
  const oracle = promptRouterPoint(test, test.map((o) => (escalationHelps(o) ? 1 : 0)), costs, 0.5, "oracle");
  // Gate (b): the logprob gate with modelled confidences, averaged over seeds, per AUROC.
  const gateB = new Map<number, Point[]>();
  for (const a of aurocs) {
    const runs = SEEDS.map((seed) => {
      const conf = modelConfidences(test.map(smallAdequate), a, seed);
      const withConf = test.map((o, i) => ({ ...o, smallConfidence: conf[i] as number }));
      return quantileThresholds(conf, SHARES).map((t) => ({
        ...cascadePoint(withConf, costs, t, FIRST_TOKENS),
        strategy: `(b) logprob gate, AUROC ${a}`,
      }));
    });
    gateB.set(a, averagePoints(runs));
  }
  const main = gateB.get(MAIN_AUROC) ?? [...gateB.values()][0] ?? [];
  const cell = (p: Point | undefined) => (p ? `${p.quality.toFixed(2)} / ${p.usdPer1k.toFixed(4)}` : "");
  lines.push(
    "",
    `Quality / $ per 1k requests by share escalated (random: a random split spending what the AUROC ${MAIN_AUROC} gate spends):`,
    "",
    `| escalated | (a) classifier | (a) length | (b) gate AUROC ${MAIN_AUROC} | random at (b)'s cost |`,
    "|---|---|---|---|---|",
  );
  for (let k = 0; k < SHARES.length; k++) {
    const b = main[k];
    lines.push(
      `| ${(100 * (SHARES[k] as number)).toFixed(0)}% | ${cell(nbPoints[k])} | ${cell(lenPoints[k])} | ${cell(b)} | ${b ? cell(randomAtCost(small, large, b.usdPer1k)) : ""} |`,
    );
  }
  lines.push(
    "",
    `Prompt-only routers' AUROC for "escalating helps" on the test half: naive Bayes ${nbAuc.toFixed(3)}, group rate ${groupAuc.toFixed(3)}, ModelRoute promptClassifier ${linAuc.toFixed(3)} (logistic regression, ${classifier.rule.weights.size} words kept, L2 ${classifier.l2} chosen on the held-out fold, AUROC there ${classifier.foldAuroc.toFixed(3)}).`,
    `Oracle (escalate exactly where the large answer is better, ${(100 * oracle.escalated).toFixed(0)}%): ${oracle.quality.toFixed(2)} at ${((100 * oracle.usdPer1k) / large.usdPer1k).toFixed(0)}% of always-large's cost.`,
  );
  const combined = combinedGate(train, test, costs, large, aurocs, classifier.l2);
  lines.push(...combined.lines);
  const headline: string[] = [];
  const describe = (label: string, pts: Point[]) => {
    const best = cheapestWithin(pts, large, 1);
    if (!best) return `${label}: never within 1 point of always-large`;
    const random = randomAtCost(small, large, best.usdPer1k);
    return `${label}: within 1 point (${best.quality.toFixed(2)} vs ${large.quality.toFixed(2)}) at ${((100 * best.usdPer1k) / large.usdPer1k).toFixed(0)}% of always-large's cost, escalating ${(100 * best.escalated).toFixed(0)}% (random at that cost: ${random.quality.toFixed(2)})`;
  };
  headline.push(
    describe("(a) classifier", nbPoints),
    describe("(a) group rate", groupPoints),
    describe("(a) length", lenPoints),
    describe("(a) ModelRoute promptClassifier", linPoints),
  );
  for (const [a, pts] of gateB) headline.push(describe(`(b) AUROC ${a}`, pts));
  for (const [a, pts] of combined.points) headline.push(describe(`(a)+(b) router and gate, AUROC ${a}`, pts));
  // The smallest modelled AUROC at which the aim (within 1 point at under half the cost) is met.
  let needed: number | undefined;
  for (let a = 0.6; a <= 0.99 + 1e-9 && needed === undefined; a += 0.01) {
    const conf = modelConfidences(test.map(smallAdequate), a, 1);
    const withConf = test.map((o, i) => ({ ...o, smallConfidence: conf[i] as number }));
    const pts = quantileThresholds(conf, SHARES).map((t) => cascadePoint(withConf, costs, t, FIRST_TOKENS));
    const best = cheapestWithin(pts, large, 1);
    if (best && best.usdPer1k < large.usdPer1k / 2) needed = a;
  }
  headline.push(
    needed === undefined
      ? "the aim (within 1 point at under half of always-large's cost) is not met by the gate at any AUROC up to 0.99"
      : `the gate meets the aim (within 1 point at under half the cost) from a confidence AUROC of ${needed.toFixed(2)} (seed 1)`,
  );
  lines.push("", ...headline.map((h) => `- ${h}`), "");
  const linBest = cheapestWithin(linPoints, large, 1);
  return {
    name: set.name,
    lines,
    headline: headline.join("; "),
    classifier: { rule: classifier.rule, escalateAbove: linBest?.threshold ?? 0 },
  };
}

/**
 * Router and gate together: escalate by z(confidence) - w·z(router score), the router being the prompt-only
 * scorer (naive Bayes or group rate) that ranks better on a held-out part of the training half, and w
 * picked there too (fold: training prompts split again by id; router trained on one part, w chosen on
 * the other with modelled confidences). Scored on the test half, 5 seeds. The modelled confidence is
 * drawn independently of the prompt, which is what lets the two add up: real logprobs and prompt
 * features are likely correlated, so this is an optimistic estimate.
 */
function combinedGate(
  train: readonly PromptOutcome[],
  test: readonly PromptOutcome[],
  costs: ReturnType<typeof costsFor>,
  large: Point,
  aurocs: number[],
  l2: number,
): { lines: string[]; points: Map<number, Point[]> } {
  const fitPart = train.filter((o) => foldOf(o.id) === "fit");
  const pickPart = train.filter((o) => foldOf(o.id) === "pick");
  const routers = (fit: readonly PromptOutcome[]) => {
    const nb = trainNaiveBayes(fit.map((o) => ({ features: promptFeatures(o), label: escalationHelps(o) })));
    const group = trainGroupRates(fit);
    const linear = trainLinearRouter(fit, { l2 });
    return {
      "naive Bayes": (o: PromptOutcome) => nb.score(promptFeatures(o)),
      "group rate": group,
      promptClassifier: (o: PromptOutcome) => linearRouterScore(linear, o),
    };
  };
  const foldRouters = routers(fitPart);
  const ranked = (Object.entries(foldRouters) as Array<[string, (o: PromptOutcome) => number]>)
    .map(([name, f]) => [name, auroc(pickPart.map(f), pickPart.map(escalationHelps))] as const)
    .sort((a, b) => b[1] - a[1]);
  const routerName = ranked[0]![0] as keyof ReturnType<typeof routers>;
  // Escalate when z(confidence) - w·z(router) < t, i.e. keep when confidence >= t' + w'·router with
  // w' = w / sd(router), t' = t - w'·mean(router): a ModelRoute promptClassifier's confidenceWeight,
  // applied by the gateway's decision (decideCascade) with the router's score as the classifier score.
  const curve = (set: readonly PromptOutcome[], router: number[], a: number, w: number, seed: number) => {
    const conf = standardize(modelConfidences(set.map(smallAdequate), a, seed));
    const z = standardize(router);
    const mean = router.reduce((acc, x) => acc + x, 0) / Math.max(1, router.length);
    const sd = Math.sqrt(router.reduce((acc, x) => acc + (x - mean) ** 2, 0) / Math.max(1, router.length)) || 1;
    const score = conf.map((c, i) => c - w * (z[i] as number));
    const withConf = set.map((o, i) => ({ ...o, smallConfidence: conf[i] as number }));
    const rules = (t: number): CascadeRules => ({
      ...benchRules(t - (w / sd) * mean, FIRST_TOKENS),
      promptClassifier: { weights: new Map(), bias: 0, perPromptTokenDoubling: 0, confidenceWeight: w / sd },
    });
    return quantileThresholds(score, SHARES).map((t) =>
      cascadePoint(withConf, costs, t, FIRST_TOKENS, undefined, rules(t), (i) => router[i] as number),
    );
  };
  const WEIGHTS = [0, 0.25, 0.5, 1, 2];
  const pickRouter = pickPart.map(foldRouters[routerName]);
  const testRouter = test.map(routers(train)[routerName]);
  const points = new Map<number, Point[]>();
  const chosen: string[] = [];
  for (const a of aurocs) {
    // The weight whose curve is best on the held-out part: mean quality over the escalation shares (a
    // smoother criterion than the single cheapest point on a few hundred prompts), two seeds.
    const meanQuality = (w: number) =>
      [101, 102]
        .flatMap((seed) => curve(pickPart, pickRouter, a, w, seed))
        .reduce((acc, p, _, all) => acc + p.quality / all.length, 0);
    const scored = WEIGHTS.map((x) => [x, meanQuality(x)] as const);
    const w = scored.reduce((best, x) => (x[1] > best[1] ? x : best))[0];
    chosen.push(`AUROC ${a}: w ${w}`);
    points.set(
      a,
      averagePoints(SEEDS.map((seed) => curve(test, testRouter, a, w, seed).map((p) => ({ ...p, strategy: `(a)+(b), AUROC ${a}` })))),
    );
  }
  void large;
  return {
    lines: [
      `Router and gate together (router: ${routerName}, chosen on a held-out part of the training half; weights ${chosen.join(", ")}; confidences modelled independent of the prompt, so optimistic).`,
    ],
    points,
  };
}

function readReplayCsv(file: string): Array<PromptOutcome & { tier?: string }> {
  return csvObjects(readFileSync(file, "utf8")).map((r, i) => {
    const num = (k: string) => {
      const v = Number(r[k]);
      if (!Number.isFinite(v)) throw new Error(`${file} row ${i + 2}: ${k} is not a number`);
      return v;
    };
    return {
      id: r.id || `row-${i}`,
      group: "",
      prompt: "",
      promptTokens: num("prompt_tokens"),
      small: { quality: num("small_quality"), outputTokens: num("small_output_tokens") },
      large: { quality: num("large_quality"), outputTokens: num("large_output_tokens") },
      smallConfidence: num("small_confidence"),
      ...(r.tier ? { tier: r.tier } : {}),
    };
  });
}

function writeOutcomesCsv(file: string, outcomes: readonly PromptOutcome[]): void {
  const header =
    "id,prompt_tokens,small_confidence,small_quality,large_quality,small_output_tokens,large_output_tokens";
  const body = outcomes.map((o) =>
    [
      o.id,
      o.promptTokens,
      o.smallConfidence ?? "",
      o.small.quality,
      o.large.quality,
      o.small.outputTokens,
      o.large.outputTokens,
    ]
      .map((v) => csvField(v))
      .join(","),
  );
  writeFileSync(file, [header, ...body].join("\n") + "\n");
}

function replay(
  file: string,
  smallModel: string,
  largeModel: string,
  gpu: string,
  largeTiers: string[],
): void {
  const rows = readReplayCsv(file);
  const costs = costsFor({ smallCatalogue: smallModel, largeCatalogue: largeModel }, gpu);
  const small = fixedPoint("always-small", rows, costs, false);
  const large = fixedPoint("always-large", rows, costs, true);
  const conf = rows.map((r) => r.smallConfidence as number);
  const out = [
    `Replay of ${rows.length} prompts from ${file} (costs: ${costs.small.model} / ${costs.large.model} on ${gpu})`,
    "",
    "| strategy | escalated | quality | $ / 1k req |",
    "|---|---|---|---|",
    fmt(small),
    fmt(large),
  ];
  const pts = quantileThresholds(conf, SHARES).map((t) => {
    const rules: CascadeRules = {
      steps: [{ model: "small" }, { model: "large" }],
      largeForTiers: largeTiers,
      confidence: { firstTokens: FIRST_TOKENS, metric: "mean", minLogprob: t },
      streaming: "hold",
    };
    return cascadePoint(rows, costs, t, FIRST_TOKENS, (o) => (o as { tier?: string }).tier, rules);
  });
  for (const p of pts)
    out.push(`${fmt(p)} minLogprob ${p.threshold?.toFixed(3)}`, fmt(randomAtCost(small, large, p.usdPer1k)));
  const best = cheapestWithin(pts, large, 1);
  out.push(
    "",
    best
      ? `Cheapest within 1 point of always-large: minLogprob ${best.threshold?.toFixed(3)}, ${((100 * best.usdPer1k) / large.usdPer1k).toFixed(0)}% of its cost.`
      : "No threshold comes within 1 point of always-large.",
  );
  process.stdout.write(out.join("\n") + "\n");
}

function main(): void {
  const { values } = parseArgs({
    options: {
      auroc: { type: "string" },
      "write-csv": { type: "string" },
      "write-route": { type: "string" },
      replay: { type: "string" },
      small: { type: "string", default: "llama-3.1-8b" },
      large: { type: "string", default: "llama-3.1-70b" },
      gpu: { type: "string", default: PRICE_GPU },
      "large-tiers": { type: "string", default: "" },
    },
  });
  const gpu = values.gpu as string;
  if (values.replay) {
    replay(
      values.replay,
      values.small as string,
      values.large as string,
      gpu,
      (values["large-tiers"] as string).split(",").filter(Boolean),
    );
    return;
  }
  const aurocs = values.auroc ? values.auroc.split(",").map(Number) : [0.6, 0.65, 0.69, 0.8, 0.9];
  const sets = [loadRouteLlmMmlu(), loadRouteLlmGsm8k(), ...loadAlpacaLadders()];
  const out: string[] = [
    "## Cascade: cost-quality on the routing data (test halves)",
    `Gate (b) confidences modelled at AUROC ${aurocs.join(", ")} (5 seeds averaged); the gate reads ${FIRST_TOKENS} tokens; an escalated request pays the small model's prompt + ${FIRST_TOKENS} tokens, then the large model.`,
    "",
  ];
  for (const set of sets) {
    const report = evaluateSet(set, gpu, aurocs);
    out.push(...report.lines);
    if (values["write-route"]) {
      mkdirSync(values["write-route"], { recursive: true });
      const name = set.name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 50);
      const file = join(values["write-route"], `${name}.yaml`);
      const promptClassifier = classifierSpec(report.classifier.rule, report.classifier.escalateAbove);
      writeFileSync(
        file,
        stringify({
          apiVersion: "gpufleet.io/v1alpha1",
          kind: "ModelRoute",
          metadata: { name },
          spec: {
            model: name,
            steps: [{ modelDeployment: "small" }, { modelDeployment: "large" }],
            promptClassifier,
          },
        }),
      );
      out.push(
        `(wrote ${file}: promptClassifier escalating above ${String(promptClassifier.escalateAbove)}, the cheapest point within 1 point of always-large on the test half, or 0 when none is; -100: escalate every prompt)`,
        "",
      );
    }
    if (values["write-csv"]) {
      mkdirSync(values["write-csv"], { recursive: true });
      const test = set.outcomes.filter((o) => splitOf(o.id) === "test");
      const conf = modelConfidences(test.map(smallAdequate), 0.65, 1);
      const file = join(values["write-csv"], `${set.name.replace(/[^A-Za-z0-9.-]+/g, "_")}.csv`);
      writeOutcomesCsv(
        file,
        test.map((o, i) => ({ ...o, smallConfidence: conf[i] as number })),
      );
      out.push(`(wrote ${file})`, "");
    }
  }
  process.stdout.write(out.join("\n") + "\n");
}

main();

export type { ReplicaCost };
