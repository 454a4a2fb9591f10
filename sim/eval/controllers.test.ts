import { describe, expect, it } from "vitest";
import type { PodObservation } from "../../operator/autoscaler/policy.js";
import {
  aibrixKpaController,
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
  return { nowMs, currentReplicas: pods.length, pods, inFlightRequests };
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
