import { describe, expect, it } from "vitest";
import type { PodObservation } from "../../operator/autoscaler/policy.js";
import {
  aibrixKpaController,
  dynamoPlannerController,
  gpufleetController,
  gpufleetTenantForecastController,
  linearForecast,
  kedaController,
  kubeAiController,
  llmdSaturationController,
} from "./controllers.js";
import type { ControllerView } from "./fleet.js";

const bounds = { minReplicas: 1, maxReplicas: 20 };

function view(
  nowMs: number,
  perPod: Array<{ kv: number; waiting: number }>,
  inFlightRequests = 0,
): ControllerView {
  const pods: PodObservation[] = perPod.map((m, i) => ({
    name: `p${i}`,
    phase: "ready",
    sinceMs: 0,
    metrics: {
      kvCacheUtilization: m.kv,
      requestsWaiting: m.waiting,
      requestsRunning: 10,
      scrapedAtMs: nowMs,
    },
  }));
  return {
    nowMs,
    currentReplicas: pods.length,
    pods,
    inFlightRequests,
    arrived: { requests: 0, promptTokens: 0, outputTokens: 0 },
  };
}

describe("baseline controllers", () => {
  it("KEDA asks for ceil(total waiting / 5) replicas", () => {
    const keda = kedaController(bounds);
    // 22 waiting / 5 = 4.4 → 5.
    expect(
      keda.decide(
        view(15_000, [
          { kv: 0.5, waiting: 12 },
          { kv: 0.5, waiting: 10 },
        ]),
      ),
    ).toBe(5);
  });

  it("KEDA keeps the highest recommendation of the last 360 s before scaling down", () => {
    const keda = kedaController(bounds);
    keda.decide(view(0, [{ kv: 0.5, waiting: 20 }]));
    expect(
      keda.decide(
        view(300_000, [
          { kv: 0, waiting: 0 },
          { kv: 0, waiting: 0 },
          { kv: 0, waiting: 0 },
          { kv: 0, waiting: 0 },
        ]),
      ),
    ).toBe(4);
    expect(
      keda.decide(
        view(400_000, [
          { kv: 0, waiting: 0 },
          { kv: 0, waiting: 0 },
          { kv: 0, waiting: 0 },
          { kv: 0, waiting: 0 },
        ]),
      ),
    ).toBe(1);
  });

  it("KubeAI averages in-flight requests over a zero-prefilled 10-minute window against 100 per replica", () => {
    const kubeai = kubeAiController(bounds);
    let desired = 0;
    for (let i = 0; i < 60; i++) desired = kubeai.decide(view(i * 10_000, [{ kv: 0.5, waiting: 0 }], 250));
    expect(desired).toBe(3);
    const fresh = kubeAiController(bounds);
    expect(fresh.decide(view(0, [{ kv: 0.5, waiting: 0 }], 250))).toBe(1); // 250 / 60 samples
  });

  it("AIBrix KPA sizes on total KV usage over a 0.5 per-pod target", () => {
    const kpa = aibrixKpaController(bounds);
    expect(
      kpa.decide(
        view(15_000, [
          { kv: 0.9, waiting: 0 },
          { kv: 0.9, waiting: 0 },
        ]),
      ),
    ).toBe(4);
  });

  it("llm-d adds one replica when every pod is saturated, and only once per minute", () => {
    const llmd = llmdSaturationController(bounds);
    const saturated = [
      { kv: 0.9, waiting: 0 },
      { kv: 0.85, waiting: 6 },
    ];
    expect(llmd.decide(view(60_000, saturated))).toBe(3);
    expect(llmd.decide(view(70_000, saturated))).toBe(2);
  });

  it("llm-d removes one replica when the others would keep the spare capacity", () => {
    const llmd = llmdSaturationController(bounds);
    expect(
      llmd.decide(
        view(60_000, [
          { kv: 0.1, waiting: 0 },
          { kv: 0.1, waiting: 0 },
          { kv: 0.1, waiting: 0 },
        ]),
      ),
    ).toBe(2);
  });
});

