import type { CarbonIntensity, RegionRef, TimeWindow } from "./types.js";
import {
  LiveCarbonIntensitySource,
  joinUrl,
  requireNumber,
  requireString,
  type ForecastSeries,
  type LiveSourceOptions,
} from "./live-source.js";
import { getJson, HttpRequestError } from "./http.js";

export interface WattTimeOptions extends LiveSourceOptions {
  username: string;
  password: string;
  /** Default https://api.watttime.org */
  baseUrl?: string;
  /** gpufleet region (`aws:us-west-1`, `zone:US-CAL-CISO`) → WattTime region code (`CAISO_NORTH`). */
  regionMap: Readonly<Record<RegionRef, string>>;
  /** Default `co2_moer` (marginal operating emissions rate). */
  signalType?: string;
}

/** 1 lb = 453.59237 g, and lbs per MWh → g per kWh divides by 1000. */
export const GRAMS_PER_KWH_PER_LB_PER_MWH = 0.45359237;

/** WattTime tokens last 30 minutes (docs.watttime.org); renew a little before. */
const TOKEN_LIFETIME_MS = 25 * 60_000;

/**
 * WattTime API v3. `GET /login` with HTTP Basic auth answers `{token}`; data calls carry
 * `Authorization: Bearer <token>`. `GET /v3/forecast?region=R&signal_type=co2_moer` answers
 * `{data:[{point_time, value}], meta:{region, signal_type, units:"lbs_co2_per_mwh", generated_at, …}}`;
 * `GET /v3/signal-index?region=R&signal_type=co2_moer` answers the same envelope with a 0-100
 * percentile (units `percentile`), which is relative, so `intensity()` takes the first forecast
 * point (the current marginal rate) and `signalIndex()` exposes the percentile.
 * Note: MOER is a marginal rate, not the average intensity the other sources give.
 */
export class WattTimeSource extends LiveCarbonIntensitySource {
  readonly name = "watttime";
  private readonly baseUrl: string;
  private token: { value: string; expiresAt: number } | undefined;

  constructor(private readonly config: WattTimeOptions) {
    super(config);
    this.baseUrl = config.baseUrl ?? "https://api.watttime.org";
    this.assertKeyedBaseUrl(this.baseUrl);
  }

  regionFor(region: RegionRef): string {
    const code = this.config.regionMap[region];
    if (code === undefined) throw new Error(`no WattTime region mapped for ${region}`);
    return code;
  }

  /** The current signal-index percentile (0 = cleanest, 100 = dirtiest of the recent month). */
  async signalIndex(region: RegionRef): Promise<{ percentile: number; asOf: string; region: string }> {
    const code = this.regionFor(region);
    const body = await this.authorisedGet(
      `/v3/signal-index?region=${encodeURIComponent(code)}&signal_type=${this.signal()}`,
    );
    const first = firstPoint(body, "watttime signal-index");
    return { percentile: first.value, asOf: first.time.toISOString(), region: code };
  }

  protected async fetchLatest(region: RegionRef): Promise<CarbonIntensity> {
    const code = this.regionFor(region);
    const body = await this.authorisedGet(
      `/v3/forecast?region=${encodeURIComponent(code)}&signal_type=${this.signal()}`,
    );
    const first = firstPoint(body, "watttime forecast");
    return {
      gCO2PerKWh: toGramsPerKWh(first.value, unitsOf(body)),
      source: `watttime-${this.signal()}:${code}`,
      asOf: first.time.toISOString(),
      kind: "live",
    };
  }

  protected async fetchForecast(region: RegionRef, window: TimeWindow): Promise<ForecastSeries> {
    const code = this.regionFor(region);
    const body = await this.authorisedGet(
      `/v3/forecast?region=${encodeURIComponent(code)}&signal_type=${this.signal()}`,
    );
    const units = unitsOf(body);
    const points = dataPoints(body, "watttime forecast").map((p) => ({
      time: p.time,
      value: toGramsPerKWh(p.value, units),
    }));
    const meta = (body as { meta?: { generated_at?: unknown } }).meta;
    return {
      points,
      source: `watttime-forecast-${this.signal()}:${code}`,
      asOf: typeof meta?.generated_at === "string" ? meta.generated_at : window.start.toISOString(),
    };
  }

  private signal(): string {
    return this.config.signalType ?? "co2_moer";
  }

  private async login(): Promise<string> {
    const basic = Buffer.from(`${this.config.username}:${this.config.password}`).toString("base64");
    const body = (await getJson(joinUrl(this.baseUrl, "/login"), {
      headers: { authorization: `Basic ${basic}` },
      credentials: true,
      policy: this.config.http ?? {},
    })) as { token?: unknown };
    const value = requireString(body.token, "watttime login token");
    this.token = { value, expiresAt: this.now() + TOKEN_LIFETIME_MS };
    return value;
  }

  /** GET with the bearer token, logging in first or again after a 401. */
  private async authorisedGet(pathAndQuery: string): Promise<unknown> {
    const url = joinUrl(this.baseUrl, pathAndQuery);
    const token =
      this.token !== undefined && this.token.expiresAt > this.now() ? this.token.value : await this.login();
    try {
      return await this.getJson(url, { authorization: `Bearer ${token}` });
    } catch (error) {
      if (!(error instanceof HttpRequestError) || error.status !== 401) throw error;
      const renewed = await this.login();
      return this.getJson(url, { authorization: `Bearer ${renewed}` });
    }
  }
}

function dataPoints(body: unknown, what: string): Array<{ time: Date; value: number }> {
  const data = (body as { data?: unknown }).data;
  if (!Array.isArray(data)) throw new Error(`${what}: missing data array`);
  return (data as Array<Record<string, unknown>>).map((p) => ({
    time: new Date(requireString(p.point_time, `${what} point_time`)),
    value: requireNumber(p.value, `${what} value`),
  }));
}

function firstPoint(body: unknown, what: string): { time: Date; value: number } {
  const first = dataPoints(body, what)[0];
  if (first === undefined) throw new Error(`${what}: empty data array`);
  return first;
}

function unitsOf(body: unknown): string {
  const units = (body as { meta?: { units?: unknown } }).meta?.units;
  return typeof units === "string" ? units : "lbs_co2_per_mwh";
}

export function toGramsPerKWh(value: number, units: string): number {
  if (units === "lbs_co2_per_mwh") return value * GRAMS_PER_KWH_PER_LB_PER_MWH;
  if (units === "g_co2_per_kwh" || units === "kg_co2_per_mwh") return value;
  throw new Error(`watttime: unsupported units "${units}"`);
}
