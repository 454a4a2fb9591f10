import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { defaultSelector, promqlString, queriesFor, queryDeploymentSamples } from "./prometheus-source.js";
import { ScrapeError } from "./scrape.js";

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise<void>((resolve) => {
          s.closeAllConnections();
          s.close(() => resolve());
        }),
    ),
  );
});

/** A fake Prometheus answering /api/v1/query from a function of the PromQL text. */
async function fakePrometheus(answer: (query: string) => unknown, status = 200): Promise<string> {
  const server = createServer((req, res) => {
    const query = new URL(req.url ?? "/", "http://x").searchParams.get("query") ?? "";
    res.statusCode = status;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(answer(query)));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const vector = (rows: [string, number, string][]) => ({
  status: "success",
  data: {
    resultType: "vector",
    result: rows.map(([pod, at, value]) => ({ metric: { pod }, value: [at, value] })),
  },
});

describe("PromQL construction", () => {
  it("escapes label values and falls back to the deprecated vLLM gauge per pod", () => {
    expect(promqlString('a"b\\c')).toBe('"a\\"b\\\\c"');
    const deployment = { namespace: "ns", name: "llama", engine: "vllm" as const };
    const queries = queriesFor(deployment, defaultSelector(deployment), "pod");
    expect(queries.kvCacheUtilization).toBe(
      'max by (pod) ({__name__="vllm:kv_cache_usage_perc",namespace="ns",model_deployment="llama"}) or max by (pod) ({__name__="vllm:gpu_cache_usage_perc",namespace="ns",model_deployment="llama"})',
    );
    expect(queries.requestsWaiting).toBe(
      'sum by (pod) ({__name__="vllm:num_requests_waiting",namespace="ns",model_deployment="llama"})',
    );
  });
});

describe("queryDeploymentSamples", () => {
  it("joins the three queries into one sample per pod", async () => {
    const baseUrl = await fakePrometheus((query) => {
      if (query.includes("kv_cache"))
        return vector([
          ["p0", 1700000000.5, "0.25"],
          ["p1", 1700000000.5, "0.75"],
        ]);
      if (query.includes("waiting"))
        return vector([
          ["p0", 1700000000.5, "2"],
          ["p1", 1700000000.5, "0"],
        ]);
      return vector([
        ["p0", 1700000000.5, "5"],
        ["p1", 1700000000.5, "7"],
      ]);
    });
    const results = await queryDeploymentSamples(
      { baseUrl, timeoutMs: 2000 },
      { namespace: "ns", name: "llama", engine: "trtllm-serve" },
    );
    expect(results).toEqual([
      {
        pod: "p0",
        ok: true,
        sample: {
          kvCacheUtilization: 0.25,
          requestsWaiting: 2,
          requestsRunning: 5,
          scrapedAtMs: 1700000000500,
        },
      },
      {
        pod: "p1",
        ok: true,
        sample: {
          kvCacheUtilization: 0.75,
          requestsWaiting: 0,
          requestsRunning: 7,
          scrapedAtMs: 1700000000500,
        },
      },
    ]);
  });

  it("reports a pod missing one signal as a per-pod error, not a zero", async () => {
    const baseUrl = await fakePrometheus((query) =>
      query.includes("kv_cache") ? vector([]) : vector([["p0", 1, "1"]]),
    );
    const [result] = await queryDeploymentSamples(
      { baseUrl, timeoutMs: 2000 },
      { namespace: "ns", name: "x", engine: "vllm" },
    );
    expect(result).toMatchObject({ pod: "p0", ok: false, error: { kind: "metrics" } });
  });

  it("throws a typed error when Prometheus fails or answers nonsense", async () => {
    const failing = await fakePrometheus(() => ({ status: "error", error: "parse error at char 3" }), 400);
    await expect(
      queryDeploymentSamples(
        { baseUrl: failing, timeoutMs: 2000 },
        { namespace: "n", name: "x", engine: "vllm" },
      ),
    ).rejects.toMatchObject({
      kind: "http-status",
      httpStatus: 400,
    });
    const matrix = await fakePrometheus(() => ({
      status: "success",
      data: { resultType: "matrix", result: [] },
    }));
    await expect(
      queryDeploymentSamples(
        { baseUrl: matrix, timeoutMs: 2000 },
        { namespace: "n", name: "x", engine: "vllm" },
      ),
    ).rejects.toBeInstanceOf(ScrapeError);
  });
});
