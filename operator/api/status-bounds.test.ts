import { describe, expect, it } from "vitest";
import { boundStatus, boundText, STATUS_TEXT_MAX_BYTES } from "./status-bounds.js";

describe("boundText", () => {
  it("leaves short clean text alone", () => {
    expect(boundText("3/3 replicas ready")).toBe("3/3 replicas ready");
  });

  it("cuts long text to the byte budget on a character boundary, ending in an ellipsis", () => {
    for (const unit of ["a", "é", "€", "🦙"]) {
      const out = boundText(unit.repeat(5000));
      expect(Buffer.byteLength(out, "utf8")).toBeLessThanOrEqual(STATUS_TEXT_MAX_BYTES);
      expect(out.endsWith("…")).toBe(true);
      expect(out.slice(0, -1).replaceAll(unit, "")).toBe("");
    }
  });

  it("replaces newlines, other controls and bidi overrides with spaces", () => {
    expect(boundText("a\nb\r\u001b[31mc\u202ed")).toBe("a b [31mc d");
  });
});

describe("boundStatus", () => {
  it("bounds every condition message and the autoscaler reason so a status write cannot fail for size", () => {
    const huge = "x".repeat(100_000);
    const status = boundStatus({
      observedGeneration: 2,
      conditions: [
        { type: "Ready", status: "False", reason: "RenderFailed", message: huge, lastTransitionTime: "2026-01-01T00:00:00Z" },
      ],
      autoscaler: { reason: huge, desiredReplicas: 2 },
    });
    expect(Buffer.byteLength(status.conditions?.[0]?.message ?? "")).toBeLessThanOrEqual(1024);
    expect(Buffer.byteLength(status.autoscaler?.reason ?? "")).toBeLessThanOrEqual(1024);
    expect(status.conditions?.[0]?.reason).toBe("RenderFailed");
    expect(status.observedGeneration).toBe(2);
  });
});
