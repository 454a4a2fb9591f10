import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { StaticCarbonIntensitySource } from "./static-source.js";
import {
  loadStaticCarbonTables,
  parseCoefficientsCsv,
  parseGcpYearlyCsv,
  type StaticCarbonTables,
} from "./static-data.js";
import { REGION_ZONES, canonicalZone } from "./region-zones.js";
import { sharedDataDir } from "./shared-data.js";

function tables(): StaticCarbonTables {
  return {
    gcpYearly: new Map([
      [2023, new Map([["europe-north1", 50]])],
      [2024, new Map([["europe-north1", 39.32]])],
    ]),
    electricityMapsYearly: new Map([
      [
        2024,
        new Map([
          ["FI", 80],
          ["US-MIDA-PJM", 403],
        ]),
      ],
      [
        2025,
        new Map([
          ["FI", 68],
          ["US-MIDA-PJM", 418],
        ]),
      ],
    ]),
    coefficients: new Map([["aws:us-east-1", { gCO2PerKWh: 415.755, basis: "EPA" }]]),
    rejected: [],
  };
}

describe("StaticCarbonIntensitySource", () => {
  it("prefers the freshest figure by default and records which one it used", async () => {
    const source = new StaticCarbonIntensitySource(tables());
    const figure = await source.intensity("gcp:europe-north1");
    expect(figure).toEqual({
      gCO2PerKWh: 68,
      source: "electricitymaps-yearly-2025:FI",
      asOf: "2025",
      kind: "yearly-average",
    });
  });

  it("prefers the region's own figure when asked for the most specific", async () => {
    const source = new StaticCarbonIntensitySource(tables(), { preference: "most-specific" });
    const figure = await source.intensity("gcp:europe-north1");
    expect(figure.gCO2PerKWh).toBe(39.32);
    expect(figure.source).toBe("gcp-region-carbon-2024:europe-north1");
  });

  it("maps AWS and Azure regions to their grid zone and keeps the coefficient as a lower-ranked candidate", () => {
    const source = new StaticCarbonIntensitySource(tables());
    const candidates = source.candidates("aws:us-east-1");
    expect(candidates.map((c) => c.source)).toEqual([
      "electricitymaps-yearly-2025:US-MIDA-PJM",
      "cloud-carbon-coefficients-aws:us-east-1 (EPA)",
    ]);
    expect(source.intensitySync("azure:East US").gCO2PerKWh).toBe(418);
  });

  it("accepts zones directly, including legacy zone keys", () => {
    const source = new StaticCarbonIntensitySource({
      ...tables(),
      electricityMapsYearly: new Map([[2025, new Map([["IN-WE", 653]])]]),
    });
    expect(source.intensitySync("zone:IN-MH").gCO2PerKWh).toBe(653);
    expect(source.intensitySync("IN-WE").source).toBe("electricitymaps-yearly-2025:IN-WE");
  });

  it("rejects an unknown region with a message naming it", async () => {
    const source = new StaticCarbonIntensitySource(tables());
    await expect(source.intensity("gcp:mars-north1")).rejects.toThrow(/gcp:mars-north1/);
    expect(() => source.intensitySync("ibm:us-south")).toThrow(/cloud:region/);
  });
});

describe("static data parsers", () => {
  it("reads both GCP header spellings (lifecycle before 2021)", () => {
    const old = parseGcpYearlyCsv(
      "Google Cloud Region,Location,Google CFE,Lifecycle grid carbon intensity (gCO2eq / kWh)\nasia-east1,Taiwan,0.19,541\n",
    );
    const recent = parseGcpYearlyCsv(
      "Google Cloud Region,Location,Google CFE,Grid carbon intensity (gCO2eq / kWh)\r\nus-west1,Oregon,0.87,79.23",
    );
    expect(old.byRegion.get("asia-east1")).toBe(541);
    expect(recent.byRegion.get("us-west1")).toBe(79.23);
  });

  it("rejects coefficient rows whose factor lost its decimal point instead of reading them as tons", () => {
    const parsed = parseCoefficientsCsv(
      "Region,Location,NERC Region,CO2e (metric ton/kWh),Source\nFrance Central,Paris,,0.000067,EEA\nFinland Central,Helsinki,,000077,EEA,",
      "azure",
    );
    expect(parsed.byRegion.get("azure:francecentral")?.gCO2PerKWh).toBeCloseTo(67, 6);
    expect(parsed.byRegion.has("azure:finlandcentral")).toBe(false);
    expect(parsed.rejected).toEqual([
      expect.objectContaining({ line: 3, reason: expect.stringContaining("000077") }),
    ]);
  });
});

describe("shared carbon data", () => {
  const shared = loadStaticCarbonTables();

  it("has a yearly Electricity Maps figure for every zone the region map names", () => {
    const latestYear = Math.max(...shared.electricityMapsYearly.keys());
    const zones = shared.electricityMapsYearly.get(latestYear);
    const missing = Object.entries(REGION_ZONES).flatMap(([cloud, regions]) =>
      Object.entries(regions)
        .filter(([, zone]) => !zones?.has(zone))
        .map(([region, zone]) => `${cloud}:${region}→${zone}`),
    );
    expect(missing).toEqual([]);
  });

  it("agrees with the published GCP region → zone map", () => {
    const published = JSON.parse(
      readFileSync(path.join(sharedDataDir(), "latency", "gcp-region-to-zone.json"), "utf8"),
    ) as Record<string, string>;
    for (const [region, zone] of Object.entries(published)) {
      expect(REGION_ZONES.gcp[region], region).toBe(canonicalZone(zone));
    }
  });

  it("gives Finland's GCP region a far lower intensity than Iowa's", () => {
    const source = new StaticCarbonIntensitySource(shared);
    expect(source.intensitySync("gcp:europe-north1").gCO2PerKWh).toBeLessThan(
      source.intensitySync("gcp:us-central1").gCO2PerKWh / 3,
    );
  });
});
