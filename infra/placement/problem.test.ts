import { describe, expect, it } from "vitest";
import { buildPlacementProblem, objectiveUpperBound, writeLp } from "./problem.js";
import { solveLp } from "./highs-solver.js";
import type { PlacementInput } from "./types.js";

const input: PlacementInput = {
  latencyTargetMs: 50,
  gpuPower: { "nvidia-l4": { boardPowerW: 72, idlePowerW: 20 } },
  regions: [
    {
      region: "zone:Near",
      gCO2PerKWh: 500,
      pue: 1.2,
      offers: [{ gpuProduct: "nvidia-l4", quotaGpus: 4, pricePerGpuHour: 1 }],
    },
    {
      region: "zone:Far",
      gCO2PerKWh: 10,
      offers: [{ gpuProduct: "nvidia-l4", quotaGpus: 4, pricePerGpuHour: 1 }],
    },
  ],
  models: [
    {
      name: "m",
      replicaShapes: [{ gpuProduct: "nvidia-l4", gpusPerReplica: 2, tokensPerSecondPerReplica: 100 }],
      demand: [{ origin: "U", tokensPerSecond: 150 }],
    },
  ],
};
const rttMs = (_origin: string, region: string): number => (region === "zone:Near" ? 10 : 90);

describe("buildPlacementProblem", () => {
  it("creates slots only where users can reach and prices power with PUE and intensity", () => {
    const problem = buildPlacementProblem(input, { intensities: [500, 10], rttMs });
    expect(problem.slots).toHaveLength(1);
    const slot = problem.slots[0];
    // 2 GPUs × 20 W idle × PUE 1.2 × 500 g/kWh = 24 g/h; (72-20) W × 2 × 1.2 × 0.5 / 100 tok/s = 0.624 g/h per tok/s.
    expect(slot?.idleGramsPerHour).toBeCloseTo(24, 9);
    expect(slot?.gramsPerHourPerTokenPerSecond).toBeCloseTo(0.624, 9);
    expect(slot?.maxReplicas).toBe(2);
    expect(problem.routes).toEqual([{ index: 0, demand: 0, slot: 0, rttMs: 10 }]);
  });

  it("adds the far region's slot and routes once latency is relaxed", () => {
    const problem = buildPlacementProblem(input, { intensities: [500, 10], rttMs }, new Set(["latency"]));
    expect(problem.slots.map((s) => problem.regions[s.region])).toEqual(["zone:Near", "zone:Far"]);
    expect(problem.routes).toHaveLength(2);
  });

  it("rejects malformed input with every problem listed", () => {
    const bad: PlacementInput = {
      ...input,
      latencyTargetMs: 0,
      maxUtilization: 1.5,
      models: [...input.models, ...input.models],
    };
    expect(() => buildPlacementProblem(bad, { intensities: [1, 1], rttMs })).toThrow(
      /latencyTargetMs must be positive; maxUtilization must be in \(0, 1\]; model name m appears twice/,
    );
  });
});

describe("writeLp", () => {
  it("writes a model HiGHS solves to the hand-computed optimum, and honours pinned replicas", async () => {
    const problem = buildPlacementProblem(input, { intensities: [500, 10], rttMs });
    const lp = writeLp(problem, "emissions");
    expect(lp).toContain("Generals\n n0");
    expect(lp).toContain("Binaries\n y0_0");
    const solution = await solveLp(lp);
    // 150 tok/s needs 2 replicas: 2 × 24 g/h idle + 150 × 0.624 g/h load = 141.6 g/h.
    expect(solution.status).toBe("optimal");
    expect(solution.objective).toBeCloseTo(141.6, 6);
    const pinned = await solveLp(writeLp(problem, "cost", { fixedReplicas: new Map([[0, 1]]) }));
    expect(pinned.status).toBe("infeasible");
  });

  it("bounds the tie-break scale by the loosest feasible value of each objective", () => {
    const problem = buildPlacementProblem(input, { intensities: [500, 10], rttMs });
    expect(objectiveUpperBound(problem, "cost")).toBe(4);
    expect(objectiveUpperBound(problem, "latency")).toBe(1500);
    expect(objectiveUpperBound(problem, "emissions")).toBeCloseTo(2 * 24 + 150 * 0.624, 9);
  });
});
