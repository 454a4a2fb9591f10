/**
 * Scale from zero and to zero (issue 10): pure decisions beside the policy, for ModelDeployments with
 * `autoscaling.minReplicas: 0` (the CRD then requires `scaleToZeroIdleSeconds`).
 *
 * - Wake: requests held at a gateway (its demand annotations) while the model has 0 replicas ask for
 *   replicas at once: as many as the held prompt tokens need, at what one replica prefills within the
 *   TTFT objective (the plan's token capacity × ttftTargetSeconds), at least 1, at most maxReplicas.
 *   While no replica is ready yet (Activating) more held demand grows that first step the same way:
 *   the policy cannot (it sizes from ready pods' metrics), and a burst that arrives at zero would
 *   otherwise all land on the one replica that woke first. The operator takes this decision on the
 *   ModelDeployment informer event that carries the demand, not on the next autoscaler tick; the
 *   tick takes it too, in case the event was missed.
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
  /** Bound of the wake step (absent: no bound but the held demand). */
  maxReplicas?: number | undefined;
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
  /** Prompt tokens of the held requests (approximate), when the gateways report them. */
  heldTokens?: number | undefined;
  lastRequestAtMs: number | undefined;
}

/** How to size a wake: what is ready now, and what one replica serves within the objective. */
export interface WakeSizing {
  readyReplicas: number;
  /** Prompt tokens one replica prefills within the TTFT objective; absent or 0: one replica per wake. */
  tokensPerReplica?: number | undefined;
}

/**
 * Replicas the held demand asks for: held prompt tokens / what one replica prefills within the
 * objective, rounded up, at least 1 (held > 0), at most maxReplicas.
 */
export function replicasForHeld(settings: ScaleToZeroSettings, demand: GatewayDemandSummary, tokensPerReplica: number | undefined): number {
  if (!(demand.held > 0)) return 0;
  const tokens = Number.isFinite(demand.heldTokens) ? Math.max(0, demand.heldTokens ?? 0) : 0;
  const wanted = tokensPerReplica !== undefined && tokensPerReplica > 0 ? Math.ceil(tokens / tokensPerReplica) : 1;
  const cap = settings.maxReplicas !== undefined && settings.maxReplicas >= 1 ? Math.floor(settings.maxReplicas) : Number.POSITIVE_INFINITY;
  return Math.max(1, Math.min(cap, wanted));
}

/**
 * Wake on the informer event: when a gateway holds requests and either no replica is asked for, or
 * none is ready yet and the held demand asks for more than are asked for. Returns the replicas to
 * write, or undefined to leave the count alone. Without `sizing` (or at zero without a token figure) 0 → 1.
 */
export function wakeFromZero(
  settings: ScaleToZeroSettings,
  specReplicas: number,
  demand: GatewayDemandSummary,
  sizing?: WakeSizing,
): number | undefined {
  if (!scaleToZeroEnabled(settings) || !(demand.held > 0)) return undefined;
  if (!sizing) return specReplicas === 0 ? 1 : undefined;
  if (specReplicas > 0 && sizing.readyReplicas > 0) return undefined;
  const wanted = replicasForHeld(settings, demand, sizing.tokensPerReplica);
  return wanted > specReplicas ? wanted : undefined;
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
  /** Sizes the wake from the held demand (absent: 0 → 1). */
  sizing?: WakeSizing;
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
    const wake = wakeFromZero(settings, specReplicas, demand, input.sizing);
    if (wake !== undefined)
      return { replicas: Math.max(wake, policyReplicas), reason: wakeReason(specReplicas, wake, demand), idleMs };
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

/**
 * Held demand at any scale (issue 10: requests the gateway holds are waiting demand): the ready
 * replicas plus as many whole replicas as the held prompt tokens would keep busy for the TTFT objective
 * (at what one replica prefills within it), at most maxReplicas; 0 when that is none, nothing is held
 * or there is no token figure. Ready, not
 * requested: pods still starting are what this asks for, so the floor does not grow tick after tick
 * while they start. The policy's windows average a burst away; this answers it when it is held.
 */
export function heldBacklogFloor(
  settings: ScaleToZeroSettings,
  demand: GatewayDemandSummary,
  sizing: WakeSizing,
): number {
  const tokens = Number.isFinite(demand.heldTokens) ? Math.max(0, demand.heldTokens ?? 0) : 0;
  if (!(demand.held > 0) || !(tokens > 0) || !(sizing.tokensPerReplica !== undefined && sizing.tokensPerReplica > 0))
    return 0;
  const cap = settings.maxReplicas !== undefined && settings.maxReplicas >= 1 ? Math.floor(settings.maxReplicas) : Number.POSITIVE_INFINITY;
  // Whole replicas only: a backlog smaller than one replica's objective's worth is absorbed by the
  // ready pods as they free up (and a request held only while a Ready pod's engine still loads asks for nothing).
  const extra = Math.floor(tokens / sizing.tokensPerReplica);
  return extra > 0 ? Math.min(cap, Math.max(0, sizing.readyReplicas) + extra) : 0;
}

/** The reason a wake gives, in the status and the event. */
export function wakeReason(specReplicas: number, to: number, demand: GatewayDemandSummary): string {
  const tokens = demand.heldTokens !== undefined && demand.heldTokens > 0 ? ` (~${Math.round(demand.heldTokens)} prompt tokens)` : "";
  return specReplicas === 0
    ? `scaling from zero: ${demand.held} request(s) held at the gateway${tokens}`
    : `activating: ${demand.held} request(s) held at the gateway${tokens} while no replica is ready; ${specReplicas} → ${to}`;
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
