import { describe, expect, it } from "vitest";
import { mergeConditions } from "./conditions.js";

const t0 = new Date("2026-01-01T00:00:00Z");
const t1 = new Date("2026-01-01T00:05:00Z");

describe("mergeConditions", () => {
  it("keeps lastTransitionTime when the status does not change, even if reason and message do", () => {
    const first = mergeConditions(undefined, [{ type: "Ready", status: "False", reason: "Pending", message: "a" }], 1, t0);
    const second = mergeConditions(first, [{ type: "Ready", status: "False", reason: "Loading", message: "b" }], 2, t1);
    expect(second[0]).toEqual({
      type: "Ready",
      status: "False",
      reason: "Loading",
      message: "b",
      observedGeneration: 2,
      lastTransitionTime: "2026-01-01T00:00:00Z",
    });
  });

  it("moves lastTransitionTime when the status flips", () => {
    const first = mergeConditions(undefined, [{ type: "Ready", status: "False", reason: "Pending", message: "" }], 1, t0);
    const second = mergeConditions(first, [{ type: "Ready", status: "True", reason: "AllReplicasReady", message: "" }], 1, t1);
    expect(second[0]?.lastTransitionTime).toBe("2026-01-01T00:05:00Z");
  });
});
