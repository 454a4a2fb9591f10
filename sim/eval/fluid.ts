/**
 * Fluid simulation of one model's fleet, for multi-day spans (a day of ServeGen is ~10^8 requests at
 * its own scale, far beyond the discrete-event simulation in ./fleet.ts). Per second:
 * - demand arrives as token work (prompt + output tokens of the second's requests);
 * - the ready replicas serve it as one pooled server of capacity ready × c tokens/s (c: the engine's
 *   true compute throughput, 1000 / computeMsPerToken, which differs from the planner's prior when
 *   the engine speed does); what they cannot serve waits in a backlog Q;
 * - a request's TTFT is its wait, the backlog ahead of it over the capacity, plus its own prefill;
 *   the backlog grows linearly across the second, so the share of the second's requests within the
 *   objective has a closed form.
 * Controllers see what they see in ./fleet.ts (the same `Controller` interface): per ready pod,
 * token counters (the served work split evenly), waiting requests (the backlog in mean requests beyond what runs),
 * running requests by Little's law (served requests/s × their decode time) plus the backlog's
 * requests up to maxNumSeqs per engine (the rest wait), and a KV-cache utilisation from those running
 * requests' tokens. Pods take the model-load time to become ready.
 * What it leaves out, checked against ./fleet.ts on a shared span (sim/eval/forecast-bench.ts): a
 * request is placed on one replica and cannot be split; decode steps are memory-bound, not compute.
 */
import type { MetricsSample, PodObservation } from "../../operator/autoscaler/policy.js";
import type { EngineParams } from "../engine/model.js";
import type { Controller, FleetScenario } from "./fleet.js";
import type { SecondsDemand } from "./servegen.js";

/** The discrete-event scenario's fields, with per-second demand instead of single requests. */
export interface FluidScenario extends Omit<FleetScenario, "trace"> {
  demand: SecondsDemand;
  /** Seconds from the start of `demand` before which nothing is scored (warm-up). */
  scoreFromSecond: number;
}

export interface FluidResult {
  controller: string;
  scenario: string;
  /** GPU-hours over the scored span. */
  gpuHours: number;
  /** Requests in the scored span. */
  requests: number;
  withinTargetShare: number;
  peakReplicas: number;
  scaleEvents: number;
  /** Live replicas at each scored second's start, sampled every 300 s (for plots and checks). */
  replicasEvery300s: number[];
  /** Requests that missed the objective in each scored 300 s window (where the misses are). */
  missedEvery300s: number[];
}

/** Tokens per second one replica processes at the compute bound. */
export function trueReplicaCapacity(params: EngineParams): number {
  return 1000 / params.computeMsPerToken;
}

/** Share of a second's requests within `target` when the wait goes linearly from w0 to w1 across it. */
export function shareWithin(w0: number, w1: number, target: number): number {
  if (w0 <= target && w1 <= target) return 1;
  if (w0 > target && w1 > target) return 0;
  const x = (target - w0) / (w1 - w0);
  return w1 > w0 ? x : 1 - x;
}

interface Replica {
  name: string;
  readyAtS: number;
  createdS: number;
  tokensTotal: number;
  /** Requests served (fluid: the served work over the mean request), as vllm:request_success_total. */
  requestsTotal: number;
}

