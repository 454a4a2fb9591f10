import { describe, expect, it } from "vitest";
import { sampleLoadAverage } from "./load-average.js";

describe("sampleLoadAverage", () => {
  it("keeps a min–max of the 1-minute load average per named phase, in order", () => {
    const load = sampleLoadAverage(60_000);
    try {
      expect(load.current()).toBe("n/a");
      load.phase("ceilings");
      expect(load.current()).toMatch(/^ceilings \d+\.\d–\d+\.\d$/);
      load.phase("operator");
      expect(load.ranges()).toMatch(/^ceilings \d+\.\d–\d+\.\d, operator \d+\.\d–\d+\.\d$/);
      const [, low, high] = /^operator (\d+\.\d)–(\d+\.\d)$/.exec(load.current()) ?? [];
      expect(Number(low)).toBeLessThanOrEqual(Number(high));
    } finally {
      load.stop();
    }
  });
});
