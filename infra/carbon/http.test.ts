import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { backoffDelayMs, DEFAULT_HTTP_POLICY, getJson } from "./http.js";
import { ElectricityMapsSource } from "./electricity-maps.js";
import { WattTimeSource } from "./watttime.js";
import { StaticCarbonIntensitySource } from "./static-source.js";
import { sendJson, startFakeApi, type FakeApi } from "./test-server.js";
import { TtlCache } from "./ttl-cache.js";

describe("backoffDelayMs", () => {
  it("doubles from the base, caps at the maximum and adds at most 50% jitter", () => {
    const policy = { ...DEFAULT_HTTP_POLICY, backoffMs: 100, maxBackoffMs: 350 };
    expect([0, 1, 2, 3].map((retry) => backoffDelayMs(policy, retry, () => 0))).toEqual([100, 200, 350, 350]);
    expect(backoffDelayMs(policy, 1, () => 0.999)).toBeCloseTo(299.9, 6);
  });
});

describe("TtlCache", () => {
  it("shares one in-flight load between concurrent callers and does not cache failures", async () => {
    const cache = new TtlCache<number>(1_000, () => 0);
    let loads = 0;
    const load = async (): Promise<number> => {
      loads++;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return 7;
    };
    expect(await Promise.all([cache.getOrLoad("k", load), cache.getOrLoad("k", load)])).toEqual([7, 7]);
    expect(loads).toBe(1);
    await expect(cache.getOrLoad("bad", () => Promise.reject(new Error("down")))).rejects.toThrow("down");
    expect(await cache.getOrLoad("bad", () => Promise.resolve(3))).toBe(3);
  });
});

describe("getJson with credentials", () => {
  let api: FakeApi;
  let elsewhere: FakeApi;
  beforeEach(async () => {
    api = await startFakeApi();
    elsewhere = await startFakeApi();
  });
  afterEach(async () => {
    await api.close();
    await elsewhere.close();
  });
  const quick = { timeoutMs: 500, retries: 2, backoffMs: 1, maxBackoffMs: 2 };

  it("refuses to send a key over plain http: any remote host, and loopback unless a test allows it", async () => {
    expect(
      () => new ElectricityMapsSource({ apiToken: "k", baseUrl: "http://api.electricitymaps.com" }),
    ).toThrow(/https only/);
    expect(
      () =>
        new WattTimeSource({
          username: "u",
          password: "p",
          regionMap: {},
          baseUrl: "http://api.watttime.org",
          http: { allowPlainHttpToLoopback: true },
        }),
    ).toThrow(/https only/);
    expect(() => new ElectricityMapsSource({ apiToken: "k", baseUrl: api.baseUrl })).toThrow(/https only/);
    api.on("/x", (_req, res) => sendJson(res, 200, {}));
    await expect(
      getJson(`${api.baseUrl}/x`, { headers: { "auth-token": "k" }, credentials: true, policy: quick }),
    ).rejects.toThrow(/refusing to send credentials/);
    expect(api.requests).toHaveLength(0);
    // Without a key, plain http is fine (a self-hosted Carbon Aware SDK).
    expect(await getJson(`${api.baseUrl}/x`, { policy: quick })).toEqual({});
  });

  it("does not follow a redirect, so the key never reaches the redirect's target; the live source falls back", async () => {
    elsewhere.on("/steal", (_req, res) =>
      sendJson(res, 200, { carbonIntensity: 1, datetime: "2026-01-01T00:00:00Z" }),
    );
    api.on("/v3/carbon-intensity/latest", (_req, res) => {
      res.writeHead(302, { location: `${elsewhere.baseUrl}/steal` });
      res.end();
    });
    const source = new ElectricityMapsSource({
      apiToken: "secret",
      baseUrl: api.baseUrl,
      http: { ...quick, allowPlainHttpToLoopback: true },
      fallback: new StaticCarbonIntensitySource({
        gcpYearly: new Map(),
        electricityMapsYearly: new Map([[2025, new Map([["FR", 31]])]]),
        coefficients: new Map(),
        rejected: [],
      }),
      logger: { warn: () => undefined },
    });
    const figure = await source.intensity("zone:FR");
    expect(figure.gCO2PerKWh).toBe(31);
    expect(figure.fallbackReason).toMatch(/302 redirect .* not followed/);
    expect(api.requests).toHaveLength(1);
    expect(elsewhere.requests).toHaveLength(0);
  });

  it("bounds the response body, with or without a content-length, and does not retry an oversized answer", async () => {
    const big = JSON.stringify({ carbonIntensity: 1, pad: "x".repeat(200_000) });
    api.on("/declared", (_req, res) => {
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(big)),
      });
      res.end(big);
    });
    api.on("/chunked", (_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      for (let i = 0; i < big.length; i += 10_000) res.write(big.slice(i, i + 10_000));
      res.end();
    });
    const policy = { ...quick, maxResponseBytes: 64 * 1024 };
    await expect(getJson(`${api.baseUrl}/declared`, { policy })).rejects.toThrow(
      /above the 65536-byte limit/,
    );
    await expect(getJson(`${api.baseUrl}/chunked`, { policy })).rejects.toThrow(
      /exceeds the 65536-byte limit/,
    );
    expect(api.requests).toHaveLength(2);
    expect(
      await getJson(`${api.baseUrl}/chunked`, { policy: { ...quick, maxResponseBytes: 1 << 20 } }),
    ).toMatchObject({
      carbonIntensity: 1,
    });
  });
});
