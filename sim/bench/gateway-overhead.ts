/**
 * `npm run bench:gateway`: what the gateway adds to a request, on loopback. Small streaming completions
 * (a 64-character prompt, 8 output tokens) are sent open-loop at each rate of --rates, once straight to
 * simulated engines (round-robin) and once through the gateway in front of the same engines, in the
 * same run. Reported: time to first token and the gap between streamed chunks, p50/p99, for both paths
 * and the difference (what the gateway adds), plus the gateway's CPU per 1,000 requests and its RSS.
 *
 * Three processes, so that none measures itself: this one (load generator), one running the engines,
 * one running the gateway (the real GatewayServer with a fixed fleet, no cluster). Bounded: each run
 * lasts --seconds (default 5) after a 1 s warm-up. Each run also reports the CPU each process spent
 * per 1,000 requests (from /proc) and the cores the three need together at that rate: on a small
 * machine the load generator and the engines compete with the gateway for the same cores.
 *
 * So that the benchmark measures the gateway rather than itself, its two ends are cheap
 * (sim/bench/stream-io.ts): the load generator is a minimal HTTP/1.1 client over kept-alive sockets
 * with request bytes encoded before the run, and the engines (`--engine stepped`, the default) are
 * continuous-batching token sources with the engine model's decode step time and pre-encoded answers.
 * `--engine model` runs the full simulated vLLM engine (sim/engine/server.ts) instead. Both paths use
 * the same client and the same engines.
 *
 *   npm run bench:gateway [-- --seconds 5 --rates 500,2000 --engines 4 --tokens 8 --engine stepped|model]
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { percentile } from "./operator-scale-stats.js";
import { engineParamsForNames } from "../engine/model.js";
import { startEngineServer } from "../engine/server.js";
import { StaticFleet, staticEndpoint } from "../../gateway/fleet.js";
import { createGatewayMetrics } from "../../gateway/metrics.js";
import { GatewayServer } from "../../gateway/server.js";
import { startOpsServer } from "../../operator/runtime/ops-server.js";
import { StreamClient, type StreamSample, startSteppedEngine } from "./stream-io.js";

const MODEL = "bench-model";
const SELF = fileURLToPath(import.meta.url);

/** Child role: engines on 127.0.0.(10+i); prints their addresses as one JSON line. */
async function runEngines(count: number, kind: string): Promise<void> {
  const params = engineParamsForNames("llama-3.1-8b", "NVIDIA-H100-80GB-HBM3");
  const addresses: string[] = [];
  for (let i = 0; i < count; i++) {
    const host = `127.0.0.${10 + i}`;
    const server =
      kind === "model"
        ? await startEngineServer({ host, port: 0, engine: "vllm", modelName: MODEL, params })
        : await startSteppedEngine({ host, port: 0, modelName: MODEL, params });
    addresses.push(`${host}:${server.port}`);
  }
  process.stdout.write(`${JSON.stringify({ addresses })}\n`);
  process.once("SIGTERM", () => process.exit(0));
}

/** Child role: the gateway in front of `addresses`; prints its ports as one JSON line. */
async function runGateway(addresses: string[]): Promise<void> {
  const fleet = new StaticFleet();
  fleet.set({
    model: MODEL,
    namespace: "bench",
    name: "bench",
    endpoints: addresses.map((a, i) => {
      const [host, port] = a.split(":");
      return staticEndpoint(`engine-${i}`, host as string, Number(port), "bench");
    }),
  });
  const metrics = createGatewayMetrics();
  const server = new GatewayServer({ fleet, metrics });
  const port = await server.listen(0, "127.0.0.1");
  const ops = await startOpsServer({
    host: "127.0.0.1",
    port: 0,
    registry: metrics.registry,
    healthy: () => true,
    ready: () => true,
  });
  process.stdout.write(`${JSON.stringify({ port, opsPort: ops.port })}\n`);
  process.once("SIGTERM", () => process.exit(0));
}

