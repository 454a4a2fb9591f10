import type { CarbonIntensity, RegionRef, TimeWindow } from "./types.js";
import { parseRegionRef } from "./types.js";
import { canonicalZone, zoneOfCloudRegion } from "./region-zones.js";
import {
  LiveCarbonIntensitySource,
  joinUrl,
  requireNumber,
  requireString,
  type ForecastSeries,
  type LiveSourceOptions,
} from "./live-source.js";

export interface ElectricityMapsOptions extends LiveSourceOptions {
  /** Sent as the `auth-token` header. */
  apiToken: string;
  /** Default https://api.electricitymaps.com */
  baseUrl?: string;
}

/**
 * Electricity Maps API v3: `GET /v3/carbon-intensity/latest?zone=Z` answers
 * `{zone, carbonIntensity, datetime, updatedAt, emissionFactorType, isEstimated, …}` and
 * `GET /v3/carbon-intensity/forecast?zone=Z` answers `{zone, forecast:[{carbonIntensity, datetime}], updatedAt}`
 * (shapes as used by the Green Software Foundation carbon-aware-sdk ElectricityMaps client tests).
 * Intensities are lifecycle gCO2eq/kWh.
 */
export class ElectricityMapsSource extends LiveCarbonIntensitySource {
  readonly name = "electricitymaps";
  private readonly baseUrl: string;

  constructor(private readonly config: ElectricityMapsOptions) {
    super(config);
    this.baseUrl = config.baseUrl ?? "https://api.electricitymaps.com";
    this.assertKeyedBaseUrl(this.baseUrl);
  }

  zoneFor(region: RegionRef): string {
    const ref = parseRegionRef(region);
    const zone = ref.cloud === "zone" ? canonicalZone(ref.id) : zoneOfCloudRegion(ref.cloud, ref.id);
    if (zone === undefined) throw new Error(`no Electricity Maps zone known for ${region}`);
    return zone;
  }

  protected async fetchLatest(region: RegionRef): Promise<CarbonIntensity> {
    const zone = this.zoneFor(region);
    const body = (await this.getJson(
      joinUrl(this.baseUrl, `/v3/carbon-intensity/latest?zone=${encodeURIComponent(zone)}`),
      { "auth-token": this.config.apiToken },
    )) as Record<string, unknown>;
    return {
      gCO2PerKWh: requireNumber(body.carbonIntensity, "electricitymaps latest carbonIntensity"),
      source: `electricitymaps-latest:${zone}`,
      asOf: requireString(body.datetime, "electricitymaps latest datetime"),
      kind: "live",
    };
  }

  protected async fetchForecast(region: RegionRef, _window: TimeWindow): Promise<ForecastSeries> {
    const zone = this.zoneFor(region);
    const body = (await this.getJson(
      joinUrl(this.baseUrl, `/v3/carbon-intensity/forecast?zone=${encodeURIComponent(zone)}`),
      { "auth-token": this.config.apiToken },
    )) as { forecast?: unknown; updatedAt?: unknown };
    if (!Array.isArray(body.forecast)) throw new Error("electricitymaps forecast: missing forecast array");
    const points = (body.forecast as Array<Record<string, unknown>>).map((p) => ({
      time: new Date(requireString(p.datetime, "electricitymaps forecast datetime")),
      value: requireNumber(p.carbonIntensity, "electricitymaps forecast carbonIntensity"),
    }));
    return {
      points,
      source: `electricitymaps-forecast:${zone}`,
      asOf: typeof body.updatedAt === "string" ? body.updatedAt : new Date(this.now()).toISOString(),
    };
  }
}
