/**
 * Stage 1b of the policy, LEARN: what this observation teaches about the workload, kept in the
 * history that survives restarts (./history.ts), and the headroom and forecast derived from it.
 *
 * - `learnFromPods`: the replica capacity (planner's figure as prior, moved by measured rates) and
 *   the time new pods took to become ready.
 * - `recordRate`: the fleet's token rate into the short series (burstiness, growth) and the buckets.
 * - `tokenHeadroom`: the utilisation target: explicit if configured, else derived (./headroom.ts).
 * - `forecastDemand`: with `forecast` on, the upper-quantile demand at the horizon (./forecast.ts).
 */
import { DEFAULT_FORECAST_METHOD, forecastAt, type DemandForecast } from "./forecast.js";
import {
  derivedUtilizationTarget,
  growthOverHorizon,
  burstUtilizationTarget,
  tokenDispersion,
} from "./headroom.js";
import {
  emptyHistory,
  lastDispersion,
  learnCapacity,
  learnedTimeToReady,
  recordDemand,
  recordTimeToReady,
  type WorkloadHistory,
} from "./history.js";
import { tokenUtilizationTargetForTtft } from "./ttft-objective.js";
import type { AutoscalingConfig, PodObservation, PolicyState, PolicyTuning } from "./policy-types.js";

/** Time to ready assumed until one is observed, seconds (image pull + weight load of a mid model). */
export const DEFAULT_TIME_TO_READY_SECONDS = 120;
/** The burstiness window: 10 minutes of decisions. */
export const DISPERSION_WINDOW_SECONDS = 600;
/** At most this many rate samples are kept. */
const MAX_RATE_SAMPLES = 180;

export interface Learned {
  history: WorkloadHistory;
  timedPods: string[];
  /** The capacity the token signal divides by (null: unknown, signal off). */
  capacity: number | null;
}

export function learnFromPods(
  state: PolicyState,
  pods: PodObservation[],
  saturatedRates: readonly number[],
  sustainedRates: readonly number[],
  otherRates: readonly number[],
  config: AutoscalingConfig,
): Learned {
  let history = state.history ?? emptyHistory();
  const configured = config.replicaTokenCapacityPerSecond;
  const prior = configured !== undefined && Number.isFinite(configured) && configured > 0 ? configured : null;
  // States saved before the history existed carry the learned figure alone.
  const previous =
    history.capacity ??
    (state.learnedTokenCapacityPerSecond
      ? { tokensPerSecond: state.learnedTokenCapacityPerSecond, observations: 1 }
      : null);
  // With the planner's figure to go on, only pods saturated for a minute move it (transient queues
  // on bursty traffic are no measure of capacity); without one, any saturated interval is better
  // than no token signal at all.
  const capacity = learnCapacity(
    previous,
    prior,
    prior === null ? saturatedRates : sustainedRates,
    otherRates,
  );
  if (capacity !== history.capacity) history = { ...history, capacity };
  const names = new Set(pods.map((p) => p.name));
  const timedPods = (state.timedPods ?? []).filter((n) => names.has(n));
  for (const pod of pods) {
    if (pod.phase !== "ready" || pod.createdAtMs === undefined || timedPods.includes(pod.name)) continue;
    timedPods.push(pod.name);
    // A pod ready at its creation (a warm start, or a clock we cannot trust) teaches nothing.
    if (pod.sinceMs > pod.createdAtMs)
      history = recordTimeToReady(history, (pod.sinceMs - pod.createdAtMs) / 1000);
  }
  const tokensPerSecond = capacity?.tokensPerSecond ?? null;
  return {
    history,
    timedPods,
    capacity: tokensPerSecond !== null && tokensPerSecond > 0 ? tokensPerSecond : null,
  };
}

export function recordRate(
  series: ReadonlyArray<{ atMs: number; value: number }>,
  tokensPerSecond: number | null,
  nowMs: number,
  keepSeconds: number,
): Array<{ atMs: number; value: number }> {
  const from = nowMs - keepSeconds * 1000;
  const kept = series.filter((s) => s.atMs > from && s.atMs < nowMs);
  if (tokensPerSecond !== null && Number.isFinite(tokensPerSecond))
    kept.push({ atMs: nowMs, value: tokensPerSecond });
  return kept.slice(-MAX_RATE_SAMPLES);
}

/** Median spacing of the series, seconds (the decision interval as observed). */
export function intervalSeconds(series: ReadonlyArray<{ atMs: number }>): number | null {
  if (series.length < 2) return null;
  const gaps: number[] = [];
  for (let i = 1; i < series.length; i++)
    gaps.push(((series[i] as { atMs: number }).atMs - (series[i - 1] as { atMs: number }).atMs) / 1000);
  gaps.sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)] as number;
}

export interface Headroom {
  /** The utilisation target the token signal uses. */
  target: number;
  /** Without the growth margin (what the forecast's demand is sized at). */
  burstTarget: number;
  /** True when derived from measurements (else the configured or default fixed target). */
  derived: boolean;
  dispersion: number | null;
  growth: number;
  horizonSeconds: number;
}

