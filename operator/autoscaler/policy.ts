/**
 * gpufleet's autoscaling policy: a PURE function from (config, state, observation) to a decision.
 *
 * The operator calls it on every reconcile with what it scraped; the simulator (sim/eval) calls the
 * very same function on simulated observations. State is a plain JSON-serialisable object the caller
 * keeps between calls (the operator stores it in the resource status), so the function never reads a
 * clock, never logs and never mutates its inputs.
 *
 * The code follows the decision's stages, each a few small pure functions: SIGNAL
 * (./policy-signals.ts: this observation in replicas of demand) → WINDOWS (./policy-windows.ts: the
 * demand that decides over recent samples) → CLAMP (./policy-clamp.ts: tolerance, hysteresis,
 * stabilization, pods coming, step limits, bounds) → safety holds and the reason (below).
 *
 * How a decision is made
 * 1. Each ready pod with a fresh, well-formed metrics sample contributes demand in "replicas":
 *    - KV-cache: its utilisation, grown by its queue (waiting requests would need cache too:
 *      kv × (running + waiting) / running), divided by `kvCacheUtilizationTarget`;
 *    - queue: its waiting requests divided by `queueDepthTargetPerReplica`;
 *    - token throughput: the rate of its prompt + generation token counters (plus, while requests
 *      queue, the queue's growth in tokens: served + arrivals queued is the demand), divided by
 *      `tokenUtilizationTarget` × one replica's token capacity (configured, else learned from pods seen
 *      saturated). On compute-bound workloads (long prompts, short outputs) the KV cache stays at
 *      0.1–0.3 and the queue at 0 while prefill is already the bottleneck, so neither of the first two
 *      moves until a pod is overloaded; the throughput signal keeps headroom proportional to load.
 *    Desired = MAX over the signals (the scarcer resource decides).
 * 2. KV and queue demand are averaged over a stable window and over a short panic window. When the panic-window
 *    demand reaches `panicThreshold` × ready pods, the policy "panics" for one stable window: it
 *    follows the larger of the two and never scales down (Knative KPA's scheme). Token demand takes a
 *    high quantile (`tokenDemandQuantile`, default the peak) over the stable window instead of the
 *    mean: request arrivals are bursty (the Azure code trace sends ~60 requests in one second), a
 *    burst is served by the pods already up (a cold start takes minutes), so the fleet is sized for
 *    the recent bursts, not for the average between them.
 * 3. A tolerance band around the current replica count suppresses small moves.
 * 4. Pods still starting already count in the current replicas, so while a model loads (minutes)
 *    the policy does not pile on more pods unless the burst window shows demand beyond
 *    panicThreshold × maxScaleUpRate × everything requested; and it does not scale down while pods
 *    are starting.
 * 3b. Scale-down has hysteresis: the remaining pods must land at `scaleDownUtilizationFactor` of the
 *    KV and queue targets, because engines degrade abruptly near saturation. The token signal has its
 *    headroom built in (target utilisation of the peak), so it needs no second margin.
 * 4b. The token signal is a rate, not a backlog: pods still starting are already counted against it,
 *    so when it alone asks for more than everything requested, more pods are added right away.
 * 5. Scale-up may be smoothed (lowest recommendation over `scaleUpStabilizationSeconds`); scale-down
 *    uses the highest recommendation over `scaleDownStabilizationSeconds` (Kubernetes HPA semantics).
 * 6. Steps are bounded (up: max(rate × current, current + step) per decision; down: the larger of
 *    `maxScaleDownStep` and `maxScaleDownFraction` of the fleet per `scaleDownPeriodSeconds`), then
 *    clamped to [minReplicas, maxReplicas].
 * 6b. A backlog that drains (the fleet's queue shorter than at the last observation, and at least
 *    one replica's queue target long) asks only for what would still wait when a replica ordered now
 *    is ready (queue − drain rate × time to ready), and the token rate measured meanwhile (the fleet
 *    working the backlog off at capacity, not the demand) asks for no more than the replicas
 *    requested (./policy-signals.ts `drainingBacklog`).
 * 7. Missing, stale or malformed metrics never cause a scale-down: the decision holds (it may still
 *    scale up on what the healthy pods show), and the reason says which pods lack data.
 */