/** Run `controller` on `scenario`; deterministic. */
export function simulateFluid(scenario: FluidScenario, controller: Controller): FluidResult {
  const { demand, params } = scenario;
  const n = demand.requests.length;
  const capacity = trueReplicaCapacity(params);
  const loadS = controller.modelLoadSecondsOverride ?? scenario.modelLoadSeconds;
  const decodeStepS = (params.weightReadMs + params.stepOverheadMs) / 1000;
  const scrapeEvery = Math.max(1, Math.round(scenario.scrapeIntervalSeconds));
  const controlEvery = Math.max(1, Math.round(controller.intervalSeconds));
  let replicas: Replica[] = [];
  let serial = 0;
  const clamp = (x: number) => Math.min(scenario.maxReplicas, Math.max(scenario.minReplicas, Math.round(x)));
  for (let i = 0; i < controller.initialReplicas; i++)
    replicas.push({ name: `r${serial++}`, readyAtS: 0, createdS: 0, tokensTotal: 0, requestsTotal: 0 });

  let backlogTokens = 0;
  let backlogRequests = 0;
  let within = 0;
  let scoredRequests = 0;
  let gpuSeconds = 0;
  let peak = replicas.length;
  let scaleEvents = 0;
  const every300: number[] = [];
  const missed: number[] = [];
  const arrived = { requests: 0, promptTokens: 0, outputTokens: 0 };
  let lastServedRequests = 0;
  const metrics = new Map<string, MetricsSample>();

  for (let s = 0; s < n; s++) {
    const ready = replicas.filter((r) => r.readyAtS <= s);
    const c = ready.length * capacity;
    const req = demand.requests[s] as number;
    const prompt = demand.promptTokens[s] as number;
    const output = demand.outputTokens[s] as number;
    const work = prompt + output;
    arrived.requests += req;
    arrived.promptTokens += prompt;
    arrived.outputTokens += output;
    // Wait of the first and the last request of this second, then serve.
    const prefillS = req > 0 && capacity > 0 ? prompt / req / capacity : 0;
    const w0 = c > 0 ? backlogTokens / c : Infinity;
    const endBacklog = Math.max(0, backlogTokens + work - c);
    const w1 = c > 0 ? endBacklog / c : Infinity;
    if (s >= scenario.scoreFromSecond) {
      scoredRequests += req;
      const ok = req * (c > 0 ? shareWithin(w0 + prefillS, w1 + prefillS, scenario.ttftTargetSeconds) : 0);
      within += ok;
      const window = Math.floor((s - scenario.scoreFromSecond) / 300);
      missed[window] = (missed[window] ?? 0) + req - ok;
      gpuSeconds += replicas.length * scenario.gpusPerReplica;
      if ((s - scenario.scoreFromSecond) % 300 === 0) every300.push(replicas.length);
    }
    const served = Math.min(backlogTokens + work, c);
    const meanTokens = req > 0 ? work / req : backlogRequests > 0 ? backlogTokens / backlogRequests : 1;
    const servedRequests = meanTokens > 0 ? served / meanTokens : 0;
    backlogTokens = endBacklog;
    backlogRequests = Math.max(0, backlogRequests + req - servedRequests);
    if (backlogTokens <= 1e-9) backlogRequests = 0;
    for (const r of ready) {
      r.tokensTotal += served / ready.length;
      r.requestsTotal += servedRequests / ready.length;
    }
    lastServedRequests = servedRequests;

    if ((s + 1) % scrapeEvery === 0) {
      const meanOut = req > 0 ? output / req : 1;
      const meanIn = req > 0 ? prompt / req : 1;
      const share = Math.max(1, ready.length);
      // Little's law: requests in decode = served requests/s × their decode time. The backlog's
      // requests are admitted too, up to maxNumSeqs per engine (vLLM admits while the cache has
      // room, as sim/engine/model.ts does); only the rest wait. The discrete-event check showed the
      // engines' cache far from full under a backlog (the token budget per step binds first), so
      // the utilisation is what the admitted requests' tokens hold, not a synthetic "full".
      const decoding = (lastServedRequests * (meanOut * decodeStepS + prefillS)) / share;
      const perPodBacklog = backlogRequests / share;
      const perPodRunning = Math.min(params.maxNumSeqs, decoding + perPodBacklog);
      const perPodWaiting = Math.max(0, decoding + perPodBacklog - perPodRunning);
      const kv = Math.min(1, (perPodRunning * (meanIn + meanOut / 2)) / params.kvCapacityTokens);
      for (const r of ready) {
        metrics.set(r.name, {
          kvCacheUtilization: kv,
          requestsWaiting: perPodWaiting,
          requestsRunning: perPodRunning,
          promptTokensTotal: r.tokensTotal,
          generationTokensTotal: 0,
          requestsFinishedTotal: r.requestsTotal,
          scrapedAtMs: (s + 1) * 1000,
        });
      }
    }
    if ((s + 1) % controlEvery === 0) {
      const nowS = s + 1;
      const pods: PodObservation[] = replicas.map((r) => {
        const isReady = r.readyAtS <= nowS;
        const m = metrics.get(r.name);
        return {
          name: r.name,
          phase: isReady ? "ready" : "starting",
          sinceMs: (isReady ? r.readyAtS : r.createdS) * 1000,
          createdAtMs: r.createdS * 1000,
          ...(isReady && m ? { metrics: m } : {}),
        };
      });
      const desired = clamp(
        controller.decide({
          nowMs: nowS * 1000,
          currentReplicas: replicas.length,
          pods,
          inFlightRequests: backlogRequests + running(lastServedRequests, demand, s, decodeStepS),
          arrived: { ...arrived },
        }),
      );
      if (desired !== replicas.length) {
        scaleEvents++;
        if (desired > replicas.length) {
          for (let i = replicas.length; i < desired; i++)
            replicas.push({
              name: `r${serial++}`,
              readyAtS: nowS + loadS,
              createdS: nowS,
              tokensTotal: 0,
              requestsTotal: 0,
            });
        } else {
          // Starting pods go first (newest first), then ready ones.
          const starting = replicas.filter((r) => r.readyAtS > nowS).reverse();
          const readyOnes = replicas.filter((r) => r.readyAtS <= nowS);
          const keep = [...readyOnes, ...starting.reverse()].slice(0, desired);
          const kept = new Set(keep.map((r) => r.name));
          for (const r of replicas) if (!kept.has(r.name)) metrics.delete(r.name);
          replicas = replicas.filter((r) => kept.has(r.name));
        }
        peak = Math.max(peak, replicas.length);
      }
    }
  }
  return {
    controller: controller.name,
    scenario: scenario.name,
    gpuHours: gpuSeconds / 3600,
    requests: scoredRequests,
    withinTargetShare: scoredRequests > 0 ? within / scoredRequests : 1,
    peakReplicas: peak,
    scaleEvents,
    replicasEvery300s: every300,
    missedEvery300s: missed,
  };
}

