import { afterEach, describe, expect, it } from "vitest";
import type { EngineParams } from "../engine/model.js";
import { type EngineServer, startEngineServer } from "../engine/server.js";
import { Balancer, percentile, summarize } from "./balance.js";
import { isLoopbackUrl } from "./cli.js";
import { fullPrompt, runLoad } from "./loadgen.js";
import {
  azureTimestampMs,
  loadTrace,
  parseAzureTrace,
  parseMooncakeTrace,
  scheduleTrace,
  sharedDataDir,
} from "./trace.js";

describe("trace parsing", () => {
  it("reads Azure rows with 7-digit fractional timestamps as offsets from the first request", () => {
    const trace = parseAzureTrace(
      "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,4808,10\n2023-11-16 18:17:04.0319600,3180,8",
    );
    expect(trace).toHaveLength(2);
    expect(trace[0]).toEqual({ offsetMs: 0, promptTokens: 4808, outputTokens: 10 });
    expect(trace[1]?.offsetMs).toBeCloseTo(52, 6);
    expect(azureTimestampMs("2023-11-16 18:17:05") - azureTimestampMs("2023-11-16 18:17:04.5")).toBe(500);
  });

  it("reads Mooncake JSONL and sorts by arrival", () => {
    const trace = parseMooncakeTrace(
      '{"timestamp": 30, "input_length": 5, "output_length": 6, "hash_ids": [0]}\n{"timestamp": 10, "input_length": 1, "output_length": 2, "hash_ids": []}\n',
    );
    expect(trace).toEqual([
      { offsetMs: 0, promptTokens: 1, outputTokens: 2 },
      { offsetMs: 20, promptTokens: 5, outputTokens: 6 },
    ]);
  });

  it("rejects a file that is not the Azure trace", () => {
    expect(() => parseAzureTrace("a,b,c\n1,2,3")).toThrow(/header/);
  });

  it("loads the real shared traces (8,819 Azure code requests over ~57 min)", () => {
    const azure = loadTrace("azure-code", sharedDataDir());
    expect(azure).toHaveLength(8819);
    const spanMinutes = (azure.at(-1)?.offsetMs ?? 0) / 60_000;
    expect(spanMinutes).toBeGreaterThan(50);
    expect(spanMinutes).toBeLessThan(60);
    expect(loadTrace("mooncake", sharedDataDir())).toHaveLength(12031);
  });

  it("time-scales and bounds the schedule by count and duration", () => {
    const trace = [0, 1000, 2000, 3000, 4000].map((offsetMs) => ({
      offsetMs,
      promptTokens: 1,
      outputTokens: 1,
    }));
    expect(
      scheduleTrace(trace, { speedup: 10, maxRequests: 3, maxDurationMs: 10_000 }).map((r) => r.sendAtMs),
    ).toEqual([0, 100, 200]);
    expect(
      scheduleTrace(trace, { speedup: 2, maxRequests: 10, maxDurationMs: 1000 }).map((r) => r.sendAtMs),
    ).toEqual([0, 500, 1000]);
    expect(
      scheduleTrace(trace, { speedup: 1, maxRequests: 10, maxDurationMs: 10_000, startAtMs: 3000 }).map(
        (r) => [r.sendAtMs, r.index],
      ),
    ).toEqual([
      [0, 0],
      [1000, 1],
    ]);
  });
});

describe("balancing and statistics", () => {
  it("round-robin cycles through the endpoints", () => {
    const balancer = new Balancer(["a", "b", "c"], "round-robin");
    expect([balancer.acquire(), balancer.acquire(), balancer.acquire(), balancer.acquire()]).toEqual([
      0, 1, 2, 0,
    ]);
  });

  it("least-outstanding avoids the endpoint with requests still in flight", () => {
    const balancer = new Balancer(["a", "b"], "least-outstanding");
    const first = balancer.acquire();
    const second = balancer.acquire();
    expect(second).not.toBe(first);
    balancer.release(second);
    expect(balancer.acquire()).toBe(second);
    expect(balancer.outstandingOn(first)).toBe(1);
  });

  it("interpolates percentiles between ranks", () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentile([10], 99)).toBe(10);
    expect(summarize([3, 1, 2])).toEqual({ count: 3, mean: 2, p50: 2, p90: 2.8, p99: 2.98, max: 3 });
  });

  it("accepts only loopback targets by default", () => {
    expect([
      isLoopbackUrl("http://127.1.0.5:8000"),
      isLoopbackUrl("http://[::1]:80"),
      isLoopbackUrl("http://example.com"),
    ]).toEqual([true, true, false]);
  });
});

