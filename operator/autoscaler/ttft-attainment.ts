/**
 * How many requests met the time-to-first-token objective lately, from the engines' TTFT histograms.
 *
 * Pure, like the policy: the caller keeps the state between calls. Each pod's cumulative buckets are
 * turned into the requests that got their first token since the previous reading; the count within
 * the objective is read at the objective from the buckets around it, interpolated linearly inside the
 * bucket that holds it (as PromQL's histogram_quantile does), and requests past the last finite
 * bucket count as misses. Readings are summed over a sliding window.
 *
 * This is a report (status, metrics); scaling decisions do not read it, so a histogram that is
 * missing or resets only blanks the report.
 */
import type { CumulativeHistogram } from "../metrics/engines.js";

interface PodReading {
  histogram: CumulativeHistogram;
}

interface WindowEntry {
  atMs: number;
  requests: number;
  withinTarget: number;
}

export interface TtftAttainmentState {
  pods: Record<string, PodReading>;
  entries: WindowEntry[];
}

export interface TtftAttainment {
  state: TtftAttainmentState;
  /** Requests whose first token came in the window (null: no pod reported a histogram twice yet). */
  requests: number | null;
  /** Share of them within the objective, 0..1 (null when no requests). */
  withinTargetShare: number | null;
}

export interface TtftPodReport {
  name: string;
  /**
   * When the pod was created. A pod created within the window is counted from zero at its first
   * reading (everything it served is recent); an older one starts as a baseline (its history may
   * predate the window, or this state may be new after an operator restart).
   */
  createdAtMs?: number;
  metrics?: { ttftHistogram?: CumulativeHistogram };
}

export function initialTtftAttainmentState(): TtftAttainmentState {
  return { pods: {}, entries: [] };
}

/** Requests at or below `targetSeconds` in a cumulative histogram (interpolated inside a bucket). */
export function countAtOrBelow(histogram: CumulativeHistogram, targetSeconds: number): number {
  const { upperBoundsSeconds: bounds, cumulativeCounts: counts } = histogram;
  let lowerBound = 0;
  let lowerCount = 0;
  for (let i = 0; i < bounds.length; i++) {
    const bound = bounds[i] as number;
    const count = counts[i] as number;
    if (!Number.isFinite(bound)) return lowerCount; // past the last finite bucket: misses
    if (targetSeconds <= bound) {
      if (targetSeconds === bound || bound === lowerBound) return count;
      return lowerCount + ((count - lowerCount) * (targetSeconds - lowerBound)) / (bound - lowerBound);
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerCount;
}

function sameBuckets(a: CumulativeHistogram, b: CumulativeHistogram): boolean {
  return (
    a.upperBoundsSeconds.length === b.upperBoundsSeconds.length &&
    a.upperBoundsSeconds.every((bound, i) => bound === b.upperBoundsSeconds[i])
  );
}

/** Fold one round of scrapes into the window and report the attainment over it. */
export function observeTtftAttainment(
  state: TtftAttainmentState,
  pods: readonly TtftPodReport[],
  options: { targetSeconds: number; nowMs: number; windowSeconds: number },
): TtftAttainment {
  const fromMs = options.nowMs - options.windowSeconds * 1000;
  const nextPods: Record<string, PodReading> = {};
  let requests = 0;
  let withinTarget = 0;
  let anyDelta = false;
  for (const pod of pods) {
    const histogram = pod.metrics?.ttftHistogram;
    const previous = state.pods[pod.name];
    if (!histogram) {
      if (previous) nextPods[pod.name] = previous; // a failed scrape keeps the baseline
      continue;
    }
    nextPods[pod.name] = { histogram };
    const fromZero: CumulativeHistogram = { ...histogram, cumulativeCounts: histogram.cumulativeCounts.map(() => 0) };
    const recentPod = pod.createdAtMs !== undefined && pod.createdAtMs > fromMs;
    const baseline = previous && sameBuckets(previous.histogram, histogram) ? previous.histogram : recentPod && !previous ? fromZero : undefined;
    if (!baseline) continue;
    const total = histogram.cumulativeCounts.at(-1) ?? 0;
    const baselineTotal = baseline.cumulativeCounts.at(-1) ?? 0;
    if (total < baselineTotal) continue; // the engine restarted: this reading is a new baseline
    anyDelta = true;
    requests += total - baselineTotal;
    withinTarget += Math.max(
      0,
      countAtOrBelow(histogram, options.targetSeconds) - countAtOrBelow(baseline, options.targetSeconds),
    );
  }
  const entries = state.entries.filter((e) => e.atMs > fromMs && e.atMs <= options.nowMs);
  if (anyDelta) entries.push({ atMs: options.nowMs, requests, withinTarget });
  const windowRequests = entries.reduce((s, e) => s + e.requests, 0);
  const windowWithin = entries.reduce((s, e) => s + e.withinTarget, 0);
  return {
    state: { pods: nextPods, entries },
    requests: entries.length === 0 ? null : windowRequests,
    withinTargetShare: windowRequests > 0 ? Math.min(1, windowWithin / windowRequests) : null,
  };
}
