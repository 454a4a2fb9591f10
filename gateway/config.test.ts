import { describe, expect, it } from "vitest";
import { ConfigError, loadGatewayConfig } from "./config.js";

describe("loadGatewayConfig", () => {
  it("defaults: API on 8080, ops on 8082, 8 MiB bodies, 256 held per model for 120 s, this pod's name", () => {
    const config = loadGatewayConfig({ POD_NAME: "gpufleet-gateway-5d9f-abcde" });
    expect(config).toMatchObject({
      port: 8080,
      opsPort: 8082,
      maxBodyBytes: 8 * 1024 * 1024,
      holdMaxPerModel: 256,
      holdTimeoutMs: 120_000,
      replicaName: "gpufleet-gateway-5d9f-abcde",
      watchNamespaces: [],
      sessionHeader: "x-session-id",
      debugHeaders: true,
    });
  });

  it.each([
    ["GPUFLEET_GATEWAY_PORT", "http"],
    ["GPUFLEET_GATEWAY_MAX_BODY_BYTES", "10"],
    ["GPUFLEET_GATEWAY_HOLD_TIMEOUT_SECONDS", "-1"],
    ["GPUFLEET_GATEWAY_DEBUG_HEADERS", "maybe"],
    ["GPUFLEET_GATEWAY_WEIGHT_PREFIX", "lots"],
    ["GPUFLEET_GATEWAY_SESSION_HEADER", "x session"],
    ["GPUFLEET_GATEWAY_WATCH_NAMESPACES", "Team_A"],
    ["POD_NAME", "Not_A_Label"],
  ])("refuses %s=%s with a message naming it", (key, value) => {
    expect(() => loadGatewayConfig({ POD_NAME: "gw-0", [key]: value })).toThrow(ConfigError);
    expect(() => loadGatewayConfig({ POD_NAME: "gw-0", [key]: value })).toThrow(key);
  });

  it("reads a slot reserve for the top bands, and refuses one that the load limit cannot hold or that names no band", () => {
    expect(loadGatewayConfig({ POD_NAME: "gw-0" }).slotReserve).toEqual({ slotsPerPod: 0, minPriority: 0 });
    expect(
      loadGatewayConfig({
        POD_NAME: "gw-0",
        GPUFLEET_GATEWAY_MAX_LOAD_PER_ENDPOINT: "16",
        GPUFLEET_GATEWAY_RESERVED_SLOTS: "4",
        GPUFLEET_GATEWAY_RESERVED_MIN_PRIORITY: "100",
      }).slotReserve,
    ).toEqual({ slotsPerPod: 4, minPriority: 100 });
    const refused = (env: Record<string, string>, message: string) =>
      expect(() => loadGatewayConfig({ POD_NAME: "gw-0", ...env })).toThrow(message);
    refused({ GPUFLEET_GATEWAY_RESERVED_SLOTS: "4", GPUFLEET_GATEWAY_RESERVED_MIN_PRIORITY: "100" }, "GPUFLEET_GATEWAY_MAX_LOAD_PER_ENDPOINT above it");
    refused({ GPUFLEET_GATEWAY_MAX_LOAD_PER_ENDPOINT: "4", GPUFLEET_GATEWAY_RESERVED_SLOTS: "4", GPUFLEET_GATEWAY_RESERVED_MIN_PRIORITY: "100" }, "GPUFLEET_GATEWAY_MAX_LOAD_PER_ENDPOINT above it");
    refused({ GPUFLEET_GATEWAY_MAX_LOAD_PER_ENDPOINT: "16", GPUFLEET_GATEWAY_RESERVED_SLOTS: "4" }, "GPUFLEET_GATEWAY_RESERVED_MIN_PRIORITY");
    refused({ GPUFLEET_GATEWAY_RESERVED_MIN_PRIORITY: "1001" }, "GPUFLEET_GATEWAY_RESERVED_MIN_PRIORITY");
  });
});
