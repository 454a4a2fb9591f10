import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { pino } from "pino";
import { Writable } from "node:stream";
import { ElectricityMapsSource } from "./electricity-maps.js";
import { WattTimeSource, GRAMS_PER_KWH_PER_LB_PER_MWH } from "./watttime.js";
import { CarbonAwareSdkSource } from "./carbon-aware-sdk.js";
import { StaticCarbonIntensitySource } from "./static-source.js";
import { sendJson, startFakeApi, type FakeApi } from "./test-server.js";
import type { HttpPolicy } from "./http.js";

// The fake API is plain http on 127.0.0.1: credentials may go there only because the test allows loopback.
const FAST: Partial<HttpPolicy> = {
  timeoutMs: 200,
  retries: 2,
  backoffMs: 5,
  maxBackoffMs: 20,
  allowPlainHttpToLoopback: true,
};

const staticFallback = new StaticCarbonIntensitySource({
  gcpYearly: new Map(),
  electricityMapsYearly: new Map([
    [
      2025,
      new Map([
        ["FR", 31],
        ["US-CAL-CISO", 208],
        ["NL", 253],
      ]),
    ],
  ]),
  coefficients: new Map(),
  rejected: [],
});

/** A logger whose warnings the test can read. */
function capturedLogger(): { logger: ReturnType<typeof pino>; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return {
    logger: pino({ level: "warn" }, stream),
    lines: () =>
      chunks
        .join("")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

let api: FakeApi;
beforeEach(async () => {
  api = await startFakeApi();
});
afterEach(async () => {
  await api.close();
});

describe("ElectricityMapsSource", () => {
  it("reads the latest intensity for a cloud region's zone with the auth-token header", async () => {
    api.on("/v3/carbon-intensity/latest", (req, res) =>
      sendJson(res, 200, {
        zone: req.query.get("zone"),
        carbonIntensity: 57,
        datetime: "2025-11-27T18:00:00.000Z",
        updatedAt: "2025-11-27T18:04:00.000Z",
        emissionFactorType: "lifecycle",
        isEstimated: true,
        estimationMethod: "TIME_SLICER_AVERAGE",
      }),
    );
    const source = new ElectricityMapsSource({ apiToken: "secret-token", baseUrl: api.baseUrl, http: FAST });
    const figure = await source.intensity("gcp:europe-west9");
    expect(figure).toEqual({
      gCO2PerKWh: 57,
      source: "electricitymaps-latest:FR",
      asOf: "2025-11-27T18:00:00.000Z",
      kind: "live",
    });
    expect(api.requests[0]?.query.get("zone")).toBe("FR");
    expect(api.requests[0]?.headers["auth-token"]).toBe("secret-token");
  });

  it("averages the forecast points inside the window", async () => {
    api.on("/v3/carbon-intensity/forecast", (_req, res) =>
      sendJson(res, 200, {
        zone: "NL",
        updatedAt: "2025-11-27T18:00:00.000Z",
        forecast: [
          { carbonIntensity: 100, datetime: "2025-11-27T18:00:00.000Z" },
          { carbonIntensity: 200, datetime: "2025-11-27T19:00:00.000Z" },
          { carbonIntensity: 900, datetime: "2025-11-27T20:00:00.000Z" },
        ],
      }),
    );
    const source = new ElectricityMapsSource({ apiToken: "t", baseUrl: api.baseUrl, http: FAST });
    const figure = await source.forecastAverage("azure:westeurope", {
      start: new Date("2025-11-27T18:00:00Z"),
      end: new Date("2025-11-27T20:00:00Z"),
    });
    expect(figure.gCO2PerKWh).toBe(150);
    expect(figure.kind).toBe("forecast-average");
  });

  it("retries 5xx answers with backoff and succeeds on the third attempt", async () => {
    let calls = 0;
    api.on("/v3/carbon-intensity/latest", (_req, res) => {
      calls++;
      if (calls < 3) sendJson(res, 503, { error: "busy" });
      else sendJson(res, 200, { zone: "FR", carbonIntensity: 40, datetime: "2025-11-27T18:00:00Z" });
    });
    const source = new ElectricityMapsSource({
      apiToken: "t",
      baseUrl: api.baseUrl,
      http: FAST,
      fallback: staticFallback,
    });
    const figure = await source.intensity("zone:FR");
    expect(figure.gCO2PerKWh).toBe(40);
    expect(figure.fallbackReason).toBeUndefined();
    expect(calls).toBe(3);
  });

  it("falls back to the static source with a warning when every attempt times out", async () => {
    api.on("/v3/carbon-intensity/latest", () => {
      // Never answers: each attempt hits the client timeout.
    });
    const log = capturedLogger();
    const source = new ElectricityMapsSource({
      apiToken: "t",
      baseUrl: api.baseUrl,
      // 250 ms, not less: on a loaded machine a shorter client timeout can fire before this process's own
      // test server has accepted the attempt, and the attempt count below would then be one short.
      http: { ...FAST, timeoutMs: 250, retries: 1 },
      fallback: staticFallback,
      logger: log.logger,
    });
    const figure = await source.intensity("zone:FR");
    expect(figure.gCO2PerKWh).toBe(31);
    expect(figure.kind).toBe("yearly-average");
    expect(figure.fallbackReason).toMatch(/electricitymaps: timed out after 250 ms/);
    expect(api.requests).toHaveLength(2);
    const warning = log.lines().find((l) => l.msg === "carbon intensity source failed; using fallback");
    expect(warning).toMatchObject({ source: "electricitymaps", region: "zone:FR", fallback: "static" });
  });

  it("does not retry a 401 and without a fallback rejects with the status", async () => {
    api.on("/v3/carbon-intensity/latest", (_req, res) => sendJson(res, 401, { error: "bad token" }));
    const source = new ElectricityMapsSource({ apiToken: "wrong", baseUrl: api.baseUrl, http: FAST });
    await expect(source.intensity("zone:FR")).rejects.toThrow(/HTTP 401/);
    expect(api.requests).toHaveLength(1);
  });

  it("serves repeated questions from its TTL cache until the entry expires", async () => {
    let intensity = 10;
    api.on("/v3/carbon-intensity/latest", (_req, res) =>
      sendJson(res, 200, { zone: "FR", carbonIntensity: intensity++, datetime: "2025-11-27T18:00:00Z" }),
    );
    let now = 1_000_000;
    const source = new ElectricityMapsSource({
      apiToken: "t",
      baseUrl: api.baseUrl,
      http: FAST,
      cacheTtlMs: 60_000,
      now: () => now,
    });
    expect((await source.intensity("zone:FR")).gCO2PerKWh).toBe(10);
    now += 59_000;
    expect((await source.intensity("zone:FR")).gCO2PerKWh).toBe(10);
    expect(api.requests).toHaveLength(1);
    now += 2_000;
    expect((await source.intensity("zone:FR")).gCO2PerKWh).toBe(11);
    expect(api.requests).toHaveLength(2);
  });
});

describe("WattTimeSource", () => {
  function wattTimeRoutes(options: { rejectFirstToken?: boolean } = {}): { logins: () => number } {
    let logins = 0;
    api.on("/login", (req, res) => {
      logins++;
      const expected = `Basic ${Buffer.from("alice:pw").toString("base64")}`;
      if (req.headers.authorization !== expected) return sendJson(res, 403, { error: "bad credentials" });
      sendJson(res, 200, { token: `token-${logins}` });
    });
    api.on("/v3/forecast", (req, res) => {
      if (options.rejectFirstToken && req.headers.authorization === "Bearer token-1")
        return sendJson(res, 401, { error: "expired" });
      sendJson(res, 200, {
        data: [
          { point_time: "2025-11-27T18:00:00+00:00", value: 800 },
          { point_time: "2025-11-27T18:05:00+00:00", value: 1000 },
          { point_time: "2025-11-27T18:10:00+00:00", value: 5000 },
        ],
        meta: {
          region: req.query.get("region"),
          signal_type: req.query.get("signal_type"),
          units: "lbs_co2_per_mwh",
          generated_at: "2025-11-27T18:00:00+00:00",
        },
      });
    });
    api.on("/v3/signal-index", (req, res) =>
      sendJson(res, 200, {
        data: [{ point_time: "2025-11-27T18:00:00+00:00", value: 23 }],
        meta: { region: req.query.get("region"), signal_type: "co2_moer", units: "percentile" },
      }),
    );
    return { logins: () => logins };
  }

  it("logs in with basic auth and converts the current MOER from lbs/MWh to g/kWh", async () => {
    const routes = wattTimeRoutes();
    const source = new WattTimeSource({
      username: "alice",
      password: "pw",
      baseUrl: api.baseUrl,
      regionMap: { "aws:us-west-1": "CAISO_NORTH" },
      http: FAST,
    });
    const figure = await source.intensity("aws:us-west-1");
    expect(figure.gCO2PerKWh).toBeCloseTo(800 * GRAMS_PER_KWH_PER_LB_PER_MWH, 9);
    expect(figure.source).toBe("watttime-co2_moer:CAISO_NORTH");
    const forecastCall = api.requests.find((r) => r.path === "/v3/forecast");
    expect(forecastCall?.headers.authorization).toBe("Bearer token-1");
    expect(forecastCall?.query.get("signal_type")).toBe("co2_moer");
    const index = await source.signalIndex("aws:us-west-1");
    expect(index).toEqual({ percentile: 23, asOf: "2025-11-27T18:00:00.000Z", region: "CAISO_NORTH" });
    expect(routes.logins()).toBe(1);
  });

  it("logs in again after a 401 and averages the forecast over the window", async () => {
    const routes = wattTimeRoutes({ rejectFirstToken: true });
    const source = new WattTimeSource({
      username: "alice",
      password: "pw",
      baseUrl: api.baseUrl,
      regionMap: { "zone:US-CAL-CISO": "CAISO_NORTH" },
      http: FAST,
    });
    const figure = await source.forecastAverage("zone:US-CAL-CISO", {
      start: new Date("2025-11-27T18:00:00Z"),
      end: new Date("2025-11-27T18:10:00Z"),
    });
    expect(figure.gCO2PerKWh).toBeCloseTo(900 * GRAMS_PER_KWH_PER_LB_PER_MWH, 9);
    expect(figure.kind).toBe("forecast-average");
    expect(routes.logins()).toBe(2);
  });

  it("falls back for a region it has no WattTime code for, without calling the API", async () => {
    wattTimeRoutes();
    const log = capturedLogger();
    const source = new WattTimeSource({
      username: "alice",
      password: "pw",
      baseUrl: api.baseUrl,
      regionMap: {},
      fallback: staticFallback,
      logger: log.logger,
      http: FAST,
    });
    const figure = await source.intensity("zone:FR");
    expect(figure.gCO2PerKWh).toBe(31);
    expect(figure.fallbackReason).toMatch(/no WattTime region mapped for zone:FR/);
    expect(api.requests).toHaveLength(0);
  });
});

describe("CarbonAwareSdkSource", () => {
  it("takes the latest bylocation rating for an Azure region name", async () => {
    api.on("/emissions/bylocation", (req, res) =>
      sendJson(res, 200, [
        {
          location: req.query.get("location"),
          time: "2025-11-27T17:00:00Z",
          rating: 300,
          duration: "01:00:00",
        },
        {
          location: req.query.get("location"),
          time: "2025-11-27T18:00:00Z",
          rating: 250,
          duration: "01:00:00",
        },
      ]),
    );
    const now = Date.parse("2025-11-27T18:30:00Z");
    const source = new CarbonAwareSdkSource({ baseUrl: api.baseUrl, http: FAST, now: () => now });
    const figure = await source.intensity("azure:westeurope");
    expect(figure).toEqual({
      gCO2PerKWh: 250,
      source: "carbon-aware-sdk:westeurope",
      asOf: "2025-11-27T18:00:00.000Z",
      kind: "live",
    });
    expect(api.requests[0]?.query.get("location")).toBe("westeurope");
    expect(api.requests[0]?.query.get("toTime")).toBe("2025-11-27T18:30:00.000Z");
  });

  it("averages forecastData of the current forecast, converting lbs/MWh when configured", async () => {
    api.on("/emissions/forecasts/current", (req, res) =>
      sendJson(res, 200, [
        {
          generatedAt: "2025-11-27T18:00:00Z",
          requestedAt: "2025-11-27T18:01:00Z",
          location: req.query.get("location"),
          dataStartAt: req.query.get("dataStartAt"),
          dataEndAt: req.query.get("dataEndAt"),
          windowSize: 5,
          optimalDataPoints: [
            { location: "eastus", timestamp: "2025-11-27T18:05:00Z", duration: 5, value: 500 },
          ],
          forecastData: [
            { location: "eastus", timestamp: "2025-11-27T18:00:00Z", duration: 5, value: 700 },
            { location: "eastus", timestamp: "2025-11-27T18:05:00Z", duration: 5, value: 500 },
          ],
        },
      ]),
    );
    const source = new CarbonAwareSdkSource({
      baseUrl: api.baseUrl,
      http: FAST,
      ratingUnit: "lbs/MWh",
      locationMap: { "gcp:us-east4": "eastus" },
    });
    const window = { start: new Date("2025-11-27T18:00:00Z"), end: new Date("2025-11-27T19:00:00Z") };
    const figure = await source.forecastAverage("gcp:us-east4", window);
    expect(figure.gCO2PerKWh).toBeCloseTo(600 * GRAMS_PER_KWH_PER_LB_PER_MWH, 9);
    expect(api.requests[0]?.query.get("dataStartAt")).toBe("2025-11-27T18:00:00.000Z");
  });

  it("falls back after a 500 on every retry, having made exactly 1 + retries attempts", async () => {
    api.on("/emissions/bylocation", (_req, res) => sendJson(res, 500, { error: "boom" }));
    const log = capturedLogger();
    const source = new CarbonAwareSdkSource({
      baseUrl: api.baseUrl,
      http: FAST,
      fallback: staticFallback,
      logger: log.logger,
    });
    const figure = await source.intensity("azure:westeurope");
    expect(figure.gCO2PerKWh).toBe(253);
    expect(figure.fallbackReason).toMatch(/HTTP 500/);
    expect(api.requests).toHaveLength(3);
  });
});
