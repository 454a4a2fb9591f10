/**
 * A bounded, self-contained copy of the carbon data a few regions need: their yearly figures (as the
 * static source would pick them), one year of their hourly history, and the RTT from one region to the
 * others. It is what a process without the shared data folder (the gateway's image) reads, e.g. from a
 * ConfigMap the chart mounts (`gateway.regionRouting.carbonData`); the figures are the shared data's,
 * unchanged, so a process reading the bundle answers as one reading the shared data would.
 *
 * Make one: npx tsx infra/carbon/region-data.ts --regions europe-north1,us-east4 --from us-east4 [--cloud gcp] [--year 2023] > carbon.json
 */
import { readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { HourlyCarbonData, loadHourlyCarbonData } from "./hourly-data.js";
import { normaliseRegionName, zoneOfCloudRegion } from "./region-zones.js";
import { StaticCarbonIntensitySource } from "./static-source.js";
import { loadStaticCarbonTables, type StaticCarbonTables } from "./static-data.js";
import { attributionText } from "./attribution.js";
import { parseRegionRef, type Cloud } from "./types.js";

export const REGION_DATA_FORMAT = "gpufleet.io/region-carbon/v1";
/** A ConfigMap holds at most 1 MiB; the bundle stays under it. */
export const MAX_REGION_DATA_BYTES = 1_000_000;
export const MAX_REGION_DATA_REGIONS = 64;
/** Hours in a leap year: one year of history per zone at most. */
export const MAX_REGION_DATA_HOURS = 8784;
/** No grid is above this (the dirtiest zones are about 900 gCO2/kWh). */
const MAX_INTENSITY = 5000;
const HOUR_MS = 3_600_000;

export interface RegionCarbonBundle {
  format: typeof REGION_DATA_FORMAT;
  /** Where the figures come from, and their licences. */
  attribution: string;
  /** Year → GCP region name → gCO2/kWh (GoogleCloudPlatform/region-carbon-info). */
  gcpYearly: Record<string, Record<string, number>>;
  /** Year → Electricity Maps zone → gCO2/kWh. */
  electricityMapsYearly: Record<string, Record<string, number>>;
  /** `cloud:region` → cloud-carbon-coefficients factor. */
  coefficients: Record<string, { gCO2PerKWh: number; basis: string }>;
  /** One year of hourly intensity per zone (Electricity Maps zone ids). */
  hourly?: { basis: "lca" | "direct"; start: string; zones: Record<string, number[]> };
  /** RTT from one region to the others, ms (region names without the cloud prefix). */
  rttMs?: { from: string; to: Record<string, number> };
}

export interface BundleRequest {
  cloud: Cloud;
  /** Region names as the cloud writes them (`europe-north1`). */
  regions: readonly string[];
  /** Region the RTTs are measured from (the gateway's own). */
  from?: string;
  /** Year of hourly history to keep; default the data's last. */
  year?: number;
  tables: StaticCarbonTables;
  hourly?: HourlyCarbonData;
  rttMs?: (from: string, to: string) => number | undefined;
}

/** The bundle for some regions: only the table entries the static source would read for them. Pure. */
export function buildRegionCarbonBundle(request: BundleRequest): RegionCarbonBundle {
  if (request.regions.length === 0 || request.regions.length > MAX_REGION_DATA_REGIONS)
    throw new Error(`give 1 to ${MAX_REGION_DATA_REGIONS} regions`);
  const bundle: RegionCarbonBundle = {
    format: REGION_DATA_FORMAT,
    attribution: attributionText(),
    gcpYearly: {},
    electricityMapsYearly: {},
    coefficients: {},
  };
  const put = (
    table: Record<string, Record<string, number>>,
    year: number,
    key: string,
    value: number,
  ): void => {
    table[String(year)] = { ...table[String(year)], [key]: value };
  };
  const hourlyZones: Record<string, number[]> = {};
  const lastYear = request.hourly ? new Date(request.hourly.endMs - HOUR_MS).getUTCFullYear() : undefined;
  const year = request.year ?? lastYear;
  for (const region of request.regions) {
    const name = normaliseRegionName(request.cloud, region);
    const zone = zoneOfCloudRegion(request.cloud, name);
    if (request.cloud === "gcp")
      for (const [y, values] of request.tables.gcpYearly) {
        const value = values.get(name);
        if (value !== undefined) put(bundle.gcpYearly, y, name, value);
      }
    const coefficient = request.tables.coefficients.get(`${request.cloud}:${name}`);
    if (coefficient !== undefined) bundle.coefficients[`${request.cloud}:${name}`] = coefficient;
    if (zone !== undefined)
      for (const [y, values] of request.tables.electricityMapsYearly) {
        const value = values.get(zone);
        if (value !== undefined) put(bundle.electricityMapsYearly, y, zone, value);
      }
    if (
      bundle.gcpYearly[String(Math.max(...request.tables.gcpYearly.keys()))]?.[name] === undefined &&
      coefficient === undefined &&
      (zone === undefined || !Object.values(bundle.electricityMapsYearly).some((t) => t[zone] !== undefined))
    )
      throw new Error(
        `no carbon figure for ${request.cloud}:${name} (unknown region: add it to REGION_ZONES)`,
      );
    const ref = `${request.cloud}:${name}`;
    const hourlyZone = request.hourly?.zoneOf(ref);
    if (
      request.hourly &&
      hourlyZone !== undefined &&
      year !== undefined &&
      hourlyZones[hourlyZone] === undefined
    ) {
      const start = Date.UTC(year, 0, 1);
      if (start < request.hourly.startMs || Date.UTC(year + 1, 0, 1) > request.hourly.endMs)
        throw new Error(`the hourly data does not hold all of ${year}`);
      const hours = (Date.UTC(year + 1, 0, 1) - start) / HOUR_MS;
      hourlyZones[hourlyZone] = Array.from(
        { length: hours },
        (_, h) => request.hourly?.at(ref, start + h * HOUR_MS)?.gCO2PerKWh ?? Number.NaN,
      );
    }
  }
  if (request.hourly && year !== undefined && Object.keys(hourlyZones).length > 0)
    bundle.hourly = {
      basis: request.hourly.basis,
      start: new Date(Date.UTC(year, 0, 1)).toISOString(),
      zones: hourlyZones,
    };
  if (request.from !== undefined && request.rttMs) {
    const to: Record<string, number> = {};
    for (const region of request.regions) {
      const ms = request.rttMs(request.from, region);
      if (ms !== undefined) to[normaliseRegionName(request.cloud, region)] = ms;
    }
    bundle.rttMs = { from: normaliseRegionName(request.cloud, request.from), to };
  }
  const size = Buffer.byteLength(JSON.stringify(bundle));
  if (size > MAX_REGION_DATA_BYTES)
    throw new Error(`the bundle is ${size} bytes, over ${MAX_REGION_DATA_BYTES}: give fewer regions`);
  return bundle;
}

export interface LoadedRegionData {
  staticSource: StaticCarbonIntensitySource;
  hourly?: HourlyCarbonData;
  rttMs?: { from: string; to: ReadonlyMap<string, number> };
}

function fail(message: string): never {
  throw new Error(`region carbon data: ${message}`);
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(`${what} must be an object`);
  return value as Record<string, unknown>;
}

function intensity(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > MAX_INTENSITY)
    fail(`${what} must be a number in [0, ${MAX_INTENSITY}]`);
  return value;
}

