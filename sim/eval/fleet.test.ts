import { describe, expect, it } from "vitest";
import { engineParamsForNames } from "../engine/model.js";
import { parseDurationSeconds } from "./capacity.js";
import { gpufleetController, kedaController, staticController, type Bounds } from "./controllers.js";
import { appendAll, maxOf, simulateFleet, type Controller, type FleetScenario } from "./fleet.js";
import { withEngineSpeed } from "./evaluate.js";
import { laggedOracleSchedule, oracleSchedule, staticForPeak } from "./oracle.js";
import { scaleLoad, type Trace, type TraceRequest } from "./traces.js";

const params = engineParamsForNames("llama-3.1-8b", "NVIDIA-H100-80GB-HBM3");

/** `ratePerSecond(t)` requests of 2,000 prompt / 50 output tokens, evenly spaced, for `seconds`. */
function syntheticTrace(seconds: number, ratePerSecond: (tSeconds: number) => number): Trace {
  const requests: TraceRequest[] = [];
  for (let s = 0; s < seconds; s++) {
    const n = ratePerSecond(s);
    for (let i = 0; i < n; i++)
      requests.push({ arrivalMs: s * 1000 + (i * 1000) / n, promptTokens: 2000, outputTokens: 50 });
  }
  return { name: "synthetic", requests, durationMs: seconds * 1000 };
}

function scenario(trace: Trace, overrides: Partial<FleetScenario> = {}): FleetScenario {
  return {
    name: "test",
    trace,
    params,
    gpusPerReplica: 1,
    modelLoadSeconds: 60,
    scrapeIntervalSeconds: 10,
    ttftTargetSeconds: 2,
    minReplicas: 1,
    maxReplicas: 16,
    ...overrides,
  };
}

describe("simulateFleet", () => {
  it("bills static replicas for the whole trace and serves every request", () => {
    const trace = syntheticTrace(600, () => 2);
    const result = simulateFleet(scenario(trace), staticController(3));
    expect(result.gpuHours).toBeCloseTo((3 * 600) / 3600, 6);
    expect(result.requests).toBe(1200);
    expect(result.withinTargetShare).toBe(1);
    expect(result.scaleEvents).toBe(0);
  });

  it("spreads load over replicas: two replicas give lower TTFT than one under the same load", () => {
    const trace = syntheticTrace(120, () => 20);
    const one = simulateFleet(scenario(trace), staticController(1));
    const two = simulateFleet(scenario(trace), staticController(2));
    expect(two.ttftP99).toBeLessThan(one.ttftP99);
  });

  it("a new replica serves only after the model-load delay", () => {
    const trace = syntheticTrace(300, () => 1);
    const scaleAt10s: Controller = {
      name: "step",
      intervalSeconds: 10,
      initialReplicas: 1,
      decide: (v) => (v.nowMs >= 10_000 ? 2 : 1),
    };
    const result = simulateFleet(scenario(trace, { modelLoadSeconds: 60 }), scaleAt10s);
    const at = (s: number) => result.timeline.find((p) => p.atMs === s * 1000);
    expect(at(30)).toMatchObject({ replicas: 2, readyReplicas: 1 });
    expect(at(80)).toMatchObject({ replicas: 2, readyReplicas: 2 });
    // Billing starts at creation (t=10 s), not at readiness.
    expect(result.gpuHours).toBeCloseTo((300 + 290) / 3600, 3);
  });

  it("the gpufleet policy scales up for a sustained load step and back down after it", () => {
    // 1 req/s for 10 min, 25 req/s for 10 min, 1 req/s for 20 min.
    const trace = syntheticTrace(2400, (s) => (s >= 600 && s < 1200 ? 25 : 1));
    const bounds: Bounds = { minReplicas: 1, maxReplicas: 16 };
    const result = simulateFleet(scenario(trace, { maxReplicas: 16 }), gpufleetController(bounds));
    const replicasAt = (s: number) => result.timeline.find((p) => p.atMs === s * 1000)?.replicas ?? -1;
    expect(replicasAt(590)).toBe(1);
    expect(replicasAt(1150)).toBeGreaterThan(1);
    expect(replicasAt(2390)).toBeLessThan(replicasAt(1150));
  });

  it("is deterministic: the same run twice gives the same figures", () => {
    const trace = syntheticTrace(900, (s) => (s % 300 < 60 ? 15 : 2));
    const bounds: Bounds = { minReplicas: 1, maxReplicas: 8 };
    const a = simulateFleet(scenario(trace), kedaController(bounds));
    const b = simulateFleet(scenario(trace), kedaController(bounds));
    expect({ ...a, timeline: a.timeline.length }).toEqual({ ...b, timeline: b.timeline.length });
  });
});

