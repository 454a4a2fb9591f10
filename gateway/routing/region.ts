/**
 * Region choice for a fleet that runs a model in several regions: per request, the region with the
 * lowest grid carbon intensity right now among those within the request's latency budget that have
 * spare capacity; when that region is saturated the request spills to the next cleanest one. Pure:
 * the caller passes a snapshot of intensities (from the same intensity source placement reads,
 * infra/carbon/intensity-source.ts `intensitySnapshot`) and of each region's load.
 */

/** What the gateway knows about one region serving the request's model. */
export interface RegionState {
  /** `cloud:region`, as placement names it. */
  region: string;
  /** Round trip from the request's origin to the region, ms. */
  rttMs: number;
  /** Grid intensity now, gCO2/kWh. Absent or not finite: unknown, ranked after every known region. */
  gCO2PerKWh?: number;
  /** Work in progress in the region (requests, or tokens/s: any unit, the same as `capacity`). */
  load: number;
  /** What the region's ready replicas can carry, in the unit of `load`. 0: nothing ready. */
  capacity: number;
}

export interface RegionRequest {
  /** Largest RTT the request accepts, ms. */
  latencyBudgetMs: number;
  /** What this request adds to a region's load (default 1). */
  size?: number;
}

export type RegionPickReason =
  /** The cleanest region within the budget had room. */
  | "lowest-carbon"
  /** A cleaner region within the budget was saturated; this is the cleanest one with room. */
  | "spill"
  /** Every region within the budget is saturated: the least loaded one within it (it will queue). */
  | "all-saturated"
  /** No region is within the budget: the nearest region with ready capacity. */
  | "over-budget-nearest";

export interface RegionPick {
  region: string;
  reason: RegionPickReason;
  /** Regions within the budget, cleanest first, as considered. */
  ranked: string[];
}

/** Headroom kept in a region before it counts as saturated: load + size must stay at or below this share of capacity. */
export const DEFAULT_MAX_UTILIZATION = 1;

function intensityKey(state: RegionState): number {
  return state.gCO2PerKWh !== undefined && Number.isFinite(state.gCO2PerKWh) && state.gCO2PerKWh >= 0
    ? state.gCO2PerKWh
    : Number.POSITIVE_INFINITY;
}

/**
 * The region a request goes to, or undefined when no region has ready capacity at all.
 * Ties in intensity go to the lower RTT, then the region name (deterministic).
 */
export function pickRegion(
  request: RegionRequest,
  regions: readonly RegionState[],
  maxUtilization: number = DEFAULT_MAX_UTILIZATION,
): RegionPick | undefined {
  const size = request.size ?? 1;
  const serving = regions.filter((r) => r.capacity > 0 && Number.isFinite(r.rttMs));
  if (serving.length === 0) return undefined;
  const within = serving
    .filter((r) => r.rttMs <= request.latencyBudgetMs)
    .sort(
      (a, b) =>
        intensityKey(a) - intensityKey(b) ||
        a.rttMs - b.rttMs ||
        (a.region < b.region ? -1 : a.region > b.region ? 1 : 0),
    );
  const ranked = within.map((r) => r.region);
  if (within.length === 0) {
    const nearest = [...serving].sort((a, b) => a.rttMs - b.rttMs || (a.region < b.region ? -1 : 1))[0];
    return nearest === undefined
      ? undefined
      : { region: nearest.region, reason: "over-budget-nearest", ranked };
  }
  const roomy = within.find((r) => r.load + size <= r.capacity * maxUtilization);
  if (roomy !== undefined) {
    return { region: roomy.region, reason: roomy === within[0] ? "lowest-carbon" : "spill", ranked };
  }
  const leastLoaded = [...within].sort(
    (a, b) => a.load / a.capacity - b.load / b.capacity || a.rttMs - b.rttMs,
  )[0];
  return leastLoaded === undefined
    ? undefined
    : { region: leastLoaded.region, reason: "all-saturated", ranked };
}