describe("runLoad against simulated engines on loopback", () => {
  const ENGINE: EngineParams = {
    kvCapacityTokens: 65536,
    blockSizeTokens: 16,
    maxNumSeqs: 16,
    maxNumBatchedTokens: 2048,
    watermarkFraction: 0.01,
    weightReadMs: 2,
    computeMsPerToken: 0.0005,
    kvReadMsPerToken: 0.00001,
    stepOverheadMs: 1,
    maxModelLenTokens: 32768,
  };
  const engines: EngineServer[] = [];
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.close()));
  });

  it("replays the first Azure requests over two engines and reports TTFT and latency", async () => {
    for (const host of ["127.0.0.1", "127.0.0.2"])
      engines.push(
        await startEngineServer({ host, port: 0, engine: "vllm", modelName: "sim", params: ENGINE }),
      );
    const schedule = scheduleTrace(loadTrace("azure-code"), {
      speedup: 20,
      maxRequests: 24,
      maxDurationMs: 5_000,
    });
    const progress: number[] = [];
    const report = await runLoad(schedule, {
      endpoints: engines.map((e) => e.url),
      policy: "least-outstanding",
      maxOutputTokens: 8,
      requestTimeoutMs: 10_000,
      maxDurationMs: 10_000,
      onProgress: (p) => progress.push(p.succeeded + p.failed),
    });
    expect(report.sent).toBe(24);
    expect(report.failed).toBe(0);
    expect(Object.values(report.perEndpoint).every((count) => count > 0)).toBe(true);
    expect(report.ttftMs.count).toBe(24);
    expect(report.ttftMs.p50).toBeGreaterThan(0);
    expect(report.latencyMs.p50).toBeGreaterThanOrEqual(report.ttftMs.p50);
    expect(progress.at(-1)).toBe(24);
    // Both engines saw the trace's prompt sizes (prompt_token_count), not the short prompt text.
    const promptTokens = engines.reduce((sum, e) => sum + e.model.snapshot().promptTokensTotal, 0);
    expect(promptTokens).toBe(schedule.reduce((sum, r) => sum + r.promptTokens, 0));
  });

  it("counts a rejected request as an HTTP error rather than a success", async () => {
    engines.push(
      await startEngineServer({
        host: "127.0.0.1",
        port: 0,
        engine: "vllm",
        modelName: "sim",
        params: { ...ENGINE, maxModelLenTokens: 1000 },
      }),
    );
    const report = await runLoad(
      [
        { index: 0, sendAtMs: 0, offsetMs: 0, promptTokens: 5000, outputTokens: 4 },
        { index: 1, sendAtMs: 0, offsetMs: 0, promptTokens: 50, outputTokens: 4 },
      ],
      {
        endpoints: [engines[0]?.url ?? ""],
        policy: "round-robin",
        requestTimeoutMs: 5000,
        maxDurationMs: 5000,
      },
    );
    expect(report).toMatchObject({ sent: 2, succeeded: 1, failed: 1, errors: { "http-400": 1 } });
  });
});

describe("fullPrompt", () => {
  it("is ~4 characters per token, and two requests share no 256-character block", () => {
    const a = fullPrompt(1, 1000);
    const b = fullPrompt(2, 1000);
    expect(a).toHaveLength(4000);
    expect(fullPrompt(3, 1)).toMatch(/^trace request 3:/);
    expect(a.slice(0, 256)).not.toBe(b.slice(0, 256));
  });
});
