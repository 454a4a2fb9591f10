/**
 * Stage 3 of the policy, CLAMP: from the driving demand to a replica count the fleet may move to.
 *
 * 1. `recommend`: a tolerance band around the current count suppresses small moves; going down, KV
 *    and queue are sized for the lowered hysteresis targets (engines degrade abruptly near
 *    saturation; the token signal has its headroom built in); never down while panicking; clamped
 *    to [minReplicas, maxReplicas].
 * 2. `stabilize`: up follows the lowest recommendation in the scale-up window, down the highest in
 *    the scale-down window (Kubernetes HPA semantics); no scale-down before a whole scale-down
 *    window has been watched (a fresh state after a restart has no memory of recent peaks).
 * 3. `waitForStarting`: pods still loading are capacity that is coming; with some starting, add more
 *    only when the burst says demand exceeds panicThreshold × maxScaleUpRate × everything requested,
 *    or when the token rate (which starting pods are already counted against) asks beyond it.
 * 4. `limitSteps`: up by max(rate × current, current + step) per decision; down by
 *    max(`maxScaleDownStep`, `maxScaleDownFraction` × current) per `scaleDownPeriodSeconds`.
 * The safety holds (no scale-down on missing data or while pods start) are in ./policy.ts, where
 * the reason is written.
 */
import type { AutoscalingConfig, PolicyTuning, Recommendation } from "./policy-types.js";

export interface Bounds {
  minReplicas: number;
  maxReplicas: number;
}

export function boundsOf(config: AutoscalingConfig): Bounds {
  const minReplicas = Math.max(0, Math.floor(config.minReplicas));
  return { minReplicas, maxReplicas: Math.max(minReplicas, Math.floor(config.maxReplicas)) };
}

export function clampTo(bounds: Bounds, n: number): number {
  return Math.min(bounds.maxReplicas, Math.max(bounds.minReplicas, n));
}

export interface RecommendInput {
  current: number;
  /** The driving demand in replicas. */
  demand: number;
  /** KV/queue demand alone (sized for the hysteresis target going down). */
  kvQueueDemand: number;
  tokenPeakDemand: number | null;
  panicking: boolean;
}

export function recommend(
  input: RecommendInput,
  bounds: Bounds,
  tuning: PolicyTuning,
): { recommended: number; cappedAtMax: boolean } {
  const { current, demand } = input;
  let recommended =
    current > 0 && Math.abs(demand / current - 1) <= tuning.tolerance
      ? current
      : Math.max(1, Math.ceil(demand - 1e-9));
  if (recommended < current) {
    const downDemand = Math.max(
      input.kvQueueDemand / tuning.scaleDownUtilizationFactor,
      input.tokenPeakDemand ?? 0,
    );
    recommended = Math.min(current, Math.max(recommended, Math.ceil(downDemand - 1e-9)));
  }
  if (input.panicking) recommended = Math.max(recommended, current);
  return { recommended: clampTo(bounds, recommended), cappedAtMax: recommended > bounds.maxReplicas };
}

export function stabilize(
  recommended: number,
  current: number,
  history: Recommendation[],
  observingSinceMs: number,
  nowMs: number,
  config: AutoscalingConfig,
): number {
  const inWindow = (seconds: number): number[] => [
    ...history.filter((r) => r.atMs > nowMs - seconds * 1000 && r.atMs <= nowMs).map((r) => r.replicas),
    recommended,
  ];
  if (recommended > current)
    return Math.max(current, Math.min(...inWindow(config.scaleUpStabilizationSeconds)));
  if (recommended < current) {
    if (nowMs - observingSinceMs < config.scaleDownStabilizationSeconds * 1000) return current;
    return Math.min(current, Math.max(...inWindow(config.scaleDownStabilizationSeconds)));
  }
  return current;
}

export function waitForStarting(
  desired: number,
  current: number,
  startingPods: number,
  panicDemand: number,
  tokenPeakDemand: number | null,
  tuning: PolicyTuning,
): { desired: number; waiting: boolean } {
  if (desired <= current || startingPods === 0) return { desired, waiting: false };
  if (panicDemand >= tuning.panicThreshold * tuning.maxScaleUpRate * current)
    return { desired, waiting: false };
  const tokenAsks = tokenPeakDemand === null ? 0 : Math.ceil(tokenPeakDemand - 1e-9);
  if (tokenAsks > current) return { desired: Math.min(desired, tokenAsks), waiting: false };
  return { desired: current, waiting: true };
}

export function limitSteps(
  desired: number,
  current: number,
  lastScaleDownAtMs: number | null,
  nowMs: number,
  tuning: PolicyTuning,
): { desired: number; downRateLimited: boolean } {
  const maxUp = Math.max(Math.ceil(current * tuning.maxScaleUpRate), current + tuning.maxScaleUpStep);
  const maxDown = Math.max(tuning.maxScaleDownStep, Math.floor(current * tuning.maxScaleDownFraction));
  const stepped = Math.max(Math.min(desired, maxUp), current - maxDown);
  if (
    stepped < current &&
    lastScaleDownAtMs !== null &&
    nowMs - lastScaleDownAtMs < tuning.scaleDownPeriodSeconds * 1000
  )
    return { desired: current, downRateLimited: true };
  return { desired: stepped, downRateLimited: false };
}

/** Recommendations kept for the stabilization windows (the longer of the two). */
export function keepRecommendations(
  history: Recommendation[],
  recommendation: number | null,
  nowMs: number,
  config: AutoscalingConfig,
): Recommendation[] {
  const windowMs = Math.max(config.scaleDownStabilizationSeconds, config.scaleUpStabilizationSeconds) * 1000;
  const kept = history.filter((r) => r.atMs > nowMs - windowMs);
  if (recommendation !== null) kept.push({ atMs: nowMs, replicas: recommendation });
  return kept;
}
