import { describe, expect, it } from "vitest";
import { pickRegion, type RegionState } from "./region.js";

const regions: RegionState[] = [
  { region: "gcp:europe-west9", rttMs: 20, gCO2PerKWh: 30, load: 0, capacity: 2 },
  { region: "gcp:europe-west2", rttMs: 10, gCO2PerKWh: 120, load: 0, capacity: 4 },
  { region: "gcp:europe-west3", rttMs: 15, gCO2PerKWh: 400, load: 0, capacity: 8 },
  { region: "gcp:us-east4", rttMs: 90, gCO2PerKWh: 10, load: 0, capacity: 8 },
];

describe("pickRegion", () => {
  it("prefers the lowest intensity within the latency budget, not the nearest and not a cleaner far region", () => {
    const pick = pickRegion({ latencyBudgetMs: 50 }, regions);
    expect(pick).toEqual({
      region: "gcp:europe-west9",
      reason: "lowest-carbon",
      ranked: ["gcp:europe-west9", "gcp:europe-west2", "gcp:europe-west3"],
    });
    expect(pickRegion({ latencyBudgetMs: 100 }, regions)?.region).toBe("gcp:us-east4");
  });

  it("spills to the next cleanest region when the cleanest is saturated, in order, as load arrives", () => {
    const state = regions.map((r) => ({ ...r }));
    const picks: string[] = [];
    for (let i = 0; i < 8; i++) {
      const pick = pickRegion({ latencyBudgetMs: 50 }, state);
      if (pick === undefined) throw new Error("no pick");
      picks.push(`${pick.region}:${pick.reason}`);
      const target = state.find((r) => r.region === pick.region);
      if (target) target.load += 1;
    }
    expect(picks).toEqual([
      "gcp:europe-west9:lowest-carbon",
      "gcp:europe-west9:lowest-carbon",
      "gcp:europe-west2:spill",
      "gcp:europe-west2:spill",
      "gcp:europe-west2:spill",
      "gcp:europe-west2:spill",
      "gcp:europe-west3:spill",
      "gcp:europe-west3:spill",
    ]);
  });

  it("sends to the least loaded region within budget when every one is saturated, and counts request size", () => {
    const full = regions.map((r) => ({ ...r, load: r.capacity }));
    expect(pickRegion({ latencyBudgetMs: 50 }, full)?.reason).toBe("all-saturated");
    const half = [
      { ...regions[0]!, load: 1 },
      { ...regions[1]!, load: 0 },
    ];
    expect(pickRegion({ latencyBudgetMs: 50, size: 2 }, half)).toMatchObject({
      region: "gcp:europe-west2",
      reason: "spill",
    });
    expect(pickRegion({ latencyBudgetMs: 50 }, half, 0.25)?.reason).toBe("spill");
    expect(pickRegion({ latencyBudgetMs: 50 }, half, 0.2)?.reason).toBe("all-saturated");
  });

  it("ranks unknown intensities last, breaks ties by RTT, ignores regions with nothing ready", () => {
    const pick = pickRegion({ latencyBudgetMs: 50 }, [
      { region: "a", rttMs: 30, load: 0, capacity: 1 },
      { region: "b", rttMs: 40, gCO2PerKWh: 200, load: 0, capacity: 1 },
      { region: "c", rttMs: 20, gCO2PerKWh: 200, load: 0, capacity: 1 },
      { region: "d", rttMs: 5, gCO2PerKWh: 1, load: 0, capacity: 0 },
      { region: "e", rttMs: 5, gCO2PerKWh: Number.NaN, load: 0, capacity: 1 },
    ]);
    expect(pick?.ranked).toEqual(["c", "b", "e", "a"]);
    expect(pick?.region).toBe("c");
  });

  it("falls back to the nearest serving region when none is within budget, and to nothing when none serves", () => {
    expect(pickRegion({ latencyBudgetMs: 5 }, regions)).toEqual({
      region: "gcp:europe-west2",
      reason: "over-budget-nearest",
      ranked: [],
    });
    expect(
      pickRegion(
        { latencyBudgetMs: 500 },
        regions.map((r) => ({ ...r, capacity: 0 })),
      ),
    ).toBeUndefined();
  });
});