import {
  boundsOf,
  clampTo,
  keepRecommendations,
  limitSteps,
  recommend,
  stabilize,
  waitForStarting,
} from "./policy-clamp.js";
import {
  DISPERSION_WINDOW_SECONDS,
  forecastDemand,
  type ForecastDemand,
  learnFromPods,
  recordHistory,
  recordRate,
  tokenHeadroom,
} from "./policy-learning.js";
import {
  arrivalTokenRate,
  drainingBacklog,
  kvAndQueueDemand,
  readTokenRates,
  sortPods,
  tokenDemand,
} from "./policy-signals.js";
import {
  POLICY_TUNING_DEFAULTS,
  type AutoscalingConfig,
  type Observation,
  type PolicyState,
  type PolicyTuning,
  type ScaleDecision,
  type ScaleSignals,
} from "./policy-types.js";
import { keepSamples, windowDemand, type DemandSignal } from "./policy-windows.js";

export * from "./policy-types.js";

const fmt2 = (x: number): string => x.toFixed(2);
const fmt1 = (x: number): string => x.toFixed(1);
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;

/**
 * Decide the replica count: SIGNAL (./policy-signals.ts) → DEMAND over WINDOWS (./policy-windows.ts)
 * → CLAMP (./policy-clamp.ts) → safety holds and the reason (here). Pure: same inputs, same output;
 * inputs are not mutated.
 */
