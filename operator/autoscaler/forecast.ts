/**
 * Demand forecasts over the autoscaler's horizon (learned time to ready + one decision interval),
 * from the bucketed history (./history.ts). Pure functions over a series of bucket means, where
 * index i is bucket i and null means "not measured".
 *
 * Every method forecasts the demand h buckets after bucket t as the level y(t) times a growth
 * factor, so the forecast follows today's level and borrows only the SHAPE of past days:
 * - `persistence`: growth 1 (the reactive policy's implicit forecast);
 * - `seasonal-naive-daily` / `-weekly`: the value one period P ago at the target time (the textbook
 *   seasonal naive), i.e. growth y(t + h − P) / y(t);
 * - `seasonal-ratio`: the median over the last 7 days d of y(t + h − d·D) / y(t − d·D): how demand
 *   moved over the same stretch of the day, on the days we have.
 * The upper quantile multiplies the point forecast by the q-quantile of actual / forecast over the
 * last two days (a backtest on the same history), so the width is the method's own error.
 * Which method the operator uses was chosen on the tuning data (sim/eval/forecast-bench.ts prints
 * the figures; the README's autoscaling section quotes them).
 */

export type ForecastMethod =
  "persistence" | "seasonal-naive-daily" | "seasonal-naive-weekly" | "seasonal-ratio";
export const FORECAST_METHODS: readonly ForecastMethod[] = [
  "persistence",
  "seasonal-naive-daily",
  "seasonal-naive-weekly",
  "seasonal-ratio",
];
/** The method the policy uses (chosen on the tuning traces; see the module comment). */
export const DEFAULT_FORECAST_METHOD: ForecastMethod = "seasonal-ratio";

/** Below this correlation between a day and the day before, the history has no daily cycle. */
export const MIN_DAILY_CORRELATION = 0.5;
/** Days the seasonal ratio looks back over. */
const RATIO_DAYS = 7;
/** Bounds of a growth factor or an error quantile (a forecast never asks for more than 4× now). */
const MIN_FACTOR = 0.25;
const MAX_FACTOR = 4;

const at = (series: ReadonlyArray<number | null>, i: number): number | null =>
  i >= 0 && i < series.length ? (series[i] ?? null) : null;

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Growth factor from bucket t to t + h by `method`; null when the history cannot say. */
export function forecastGrowth(
  series: ReadonlyArray<number | null>,
  t: number,
  h: number,
  method: ForecastMethod,
  bucketsPerDay: number,
): number | null {
  const level = at(series, t);
  if (level === null || !(level > 0)) return null;
  let growth: number | null;
  if (method === "persistence") growth = 1;
  else if (method === "seasonal-naive-daily" || method === "seasonal-naive-weekly") {
    const period = method === "seasonal-naive-daily" ? bucketsPerDay : 7 * bucketsPerDay;
    const then = at(series, t + h - period);
    growth = then === null ? null : then / level;
  } else {
    const ratios: number[] = [];
    for (let d = 1; d <= RATIO_DAYS; d++) {
      const from = at(series, t - d * bucketsPerDay);
      const to = at(series, t + h - d * bucketsPerDay);
      if (from !== null && to !== null && from > 0) ratios.push(to / from);
    }
    growth = median(ratios);
  }
  return growth === null ? null : Math.min(MAX_FACTOR, Math.max(MIN_FACTOR, growth));
}

/** Pearson correlation of the last day with the day before (null: less than two days of data). */
export function dailyCorrelation(
  series: ReadonlyArray<number | null>,
  t: number,
  bucketsPerDay: number,
): number | null {
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = t - bucketsPerDay + 1; i <= t; i++) {
    const a = at(series, i);
    const b = at(series, i - bucketsPerDay);
    if (a !== null && b !== null) {
      xs.push(a);
      ys.push(b);
    }
  }
  if (xs.length < bucketsPerDay / 2) return null;
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < xs.length; i++) {
    const dx = (xs[i] as number) - mx;
    const dy = (ys[i] as number) - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : null;
}

/**
 * The q-quantile of actual / forecast over the `lookback` buckets before t (only pairs whose actual
 * is already known: i + h ≤ t). Null with fewer than 12 pairs.
 */
export function errorQuantile(
  series: ReadonlyArray<number | null>,
  t: number,
  h: number,
  method: ForecastMethod,
  bucketsPerDay: number,
  q: number,
  lookback: number,
): number | null {
  const ratios: number[] = [];
  for (let i = Math.max(0, t - h - lookback); i <= t - h; i++) {
    const g = forecastGrowth(series, i, h, method, bucketsPerDay);
    const level = at(series, i);
    const actual = at(series, i + h);
    if (g === null || level === null || actual === null) continue;
    ratios.push(actual / (level * g));
  }
  if (ratios.length < 12) return null;
  ratios.sort((a, b) => a - b);
  const r = ratios[Math.min(ratios.length - 1, Math.max(0, Math.ceil(q * ratios.length) - 1))] as number;
  return Math.min(MAX_FACTOR, Math.max(MIN_FACTOR, r));
}

export interface DemandForecast {
  method: ForecastMethod;
  /** Buckets ahead. */
  horizonBuckets: number;
  /** Point forecast / level. */
  growth: number;
  /** Upper quantile forecast / level (growth × the error quantile). */
  upperGrowth: number;
  /** The correlation of the last day with the one before. */
  dailyCorrelation: number;
}

/**
 * The forecast the policy may act on at bucket t, or null — no history (less than two days), no
 * daily cycle (correlation below MIN_DAILY_CORRELATION), or no error estimate yet.
 */
export function forecastAt(
  series: ReadonlyArray<number | null>,
  t: number,
  horizonBuckets: number,
  bucketsPerDay: number,
  method: ForecastMethod = DEFAULT_FORECAST_METHOD,
  q = 0.9,
): DemandForecast | null {
  const h = Math.max(1, Math.ceil(horizonBuckets));
  const correlation = dailyCorrelation(series, t, bucketsPerDay);
  if (correlation === null || correlation < MIN_DAILY_CORRELATION) return null;
  const growth = forecastGrowth(series, t, h, method, bucketsPerDay);
  if (growth === null) return null;
  const spread = errorQuantile(series, t, h, method, bucketsPerDay, q, 2 * bucketsPerDay);
  if (spread === null) return null;
  return {
    method,
    horizonBuckets: h,
    growth,
    upperGrowth: Math.min(MAX_FACTOR, growth * spread),
    dailyCorrelation: correlation,
  };
}
