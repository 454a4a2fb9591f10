import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { V1Pod } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import { ConcurrencyLimiter, type ScrapeTarget, scrapePods, scrapeTargetFromPod } from "./scrape.js";

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

describe("a hostile engine cannot steer the scraper", () => {
  it("does not follow a redirect: the scrape fails with kind redirect and the other address is never asked", async () => {
    let elsewhereAsked = 0;
    const elsewhere = await serve((_req, res) => {
      elsewhereAsked++;
      res.end(VLLM_TEXT);
    });
    for (const status of [301, 302, 307, 308]) {
      const port = await serve((_req, res) => {
        res.writeHead(status, { location: `http://127.0.0.1:${elsewhere}/metrics` });
        res.end();
      });
      const [result] = await scrapePods([target(port)], { concurrency: 1, timeoutMs: 2000 });
      expect(result).toMatchObject({ ok: false, error: { kind: "redirect", httpStatus: status } });
    }
    expect(elsewhereAsked).toBe(0);
  });

  it("never puts response bytes into the error message, whatever fails", async () => {
    const secret = "SECRET-from-the-engine";
    const bodies = [
      `vllm:num_requests_waiting{model_name="m"} ${secret}\n`, // parse error on a value
      `<html>${secret}</html>\n`, // not Prometheus text
      `vllm:kv_cache_usage_perc{model_name="${secret}"} 0.5\n`, // metrics error naming seen models
      `vllm:kv_cache_usage_perc{model_name="m",x="${secret}"} 0.5\nvllm:kv_cache_usage_perc{model_name="${secret}"} 0.5\n`, // several models
      `vllm:kv_cache_usage_perc{model_name="m"} 0.5\n${secret}{ 1\n`, // a broken line
    ];
    for (const body of bodies) {
      const port = await serve((_req, res) => res.end(body));
      const [result] = await scrapePods([target(port)], { concurrency: 1, timeoutMs: 2000 });
      expect(result?.ok).toBe(false);
      if (result?.ok === false) {
        expect(result.error.message).not.toContain(secret);
        expect(result.error.message).not.toContain("127.0.0.1"); // the status names the pod, not addresses
        expect(result.error.message.length).toBeLessThan(120);
      }
    }
    const headerPort = await serve((_req, res) => {
      res.writeHead(500, secret, { "x-reason": secret });
      res.end(secret);
    });
    const [failed] = await scrapePods([target(headerPort)], { concurrency: 1, timeoutMs: 2000 });
    expect(failed).toMatchObject({ ok: false, error: { kind: "http-status", message: "HTTP 500" } });
  });

  it("keeps a global bound on scrapes in flight across callers sharing a limiter", async () => {
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
    const limiter = new ConcurrencyLimiter(4);
    // Three ModelDeployments, each allowed 3 of its own at once: 9 without the shared bound.
    const calls = ["a", "b", "c"].map((md) =>
      scrapePods(
        Array.from({ length: 6 }, (_, i) => target(port, { podName: `${md}-${i}` })),
        { concurrency: 3, timeoutMs: 5000, limiter },
      ),
    );
    const results = (await Promise.all(calls)).flat();
    expect(results.every((r) => r.ok)).toBe(true);
    expect(maxInFlight).toBe(4);
    expect(limiter.inFlight).toBe(0);
  });

  it("reads # EOF as a comment unless the Content-Type says OpenMetrics", async () => {
    const lines = VLLM_TEXT.split("\n");
    const body = [lines[0], lines[1], "# EOF", ...lines.slice(2)].join("\n");
    const plain = await serve((_req, res) => res.end(body));
    const openMetrics = await serve((_req, res) => {
      res.setHeader("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8");
      res.end(body);
    });
    const results = await scrapePods([target(plain), target(openMetrics)], { concurrency: 2, timeoutMs: 2000 });
    expect(results[0]).toMatchObject({ ok: true, sample: { requestsWaiting: 5 } });
    expect(results[1]).toMatchObject({ ok: false, error: { kind: "metrics" } });
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

  it("marks a vLLM pod annotated with priority scheduling, and no other pod", () => {
    const annotated = (engine: string, value: string) => {
      const p = pod(true);
      p.metadata!.labels!["inference.networking.k8s.io/engine-type"] = engine;
      p.metadata!.annotations = { "gpufleet.io/scheduling-policy": value };
      return scrapeTargetFromPod(p);
    };
    expect(annotated("vllm", "priority")?.schedulingPolicy).toBe("priority");
    expect(annotated("vllm", "fcfs")).not.toHaveProperty("schedulingPolicy");
    expect(annotated("sglang", "priority")).not.toHaveProperty("schedulingPolicy");
    expect(scrapeTargetFromPod(pod(true))).not.toHaveProperty("schedulingPolicy");
  });

  it("ignores pods without an engine label or an IP", () => {
    const noIp = pod(true);
    delete noIp.status?.podIP;
    const noEngine = pod(true);
    delete noEngine.metadata?.labels?.["inference.networking.k8s.io/engine-type"];
    expect([scrapeTargetFromPod(noIp), scrapeTargetFromPod(noEngine)]).toEqual([undefined, undefined]);
  });
});
