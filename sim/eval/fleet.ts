/**
 * Discrete-event simulation of one model's fleet: a trace of requests, a router that sends each
 * request to the least-loaded ready replica, N engine replicas (sim/engine/model.ts), pods that take
 * a model-load delay before they serve, metrics scraped at an interval, and a controller (an
 * autoscaling policy) called at its own interval. Everything runs in simulated time: an hour of
 * trace takes about a second.
 */
import type { MetricsSample, PodObservation } from "../../operator/autoscaler/policy.js";
import { EngineModel, type EngineParams } from "../engine/model.js";
import type { Trace } from "./traces.js";

export interface FleetScenario {
  name: string;
  trace: Trace;
  params: EngineParams;
  gpusPerReplica: number;
  /** Pod creation to Ready: scheduling, image pull, weight load, CUDA graph capture. */
  modelLoadSeconds: number;
  scrapeIntervalSeconds: number;
  ttftTargetSeconds: number;
  minReplicas: number;
  maxReplicas: number;
}

export interface ControllerView {
  nowMs: number;
  /** Replicas requested now (ready + starting; draining pods are gone from the spec). */
  currentReplicas: number;
  /** Ready and starting pods, with their last scraped metrics. */
  pods: PodObservation[];
  /** Requests in flight at the router: in engines (running or queued) or waiting for any replica. */
  inFlightRequests: number;
  /**
   * What the router (the frontend) has counted since t=0: requests and their prompt and output
   * tokens, as a frontend's request counters and length histograms give them (Dynamo's planner
   * reads these). Output tokens are counted at arrival from the trace; over a planner interval the
   * difference from counting them at completion is a few seconds of traffic.
   */
  arrived: { requests: number; promptTokens: number; outputTokens: number };
}

export interface Controller {
  name: string;
  intervalSeconds: number;
  initialReplicas: number;
  /** Model-load delay for this controller's pods (the oracle sets 0: perfect foresight). */
  modelLoadSecondsOverride?: number;
  decide(view: ControllerView): number;
}

export interface TimelinePoint {
  atMs: number;
  /** Arrivals per second over the last scrape interval. */
  arrivalsPerSecond: number;
  replicas: number;
  readyReplicas: number;
  meanKvCacheUtilization: number;
  requestsWaiting: number;
}

export interface FleetResult {
  controller: string;
  scenario: string;
  gpuHours: number;
  requests: number;
  withinTargetShare: number;
  ttftP50: number;
  ttftP95: number;
  ttftP99: number;
  scaleEvents: number;
  peakReplicas: number;
  rejected: number;
  preempted: number;
  timeline: TimelinePoint[];
}

type Phase = "starting" | "ready" | "draining";

interface Replica {
  name: string;
  engine: EngineModel;
  phase: Phase;
  createdMs: number;
  readyAtMs: number;
  stoppedMs: number | null;
  metrics?: MetricsSample;
}

export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

/**
 * Append `items` to `target` one by one: `target.push(...items)` passes every item as an argument
 * and overflows the call stack once a replica has served a day's requests (~10^5 and more).
 */
export function appendAll<T>(target: T[], items: readonly T[]): void {
  for (const item of items) target.push(item);
}

/** The largest of `values` (or `floor` if larger or `values` is empty), without spreading them. */
export function maxOf(values: Iterable<number>, floor = -Infinity): number {
  let m = floor;
  for (const v of values) if (v > m) m = v;
  return m;
}

