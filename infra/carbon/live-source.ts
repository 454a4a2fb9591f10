import { logger } from "../../operator/log/logger.js";
import type { CarbonIntensity, CarbonIntensitySource, RegionRef, TimeWindow } from "./types.js";
import { assertCredentialSafeUrl, getJson, type HttpPolicy } from "./http.js";
import { TtlCache } from "./ttl-cache.js";

/** The one logging call the live sources make; the operator's pino logger (or a child) fits. */
export interface WarningLogger {
  warn(fields: object, message: string): void;
}

export interface LiveSourceOptions {
  /** Where to turn when the API cannot answer; usually the static source. Without one, errors propagate. */
  fallback?: CarbonIntensitySource;
  http?: Partial<HttpPolicy>;
  /** How long an answer is reused; default 5 minutes (the live APIs update every 5 to 60 minutes). */
  cacheTtlMs?: number;
  now?: () => number;
  logger?: WarningLogger;
}

/**
 * Shared shell of the live sources: TTL cache in front, fallback behind, one warning per fallback.
 * Subclasses implement the two fetches as plain request/parse steps.
 */
export abstract class LiveCarbonIntensitySource implements CarbonIntensitySource {
  abstract readonly name: string;
  protected readonly log: WarningLogger;
  protected readonly now: () => number;
  private readonly cache: TtlCache<CarbonIntensity>;
  private readonly pointsCache: TtlCache<ForecastSeries>;

  constructor(protected readonly options: LiveSourceOptions) {
    this.now = options.now ?? Date.now;
    this.cache = new TtlCache(options.cacheTtlMs ?? 5 * 60_000, this.now);
    this.pointsCache = new TtlCache(options.cacheTtlMs ?? 5 * 60_000, this.now);
    this.log = options.logger ?? logger.child({ component: "carbon-intensity" });
  }

  protected abstract fetchLatest(region: RegionRef): Promise<CarbonIntensity>;
  /** The forecast the API gives for a window, values already in gCO2/kWh. */
  protected abstract fetchForecast(region: RegionRef, window: TimeWindow): Promise<ForecastSeries>;

  /** Mean of the forecast points inside the window. */
  protected async fetchForecastAverage(region: RegionRef, window: TimeWindow): Promise<CarbonIntensity> {
    const forecast = await this.fetchForecast(region, window);
    return {
      gCO2PerKWh: averageInWindow(forecast.points, window, forecast.source),
      source: forecast.source,
      asOf: forecast.asOf,
      kind: "forecast-average",
    };
  }

  /**
   * The forecast points for a window (cached like the other answers), with no fallback: callers that
   * need a gap-free series (intensity-source.ts) fill the hours it lacks themselves.
   */
  forecast(region: RegionRef, window: TimeWindow): Promise<ForecastSeries> {
    const key = `points:${region}:${window.start.toISOString()}:${window.end.toISOString()}`;
    return this.pointsCache.getOrLoad(key, () => this.fetchForecast(region, window));
  }

  intensity(region: RegionRef): Promise<CarbonIntensity> {
    return this.withFallback(
      region,
      () => this.cache.getOrLoad(`latest:${region}`, () => this.fetchLatest(region)),
      (fallback) => fallback.intensity(region),
    );
  }

  forecastAverage(region: RegionRef, window: TimeWindow): Promise<CarbonIntensity> {
    const key = `forecast:${region}:${window.start.toISOString()}:${window.end.toISOString()}`;
    return this.withFallback(
      region,
      () => this.cache.getOrLoad(key, () => this.fetchForecastAverage(region, window)),
      (fallback) =>
        fallback.forecastAverage ? fallback.forecastAverage(region, window) : fallback.intensity(region),
    );
  }

  /** GET JSON; any header passed is a credential, so it goes over https only and never across a redirect. */
  protected getJson(url: string, headers: Record<string, string>): Promise<unknown> {
    return getJson(url, {
      headers,
      credentials: Object.keys(headers).length > 0,
      policy: this.options.http ?? {},
    });
  }

  /** For constructors of keyed sources: a base URL that would send the key over plain http is a configuration error. */
  protected assertKeyedBaseUrl(baseUrl: string): void {
    assertCredentialSafeUrl(baseUrl, this.options.http?.allowPlainHttpToLoopback ?? false);
  }

  private async withFallback(
    region: RegionRef,
    primary: () => Promise<CarbonIntensity>,
    secondary: (fallback: CarbonIntensitySource) => Promise<CarbonIntensity>,
  ): Promise<CarbonIntensity> {
    try {
      return await primary();
    } catch (error) {
      const reason = (error as Error).message;
      const fallback = this.options.fallback;
      if (fallback === undefined) throw error;
      this.log.warn(
        { source: this.name, region, reason, fallback: fallback.name },
        "carbon intensity source failed; using fallback",
      );
      const figure = await secondary(fallback);
      return { ...figure, fallbackReason: `${this.name}: ${reason}` };
    }
  }
}

/** Forecast points of one region, gCO2/kWh. */
export interface ForecastSeries {
  points: Array<{ time: Date; value: number }>;
  source: string;
  asOf: string;
}

/** Mean of the points whose time falls in [start, end); throws when none does. */
export function averageInWindow(
  points: ReadonlyArray<{ time: Date; value: number }>,
  window: TimeWindow,
  what: string,
): number {
  const inside = points.filter(
    (p) => p.time >= window.start && p.time < window.end && Number.isFinite(p.value),
  );
  if (inside.length === 0) {
    throw new Error(
      `${what}: no forecast points between ${window.start.toISOString()} and ${window.end.toISOString()}`,
    );
  }
  return inside.reduce((sum, p) => sum + p.value, 0) / inside.length;
}

export function joinUrl(base: string, pathAndQuery: string): string {
  return `${base.replace(/\/+$/, "")}/${pathAndQuery.replace(/^\/+/, "")}`;
}

export function requireNumber(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isFinite(value))
    throw new Error(`${what}: expected a number, got ${JSON.stringify(value)}`);
  return value;
}

export function requireString(value: unknown, what: string): string {
  if (typeof value !== "string") throw new Error(`${what}: expected a string, got ${JSON.stringify(value)}`);
  return value;
}
