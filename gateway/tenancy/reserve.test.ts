import { describe, expect, it } from "vitest";
import { DEFAULT_PICK_LIMITS } from "../routing/picker.js";
import { NO_RESERVE, limitsForBand, loadLimitFor } from "./reserve.js";

describe("per-pod slot reserve for the top bands", () => {
  const reserve = { slotsPerPod: 4, minPriority: 100 };

  it("lowers the load limit of bands below minPriority by the reserve, and leaves the top bands the whole limit", () => {
    expect(loadLimitFor(16, 0, reserve)).toBe(12);
    expect(loadLimitFor(16, 99, reserve)).toBe(12);
    expect(loadLimitFor(16, 100, reserve)).toBe(16);
    expect(loadLimitFor(16, 500, reserve)).toBe(16);
  });

  it("gives sheddable requests (band -1) the reduced limit too", () => {
    expect(loadLimitFor(16, -1, reserve)).toBe(12);
  });

  it("reserves nothing without a load limit or without slots, and never goes below 0", () => {
    expect(loadLimitFor(Number.POSITIVE_INFINITY, 0, reserve)).toBe(Number.POSITIVE_INFINITY);
    expect(loadLimitFor(16, 0, NO_RESERVE)).toBe(16);
    expect(loadLimitFor(3, 0, reserve)).toBe(0);
  });

  it("returns the same limits object when nothing changes, a copy with the lower limit otherwise", () => {
    const limits = { ...DEFAULT_PICK_LIMITS, maxLoadPerEndpoint: 16 };
    expect(limitsForBand(limits, 100, reserve)).toBe(limits);
    expect(limitsForBand(limits, 0, reserve)).toEqual({ ...limits, maxLoadPerEndpoint: 12 });
    expect(limits.maxLoadPerEndpoint).toBe(16);
  });
});