/** Run `controller` on `scenario`; deterministic. */
export function simulateFleet(scenario: FleetScenario, controller: Controller): FleetResult {
  const { trace } = scenario;
  const loadMs = (controller.modelLoadSecondsOverride ?? scenario.modelLoadSeconds) * 1000;
  const scrapeMs = scenario.scrapeIntervalSeconds * 1000;
  const controlMs = controller.intervalSeconds * 1000;
  const endMs = trace.durationMs;
  const replicas: Replica[] = [];
  let serial = 0;
  const gateway: Array<{ id: string; promptTokens: number; maxOutputTokens: number; arrivalMs: number }> = [];
  let scaleEvents = 0;
  let peakReplicas = 0;
  const timeline: TimelinePoint[] = [];
  let arrivalsSinceScrape = 0;
  const arrived = { requests: 0, promptTokens: 0, outputTokens: 0 };

  const clampReplicas = (n: number): number =>
    Math.min(scenario.maxReplicas, Math.max(scenario.minReplicas, Math.round(n)));
  const live = (): Replica[] => replicas.filter((r) => r.phase === "ready" || r.phase === "starting");
  const ready = (): Replica[] => replicas.filter((r) => r.phase === "ready");

  const addReplica = (nowMs: number, warm: boolean): void => {
    const engine = new EngineModel(scenario.params, { tokenEvents: false });
    const readyAtMs = warm ? nowMs : nowMs + loadMs;
    replicas.push({
      name: `replica-${serial++}`,
      engine,
      phase: warm ? "ready" : "starting",
      createdMs: nowMs,
      readyAtMs,
      stoppedMs: null,
    });
  };

  const route = (
    req: { id: string; promptTokens: number; maxOutputTokens: number; arrivalMs: number },
    nowMs: number,
  ): boolean => {
    let best: Replica | null = null;
    let bestLoad = Infinity;
    for (const r of replicas) {
      if (r.phase !== "ready") continue;
      r.engine.advanceTo(nowMs);
      const load = r.engine.inFlight();
      if (load < bestLoad) {
        best = r;
        bestLoad = load;
      }
    }
    if (!best) return false;
    best.engine.enqueue(req);
    return true;
  };

  const applyDesired = (desired: number, nowMs: number): void => {
    const current = live().length;
    const target = clampReplicas(desired);
    if (target === current) return;
    scaleEvents++;
    if (target > current) {
      for (let i = current; i < target; i++) addReplica(nowMs, false);
    } else {
      let toRemove = current - target;
      // Starting pods go first (newest first), then the least-loaded ready pods drain.
      const starting = replicas.filter((r) => r.phase === "starting").reverse();
      for (const r of starting) {
        if (toRemove === 0) break;
        r.phase = "draining";
        r.stoppedMs = nowMs;
        toRemove--;
      }
      const readyByLoad = ready()
        .map((r) => {
          r.engine.advanceTo(nowMs);
          return r;
        })
        .sort((a, b) => a.engine.inFlight() - b.engine.inFlight());
      for (const r of readyByLoad) {
        if (toRemove === 0) break;
        r.phase = "draining";
        toRemove--;
      }
    }
    peakReplicas = Math.max(peakReplicas, live().length);
  };

  for (let i = 0; i < controller.initialReplicas; i++) addReplica(0, true);
  peakReplicas = live().length;

  let nextArrival = 0;
  let nextScrapeMs = scrapeMs;
  let nextControlMs = controlMs;
  const requests = trace.requests;
  for (;;) {
    let nextReadyMs = Infinity;
    for (const r of replicas)
      if (r.phase === "starting" && r.readyAtMs < nextReadyMs) nextReadyMs = r.readyAtMs;
    const arrivalMs =
      nextArrival < requests.length
        ? (requests[nextArrival] as (typeof requests)[number]).arrivalMs
        : Infinity;
    const t = Math.min(arrivalMs, nextScrapeMs, nextControlMs, nextReadyMs);
    if (t > endMs) break;

    if (t === nextReadyMs) {
      for (const r of replicas) {
        if (r.phase === "starting" && r.readyAtMs <= t) {
          r.phase = "ready";
          r.engine.advanceTo(t);
        }
      }
      while (gateway.length > 0) {
        const req = gateway.shift() as (typeof gateway)[number];
        route(req, t);
      }
      continue;
    }
    if (t === arrivalMs) {
      const tr = requests[nextArrival] as (typeof requests)[number];
      const req = {
        id: `q${nextArrival}`,
        promptTokens: tr.promptTokens,
        maxOutputTokens: tr.outputTokens,
        arrivalMs: tr.arrivalMs,
      };
      nextArrival++;
      arrivalsSinceScrape++;
      arrived.requests++;
      arrived.promptTokens += tr.promptTokens;
      arrived.outputTokens += tr.outputTokens;
      if (!route(req, t)) gateway.push(req);
      continue;
    }
    if (t === nextScrapeMs) {
      nextScrapeMs += scrapeMs;
      let kvSum = 0;
      let waiting = 0;
      let readyCount = 0;
      for (const r of replicas) {
        if (r.phase === "starting") continue;
        r.engine.advanceTo(t);
        if (r.phase === "draining") {
          if (r.stoppedMs === null && r.engine.inFlight() === 0) r.stoppedMs = t;
          continue;
        }
        // The scrape's time decides which queued requests have arrived, as the engine server's
        // /metrics does (sim/engine/server.ts): the model clock may sit at the start of a step in
        // progress, and the requests queued during it are waiting all the same.
        const s = r.engine.snapshot(t);
        r.metrics = {
          kvCacheUtilization: s.kvCacheUtilization,
          requestsWaiting: s.requestsWaiting,
          requestsRunning: s.requestsRunning,
          // vllm:prompt_tokens_total / vllm:generation_tokens_total, as the operator scrapes them.
          promptTokensTotal: s.promptTokensTotal,
          generationTokensTotal: s.generationTokensTotal,
          // vllm:request_success_total.
          requestsFinishedTotal: s.requestsFinishedTotal,
          scrapedAtMs: t,
        };
        kvSum += s.kvCacheUtilization;
        waiting += s.requestsWaiting;
        readyCount++;
      }
      timeline.push({
        atMs: t,
        arrivalsPerSecond: arrivalsSinceScrape / scenario.scrapeIntervalSeconds,
        replicas: live().length,
        readyReplicas: readyCount,
        meanKvCacheUtilization: readyCount > 0 ? kvSum / readyCount : 0,
        requestsWaiting: waiting + gateway.length,
      });
      arrivalsSinceScrape = 0;
      continue;
    }
    // Control tick.
    nextControlMs += controlMs;
    let inFlight = gateway.length;
    const pods: PodObservation[] = [];
    for (const r of replicas) {
      if (r.phase === "draining") {
        inFlight += r.engine.inFlight();
        continue;
      }
      if (r.phase === "ready") inFlight += r.engine.inFlight();
      pods.push({
        name: r.name,
        phase: r.phase,
        sinceMs: r.phase === "ready" ? r.readyAtMs : r.createdMs,
        ...(r.phase === "ready" && r.metrics ? { metrics: r.metrics } : {}),
      });
    }
    const desired = controller.decide({
      nowMs: t,
      currentReplicas: live().length,
      pods,
      inFlightRequests: inFlight,
      arrived: { ...arrived },
    });
    applyDesired(desired, t);
  }

  // Serve what is left (no more billing after the trace ends) and collect latencies.
  for (const req of gateway) route(req, endMs);
  const ttft: number[] = [];
  let rejected = 0;
  let preempted = 0;
  let gpuMs = 0;
  for (const r of replicas) {
    r.engine.advanceTo(endMs + 24 * 3600_000);
    appendAll(ttft, r.engine.takeSamples().ttftSeconds);
    const s = r.engine.snapshot();
    rejected += s.requestsRejectedTotal;
    preempted += s.requestsPreemptedTotal;
    const stop = Math.min(r.stoppedMs ?? endMs, endMs);
    gpuMs += Math.max(0, stop - r.createdMs) * scenario.gpusPerReplica;
  }
  ttft.sort((a, b) => a - b);
  const within = ttft.filter((x) => x <= scenario.ttftTargetSeconds).length;
  return {
    controller: controller.name,
    scenario: scenario.name,
    gpuHours: gpuMs / 3600_000,
    requests: requests.length,
    withinTargetShare: requests.length === 0 ? 1 : within / requests.length,
    ttftP50: quantile(ttft, 0.5),
    ttftP95: quantile(ttft, 0.95),
    ttftP99: quantile(ttft, 0.99),
    scaleEvents,
    peakReplicas,
    rejected,
    preempted,
    timeline,
  };
}
