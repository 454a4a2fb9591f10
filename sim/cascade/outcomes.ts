/**
 * Per-prompt outcomes of a small and a large model on the same prompts, from the public routing data in
 * `../shared/data/routing/` (see its README.md):
 * - RouteLLM (Ong et al., arXiv 2406.18665; Apache-2.0): whether Mixtral-8x7B-Instruct and GPT-4-1106
 *   answered each MMLU question (14,042) and GSM8K problem (1,319) correctly.
 * - AlpacaEval 2 (tatsu-lab/alpaca_eval; Apache-2.0): per instruction (805), the judged probability that
 *   a model's answer beats GPT-4-1106's, for size ladders of one family.
 * The files hold no token counts: prompts and answers are counted as characters / 4.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sharedDataDir } from "../eval/traces.js";
import { csvObjects } from "./csv.js";

export interface ModelOutcome {
  /** 0..1: correct (1) or not (0), or a judged win probability. */
  quality: number;
  outputTokens: number;
}

export interface PromptOutcome {
  id: string;
  /** MMLU subject, GSM8K, or the AlpacaEval source set. */
  group: string;
  prompt: string;
  promptTokens: number;
  small: ModelOutcome;
  large: ModelOutcome;
  /** The small model's confidence (mean token logprob over its first tokens), measured or modelled. */
  smallConfidence?: number;
}

export interface OutcomeSet {
  name: string;
  smallModel: string;
  largeModel: string;
  /** Planner catalogue ids that price each model (a stand-in is named in `costNote`). */
  smallCatalogue: string;
  largeCatalogue: string;
  costNote: string;
  /** What `quality` means, for the report. */
  qualityUnit: string;
  outcomes: PromptOutcome[];
}

const tokens = (chars: number) => Math.max(1, Math.round(chars / 4));
const routingDir = () => join(sharedDataDir(), "routing");
const truthy = (s: string | undefined) => (s ?? "").trim().toLowerCase() === "true";

/** MMLU answers are one letter; RouteLLM's files keep no answer text. Counted as 2 output tokens. */
const MMLU_OUTPUT_TOKENS = 2;

export function loadRouteLlmMmlu(): OutcomeSet {
  const rows = csvObjects(readFileSync(join(routingDir(), "routellm-mmlu-gpt4-vs-mixtral.csv"), "utf8"));
  const outcomes = rows.map((r, i) => ({
    id: `mmlu-${i}`,
    group: r.subject ?? "",
    prompt: r.prompt ?? "",
    promptTokens: tokens((r.prompt ?? "").length),
    small: {
      quality: truthy(r["mistralai/Mixtral-8x7B-Instruct-v0.1"]) ? 1 : 0,
      outputTokens: MMLU_OUTPUT_TOKENS,
    },
    large: { quality: truthy(r["gpt-4-1106-preview"]) ? 1 : 0, outputTokens: MMLU_OUTPUT_TOKENS },
  }));
  return {
    name: "RouteLLM MMLU",
    smallModel: "Mixtral-8x7B-Instruct",
    largeModel: "GPT-4-1106",
    smallCatalogue: "mixtral-8x7b",
    largeCatalogue: "llama-3.1-70b",
    costNote:
      "GPT-4's size is unpublished: priced as llama-3.1-70b, a conservative stand-in (a larger one makes the cascade cheaper relative to it)",
    qualityUnit: "accuracy %",
    outcomes,
  };
}

export function loadRouteLlmGsm8k(): OutcomeSet {
  const rows = csvObjects(readFileSync(join(routingDir(), "routellm-gsm8k-gpt4-vs-mixtral.csv"), "utf8"));
  const small = "mistralai/Mixtral-8x7B-Instruct-v0.1";
  const large = "gpt-4-1106-preview";
  const outcomes = rows.map((r, i) => ({
    id: `gsm8k-${i}`,
    group: "gsm8k",
    prompt: r.prompt ?? "",
    promptTokens: tokens((r.prompt ?? "").length),
    small: { quality: truthy(r[small]) ? 1 : 0, outputTokens: tokens((r[`${small}_response`] ?? "").length) },
    large: { quality: truthy(r[large]) ? 1 : 0, outputTokens: tokens((r[`${large}_response`] ?? "").length) },
  }));
  return {
    name: "RouteLLM GSM8K",
    smallModel: "Mixtral-8x7B-Instruct",
    largeModel: "GPT-4-1106",
    smallCatalogue: "mixtral-8x7b",
    largeCatalogue: "llama-3.1-70b",
    costNote:
      "GPT-4's size is unpublished: priced as llama-3.1-70b, a conservative stand-in (a larger one makes the cascade cheaper relative to it)",
    qualityUnit: "accuracy %",
    outcomes,
  };
}