export function decideScale(
  config: AutoscalingConfig,
  state: PolicyState,
  observation: Observation,
): ScaleDecision {
  const tuning: PolicyTuning = { ...POLICY_TUNING_DEFAULTS, ...definedOnly(config) };
  const { nowMs, currentReplicas } = observation;
  const bounds = boundsOf(config);

  // 1. Signal: this observation's demand, in replicas.
  const pods = sortPods(observation, tuning.metricStalenessSeconds * 1000);
  const kvQueueNow = kvAndQueueDemand(pods, observation.heldRequests, config, tuning);
  const rates = readTokenRates(pods, state.podTokenCounters ?? {});

  // 1b. Learn: capacity and readiness into the history; headroom from the measured burstiness.
  const learned = learnFromPods(
    state,
    observation.pods,
    rates.saturatedRates,
    rates.sustainedRates,
    rates.otherRates,
    config,
  );
  const capacity = learned.capacity;
  // The fleet's token demand: the served rate (silent ready pods as loaded as the measured ones),
  // corrected by how the requests in the fleet moved while a queue is at its target on every ready
  // pod (./policy-signals.ts `arrivalTokenRate`).
  const fleetRate = arrivalTokenRate(
    rates.measuredTokensPerSecond === null ? null : rates.measuredTokensPerSecond * pods.scaleToReady,
    state.samples,
    {
      waiting: kvQueueNow.requestsWaiting,
      inFlight: kvQueueNow.requestsWaiting + kvQueueNow.requestsRunning,
    },
    rates.tokensPerRequest,
    config.queueDepthTargetPerReplica * Math.max(1, pods.ready.length),
    nowMs,
  );
  const previousSeries = state.rateSeries ?? [];
  const sampleIsNew = previousSeries.length === 0 || (previousSeries.at(-1)?.atMs ?? 0) < nowMs;
  const rateSeries = recordRate(
    previousSeries,
    sampleIsNew ? fleetRate : null,
    nowMs,
    DISPERSION_WINDOW_SECONDS,
  );
  const headroom = tokenHeadroom(config, tuning, rateSeries, learned.history, nowMs);
  const history = recordHistory(learned.history, sampleIsNew ? fleetRate : null, headroom.dispersion, nowMs);
  const tokens = tokenDemand(fleetRate, 1, capacity, headroom.target, pods.meanWeight.throughput);
  const forecast =
    config.forecast === true
      ? forecastDemand(
          history,
          state.forecastCache,
          headroom.horizonSeconds,
          capacity,
          headroom.burstTarget,
          nowMs,
        )
      : null;

  // 1c. A draining backlog: what it still asks for when a replica ordered now would be ready.
  const drain = drainingBacklog(
    state.samples,
    kvQueueNow.requestsWaiting,
    kvQueueNow.queueDemandReplicas,
    tokens.tokenDemandReplicas,
    currentReplicas,
    headroom.horizonSeconds,
    nowMs,
  );

  // 2. Windows: the demand that decides, over recent samples (only observations with data count).
  const samples = keepSamples(
    state.samples,
    pods.usable.length > 0
      ? {
          atMs: nowMs,
          kvDemandReplicas: kvQueueNow.kvDemandReplicas,
          queueDemandReplicas: drain.queueDemandReplicas,
          ...(drain.tokenDemandReplicas === null ? {} : { tokenDemandReplicas: drain.tokenDemandReplicas }),
          waiting: kvQueueNow.requestsWaiting,
          inFlight: kvQueueNow.requestsWaiting + kvQueueNow.requestsRunning,
        }
      : null,
    nowMs,
    tuning,
  );
  const windowed = windowDemand(
    samples,
    state.panicUntilMs,
    pods.ready.length,
    nowMs,
    tuning,
    headroom.derived ? "mean" : "quantile",
    forecast?.replicas ?? null,
    headroom.target / tuning.maxTokenUtilizationTarget,
  );

  const signals: ScaleSignals = {
    readyPods: pods.ready.length,
    startingPods: pods.starting.length,
    podsWithMetrics: pods.usable.length,
    kvCacheUtilization: kvQueueNow.kvCacheUtilization,
    requestsWaiting: kvQueueNow.requestsWaiting,
    requestsRunning: kvQueueNow.requestsRunning,
    kvDemandReplicas: kvQueueNow.kvDemandReplicas,
    queueDemandReplicas: kvQueueNow.queueDemandReplicas,
    tokensPerSecond: tokens.tokensPerSecond,
    replicaTokenCapacityPerSecond: capacity,
    tokenDemandReplicas: tokens.tokenDemandReplicas,
    tokenPeakDemandReplicas: windowed.tokenPeakDemandReplicas,
    stableDemandReplicas: windowed.stable.demand,
    panicDemandReplicas: windowed.panic.demand,
    panicking: windowed.panicking,
    tokenUtilizationTarget: capacity === null ? null : headroom.target,
    tokenDispersion: headroom.dispersion,
    horizonSeconds: headroom.horizonSeconds,
    forecastDemandReplicas: forecast?.replicas ?? null,
  };
  const observingSinceMs = state.observingSinceMs ?? nowMs;
  const finish = (desired: number, reason: string, recommendation: number | null): ScaleDecision => ({
    desiredReplicas: desired,
    reason,
    signals,
    state: {
      samples,
      recommendations: keepRecommendations(state.recommendations, recommendation, nowMs, config),
      panicUntilMs: windowed.panicUntilMs,
      lastScaleUpAtMs: desired > currentReplicas ? nowMs : state.lastScaleUpAtMs,
      lastScaleDownAtMs: desired < currentReplicas ? nowMs : state.lastScaleDownAtMs,
      observingSinceMs,
      podTokenCounters: rates.podTokenCounters,
      learnedTokenCapacityPerSecond: capacity,
      rateSeries,
      history,
      timedPods: learned.timedPods,
      ...(forecast ? { forecastCache: forecast.cache } : {}),
    },
  });

  // Nothing to measure: hold (bounds still apply; they are configuration, not metrics).
  if (pods.usable.length === 0) {
    const held = clampTo(bounds, currentReplicas);
    const why =
      pods.ready.length === 0
        ? pods.starting.length > 0
          ? `waiting for ${plural(pods.starting.length, "starting pod")}`
          : "no pods yet"
        : `no usable metrics (${pods.problems.join("; ")})`;
    const bound =
      held !== currentReplicas ? `; bounds [${bounds.minReplicas}, ${bounds.maxReplicas}] → ${held}` : "";
    return finish(held, `holding at ${currentReplicas}: ${why}${bound}`, null);
  }

  // 3. Clamp: recommendation, stabilization, pods coming, step limits.
  const { driving } = windowed;
  const { recommended, cappedAtMax } = recommend(
    {
      current: currentReplicas,
      demand: driving.demand,
      kvQueueDemand: windowed.kvQueue.demand,
      tokenPeakDemand: windowed.tokenPeakDemandReplicas,
      panicking: windowed.panicking,
    },
    bounds,
    tuning,
  );
  const stabilized = stabilize(
    recommended,
    currentReplicas,
    state.recommendations,
    observingSinceMs,
    nowMs,
    config,
  );
  const rateAsks = Math.max(windowed.tokenPeakDemandReplicas ?? 0, forecast?.replicas ?? 0);
  const coming = waitForStarting(
    stabilized,
    currentReplicas,
    pods.starting.length,
    windowed.panic.demand,
    rateAsks > 0 ? rateAsks : null,
    tuning,
  );
  const stepped = limitSteps(coming.desired, currentReplicas, state.lastScaleDownAtMs, nowMs, tuning);

  // Safety holds for scale-down.
  const signalText = describeSignal(
    driving.signal,
    config,
    signals,
    pods.ready.length,
    tuning,
    headroom.derived,
    forecast,
  );
  const keep = clampTo(bounds, currentReplicas);
  if (stepped.desired < currentReplicas && pods.problems.length > 0)
    return finish(
      keep,
      `holding at ${currentReplicas} (would scale down to ${stepped.desired}): metrics missing or stale for ${pods.problems.join("; ")}`,
      recommended,
    );
  if (stepped.desired < currentReplicas && pods.starting.length > 0)
    return finish(
      keep,
      `holding at ${currentReplicas} (would scale down to ${stepped.desired}): ${plural(pods.starting.length, "pod")} still starting`,
      recommended,
    );
  const desired = clampTo(bounds, stepped.desired);
  const reason = explain({
    current: currentReplicas,
    desired,
    recommended,
    demand: driving.demand,
    signalText,
    readyPods: pods.ready.length,
    startingPods: pods.starting.length,
    silentPods: pods.problems.length,
    cappedAtMax,
    waitingForStarting: coming.waiting,
    downRateLimited: stepped.downRateLimited,
    panicking: windowed.panicking,
    maxReplicas: bounds.maxReplicas,
    config,
    tuning,
  });
  return finish(desired, reason, recommended);
}

