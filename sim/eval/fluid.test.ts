import { describe, expect, it } from "vitest";
import { staticController } from "./controllers.js";
import {
  fluidOracleSchedule,
  fluidStaticPeak,
  shareWithin,
  simulateFluid,
  trueReplicaCapacity,
  type FluidScenario,
} from "./fluid.js";
import { replicaFor } from "./hardware.js";
import { loadServeGen, MAX_COUNT_CV, secondsOfTrace, serveGenRequests, serveGenSeconds } from "./servegen.js";

const replica = replicaFor("llama-3.1-8b", "NVIDIA-A100-SXM4-80GB", { maxContextLength: 16_384 });
const c = trueReplicaCapacity(replica.params);

function scenario(perSecondReplicas: number[]): FluidScenario {
  const n = perSecondReplicas.length;
  const demand = {
    startS: 0,
    requests: new Float64Array(n),
    promptTokens: new Float64Array(n),
    outputTokens: new Float64Array(n),
  };
  perSecondReplicas.forEach((x, i) => {
    demand.requests[i] = (x * c) / 100;
    demand.promptTokens[i] = x * c * 0.8;
    demand.outputTokens[i] = x * c * 0.2;
  });
  return {
    name: "t",
    demand,
    params: replica.params,
    gpusPerReplica: 1,
    modelLoadSeconds: 60,
    scrapeIntervalSeconds: 10,
    ttftTargetSeconds: 2,
    minReplicas: 1,
    maxReplicas: 20,
    scoreFromSecond: 0,
  };
}

describe("fluid simulation", () => {
  it("shareWithin: all, none, or the linear part of a second within the target", () => {
    expect(shareWithin(0, 1, 2)).toBe(1);
    expect(shareWithin(3, 4, 2)).toBe(0);
    expect(shareWithin(1, 3, 2)).toBeCloseTo(0.5, 9);
    expect(shareWithin(3, 1, 2)).toBeCloseTo(0.5, 9);
  });

  it("meets the objective while demand is under capacity and misses it once the backlog outgrows it", () => {
    const under = simulateFluid(scenario(Array(600).fill(3.5)), staticController(4));
    expect(under.withinTargetShare).toBe(1);
    expect(under.gpuHours).toBeCloseTo((4 * 600) / 3600, 9);
    const over = simulateFluid(scenario(Array(600).fill(5)), staticController(4));
    // 25% more work than capacity: the backlog passes 2 s of capacity after ~8 s.
    expect(over.withinTargetShare).toBeLessThan(0.05);
  });

  it("finds the static peak and a per-window oracle that follows the load", () => {
    const s = scenario([...Array(600).fill(2.5), ...Array(600).fill(7.5)]);
    const peak = fluidStaticPeak(s, 0.99, (k) => staticController(k));
    expect(peak.replicas).toBe(8);
    expect(fluidOracleSchedule(s, 0.99, 300)).toEqual([3, 3, 8, 8]);
  });

  it("under a backlog, engines run up to maxNumSeqs and the rest waits; the cache is not reported full", () => {
    const seen: Array<{ waiting: number; running: number; kv: number }> = [];
    const watch = {
      name: "watch",
      intervalSeconds: 10,
      initialReplicas: 2,
      decide: (v: {
        pods: Array<{
          metrics?: { requestsWaiting: number; requestsRunning: number; kvCacheUtilization: number };
        }>;
      }) => {
        const m = v.pods[0]?.metrics;
        if (m)
          seen.push({ waiting: m.requestsWaiting, running: m.requestsRunning, kv: m.kvCacheUtilization });
        return 2;
      },
    };
    simulateFluid(scenario(Array(120).fill(4)), watch); // twice what 2 replicas serve
    const last = seen.at(-1)!;
    expect(last.running).toBe(replica.params.maxNumSeqs);
    expect(last.waiting).toBeGreaterThan(1_000);
    expect(last.kv).toBeLessThan(0.95);
    const calm: typeof seen = [];
    simulateFluid(scenario(Array(120).fill(1)), {
      ...watch,
      decide: (v) => {
        const m = v.pods[0]?.metrics;
        if (m)
          calm.push({ waiting: m.requestsWaiting, running: m.requestsRunning, kv: m.kvCacheUtilization });
        return 2;
      },
    });
    expect(calm.every((x) => x.waiting === 0 && x.running < replica.params.maxNumSeqs)).toBe(true);
  });

  it("pods start after the model load: a scale-up does not serve at once", () => {
    const s = scenario(Array(300).fill(3));
    const up = { name: "up", intervalSeconds: 10, initialReplicas: 1, decide: () => 4 };
    const r = simulateFluid(s, up);
    expect(r.withinTargetShare).toBeLessThan(0.5);
    expect(r.peakReplicas).toBe(4);
  });
});

describe("ServeGen", () => {
  const sg = loadServeGen("m-small");
  it("loads 14 days of 10-minute windows with rates and token means", () => {
    expect(sg.windows).toHaveLength(14 * 144);
    expect(sg.windows.every((w) => w.meanInputTokens > 0 && w.meanOutputTokens > 0)).toBe(true);
    expect(sg.windows.some((w) => w.rate > 500)).toBe(true);
    for (const w of sg.windows.slice(0, 20))
      expect(w.countVariance).toBeLessThanOrEqual(w.rate * MAX_COUNT_CV ** 2 + 1e-6);
  });

  it("per-second totals average to the windows' rates at the load scale, and repeat for a seed", () => {
    const a = serveGenSeconds(sg, { fromS: 0, toS: 3_600, loadScale: 0.01, seed: 3 });
    const b = serveGenSeconds(sg, { fromS: 0, toS: 3_600, loadScale: 0.01, seed: 3 });
    expect(a.requests).toEqual(b.requests);
    const expected = sg.windows.slice(0, 6).reduce((s, w) => s + w.rate * 0.01 * 600, 0);
    const got = a.requests.reduce((s, x) => s + x, 0);
    expect(Math.abs(got - expected) / expected).toBeLessThan(0.05);
  });

  it("single requests from the per-client fits match the rate too, and sum to the same per-second totals", () => {
    const trace = serveGenRequests(sg, { fromS: 0, toS: 1_200, loadScale: 0.01, seed: 5 });
    const expected = sg.windows.slice(0, 2).reduce((s, w) => s + w.rate * 0.01 * 600, 0);
    expect(Math.abs(trace.requests.length - expected) / expected).toBeLessThan(0.15);
    const seconds = secondsOfTrace(trace);
    expect(seconds.requests.reduce((s, x) => s + x, 0)).toBe(trace.requests.length);
  });
});
