/**
 * Scale from zero and to zero (issue 10): pure decisions beside the policy, for ModelDeployments with
 * `autoscaling.minReplicas: 0` (the CRD then requires `scaleToZeroIdleSeconds`).
 *
 * - Wake: requests held at a gateway (its demand annotations) while the model has 0 replicas ask for
 *   1 at once. The operator takes this decision on the ModelDeployment informer event that carries
 *   the demand, not on the next autoscaler tick; the tick takes it too, in case the event was missed.
 * - Sleep: no request for `scaleToZeroIdleSeconds` → 0. "No request" means neither a gateway replica
 *   (lastRequestAt) nor any engine (its request and token counters, and what it runs or queues right
 *   now) saw one. A fresh operator (restart, new leader) knows nothing of the past, so it counts idle
 *   time from when it started watching: a restart delays scale-to-zero, it never hastens it.
 * - Phase, for the status: `Idle` (0 replicas, nothing held) or `Activating` (scaling from zero: no
 *   pod ready yet while replicas are wanted, or requests held at zero).
 *
 * The state is plain data the caller keeps between calls; nothing here reads a clock or does I/O.
 */

export interface EnginePodActivity {
  name: string;
  /** Requests the engine runs or queues right now. */
  inFlight: number;
  /**
   * A cumulative count that moves whenever the engine serves a request (requests that got a first
   * token, plus prompt and generated tokens); null when the pod exposed none.
   */
  counter: number | null;
}

export interface ScaleToZeroState {
  /** When this state began watching (idle time is never counted from before it). */
  watchingSinceMs: number | null;
  /** Last time an engine counter moved or an engine had requests in flight. */
  lastEngineActivityMs: number | null;
  /** Last counter reading per pod. */
  podCounters: Record<string, number>;
}

export function initialScaleToZeroState(): ScaleToZeroState {
  return { watchingSinceMs: null, lastEngineActivityMs: null, podCounters: {} };
}

/** Records what the engines show; returns the new state (inputs untouched). */
export function observeEngineActivity(state: ScaleToZeroState, pods: readonly EnginePodActivity[], nowMs: number): ScaleToZeroState {
  const podCounters: Record<string, number> = {};
  let active = false;
  for (const pod of pods) {
    if (Number.isFinite(pod.inFlight) && pod.inFlight > 0) active = true;
    const previous = state.podCounters[pod.name];
    if (pod.counter === null || !Number.isFinite(pod.counter) || pod.counter < 0) {
      if (previous !== undefined) podCounters[pod.name] = previous;
      continue;
    }
    podCounters[pod.name] = pod.counter;
    // A first reading of a pod with a non-zero count, or any change (a restart resets it), means it served.
    if (previous === undefined ? pod.counter > 0 : pod.counter !== previous) active = true;
  }
  return {
    watchingSinceMs: state.watchingSinceMs ?? nowMs,
    lastEngineActivityMs: active ? nowMs : state.lastEngineActivityMs,
    podCounters,
  };
}

export interface ScaleToZeroSettings {
  minReplicas: number;
  /** Absent: scale to zero is off (the policy's floor is then at least 1). */
  scaleToZeroIdleSeconds?: number | undefined;
}

/** Scale to zero is on: minReplicas 0 with an idle period (the CRD refuses minReplicas 0 without one). */
export function scaleToZeroEnabled(settings: ScaleToZeroSettings): boolean {
  return settings.minReplicas === 0 && settings.scaleToZeroIdleSeconds !== undefined && settings.scaleToZeroIdleSeconds > 0;
}

/** Held demand summed over the gateway replicas, and their latest request time. */
export interface GatewayDemandSummary {
  held: number;
  lastRequestAtMs: number | undefined;
}

/**
 * Wake on the informer event: 0 → 1 when a gateway holds requests and no replica is asked for.
 * Returns the replicas to write, or undefined to leave the count alone.
 */
export function wakeFromZero(settings: ScaleToZeroSettings, specReplicas: number, demand: GatewayDemandSummary): 1 | undefined {
  return scaleToZeroEnabled(settings) && specReplicas === 0 && demand.held > 0 ? 1 : undefined;
}

export interface ScaleToZeroInput {
  nowMs: number;
  settings: ScaleToZeroSettings;
  /** spec.replicas now. */
  specReplicas: number;
  /** What the policy decided (it never goes below 1 from above 0). */
  policyReplicas: number;
  demand: GatewayDemandSummary;
  state: ScaleToZeroState;
}

export interface ScaleToZeroDecision {
  replicas: number;
  /** Why, when this module overrode the policy; undefined when the policy's decision stands. */
  reason?: string;
  /** Milliseconds since the last request anyone saw (counted from when watching began, at most). */
  idleMs: number;
}

/** Time since the last request seen by a gateway or an engine, never counted from before watching began. */
export function idleMillis(state: ScaleToZeroState, demand: GatewayDemandSummary, nowMs: number): number {
  const last = Math.max(demand.lastRequestAtMs ?? -Infinity, state.lastEngineActivityMs ?? -Infinity, state.watchingSinceMs ?? nowMs);
  return Math.max(0, nowMs - last);
}

/** The tick's decision for a scale-to-zero ModelDeployment: wake, sleep, or the policy's count. */
export function decideScaleToZero(input: ScaleToZeroInput): ScaleToZeroDecision {
  const { nowMs, settings, specReplicas, policyReplicas, demand, state } = input;
  const idleMs = idleMillis(state, demand, nowMs);
  if (!scaleToZeroEnabled(settings)) return { replicas: policyReplicas, idleMs };
  if (demand.held > 0) {
    if (specReplicas === 0)
      return { replicas: 1, reason: `scaling from zero: ${demand.held} request(s) held at the gateway`, idleMs };
    return { replicas: Math.max(1, policyReplicas), idleMs };
  }
  const idleSeconds = settings.scaleToZeroIdleSeconds ?? Infinity;
  if (specReplicas > 0 && idleMs >= idleSeconds * 1000) {
    return {
      replicas: 0,
      reason: `scaling to zero: no request for ${Math.floor(idleMs / 1000)}s (scaleToZeroIdleSeconds ${idleSeconds})`,
      idleMs,
    };
  }
  if (specReplicas === 0) return { replicas: 0, reason: `idle at zero: no request for ${Math.floor(idleMs / 1000)}s; the first request wakes it`, idleMs };
  return { replicas: policyReplicas, idleMs };
}

export type ScaleToZeroPhase = "Idle" | "Activating";

/**
 * The phase a scale-to-zero ModelDeployment shows: Idle at zero with nothing held, Activating while
 * requests wait at zero or replicas are wanted and none is ready. undefined: neither (serving, or
 * scale to zero off).
 */
export function scaleToZeroPhase(
  settings: ScaleToZeroSettings,
  wantedReplicas: number,
  readyReplicas: number,
  heldRequests: number,
): ScaleToZeroPhase | undefined {
  if (!scaleToZeroEnabled(settings)) return undefined;
  if (wantedReplicas === 0) return heldRequests > 0 ? "Activating" : "Idle";
  return readyReplicas === 0 ? "Activating" : undefined;
}