describe("staticForPeak", () => {
  it("finds the fewest replicas that meet the goal (one fewer does not)", () => {
    const trace = syntheticTrace(300, () => 30);
    const sc = scenario(trace, { maxReplicas: 12 });
    const { replicas, result } = staticForPeak(sc, 0.99);
    expect(result.withinTargetShare).toBeGreaterThanOrEqual(0.99);
    expect(replicas).toBeGreaterThan(1);
    const fewer = simulateFleet(
      { ...sc, minReplicas: replicas - 1, maxReplicas: replicas - 1 },
      staticController(replicas - 1),
    );
    expect(fewer.withinTargetShare).toBeLessThan(0.99);
  });
});

describe("oracleSchedule", () => {
  it("is never above static and still meets the goal over the whole trace", () => {
    // Bursts at the start of every 2-minute window, quiet in between.
    const trace = syntheticTrace(600, (s) => (s % 120 < 8 ? 24 : 1));
    const sc = scenario(trace, { maxReplicas: 12 });
    const staticPeak = staticForPeak(sc, 0.99);
    const oracle = oracleSchedule(sc, 0.99, 120_000, staticPeak.replicas);
    expect(oracle.result.withinTargetShare).toBeGreaterThanOrEqual(0.99);
    expect(oracle.result.gpuHours).toBeLessThanOrEqual(staticPeak.result.gpuHours + 1e-9);
    expect(oracle.schedule).toHaveLength(oracle.independentSchedule.length);
  });
});

describe("laggedOracleSchedule", () => {
  it("applies each window's need late, so a load step costs it the misses a reactive scaler would have", () => {
    // Quiet for 4 minutes, then a load twice as high for 4 minutes.
    const trace = syntheticTrace(480, (s) => (s < 240 ? 4 : 40));
    const sc = scenario(trace, { maxReplicas: 12 });
    const windowMs = 120_000;
    const oracle = oracleSchedule(sc, 0.99, windowMs);
    const need = oracle.independentSchedule;
    const late = laggedOracleSchedule(sc, 0.99, windowMs, need, { maxLagWindows: 1, maxMargin: 0 });
    // One window late: each window gets what the one before needed (the first, its own need).
    expect(late.schedule).toEqual(need.map((n, w) => (w > 0 ? (need[w - 1] as number) : n)));
    expect(oracle.independentSchedule[2]).toBeGreaterThan(oracle.independentSchedule[1] as number);
    expect(late.result.withinTargetShare).toBeLessThan(oracle.result.withinTargetShare);
  });

  it("picks the cheapest lag and margin that meet the goal", () => {
    const trace = syntheticTrace(600, (s) => (s % 120 < 8 ? 24 : 1));
    const sc = scenario(trace, { maxReplicas: 12 });
    const oracle = oracleSchedule(sc, 0.99, 120_000);
    const late = laggedOracleSchedule(sc, 0.99, 120_000, oracle.independentSchedule, {
      maxLagWindows: 2,
      maxMargin: 2,
    });
    expect(late.result.withinTargetShare).toBeGreaterThanOrEqual(0.99);
    for (const lagWindows of [1, 2])
      for (const margin of [0, 1, 2]) {
        const other = laggedOracleSchedule(sc, 0.99, 120_000, oracle.independentSchedule, {
          maxLagWindows: lagWindows,
          maxMargin: margin,
        });
        if (other.result.withinTargetShare >= 0.99)
          expect(late.result.gpuHours).toBeLessThanOrEqual(other.result.gpuHours + 1e-9);
      }
  });
});

describe("scraped metrics", () => {
  it("carry the engines' prompt and generation token counters to the controller", () => {
    const trace = syntheticTrace(60, () => 2);
    const seen: Array<{ prompt: number; generation: number }> = [];
    const recorder: Controller = {
      name: "recorder",
      intervalSeconds: 10,
      initialReplicas: 1,
      decide(v) {
        const m = v.pods[0]?.metrics;
        if (m) seen.push({ prompt: m.promptTokensTotal ?? -1, generation: m.generationTokensTotal ?? -1 });
        return 1;
      },
    };
    simulateFleet(scenario(trace), recorder);
    expect(seen.length).toBeGreaterThan(3);
    // 2 requests/s of 2,000 prompt tokens: about 40,000 prompt tokens per 10 s scrape.
    const last = seen[seen.length - 1] as { prompt: number; generation: number };
    const first = seen[0] as { prompt: number; generation: number };
    expect(last.prompt - first.prompt).toBeGreaterThan(100_000);
    expect(last.generation).toBeGreaterThan(first.generation);
  });

  it("lets the token signal add replicas on a compute-bound load that KV and queue barely see", () => {
    // 5 requests/s of 2,000-token prompts ≈ 10,000 prompt tokens/s: a third of one H100's roofline,
    // KV-cache nearly empty, no queue. Arrivals sit 137 ms off the scrape instants: a request
    // arriving at the very instant of a scrape is (rightly) counted as waiting.
    const even = syntheticTrace(900, () => 5);
    const trace = { ...even, requests: even.requests.map((r) => ({ ...r, arrivalMs: r.arrivalMs + 137 })) };
    const bounds: Bounds = { minReplicas: 1, maxReplicas: 8, initialReplicas: 1 };
    const withoutCapacity = simulateFleet(scenario(trace), gpufleetController(bounds));
    const withCapacity = simulateFleet(
      scenario(trace),
      gpufleetController(bounds, { replicaTokenCapacityPerSecond: 10_000 }),
    );
    // 10,000 tokens/s / (10,000 × 0.5) = 2 replicas at the token target.
    expect(withoutCapacity.peakReplicas).toBe(1);
    expect(withCapacity.peakReplicas).toBeGreaterThanOrEqual(2);
  });
});

