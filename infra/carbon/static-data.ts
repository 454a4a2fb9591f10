import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import type { Cloud } from "./types.js";
import { normaliseRegionName } from "./region-zones.js";
import { sharedDataDir } from "./shared-data.js";

/** Yearly figures, year → key → gCO2/kWh. */
export type YearlyTable = Map<number, Map<string, number>>;

export interface CoefficientEntry {
  gCO2PerKWh: number;
  /** The agency the coefficients repository credits (EPA, EEA, Google, carbonfootprint.com…). */
  basis: string;
}

export interface RejectedRow {
  file: string;
  line: number;
  reason: string;
}

export interface StaticCarbonTables {
  /** Google Cloud per-region yearly grid intensity (GoogleCloudPlatform/region-carbon-info). */
  gcpYearly: YearlyTable;
  /** Electricity Maps yearly per-zone intensity (via thegreenwebfoundation/co2.js). */
  electricityMapsYearly: YearlyTable;
  /** cloud-carbon-footprint/cloud-carbon-coefficients emission factors, keyed `cloud:region`. */
  coefficients: Map<string, CoefficientEntry>;
  /** Rows skipped as malformed, kept so callers can report them. */
  rejected: RejectedRow[];
}

/** Splits one CSV line; the shared files have no embedded commas but quoted fields are honoured. */
export function splitCsvLine(line: string): string[] {
  const fields: string[] = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        current += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else current += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      fields.push(current);
      current = "";
    } else current += ch;
  }
  fields.push(current);
  return fields.map((f) => f.trim());
}

function csvRows(text: string): string[][] {
  return text
    .split(/\r?\n/)
    .filter((line) => line.trim() !== "")
    .map(splitCsvLine);
}

/** Parses one GoogleCloudPlatform/region-carbon-info yearly CSV (region, location, CFE, intensity). */
export function parseGcpYearlyCsv(
  text: string,
  file = "gcp",
): { byRegion: Map<string, number>; rejected: RejectedRow[] } {
  const rows = csvRows(text);
  const header = rows[0] ?? [];
  // 2019-2020 call the column "Lifecycle grid carbon intensity", later years "Grid carbon intensity".
  const column = header.findIndex((h) => /carbon intensity/i.test(h));
  if (column < 0) throw new Error(`${file}: no carbon intensity column in header ${header.join(",")}`);
  const byRegion = new Map<string, number>();
  const rejected: RejectedRow[] = [];
  rows.slice(1).forEach((row, index) => {
    const region = row[0] ?? "";
    const value = Number(row[column]);
    if (region === "" || !Number.isFinite(value) || row[column] === "" || value <= 0) {
      rejected.push({ file, line: index + 2, reason: `unusable intensity "${row[column] ?? ""}"` });
      return;
    }
    byRegion.set(region, value);
  });
  return { byRegion, rejected };
}

/** Parses an Electricity Maps yearly file as republished by co2.js: zone → {carbonIntensity:{value}}. */
export function parseElectricityMapsYearly(json: unknown, file = "electricitymaps"): Map<string, number> {
  if (typeof json !== "object" || json === null) throw new Error(`${file}: expected an object of zones`);
  const byZone = new Map<string, number>();
  for (const [zone, entry] of Object.entries(json as Record<string, unknown>)) {
    const value = (entry as { carbonIntensity?: { value?: unknown } } | null)?.carbonIntensity?.value;
    if (typeof value === "number" && Number.isFinite(value) && value > 0) byZone.set(zone, value);
  }
  return byZone;
}

/**
 * Parses a cloud-carbon-coefficients grid-emissions-factors CSV. The factor column is metric tons
 * CO2e per kWh; a factor written without its decimal point (the Azure file has `000077` for
 * Finland Central) is rejected rather than guessed.
 */
export function parseCoefficientsCsv(
  text: string,
  cloud: Cloud,
  file = `coefficients-${cloud}`,
): { byRegion: Map<string, CoefficientEntry>; rejected: RejectedRow[] } {
  const rows = csvRows(text);
  const header = rows[0] ?? [];
  const factorColumn = header.findIndex((h) => /metric ton\/kWh/i.test(h));
  const sourceColumn = header.findIndex((h) => /^source$/i.test(h));
  if (factorColumn < 0) throw new Error(`${file}: no "metric ton/kWh" column in header ${header.join(",")}`);
  const byRegion = new Map<string, CoefficientEntry>();
  const rejected: RejectedRow[] = [];
  rows.slice(1).forEach((row, index) => {
    const region = row[0] ?? "";
    const raw = row[factorColumn] ?? "";
    const tonsPerKWh = Number(raw);
    if (
      region === "" ||
      !/^\d*\.\d+(e-?\d+)?$/i.test(raw) ||
      !Number.isFinite(tonsPerKWh) ||
      tonsPerKWh <= 0
    ) {
      rejected.push({ file, line: index + 2, reason: `malformed factor "${raw}" for ${region}` });
      return;
    }
    byRegion.set(`${cloud}:${normaliseRegionName(cloud, region)}`, {
      gCO2PerKWh: tonsPerKWh * 1e6,
      basis: row[sourceColumn] ?? "unknown",
    });
  });
  return { byRegion, rejected };
}

/** Reads every carbon table under `<sharedData>/carbon/`. */
export function loadStaticCarbonTables(dataDir: string = sharedDataDir()): StaticCarbonTables {
  const carbonDir = path.join(dataDir, "carbon");
  const files = readdirSync(carbonDir);
  const tables: StaticCarbonTables = {
    gcpYearly: new Map(),
    electricityMapsYearly: new Map(),
    coefficients: new Map(),
    rejected: [],
  };
  for (const file of files) {
    const full = path.join(carbonDir, file);
    const gcp = /^gcp-region-carbon-(\d{4})\.csv$/.exec(file);
    const em = /^electricitymaps-yearly-(\d{4})\.json$/.exec(file);
    const ccf = /^grid-emissions-factors-(aws|azure|gcp)\.csv$/.exec(file);
    if (gcp?.[1] !== undefined) {
      const parsed = parseGcpYearlyCsv(readFileSync(full, "utf8"), file);
      tables.gcpYearly.set(Number(gcp[1]), parsed.byRegion);
      tables.rejected.push(...parsed.rejected);
    } else if (em?.[1] !== undefined) {
      tables.electricityMapsYearly.set(
        Number(em[1]),
        parseElectricityMapsYearly(JSON.parse(readFileSync(full, "utf8")), file),
      );
    } else if (ccf?.[1] !== undefined) {
      const parsed = parseCoefficientsCsv(readFileSync(full, "utf8"), ccf[1] as Cloud, file);
      for (const [key, entry] of parsed.byRegion) tables.coefficients.set(key, entry);
      tables.rejected.push(...parsed.rejected);
    }
  }
  if (tables.electricityMapsYearly.size === 0 && tables.gcpYearly.size === 0) {
    throw new Error(`no carbon data found in ${carbonDir}`);
  }
  return tables;
}