interface ExplainInput {
  current: number;
  desired: number;
  recommended: number;
  demand: number;
  signalText: string;
  readyPods: number;
  startingPods: number;
  silentPods: number;
  cappedAtMax: boolean;
  waitingForStarting: boolean;
  downRateLimited: boolean;
  panicking: boolean;
  maxReplicas: number;
  config: AutoscalingConfig;
  tuning: PolicyTuning;
}

/** The status reason: what moved (or held) the count, in words. */
function explain(x: ExplainInput): string {
  const { current, desired, signalText, config, tuning } = x;
  const panicText = x.panicking ? " [panic: burst in the last " + tuning.panicWindowSeconds + "s]" : "";
  const startingText = x.startingPods > 0 ? `, ${x.startingPods} starting` : "";
  const silentText = x.silentPods > 0 ? `; no data from ${x.silentPods} pod(s)` : "";
  const readyText = plural(x.readyPods, "ready pod");
  const atMax = x.cappedAtMax && desired >= x.maxReplicas;
  if (desired > current) {
    const capText = atMax ? ` (maxReplicas; demand ${fmt1(x.demand)})` : "";
    return `${signalText} across ${readyText}${startingText} → ${desired}${capText}${panicText}${silentText}`;
  }
  if (desired < current)
    return `${signalText} across ${readyText} → ${desired} (down at most ${Math.max(tuning.maxScaleDownStep, Math.floor(current * tuning.maxScaleDownFraction))}, highest recommendation in ${config.scaleDownStabilizationSeconds}s)`;
  if (x.waitingForStarting)
    return `holding at ${current}: ${signalText}, but ${plural(x.startingPods, "pod")} still starting`;
  if (atMax)
    return `at maxReplicas ${x.maxReplicas}: ${signalText}, demand ${fmt1(x.demand)} replicas; raise spec.autoscaling.maxReplicas to serve it`;
  if (x.downRateLimited)
    return `holding at ${current}: ${signalText}, last scale-down under ${tuning.scaleDownPeriodSeconds}s ago`;
  if (x.recommended > current)
    return `holding at ${current}: ${signalText}, scale-up stabilizing (${config.scaleUpStabilizationSeconds}s)`;
  if (x.recommended < current)
    return `holding at ${current}: ${signalText}, scale-down stabilizing (${config.scaleDownStabilizationSeconds}s window keeps ${desired})`;
  const coming = x.startingPods > 0 ? ` (${x.startingPods} of them still starting)` : "";
  return `steady at ${current}${coming}: ${signalText}, demand ${fmt1(x.demand)} replicas within ±${Math.round(tuning.tolerance * 100)}%${panicText}`;
}

