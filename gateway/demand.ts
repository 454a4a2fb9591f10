/**
 * The gateway's side of the demand signal (operator/api/gateway-demand.ts): each replica tells the
 * operator, in its own annotation on the ModelDeployment, how many requests it holds for the model and
 * when it last saw one. `nextDemandWrite` decides when to write (pure); `DemandWriter` writes.
 *
 * When (COORDINATION.md, "Demand signal"): at once when held changes (0 -> >0, while > 0, back to 0),
 * at most one write per 2 s per ModelDeployment; while held > 0 refreshed every 10 s (the operator
 * trusts an entry's held for 30 s); lastRequestAt refreshed at most every 30 s and only for
 * ModelDeployments that scale to zero; entries of replicas silent for 10 minutes are deleted.
 */
import {
  type GatewayDemandValue,
  gatewayDemandPatch,
  parseGatewayDemand,
} from "../operator/api/gateway-demand.js";
import { API_GROUP, API_VERSION, KIND } from "../operator/api/modeldeployment.js";
import { logger } from "../operator/log/logger.js";
import { type KubeClient, isNotFound, pathFor } from "../operator/runtime/kube-client.js";
import type { ModelRoute } from "./fleet.js";

export const DEMAND_MIN_WRITE_INTERVAL_MS = 2_000;
export const DEMAND_HELD_REFRESH_MS = 10_000;
export const DEMAND_LAST_REQUEST_REFRESH_MS = 30_000;

/** What this replica last wrote for one ModelDeployment. */
export interface DemandWriteState {
  /** held in the last write; undefined: never written (counts as 0). */
  writtenHeld: number | undefined;
  writtenAtMs: number;
  /** lastRequestAt in the last write. */
  writtenLastRequestAt: number;
  /** When lastRequestAt was last written with a newer value. */
  lastRequestWrittenAtMs: number;
}

export const INITIAL_DEMAND_STATE: DemandWriteState = {
  writtenHeld: undefined,
  writtenAtMs: Number.NEGATIVE_INFINITY,
  writtenLastRequestAt: 0,
  lastRequestWrittenAtMs: Number.NEGATIVE_INFINITY,
};

export interface DemandInputs {
  held: number;
  /** Prompt tokens of the held requests (approximate); sizes the operator's wake. */
  heldTokens?: number;
  /** Last request for the model this replica received (unix ms), 0 if none. */
  lastRequestAt: number;
  scalesToZero: boolean;
  /** Other replicas' expired entries to delete. */
  expired: readonly string[];
  nowMs: number;
}

export type DemandDecision =
  | {
      write: true;
      value: GatewayDemandValue;
      why: "held-changed" | "held-refresh" | "last-request" | "cleanup";
    }
  | { write: false; retryAtMs?: number };

export function nextDemandWrite(state: DemandWriteState, inputs: DemandInputs): DemandDecision {
  const { held, nowMs } = inputs;
  const writtenHeld = state.writtenHeld ?? 0;
  let why: "held-changed" | "held-refresh" | "last-request" | "cleanup" | undefined;
  if (held !== writtenHeld) why = "held-changed";
  else if (held > 0 && nowMs - state.writtenAtMs >= DEMAND_HELD_REFRESH_MS) why = "held-refresh";
  else if (
    inputs.scalesToZero &&
    inputs.lastRequestAt > state.writtenLastRequestAt &&
    nowMs - state.lastRequestWrittenAtMs >= DEMAND_LAST_REQUEST_REFRESH_MS
  )
    why = "last-request";
  else if (inputs.expired.length > 0) why = "cleanup";
  if (why === undefined) {
    // A newer request time waits for its 30 s slot.
    if (inputs.scalesToZero && inputs.lastRequestAt > state.writtenLastRequestAt)
      return { write: false, retryAtMs: state.lastRequestWrittenAtMs + DEMAND_LAST_REQUEST_REFRESH_MS };
    if (held > 0) return { write: false, retryAtMs: state.writtenAtMs + DEMAND_HELD_REFRESH_MS };
    return { write: false };
  }
  if (nowMs - state.writtenAtMs < DEMAND_MIN_WRITE_INTERVAL_MS)
    return { write: false, retryAtMs: state.writtenAtMs + DEMAND_MIN_WRITE_INTERVAL_MS };
  // lastRequestAt only travels for models that scale to zero (a bounded write rate for the others).
  const lastRequestAt = inputs.scalesToZero ? inputs.lastRequestAt : state.writtenLastRequestAt;
  const heldTokens = held > 0 && inputs.heldTokens !== undefined ? Math.round(inputs.heldTokens) : undefined;
  return {
    write: true,
    value: { held, ...(heldTokens ? { heldTokens } : {}), lastRequestAt, updatedAt: nowMs },
    why,
  };
}

