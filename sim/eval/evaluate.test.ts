import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bestForGoal, evaluateScenario, type ScenarioDefinition } from "./evaluate.js";
import type { FleetResult } from "./fleet.js";

const dir = mkdtempSync(path.join(tmpdir(), "gpufleet-eval-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An Azure-format trace busy from its first second: 12 requests/s of 1,500 + 100 tokens for 8 min. */
function busyFromTheStart(): string {
  const lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"];
  const start = Date.UTC(2023, 10, 16, 18, 0, 0);
  for (let i = 0; i < 8 * 60 * 12; i++) {
    const at = new Date(start + (i * 1000) / 12 + 37).toISOString().replace("T", " ").replace("Z", "");
    lines.push(`${at},1500,100`);
  }
  const file = path.join(dir, "busy.csv");
  writeFileSync(file, lines.join("\n"));
  return file;
}

describe("evaluateScenario", () => {
  it("starts every autoscaler from minReplicas, not from the oracle's first window", () => {
    const def: ScenarioDefinition = {
      name: "busy",
      trace: busyFromTheStart(),
      loadScale: 1,
      model: "llama-3.1-8b",
      gpu: "NVIDIA-A100-SXM4-80GB",
      maxContextLength: 16384,
      ttftTargetSeconds: 2,
      goalShare: 0.99,
      modelLoadSeconds: 60,
      scrapeIntervalSeconds: 10,
      maxReplicas: 16,
      oracleWindowSeconds: 120,
      tuneBaselines: false,
    };
    const outcome = evaluateScenario(def);
    // The load needs more than one replica from the first window on.
    expect(outcome.oracleSchedule[0]).toBeGreaterThan(1);
    const [staticPeak, oracle, lagged, ...autoscalers] = outcome.results;
    expect(staticPeak?.timeline[0]?.readyReplicas).toBeGreaterThan(1);
    expect(oracle?.timeline[0]?.readyReplicas).toBeGreaterThan(1);
    expect(lagged).toBeDefined();
    const names = autoscalers.map((r) => r.controller);
    expect(names).toEqual(["kubeai", "keda", "aibrix-kpa", "llm-d-saturation", "dynamo-planner", "gpufleet"]);
    // At the first scrape (10 s) no autoscaler has more than its one initial replica ready: none
    // was handed the oracle's answer for the first window, and new pods take 60 s to load.
    for (const r of autoscalers)
      expect({ name: r.controller, ready: r.timeline[0]?.readyReplicas }).toEqual({
        name: r.controller,
        ready: 1,
      });
  });
});

describe("bestForGoal", () => {
  const run = (controller: string, gpuHours: number, withinTargetShare: number): FleetResult => ({
    controller,
    scenario: "s",
    gpuHours,
    requests: 100,
    withinTargetShare,
    ttftP50: 0,
    ttftP95: 0,
    ttftP99: 0,
    scaleEvents: 0,
    peakReplicas: 1,
    rejected: 0,
    preempted: 0,
    timeline: [],
  });

  it("picks the cheapest setting that meets the goal", () => {
    const best = bestForGoal([run("a", 5, 0.995), run("b", 3, 0.991), run("c", 2, 0.98)], 0.99);
    expect(best).toMatchObject({ meetsGoal: true, chosen: { controller: "b" } });
  });

  it("picks the one closest to the goal when none meets it", () => {
    const best = bestForGoal([run("a", 5, 0.9), run("b", 9, 0.97), run("c", 2, 0.5)], 0.99);
    expect(best).toMatchObject({ meetsGoal: false, chosen: { controller: "b" } });
  });
});