function spawnRole(args: string[]): Promise<{ child: ChildProcess; info: Record<string, unknown> }> {
  // GATEWAY_BENCH_CPU_PROF=<dir>: V8 CPU profiles of the gateway (and of the engines with
  // GATEWAY_BENCH_CPU_PROF_ENGINES=1) written there at exit.
  const role = args[args.indexOf("--role") + 1];
  const profiled = role === "gateway" || (role === "engines" && process.env.GATEWAY_BENCH_CPU_PROF_ENGINES === "1");
  const profile =
    process.env.GATEWAY_BENCH_CPU_PROF && profiled
      ? ["--cpu-prof", "--cpu-prof-dir", process.env.GATEWAY_BENCH_CPU_PROF]
      : [];
  const child = spawn(process.execPath, [...profile, "--import", "tsx", SELF, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, GPUFLEET_LOG_LEVEL: "warn" },
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once("line", (line) => resolve({ child, info: JSON.parse(line) as Record<string, unknown> }));
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited ${code}`)));
  });
}

/**
 * Request bytes for `count` requests, encoded before a run. A distinct prompt per request: no prefix
 * affinity, so the gateway spreads requests over the engines like the direct path's round-robin, and
 * the comparison measures the proxy, not a routing choice.
 */
function encodeRequests(count: number, tokens: number): Buffer[] {
  return Array.from({ length: count }, (_, i) =>
    StreamClient.post(
      "/v1/completions",
      "bench",
      Buffer.from(
        JSON.stringify({
          model: MODEL,
          prompt: `Request ${i}. Summarize the following in one line: the quick brown fox jumps.`,
          max_tokens: tokens,
          stream: true,
        }),
      ),
    ),
  );
}

const WARMUP_MS = 1000;
const requestsFor = (rate: number, seconds: number) => Math.round(rate * (seconds + WARMUP_MS / 1000));

/** Open-loop load: `rate` requests/s for warmup + seconds; samples of the measured part only. */
async function load(
  targets: string[],
  rate: number,
  requests: readonly Buffer[],
): Promise<{ samples: StreamSample[]; sent: number }> {
  const client = new StreamClient();
  const total = requests.length;
  const samples: Promise<StreamSample>[] = [];
  const start = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
      while (sent < due) {
        const sample = client.send(targets[sent % targets.length] as string, requests[sent] as Buffer);
        if ((sent / rate) * 1000 >= WARMUP_MS) samples.push(sample);
        sent++;
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const done = await Promise.all(samples);
  client.close();
  return { samples: done, sent };
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux); NaN elsewhere. */
function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    // Fields after the command name: state is the 3rd field; utime and stime the 14th and 15th.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU seconds each of the three processes spent on one run. Per request it hardly depends on how busy
 * the machine is, so (load generator + engines + gateway) per request × the rate says how many cores
 * the run needs, whatever else the machine does.
 */
async function measureCpu<T>(
  pids: { engines: number | undefined; gateway: number | undefined },
  work: () => Promise<T>,
): Promise<{ result: T; loadgen: number; engines: number; gateway: number }> {
  const self0 = process.cpuUsage();
  const engines0 = processCpuSeconds(pids.engines);
  const gateway0 = processCpuSeconds(pids.gateway);
  const result = await work();
  const self = process.cpuUsage(self0);
  return {
    result,
    loadgen: (self.user + self.system) / 1e6,
    engines: processCpuSeconds(pids.engines) - engines0,
    gateway: processCpuSeconds(pids.gateway) - gateway0,
  };
}

async function gatewayProcessStats(opsPort: number): Promise<{ cpuSeconds: number; rssBytes: number }> {
  const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} ([0-9.e+-]+)$`, "m").exec(text)?.[1] ?? NaN);
  return { cpuSeconds: value("process_cpu_seconds_total"), rssBytes: value("process_resident_memory_bytes") };
}

/** Gateway path over direct path, measured in the same run (the machine's noise hits both). */
const ratio = (via: number | undefined, direct: number | undefined) =>
  via === undefined || direct === undefined || !(direct > 0) ? "-" : `${(via / direct).toFixed(2)}×`;

const fmt = (ms: number | undefined) => (ms === undefined || Number.isNaN(ms) ? "-" : ms.toFixed(2));

