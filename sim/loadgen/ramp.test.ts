import { describe, expect, it } from "vitest";
import { rampDurationMs, rampRateAt, rampSchedule } from "./ramp.js";
import type { TraceRequest } from "./trace.js";

const sizes: TraceRequest[] = [
  { offsetMs: 0, promptTokens: 100, outputTokens: 5 },
  { offsetMs: 7, promptTokens: 2000, outputTokens: 50 },
  { offsetMs: 9, promptTokens: 7000, outputTokens: 10 },
];
const ramp = { fromPerSecond: 0.5, peakPerSecond: 4, upMs: 60_000, holdMs: 30_000, downMs: 30_000, seed: 3 };

describe("load ramp", () => {
  it("rises linearly to the peak, holds it, and falls back", () => {
    expect(rampRateAt(ramp, 0)).toBe(0.5);
    expect(rampRateAt(ramp, 30_000)).toBeCloseTo(2.25, 9);
    expect(rampRateAt(ramp, 75_000)).toBe(4);
    expect(rampRateAt(ramp, 105_000)).toBeCloseTo(2.25, 9);
    expect(rampRateAt(ramp, 121_000)).toBe(0);
  });

  it("sends about the integral of the rate, more per second at the peak than at the start, with the trace's sizes in order", () => {
    const schedule = rampSchedule(sizes, ramp);
    // ∫ rate = 60 × 2.25 + 30 × 4 + 30 × 2.25 = 322.5 requests; Poisson: within ±3σ (~54).
    expect(schedule.length).toBeGreaterThan(268);
    expect(schedule.length).toBeLessThan(377);
    const perSecond = (from: number, to: number) =>
      schedule.filter((r) => r.sendAtMs >= from && r.sendAtMs < to).length / ((to - from) / 1000);
    expect(perSecond(0, 20_000)).toBeLessThan(1.6);
    expect(perSecond(60_000, 90_000)).toBeGreaterThan(3);
    expect(schedule.every((r, i) => r.index === i && r.sendAtMs <= rampDurationMs(ramp))).toBe(true);
    expect(
      schedule.every((r, i) => i === 0 || r.sendAtMs >= (schedule[i - 1] as { sendAtMs: number }).sendAtMs),
    ).toBe(true);
    expect(schedule.slice(0, 4).map((r) => r.promptTokens)).toEqual([100, 2000, 7000, 100]);
  });

  it("is the same schedule for the same seed and another for another seed", () => {
    expect(rampSchedule(sizes, ramp)).toEqual(rampSchedule(sizes, ramp));
    expect(rampSchedule(sizes, { ...ramp, seed: 4 })[0]?.sendAtMs).not.toBe(
      rampSchedule(sizes, ramp)[0]?.sendAtMs,
    );
  });

  it("starts with a trickle at the starting rate when asked", () => {
    const trickle = { ...ramp, flatMs: 20_000 };
    expect(rampDurationMs(trickle)).toBe(140_000);
    expect(rampRateAt(trickle, 19_000)).toBe(0.5);
    expect(rampRateAt(trickle, 50_000)).toBeCloseTo(2.25, 9);
    expect(rampRateAt(trickle, 95_000)).toBe(4);
  });

  it("refuses a peak below the starting rate", () => {
    expect(() => rampSchedule(sizes, { ...ramp, peakPerSecond: 0.1 })).toThrow(/peakPerSecond/);
  });
});
