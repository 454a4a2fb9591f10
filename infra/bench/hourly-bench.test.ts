import { describe, expect, it } from "vitest";
import { prng } from "../../sim/prng.js";
import { planHourly } from "../placement/hourly.js";
import { RttTable } from "../placement/rtt.js";
import {
  DEFAULT_HOURLY_BENCH,
  floorRoutes,
  freeCapacity,
  mergeHourlyResults,
  shiftFlexible,
  type HourlyBenchResult,
  type SavedTally,
} from "./hourly-bench.js";

describe("moving flexible load to clean hours", () => {
  const shape = [0.5, 1, 1.5, 1];
  const score = (_origin: string, hour: number) => [300, 100, 400, 50][hour] ?? 0;

  it("keeps each origin's daily total and never exceeds its own peak", () => {
    const out = shiftFlexible({ A: shape }, score, 0.5)["A"] ?? [];
    expect(out.reduce((a, b) => a + b, 0)).toBeCloseTo(4, 9);
    expect(Math.max(...out)).toBeLessThanOrEqual(1.5 + 1e-9);
  });

  it("fills the cleanest hours first", () => {
    // Half of 4 = 2 flexible; base 0.25/0.5/0.75/0.5; hour 3 (50 g) fills to 1.5, then hour 1 (100 g) takes the rest.
    expect(shiftFlexible({ A: shape }, score, 0.5)["A"]).toEqual([0.25, 1.5, 0.75, 1.5]);
  });

  it("changes nothing at share 0", () => {
    expect(shiftFlexible({ A: shape }, score, 0)["A"]).toEqual(shape);
  });
});

describe("the floor: every token at the cleanest option it can reach", () => {
  const options = {
    m: [
      { region: "zone:A", gpuProduct: "g", kWhPerTokenPerSecondHour: 0.001, dollarsPerTokenPerSecondHour: 1 },
      { region: "zone:B", gpuProduct: "g", kWhPerTokenPerSecondHour: 0.002, dollarsPerTokenPerSecondHour: 1 },
      { region: "zone:C", gpuProduct: "g", kWhPerTokenPerSecondHour: 0.001, dollarsPerTokenPerSecondHour: 1 },
    ],
  };
  const rtt: Record<string, Record<string, number>> = {
    U: { "zone:A": 150, "zone:B": 20, "zone:C": 60 },
    V: { "zone:A": 10, "zone:B": 30, "zone:C": 90 },
  };
  const rttMs = (o: string, r: string): number | undefined => rtt[o]?.[r];

  it("picks the least energy × intensity within the latency target, never a farther region", () => {
    const intensity = (r: string): number => ({ "zone:A": 10, "zone:B": 100, "zone:C": 300 })[r] ?? 0;
    const out = floorRoutes(
      [
        { model: "m", origin: "U", tokensPerSecond: 10 },
        { model: "m", origin: "V", tokensPerSecond: 5 },
      ],
      options,
      intensity,
      rttMs,
      100,
    );
    // U cannot reach A (150 ms): B (0.002 × 100 = 0.2) beats C (0.001 × 300 = 0.3).
    expect(out.map((r) => [r.origin, r.option.region, r.rttMs])).toEqual([
      ["U", "zone:B", 20],
      ["V", "zone:A", 10],
    ]);
    expect(out[0]?.grams).toBeCloseTo(10 * 0.002 * 100, 12);
  });

  it("breaks a tie on the nearer region and fails loudly when nothing is in reach", () => {
    const flat = (): number => 100;
    const out = floorRoutes([{ model: "m", origin: "V", tokensPerSecond: 1 }], options, flat, rttMs, 100);
    expect(out[0]?.option.region).toBe("zone:A");
    expect(() => floorRoutes([{ model: "m", origin: "U", tokensPerSecond: 1 }], options, flat, rttMs, 10)).toThrow(
      /no region within 10 ms/,
    );
  });

  it("is never above what the hourly planner achieves with free moves and free capacity", async () => {
    const random = prng(7);
    for (let trial = 0; trial < 6; trial++) {
      const regions = ["A", "B", "C"].map((name) => ({
        name,
        rtt: 10 + Math.floor(random() * 80),
        intensity: [0, 1, 2].map(() => 20 + Math.floor(random() * 500)),
      }));
      const demand = [0, 1, 2].map(() => 50 + Math.floor(random() * 400));
      const peak = Math.max(...demand);
      const POWER = { g: { boardPowerW: 72, idlePowerW: 20 } };
      const plan = await planHourly({
        hours: 3,
        latencyTargetMs: 100,
        rtt: RttTable.fromRecord({ U: Object.fromEntries(regions.map((r) => [`zone:${r.name}`, r.rtt])) }),
        gpuPower: POWER,
        defaultPue: 1,
        maxUtilization: 0.8,
        regions: regions.map((r) => ({
          region: `zone:${r.name}`,
          offers: [{ gpuProduct: "g", quotaGpus: 1000, pricePerGpuHour: 1 }],
        })),
        models: [
          {
            name: "m",
            replicaShapes: [{ gpuProduct: "g", gpusPerReplica: 1, tokensPerSecondPerReplica: 100 }],
            demand: [{ origin: "U", tokensPerSecond: peak }],
          },
        ],
        intensity: Object.fromEntries(regions.map((r) => [`zone:${r.name}`, r.intensity])),
        demandShape: { U: demand.map((d) => d / peak) },
        moves: { loadMinutes: 0, minDwellHours: 0 },
        solver: { mipRelativeGap: 1e-9 },
      });
      const serve = {
        m: regions.map((r) => ({
          region: `zone:${r.name}`,
          gpuProduct: "g",
          kWhPerTokenPerSecondHour: 20 / 1000 / 80 + (72 - 20) / 1000 / 100,
          dollarsPerTokenPerSecondHour: 1 / 80,
        })),
      };
      let floor = 0;
      for (let h = 0; h < 3; h++) {
        const intensity = (region: string): number =>
          regions.find((r) => `zone:${r.name}` === region)?.intensity[h] ?? 0;
        for (const r of floorRoutes(
          [{ model: "m", origin: "U", tokensPerSecond: demand[h] ?? 0 }],
          serve,
          intensity,
          (_o, region) => regions.find((r) => `zone:${r.name}` === region)?.rtt,
          100,
        ))
          floor += r.grams;
      }
      expect(floor).toBeLessThanOrEqual(plan.totals.emissionsGrams + 1e-6);
      // Whole replicas only round up: within one idle replica per hour of the floor here.
      expect(plan.totals.emissionsGrams).toBeLessThanOrEqual(floor + 3 * (20 / 1000) * 520 + 1e-6);
    }
  });
});

