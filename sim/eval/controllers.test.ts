import { describe, expect, it } from "vitest";
import type { PodObservation } from "../../operator/autoscaler/policy.js";
import {
  aibrixKpaController,
  dynamoPlannerController,
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
