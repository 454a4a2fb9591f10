/**
 * LLM request traces from the shared data folder (see ../shared/data/README.md):
 * - azure-code: Azure LLM inference trace 2023, code service (Patel et al., "Splitwise", ISCA 2024),
 *   CSV `TIMESTAMP,ContextTokens,GeneratedTokens`, wall-clock timestamps with 7 fractional digits;
 * - mooncake: Mooncake FAST'25 conversation trace (Qin et al., "Mooncake", FAST 2025), JSONL with
 *   `timestamp` (ms), `input_length`, `output_length`.
 * Parsing is pure (text in, requests out); only `loadTrace` touches the file system.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface TraceRequest {
  /** Arrival time relative to the first request of the trace, ms. */
  offsetMs: number;
  promptTokens: number;
  outputTokens: number;
}

export const TRACE_FILES = {
  "azure-code": "traces/azure-llm-2023-code.csv",
  mooncake: "traces/mooncake-fast25-conversation.jsonl",
} as const;

export type TraceName = keyof typeof TRACE_FILES;

export function isTraceName(name: string): name is TraceName {
  return Object.prototype.hasOwnProperty.call(TRACE_FILES, name);
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The shared data folder: $GPUFLEET_SHARED_DATA, else <repo root>/../shared/data. */
export function sharedDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.GPUFLEET_SHARED_DATA ?? join(REPO_ROOT, "..", "shared", "data");
}

const AZURE_TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?$/;

/** Milliseconds of a wall-clock timestamp; only differences matter, so the zone is irrelevant. */
export function azureTimestampMs(text: string): number {
  const match = AZURE_TIMESTAMP.exec(text.trim());
  if (!match) throw new Error(`bad trace timestamp ${JSON.stringify(text)}`);
  const [, y, mo, d, h, mi, s, fraction = ""] = match;
  const wholeMs = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  return wholeMs + (fraction === "" ? 0 : Number(`0.${fraction}`) * 1000);
}

export function parseAzureTrace(text: string): TraceRequest[] {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== "");
  const header = lines.shift();
  if (header?.trim() !== "TIMESTAMP,ContextTokens,GeneratedTokens")
    throw new Error(`unexpected Azure trace header ${JSON.stringify(header)}`);
  const rows = lines.map((line, i) => {
    const [timestamp = "", context = "", generated = ""] = line.split(",");
    const promptTokens = Number(context);
    const outputTokens = Number(generated);
    if (!Number.isInteger(promptTokens) || !Number.isInteger(outputTokens))
      throw new Error(`bad Azure trace row ${i + 2}: ${line}`);
    return { atMs: azureTimestampMs(timestamp), promptTokens, outputTokens };
  });
  return relativize(rows);
}

export function parseMooncakeTrace(text: string): TraceRequest[] {
  const rows = text
    .split(/\r?\n/)
    .filter((line) => line.trim() !== "")
    .map((line, i) => {
      const row = JSON.parse(line) as {
        timestamp?: unknown;
        input_length?: unknown;
        output_length?: unknown;
      };
      if (
        typeof row.timestamp !== "number" ||
        typeof row.input_length !== "number" ||
        typeof row.output_length !== "number"
      ) {
        throw new Error(`bad Mooncake trace line ${i + 1}`);
      }
      return { atMs: row.timestamp, promptTokens: row.input_length, outputTokens: row.output_length };
    });
  return relativize(rows);
}

function relativize(rows: { atMs: number; promptTokens: number; outputTokens: number }[]): TraceRequest[] {
  rows.sort((a, b) => a.atMs - b.atMs);
  const start = rows[0]?.atMs ?? 0;
  return rows.map((r) => ({
    offsetMs: r.atMs - start,
    promptTokens: r.promptTokens,
    outputTokens: r.outputTokens,
  }));
}

export function loadTrace(name: TraceName, dataDir = sharedDataDir()): TraceRequest[] {
  const path = join(dataDir, TRACE_FILES[name]);
  if (!existsSync(path))
    throw new Error(
      `trace ${name} not found at ${path} (set GPUFLEET_SHARED_DATA to the shared data folder)`,
    );
  const text = readFileSync(path, "utf8");
  return name === "azure-code" ? parseAzureTrace(text) : parseMooncakeTrace(text);
}

export interface ScheduleOptions {
  /** Trace time runs this many times faster than real time (10 → a 1-hour trace replays in 6 min). */
  speedup: number;
  maxRequests: number;
  /** Requests arriving later than this (in replay time) are dropped. */
  maxDurationMs: number;
  /** Skip the first part of the trace (trace time), ms. */
  startAtMs?: number;
}

export interface ScheduledRequest extends TraceRequest {
  /** When to send it, relative to the start of the replay (real ms). */
  sendAtMs: number;
  index: number;
}

/** Time-scales and bounds a trace into a replay schedule. */
export function scheduleTrace(trace: readonly TraceRequest[], options: ScheduleOptions): ScheduledRequest[] {
  if (!(options.speedup > 0)) throw new Error("speedup must be positive");
  const startAt = options.startAtMs ?? 0;
  const out: ScheduledRequest[] = [];
  for (const request of trace) {
    if (request.offsetMs < startAt) continue;
    if (out.length >= options.maxRequests) break;
    const sendAtMs = (request.offsetMs - startAt) / options.speedup;
    if (sendAtMs > options.maxDurationMs) break;
    out.push({ ...request, sendAtMs, index: out.length });
  }
  return out;
}
