/**
 * The one intensity source placement (infra/placement: placeFleet, planHourly), the Pulumi fleet stack
 * (infra/fleet) and the gateway's region choice (gateway/routing/region.ts) read. Layers, best first:
 *
 *   1. a live API (Electricity Maps, WattTime or a Carbon Aware SDK), when configured: the current
 *      value for the current hour, its forecast for the hours after;
 *   2. the shared hourly history (16 zones, 2021-2023): the same hour, or for hours outside the data
 *      the same day-of-year and hour of 2023;
 *   3. the static yearly averages (every region the maps know).
 *
 * Every hour of a series gets a figure from the first layer that has one, so a live API that fails
 * mid-day leaves no gap: the hours it cannot give come from the next layer, marked with the reason.
 */
import type { CarbonIntensity, CarbonIntensitySource, RegionRef, TimeWindow } from "./types.js";
import type { LiveCarbonIntensitySource, WarningLogger } from "./live-source.js";
import { HourlyCarbonData, loadHourlyCarbonData } from "./hourly-data.js";
import { StaticCarbonIntensitySource } from "./static-source.js";
import { ElectricityMapsSource } from "./electricity-maps.js";
import { WattTimeSource } from "./watttime.js";
import { CarbonAwareSdkSource } from "./carbon-aware-sdk.js";
import type { HttpPolicy } from "./http.js";
import { logger } from "../../operator/log/logger.js";

const HOUR_MS = 3_600_000;

export type HourlyKind = "live" | "forecast" | "historical" | "yearly-average";

export interface HourlyIntensity {
  /** Start of the UTC hour, epoch ms. */
  hourMs: number;
  gCO2PerKWh: number;
  /** Data set or API and key, e.g. `electricitymaps-forecast:DE`, `electricitymaps-hourly-lca:GB`. */
  source: string;
  kind: HourlyKind;
  /** Set when a configured live source had no figure for this hour (why). */
  fallbackReason?: string;
}

export interface LayeredSourceOptions {
  live?: LiveCarbonIntensitySource;
  /** Shared hourly history; omit to go from live straight to the yearly figures. */
  hourly?: HourlyCarbonData;
  static: StaticCarbonIntensitySource;
  now?: () => number;
  logger?: WarningLogger;
}

/** Longest series asked for at once (a month of hours): bounds work and memory per call. */
export const MAX_SERIES_HOURS = 24 * 31;

export class LayeredIntensitySource implements CarbonIntensitySource {
  readonly name: string;
  private readonly now: () => number;
  private readonly log: WarningLogger;

  constructor(private readonly options: LayeredSourceOptions) {
    this.now = options.now ?? Date.now;
    this.log = options.logger ?? logger.child({ component: "carbon-intensity" });
    this.name = [options.live?.name, options.hourly ? "hourly" : undefined, "static"]
      .filter(Boolean)
      .join("+");
  }

  /** Whether a live API is configured. */
  get hasLive(): boolean {
    return this.options.live !== undefined;
  }