/** AlpacaEval 2 ladders whose sizes the planner's catalogue prices directly. */
export const ALPACA_LADDERS = [
  {
    small: "FuseChat-Llama-3.2-1B-Instruct",
    large: "FuseChat-Llama-3.1-8B-Instruct",
    smallCat: "llama-3.2-1b",
    largeCat: "llama-3.1-8b",
  },
  {
    small: "FuseChat-Llama-3.2-3B-Instruct",
    large: "FuseChat-Llama-3.1-8B-Instruct",
    smallCat: "llama-3.2-3b",
    largeCat: "llama-3.1-8b",
  },
  {
    small: "gemma-2b-it",
    large: "gemma-7b-it",
    smallCat: "llama-3.2-3b",
    largeCat: "llama-3.1-8b",
    note: "gemma 2b (2.5B) and 7b (8.5B) are not in the catalogue: priced as llama-3.2-3b and llama-3.1-8b",
  },
  // vicuna 7b / 13b (Llama 2) are left out: the catalogue has no 13B model to price the large one.
] as const;

export function loadAlpacaLadders(): OutcomeSet[] {
  const dir = routingDir();
  const instructions = new Map<string, { dataset: string; text: string }>();
  for (const r of csvObjects(readFileSync(join(dir, "alpacaeval2-instructions.csv"), "utf8")))
    instructions.set(r.instruction_idx ?? "", { dataset: r.dataset ?? "", text: r.instruction ?? "" });
  // model -> instruction -> outcome (a model listed twice for one instruction keeps the first row).
  const byModel = new Map<string, Map<string, ModelOutcome>>();
  const wanted = new Set<string>(ALPACA_LADDERS.flatMap((l) => [l.small, l.large]));
  for (const r of csvObjects(readFileSync(join(dir, "alpacaeval2-per-prompt-preference.csv"), "utf8"))) {
    const model = r.model ?? "";
    if (!wanted.has(model)) continue;
    let m = byModel.get(model);
    if (!m) byModel.set(model, (m = new Map()));
    const idx = r.instruction_idx ?? "";
    if (m.has(idx)) continue;
    m.set(idx, {
      quality: Number(r.win_prob_vs_reference),
      outputTokens: tokens(Number(r.model_output_chars)),
    });
  }
  return ALPACA_LADDERS.map((ladder) => {
    const small = byModel.get(ladder.small) ?? new Map<string, ModelOutcome>();
    const large = byModel.get(ladder.large) ?? new Map<string, ModelOutcome>();
    const outcomes: PromptOutcome[] = [];
    for (const [idx, s] of small) {
      const l = large.get(idx);
      const ins = instructions.get(idx);
      if (!l || !ins || !Number.isFinite(s.quality) || !Number.isFinite(l.quality)) continue;
      outcomes.push({
        id: `alpaca-${idx}`,
        group: ins.dataset,
        prompt: ins.text,
        promptTokens: tokens(ins.text.length),
        small: s,
        large: l,
      });
    }
    return {
      name: `AlpacaEval ${ladder.small} -> ${ladder.large}`,
      smallModel: ladder.small,
      largeModel: ladder.large,
      smallCatalogue: ladder.smallCat,
      largeCatalogue: ladder.largeCat,
      costNote:
        "note" in ladder ? ladder.note : "priced as the planner's catalogue entries of the same sizes",
      qualityUnit: "win rate vs GPT-4-1106 %",
      outcomes,
    };
  });
}

/** Whether the small model's answer is good enough (what its confidence should predict). */
export function smallAdequate(o: PromptOutcome): boolean {
  return o.small.quality >= o.large.quality;
}
