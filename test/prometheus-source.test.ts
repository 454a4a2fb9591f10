/**
 * The Prometheus HTTP API source against a real Prometheus server, the pinned one of
 * tools/prometheus/go.mod (found or built by tools/binaries.ts, like the cluster binaries;
 * `npm run cluster:build` builds it ahead). Prometheus runs on
 * 127.0.0.1 with a temporary config scraping two simulated engines (vLLM and trtllm-serve) on
 * 127.0.0.1, and the source must read back what the engines report. No cluster is needed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PodSampleResult, queryDeploymentSamples } from "../operator/metrics/prometheus-source.js";
import { ensurePinnedBinaries } from "../tools/binaries.js";
import type { EngineParams } from "../sim/engine/model.js";
import { type EngineServer, startEngineServer } from "../sim/engine/server.js";

const ENGINE: EngineParams = {
  kvCapacityTokens: 8192,
  blockSizeTokens: 16,
  maxNumSeqs: 4,
  maxNumBatchedTokens: 512,
  watermarkFraction: 0.01,
  weightReadMs: 5,
  computeMsPerToken: 0.002,
  kvReadMsPerToken: 0.0001,
  stepOverheadMs: 5,
  maxModelLenTokens: 8192,
};

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
}

describe("Prometheus HTTP API source against a real Prometheus", () => {
  let prometheus: ChildProcess | undefined;
  let prometheusLog = "";
  let dataDir = "";
  let baseUrl = "";
  const engines: EngineServer[] = [];
  const load: Promise<unknown>[] = [];

  beforeAll(async () => {
    // Found or built by the cluster project's global setup; built here (minutes) when run alone.
    const binaries = await ensurePinnedBinaries(["prometheus"]);
    const vllm = await startEngineServer({
      host: "127.0.0.1",
      port: 0,
      engine: "vllm",
      modelName: "sim-llama",
      params: ENGINE,
    });
    const trtllm = await startEngineServer({
      host: "127.0.0.1",
      port: 0,
      engine: "tensorrt-llm",
      modelName: "sim-llama",
      params: ENGINE,
    });
    engines.push(vllm, trtllm);
    // Keep 6 long requests on the vLLM engine (4 run, 2 wait) for the whole test; they end when it closes.
    for (let i = 0; i < 6; i++) {
      load.push(
        fetch(`${vllm.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ prompt: "x".repeat(800), max_tokens: 5000 }),
        }).catch(() => undefined),
      );
    }

    dataDir = mkdtempSync(join(tmpdir(), "gpufleet-prom-"));
    const port = await freePort();
    baseUrl = `http://127.0.0.1:${port}`;
    const config = [
      "global:",
      "  scrape_interval: 1s",
      "  scrape_timeout: 900ms",
      "scrape_configs:",
      "  - job_name: vllm",
      "    static_configs:",
      `      - targets: ["127.0.0.1:${vllm.port}"]`,
      '        labels: {namespace: "default", model_deployment: "demo", pod: "demo-0"}',
      "  - job_name: trtllm",
      "    metrics_path: /prometheus/metrics",
      "    static_configs:",
      `      - targets: ["127.0.0.1:${trtllm.port}"]`,
      '        labels: {namespace: "default", model_deployment: "demo-trt", pod: "demo-trt-0"}',
      "",
    ].join("\n");
    writeFileSync(join(dataDir, "prometheus.yml"), config);
    prometheus = spawn(
      binaries.prometheus,
      [
        `--config.file=${join(dataDir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dataDir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    prometheus.stderr?.on("data", (chunk: Buffer) => {
      prometheusLog = (prometheusLog + chunk.toString()).slice(-4000);
    });
    await until("Prometheus to be ready", 30_000, async () => {
      if (prometheus?.exitCode !== null) throw new Error(`prometheus exited: ${prometheusLog}`);
      return (await fetch(`${baseUrl}/-/ready`)).ok ? true : undefined;
    });
  }, 600_000);

  afterAll(async () => {
    if (prometheus && prometheus.exitCode === null) {
      const exited = new Promise((resolve) => prometheus?.once("exit", resolve));
      prometheus.kill("SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
      if (prometheus.exitCode === null) prometheus.kill("SIGKILL");
    }
    await Promise.all(engines.map((engine) => engine.close()));
    await Promise.all(load);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("reads the busy vLLM engine's KV utilization and queue through PromQL", async () => {
    const [demo] = await until<PodSampleResult[]>("vLLM samples in Prometheus", 30_000, async () => {
      const results = await queryDeploymentSamples(
        { baseUrl, timeoutMs: 2000 },
        { namespace: "default", name: "demo", engine: "vllm", modelName: "sim-llama" },
      );
      return results.length > 0 && results.every((r) => r.ok) ? results : undefined;
    });
    expect(demo?.pod).toBe("demo-0");
    expect(demo?.ok && demo.sample).toMatchObject({ requestsRunning: 4, requestsWaiting: 2 });
    expect(demo?.ok && demo.sample.kvCacheUtilization).toBeGreaterThan(0);
    expect(demo?.ok && demo.sample.scrapedAtMs).toBeGreaterThan(Date.now() - 60_000);
  });

  it("reads the idle trtllm-serve engine scraped on /prometheus/metrics", async () => {
    const results = await until<PodSampleResult[]>("trtllm samples in Prometheus", 30_000, async () => {
      const found = await queryDeploymentSamples(
        { baseUrl, timeoutMs: 2000 },
        { namespace: "default", name: "demo-trt", engine: "trtllm-serve" },
      );
      return found.length > 0 ? found : undefined;
    });
    expect(results).toEqual([
      {
        pod: "demo-trt-0",
        ok: true,
        sample: {
          kvCacheUtilization: 0,
          requestsRunning: 0,
          requestsWaiting: 0,
          scrapedAtMs: expect.any(Number) as number,
        },
      },
    ]);
  });

  it("reports a deployment Prometheus knows nothing of as no pods", async () => {
    expect(
      await queryDeploymentSamples(
        { baseUrl, timeoutMs: 2000 },
        { namespace: "default", name: "absent", engine: "vllm" },
      ),
    ).toEqual([]);
  });
});
