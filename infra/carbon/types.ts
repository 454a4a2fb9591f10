/** Which clouds the region maps and coefficient tables cover. */
export type Cloud = "aws" | "azure" | "gcp";

/**
 * A place whose grid intensity is asked for: a cloud region written `cloud:region`
 * (`aws:us-east-1`, `azure:westeurope`, `gcp:europe-north1`) or an Electricity Maps zone
 * written `zone:FR` (plain `FR` is accepted too).
 */
export type RegionRef = string;

export type IntensityKind = "yearly-average" | "live" | "forecast-average";

export interface CarbonIntensity {
  /** Grid carbon intensity in grams CO2-equivalent per kWh consumed. */
  gCO2PerKWh: number;
  /** Which data set or API and which key in it gave the figure, e.g. `electricitymaps-yearly-2025:FI`. */
  source: string;
  /** ISO-8601 time (or year) the figure describes. */
  asOf: string;
  kind: IntensityKind;
  /** Set when a live source failed and the figure came from its fallback. */
  fallbackReason?: string;
}

/** A time window for forecast averages: [start, end). */
export interface TimeWindow {
  start: Date;
  end: Date;
}

export interface CarbonIntensitySource {
  /** Short name for logs and `source` strings. */
  readonly name: string;
  /** The current (or, for static data, the typical) intensity of a region's grid. */
  intensity(region: RegionRef): Promise<CarbonIntensity>;
  /** Mean forecast intensity over a window, where the source has forecasts. */
  forecastAverage?(region: RegionRef, window: TimeWindow): Promise<CarbonIntensity>;
}

export interface ParsedRegionRef {
  cloud: Cloud | "zone";
  /** Region name as the cloud writes it, or the zone key. */
  id: string;
}

const CLOUDS: ReadonlySet<string> = new Set(["aws", "azure", "gcp", "zone"]);

export function parseRegionRef(region: RegionRef): ParsedRegionRef {
  const colon = region.indexOf(":");
  if (colon < 0) return { cloud: "zone", id: region };
  const prefix = region.slice(0, colon).toLowerCase();
  const id = region.slice(colon + 1);
  if (!CLOUDS.has(prefix) || id === "") {
    throw new Error(`region "${region}" must be cloud:region with cloud one of aws, azure, gcp, zone`);
  }
  return { cloud: prefix as Cloud | "zone", id };
}

/** Average of an intensity over a window when the source only knows a single figure. */
export async function intensityForPlanning(
  source: CarbonIntensitySource,
  region: RegionRef,
  window?: TimeWindow,
): Promise<CarbonIntensity> {
  if (window !== undefined && source.forecastAverage !== undefined) {
    return source.forecastAverage(region, window);
  }
  return source.intensity(region);
}
