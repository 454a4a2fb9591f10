import { describe, expect, it } from "vitest";
import { shiftFlexible } from "./hourly-bench.js";

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
