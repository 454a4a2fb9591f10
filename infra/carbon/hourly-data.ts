import { readFileSync } from "node:fs";
import path from "node:path";
import type { RegionRef } from "./types.js";
import { parseRegionRef } from "./types.js";
import { canonicalZone, zoneOfCloudRegion } from "./region-zones.js";
import { sharedDataDir } from "./shared-data.js";
import { splitCsvLine } from "./static-data.js";

const HOUR_MS = 3_600_000;

/** Which accounting the hourly files use: life-cycle (Electricity Maps' headline figure) or direct combustion only. */
export type HourlyBasis = "lca" | "direct";

/**
 * Hourly grid intensity per zone over a contiguous range of UTC hours (the shared
 * `carbon/hourly/electricitymaps-16zones-hourly-*.csv`, Electricity Maps via HewlettPackard/sustain-cluster).
 * Zones are keyed by their Electricity Maps zone id (`DE`, `BR-CS`, `CL-SEN`), which is what
 * REGION_ZONES maps cloud regions to; the file's own column names (`DE-LU`, `BR-SP`, `CL-SIC`) are
 * accepted as aliases.
 */
export class HourlyCarbonData {
  constructor(
    /** Epoch ms of the first hour. */
    readonly startMs: number,
    /** Zone id → one value per hour from startMs. */
    private readonly series: ReadonlyMap<string, Float64Array>,
    private readonly aliases: ReadonlyMap<string, string> = new Map(),
    readonly basis: HourlyBasis = "lca",
  ) {}

  get hours(): number {
    const first = this.series.values().next();
    return first.done === true ? 0 : first.value.length;
  }

  get endMs(): number {
    return this.startMs + this.hours * HOUR_MS;
  }

  zones(): string[] {
    return [...this.series.keys()];
  }

  /** The zone a region or zone reference resolves to, when this data set covers it. */
  zoneOf(region: RegionRef): string | undefined {
    const ref = parseRegionRef(region);
    const zone = ref.cloud === "zone" ? canonicalZone(ref.id) : zoneOfCloudRegion(ref.cloud, ref.id);
    if (zone === undefined) return undefined;
    const key = this.aliases.get(zone) ?? zone;
    return this.series.has(key) ? key : undefined;
  }

  covers(region: RegionRef): boolean {
    return this.zoneOf(region) !== undefined;
  }

  /**
   * The figure for the UTC hour holding `timeMs`. Inside the data's range it is that hour's value;
   * outside it, the value at the same position of the latest year the data holds (same day of year
   * and hour, `historical: true`), so a plan for today never has a gap. Undefined for zones it lacks.
   */
  at(
    region: RegionRef,
    timeMs: number,
  ): { gCO2PerKWh: number; zone: string; hourMs: number; historical: boolean } | undefined {
    const zone = this.zoneOf(region);
    const values = zone === undefined ? undefined : this.series.get(zone);
    if (zone === undefined || values === undefined || values.length === 0) return undefined;
    const hourMs = Math.floor(timeMs / HOUR_MS) * HOUR_MS;
    let index = (hourMs - this.startMs) / HOUR_MS;
    let historical = false;
    if (index < 0 || index >= values.length) {
      historical = true;
      index = sameHourInLastYear(hourMs, this.startMs, values.length);
    }
    const value = values[index];
    if (value === undefined || !Number.isFinite(value)) return undefined;
    return { gCO2PerKWh: value, zone, hourMs, historical };
  }

  /** Mean over the hours of [startMs, endMs) that the data holds (the whole range by default). */
  mean(region: RegionRef, startMs = this.startMs, endMs = this.endMs): number | undefined {
    const zone = this.zoneOf(region);
    const values = zone === undefined ? undefined : this.series.get(zone);
    if (values === undefined) return undefined;
    const from = Math.max(0, Math.floor((startMs - this.startMs) / HOUR_MS));
    const to = Math.min(values.length, Math.ceil((endMs - this.startMs) / HOUR_MS));
    if (to <= from) return undefined;
    let sum = 0;
    for (let i = from; i < to; i++) sum += values[i] ?? 0;
    return sum / (to - from);
  }
}

