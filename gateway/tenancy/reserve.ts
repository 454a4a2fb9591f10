/**
 * A per-pod reserve of engine slots for the top priority bands (issue 14 §2): a pod counts as saturated
 * for a request below `minPriority` once its load reaches `maxLoadPerEndpoint - slotsPerPod`, while a
 * request at or above `minPriority` may still take the last `slotsPerPod` slots. So when a burst of the
 * top tier starts, the engines are not already full of lower tiers' requests: lower bands wait (or are
 * shed) in the gateway, the top band goes straight to a pod. Pure; the gateway and `npm run
 * bench:tenants` both use it.
 */
import type { PickLimits } from "../routing/types.js";

export interface SlotReserve {
  /** Slots per pod (of `maxLoadPerEndpoint`) only bands at or above `minPriority` may take; 0: none. */
  slotsPerPod: number;
  /** Lowest band (UsageTier.priority) that may use the reserve. */
  minPriority: number;
}

export const NO_RESERVE: SlotReserve = { slotsPerPod: 0, minPriority: 0 };

/**
 * The load at which a pod is saturated for a request of band `priority`. Without a finite load limit
 * there are no slots to reserve; a reserve at least as large as the limit leaves lower bands no slot
 * (their requests wait in the gateway until a pod has room below the reserve, i.e. never while the
 * reserve is that large: keep it below the limit).
 */
export function loadLimitFor(maxLoadPerEndpoint: number, priority: number, reserve: SlotReserve): number {
  if (!Number.isFinite(maxLoadPerEndpoint) || reserve.slotsPerPod <= 0 || priority >= reserve.minPriority)
    return maxLoadPerEndpoint;
  return Math.max(0, maxLoadPerEndpoint - reserve.slotsPerPod);
}

/** `limits` for a request of band `priority` (the same object when the reserve does not apply). */
export function limitsForBand(limits: PickLimits, priority: number, reserve: SlotReserve): PickLimits {
  const max = loadLimitFor(limits.maxLoadPerEndpoint, priority, reserve);
  return max === limits.maxLoadPerEndpoint ? limits : { ...limits, maxLoadPerEndpoint: max };
}
