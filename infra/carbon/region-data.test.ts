import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadHourlyCarbonData } from "./hourly-data.js";
import { intensitySourceFromConfig } from "./intensity-source.js";
import {
  buildRegionCarbonBundle,
  loadRegionCarbonBundle,
  MAX_REGION_DATA_BYTES,
  parseRegionCarbonBundle,
  REGION_DATA_FORMAT,
} from "./region-data.js";
import { StaticCarbonIntensitySource } from "./static-source.js";
import { loadStaticCarbonTables } from "./static-data.js";

const REGIONS = ["europe-north1", "europe-west2", "us-east4", "asia-northeast1"];

function bundle(regions: readonly string[] = REGIONS) {
  return buildRegionCarbonBundle({
    cloud: "gcp",
    regions,
    from: "us-east4",
    tables: loadStaticCarbonTables(),
    hourly: loadHourlyCarbonData(),
    rttMs: (a, b) =>
      ({ "europe-north1": 103, "europe-west2": 76, "us-east4": 0, "asia-northeast1": 160 })[b] ??
      (a === b ? 0 : undefined),
  });
}

describe("a region data bundle (what the gateway reads without the shared data folder)", () => {
  it("answers every region's yearly and hourly figure as the shared data does", async () => {
    const loaded = parseRegionCarbonBundle(JSON.stringify(bundle()));
    const shared = StaticCarbonIntensitySource.fromSharedData();
    const fromBundle = intensitySourceFromConfig(
      {},
      { staticSource: loaded.staticSource, ...(loaded.hourly ? { hourly: loaded.hourly } : {}) },
    );
    const fromShared = intensitySourceFromConfig({});
    for (const region of REGIONS) {
      expect(loaded.staticSource.intensitySync(`gcp:${region}`)).toEqual(
        shared.intensitySync(`gcp:${region}`),
      );
      // 2023 (in both), and a date after the data (both read the same hour of 2023).
      for (const hour of [Date.UTC(2023, 5, 15, 13), Date.UTC(2026, 0, 3, 4)])
        expect(fromBundle.historical(`gcp:${region}`, hour)).toEqual(
          fromShared.historical(`gcp:${region}`, hour),
        );
    }
    // europe-north1 (FI) has no hourly zone: its hours are its yearly figure.
    expect(loaded.hourly?.zones().sort()).toEqual(["GB", "JP-TK", "US-MIDA-PJM"]);
    expect(loaded.rttMs).toEqual({
      from: "us-east4",
      to: new Map(
        Object.entries({ "europe-north1": 103, "europe-west2": 76, "us-east4": 0, "asia-northeast1": 160 }),
      ),
    });
  });

  it("stays under a ConfigMap's size for the 16 hourly zones' regions, and refuses a larger file", () => {
    const sixteen = bundle([
      "us-west2",
      "us-east4",
      "us-south1",
      "northamerica-northeast2",
      "europe-west2",
      "europe-west3",
      "asia-northeast1",
      "asia-northeast3",
      "asia-southeast1",
      "asia-south1",
      "australia-southeast1",
      "australia-southeast2",
      "southamerica-east1",
      "southamerica-west1",
    ]);
    expect(Buffer.byteLength(JSON.stringify(sixteen))).toBeLessThan(MAX_REGION_DATA_BYTES);
    const dir = mkdtempSync(path.join(tmpdir(), "region-data-"));
    const big = path.join(dir, "big.json");
    writeFileSync(big, " ".repeat(MAX_REGION_DATA_BYTES + 1));
    expect(() => loadRegionCarbonBundle(big)).toThrow(/over 1000000/);
    expect(() => loadRegionCarbonBundle(path.join(dir, "absent.json"))).toThrow(/cannot read .*ENOENT/);
  });

  it("names what is wrong in a malformed bundle", () => {
    const good = bundle(["europe-west2"]);
    const cases: Array<[unknown, RegExp]> = [
      ["not json", /not JSON/],
      [{ ...good, format: "other" }, /format must be/],
      [
        { ...good, gcpYearly: { "2024": { "europe-west2": -1 } } },
        /gcpYearly.2024.europe-west2 must be a number/,
      ],
      [{ format: REGION_DATA_FORMAT }, /holds no yearly figure/],
      [
        { ...good, hourly: { ...good.hourly, zones: { GB: [1, "x"] } } },
        /hourly.zones.GB\[1\] must be a number/,
      ],
      [{ ...good, hourly: { ...good.hourly, zones: { GB: [1, 2], DE: [1] } } }, /same hours/],
      [{ ...good, hourly: { ...good.hourly, start: "2023-01-01T00:30:00Z" } }, /on the hour/],
      [{ ...good, rttMs: { from: "us-east4", to: { "europe-west2": 1e9 } } }, /rttMs.to.europe-west2/],
    ];
    for (const [doc, message] of cases)
      expect(() => parseRegionCarbonBundle(typeof doc === "string" ? doc : JSON.stringify(doc))).toThrow(
        message,
      );
  });

  it("refuses a region no table knows", () => {
    expect(() => bundle(["mars-north1"])).toThrow(/no carbon figure for gcp:mars-north1/);
  });
});
