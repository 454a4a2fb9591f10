import type { CarbonIntensity, RegionRef, TimeWindow } from "./types.js";
import { parseRegionRef } from "./types.js";
import {
  LiveCarbonIntensitySource,
  joinUrl,
  requireNumber,
  requireString,
  type ForecastSeries,
  type LiveSourceOptions,
} from "./live-source.js";
import { GRAMS_PER_KWH_PER_LB_PER_MWH } from "./watttime.js";

export interface CarbonAwareSdkOptions extends LiveSourceOptions {
  /** The self-hosted Carbon Aware SDK Web API, e.g. http://127.0.0.1:8080 */
  baseUrl: string;
  /**
   * gpufleet region → SDK location name. The SDK's location names are Azure region names, so
   * `azure:<name>` maps to `<name>` without an entry; other clouds need one.
   */
  locationMap?: Readonly<Record<RegionRef, string>>;
  /** Unit of the SDK's `rating`/`value`: gCO2/kWh with Electricity Maps behind it, lbs/MWh with WattTime. */
  ratingUnit?: "gCO2/kWh" | "lbs/MWh";
  /** How far back `/emissions/bylocation` looks for the latest point; default 1 hour. */
  lookbackMs?: number;
}

/**
 * Green Software Foundation Carbon Aware SDK Web API.
 * `GET /emissions/bylocation?location=L&time=T0&toTime=T1` answers `[{location, time, rating, duration}]`;
 * `GET /emissions/forecasts/current?location=L&dataStartAt=&dataEndAt=` answers
 * `[{generatedAt, requestedAt, location, dataStartAt, dataEndAt, windowSize, optimalDataPoints,
 *   forecastData:[{location, timestamp, duration, value}]}]`
 * (CarbonAware.WebApi EmissionsDataDTO / EmissionsForecastDTO).
 */
export class CarbonAwareSdkSource extends LiveCarbonIntensitySource {
  readonly name = "carbon-aware-sdk";

  constructor(private readonly config: CarbonAwareSdkOptions) {
    super(config);
  }

  locationFor(region: RegionRef): string {
    const mapped = this.config.locationMap?.[region];
    if (mapped !== undefined) return mapped;
    const ref = parseRegionRef(region);
    if (ref.cloud === "azure") return ref.id.toLowerCase().replace(/\s+/g, "");
    throw new Error(`no Carbon Aware SDK location mapped for ${region}`);
  }

  protected async fetchLatest(region: RegionRef): Promise<CarbonIntensity> {
    const location = this.locationFor(region);
    const to = new Date(this.now());
    const from = new Date(this.now() - (this.config.lookbackMs ?? 3_600_000));
    const body = await this.getJson(
      joinUrl(
        this.config.baseUrl,
        `/emissions/bylocation?location=${encodeURIComponent(location)}&time=${from.toISOString()}&toTime=${to.toISOString()}`,
      ),
      {},
    );
    if (!Array.isArray(body) || body.length === 0)
      throw new Error(`carbon-aware-sdk bylocation: no data for ${location}`);
    const points = (body as Array<Record<string, unknown>>).map((p) => ({
      time: new Date(requireString(p.time, "carbon-aware-sdk bylocation time")),
      rating: requireNumber(p.rating, "carbon-aware-sdk bylocation rating"),
    }));
    const latest = points.reduce((a, b) => (b.time > a.time ? b : a));
    return {
      gCO2PerKWh: this.toGrams(latest.rating),
      source: `carbon-aware-sdk:${location}`,
      asOf: latest.time.toISOString(),
      kind: "live",
    };
  }

  protected async fetchForecast(region: RegionRef, window: TimeWindow): Promise<ForecastSeries> {
    const location = this.locationFor(region);
    const body = await this.getJson(
      joinUrl(
        this.config.baseUrl,
        `/emissions/forecasts/current?location=${encodeURIComponent(location)}` +
          `&dataStartAt=${window.start.toISOString()}&dataEndAt=${window.end.toISOString()}`,
      ),
      {},
    );
    const forecast = Array.isArray(body) ? (body[0] as Record<string, unknown> | undefined) : undefined;
    if (forecast === undefined || !Array.isArray(forecast.forecastData)) {
      throw new Error(`carbon-aware-sdk forecast: no forecast for ${location}`);
    }
    const points = (forecast.forecastData as Array<Record<string, unknown>>).map((p) => ({
      time: new Date(requireString(p.timestamp, "carbon-aware-sdk forecast timestamp")),
      value: this.toGrams(requireNumber(p.value, "carbon-aware-sdk forecast value")),
    }));
    return {
      points,
      source: `carbon-aware-sdk-forecast:${location}`,
      asOf: typeof forecast.generatedAt === "string" ? forecast.generatedAt : window.start.toISOString(),
    };
  }

  private toGrams(rating: number): number {
    return this.config.ratingUnit === "lbs/MWh" ? rating * GRAMS_PER_KWH_PER_LB_PER_MWH : rating;
  }
}