function describeSignal(
  signal: DemandSignal,
  config: AutoscalingConfig,
  s: ScaleSignals,
  readyPods: number,
  tuning: PolicyTuning,
  derived: boolean,
  forecast: ForecastDemand | null,
): string {
  if (signal === "forecast") {
    const f = forecast?.forecast;
    const method = f ? `${f.method}, ×${fmt2(f.upperGrowth)} at the upper quantile` : "forecast";
    return `forecast demand ${fmt1(s.forecastDemandReplicas ?? 0)} replicas in ${Math.round(s.horizonSeconds)}s (${method}; measured now ${fmt1(s.tokenPeakDemandReplicas ?? 0)})`;
  }
  if (signal === "tokens") {
    const rate = Math.round(s.tokensPerSecond ?? 0);
    const capacity = Math.round(s.replicaTokenCapacityPerSecond ?? 0);
    const target = Math.round((s.tokenUtilizationTarget ?? tuning.tokenUtilizationTarget) * 100);
    if (derived)
      return `token throughput ${rate}/s (${fmt1(s.tokenPeakDemandReplicas ?? 0)} replicas: the ${tuning.tokenWindowSeconds}s mean, or now at ${Math.round(tuning.maxTokenUtilizationTarget * 100)}% if more; at ${target}% of ${capacity}/s each; headroom from bursts of dispersion ${Math.round(s.tokenDispersion ?? 0)} tokens and ${Math.round(s.horizonSeconds)}s to ready)`;
    const peak =
      tuning.tokenDemandQuantile >= 1 ? "peak" : `p${Math.round(tuning.tokenDemandQuantile * 100)}`;
    return `token throughput ${rate}/s (${peak} ${fmt1(s.tokenPeakDemandReplicas ?? 0)} replicas at ${target}% of ${capacity}/s each over ${tuning.tokenWindowSeconds}s)`;
  }
  if (signal === "queue") {
    const perReplica = readyPods > 0 ? s.requestsWaiting / readyPods : s.requestsWaiting;
    const cmp = perReplica > config.queueDepthTargetPerReplica ? ">" : "≤";
    return `queue ${fmt1(perReplica)} waiting/pod ${cmp} target ${config.queueDepthTargetPerReplica}`;
  }
  const kv = s.kvCacheUtilization ?? 0;
  const cmp = kv > config.kvCacheUtilizationTarget ? ">" : "≤";
  const queued = s.requestsWaiting > 0 ? ` (+${s.requestsWaiting} queued)` : "";
  return `kv-cache ${fmt2(kv)}${queued} ${cmp} target ${fmt2(config.kvCacheUtilizationTarget)}`;
}

function definedOnly(config: AutoscalingConfig): Partial<PolicyTuning> {
  const out: Partial<PolicyTuning> = {};
  for (const key of Object.keys(POLICY_TUNING_DEFAULTS) as Array<keyof PolicyTuning>) {
    const value = config[key];
    if (typeof value === "number" && Number.isFinite(value)) out[key] = value;
  }
  return out;
}