  /** Hourly history, then the yearly figure: what stands in when the live API has nothing. */
  historical(region: RegionRef, hourMs: number): HourlyIntensity {
    const hour = this.options.hourly?.at(region, hourMs);
    if (hour !== undefined) {
      const year = new Date(hour.hourMs).getUTCFullYear();
      return {
        hourMs: Math.floor(hourMs / HOUR_MS) * HOUR_MS,
        gCO2PerKWh: hour.gCO2PerKWh,
        source: `electricitymaps-hourly-${this.options.hourly?.basis ?? "lca"}:${hour.zone}${hour.historical ? ` (same hour of the data's last year, not ${year})` : ""}`,
        kind: "historical",
      };
    }
    const yearly = this.options.static.intensitySync(region);
    return {
      hourMs: Math.floor(hourMs / HOUR_MS) * HOUR_MS,
      gCO2PerKWh: yearly.gCO2PerKWh,
      source: yearly.source,
      kind: "yearly-average",
    };
  }

  /** Now: the live value, else this hour of the history, else the yearly figure. */
  async intensity(region: RegionRef): Promise<CarbonIntensity> {
    const nowMs = this.now();
    let reason: string | undefined;
    if (this.options.live !== undefined) {
      const live = await this.options.live.intensity(region).catch((error: unknown) => {
        reason = `${this.options.live?.name}: ${(error as Error).message}`;
        return undefined;
      });
      // A live source built with its own fallback answers with fallbackReason set; treat that as a miss.
      if (live !== undefined && live.fallbackReason === undefined) return live;
      reason ??= live?.fallbackReason;
    }
    const h = this.historical(region, nowMs);
    return {
      gCO2PerKWh: h.gCO2PerKWh,
      source: h.source,
      asOf: new Date(h.hourMs).toISOString(),
      kind: h.kind === "historical" ? "live" : "yearly-average",
      ...(reason !== undefined ? { fallbackReason: reason } : {}),
    };
  }

  /** Mean of the hourly series over the window (so a plan over a window sees the same figures hour by hour). */
  async forecastAverage(region: RegionRef, window: TimeWindow): Promise<CarbonIntensity> {
    const startMs = Math.floor(window.start.getTime() / HOUR_MS) * HOUR_MS;
    const hours = Math.max(1, Math.ceil((window.end.getTime() - startMs) / HOUR_MS));
    const series = await this.hourlySeries(region, startMs, hours);
    const mean = series.reduce((s, h) => s + h.gCO2PerKWh, 0) / series.length;
    const kinds = [...new Set(series.map((h) => h.kind))];
    const reasons = [...new Set(series.flatMap((h) => (h.fallbackReason ? [h.fallbackReason] : [])))];
    return {
      gCO2PerKWh: mean,
      source: [...new Set(series.map((h) => h.source))].slice(0, 3).join(", "),
      asOf: window.start.toISOString(),
      kind: kinds.length === 1 && kinds[0] === "yearly-average" ? "yearly-average" : "forecast-average",
      ...(reasons.length > 0 ? { fallbackReason: reasons.join("; ") } : {}),
    };
  }

  /**
   * One figure per UTC hour from the hour holding `startMs`, `hours` long, never with a gap: the live
   * value for the current hour, the live forecast for later hours, the hourly history or the yearly
   * figure for whatever the live source cannot give.
   */
  async hourlySeries(region: RegionRef, startMs: number, hours: number): Promise<HourlyIntensity[]> {
    if (!Number.isInteger(hours) || hours < 1 || hours > MAX_SERIES_HOURS)
      throw new Error(`hourly series: hours must be an integer in [1, ${MAX_SERIES_HOURS}]`);
    const first = Math.floor(startMs / HOUR_MS) * HOUR_MS;
    const live = new Map<number, { value: number; source: string; kind: HourlyKind }>();
    let reason: string | undefined;
    const source = this.options.live;
    if (source !== undefined) {
      const nowHour = Math.floor(this.now() / HOUR_MS) * HOUR_MS;
      if (nowHour >= first && nowHour < first + hours * HOUR_MS) {
        try {
          const current = await source.intensity(region);
          if (current.fallbackReason === undefined)
            live.set(nowHour, { value: current.gCO2PerKWh, source: current.source, kind: "live" });
          else reason = current.fallbackReason;
        } catch (error) {
          reason = `${source.name}: ${(error as Error).message}`;
        }
      }
      const futureStart = Math.max(first, nowHour);
      const end = first + hours * HOUR_MS;
      if (futureStart < end) {
        try {
          const forecast = await source.forecast(region, {
            start: new Date(futureStart),
            end: new Date(end),
          });
          const buckets = new Map<number, { sum: number; count: number }>();
          for (const p of forecast.points) {
            const t = p.time.getTime();
            if (!(t >= futureStart && t < end) || !Number.isFinite(p.value) || p.value < 0) continue;
            const hour = Math.floor(t / HOUR_MS) * HOUR_MS;
            const bucket = buckets.get(hour) ?? { sum: 0, count: 0 };
            bucket.sum += p.value;
            bucket.count += 1;
            buckets.set(hour, bucket);
          }
          for (const [hour, b] of buckets) {
            if (!live.has(hour))
              live.set(hour, { value: b.sum / b.count, source: forecast.source, kind: "forecast" });
          }
        } catch (error) {
          reason = `${source.name} forecast: ${(error as Error).message}`;
        }
      }
    }
    const series: HourlyIntensity[] = [];
    let filled = 0;
    for (let i = 0; i < hours; i++) {
      const hourMs = first + i * HOUR_MS;
      const hit = live.get(hourMs);
      if (hit !== undefined) {
        series.push({ hourMs, gCO2PerKWh: hit.value, source: hit.source, kind: hit.kind });
        continue;
      }
      const standIn = this.historical(region, hourMs);
      if (source !== undefined) {
        filled += 1;
        standIn.fallbackReason = reason ?? `${source.name}: no figure for this hour`;
      }
      series.push(standIn);
    }
    if (source !== undefined && filled > 0) {
      this.log.warn(
        {
          source: source.name,
          region,
          hours: filled,
          reason: (reason ?? "no figure for these hours").slice(0, 300),
        },
        "carbon intensity: hours without a live figure filled from history",
      );
    }
    return series;
  }

  /** Series of several regions as plain numbers (what the hourly planner takes), with their provenance. */
  async seriesFor(
    regions: readonly RegionRef[],
    startMs: number,
    hours: number,
  ): Promise<{ intensity: Record<RegionRef, number[]>; provenance: Record<RegionRef, HourlyIntensity[]> }> {
    const intensity: Record<RegionRef, number[]> = {};
    const provenance: Record<RegionRef, HourlyIntensity[]> = {};
    for (const region of regions) {
      const series = await this.hourlySeries(region, startMs, hours);
      provenance[region] = series;
      intensity[region] = series.map((h) => h.gCO2PerKWh);
    }
    return { intensity, provenance };
  }
}

/** Current intensity of each region, for the gateway's region choice (gateway/routing/region.ts). */
export async function intensitySnapshot(
  source: CarbonIntensitySource,
  regions: readonly RegionRef[],
): Promise<Record<RegionRef, number>> {
  const out: Record<RegionRef, number> = {};
  for (const region of regions) {
    const figure = await source.intensity(region).catch(() => undefined);
    if (figure !== undefined) out[region] = figure.gCO2PerKWh;
  }
  return out;
}

/** Configuration of the intensity source, as the fleet stack's config and the operator's env give it. */
export interface CarbonSourceConfig {
  /** Default `static` (hourly history + yearly averages, no network). */
  provider?: "static" | "electricitymaps" | "watttime" | "carbon-aware-sdk";
  /** API base URL; the providers' public https endpoints by default. Keyed providers refuse plain http. */
  baseUrl?: string;
  /** Environment variable holding the Electricity Maps token; default GPUFLEET_ELECTRICITYMAPS_TOKEN. */
  tokenEnv?: string;
  /** Environment variables of the WattTime login; default GPUFLEET_WATTTIME_USERNAME / _PASSWORD. */
  usernameEnv?: string;
  passwordEnv?: string;
  /** gpufleet region → WattTime region code, or → Carbon Aware SDK location. */
  regionMap?: Readonly<Record<string, string>>;
  /** Unit of a Carbon Aware SDK's ratings. */
  ratingUnit?: "gCO2/kWh" | "lbs/MWh";
  /** Use the shared hourly history between live and yearly data; default true. */
  hourlyHistory?: boolean;
  /** Hours ahead placement averages the forecast over; default 24. */
  planningWindowHours?: number;
}

export interface SourceFactoryOptions {
  env?: NodeJS.ProcessEnv;
  now?: () => number;
  http?: Partial<HttpPolicy>;
  logger?: WarningLogger;
  /** Injected data (tests); default the shared data. */
  staticSource?: StaticCarbonIntensitySource;
  hourly?: HourlyCarbonData;
}

function secret(env: NodeJS.ProcessEnv, name: string, provider: string): string {
  const value = env[name];
  if (value === undefined || value === "")
    throw new Error(
      `carbon provider ${provider}: set ${name} (the key is read from the environment, never from config)`,
    );
  return value;
}

/** Builds the layered source from config; the one place that does. */
export function intensitySourceFromConfig(
  config: CarbonSourceConfig = {},
  options: SourceFactoryOptions = {},
): LayeredIntensitySource {
  const env = options.env ?? process.env;
  const staticSource = options.staticSource ?? StaticCarbonIntensitySource.fromSharedData();
  const hourly = config.hourlyHistory === false ? undefined : (options.hourly ?? loadHourlyCarbonData());
  const common = {
    ...(options.http ? { http: options.http } : {}),
    ...(options.now ? { now: options.now } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  };
  let live: LiveCarbonIntensitySource | undefined;
  const provider = config.provider ?? "static";
  if (provider === "electricitymaps") {
    live = new ElectricityMapsSource({
      ...common,
      apiToken: secret(env, config.tokenEnv ?? "GPUFLEET_ELECTRICITYMAPS_TOKEN", provider),
      ...(config.baseUrl ? { baseUrl: config.baseUrl } : {}),
    });
  } else if (provider === "watttime") {
    live = new WattTimeSource({
      ...common,
      username: secret(env, config.usernameEnv ?? "GPUFLEET_WATTTIME_USERNAME", provider),
      password: secret(env, config.passwordEnv ?? "GPUFLEET_WATTTIME_PASSWORD", provider),
      regionMap: config.regionMap ?? {},
      ...(config.baseUrl ? { baseUrl: config.baseUrl } : {}),
    });
  } else if (provider === "carbon-aware-sdk") {
    if (!config.baseUrl)
      throw new Error("carbon provider carbon-aware-sdk: baseUrl is required (the SDK is self-hosted)");
    live = new CarbonAwareSdkSource({
      ...common,
      baseUrl: config.baseUrl,
      ...(config.regionMap ? { locationMap: config.regionMap } : {}),
      ...(config.ratingUnit ? { ratingUnit: config.ratingUnit } : {}),
    });
  } else if (provider !== "static") {
    throw new Error(
      `carbon provider must be one of static, electricitymaps, watttime, carbon-aware-sdk; got ${String(provider)}`,
    );
  }
  return new LayeredIntensitySource({
    ...(live ? { live } : {}),
    ...(hourly ? { hourly } : {}),
    static: staticSource,
    ...(options.now ? { now: options.now } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
}