describe("dynamo-style throughput planner", () => {
  it("forecasts the next interval on the least-squares line through the last ones", () => {
    expect(linearForecast([])).toBe(0);
    expect(linearForecast([7])).toBe(7);
    expect(linearForecast([1, 2, 3])).toBeCloseTo(4, 9);
    expect(linearForecast([5, 5, 5, 5])).toBeCloseTo(5, 9);
  });

  it("acts every 180 s on the router's token counters, sized by the planner's replica capacity", () => {
    const planner = dynamoPlannerController({ minReplicas: 1, maxReplicas: 50 }, 1000);
    const at = (nowMs: number, tokens: number, currentReplicas: number): number =>
      planner.decide({
        nowMs,
        currentReplicas,
        pods: [],
        inFlightRequests: 0,
        arrived: { requests: 0, promptTokens: tokens, outputTokens: 0 },
      });
    expect(at(10_000, 0, 1)).toBe(1);
    // 180 s later: 900,000 tokens = 5,000 tokens/s → 5 replicas of 1,000 tokens/s.
    expect(at(100_000, 450_000, 1)).toBe(1);
    expect(at(190_000, 900_000, 1)).toBe(5);
    // Between planning ticks it holds whatever runs.
    expect(at(200_000, 950_000, 5)).toBe(5);
    // Next interval 7,000 tokens/s: the line through 5,000 and 7,000 forecasts 9,000 → 9.
    expect(at(370_000, 900_000 + 7000 * 180, 5)).toBe(9);
    const withHeadroom = dynamoPlannerController({ minReplicas: 1, maxReplicas: 50 }, 1000, 0.5);
    expect(withHeadroom.name).toBe("dynamo-planner(util=0.5)");
  });
});

describe("gpufleet + tenant forecast", () => {
  const DAY_S = 86_400;
  /** Tenant "a" sends 9,000 tokens/s from 09:00 to 10:00 every day, nothing else. */
  const meter = (fromS: number): ReadonlyMap<string, number> => {
    const hour = (fromS % DAY_S) / 3600;
    return new Map([["a", hour >= 9 && hour < 10 ? 9000 : 0]]);
  };
  const overrides = { replicaTokenCapacityPerSecond: 1000 };
  const idle = (nowMs: number): ControllerView => view(nowMs, [{ kv: 0, waiting: 0 }]);

  it("holds replicas before a tenant's daily switch-on once it has the days, and none at other hours", () => {
    const calls: number[] = [];
    const controller = gpufleetTenantForecastController(bounds, overrides, {
      meter: (fromS, toS) => {
        calls.push(toS - fromS);
        return meter(fromS);
      },
      bucketSeconds: 600,
    });
    for (let s = 0; s < 7 * DAY_S; s += 600) controller.decide(idle(s * 1000));
    // One meter reading per ended 10-minute bucket.
    expect(calls.length).toBe(7 * 144 - 1);
    expect(calls.every((span) => span === 600)).toBe(true);
    expect(controller.decide(idle((7 * DAY_S + 8.9 * 3600) * 1000))).toBeGreaterThanOrEqual(9);
    const other = gpufleetTenantForecastController(bounds, overrides, { meter, bucketSeconds: 600 });
    for (let s = 0; s < 7 * DAY_S; s += 600) other.decide(idle(s * 1000));
    expect(other.decide(idle((7 * DAY_S + 3 * 3600) * 1000))).toBe(1);
  });

  it("decides as gpufleet does without history", () => {
    const plain = gpufleetController(bounds, overrides);
    const withFloor = gpufleetTenantForecastController(bounds, overrides, { meter, bucketSeconds: 600 });
    for (let s = 0; s < DAY_S; s += 60) {
      const v = view(s * 1000, [{ kv: 0.9, waiting: (s / 60) % 7 }]);
      expect(withFloor.decide(v)).toBe(plain.decide(v));
    }
  });
});
