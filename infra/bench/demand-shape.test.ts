import { describe, expect, it } from "vitest";
import { parseLocalDailyShape, shapeAtUtcHour } from "./demand-shape.js";

describe("daily demand shape", () => {
  it("averages a model class's 10-minute rates per hour of day and normalises them to mean 1", () => {
    const rows = ["model,window_start_s,total_rate_rps"];
    for (let day = 0; day < 2; day++) {
      for (let w = 0; w < 144; w++) {
        const hour = Math.floor(w / 6);
        rows.push(`m-small,${day * 86_400 + w * 600},${hour < 12 ? 1 : 3}`);
        rows.push(`m-mid,${day * 86_400 + w * 600},100`);
      }
    }
    const shape = parseLocalDailyShape(rows.join("\n"));
    expect(shape).toHaveLength(24);
    expect(shape[0]).toBeCloseTo(0.5, 9);
    expect(shape[23]).toBeCloseTo(1.5, 9);
    expect(shape.reduce((a, b) => a + b, 0) / 24).toBeCloseTo(1, 9);
    expect(() => parseLocalDailyShape(rows.join("\n"), "nope")).toThrow(/no nope rows/);
  });

  it("reads the local profile at each origin's local hour, interpolating half-hour offsets", () => {
    const local = Array.from({ length: 24 }, (_, h) => h);
    expect(shapeAtUtcHour(local, 9, 0)).toBe(9);
    expect(shapeAtUtcHour(local, -5, 2)).toBe(21);
    expect(shapeAtUtcHour(local, 5.5, 0)).toBeCloseTo(5.5, 9);
    // 23:30 local: halfway between 23:00 (23) and the next midnight (0).
    expect(shapeAtUtcHour(local, 5.5, 18)).toBeCloseTo(11.5, 9);
  });
});