describe("day-long traces", () => {
  it("collects a day of one replica's TTFT samples without spreading them onto the stack", () => {
    // 2 tiny requests/s for 24 h on one replica: 172,800 samples (push(...samples) overflows here).
    const requests: TraceRequest[] = [];
    for (let i = 0; i < 86_400 * 2; i++)
      requests.push({ arrivalMs: i * 500, promptTokens: 20, outputTokens: 1 });
    const trace: Trace = { name: "day", requests, durationMs: 86_400_000 };
    const result = simulateFleet(
      scenario(trace, { scrapeIntervalSeconds: 60, maxReplicas: 1 }),
      staticController(1),
    );
    expect(result.requests).toBe(172_800);
    expect(result.withinTargetShare).toBe(1);
    expect(Number.isFinite(result.ttftP99)).toBe(true);
  });

  it("appendAll and maxOf take arrays far beyond the argument limit", () => {
    const big = Array.from({ length: 1_000_000 }, (_, i) => i % 1000);
    big[777_777] = 5000;
    expect(() => [].push(...(big as never[]))).toThrow(RangeError);
    const target = [1];
    appendAll(target, big);
    expect(target).toHaveLength(1_000_001);
    expect(maxOf(big)).toBe(5000);
    expect(maxOf([], 3)).toBe(3);
  });
});

describe("scraped queue", () => {
  it("counts requests that arrived while a step is in progress as waiting, as the server's /metrics does", () => {
    // A replica 100× slower than planned: the 8,000-token prompt at t=0 is one step of tens of
    // seconds, so at the 10 s scrape the engine's clock still sits at 0 while two more requests
    // arrived at 1 s and 2 s and wait behind it.
    const slow = withEngineSpeed(params, 0.01);
    const trace: Trace = {
      name: "step",
      requests: [
        { arrivalMs: 0, promptTokens: 8000, outputTokens: 1 },
        { arrivalMs: 1000, promptTokens: 100, outputTokens: 1 },
        { arrivalMs: 2000, promptTokens: 100, outputTokens: 1 },
      ],
      durationMs: 20_000,
    };
    const waitingSeen: number[] = [];
    const recorder: Controller = {
      name: "recorder",
      intervalSeconds: 10,
      initialReplicas: 1,
      decide(v) {
        waitingSeen.push(v.pods[0]?.metrics?.requestsWaiting ?? -1);
        return 1;
      },
    };
    const result = simulateFleet(scenario(trace, { params: slow }), recorder);
    expect(waitingSeen[0]).toBe(2);
    expect(result.timeline[0]).toMatchObject({ atMs: 10_000, requestsWaiting: 2 });
  });
});

describe("withEngineSpeed", () => {
  it("makes every step slower (0.7×) or faster (1.3×) and keeps the memory limits", () => {
    const slow = withEngineSpeed(params, 0.7);
    const fast = withEngineSpeed(params, 1.3);
    expect(slow.computeMsPerToken).toBeCloseTo(params.computeMsPerToken / 0.7, 9);
    expect(fast.weightReadMs).toBeCloseTo(params.weightReadMs / 1.3, 9);
    expect(slow.kvCapacityTokens).toBe(params.kvCapacityTokens);
    const trace = syntheticTrace(300, () => 12);
    const p99 = (p: typeof params) =>
      simulateFleet(scenario(trace, { params: p }), staticController(1)).ttftP99;
    expect(p99(slow)).toBeGreaterThan(p99(params));
    expect(p99(fast)).toBeLessThan(p99(params));
    expect(() => withEngineSpeed(params, 0)).toThrow(/positive/);
  });
});

describe("scaleLoad", () => {
  it("multiplies the request count and keeps the time span", () => {
    const trace = syntheticTrace(100, () => 2);
    const scaled = scaleLoad(trace, 3);
    expect(scaled.requests).toHaveLength(600);
    expect(Math.abs(scaled.durationMs - trace.durationMs)).toBeLessThanOrEqual(500);
  });
});

describe("parseDurationSeconds", () => {
  it("reads s, ms and m", () => {
    expect(parseDurationSeconds("2s")).toBe(2);
    expect(parseDurationSeconds("500ms")).toBe(0.5);
    expect(parseDurationSeconds("2m")).toBe(120);
    expect(parseDurationSeconds("1.5")).toBe(1.5);
    expect(() => parseDurationSeconds("soon")).toThrow(/cannot read duration/);
  });
});