describe("free capacity", () => {
  it("lifts every offered quota and offers nothing new", () => {
    expect(freeCapacity([["gcp:x", 1.1, 32, 0]])).toEqual([["gcp:x", 1.1, 100_000, 0]]);
  });
});

describe("merging day ranges of the hourly benchmark", () => {
  const tally = (grams: number, tokens: number, rtts: Array<[number, number]>): SavedTally => ({
    grams,
    moveGrams: grams / 10,
    cost: 100,
    tokens,
    hours: 24,
    starts: 5,
    overCapacityTokens: 0,
    rtts,
    byZone: [["CA-ON", { tokens, intensityTokens: tokens * 60 }]],
  });
  const part = (dayIndices: number[], grams: number, rtts: Array<[number, number]>, dayStep = 1): HourlyBenchResult => ({
    options: { ...DEFAULT_HOURLY_BENCH, dayStep, firstDay: dayIndices[0] ?? 0, lastDay: (dayIndices.at(-1) ?? 0) + 1 },
    days: dayIndices.length,
    dayIndices,
    tallies: [["hourly re-planned", tally(grams, 1e6, rtts)]],
    hourlyRegions: [],
    strategies: [],
    solveSeconds: { perDayHourly: dayIndices.map(() => 1), total: dayIndices.length },
    size: { integers: 1, continuous: 1, rows: 1 },
  });

  it("sums the tallies: the figures of one run over the union of the days", () => {
    const merged = mergeHourlyResults([part([0], 6, [[10, 90], [100, 10]]), part([1], 8, [[10, 80], [100, 20]])]);
    const hourly = merged.strategies[0];
    expect(merged.days).toBe(2);
    expect(merged.dayIndices).toEqual([0, 1]);
    expect(hourly?.gCO2PerMTok).toBeCloseTo(((6 + 8) / 2e6) * 1e6, 12);
    expect(hourly?.meanRttMs).toBeCloseTo((10 * 170 + 100 * 30) / 200, 12);
    // 15% of the weight is at 100 ms: the 95th percentile is 100 ms (each part alone: 100 and 100).
    expect(hourly?.p95RttMs).toBe(100);
    expect(hourly?.startsPerDay).toBe(5);
  });

  it("refuses overlapping days and runs with other options", () => {
    expect(() => mergeHourlyResults([part([0, 1], 6, []), part([1], 8, [])])).toThrow(/day 1/);
    expect(() => mergeHourlyResults([part([0], 6, []), part([1], 8, [], 2)])).toThrow(/different options/);
  });
});