function running(servedRequests: number, demand: SecondsDemand, s: number, decodeStepS: number): number {
  const req = demand.requests[s] as number;
  const meanOut = req > 0 ? (demand.outputTokens[s] as number) / req : 1;
  return servedRequests * meanOut * decodeStepS;
}

/** The fewest replicas, held constant, that keep `goalShare` over the scored span (hindsight). */
export function fluidStaticPeak(
  scenario: FluidScenario,
  goalShare: number,
  makeStatic: (n: number) => Controller,
): { replicas: number; result: FluidResult } {
  let lo = 1;
  let hi = scenario.maxReplicas;
  const cache = new Map<number, FluidResult>();
  const run = (k: number) => {
    let r = cache.get(k);
    if (!r) {
      r = simulateFluid({ ...scenario, minReplicas: k, maxReplicas: k }, makeStatic(k));
      cache.set(k, r);
    }
    return r;
  };
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (run(mid).withinTargetShare >= goalShare) hi = mid;
    else lo = mid + 1;
  }
  return { replicas: lo, result: { ...run(lo), controller: `static-peak (${lo})` } };
}

/**
 * The hindsight oracle per window: for each `windowSeconds` window the fewest replicas that keep
 * `goalShare` of that window's requests (started with an empty backlog), switched with no cold start.
 */
export function fluidOracleSchedule(
  scenario: FluidScenario,
  goalShare: number,
  windowSeconds: number,
): number[] {
  const { demand, params } = scenario;
  const capacity = trueReplicaCapacity(params);
  const windows = Math.ceil(demand.requests.length / windowSeconds);
  const schedule: number[] = [];
  const windowOk = (from: number, to: number, k: number): boolean => {
    const c = k * capacity;
    let backlog = 0;
    let within = 0;
    let total = 0;
    for (let s = from; s < to; s++) {
      const req = demand.requests[s] as number;
      const prompt = demand.promptTokens[s] as number;
      const work = prompt + (demand.outputTokens[s] as number);
      const prefillS = req > 0 ? prompt / req / capacity : 0;
      const end = Math.max(0, backlog + work - c);
      within += req * shareWithin(backlog / c + prefillS, end / c + prefillS, scenario.ttftTargetSeconds);
      total += req;
      backlog = end;
    }
    return total === 0 || within / total >= goalShare;
  };
  for (let w = 0; w < windows; w++) {
    const from = w * windowSeconds;
    const to = Math.min(demand.requests.length, from + windowSeconds);
    let lo = scenario.minReplicas;
    let hi = scenario.maxReplicas;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (windowOk(from, to, mid)) hi = mid;
      else lo = mid + 1;
    }
    schedule.push(lo);
  }
  return schedule;
}