export function afterDemandWrite(state: DemandWriteState, value: GatewayDemandValue): DemandWriteState {
  return {
    writtenHeld: value.held,
    writtenAtMs: value.updatedAt,
    writtenLastRequestAt: value.lastRequestAt,
    lastRequestWrittenAtMs:
      value.lastRequestAt > state.writtenLastRequestAt ? value.updatedAt : state.lastRequestWrittenAtMs,
  };
}

export interface DemandWriterOptions {
  client: KubeClient;
  replicaName: string;
  /** Held requests for a model now (the hold queue). */
  heldFor: (model: string) => number;
  /** Their prompt tokens (approximate). */
  heldTokensFor?: (model: string) => number;
  onWrite?: (result: "ok" | "error") => void;
  now?: () => number;
}

interface Tracked {
  route: ModelRoute;
  state: DemandWriteState;
  lastRequestAt: number;
  writing: boolean;
  timer: NodeJS.Timeout | undefined;
}

const log = logger.child({ component: "gateway-demand" });

export class DemandWriter {
  private readonly tracked = new Map<string, Tracked>();
  private readonly now: () => number;
  private stopped = false;

  constructor(private readonly options: DemandWriterOptions) {
    this.now = options.now ?? Date.now;
  }

  /** A request for the route's model arrived. */
  recordRequest(route: ModelRoute): void {
    this.track(route).lastRequestAt = this.now();
    this.evaluate(route.uid);
  }

  /** The number of held requests for the route's model may have changed. */
  heldChanged(route: ModelRoute): void {
    this.track(route);
    this.evaluate(route.uid);
  }

  private track(route: ModelRoute): Tracked {
    let t = this.tracked.get(route.uid);
    if (!t) {
      // Bounded by the number of ModelDeployments (routes), which the informer bounds.
      t = { route, state: INITIAL_DEMAND_STATE, lastRequestAt: 0, writing: false, timer: undefined };
      this.tracked.set(route.uid, t);
    }
    t.route = route;
    return t;
  }

  /** Routes that went away (their ModelDeployment deleted) stop being tracked. */
  forgetExcept(liveUids: ReadonlySet<string>): void {
    for (const [uid, t] of this.tracked)
      if (!liveUids.has(uid)) {
        clearTimeout(t.timer);
        this.tracked.delete(uid);
      }
  }

  private evaluate(uid: string): void {
    const t = this.tracked.get(uid);
    if (!t || t.writing || this.stopped) return;
    const now = this.now();
    const expired = parseGatewayDemand(t.route.annotations, now).expired.filter(
      (r) => r !== this.options.replicaName,
    );
    const decision = nextDemandWrite(t.state, {
      held: this.options.heldFor(t.route.model),
      ...(this.options.heldTokensFor ? { heldTokens: this.options.heldTokensFor(t.route.model) } : {}),
      lastRequestAt: t.lastRequestAt,
      scalesToZero: t.route.scalesToZero,
      expired,
      nowMs: now,
    });
    clearTimeout(t.timer);
    t.timer = undefined;
    if (!decision.write) {
      if (decision.retryAtMs !== undefined) {
        t.timer = setTimeout(() => this.evaluate(uid), Math.max(0, decision.retryAtMs - now));
        t.timer.unref();
      }
      return;
    }
    t.writing = true;
    const route = t.route;
    const path = pathFor({
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: KIND,
      namespace: route.namespace,
      name: route.name,
    });
    this.options.client
      .patch(path, gatewayDemandPatch(this.options.replicaName, decision.value, expired))
      .then(
        () => {
          t.state = afterDemandWrite(t.state, decision.value);
          this.options.onWrite?.("ok");
          log.debug(
            {
              modelDeployment: `${route.namespace}/${route.name}`,
              held: decision.value.held,
              why: decision.why,
            },
            "demand written",
          );
        },
        (err: unknown) => {
          this.options.onWrite?.("error");
          if (isNotFound(err)) {
            this.tracked.delete(uid);
            return;
          }
          // Count the attempt so a failing API server is retried every 2 s, not hammered.
          t.state = { ...t.state, writtenAtMs: this.now() };
          log.warn(
            { err, modelDeployment: `${route.namespace}/${route.name}` },
            "writing the demand annotation failed; retrying",
          );
        },
      )
      .finally(() => {
        t.writing = false;
        if (this.tracked.get(uid) === t) this.evaluate(uid);
      });
  }

  /** Stops writing; deletes this replica's entries (best effort, bounded by `timeoutMs`). */
  async stop(timeoutMs = 2_000): Promise<void> {
    this.stopped = true;
    const writes: Promise<unknown>[] = [];
    for (const t of this.tracked.values()) {
      clearTimeout(t.timer);
      if (t.state.writtenHeld === undefined) continue;
      const path = pathFor({
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: KIND,
        namespace: t.route.namespace,
        name: t.route.name,
      });
      writes.push(
        this.options.client
          .patch(path, gatewayDemandPatch(this.options.replicaName, null))
          .catch(() => undefined),
      );
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(writes),
      new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
  }
}
