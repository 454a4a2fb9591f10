import { describe, expect, it } from "vitest";
import { logLinesAbout } from "./operator-log.js";

const line = (fields: Record<string, unknown>) => JSON.stringify({ level: 30, time: "2026-12-02T13:22:27.969Z", ...fields });

describe("logLinesAbout", () => {
  it("keeps the ModelDeployment's own lines and the leadership terms around them, the last few, each cut short", () => {
    const log = [
      line({ msg: "starting gpufleet operator" }),
      line({ msg: "leading" }),
      line({ level: 20, resource: "ModelDeployment/ns/md-1", msg: "status written" }),
      line({ level: 20, resource: "ModelDeployment/ns/md-2", msg: "status written" }),
      "not json at all",
      line({ level: 40, key: "ns/md-1", msg: "reconcile failed; retrying with backoff", err: "x".repeat(500) }),
      line({ level: 40, msg: "leadership lost; stopping this term's controllers and campaigning again" }),
    ].join("\n");
    const lines = logLinesAbout(log, "ns", "md-1", 3, 120);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe("13:22:27.969 debug status written");
    expect(lines[1]).toMatch(/^13:22:27\.969 warn reconcile failed; retrying with backoff \(x+$/);
    expect(lines[1]!.length).toBe(120);
    expect(lines[2]).toBe("13:22:27.969 warn leadership lost; stopping this term's controllers and campaigning again");
    expect(logLinesAbout(log, "ns", "md-3")).toEqual([
      "13:22:27.969 info leading",
      "13:22:27.969 warn leadership lost; stopping this term's controllers and campaigning again",
    ]);
  });
});