async function orchestrate(
  seconds: number,
  rates: number[],
  engines: number,
  tokens: number,
  engineKind: string,
): Promise<void> {
  const engineProcess = await spawnRole(["--role", "engines", "--engines", String(engines), "--engine", engineKind]);
  const addresses = engineProcess.info.addresses as string[];
  const gatewayProcess = await spawnRole(["--role", "gateway", "--addresses", addresses.join(",")]);
  const gateway = `127.0.0.1:${gatewayProcess.info.port as number}`;
  const opsPort = gatewayProcess.info.opsPort as number;
  const rows: string[][] = [];
  try {
    // JIT warm-up of the gateway process, not measured.
    const warmRate = rates[0] ?? 500;
    await load([gateway], warmRate, encodeRequests(requestsFor(warmRate, 1), tokens));
    for (const rate of rates) {
      const pids = { engines: engineProcess.child.pid, gateway: gatewayProcess.child.pid };
      const requests = encodeRequests(requestsFor(rate, seconds), tokens);
      const directRun = await measureCpu(pids, () => load(addresses, rate, requests));
      const direct = directRun.result;
      const before = await gatewayProcessStats(opsPort);
      const viaRun = await measureCpu(pids, () => load([gateway], rate, requests));
      const via = viaRun.result;
      const after = await gatewayProcessStats(opsPort);
      // CPU ms per 1,000 requests of each process, and the cores that makes at this rate.
      const cpu = (run: { loadgen: number; engines: number; gateway: number }, sent: number) => {
        const per1k = [run.loadgen, run.engines, run.gateway].map((x) => (x / sent) * 1e6);
        const cores = (per1k.reduce((a, b) => a + b, 0) / 1e6) * rate;
        return `${per1k.map((x) => x.toFixed(0)).join(" + ")} (${cores.toFixed(2)} cores at ${rate}/s)`;
      };
      const stats = (samples: StreamSample[]) => {
        const ok = samples.filter((s) => s.ok);
        const ttft = ok.map((s) => s.ttftMs);
        const gaps = ok.flatMap((s) => s.gapsMs);
        return {
          ok: ok.length,
          n: samples.length,
          ttft50: percentile(ttft, 50),
          ttft99: percentile(ttft, 99),
          gap50: percentile(gaps, 50),
          gap99: percentile(gaps, 99),
        };
      };
      const d = stats(direct.samples);
      const g = stats(via.samples);
      const diff = (a: number | undefined, b: number | undefined) =>
        a === undefined || b === undefined ? undefined : a - b;
      const cpuPer1000 = ((after.cpuSeconds - before.cpuSeconds) / via.sent) * 1000;
      rows.push(
        [
          `${rate}/s direct`,
          `${d.ok}/${d.n}`,
          fmt(d.ttft50),
          fmt(d.ttft99),
          fmt(d.gap50),
          fmt(d.gap99),
          "",
          "",
          cpu(directRun, direct.sent),
        ],
        [
          `${rate}/s gateway`,
          `${g.ok}/${g.n}`,
          fmt(g.ttft50),
          fmt(g.ttft99),
          fmt(g.gap50),
          fmt(g.gap99),
          (cpuPer1000 * 1000).toFixed(0),
          (after.rssBytes / 2 ** 20).toFixed(0),
          cpu(viaRun, via.sent),
        ],
        [
          `${rate}/s added`,
          "",
          fmt(diff(g.ttft50, d.ttft50)),
          fmt(diff(g.ttft99, d.ttft99)),
          fmt(diff(g.gap50, d.gap50)),
          fmt(diff(g.gap99, d.gap99)),
          "",
          "",
          "",
        ],
        [
          `${rate}/s ratio`,
          "",
          ratio(g.ttft50, d.ttft50),
          ratio(g.ttft99, d.ttft99),
          ratio(g.gap50, d.gap50),
          ratio(g.gap99, d.gap99),
          "",
          "",
          "",
        ],
      );
    }
  } finally {
    engineProcess.child.kill("SIGTERM");
    gatewayProcess.child.kill("SIGTERM");
  }
  const header = [
    "run",
    "ok/measured",
    "TTFT p50 ms",
    "TTFT p99 ms",
    "chunk gap p50 ms",
    "chunk gap p99 ms",
    "gateway CPU ms/1k req",
    "gateway RSS MiB",
    "CPU ms/1k req: load gen + engines + gateway",
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(" | ")} |`;
  process.stdout.write(
    [
      `gateway overhead, ${engines} ${engineKind === "model" ? "simulated vLLM engines" : "stepped engines (decode steps of the engine model)"} (Llama 3.1 8B on H100), ${tokens}-token streamed completions, ${seconds} s per run after 1 s warm-up; ` +
        `${cpus().length} CPUs, load average ${loadavg()
          .map((x) => x.toFixed(1))
          .join(" ")} at the end (the machine's other work included)`,
      line(header),
      `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`,
      ...rows.map(line),
      "",
    ].join("\n"),
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      role: { type: "string", default: "bench" },
      seconds: { type: "string", default: "5" },
      rates: { type: "string", default: "500,2000" },
      engines: { type: "string", default: "4" },
      tokens: { type: "string", default: "8" },
      addresses: { type: "string", default: "" },
      engine: { type: "string", default: "stepped" },
    },
  });
  const engines = Math.max(1, Math.min(16, Number(values.engines)));
  const engineKind = values.engine === "model" ? "model" : "stepped";
  if (values.role === "engines") return runEngines(engines, engineKind);
  if (values.role === "gateway") return runGateway((values.addresses ?? "").split(",").filter(Boolean));
  const seconds = Math.max(1, Math.min(60, Number(values.seconds)));
  const rates = (values.rates ?? "")
    .split(",")
    .map(Number)
    .filter((r) => r > 0 && r <= 10_000);
  const tokens = Math.max(2, Math.min(256, Number(values.tokens)));
  await orchestrate(seconds, rates, engines, tokens, engineKind);
  process.exit(0);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:gateway: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
