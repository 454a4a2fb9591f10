/**
 * Trace replay load generator.
 *
 *   npx tsx sim/loadgen/cli.ts --trace azure-code --speedup 10 --max-requests 500 --target http://127.1.0.5:8000
 *
 * Options: --trace azure-code|mooncake, --speedup N (trace time / real time), --max-requests N,
 * --max-duration SECONDS (of replay, default 300), --start-at SECONDS (of trace), --target URL
 * (repeatable or comma-separated), --balance round-robin|least-outstanding, --model NAME,
 * --max-output-tokens N, --timeout SECONDS (per request), --json (print the report as JSON),
 * --allow-remote (targets off loopback; by default only 127.0.0.0/8 and ::1 are accepted).
 * Progress goes to stderr; the report to stdout.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { BalancePolicy } from "./balance.js";
import { type LoadReport, progressBar, runLoad } from "./loadgen.js";
import { isTraceName, loadTrace, scheduleTrace } from "./trace.js";

export function isLoopbackUrl(url: string): boolean {
  const host = new URL(url).hostname;
  return /^127(\.\d{1,3}){3}$/.test(host) || host === "[::1]" || host === "localhost";
}

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!(n > 0)) throw new Error(`--${name} must be a positive number, got ${value}`);
  return n;
}

export function formatReport(report: LoadReport): string {
  const ms = (v: number) => (Number.isNaN(v) ? "-" : v.toFixed(1));
  const row = (name: string, s: LoadReport["ttftMs"]) =>
    `${name.padEnd(12)} ${ms(s.mean).padStart(9)} ${ms(s.p50).padStart(9)} ${ms(s.p90).padStart(9)} ${ms(s.p99).padStart(9)} ${ms(s.max).padStart(9)}`;
  return [
    `requests: ${report.sent} sent, ${report.succeeded} ok, ${report.failed} failed ${JSON.stringify(report.errors)} in ${(report.durationMs / 1000).toFixed(1)} s`,
    `output throughput: ${report.outputTokensPerSecond.toFixed(1)} tokens/s`,
    `per endpoint: ${JSON.stringify(report.perEndpoint)}`,
    `${"ms".padEnd(12)} ${"mean".padStart(9)} ${"p50".padStart(9)} ${"p90".padStart(9)} ${"p99".padStart(9)} ${"max".padStart(9)}`,
    row("TTFT", report.ttftMs),
    row("latency", report.latencyMs),
  ].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      trace: { type: "string", default: "azure-code" },
      speedup: { type: "string" },
      "max-requests": { type: "string" },
      "max-duration": { type: "string" },
      "start-at": { type: "string" },
      target: { type: "string", multiple: true },
      balance: { type: "string", default: "round-robin" },
      model: { type: "string" },
      "max-output-tokens": { type: "string" },
      timeout: { type: "string" },
      json: { type: "boolean", default: false },
      "allow-remote": { type: "boolean", default: false },
    },
  });
  const trace = values.trace ?? "azure-code";
  if (!isTraceName(trace)) throw new Error(`unknown trace ${trace} (azure-code, mooncake)`);
  const endpoints = (values.target ?? [])
    .flatMap((t) => t.split(","))
    .map((t) => t.trim().replace(/\/+$/, ""))
    .filter((t) => t !== "");
  if (endpoints.length === 0) throw new Error("give at least one --target URL");
  for (const endpoint of endpoints) {
    if (!values["allow-remote"] && !isLoopbackUrl(endpoint))
      throw new Error(`${endpoint} is not a loopback address (pass --allow-remote to override)`);
  }
  const balance = values.balance as BalancePolicy;
  if (balance !== "round-robin" && balance !== "least-outstanding")
    throw new Error("--balance must be round-robin or least-outstanding");
  const maxDurationMs = positive("max-duration", values["max-duration"], 300) * 1000;
  const schedule = scheduleTrace(loadTrace(trace), {
    speedup: positive("speedup", values.speedup, 1),
    maxRequests: Math.floor(positive("max-requests", values["max-requests"], 1000)),
    maxDurationMs,
    startAtMs: values["start-at"] === undefined ? 0 : Number(values["start-at"]) * 1000,
  });
  process.stderr.write(
    `replaying ${schedule.length} requests of ${trace} over ${((schedule.at(-1)?.sendAtMs ?? 0) / 1000).toFixed(1)} s against ${endpoints.join(", ")}\n`,
  );
  const report = await runLoad(schedule, {
    endpoints,
    policy: balance,
    ...(values.model === undefined ? {} : { model: values.model }),
    ...(values["max-output-tokens"] === undefined
      ? {}
      : { maxOutputTokens: Math.floor(positive("max-output-tokens", values["max-output-tokens"], 1)) }),
    requestTimeoutMs: positive("timeout", values.timeout, 120) * 1000,
    maxDurationMs,
    onProgress: progressBar(process.stderr),
  });
  process.stdout.write(`${values.json ? JSON.stringify(report, null, 2) : formatReport(report)}\n`);
  return report.failed === 0 ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`loadgen: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(2);
    },
  );
}
