import { describe, expect, it } from "vitest";
import {
  burstClearingSeconds,
  burstUtilizationTarget,
  derivedUtilizationTarget,
  growthOverHorizon,
  MAX_UTILIZATION_TARGET,
  MIN_UTILIZATION_TARGET,
  tokenDispersion,
} from "./headroom.js";

describe("burst headroom", () => {
  const base = { ttftTargetSeconds: 2, meanTokensPerSecond: 10_000 };

  it("solves (1 − ρ)/ρ² = b/T for ρ", () => {
    const input = { ...base, tokenDispersion: 40_000 };
    const b = burstClearingSeconds(input);
    const rho = burstUtilizationTarget(input);
    expect(b).toBeGreaterThan(0);
    expect((1 - rho) / (rho * rho)).toBeCloseTo(b / 2, 6);
  });

  it("keeps more margin for bursty traffic, less for smooth, more room for a longer objective", () => {
    const smooth = burstUtilizationTarget({ ...base, tokenDispersion: 2_000 });
    const bursty = burstUtilizationTarget({ ...base, tokenDispersion: 80_000 });
    const patient = burstUtilizationTarget({ ...base, tokenDispersion: 80_000, ttftTargetSeconds: 5 });
    expect(smooth).toBeGreaterThan(bursty);
    expect(patient).toBeGreaterThan(bursty);
    expect(smooth).toBeLessThanOrEqual(MAX_UTILIZATION_TARGET);
    expect(burstUtilizationTarget({ ...base, tokenDispersion: 1e9 })).toBe(MIN_UTILIZATION_TARGET);
    expect(burstUtilizationTarget({ ...base, tokenDispersion: 1 })).toBe(MAX_UTILIZATION_TARGET);
  });

  it("a larger fleet (more demand at the same dispersion) runs hotter: bursts are smaller relative to it", () => {
    const small = burstUtilizationTarget({ ...base, tokenDispersion: 40_000 });
    const large = burstUtilizationTarget({ ...base, tokenDispersion: 40_000, meanTokensPerSecond: 100_000 });
    expect(large).toBeGreaterThan(small);
  });

  it("asks for a stricter share to keep more margin", () => {
    const p99 = burstUtilizationTarget({ ...base, tokenDispersion: 40_000, missShare: 0.01 });
    const p999 = burstUtilizationTarget({ ...base, tokenDispersion: 40_000, missShare: 0.001 });
    expect(p999).toBeLessThan(p99);
  });

  it("shrinks the target by the growth expected before a new replica is ready", () => {
    const input = { ...base, tokenDispersion: 10_000 };
    expect(derivedUtilizationTarget({ ...input, growthOverTimeToReady: 0 })).toBeCloseTo(
      burstUtilizationTarget(input),
      9,
    );
    expect(derivedUtilizationTarget({ ...input, growthOverTimeToReady: 0.5 })).toBeCloseTo(
      burstUtilizationTarget(input) / 1.5,
      9,
    );
  });

  it("takes its bounds from the tuning knobs when given (bench:forecast --causes measures what they cost)", () => {
    const input = { ...base, tokenDispersion: 1 };
    expect(burstUtilizationTarget({ ...input, maxTarget: 0.9 })).toBeCloseTo(0.9, 9);
    const growing = { ...base, tokenDispersion: 10_000, growthOverTimeToReady: 0.5 };
    expect(derivedUtilizationTarget({ ...growing, maxGrowth: 0 })).toBeCloseTo(
      burstUtilizationTarget(growing),
      9,
    );
    expect(derivedUtilizationTarget({ ...growing, maxGrowth: 0.25 })).toBeCloseTo(
      burstUtilizationTarget(growing) / 1.25,
      9,
    );
  });
});

describe("tokenDispersion", () => {
  it("is near the request size for Poisson arrivals of equal requests", () => {
    // Seeded Poisson counts of 1,000-token requests at 5 per second, sampled every 10 s.
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const poisson = (mean: number) => {
      let k = 0;
      let p = Math.exp(-mean);
      let s = p;
      const u = rand();
      while (u > s) {
        k++;
        p *= mean / k;
        s += p;
      }
      return k;
    };
    const rates = Array.from({ length: 2_000 }, () => (poisson(50) * 1_000) / 10);
    const I = tokenDispersion(rates, 10);
    expect(I).not.toBeNull();
    expect(I as number).toBeGreaterThan(850);
    expect(I as number).toBeLessThan(1_150);
  });

  it("ignores a slow trend (successive differences) and needs a few samples", () => {
    const ramp = Array.from({ length: 60 }, (_, i) => 1_000 + 100 * i);
    expect(tokenDispersion(ramp, 10) as number).toBeLessThan(100);
    expect(tokenDispersion([1, 2, 3], 10)).toBeNull();
  });
});

describe("growthOverHorizon", () => {
  it("is the upper quantile of relative growth over the horizon, and 0 for a flat or falling series", () => {
    const flat = Array.from({ length: 60 }, (_, i) => ({ atMs: i * 10_000, value: 100 }));
    expect(growthOverHorizon(flat, 60)).toBe(0);
    const doubling = Array.from({ length: 60 }, (_, i) => ({ atMs: i * 10_000, value: 100 * 2 ** (i / 6) }));
    // The value doubles every 60 s: growth over 60 s is 1 (100%).
    expect(growthOverHorizon(doubling, 60, 0.9, 1)).toBeCloseTo(1, 6);
    const falling = Array.from({ length: 60 }, (_, i) => ({ atMs: i * 10_000, value: 1_000 - i }));
    expect(growthOverHorizon(falling, 60)).toBe(0);
  });
});
