import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadHourlyCarbonData } from "../infra/carbon/hourly-data.js";
import { intensitySourceFromConfig } from "../infra/carbon/intensity-source.js";
import { buildRegionCarbonBundle } from "../infra/carbon/region-data.js";
import { loadStaticCarbonTables } from "../infra/carbon/static-data.js";
import {
  latencyBudgetFrom,
  narrowToRegion,
  regionRoutingConfigFromEnv,
  regionRoutingData,
  type RoutedEndpoint,
} from "./region-router.js";

const endpoint = (podName: string, nodeName: string, inFlight = 0, ready = true): RoutedEndpoint => ({
  podName,
  namespace: "ns",
  address: `${podName}:8000`,
  ready,
  inFlight,
  target: { nodeName },
});

const REGIONS: Record<string, string> = { "node-fi": "europe-north1", "node-va": "us-east4", "node-tw": "asia-east1" };
const RTT: Record<string, number> = { "europe-north1": 30, "us-east4": 0, "asia-east1": 180 };
const G: Record<string, number> = { "europe-north1": 40, "us-east4": 380, "asia-east1": 560 };

const inputs = (capacityPerEndpoint = 4, intensity: Record<string, number> = G) => ({
  regionOf: (node: string | undefined) => (node ? REGIONS[node] : undefined),
  rttMs: (region: string) => RTT[region],
  intensity: (region: string) => intensity[region],
  capacityPerEndpoint,
});

describe("narrowing a request to one region before the pod picker", () => {
  const pods = [endpoint("fi-0", "node-fi"), endpoint("va-0", "node-va"), endpoint("va-1", "node-va"), endpoint("tw-0", "node-tw")];

  it("keeps the pods of the cleanest region within the latency budget", () => {
    const { endpoints, decision } = narrowToRegion(pods, 100, inputs());
    expect(endpoints.map((e) => e.podName)).toEqual(["fi-0"]);
    expect(decision).toMatchObject({ region: "europe-north1", reason: "lowest-carbon", ranked: ["europe-north1", "us-east4"] });
  });

  it("leaves out a cleaner region beyond the budget", () => {
    const { endpoints } = narrowToRegion(pods, 20, inputs());
    expect(endpoints.map((e) => e.podName)).toEqual(["va-0", "va-1"]);
  });

  it("spills to the next region when the cleanest is saturated (load from the pods' in-flight requests)", () => {
    const busy = [endpoint("fi-0", "node-fi", 4), endpoint("va-0", "node-va"), endpoint("va-1", "node-va")];
    const { endpoints, decision } = narrowToRegion(busy, 100, inputs(4));
    expect(endpoints.map((e) => e.podName)).toEqual(["va-0", "va-1"]);
    expect(decision?.reason).toBe("spill");
  });

  it("changes nothing with pods in one region, or on nodes without a region label", () => {
    const one = [endpoint("va-0", "node-va"), endpoint("va-1", "node-va")];
    expect(narrowToRegion(one, 100, inputs()).endpoints).toBe(one);
    const unlabelled = [endpoint("x-0", "node-x"), endpoint("x-1", "node-y")];
    expect(narrowToRegion(unlabelled, 100, inputs()).decision).toBeUndefined();
  });

  it("ranks a region the intensity source cannot rate after every rated one", () => {
    const { decision } = narrowToRegion(pods, 100, inputs(4, { "us-east4": 380 }));
    expect(decision?.region).toBe("us-east4");
  });

  it("ignores pods that are not ready when counting a region's capacity", () => {
    const notReady = [endpoint("fi-0", "node-fi", 0, false), endpoint("va-0", "node-va")];
    expect(narrowToRegion(notReady, 100, inputs()).decision?.region).toBe("us-east4");
  });
});

describe("the request's latency budget and the router's configuration", () => {
  it("reads a bounded budget from the header, else the default", () => {
    expect(latencyBudgetFrom({ "x-gpufleet-latency-budget-ms": "40" }, 100)).toBe(40);
    expect(latencyBudgetFrom({ "x-gpufleet-latency-budget-ms": "abc" }, 100)).toBe(100);
    expect(latencyBudgetFrom({ "x-gpufleet-latency-budget-ms": "-5" }, 100)).toBe(100);
    expect(latencyBudgetFrom({ "x-gpufleet-latency-budget-ms": "999999999" }, 100)).toBe(60_000);
    expect(latencyBudgetFrom({}, 100)).toBe(100);
  });

  it("is off without GPUFLEET_GATEWAY_REGION, and parses the RTT list strictly", () => {
    expect(regionRoutingConfigFromEnv({})).toBeUndefined();
    expect(
      regionRoutingConfigFromEnv({
        GPUFLEET_GATEWAY_REGION: "us-east4",
        GPUFLEET_GATEWAY_REGION_RTT_MS: "europe-north1=95, asia-east1=180",
      }),
    ).toMatchObject({
      gatewayRegion: "us-east4",
      cloud: "gcp",
      defaultLatencyBudgetMs: 100,
      rttMs: { "us-east4": 0, "europe-north1": 95, "asia-east1": 180 },
    });
    expect(() =>
      regionRoutingConfigFromEnv({ GPUFLEET_GATEWAY_REGION: "x", GPUFLEET_GATEWAY_REGION_RTT_MS: "EU=1" }),
    ).toThrow(/bad entry/);
  });
});

