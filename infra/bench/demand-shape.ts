/**
 * A daily demand shape per user origin for the hourly placement benchmark: the hour-of-day profile of a
 * production LLM service (ServeGen, Alibaba Cloud Model Studio, `m-small` language models, 14 days of
 * 10-minute request rates), averaged per hour and normalised to mean 1, then shifted to each origin's
 * local time. ServeGen does not state its time zone; it is taken as China time (UTC+8), as the shared
 * data README suggests. Origins' UTC offsets are standard time (no daylight saving): a simplification.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { sharedDataDir } from "../carbon/shared-data.js";
import { splitCsvLine } from "../carbon/static-data.js";

export const SERVEGEN_UTC_OFFSET_HOURS = 8;

/** Standard-time UTC offsets of the benchmark's origins (Electricity Maps zones). */
export const ORIGIN_UTC_OFFSET_HOURS: Readonly<Record<string, number>> = {
  "US-MIDA-PJM": -5,
  "US-CAL-CISO": -8,
  "US-TEX-ERCO": -6,
  "US-CENT-SWPP": -6,
  DE: 1,
  GB: 0,
  FR: 1,
  NL: 1,
  "JP-TK": 9,
  SG: 8,
  "IN-MH": 5.5,
  KR: 9,
};

/** Mean request rate per local hour of day (24 values, mean 1) from the ServeGen aggregate file. */
export function parseLocalDailyShape(csvText: string, modelClass = "m-small"): number[] {
  const lines = csvText.split(/\r?\n/).filter((l) => l.trim() !== "");
  const header = splitCsvLine(lines[0] ?? "");
  const modelColumn = header.indexOf("model");
  const timeColumn = header.indexOf("window_start_s");
  const rateColumn = header.indexOf("total_rate_rps");
  const sums = new Array<number>(24).fill(0);
  const counts = new Array<number>(24).fill(0);
  for (const line of lines.slice(1)) {
    const cells = splitCsvLine(line);
    if (cells[modelColumn] !== modelClass) continue;
    const seconds = Number(cells[timeColumn]);
    const rate = Number(cells[rateColumn]);
    if (!Number.isFinite(seconds) || !Number.isFinite(rate)) continue;
    const hour = Math.floor((seconds % 86_400) / 3600);
    sums[hour] = (sums[hour] ?? 0) + rate;
    counts[hour] = (counts[hour] ?? 0) + 1;
  }
  const means = sums.map((s, h) => ((counts[h] ?? 0) > 0 ? s / (counts[h] ?? 1) : 0));
  const overall = means.reduce((a, b) => a + b, 0) / 24;
  if (!(overall > 0)) throw new Error(`no ${modelClass} rows in the ServeGen aggregate file`);
  return means.map((m) => m / overall);
}

/** Factor for a UTC hour of day at an origin: the local shape read at that origin's local hour. */
export function shapeAtUtcHour(
  localShape: readonly number[],
  utcOffsetHours: number,
  utcHour: number,
): number {
  // Linear interpolation for half-hour offsets (India).
  const local = (((utcHour + utcOffsetHours) % 24) + 24) % 24;
  const lo = Math.floor(local);
  const frac = local - lo;
  const a = localShape[lo % 24] ?? 1;
  const b = localShape[(lo + 1) % 24] ?? 1;
  return a + (b - a) * frac;
}

/** Per origin, 24 factors indexed by UTC hour. */
export function dailyShapes(
  origins: readonly string[],
  dataDir: string = sharedDataDir(),
): Record<string, number[]> {
  const text = readFileSync(path.join(dataDir, "workload", "servegen-aggregate-rate-10min.csv"), "utf8");
  // ServeGen's hours are local to UTC+8: convert its profile to a "local time" profile first.
  const servegenLocal = parseLocalDailyShape(text);
  return Object.fromEntries(
    origins.map((origin) => {
      const offset = ORIGIN_UTC_OFFSET_HOURS[origin] ?? 0;
      return [
        origin,
        Array.from({ length: 24 }, (_, utcHour) => shapeAtUtcHour(servegenLocal, offset, utcHour)),
      ];
    }),
  );
}
