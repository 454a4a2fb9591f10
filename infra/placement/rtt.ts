import { readFileSync } from "node:fs";
import path from "node:path";
import { canonicalZone, zoneOfCloudRegion } from "../carbon/region-zones.js";
import { parseRegionRef } from "../carbon/types.js";
import { sharedDataDir } from "../carbon/shared-data.js";
import { splitCsvLine } from "../carbon/static-data.js";

/**
 * Round-trip times between locations. A location is an Electricity Maps zone (`US-MIDA-PJM`,
 * `zone:FR`) or a cloud region (`gcp:us-east5`); lookups try the region first, then its zone.
 */
export class RttTable {
  private readonly rows = new Map<string, Map<string, number>>();

  /** From a plain `{from: {to: ms}}` record; keys as in {@link RttTable.key}. */
  static fromRecord(record: Readonly<Record<string, Readonly<Record<string, number>>>>): RttTable {
    const table = new RttTable();
    for (const [from, row] of Object.entries(record)) {
      for (const [to, ms] of Object.entries(row)) table.set(from, to, ms);
    }
    return table;
  }

  /** Normal form of a location key: `gcp:us-east5`, or a canonical zone such as `IN-WE`. */
  static key(location: string): string {
    const ref = parseRegionRef(location);
    return ref.cloud === "zone" ? canonicalZone(ref.id) : `${ref.cloud}:${ref.id}`;
  }

  set(from: string, to: string, ms: number): void {
    const fromKey = RttTable.key(from);
    let row = this.rows.get(fromKey);
    if (row === undefined) {
      row = new Map();
      this.rows.set(fromKey, row);
    }
    row.set(RttTable.key(to), ms);
  }

  has(location: string): boolean {
    return this.candidateKeys(location).some((k) => this.rows.has(k));
  }

  /** RTT in ms from `from` to `to`, or undefined when the table knows neither way. */
  rttMs(from: string, to: string): number | undefined {
    for (const fromKey of this.candidateKeys(from)) {
      for (const toKey of this.candidateKeys(to)) {
        const value = this.rows.get(fromKey)?.get(toKey) ?? this.rows.get(toKey)?.get(fromKey);
        if (value !== undefined) return value;
      }
    }
    return undefined;
  }

  locations(): string[] {
    return [...this.rows.keys()];
  }

  /** The keys a location may be stored under: itself, then (for a cloud region) its grid zone. */
  private candidateKeys(location: string): string[] {
    const ref = parseRegionRef(location);
    if (ref.cloud === "zone") return [canonicalZone(ref.id)];
    const zone = zoneOfCloudRegion(ref.cloud, ref.id);
    return zone === undefined ? [`${ref.cloud}:${ref.id}`] : [`${ref.cloud}:${ref.id}`, zone];
  }
}

/**
 * Parses the shared GCP inter-region RTT matrix (rows = origin, columns = destination, both labelled
 * by Electricity Maps zone). A zone label that appears twice (US-MIDA-PJM: us-east4 then us-east5)
 * is told apart with the GCP region → zone map, taken in its file order; the plain zone key
 * resolves to the first such region.
 */
export function parseRttMatrix(csvText: string, gcpRegionToZone: Readonly<Record<string, string>>): RttTable {
  const lines = csvText.split(/\r?\n/).filter((l) => l.trim() !== "");
  const header = splitCsvLine(lines[0] ?? "").slice(1);
  const regionsByZone = new Map<string, string[]>();
  for (const [region, zone] of Object.entries(gcpRegionToZone)) {
    regionsByZone.set(zone, [...(regionsByZone.get(zone) ?? []), region]);
  }
  const labelRegions = (labels: string[]): Array<{ zone: string; region: string | undefined }> => {
    const seen = new Map<string, number>();
    return labels.map((zone) => {
      const occurrence = seen.get(zone) ?? 0;
      seen.set(zone, occurrence + 1);
      return { zone, region: regionsByZone.get(zone)?.[occurrence] };
    });
  };
  const columns = labelRegions(header);
  const rowLabels = labelRegions(lines.slice(1).map((l) => splitCsvLine(l)[0] ?? ""));
  const table = new RttTable();
  lines.slice(1).forEach((line, rowIndex) => {
    const cells = splitCsvLine(line).slice(1);
    const from = rowLabels[rowIndex];
    if (from === undefined) return;
    cells.forEach((cell, columnIndex) => {
      const to = columns[columnIndex];
      const ms = Number(cell);
      if (to === undefined || cell === "" || !Number.isFinite(ms)) return;
      const fromKeys = keysFor(from, rowLabels);
      const toKeys = keysFor(to, columns);
      // Keys are unique per label (the zone key only on a zone's first label), so nothing is overwritten.
      for (const f of fromKeys) for (const t of toKeys) table.set(f, t, ms);
    });
  });
  return table;
}

/** A matrix label is stored under its GCP region and, for the first occurrence of its zone, the zone. */
function keysFor(
  label: { zone: string; region: string | undefined },
  all: ReadonlyArray<{ zone: string; region: string | undefined }>,
): string[] {
  const keys: string[] = [];
  if (label.region !== undefined) keys.push(`gcp:${label.region}`);
  const first = all.find((l) => l.zone === label.zone);
  if (first === label) keys.push(`zone:${label.zone}`);
  return keys;
}

/** The shared GCP RTT matrix, `<sharedData>/latency/`. */
export function loadGcpRttTable(dataDir: string = sharedDataDir()): RttTable {
  const latencyDir = path.join(dataDir, "latency");
  const mapping = JSON.parse(
    readFileSync(path.join(latencyDir, "gcp-region-to-zone.json"), "utf8"),
  ) as Record<string, string>;
  return parseRttMatrix(readFileSync(path.join(latencyDir, "gcp-interregion-rtt-ms.csv"), "utf8"), mapping);
}
