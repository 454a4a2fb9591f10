import { describe, expect, it } from "vitest";
import {
  DEFAULT_TOKEN_UTILIZATION_TARGET,
  effectiveTokenUtilizationTarget,
  tokenUtilizationTargetForTtft,
} from "./ttft-objective.js";

describe("tokenUtilizationTargetForTtft", () => {
  it("keeps more headroom for a tighter objective", () => {
    const targets = [0.5, 1, 2, 5, 10].map(tokenUtilizationTargetForTtft);
    for (let i = 1; i < targets.length; i++) expect(targets[i]).toBeGreaterThan(targets[i - 1] as number);
  });

  it("follows T / (T + 2.25 s) between its bounds", () => {
    expect(tokenUtilizationTargetForTtft(2)).toBeCloseTo(0.471, 3);
    expect(tokenUtilizationTargetForTtft(5)).toBeCloseTo(0.69, 3);
    expect(tokenUtilizationTargetForTtft(1)).toBeCloseTo(1 / 3.25);
  });

  it("keeps without an objective the headroom of a 2 s one", () => {
    expect(DEFAULT_TOKEN_UTILIZATION_TARGET).toBe(tokenUtilizationTargetForTtft(2));
  });

  it("never leaves a replica without headroom nor idles it for very loose or tight objectives", () => {
    expect(tokenUtilizationTargetForTtft(600)).toBe(0.9);
    expect(tokenUtilizationTargetForTtft(0.1)).toBe(0.2);
  });

  it("falls back to the default for an objective that is not a positive number", () => {
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY])
      expect(tokenUtilizationTargetForTtft(bad)).toBe(DEFAULT_TOKEN_UTILIZATION_TARGET);
  });
});

describe("effectiveTokenUtilizationTarget", () => {
  it("prefers the explicit target, then the objective, then the default", () => {
    expect(effectiveTokenUtilizationTarget({ tokenThroughputUtilizationTarget: 0.3, ttftTargetSeconds: 5 })).toBe(0.3);
    expect(effectiveTokenUtilizationTarget({ ttftTargetSeconds: 5 })).toBeCloseTo(5 / 7.25);
    expect(effectiveTokenUtilizationTarget({})).toBe(DEFAULT_TOKEN_UTILIZATION_TARGET);
  });
});