const KEY = /^[A-Za-z0-9:_ .()-]{1,80}$/;

function yearlyTable(value: unknown, what: string): Map<number, Map<string, number>> {
  const table = new Map<number, Map<string, number>>();
  for (const [year, entries] of Object.entries(record(value ?? {}, what))) {
    if (!/^\d{4}$/.test(year)) fail(`${what}: year ${year.slice(0, 20)} is not a year`);
    const byKey = new Map<string, number>();
    for (const [key, v] of Object.entries(record(entries, `${what}.${year}`))) {
      if (!KEY.test(key)) fail(`${what}.${year}: bad key ${key.slice(0, 40)}`);
      byKey.set(key, intensity(v, `${what}.${year}.${key}`));
    }
    table.set(Number(year), byKey);
  }
  return table;
}

/** Parses and checks a bundle (size, shape, every figure bounded). Throws naming what is wrong. */
export function parseRegionCarbonBundle(text: string): LoadedRegionData {
  if (Buffer.byteLength(text) > MAX_REGION_DATA_BYTES) fail(`over ${MAX_REGION_DATA_BYTES} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    fail(`not JSON (${(error as Error).message.slice(0, 80)})`);
  }
  const top = record(json, "the document");
  if (top.format !== REGION_DATA_FORMAT) fail(`format must be ${REGION_DATA_FORMAT}`);
  const tables: StaticCarbonTables = {
    gcpYearly: yearlyTable(top.gcpYearly, "gcpYearly"),
    electricityMapsYearly: yearlyTable(top.electricityMapsYearly, "electricityMapsYearly"),
    coefficients: new Map(),
    rejected: [],
  };
  for (const [key, entry] of Object.entries(record(top.coefficients ?? {}, "coefficients"))) {
    if (!KEY.test(key)) fail(`coefficients: bad key ${key.slice(0, 40)}`);
    const e = record(entry, `coefficients.${key}`);
    tables.coefficients.set(key, {
      gCO2PerKWh: intensity(e.gCO2PerKWh, `coefficients.${key}.gCO2PerKWh`),
      basis: typeof e.basis === "string" ? e.basis.slice(0, 80) : "unknown",
    });
  }
  const keys = [...tables.gcpYearly.values(), ...tables.electricityMapsYearly.values()].reduce(
    (n, m) => n + m.size,
    tables.coefficients.size,
  );
  if (keys === 0) fail("holds no yearly figure");
  if (keys > 4 * MAX_REGION_DATA_REGIONS * 8) fail("holds too many yearly figures");
  const out: LoadedRegionData = { staticSource: new StaticCarbonIntensitySource(tables) };
  if (top.hourly !== undefined) {
    const hourly = record(top.hourly, "hourly");
    const basis =
      hourly.basis === "direct"
        ? "direct"
        : hourly.basis === "lca"
          ? "lca"
          : fail("hourly.basis must be lca or direct");
    const startMs = typeof hourly.start === "string" ? Date.parse(hourly.start) : Number.NaN;
    if (!Number.isFinite(startMs) || startMs % HOUR_MS !== 0)
      fail("hourly.start must be an ISO time on the hour");
    const series = new Map<string, Float64Array>();
    let length: number | undefined;
    for (const [zone, values] of Object.entries(record(hourly.zones, "hourly.zones"))) {
      if (!KEY.test(zone)) fail(`hourly.zones: bad zone ${zone.slice(0, 40)}`);
      if (!Array.isArray(values) || values.length === 0 || values.length > MAX_REGION_DATA_HOURS)
        fail(`hourly.zones.${zone} must hold 1 to ${MAX_REGION_DATA_HOURS} values`);
      if (length !== undefined && values.length !== length) fail("hourly.zones must all hold the same hours");
      length = values.length;
      series.set(
        zone,
        Float64Array.from(values, (v, i) => intensity(v, `hourly.zones.${zone}[${i}]`)),
      );
    }
    if (series.size > MAX_REGION_DATA_REGIONS) fail("too many hourly zones");
    if (series.size > 0) out.hourly = new HourlyCarbonData(startMs, series, new Map(), basis);
  }
  if (top.rttMs !== undefined) {
    const rtt = record(top.rttMs, "rttMs");
    if (typeof rtt.from !== "string" || !/^[a-z0-9-]{1,63}$/.test(rtt.from))
      fail("rttMs.from must be a region name");
    const to = new Map<string, number>();
    for (const [region, ms] of Object.entries(record(rtt.to, "rttMs.to"))) {
      if (!/^[a-z0-9-]{1,63}$/.test(region)) fail(`rttMs.to: bad region ${region.slice(0, 40)}`);
      if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0 || ms > 10_000)
        fail(`rttMs.to.${region} must be a number of ms in [0, 10000]`);
      to.set(region, ms);
    }
    if (to.size > MAX_REGION_DATA_REGIONS) fail("too many RTTs");
    out.rttMs = { from: rtt.from, to };
  }
  return out;
}

/** Reads a bundle file, refusing one over the size bound before reading it. */
export function loadRegionCarbonBundle(file: string): LoadedRegionData {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (error) {
    throw new Error(
      `region carbon data: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  if (size > MAX_REGION_DATA_BYTES) fail(`${file} is ${size} bytes, over ${MAX_REGION_DATA_BYTES}`);
  return parseRegionCarbonBundle(readFileSync(file, "utf8"));
}

async function main(): Promise<void> {
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(`--${name}`);
    return i < 0 ? undefined : process.argv[i + 1];
  };
  const cloud = (arg("cloud") ?? "gcp") as Cloud;
  parseRegionRef(`${cloud}:x`);
  const regions = (arg("regions") ?? "")
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean);
  const from = arg("from");
  const year = arg("year") !== undefined ? Number(arg("year")) : undefined;
  const { loadGcpRttTable } = await import("../placement/rtt.js");
  const rtt = cloud === "gcp" ? loadGcpRttTable() : undefined;
  const bundle = buildRegionCarbonBundle({
    cloud,
    regions: from !== undefined && !regions.includes(from) ? [...regions, from] : regions,
    ...(from !== undefined ? { from } : {}),
    ...(year !== undefined ? { year } : {}),
    tables: loadStaticCarbonTables(),
    hourly: loadHourlyCarbonData(),
    ...(rtt
      ? { rttMs: (a: string, b: string) => (a === b ? 0 : rtt.rttMs(`${cloud}:${a}`, `${cloud}:${b}`)) }
      : {}),
  });
  process.stdout.write(JSON.stringify(bundle) + "\n");
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error: unknown) => {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(1);
  });
}
