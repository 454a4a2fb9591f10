import { describe, expect, it } from "vitest";
import { dailyCorrelation, errorQuantile, forecastAt, forecastGrowth } from "./forecast.js";

const DAY = 24; // buckets per day in these tests (hourly buckets)
/** `days` days of a daily cycle (peak at noon), times `level`, plus optional noise. */
function cycle(days: number, level = 1, noise: (i: number) => number = () => 0): number[] {
  return Array.from(
    { length: days * DAY },
    (_, i) => level * (100 + 80 * Math.sin(((i % DAY) / DAY) * 2 * Math.PI - Math.PI / 2)) + noise(i),
  );
}

describe("forecastGrowth", () => {
  it("follows the shape of past days from today's level", () => {
    const s = cycle(3);
    const t = 2 * DAY + 6; // 06:00 on day 3, on the morning ramp
    const g = forecastGrowth(s, t, 2, "seasonal-ratio", DAY) as number;
    expect(g).toBeCloseTo((s[t + 2 - DAY] as number) / (s[t - DAY] as number), 9);
    expect(g).toBeGreaterThan(1);
    // Today at twice yesterday's level: the ratio is unchanged, the seasonal naive halves it.
    const doubled = [...cycle(2), ...cycle(1, 2)];
    expect(forecastGrowth(doubled, t, 2, "seasonal-ratio", DAY)).toBeCloseTo(g, 9);
    expect(forecastGrowth(doubled, t, 2, "seasonal-naive-daily", DAY)).toBeCloseTo(g / 2, 9);
    expect(forecastGrowth(s, t, 2, "persistence", DAY)).toBe(1);
  });

  it("has nothing to say without the past day or a level", () => {
    expect(forecastGrowth(cycle(1), 10, 2, "seasonal-ratio", DAY)).toBeNull();
    expect(forecastGrowth([null, 5], 0, 1, "persistence", DAY)).toBeNull();
  });
});

describe("forecastAt", () => {
  it("is null without two days of history or without a daily cycle", () => {
    expect(forecastAt(cycle(1), DAY - 1, 2, DAY)).toBeNull();
    let seed = 3;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const noise = Array.from({ length: 4 * DAY }, () => 100 + 50 * rand());
    expect(dailyCorrelation(noise, 4 * DAY - 1, DAY) as number).toBeLessThan(0.5);
    expect(forecastAt(noise, 4 * DAY - 1, 2, DAY)).toBeNull();
  });

  it("widens the upper quantile by the method's own past errors", () => {
    let seed = 11;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const noisy = cycle(5, 1, () => 20 * (rand() - 0.5));
    const t = 4 * DAY + 6;
    const f = forecastAt(noisy, t, 2, DAY);
    expect(f).not.toBeNull();
    expect(f?.upperGrowth as number).toBeGreaterThan(f?.growth as number);
    expect(errorQuantile(cycle(5), t, 2, "seasonal-ratio", DAY, 0.9, 2 * DAY)).toBeCloseTo(1, 6);
  });
});
