import type { CarbonIntensity, CarbonIntensitySource, RegionRef } from "./types.js";
import { parseRegionRef } from "./types.js";
import { canonicalZone, zoneOfCloudRegion, normaliseRegionName } from "./region-zones.js";
import { loadStaticCarbonTables, type StaticCarbonTables, type YearlyTable } from "./static-data.js";

/** How closely a figure describes the region: its own data centre region, its grid zone, or a wider area. */
export type Specificity = "region" | "zone" | "country-or-nerc";

export interface StaticFigure {
  gCO2PerKWh: number;
  source: string;
  /** Year the figure averages; 0 when the data set does not say (the coefficients tables). */
  year: number;
  specificity: Specificity;
}

export type StaticPreference = "freshest" | "most-specific";

const SPECIFICITY_RANK: Record<Specificity, number> = { region: 2, zone: 1, "country-or-nerc": 0 };

export interface StaticSourceOptions {
  /**
   * `freshest` (default): newest year first, the more specific figure breaking ties.
   * `most-specific`: a region's own figure (GCP publishes per region) before a zone figure.
   */
  preference?: StaticPreference;
}

/**
 * Yearly-average intensities from the shared public data: Google Cloud per-region figures,
 * Electricity Maps per-zone yearly means, and the cloud-carbon-coefficients factors as a last resort.
 */
export class StaticCarbonIntensitySource implements CarbonIntensitySource {
  readonly name = "static";
  private readonly preference: StaticPreference;

  constructor(
    private readonly tables: StaticCarbonTables,
    options: StaticSourceOptions = {},
  ) {
    this.preference = options.preference ?? "freshest";
  }

  static fromSharedData(dataDir?: string, options?: StaticSourceOptions): StaticCarbonIntensitySource {
    return new StaticCarbonIntensitySource(loadStaticCarbonTables(dataDir), options);
  }

  /** Every figure the tables hold for a region, best first under the configured preference. */
  candidates(region: RegionRef): StaticFigure[] {
    const ref = parseRegionRef(region);
    const figures: StaticFigure[] = [];
    let zone: string | undefined;
    if (ref.cloud === "zone") {
      zone = canonicalZone(ref.id);
    } else {
      zone = zoneOfCloudRegion(ref.cloud, ref.id);
      const name = normaliseRegionName(ref.cloud, ref.id);
      if (ref.cloud === "gcp") {
        for (const [year, value] of latestFirst(this.tables.gcpYearly, name).slice(0, 1)) {
          figures.push({
            gCO2PerKWh: value,
            source: `gcp-region-carbon-${year}:${name}`,
            year,
            specificity: "region",
          });
        }
      }
      const coefficient = this.tables.coefficients.get(`${ref.cloud}:${name}`);
      if (coefficient !== undefined) {
        figures.push({
          gCO2PerKWh: coefficient.gCO2PerKWh,
          source: `cloud-carbon-coefficients-${ref.cloud}:${name} (${coefficient.basis})`,
          year: 0,
          specificity: "country-or-nerc",
        });
      }
    }
    if (zone !== undefined) {
      for (const [year, value] of latestFirst(this.tables.electricityMapsYearly, zone).slice(0, 1)) {
        figures.push({
          gCO2PerKWh: value,
          source: `electricitymaps-yearly-${year}:${zone}`,
          year,
          specificity: "zone",
        });
      }
    }
    return figures.sort((a, b) => this.compare(a, b));
  }

  /** Synchronous form of {@link intensity}, for planners that already hold the tables. */
  intensitySync(region: RegionRef): CarbonIntensity {
    const best = this.candidates(region)[0];
    if (best === undefined) {
      throw new Error(
        `no static carbon intensity for ${region}: unknown region or zone (add it to REGION_ZONES)`,
      );
    }
    return {
      gCO2PerKWh: best.gCO2PerKWh,
      source: best.source,
      asOf: best.year === 0 ? "undated" : String(best.year),
      kind: "yearly-average",
    };
  }

  intensity(region: RegionRef): Promise<CarbonIntensity> {
    try {
      return Promise.resolve(this.intensitySync(region));
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  private compare(a: StaticFigure, b: StaticFigure): number {
    const byYear = b.year - a.year;
    const bySpecificity = SPECIFICITY_RANK[b.specificity] - SPECIFICITY_RANK[a.specificity];
    return this.preference === "freshest" ? byYear || bySpecificity : bySpecificity || byYear;
  }
}

function latestFirst(table: YearlyTable, key: string): Array<[number, number]> {
  const found: Array<[number, number]> = [];
  for (const [year, values] of table) {
    const value = values.get(key);
    if (value !== undefined) found.push([year, value]);
  }
  return found.sort((a, b) => b[0] - a[0]);
}
