/**
 * Loaders for the public LLM request traces in `../shared/data/traces/` (see its README.md):
 * - Azure LLM inference trace 2023, code (Patel et al., "Splitwise", ISCA 2024; CC-BY-4.0):
 *   CSV `TIMESTAMP,ContextTokens,GeneratedTokens`, local wall-clock timestamps with 7 fractional
 *   digits, no trailing newline.
 * - Mooncake FAST'25 conversation trace (Qin et al., "Mooncake", FAST 2025; Apache-2.0): JSON lines
 *   `{timestamp (ms), input_length, output_length, hash_ids}`.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { prng } from "../prng.js";

export interface TraceRequest {
  /** Milliseconds since the first request of the trace. */
  arrivalMs: number;
  promptTokens: number;
  outputTokens: number;
  /**
   * Prompt block ids (Mooncake `hash_ids`: one per MOONCAKE_BLOCK_TOKENS tokens, the last block
   * partial; equal ids at equal positions mean a shared prefix). Absent for traces without them.
   */
  blockIds?: number[];
}

/** Tokens per Mooncake `hash_ids` block (FAST25-release README: "The block size is 512 tokens"). */
export const MOONCAKE_BLOCK_TOKENS = 512;

export interface Trace {
  name: string;
  requests: TraceRequest[];
  /** Arrival of the last request, ms. */
  durationMs: number;
}

/** Parse "2023-11-16 18:17:03.9799600" to ms since the epoch (read as UTC; only differences matter). */
export function parseAzureTimestamp(text: string): number {
  const match = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(text.trim());
  if (!match) throw new Error(`bad Azure trace timestamp: ${JSON.stringify(text)}`);
  const [, y, mo, d, h, mi, s, frac = ""] = match;
  const whole = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  // Fraction of a second with any number of digits (the trace has 7: 100 ns resolution).
  const fractionMs = frac === "" ? 0 : Number(`0.${frac}`) * 1000;
  return whole + fractionMs;
}

export function parseAzureCsv(text: string, name = "azure"): Trace {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  const header = lines.shift();
  if (header?.trim() !== "TIMESTAMP,ContextTokens,GeneratedTokens") {
    throw new Error(`unexpected Azure trace header: ${JSON.stringify(header)}`);
  }
  const rows = lines.map((line, i) => {
    const [ts, context, generated] = line.split(",");
    const promptTokens = Number(context);
    const outputTokens = Number(generated);
    if (ts === undefined || !Number.isFinite(promptTokens) || !Number.isFinite(outputTokens)) {
      throw new Error(`bad Azure trace row ${i + 2}: ${JSON.stringify(line)}`);
    }
    return { atMs: parseAzureTimestamp(ts), promptTokens, outputTokens, blockIds: undefined };
  });
  return toTrace(name, rows);
}

export function parseMooncakeJsonl(text: string, name = "mooncake"): Trace {
  const rows = text
    .split(/\r?\n/)
    .filter((l) => l.trim() !== "")
    .map((line, i) => {
      const o = JSON.parse(line) as {
        timestamp?: unknown;
        input_length?: unknown;
        output_length?: unknown;
        hash_ids?: unknown;
      };
      if (
        typeof o.timestamp !== "number" ||
        typeof o.input_length !== "number" ||
        typeof o.output_length !== "number"
      ) {
        throw new Error(`bad Mooncake trace line ${i + 1}`);
      }
      const ids = o.hash_ids;
      const blockIds =
        Array.isArray(ids) && ids.every((x) => typeof x === "number" && Number.isSafeInteger(x))
          ? (ids as number[])
          : undefined;
      return { atMs: o.timestamp, promptTokens: o.input_length, outputTokens: o.output_length, blockIds };
    });
  return toTrace(name, rows);
}

function toTrace(
  name: string,
  rows: Array<{ atMs: number; promptTokens: number; outputTokens: number; blockIds: number[] | undefined }>,
): Trace {
  rows.sort((a, b) => a.atMs - b.atMs);
  const start = rows[0]?.atMs ?? 0;
  const requests = rows.map((r) => ({
    arrivalMs: r.atMs - start,
    // An engine needs at least one token each way; the traces hold a few zero-length outputs.
    promptTokens: Math.max(1, Math.round(r.promptTokens)),
    outputTokens: Math.max(1, Math.round(r.outputTokens)),
    ...(r.blockIds === undefined ? {} : { blockIds: r.blockIds }),
  }));
  return { name, requests, durationMs: requests[requests.length - 1]?.arrivalMs ?? 0 };
}

/** The repository root (this file is sim/eval/traces.ts). */
export function repoRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
}

/** `$GPUFLEET_SHARED_DATA`, else `<repoRoot>/../shared/data` (CI places shared/ beside the clone). */
export function sharedDataDir(): string {
  const fromEnv = process.env.GPUFLEET_SHARED_DATA;
  return fromEnv && fromEnv !== "" ? path.resolve(fromEnv) : path.resolve(repoRoot(), "..", "shared", "data");
}

export const KNOWN_TRACES = {
  "azure-code": "traces/azure-llm-2023-code.csv",
  mooncake: "traces/mooncake-fast25-conversation.jsonl",
} as const;

/** Load a trace by known name (`azure-code`, `mooncake`) or by file path (.csv or .jsonl). */
export function loadTrace(nameOrPath: string): Trace {
  const known = (KNOWN_TRACES as Record<string, string>)[nameOrPath];
  const file = known ? path.join(sharedDataDir(), known) : path.resolve(nameOrPath);
  const text = readFileSync(file, "utf8");
  const name = known ? nameOrPath : path.basename(file);
  if (file.endsWith(".csv")) return parseAzureCsv(text, name);
  if (file.endsWith(".jsonl")) return parseMooncakeJsonl(text, name);
  throw new Error(`unknown trace format: ${file} (expected .csv or .jsonl)`);
}

/** Requests per window of `windowMs`, for plots and the oracle. */
export function arrivalsPerWindow(trace: Trace, windowMs: number): number[] {
  const counts = new Array<number>(Math.floor(trace.durationMs / windowMs) + 1).fill(0);
  for (const r of trace.requests) {
    const i = Math.floor(r.arrivalMs / windowMs);
    counts[i] = (counts[i] ?? 0) + 1;
  }
  return counts;
}

/** The repository's seeded PRNG (sim/prng.ts), under the name the evaluation code uses. */
export const seededRandom = prng;

/**
 * Scale a trace's load by `factor` while keeping its shape over time: each request is repeated
 * floor(factor) times (plus once more with probability frac(factor)), copies spread by a
 * deterministic jitter of up to ±`jitterMs`. Used to size a trace to a fleet of several replicas.
 */
export function scaleLoad(trace: Trace, factor: number, jitterMs = 500): Trace {
  if (factor === 1) return trace;
  const random = seededRandom(0x9e3779b9);
  const out: TraceRequest[] = [];
  for (const r of trace.requests) {
    const copies = Math.floor(factor) + (random() < factor - Math.floor(factor) ? 1 : 0);
    for (let c = 0; c < copies; c++) {
      const arrivalMs = c === 0 ? r.arrivalMs : Math.max(0, r.arrivalMs + (random() * 2 - 1) * jitterMs);
      out.push({ ...r, arrivalMs });
    }
  }
  out.sort((a, b) => a.arrivalMs - b.arrivalMs);
  return { name: `${trace.name}×${factor}`, requests: out, durationMs: out[out.length - 1]?.arrivalMs ?? 0 };
}
