import { describe, expect, it } from "vitest";
import {
  DEMAND_EXPIRE_MS,
  DEMAND_FRESH_MS,
  MAX_DEMAND_ENTRIES,
  MAX_DEMAND_VALUE_LENGTH,
  gatewayDemandPatch,
  parseDemandValue,
  parseGatewayDemand,
} from "./gateway-demand.js";

const NOW = 1_800_000_000_000;
const value = (held: number, lastRequestAt: number, updatedAt: number) =>
  JSON.stringify({ held, lastRequestAt, updatedAt });

describe("parseGatewayDemand", () => {
  it("sums held over fresh replicas and takes the latest request time over all live ones", () => {
    const demand = parseGatewayDemand(
      {
        "demand.gpufleet.io/gw-a": value(2, NOW - 5_000, NOW - 1_000),
        "demand.gpufleet.io/gw-b": value(3, NOW - 2_000, NOW - 2_000),
        // stale for held (older than 30 s) but its lastRequestAt still counts for idleness
        "demand.gpufleet.io/gw-c": value(7, NOW - 40_000, NOW - DEMAND_FRESH_MS - 1),
        "app.kubernetes.io/name": "not demand",
      },
      NOW,
    );
    expect(demand.held).toBe(5);
    expect(demand.lastRequestAt).toBe(NOW - 2_000);
    expect(demand.entries.map((e) => [e.replica, e.fresh])).toEqual([
      ["gw-a", true],
      ["gw-b", true],
      ["gw-c", false],
    ]);
    expect(demand.expired).toEqual([]);
    expect(demand.ignored).toBe(0);
  });

  it("lists entries older than 10 minutes as expired and leaves them out of the totals", () => {
    const demand = parseGatewayDemand(
      { "demand.gpufleet.io/dead": value(4, NOW - DEMAND_EXPIRE_MS - 5, NOW - DEMAND_EXPIRE_MS - 1) },
      NOW,
    );
    expect(demand.expired).toEqual(["dead"]);
    expect(demand.entries).toEqual([]);
    expect(demand.held).toBe(0);
    expect(demand.lastRequestAt).toBeUndefined();
  });

  it("reports no request time when every entry says 0 (never saw a request)", () => {
    expect(
      parseGatewayDemand({ "demand.gpufleet.io/gw-a": value(0, 0, NOW) }, NOW).lastRequestAt,
    ).toBeUndefined();
    expect(parseGatewayDemand(undefined, NOW)).toEqual({
      entries: [],
      held: 0,
      heldTokens: 0,
      lastRequestAt: undefined,
      expired: [],
      ignored: 0,
    });
  });

  it.each([
    ["not JSON", "held=3"],
    ["an array", "[1,2,3]"],
    ["null", "null"],
    ["negative held", value(-1, NOW, NOW)],
    ["fractional held", value(1.5, NOW, NOW)],
    ["huge held", value(1e9, NOW, NOW)],
    ["negative heldTokens", JSON.stringify({ held: 1, heldTokens: -5, lastRequestAt: NOW, updatedAt: NOW })],
    ["huge heldTokens", JSON.stringify({ held: 1, heldTokens: 1e12, lastRequestAt: NOW, updatedAt: NOW })],
    ["heldTokens as a string", JSON.stringify({ held: 1, heldTokens: "9", lastRequestAt: NOW, updatedAt: NOW })],
    ["held as a string", JSON.stringify({ held: "3", lastRequestAt: NOW, updatedAt: NOW })],
    ["missing updatedAt", JSON.stringify({ held: 3, lastRequestAt: NOW })],
    ["updatedAt in the far future", value(3, NOW, NOW + 3_600_000)],
    ["negative timestamp", value(3, -1, NOW)],
    [
      "oversized value",
      JSON.stringify({
        held: 3,
        lastRequestAt: NOW,
        updatedAt: NOW,
        pad: "x".repeat(MAX_DEMAND_VALUE_LENGTH),
      }),
    ],
  ])("ignores a value that is %s", (_label, raw) => {
    const demand = parseGatewayDemand(
      { "demand.gpufleet.io/gw-a": raw, "demand.gpufleet.io/gw-b": value(1, NOW, NOW) },
      NOW,
    );
    expect(demand.entries.map((e) => e.replica)).toEqual(["gw-b"]);
    expect(demand.held).toBe(1);
    expect(demand.ignored).toBe(1);
  });

  it("ignores keys whose suffix is not a pod name", () => {
    const demand = parseGatewayDemand(
      {
        "demand.gpufleet.io/": value(1, NOW, NOW),
        "demand.gpufleet.io/Upper": value(1, NOW, NOW),
        "demand.gpufleet.io/a/b": value(1, NOW, NOW),
        [`demand.gpufleet.io/${"a".repeat(64)}`]: value(1, NOW, NOW),
        [`demand.gpufleet.io/${"a".repeat(63)}`]: value(1, NOW, NOW),
      },
      NOW,
    );
    expect(demand.entries.map((e) => e.replica)).toEqual(["a".repeat(63)]);
    expect(demand.ignored).toBe(4);
  });

  it("considers at most MAX_DEMAND_ENTRIES entries, the freshest", () => {
    const annotations: Record<string, string> = {};
    for (let i = 0; i < MAX_DEMAND_ENTRIES + 10; i++)
      annotations[`demand.gpufleet.io/gw-${i}`] = value(1, NOW - i, NOW - i);
    const demand = parseGatewayDemand(annotations, NOW);
    expect(demand.entries).toHaveLength(MAX_DEMAND_ENTRIES);
    expect(demand.held).toBe(MAX_DEMAND_ENTRIES);
    expect(demand.ignored).toBe(10);
    expect(demand.entries[0]?.replica).toBe("gw-0");
    expect(demand.lastRequestAt).toBe(NOW);
  });
});

