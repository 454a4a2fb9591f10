import { describe, expect, it } from "vitest";
import { areaOf, selfTimes, type CpuProfile } from "./cpu-profile.js";

describe("selfTimes", () => {
  it("adds each sample's time delta to its function and area, leaving idle out", () => {
    const profile: CpuProfile = {
      nodes: [
        { id: 1, callFrame: { functionName: "(root)", url: "", lineNumber: -1 } },
        {
          id: 2,
          callFrame: {
            functionName: "apply",
            url: "file:///repo/operator/runtime/kube-client.ts",
            lineNumber: 9,
          },
        },
        {
          id: 3,
          callFrame: {
            functionName: "parse",
            url: "file:///repo/node_modules/yaml/dist/index.js",
            lineNumber: 0,
          },
        },
        { id: 4, callFrame: { functionName: "(garbage collector)", url: "", lineNumber: -1 } },
        { id: 5, callFrame: { functionName: "(idle)", url: "", lineNumber: -1 } },
      ],
      samples: [2, 2, 3, 4, 5],
      timeDeltas: [1000, 3000, 2000, 4000, 50_000],
    };
    const { byFunction, byArea, totalMs } = selfTimes(profile);
    expect(totalMs).toBe(10);
    expect(byArea).toEqual([
      { name: "operator/runtime", ms: 4 },
      { name: "(garbage collector)", ms: 4 },
      { name: "npm:yaml", ms: 2 },
    ]);
    expect(byFunction[0]).toEqual({ name: "apply operator/runtime/kube-client.ts:10", ms: 4 });
  });
});

describe("areaOf", () => {
  it("names scoped packages, node internals and repo folders", () => {
    expect(areaOf("file:///w/node_modules/@kubernetes/client-node/dist/x.js", "f")).toBe(
      "npm:@kubernetes/client-node",
    );
    expect(areaOf("node:internal/streams/readable", "f")).toBe("node:internal");
    expect(areaOf("file:///w/sim/engine/server.ts", "f")).toBe("sim/engine");
    expect(areaOf("", "(program)")).toBe("(program)");
  });
});
