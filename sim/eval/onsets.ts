/**
 * Do ServeGen's clients switch on at the same time every day? Most of gpufleet's misses on ServeGen
 * fall where a client goes from nothing to hundreds of requests/s (README, Autoscaling): a reactive
 * autoscaler is a model load late there, and the aggregate seasonal forecast scales today's level (0).
 * A forecast could only pre-warm for such a step if it recurs, so this measures, on the 10-minute
 * per-client windows, days 8–14 against the 7 days before each:
 *
 * - onsets: a client's window with at least `minRate` requests/s after a window under `riseFactor`
 *   of it;
 * - recurring: the same client had an onset within ±`toleranceWindows` windows of the same time of
 *   day on at least `minDays` of the previous `lookbackDays` days (a step a forecast could time);
 * - present: the client already ran at `levelShare` of the onset's rate at the same time on at least
 *   `minDays` of those days (the step is new today, the level at that hour is not);
 * - a per-client same-time floor: each window's capacity at least the sum over clients of the q-quantile
 *   of their rate at this time over the previous days. What it costs (capacity over demand, both in
 *   requests/s summed over the scored windows) and how much onset demand it covers by half or more.
 *
 * Shares are weighted by the onsets' rates (the demand at stake). Pure functions over the rates;
 * `npx tsx sim/eval/onsets.ts` prints them for m-small and m-mid.
 */
import { fileURLToPath } from "node:url";
import { quantile } from "./fleet.js";
import { loadServeGen, SERVEGEN_WINDOW_SECONDS, type ServeGen, type ServeGenModel } from "./servegen.js";

const WINDOWS_PER_DAY = (24 * 3600) / SERVEGEN_WINDOW_SECONDS;

/** The same window of day on each of the `lookbackDays` days before, newest first, within the series. */
function sameTimeEarlier(window: number, lookbackDays: number): number[] {
  const earlier: number[] = [];
  for (let day = 1; day <= lookbackDays && window - day * WINDOWS_PER_DAY >= 0; day++) earlier.push(window - day * WINDOWS_PER_DAY);
  return earlier;
}

export interface OnsetOptions {
  minRate: number;
  riseFactor: number;
  lookbackDays: number;
  minDays: number;
  toleranceWindows: number;
  levelShare: number;
  /** First scored day (0-based); earlier days are history only. */
  scoreFromDay: number;
}

export const DEFAULT_ONSET_OPTIONS: OnsetOptions = {
  minRate: 5,
  riseFactor: 0.1,
  lookbackDays: 7,
  minDays: 3,
  toleranceWindows: 1,
  levelShare: 0.3,
  scoreFromDay: 7,
};

/** Per client, its rate in every window (0 where it sent nothing). */
export function clientRates(servegen: ServeGen): Map<number, Float64Array> {
  const rates = new Map<number, Float64Array>();
  servegen.windows.forEach((window, index) => {
    for (const client of window.clients) {
      let series = rates.get(client.client);
      if (!series) {
        series = new Float64Array(servegen.windows.length);
        rates.set(client.client, series);
      }
      series[index] = client.rate;
    }
  });
  return rates;
}

export interface Onset {
  client: number;
  window: number;
  rate: number;
}

export function clientOnsets(rates: Map<number, Float64Array>, options: Pick<OnsetOptions, "minRate" | "riseFactor">): Onset[] {
  const onsets: Onset[] = [];
  for (const [client, series] of rates)
    for (let window = 1; window < series.length; window++) {
      const rate = series[window] as number;
      if (rate >= options.minRate && (series[window - 1] as number) < options.riseFactor * rate) onsets.push({ client, window, rate });
    }
  return onsets;
}

export interface OnsetRecurrence {
  scoredOnsets: number;
  /** Rate-weighted share of scored onsets that recur at the same time of day. */
  recurringShare: number;
  /** Rate-weighted share whose client was already at that level at this time on earlier days. */
  presentShare: number;
}