/** Index of the same day-of-year and hour in the last calendar year the series covers. */
function sameHourInLastYear(hourMs: number, startMs: number, length: number): number {
  const lastMs = startMs + (length - 1) * HOUR_MS;
  const lastYear = new Date(lastMs).getUTCFullYear();
  const t = new Date(hourMs);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  let offsetHours = Math.floor((hourMs - yearStart) / HOUR_MS);
  const lastYearStart = Date.UTC(lastYear, 0, 1);
  const lastYearHours = (Date.UTC(lastYear + 1, 0, 1) - lastYearStart) / HOUR_MS;
  if (offsetHours >= lastYearHours) offsetHours = lastYearHours - 24 + (offsetHours % 24); // 31 Dec of a leap year
  const index = (lastYearStart - startMs) / HOUR_MS + offsetHours;
  return Math.min(length - 1, Math.max(0, index));
}

/** Parses the joined hourly CSV (`datetime_utc,ZONE,...`); rows must be consecutive hours. */
export function parseHourlyCsv(
  text: string,
  columnToZone: ReadonlyMap<string, string> = new Map(),
  basis: HourlyBasis = "lca",
): HourlyCarbonData {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  const header = splitCsvLine(lines[0] ?? "");
  if (header[0] !== "datetime_utc")
    throw new Error(`hourly carbon CSV: first column must be datetime_utc, got ${header[0]}`);
  const columns = header.slice(1);
  const rows = lines.length - 1;
  const arrays = columns.map(() => new Float64Array(rows));
  let startMs = NaN;
  for (let r = 0; r < rows; r++) {
    const cells = splitCsvLine(lines[r + 1] ?? "");
    const time = Date.parse(cells[0] ?? "");
    if (r === 0) startMs = time;
    else if (time !== startMs + r * HOUR_MS) {
      throw new Error(`hourly carbon CSV: row ${r + 2} (${cells[0]}) is not the hour after the previous row`);
    }
    columns.forEach((_, c) => {
      const value = Number(cells[c + 1]);
      if (cells[c + 1] === "" || !Number.isFinite(value) || value < 0)
        throw new Error(
          `hourly carbon CSV: row ${r + 2} column ${columns[c]}: unusable value "${cells[c + 1]}"`,
        );
      (arrays[c] as Float64Array)[r] = value;
    });
  }
  if (!Number.isFinite(startMs)) throw new Error("hourly carbon CSV: no rows");
  const series = new Map<string, Float64Array>();
  const aliases = new Map<string, string>();
  columns.forEach((column, c) => {
    const zone = columnToZone.get(column) ?? column;
    series.set(zone, arrays[c] as Float64Array);
    if (zone !== column) aliases.set(column, zone);
  });
  return new HourlyCarbonData(startMs, series, aliases, basis);
}

/** Column name → Electricity Maps zone id, from the shared `electricitymaps-16zones.csv`. */
export function parseZoneList(text: string): Map<string, string> {
  const rows = text
    .split(/\r?\n/)
    .filter((l) => l.trim() !== "")
    .map(splitCsvLine);
  const header = rows[0] ?? [];
  const zoneColumn = header.indexOf("zone");
  const idColumn = header.indexOf("em_zone_id");
  const map = new Map<string, string>();
  for (const row of rows.slice(1)) {
    const column = row[zoneColumn];
    const id = row[idColumn];
    if (column && id) map.set(column, id);
  }
  return map;
}

const loaded = new Map<string, HourlyCarbonData>();

/** The shared hourly data set, 2021-2023 for 16 zones; parsed once per process and basis. */
export function loadHourlyCarbonData(
  basis: HourlyBasis = "lca",
  dataDir: string = sharedDataDir(),
): HourlyCarbonData {
  const key = `${dataDir}:${basis}`;
  const cached = loaded.get(key);
  if (cached !== undefined) return cached;
  const dir = path.join(dataDir, "carbon", "hourly");
  const zones = parseZoneList(readFileSync(path.join(dir, "electricitymaps-16zones.csv"), "utf8"));
  const data = parseHourlyCsv(
    readFileSync(path.join(dir, `electricitymaps-16zones-hourly-${basis}-2021-2023.csv`), "utf8"),
    zones,
    basis,
  );
  loaded.set(key, data);
  return data;
}