describe("held prompt tokens", () => {
  it("are written when requests are held, read back and summed over fresh replicas only", () => {
    const patch = gatewayDemandPatch("gw-a", { held: 3, heldTokens: 9_000.7, lastRequestAt: NOW, updatedAt: NOW });
    const a = (patch.metadata.annotations as Record<string, string>)["demand.gpufleet.io/gw-a"] ?? "";
    expect(JSON.parse(a)).toEqual({ held: 3, heldTokens: 9_000, lastRequestAt: NOW, updatedAt: NOW });
    const demand = parseGatewayDemand(
      {
        "demand.gpufleet.io/gw-a": a,
        "demand.gpufleet.io/gw-b": value(2, NOW, NOW), // an older gateway: no token figure
        "demand.gpufleet.io/gw-c": JSON.stringify({
          held: 4,
          heldTokens: 50_000,
          lastRequestAt: NOW,
          updatedAt: NOW - DEMAND_FRESH_MS - 1,
        }),
      },
      NOW,
    );
    expect(demand).toMatchObject({ held: 5, heldTokens: 9_000 });
    // Nothing held: no token field.
    const idle = gatewayDemandPatch("gw-a", { held: 0, heldTokens: 0, lastRequestAt: NOW, updatedAt: NOW });
    expect(Object.keys(JSON.parse((idle.metadata.annotations as Record<string, string>)["demand.gpufleet.io/gw-a"] ?? "{}") as object)).toEqual(["held", "lastRequestAt", "updatedAt"]);
  });
});

describe("gatewayDemandPatch", () => {
  it("sets this replica's key to compact JSON, touching annotations only", () => {
    const patch = gatewayDemandPatch("gw-a", { held: 2, lastRequestAt: NOW - 1, updatedAt: NOW });
    expect(patch).toEqual({
      metadata: {
        annotations: {
          "demand.gpufleet.io/gw-a": `{"held":2,"lastRequestAt":${NOW - 1},"updatedAt":${NOW}}`,
        },
      },
    });
    // what it writes, the parser reads back
    const annotations = patch.metadata.annotations as Record<string, string>;
    expect(parseGatewayDemand(annotations, NOW).held).toBe(2);
    expect(parseDemandValue(annotations["demand.gpufleet.io/gw-a"] ?? "", NOW)).toEqual({
      held: 2,
      lastRequestAt: NOW - 1,
      updatedAt: NOW,
    });
  });

  it("deletes this replica's key with null, and expired replicas' keys, never its own by mistake", () => {
    expect(gatewayDemandPatch("gw-a", null, ["dead-1", "gw-a", "Bad Name"])).toEqual({
      metadata: { annotations: { "demand.gpufleet.io/dead-1": null, "demand.gpufleet.io/gw-a": null } },
    });
  });

  it("refuses a replica name that cannot be a key suffix", () => {
    expect(() => gatewayDemandPatch("x".repeat(64), null)).toThrow(/63/);
  });
});
