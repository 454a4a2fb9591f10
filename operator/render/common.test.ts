import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import {
  PRESTOP_DRAIN_SCRIPT,
  drainTiming,
  resolveModelLocation,
  startupAllowanceSeconds,
} from "./common.js";
import { plan } from "./fixtures.js";

const run = promisify(execFile);

describe("drainTiming", () => {
  it("leaves the engine time to exit after the hook, and settles before polling", () => {
    expect(drainTiming(120)).toEqual({ budgetSeconds: 108, settleSeconds: 10 });
    expect(drainTiming(3600)).toEqual({ budgetSeconds: 3585, settleSeconds: 10 });
    expect(drainTiming(5)).toEqual({ budgetSeconds: 4, settleSeconds: 1 });
  });

  it("never lets the hook outlast the grace period", () => {
    for (const grace of [5, 6, 10, 30, 60, 120, 299, 3600]) {
      const { budgetSeconds, settleSeconds } = drainTiming(grace);
      expect(budgetSeconds).toBeLessThan(grace);
      expect(settleSeconds).toBeLessThanOrEqual(budgetSeconds);
    }
  });
});

describe("startupAllowanceSeconds", () => {
  it("grows with the weights and is capped at two hours", () => {
    expect(startupAllowanceSeconds(plan({ weightsGiBPerReplica: 15 }))).toBe(750);
    expect(startupAllowanceSeconds(plan({ weightsGiBPerReplica: 66 }))).toBeGreaterThanOrEqual(1200);
    expect(startupAllowanceSeconds(plan({ weightsGiBPerReplica: 10_000 }))).toBe(7200);
  });
});

describe("resolveModelLocation", () => {
  it("places a PVC path under /models whatever its trailing slashes", () => {
    expect(resolveModelLocation({ pvc: { claimName: "c", path: "/" } })).toEqual({
      kind: "pvc",
      claimName: "c",
      path: "/models",
    });
    expect(resolveModelLocation({ pvc: { claimName: "c", path: "/a/b//" } })).toEqual({
      kind: "pvc",
      claimName: "c",
      path: "/models/a/b",
    });
  });
});

/**
 * The drain script as the kubelet runs it in the engine container, against a loopback stand-in for the
 * engine's metrics endpoint (needs python3 on the test machine, as the engine images have it).
 */
describe("preStop drain script", () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  /** Serves `bodies[i]` to the i-th scrape (the last one after that); resolves to the URL and a scrape counter. */
  async function metricsServer(bodies: string[]): Promise<{ url: string; scrapes: () => number }> {
    let count = 0;
    server = createServer((_, response) => {
      const body = bodies[Math.min(count, bodies.length - 1)] ?? "";
      count += 1;
      response.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      response.end(body);
    });
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}/metrics`, scrapes: () => count };
  }

  async function drain(url: string, budgetSeconds: number): Promise<number> {
    const started = performance.now();
    await run(
      "python3",
      [
        "-c",
        PRESTOP_DRAIN_SCRIPT,
        url,
        "vllm:num_requests_running,vllm:num_requests_waiting",
        String(budgetSeconds),
        "0",
      ],
      {
        timeout: (budgetSeconds + 10) * 1000,
      },
    );
    return (performance.now() - started) / 1000;
  }

  const busy = [
    "# HELP vllm:num_requests_running Number of requests in model execution batches.",
    "# TYPE vllm:num_requests_running gauge",
    'vllm:num_requests_running{engine="0",model_name="llama 3"} 2.0',
    'vllm:num_requests_waiting{engine="0",model_name="llama 3"} 1.0',
    'vllm:num_requests_running_total_bogus{engine="0"} 9.0',
  ].join("\n");
  const onlyWaiting =
    'vllm:num_requests_running{engine="0"} 0.0\nvllm:num_requests_waiting{engine="0"} 3.0\n';
  const idle =
    'vllm:num_requests_running{engine="0"} 0.0\nvllm:num_requests_waiting{engine="0"} 0.0\nvllm:kv_cache_usage_perc 0.4\n';

  it("returns once running and waiting requests reach zero", async () => {
    const { url, scrapes } = await metricsServer([busy, onlyWaiting, idle]);
    const seconds = await drain(url, 20);
    expect(scrapes()).toBe(3);
    expect(seconds).toBeLessThan(15);
  });

  it("gives up when the budget runs out while requests are still in flight", async () => {
    const { url, scrapes } = await metricsServer([busy]);
    const seconds = await drain(url, 2);
    expect(seconds).toBeGreaterThanOrEqual(1.9);
    expect(scrapes()).toBeGreaterThanOrEqual(2);
  });

  it("returns at once when the engine no longer answers", async () => {
    const { url } = await metricsServer([busy]);
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    server = undefined;
    expect(await drain(url, 20)).toBeLessThan(10);
  });

  it("counts a gauge the engine does not publish as zero", async () => {
    const { url, scrapes } = await metricsServer(["# no samples yet\nprocess_cpu_seconds_total 1.5\n"]);
    await drain(url, 20);
    expect(scrapes()).toBe(1);
  });
});
