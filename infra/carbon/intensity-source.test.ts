import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HourlyCarbonData, parseHourlyCsv } from "./hourly-data.js";
import { intensitySourceFromConfig, intensitySnapshot, LayeredIntensitySource } from "./intensity-source.js";
import { ElectricityMapsSource } from "./electricity-maps.js";
import { StaticCarbonIntensitySource } from "./static-source.js";
import { sendJson, startFakeApi, type FakeApi } from "./test-server.js";
import { planFromSource } from "../placement/hourly.js";
import { RttTable } from "../placement/rtt.js";

const HOUR = 3_600_000;
const Y2023 = Date.UTC(2023, 0, 1);
const DAY = Date.UTC(2026, 0, 5);
const quiet = { warn: () => undefined };

const staticSource = new StaticCarbonIntensitySource({
  gcpYearly: new Map(),
  electricityMapsYearly: new Map([
    [
      2025,
      new Map([
        ["GB", 210],
        ["DE", 380],
        ["FR", 31],
      ]),
    ],
  ]),
  coefficients: new Map(),
  rejected: [],
});

/** A year of history (2023): GB at 200 g/kWh, DE at 100 g/kWh every hour. */
function history(): HourlyCarbonData {
  const hours = 365 * 24;
  return new HourlyCarbonData(
    Y2023,
    new Map([
      ["GB", new Float64Array(hours).fill(200)],
      ["DE", new Float64Array(hours).fill(100)],
    ]),
  );
}

let api: FakeApi;
beforeEach(async () => {
  api = await startFakeApi();
});
afterEach(async () => {
  await api.close();
});

describe("HourlyCarbonData", () => {
  it("parses the joined hourly CSV, maps file columns to zone ids, and reads the same hour of the last year outside its range", () => {
    const csv = [
      "datetime_utc,DE-LU,GB",
      "2023-12-31T22:00:00Z,300,100",
      "2023-12-31T23:00:00Z,310,110",
    ].join("\n");
    const data = parseHourlyCsv(csv, new Map([["DE-LU", "DE"]]));
    expect(data.at("gcp:europe-west3", Date.parse("2023-12-31T23:30:00Z"))).toMatchObject({
      gCO2PerKWh: 310,
      zone: "DE",
      historical: false,
    });
    expect(data.at("zone:DE-LU", Date.parse("2023-12-31T22:00:00Z"))?.gCO2PerKWh).toBe(300);
    expect(data.at("zone:GB", Date.parse("2026-12-31T23:00:00Z"))).toMatchObject({
      gCO2PerKWh: 110,
      historical: true,
    });
    expect(data.at("zone:FR", Date.parse("2023-12-31T22:00:00Z"))).toBeUndefined();
    expect(() => parseHourlyCsv("datetime_utc,GB\n2023-01-01T00:00:00Z,1\n2023-01-01T02:00:00Z,1")).toThrow(
      /not the hour after/,
    );
    expect(() => parseHourlyCsv("datetime_utc,GB\n2023-01-01T00:00:00Z,")).toThrow(/unusable value/);
  });
});

