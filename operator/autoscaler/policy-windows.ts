/**
 * Stage 2 of the policy, WINDOWS: from this observation's demand to the demand that decides, over
 * the recent history of samples.
 *
 * - KV and queue demand are averaged over the stable window and over the short panic window; when
 *   the panic-window demand reaches `panicThreshold` × ready pods the policy panics for one stable
 *   window: it follows the larger of the two (and stage 3 never scales down) — Knative KPA's scheme.
 * - Token demand takes a high quantile (`tokenDemandQuantile`, default the peak) over its window:
 *   arrivals are bursty (the Azure code trace sends ~60 requests in one second) and a burst is served
 *   by the pods already up, so the fleet is sized for the recent bursts, not the average between.
 * - The driving demand is the MAX of the two (the scarcer resource decides), and of the forecast's
 *   demand at the horizon when forecasting is on (it never lowers the reactive answer).
 */
import type { DemandSample, PolicyTuning } from "./policy-types.js";

export type DemandSignal = "kv" | "queue" | "tokens" | "forecast";

export interface WindowedDemand {
  /** Samples kept for the next decision (the longest window's worth). */
  samples: DemandSample[];
  stable: { demand: number; signal: "kv" | "queue" };
  panic: { demand: number; signal: "kv" | "queue" };
  /** What KV and queue ask: the panic window's while panicking and larger, else the stable one's. */
  kvQueue: { demand: number; signal: "kv" | "queue" };
  /** The burst quantile of token demand over its window (null: no token samples). */
  tokenPeakDemandReplicas: number | null;
  panicUntilMs: number | null;
  panicking: boolean;
  driving: { demand: number; signal: DemandSignal };
}

/** The q-quantile (0..1, nearest rank) of values; values must be non-empty. */
export function quantileOf(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index] as number;
}

function mean(values: number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}

/** The larger of mean KV and mean queue demand over `window`. */
export function kvOrQueue(window: DemandSample[]): { demand: number; signal: "kv" | "queue" } {
  const kv = mean(window.map((s) => s.kvDemandReplicas));
  const queue = mean(window.map((s) => s.queueDemandReplicas));
  return queue > kv ? { demand: queue, signal: "queue" } : { demand: kv, signal: "kv" };
}

/** Samples within the longest window, plus this one when it carried data (`sample` non-null). */
export function keepSamples(
  previous: DemandSample[],
  sample: DemandSample | null,
  nowMs: number,
  tuning: PolicyTuning,
): DemandSample[] {
  const keepFromMs = nowMs - Math.max(tuning.stableWindowSeconds, tuning.tokenWindowSeconds) * 1000;
  const samples = previous.filter((s) => s.atMs > keepFromMs && s.atMs <= nowMs);
  if (sample !== null) samples.push(sample);
  return samples;
}

/** Panic starts (or is renewed) when the panic window asks for panicThreshold × the ready pods. */
export function panicUntil(
  previousUntilMs: number | null,
  panicDemand: number,
  panicSamples: number,
  readyPods: number,
  nowMs: number,
  tuning: PolicyTuning,
): number | null {
  let until = previousUntilMs !== null && previousUntilMs > nowMs ? previousUntilMs : null;
  if (readyPods > 0 && panicSamples > 0 && panicDemand >= tuning.panicThreshold * readyPods)
    until = nowMs + tuning.stableWindowSeconds * 1000;
  return until;
}

export function windowDemand(
  samples: DemandSample[],
  previousPanicUntilMs: number | null,
  readyPods: number,
  nowMs: number,
  tuning: PolicyTuning,
  /** "mean" when the token headroom is derived from measured burstiness (it already holds the bursts). */
  tokenAggregate: "quantile" | "mean" = "quantile",
  /** The forecast's demand at the horizon (null: none); drives when it asks for more than the rest. */
  forecastDemandReplicas: number | null = null,
  /** With "mean": the latest sample times this is a floor (target in use / highest target). */
  latestFloorFactor = 1,
): WindowedDemand {
  const since = (seconds: number): number => nowMs - seconds * 1000;
  const panicSamples = samples.filter((s) => s.atMs > since(tuning.panicWindowSeconds));
  const stable = kvOrQueue(samples.filter((s) => s.atMs > since(tuning.stableWindowSeconds)));
  const panic = kvOrQueue(panicSamples);
  const tokenWindow = samples.flatMap((s) =>
    s.atMs > since(tuning.tokenWindowSeconds) && s.tokenDemandReplicas !== undefined
      ? [s.tokenDemandReplicas]
      : [],
  );
  const tokenPeakDemandReplicas =
    tokenWindow.length === 0
      ? null
      : tokenAggregate === "mean"
        ? // The mean, but never below what carries the latest rate at the highest target: at a
          // burst's onset the window still holds the calm before it, and the mean alone would size
          // the fleet (even scale it down) below what is arriving now.
          Math.max(mean(tokenWindow), (tokenWindow[tokenWindow.length - 1] as number) * latestFloorFactor)
        : quantileOf(tokenWindow, tuning.tokenDemandQuantile);
  const panicUntilMs = panicUntil(
    previousPanicUntilMs,
    panic.demand,
    panicSamples.length,
    readyPods,
    nowMs,
    tuning,
  );
  const panicking = panicUntilMs !== null;
  const kvQueue = panicking && panic.demand > stable.demand ? panic : stable;
  let driving: WindowedDemand["driving"] =
    tokenPeakDemandReplicas !== null && tokenPeakDemandReplicas > kvQueue.demand
      ? { demand: tokenPeakDemandReplicas, signal: "tokens" }
      : kvQueue;
  // The forecast only ever adds: it drives when it asks for more than what is measured now.
  if (forecastDemandReplicas !== null && forecastDemandReplicas > driving.demand)
    driving = { demand: forecastDemandReplicas, signal: "forecast" };
  return { samples, stable, panic, kvQueue, tokenPeakDemandReplicas, panicUntilMs, panicking, driving };
}
