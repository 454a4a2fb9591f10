import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { V1Pod } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { type ScrapeTarget, scrapePods, scrapeTargetFromPod } from "./scrape.js";

const VLLM_TEXT = [
  "# TYPE vllm:num_requests_running gauge",
  'vllm:num_requests_running{model_name="m"} 2.0',
  "# TYPE vllm:num_requests_waiting gauge",
  'vllm:num_requests_waiting{model_name="m"} 5.0',
  "# TYPE vllm:kv_cache_usage_perc gauge",
  'vllm:kv_cache_usage_perc{model_name="m"} 0.25',
  "",
].join("\n");

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

function target(port: number, overrides: Partial<ScrapeTarget> = {}): ScrapeTarget {
  return {
    namespace: "ns",
    podName: `pod-${port}`,
    podIP: "127.0.0.1",
    port,
    engine: "vllm",
    modelName: "m",
    ready: true,
    ...overrides,
  };
}

describe("scrapePods", () => {
  it("returns the normalized sample of a healthy vLLM pod", async () => {
    let path = "";
    const port = await serve((req, res) => {
      path = req.url ?? "";
      res.end(VLLM_TEXT);
    });
    const [result] = await scrapePods([target(port)], { concurrency: 2, timeoutMs: 2000, now: () => 1234 });
    expect(path).toBe("/metrics");
    expect(result).toMatchObject({
      ok: true,
      sample: { kvCacheUtilization: 0.25, requestsWaiting: 5, requestsRunning: 2, scrapedAtMs: 1234 },
    });
  });

  it("uses /prometheus/metrics for trtllm-serve pods", async () => {
    let path = "";
    const port = await serve((req, res) => {
      path = req.url ?? "";
      res.end(
        'trtllm_kv_cache_utilization{model_name="m"} 0.5\ntrtllm_num_requests_waiting{model_name="m"} 0\ntrtllm_num_requests_running{model_name="m"} 1\n',
      );
    });
    const [result] = await scrapePods([target(port, { engine: "trtllm-serve" })], {
      concurrency: 1,
      timeoutMs: 2000,
    });
    expect(path).toBe("/prometheus/metrics");
    expect(result?.ok && result.sample.kvCacheUtilization).toBe(0.5);
  });

  it("times out a pod that never answers, without delaying the healthy one", async () => {
    const slow = await serve(() => {
      /* never responds */
    });
    const healthy = await serve((_req, res) => res.end(VLLM_TEXT));
    const results = await scrapePods([target(slow), target(healthy)], { concurrency: 2, timeoutMs: 200 });
    expect(results[0]).toMatchObject({ ok: false, error: { kind: "timeout" } });
    expect(results[1]?.ok).toBe(true);
  });

  it("times out a pod that sends headers and then stalls the body", async () => {
    const port = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("vllm:num_requests_running 1\n");
    });
    const [result] = await scrapePods([target(port)], { concurrency: 1, timeoutMs: 200 });
    expect(result).toMatchObject({ ok: false, error: { kind: "timeout" } });
  });

  it("reports garbage as a parse error and a missing gauge as a metrics error", async () => {
    const garbage = await serve((_req, res) => res.end("<html>502 Bad Gateway</html>\n"));
    const partial = await serve((_req, res) => res.end('vllm:num_requests_running{model_name="m"} 1\n'));
    const results = await scrapePods([target(garbage), target(partial)], { concurrency: 2, timeoutMs: 2000 });
    expect(results[0]).toMatchObject({ ok: false, error: { kind: "parse" } });
    expect(results[1]).toMatchObject({ ok: false, error: { kind: "metrics" } });
  });

  it("reports HTTP status and refused connections", async () => {
    const failing = await serve((_req, res) => {
      res.statusCode = 503;
      res.end("loading");
    });
    const closed = await serve(() => undefined);
    await new Promise<void>((resolve) => {
      const server = servers.pop();
      server?.close(() => resolve());
    });
    const results = await scrapePods([target(failing), target(closed)], { concurrency: 2, timeoutMs: 2000 });
    expect(results[0]).toMatchObject({ ok: false, error: { kind: "http-status", httpStatus: 503 } });
    expect(results[1]).toMatchObject({ ok: false, error: { kind: "network" } });
  });

  it("refuses an oversized body", async () => {
    const port = await serve((_req, res) => res.end("x".repeat(64 * 1024)));
    const [result] = await scrapePods([target(port)], {
      concurrency: 1,
      timeoutMs: 2000,
      maxBodyBytes: 1024,
    });
    expect(result).toMatchObject({ ok: false, error: { kind: "too-large" } });
  });

  it("keeps at most `concurrency` scrapes in flight and skips pods that are not ready", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const port = await serve((_req, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => {
        inFlight--;
        res.end(VLLM_TEXT);
      }, 30);
    });
    const targets = Array.from({ length: 9 }, (_, i) => target(port, { podName: `p${i}`, ready: i !== 4 }));
    const results = await scrapePods(targets, { concurrency: 3, timeoutMs: 2000 });
    expect(results).toHaveLength(8);
    expect(results.every((r) => r.ok)).toBe(true);
    expect(results.map((r) => r.target.podName)).not.toContain("p4");
    expect(maxInFlight).toBe(3);
  });
});

describe("scrapeTargetFromPod", () => {
  const pod = (ready: boolean): V1Pod => ({
    metadata: {
      name: "llama-0",
      namespace: "team-a",
      labels: {
        "gpufleet.io/model-deployment": "llama",
        "inference.networking.k8s.io/engine-type": "trtllm-serve",
      },
    },
    spec: {
      containers: [
        {
          name: "engine",
          ports: [
            { name: "metrics", containerPort: 9000 },
            { name: "http", containerPort: 8000 },
          ],
        },
      ],
    },
    status: {
      phase: "Running",
      podIP: "127.1.0.5",
      conditions: [{ type: "Ready", status: ready ? "True" : "False" }],
    },
  });

  it("takes engine, port named http and readiness from the pod", () => {
    expect(scrapeTargetFromPod(pod(true), "llama")).toEqual({
      namespace: "team-a",
      podName: "llama-0",
      podIP: "127.1.0.5",
      port: 8000,
      engine: "trtllm-serve",
      ready: true,
      modelName: "llama",
    });
    expect(scrapeTargetFromPod(pod(false))?.ready).toBe(false);
  });

  it("ignores pods without an engine label or an IP", () => {
    const noIp = pod(true);
    delete noIp.status?.podIP;
    const noEngine = pod(true);
    delete noEngine.metadata?.labels?.["inference.networking.k8s.io/engine-type"];
    expect([scrapeTargetFromPod(noIp), scrapeTargetFromPod(noEngine)]).toEqual([undefined, undefined]);
  });
});