describe("LayeredIntensitySource", () => {
  it("without a live source: the hourly history where it has the zone, the yearly figure elsewhere", async () => {
    const source = new LayeredIntensitySource({ hourly: history(), static: staticSource, now: () => DAY });
    const series = await source.hourlySeries("zone:GB", DAY, 3);
    expect(series.map((h) => [h.gCO2PerKWh, h.kind])).toEqual([
      [200, "historical"],
      [200, "historical"],
      [200, "historical"],
    ]);
    expect((await source.hourlySeries("zone:FR", DAY, 2)).map((h) => [h.gCO2PerKWh, h.kind])).toEqual([
      [31, "yearly-average"],
      [31, "yearly-average"],
    ]);
    expect(await intensitySnapshot(source, ["zone:GB", "zone:FR", "zone:NOWHERE"])).toEqual({
      "zone:GB": 200,
      "zone:FR": 31,
    });
  });

  it("takes the live value for this hour and the forecast for later hours, filling hours past the forecast from history", async () => {
    api.on("/v3/carbon-intensity/latest", (_req, res) =>
      sendJson(res, 200, { carbonIntensity: 55, datetime: new Date(DAY).toISOString() }),
    );
    api.on("/v3/carbon-intensity/forecast", (_req, res) =>
      sendJson(res, 200, {
        forecast: [0, 0.5, 1, 1.5, 2, 2.5].map((h) => ({
          carbonIntensity: 60 + h * 10,
          datetime: new Date(DAY + h * HOUR).toISOString(),
        })),
      }),
    );
    const now = DAY + 10 * 60_000;
    const source = new LayeredIntensitySource({
      live: new ElectricityMapsSource({
        apiToken: "k",
        baseUrl: api.baseUrl,
        http: { allowPlainHttpToLoopback: true, retries: 0 },
        now: () => now,
        logger: quiet,
      }),
      hourly: history(),
      static: staticSource,
      now: () => now,
      logger: quiet,
    });
    const series = await source.hourlySeries("zone:GB", DAY, 5);
    expect(series.map((h) => [h.gCO2PerKWh, h.kind])).toEqual([
      [55, "live"],
      [72.5, "forecast"], // mean of the half-hourly points 70 and 75
      [82.5, "forecast"],
      [200, "historical"],
      [200, "historical"],
    ]);
    expect(series[3]?.fallbackReason).toMatch(/no figure for this hour/);
    expect(api.requests.every((r) => r.headers["auth-token"] === "k")).toBe(true);
  });

  it("a live source failing mid-day: every hour is still planned, from the forecast before and from history after", async () => {
    let failing = false;
    let now = DAY;
    api.on("/v3/carbon-intensity/latest", (req, res) => {
      if (failing) return sendJson(res, 500, { error: "down" });
      sendJson(res, 200, {
        carbonIntensity: req.query.get("zone") === "GB" ? 50 : 300,
        datetime: new Date(now).toISOString(),
      });
    });
    api.on("/v3/carbon-intensity/forecast", (req, res) => {
      if (failing) return sendJson(res, 500, { error: "down" });
      const zone = req.query.get("zone");
      sendJson(res, 200, {
        forecast: Array.from({ length: 48 }, (_, h) => ({
          carbonIntensity: zone === "GB" ? 50 : 300,
          datetime: new Date(DAY + h * HOUR).toISOString(),
        })),
      });
    });
    const source = intensitySourceFromConfig(
      { provider: "electricitymaps", baseUrl: api.baseUrl },
      {
        env: { GPUFLEET_ELECTRICITYMAPS_TOKEN: "k" },
        now: () => now,
        http: { allowPlainHttpToLoopback: true, retries: 0, timeoutMs: 500 },
        logger: quiet,
        staticSource,
        hourly: history(),
      },
    );
    const plan = await planFromSource(
      {
        hours: 24,
        latencyTargetMs: 50,
        rtt: RttTable.fromRecord({ U: { "zone:GB": 10, "zone:DE": 20 } }),
        gpuPower: { "nvidia-l4": { boardPowerW: 72, idlePowerW: 20 } },
        regions: ["zone:GB", "zone:DE"].map((region) => ({
          region,
          offers: [{ gpuProduct: "nvidia-l4", quotaGpus: 4, pricePerGpuHour: 1 }],
        })),
        models: [
          {
            name: "m",
            replicaShapes: [{ gpuProduct: "nvidia-l4", gpusPerReplica: 1, tokensPerSecondPerReplica: 100 }],
            demand: [{ origin: "U", tokensPerSecond: 150 }],
          },
        ],
        moves: { loadMinutes: 10, minDwellHours: 0 },
      },
      source,
      DAY,
      "carbon-aware",
      {
        windowHours: 4,
        commitHours: 4,
        beforeWindow: (hour) => {
          now = DAY + hour * HOUR + 60_000; // live caches expire between windows (5 min TTL, 4 h apart)
          failing = hour >= 12;
        },
      },
    );
    expect(plan.hours.map((h) => h.hour)).toEqual(Array.from({ length: 24 }, (_, h) => h));
    for (const h of plan.hours) {
      expect(
        h.routes.reduce((s, r) => s + r.tokensPerSecond, 0),
        `hour ${h.hour}`,
      ).toBeCloseTo(150, 6);
      const used = Object.values(h.intensitySource ?? {});
      expect(used.length, `hour ${h.hour}`).toBeGreaterThan(0);
      if (h.hour < 12) {
        expect(Object.keys(h.intensity)).toEqual(["zone:GB"]);
        expect(
          used.every((u) => (u.kind === "live" || u.kind === "forecast") && u.fallbackReason === undefined),
        ).toBe(true);
      } else {
        // History says DE is cleaner (100 vs 200): the plan follows the fallback figures.
        expect(Object.keys(h.intensity)).toEqual(["zone:DE"]);
        expect(used.every((u) => u.kind === "historical" && /HTTP 500/.test(u.fallbackReason ?? ""))).toBe(
          true,
        );
      }
    }
    expect(plan.hours[12]?.starts).toBe(2);
  });

  it("builds from config: keys come from the environment, keyed providers refuse plain http, unknown providers fail", () => {
    const injected = { staticSource, hourly: history() };
    expect(intensitySourceFromConfig({}, injected).name).toBe("hourly+static");
    expect(() =>
      intensitySourceFromConfig({ provider: "electricitymaps" }, { ...injected, env: {} }),
    ).toThrow(/set GPUFLEET_ELECTRICITYMAPS_TOKEN/);
    expect(() =>
      intensitySourceFromConfig(
        { provider: "electricitymaps", baseUrl: "http://carbon.example.test" },
        { ...injected, env: { GPUFLEET_ELECTRICITYMAPS_TOKEN: "k" } },
      ),
    ).toThrow(/https only/);
    expect(() => intensitySourceFromConfig({ provider: "carbon-aware-sdk" }, injected)).toThrow(
      /baseUrl is required/,
    );
    expect(() => intensitySourceFromConfig({ provider: "nope" as "static" }, injected)).toThrow(
      /provider must be one of/,
    );
    expect(
      intensitySourceFromConfig(
        { provider: "watttime", hourlyHistory: false },
        { ...injected, env: { GPUFLEET_WATTTIME_USERNAME: "u", GPUFLEET_WATTTIME_PASSWORD: "p" } },
      ).name,
    ).toBe("watttime+static");
  });
});