describe("the data region routing runs on", () => {
  const config = regionRoutingConfigFromEnv({ GPUFLEET_GATEWAY_REGION: "us-east4" });
  // Built while the shared data folder is there; then the folder is taken away, as in the image.
  const bundleFile = (withRtt: boolean): string => {
    const dir = mkdtempSync(path.join(tmpdir(), "gw-carbon-"));
    const file = path.join(dir, "carbon.json");
    const bundle = buildRegionCarbonBundle({
      cloud: "gcp",
      regions: ["europe-north1", "europe-west2", "us-east4"],
      tables: loadStaticCarbonTables(),
      hourly: loadHourlyCarbonData(),
      ...(withRtt ? { from: "us-east4", rttMs: (_a: string, b: string) => ({ "europe-north1": 103, "europe-west2": 76, "us-east4": 0 })[b] } : {}),
    });
    writeFileSync(file, JSON.stringify(bundle));
    return file;
  };
  const withoutSharedData = async <T>(run: () => Promise<T>): Promise<T> => {
    const before = process.env.GPUFLEET_SHARED_DATA;
    process.env.GPUFLEET_SHARED_DATA = mkdtempSync(path.join(tmpdir(), "no-shared-data-"));
    try {
      return await run();
    } finally {
      if (before === undefined) delete process.env.GPUFLEET_SHARED_DATA;
      else process.env.GPUFLEET_SHARED_DATA = before;
    }
  };

  it("refuses to start without intensity data, naming the missing files and how to give them", async () => {
    if (!config) throw new Error("config");
    await expect(withoutSharedData(() => regionRoutingData(config, {}))).rejects.toThrow(
      /region routing \(GPUFLEET_GATEWAY_REGION=us-east4\) has no carbon intensity source: .*no-shared-data-.*region-data\.ts.*--set-file gateway\.regionRouting\.carbonData/,
    );
  });

  it("runs on a region data file alone: the shared data's figures, and the file's RTTs", async () => {
    if (!config) throw new Error("config");
    const file = bundleFile(true);
    const shared = intensitySourceFromConfig();
    const expected = await shared.intensity("gcp:europe-west2");
    const { source, fallbackRtt } = await withoutSharedData(() =>
      regionRoutingData(config, { GPUFLEET_GATEWAY_CARBON_DATA: file }),
    );
    const got = await source.intensity("gcp:europe-west2");
    expect(got.gCO2PerKWh).toBe(expected.gCO2PerKWh);
    expect(got.source).toBe(expected.source);
    expect(fallbackRtt?.("us-east4", "europe-north1")).toBe(103);
  });

  it("refuses a file without RTTs when neither the configuration nor the shared table gives any", async () => {
    if (!config) throw new Error("config");
    const file = bundleFile(false);
    await expect(
      withoutSharedData(() => regionRoutingData(config, { GPUFLEET_GATEWAY_CARBON_DATA: file })),
    ).rejects.toThrow(/no RTT beyond its own region.*GPUFLEET_GATEWAY_REGION_RTT_MS/);
    const configured = regionRoutingConfigFromEnv({ GPUFLEET_GATEWAY_REGION: "us-east4", GPUFLEET_GATEWAY_REGION_RTT_MS: "europe-west2=76" });
    if (!configured) throw new Error("config");
    await expect(
      withoutSharedData(() => regionRoutingData(configured, { GPUFLEET_GATEWAY_CARBON_DATA: file })),
    ).resolves.toMatchObject({ dataFile: file });
  });

  it("names an unusable data file", async () => {
    if (!config) throw new Error("config");
    await expect(regionRoutingData(config, { GPUFLEET_GATEWAY_CARBON_DATA: "/nonexistent/carbon.json" })).rejects.toThrow(
      /GPUFLEET_GATEWAY_CARBON_DATA=\/nonexistent\/carbon.json is unusable: .*ENOENT/,
    );
  });
});
