import { describe, expect, it } from "vitest";
import { prng } from "./prng.js";

describe("prng", () => {
  it("replays the same sequence from the same seed and another from another seed", () => {
    const a = prng(7);
    const b = prng(7);
    const c = prng(8);
    const first = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(first);
    expect(Array.from({ length: 5 }, () => c())).not.toEqual(first);
  });

  it("stays in [0, 1) and spreads evenly over ten buckets", () => {
    const random = prng(12345);
    const buckets = new Array<number>(10).fill(0);
    let outside = 0;
    for (let i = 0; i < 100_000; i++) {
      const x = random();
      if (!(x >= 0 && x < 1)) outside++;
      else buckets[Math.floor(x * 10)]! += 1;
    }
    expect(outside).toBe(0);
    for (const count of buckets) expect(Math.abs(count - 10_000)).toBeLessThan(500);
  });

  it("does not get stuck at seed 0", () => {
    const random = prng(0);
    expect(new Set(Array.from({ length: 100 }, () => random())).size).toBe(100);
  });
});
