import { describe, expect, it } from "vitest";
import { Meter, costOf, dayTokens, intensityFor, mergeUsage, replicasSharing, type Pricing, type UsageDelta } from "./meter.js";

const T0 = Date.parse("2026-11-30T12:00:00Z");
const pricing: Pricing = {
  usdPerGpuHour: { "NVIDIA-L4": 0.72 },
  defaultUsdPerGpuHour: 2,
  gramsCO2PerKWh: 500,
  boardPowerW: (product) => (product === "NVIDIA-L4" ? 72 : 700),
};

describe("metering", () => {
  it("prices GPU time and turns it into grams of CO2 at board power", () => {
    expect(costOf(3600, "NVIDIA-L4", pricing)).toEqual({ costUSD: 0.72, gramsCO2: 36 });
    expect(costOf(1800, "unknown", pricing).costUSD).toBe(1);
  });

  it("splits a pod's GPU time by token share, using the engine's own token count as the denominator", () => {
    const meter = new Meter(pricing, T0);
    const pod = { pod: "ns/p1", gpusPerReplica: 2, gpuProduct: "NVIDIA-L4" };
    meter.baseline("ns/p1", 1000);
    meter.record("ns/a", "m", { promptTokens: 100, completionTokens: 200 }, pod, T0 + 1000);
    meter.record("ns/b", "m", { promptTokens: 50, completionTokens: 50 }, pod, T0 + 2000);
    // The engine counted 1000 tokens in the window (another gateway replica sent the other 600).
    meter.closeWindow(T0 + 10_000, () => 2000);
    const [a] = meter.take("ns/a") as [UsageDelta];
    const [b] = meter.take("ns/b") as [UsageDelta];
    // 10 s x 2 GPUs = 20 GPU-seconds; a has 300/1000 of the tokens, b 100/1000.
    expect(a.gpuSeconds).toBeCloseTo(6);
    expect(b.gpuSeconds).toBeCloseTo(2);
    expect(a).toMatchObject({ requests: 1, promptTokens: 100, completionTokens: 200, day: "2026-11-30", model: "m" });
    expect(a.costUSD).toBeCloseTo((6 / 3600) * 0.72);
  });

  it("falls back to this replica's own tokens when the engine count is unknown or smaller", () => {
    const meter = new Meter(pricing, T0);
    meter.record("ns/a", "m", { promptTokens: 10, completionTokens: 30 }, { pod: "ns/p", gpusPerReplica: 1, gpuProduct: "x" }, T0);
    meter.closeWindow(T0 + 4000, () => undefined);
    expect(meter.take("ns/a")[0]?.gpuSeconds).toBeCloseTo(4);
  });

  it("adds a replica's deltas to the status, starting a new day and month from zero", () => {
    const delta = (day: string, tokens: number): UsageDelta => ({
      day, model: "m", requests: 1, promptTokens: tokens, completionTokens: 0, gpuSeconds: 1, costUSD: 0.5, gramsCO2: 2,
    });
    const first = mergeUsage(undefined, [delta("2026-11-30", 10)], "gw-a", T0, 30_000);
    const second = mergeUsage(first, [delta("2026-11-30", 5)], "gw-b", T0 + 1000, 30_000);
    expect(second.today?.models).toEqual([{ model: "m", requests: 2, promptTokens: 15, completionTokens: 0, gpuSeconds: 2, costUSD: 1, gramsCO2: 4 }]);
    expect(dayTokens(second, "2026-11-30")).toBe(15);
    expect(replicasSharing(second, "gw-a", T0 + 1000, 30_000)).toBe(2);
    expect(replicasSharing(second, "gw-a", T0 + 60_000, 30_000)).toBe(1);
    const nextDay = Date.parse("2026-12-01T00:00:05Z");
    // Usage of the 30th reported after midnight counts in November, not in December's first day.
    const third = mergeUsage(second, [delta("2026-11-30", 7)], "gw-a", nextDay, 30_000);
    expect(third.today).toEqual({ date: "2026-12-01", models: [] });
    expect(third.thisMonth).toEqual({ month: "2026-12", models: [] });
    const sameMonth = mergeUsage(second, [delta("2026-11-30", 7)], "gw-a", Date.parse("2026-11-30T23:59:59Z"), 30_000);
    expect(sameMonth.thisMonth?.models[0]?.promptTokens).toBe(22);
  });

  it("sums models beyond the status bound under 'other'", () => {
    const deltas = Array.from({ length: 70 }, (_, i): UsageDelta => ({
      day: "2026-11-30", model: `m${i}`, requests: 1, promptTokens: 1, completionTokens: 0, gpuSeconds: 0, costUSD: 0, gramsCO2: 0,
    }));
    const status = mergeUsage(undefined, deltas, "gw", T0, 1000);
    expect(status.today?.models).toHaveLength(65);
    expect(status.today?.models.at(-1)).toMatchObject({ model: "other", requests: 6 });
  });

  it("prices CO2 at the grid intensity of the region each pod's node is in, the chart value where none is known", () => {
    // europe-north1 at 30 g/kWh, us-east4 at 380; a node without a rated region falls back to 500 (chart).
    const regional: Pricing = {
      ...pricing,
      intensityAtNode: (node) => ({ "node-fi": 30, "node-va": 380 })[node ?? ""] as number | undefined,
    };
    const meter = new Meter(regional, T0);
    const on = (pod: string, nodeName: string | undefined) => ({ pod, gpusPerReplica: 1, gpuProduct: "NVIDIA-L4", nodeName });
    meter.record("ns/a", "m", { promptTokens: 10, completionTokens: 0 }, on("ns/fi", "node-fi"), T0);
    meter.record("ns/b", "m", { promptTokens: 10, completionTokens: 0 }, on("ns/va", "node-va"), T0);
    meter.record("ns/c", "m", { promptTokens: 10, completionTokens: 0 }, on("ns/xx", "node-unrated"), T0);
    // One hour of one L4 (72 W) each: 0.072 kWh.
    meter.closeWindow(T0 + 3_600_000, () => undefined);
    expect(meter.take("ns/a")[0]?.gramsCO2).toBeCloseTo(0.072 * 30);
    expect(meter.take("ns/b")[0]?.gramsCO2).toBeCloseTo(0.072 * 380);
    expect(meter.take("ns/c")[0]?.gramsCO2).toBeCloseTo(0.072 * 500);
    expect(intensityFor(regional, undefined)).toBe(500);
    expect(intensityFor({ ...pricing, intensityAtNode: () => Number.NaN }, "node-fi")).toBe(500);
  });

  it("keeps each replica's last report id for an hour, though only recent replicas share the limits", () => {
    const first = mergeUsage(undefined, [], "gw-a", T0, 30_000, "aaaa-1");
    const later = mergeUsage(first, [], "gw-b", T0 + 20 * 60_000, 30_000, "bbbb-1");
    expect(later.gateways?.map((g) => [g.replica, g.lastReportId])).toEqual([["gw-a", "aaaa-1"], ["gw-b", "bbbb-1"]]);
    expect(replicasSharing(later, "gw-b", T0 + 20 * 60_000, 30_000)).toBe(1);
    expect(mergeUsage(later, [], "gw-b", T0 + 61 * 60_000, 30_000).gateways?.map((g) => g.replica)).toEqual(["gw-b"]);
  });
});