export function tokenHeadroom(
  config: AutoscalingConfig,
  tuning: PolicyTuning,
  series: ReadonlyArray<{ atMs: number; value: number }>,
  history: WorkloadHistory,
  nowMs: number,
): Headroom {
  const interval = intervalSeconds(series) ?? 10;
  const horizonSeconds =
    learnedTimeToReady(history, config.timeToReadySeconds ?? DEFAULT_TIME_TO_READY_SECONDS) + interval;
  // Until bursts are measured (or with an explicit target): the fixed rule for the objective.
  const fixedTarget =
    config.tokenUtilizationTarget === undefined && config.ttftTargetSeconds !== undefined
      ? tokenUtilizationTargetForTtft(config.ttftTargetSeconds)
      : tuning.tokenUtilizationTarget;
  const fixed = {
    target: fixedTarget,
    burstTarget: fixedTarget,
    derived: false,
    dispersion: null,
    growth: 0,
    horizonSeconds,
  };
  const T = config.ttftTargetSeconds;
  if (config.tokenUtilizationTarget !== undefined || T === undefined || !(T > 0)) return fixed;
  const recent = series.filter((s) => s.atMs > nowMs - DISPERSION_WINDOW_SECONDS * 1000).map((s) => s.value);
  const dispersion = tokenDispersion(recent, interval) ?? lastDispersion(history);
  const windowRates = series
    .filter((s) => s.atMs > nowMs - tuning.tokenWindowSeconds * 1000)
    .map((s) => s.value);
  const mean = windowRates.length > 0 ? windowRates.reduce((a, b) => a + b, 0) / windowRates.length : 0;
  if (dispersion === null || !(mean > 0)) return { ...fixed, dispersion };
  // Growth of the demand averaged over the horizon itself: a replica ordered now serves for a
  // time-to-ready at least, so a burst much shorter than that (which the burst term sizes) is not
  // growth to provision for; 60 s means let one burst read as a tripling for ten minutes.
  const growth = Math.min(
    tuning.maxGrowthMargin,
    growthOverHorizon(series, horizonSeconds, 0.9, Math.max(1, Math.round(horizonSeconds / interval))),
  );
  const input = {
    ttftTargetSeconds: T,
    tokenDispersion: dispersion,
    meanTokensPerSecond: mean,
    maxTarget: tuning.maxTokenUtilizationTarget,
    ...(config.missShare === undefined ? {} : { missShare: config.missShare }),
  };
  return {
    target: derivedUtilizationTarget({
      ...input,
      growthOverTimeToReady: growth,
      maxGrowth: tuning.maxGrowthMargin,
    }),
    burstTarget: burstUtilizationTarget(input),
    derived: true,
    dispersion,
    growth,
    horizonSeconds,
  };
}

/** Fold this decision's fleet rate and dispersion into the buckets. */
export function recordHistory(
  history: WorkloadHistory,
  tokensPerSecond: number | null,
  dispersion: number | null,
  nowMs: number,
): WorkloadHistory {
  return tokensPerSecond === null ? history : recordDemand(history, nowMs, tokensPerSecond, dispersion);
}

export interface ForecastDemand {
  forecast: DemandForecast | null;
  /** Upper-quantile demand at the horizon in replicas (null: no forecast). */
  replicas: number | null;
  cache: NonNullable<PolicyState["forecastCache"]>;
}

/**
 * The forecast at the horizon, in replicas at the burst target; computed once per bucket (the cache
 * is keyed by the last closed bucket and the horizon in buckets).
 */
export function forecastDemand(
  history: WorkloadHistory,
  cache: PolicyState["forecastCache"],
  horizonSeconds: number,
  capacity: number | null,
  burstTarget: number,
  nowMs: number,
): ForecastDemand {
  const bucketMs = history.bucketSeconds * 1000;
  const last = history.tokensPerSecond.length - 1;
  const targetBucket = Math.floor((nowMs + horizonSeconds * 1000 - history.startMs) / bucketMs);
  const horizonBuckets = Math.max(1, targetBucket - last);
  const fresh =
    cache && cache.bucket === last && cache.horizonBuckets === horizonBuckets
      ? cache
      : {
          bucket: last,
          horizonBuckets,
          forecast:
            last < 0
              ? null
              : forecastAt(
                  history.tokensPerSecond,
                  last,
                  horizonBuckets,
                  Math.round(86_400 / history.bucketSeconds),
                  DEFAULT_FORECAST_METHOD,
                ),
        };
  const level = last >= 0 ? history.tokensPerSecond[last] : null;
  const replicas =
    fresh.forecast && level !== null && level !== undefined && capacity !== null
      ? (level * fresh.forecast.upperGrowth) / (capacity * burstTarget)
      : null;
  return { forecast: fresh.forecast, replicas, cache: fresh };
}