export function onsetRecurrence(rates: Map<number, Float64Array>, options: OnsetOptions = DEFAULT_ONSET_OPTIONS): OnsetRecurrence {
  const onsets = clientOnsets(rates, options);
  const onsetWindows = new Map<number, Set<number>>();
  for (const onset of onsets) {
    const set = onsetWindows.get(onset.client) ?? new Set<number>();
    set.add(onset.window);
    onsetWindows.set(onset.client, set);
  }
  let weight = 0;
  let recurring = 0;
  let present = 0;
  let scored = 0;
  for (const onset of onsets) {
    if (onset.window < options.scoreFromDay * WINDOWS_PER_DAY) continue;
    const series = rates.get(onset.client) as Float64Array;
    const ownOnsets = onsetWindows.get(onset.client) as Set<number>;
    let recurringDays = 0;
    let presentDays = 0;
    for (const then of sameTimeEarlier(onset.window, options.lookbackDays)) {
      let hit = false;
      for (let offset = -options.toleranceWindows; offset <= options.toleranceWindows; offset++) if (ownOnsets.has(then + offset)) hit = true;
      if (hit) recurringDays++;
      if ((series[then] as number) >= options.levelShare * onset.rate) presentDays++;
    }
    scored++;
    weight += onset.rate;
    if (recurringDays >= options.minDays) recurring += onset.rate;
    if (presentDays >= options.minDays) present += onset.rate;
  }
  return { scoredOnsets: scored, recurringShare: weight > 0 ? recurring / weight : 0, presentShare: weight > 0 ? present / weight : 0 };
}

export interface SameTimeFloor {
  quantile: number;
  /** Σ max(demand, floor) / Σ demand over the scored windows. */
  capacityOverDemand: number;
  /** Rate-weighted share of scored onsets whose client's floor holds at least half the onset's rate. */
  onsetDemandCovered: number;
}

/** The q-quantile (nearest rank) of a client's rate at this window's time on the previous days. */
function sameTimeQuantile(series: Float64Array, window: number, lookbackDays: number, q: number): number {
  const values = sameTimeEarlier(window, lookbackDays).map((then) => series[then] as number);
  return values.length === 0 ? 0 : quantile(values.sort((a, b) => a - b), q);
}

export function sameTimeFloor(rates: Map<number, Float64Array>, quantile: number, options: OnsetOptions = DEFAULT_ONSET_OPTIONS): SameTimeFloor {
  const windows = Math.max(0, ...[...rates.values()].map((series) => series.length));
  let demand = 0;
  let capacity = 0;
  for (let window = options.scoreFromDay * WINDOWS_PER_DAY; window < windows; window++) {
    let actual = 0;
    let floor = 0;
    for (const series of rates.values()) {
      actual += series[window] as number;
      floor += sameTimeQuantile(series, window, options.lookbackDays, quantile);
    }
    demand += actual;
    capacity += Math.max(actual, floor);
  }
  let weight = 0;
  let covered = 0;
  for (const onset of clientOnsets(rates, options)) {
    if (onset.window < options.scoreFromDay * WINDOWS_PER_DAY) continue;
    weight += onset.rate;
    if (sameTimeQuantile(rates.get(onset.client) as Float64Array, onset.window, options.lookbackDays, quantile) >= 0.5 * onset.rate)
      covered += onset.rate;
  }
  return { quantile, capacityOverDemand: demand > 0 ? capacity / demand : 1, onsetDemandCovered: weight > 0 ? covered / weight : 0 };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const model of ["m-small", "m-mid"] as ServeGenModel[]) {
    const rates = clientRates(loadServeGen(model));
    const recurrence = onsetRecurrence(rates);
    const pct = (share: number): string => `${(share * 100).toFixed(1)}%`;
    process.stdout.write(
      `${model}: ${rates.size} clients; ${recurrence.scoredOnsets} onsets on days 8-14 (>= 5 req/s after < a tenth of it); ` +
        `recurring within ±10 min on >= 3 of the 7 days before: ${pct(recurrence.recurringShare)} of their rate; ` +
        `client already at >= 30% of it at that time on >= 3 days: ${pct(recurrence.presentShare)}\n`,
    );
    for (const quantile of [0.5, 0.7, 0.85]) {
      const floor = sameTimeFloor(rates, quantile);
      process.stdout.write(
        `  per-client same-time floor, q ${quantile}: capacity ${floor.capacityOverDemand.toFixed(3)}× demand, ` +
          `onset demand covered by half or more ${pct(floor.onsetDemandCovered)}\n`,
      );
    }
  }
}
