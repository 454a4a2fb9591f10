/**
 * gpufleet's autoscaling policy: a PURE function from (config, state, observation) to a decision.
 *
 * The operator calls it on every reconcile with what it scraped; the simulator (sim/eval) calls the
 * very same function on simulated observations. State is a plain JSON-serialisable object the caller
 * keeps between calls (the operator stores it in the resource status), so the function never reads a
 * clock, never logs and never mutates its inputs.
 *
 * How a decision is made
 * 1. Each ready pod with a fresh, well-formed metrics sample contributes demand in "replicas":
 *    - KV-cache: its utilisation, grown by its queue (waiting requests would need cache too:
 *      kv × (running + waiting) / running), divided by `kvCacheUtilizationTarget`;
 *    - queue: its waiting requests divided by `queueDepthTargetPerReplica`;
 *    - token throughput: the rate of its prompt + generation token counters, divided by
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
 * 6. Steps are bounded (up: max(rate × current, current + step) per decision; down:
 *    `maxScaleDownStep` per `scaleDownPeriodSeconds`), then clamped to [minReplicas, maxReplicas].
 * 7. Missing, stale or malformed metrics never cause a scale-down: the decision holds (it may still
 *    scale up on what the healthy pods show), and the reason says which pods lack data.
 */
import { DEFAULT_TOKEN_UTILIZATION_TARGET } from "./ttft-objective.js";

/** Autoscaling settings. The first six mirror the CRD's `spec.autoscaling`; the rest are tuning. */
export interface AutoscalingConfig {
  minReplicas: number;
  maxReplicas: number;
  /** Target KV-cache utilisation per replica, (0..1]. */
  kvCacheUtilizationTarget: number;
  /** Target number of waiting requests per replica. */
  queueDepthTargetPerReplica: number;
  scaleUpStabilizationSeconds: number;
  scaleDownStabilizationSeconds: number;
  /** Averaging window for normal decisions. */
  stableWindowSeconds?: number;
  /** Short window that detects bursts. */
  panicWindowSeconds?: number;
  /** Panic when panic-window demand ≥ this × ready pods. */
  panicThreshold?: number;
  /** Relative band around the current replicas in which nothing changes (0.1 = ±10%). */
  tolerance?: number;
  /** Scale up at most to this multiple of the current replicas per decision … */
  maxScaleUpRate?: number;
  /** … or by this many replicas, whichever allows more. */
  maxScaleUpStep?: number;
  /** Remove at most this many replicas per `scaleDownPeriodSeconds`. */
  maxScaleDownStep?: number;
  /** Period of the scale-down step limit (time-based, so it does not depend on the reconcile rate). */
  scaleDownPeriodSeconds?: number;
  /**
   * Cap on what a queue can ask for: one pod's KV demand grows at most by this factor
   * (kv × (running+waiting)/running), and the queue signal asks for at most this × ready pods.
   */
  maxQueueInflation?: number;
  /**
   * Hysteresis: a scale-down must leave the remaining pods at or below this fraction of the targets
   * (KV-cache and queue). LLM engines fall off a cliff near saturation (prefill backlog fills the
   * cache and the queue within seconds), so removing a pod on a linear projection to exactly the
   * target is not safe.
   */
  scaleDownUtilizationFactor?: number;
  /** A metrics sample older than this is stale. */
  metricStalenessSeconds?: number;
  /**
   * Token throughput a replica is sized to carry, as a fraction of its capacity, applied to the
   * burst quantile of demand. 0.5 leaves a replica able to absorb a burst twice the recent peak rate.
   */
  tokenUtilizationTarget?: number;
  /** Quantile of per-decision token demand over `tokenWindowSeconds` that sizes the fleet (1 = peak). */
  tokenDemandQuantile?: number;
  /** How far back the token signal remembers bursts (the fleet is sized for the bursts seen in it). */
  tokenWindowSeconds?: number;
  /**
   * Prompt + generation tokens per second one replica sustains at saturation. Not a tuning default:
   * it depends on model and GPU (the operator estimates it from the sizing plan). When absent, the
   * policy learns it from pods observed saturated (with a queue); until then the signal is off.
   */
  replicaTokenCapacityPerSecond?: number;
}

export type PolicyTuning = Required<
  Pick<
    AutoscalingConfig,
    | "stableWindowSeconds"
    | "panicWindowSeconds"
    | "panicThreshold"
    | "tolerance"
    | "maxScaleUpRate"
    | "maxScaleUpStep"
    | "maxScaleDownStep"
    | "scaleDownPeriodSeconds"
    | "maxQueueInflation"
    | "scaleDownUtilizationFactor"
    | "metricStalenessSeconds"
    | "tokenUtilizationTarget"
    | "tokenDemandQuantile"
    | "tokenWindowSeconds"
  >
>;

/**
 * Defaults of the tuning knobs, the same for the operator and the simulator. Tuned on the trace
 * evaluation (sim/eval/run.ts, curves in sim/eval/sweep.ts). The token target depends on the TTFT
 * objective (./ttft-objective.ts: 0.47 for the 2 s goal on the bursty Azure code trace, 0.69 for 5 s
 * on Mooncake); without an objective it is the one for 2 s. A peak, not a lower quantile:
 * p95 over 300 s drops Azure to 95%.
 */
export const POLICY_TUNING_DEFAULTS: PolicyTuning = {
  stableWindowSeconds: 60,
  panicWindowSeconds: 15,
  panicThreshold: 1.5,
  tolerance: 0.1,
  maxScaleUpRate: 2,
  maxScaleUpStep: 4,
  maxScaleDownStep: 1,
  scaleDownPeriodSeconds: 60,
  maxQueueInflation: 2,
  scaleDownUtilizationFactor: 0.3,
  metricStalenessSeconds: 45,
  tokenUtilizationTarget: DEFAULT_TOKEN_UTILIZATION_TARGET,
  tokenDemandQuantile: 1,
  tokenWindowSeconds: 60,
};

/** Shorter counter intervals are not turned into a rate (a retry seconds after a scrape is noise). */
const MIN_RATE_INTERVAL_MS = 5_000;

/** Defaults of the CRD-mirrored fields: the values crds/gpufleet.io_modeldeployments.yaml sets. */
export const AUTOSCALING_DEFAULTS: Omit<AutoscalingConfig, keyof PolicyTuning> = {
  minReplicas: 1,
  maxReplicas: 4,
  kvCacheUtilizationTarget: 0.8,
  queueDepthTargetPerReplica: 4,
  scaleUpStabilizationSeconds: 0,
  scaleDownStabilizationSeconds: 300,
};

export interface MetricsSample {
  /** vLLM `vllm:kv_cache_usage_perc` (older: `gpu_cache_usage_perc`), 0..1. */
  kvCacheUtilization: number;
  /** vLLM `vllm:num_requests_waiting`. */
  requestsWaiting: number;
  /** vLLM `vllm:num_requests_running`. */
  requestsRunning: number;
  /** vLLM `vllm:prompt_tokens_total` (counter); optional: engines without it get no throughput signal. */
  promptTokensTotal?: number;
  /** vLLM `vllm:generation_tokens_total` (counter). */
  generationTokensTotal?: number;
  scrapedAtMs: number;
}

export interface PodObservation {
  name: string;
  /** `ready`: serving; `starting`: scheduled or loading the model. */
  phase: "ready" | "starting";
  /** When the pod entered its phase. */
  sinceMs: number;
  /** Last successful scrape, if any. */
  metrics?: MetricsSample;
  /** Why the last scrape failed, if it did. */
  metricsError?: string;
}

export interface Observation {
  nowMs: number;
  /** Replicas in the spec now (ready + starting, as the workload sees them). */
  currentReplicas: number;
  pods: PodObservation[];
  /** Requests held at the gateway for want of a free pod: waiting demand like an engine's queue. */
  heldRequests?: number;
}

interface DemandSample {
  atMs: number;
  kvDemandReplicas: number;
  queueDemandReplicas: number;
  /** Absent when no pod had a token rate (or no capacity was known) at that time. */
  tokenDemandReplicas?: number;
}

/** Last counter reading per pod, to turn cumulative token counters into a rate. */
interface PodTokenCounter {
  atMs: number;
  tokensTotal: number;
  /** Rate measured between the previous reading and this one (null: first reading). */
  tokensPerSecond: number | null;
}

interface Recommendation {
  atMs: number;
  replicas: number;
}

/** Serializable policy state, passed in and out of `decideScale`. */
export interface PolicyState {
  samples: DemandSample[];
  recommendations: Recommendation[];
  /** Panic lasts until this time (null: not panicking). */
  panicUntilMs: number | null;
  lastScaleUpAtMs: number | null;
  lastScaleDownAtMs: number | null;
  /** First observation this state has seen; scale-down waits until a full window of history. */
  observingSinceMs: number | null;
  /** Token counters per pod name (optional: states saved before the throughput signal lack it). */
  podTokenCounters?: Record<string, PodTokenCounter>;
  /** Highest per-pod token rate seen while that pod had a queue: a learned replica capacity. */
  learnedTokenCapacityPerSecond?: number | null;
}

export function initialPolicyState(): PolicyState {
  return {
    samples: [],
    recommendations: [],
    panicUntilMs: null,
    lastScaleUpAtMs: null,
    lastScaleDownAtMs: null,
    observingSinceMs: null,
    podTokenCounters: {},
    learnedTokenCapacityPerSecond: null,
  };
}

export interface ScaleSignals {
  readyPods: number;
  startingPods: number;
  /** Ready pods whose metrics were usable this time. */
  podsWithMetrics: number;
  /** Mean KV-cache utilisation over pods with metrics (null when none). */
  kvCacheUtilization: number | null;
  requestsWaiting: number;
  requestsRunning: number;
  kvDemandReplicas: number;
  queueDemandReplicas: number;
  /** Prompt + generation tokens per second over the ready pods with a measured rate (null: none). */
  tokensPerSecond: number | null;
  /** Replica capacity used by the token signal, configured or learned (null: signal off). */
  replicaTokenCapacityPerSecond: number | null;
  /** This observation's token demand in replicas (null: signal off). */
  tokenDemandReplicas: number | null;
  /** The burst quantile of token demand over the stable window (null: signal off). */
  tokenPeakDemandReplicas: number | null;
  stableDemandReplicas: number;
  panicDemandReplicas: number;
  panicking: boolean;
}

export interface ScaleDecision {
  desiredReplicas: number;
  /** A sentence a person understands, e.g. "kv-cache 0.93 > target 0.80 across 3 ready pods → 4". */
  reason: string;
  state: PolicyState;
  signals: ScaleSignals;
}

type UsablePod = PodObservation & { metrics: MetricsSample };

function problemWithMetrics(pod: PodObservation, nowMs: number, stalenessMs: number): string | null {
  const m = pod.metrics;
  if (m === undefined) return pod.metricsError ? `scrape failed: ${pod.metricsError}` : "no metrics yet";
  const finite = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
  if (!finite(m.kvCacheUtilization) || m.kvCacheUtilization < 0 || m.kvCacheUtilization > 1.0001)
    return "malformed kv-cache utilization";
  if (!finite(m.requestsWaiting) || m.requestsWaiting < 0) return "malformed waiting count";
  if (!finite(m.requestsRunning) || m.requestsRunning < 0) return "malformed running count";
  if (!finite(m.scrapedAtMs)) return "malformed scrape time";
  const age = nowMs - m.scrapedAtMs;
  if (age > stalenessMs) return `metrics ${Math.round(age / 1000)}s old`;
  if (pod.metricsError) return `last scrape failed: ${pod.metricsError}`;
  return null;
}

/** KV demand of one pod in "pods at 100% KV", counting the cache its queued requests would need. */
function podKvDemand(m: MetricsSample, maxInflation: number): number {
  if (m.requestsWaiting <= 0) return m.kvCacheUtilization;
  if (m.requestsRunning <= 0) return Math.max(1, m.kvCacheUtilization);
  // A queue is a backlog, not a rate: it says "more than this pod holds", bounded so a burst that
  // drains in seconds does not order pods that would arrive minutes later.
  const inflation = Math.min(maxInflation, (m.requestsRunning + m.requestsWaiting) / m.requestsRunning);
  return m.kvCacheUtilization * inflation;
}

/** Prompt + generation token counter of a sample, or null when it carries no usable counter. */
function tokenCounterTotal(m: MetricsSample): number | null {
  const counters = [m.promptTokensTotal, m.generationTokensTotal].filter((x) => x !== undefined);
  if (counters.length === 0) return null;
  if (!counters.every((x) => typeof x === "number" && Number.isFinite(x) && x >= 0)) return null;
  return counters.reduce((a, b) => a + b, 0);
}

/** The q-quantile (0..1, nearest rank) of values; values must be non-empty. */
function quantileOf(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index] as number;
}

function mean(values: number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}

const fmt2 = (x: number): string => x.toFixed(2);
const fmt1 = (x: number): string => x.toFixed(1);
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;

/** Decide the replica count. Pure: same inputs, same output; inputs are not mutated. */
export function decideScale(
  config: AutoscalingConfig,
  state: PolicyState,
  observation: Observation,
): ScaleDecision {
  const tuning: PolicyTuning = { ...POLICY_TUNING_DEFAULTS, ...definedOnly(config) };
  const { nowMs, currentReplicas } = observation;
  const minReplicas = Math.max(0, Math.floor(config.minReplicas));
  const maxReplicas = Math.max(minReplicas, Math.floor(config.maxReplicas));
  const clamp = (n: number): number => Math.min(maxReplicas, Math.max(minReplicas, n));

  const ready = observation.pods.filter((p) => p.phase === "ready");
  const starting = observation.pods.filter((p) => p.phase === "starting");
  const problems: string[] = [];
  const usable: UsablePod[] = [];
  for (const pod of ready) {
    const problem = problemWithMetrics(pod, nowMs, tuning.metricStalenessSeconds * 1000);
    if (problem === null) usable.push(pod as UsablePod);
    else problems.push(`${pod.name}: ${problem}`);
  }

  // Demand from pods with data, scaled up to all ready pods (assume the silent ones are as loaded);
  // used only to scale UP when some pods are silent.
  const scaleToReady = usable.length > 0 ? ready.length / usable.length : 0;
  const kvDemandReplicas =
    (usable.reduce((s, p) => s + podKvDemand(p.metrics, tuning.maxQueueInflation), 0) * scaleToReady) /
    config.kvCacheUtilizationTarget;
  const held = Number.isFinite(observation.heldRequests) ? Math.max(0, observation.heldRequests ?? 0) : 0;
  const podsWaiting = usable.reduce((s, p) => s + p.metrics.requestsWaiting, 0);
  const requestsWaiting = podsWaiting + held;
  const requestsRunning = usable.reduce((s, p) => s + p.metrics.requestsRunning, 0);
  // Waiting requests are a backlog pinned to the pods that hold them (engines do not migrate
  // requests), so a queue asks for at most maxQueueInflation × the ready pods per decision; a queue
  // that persists keeps asking as the fleet grows.
  const queueDemandReplicas = Math.min(
    (podsWaiting * scaleToReady + held) / config.queueDepthTargetPerReplica,
    tuning.maxQueueInflation * ready.length,
  );
  const kvCacheUtilization = usable.length > 0 ? mean(usable.map((p) => p.metrics.kvCacheUtilization)) : null;

  // Token throughput per pod from its cumulative counters: a rate needs two readings of the same pod
  // at least MIN_RATE_INTERVAL_MS apart; a counter that went down means the engine restarted.
  const previousCounters = state.podTokenCounters ?? {};
  const podTokenCounters: Record<string, PodTokenCounter> = {};
  let learnedTokenCapacityPerSecond = state.learnedTokenCapacityPerSecond ?? null;
  let measuredTokensPerSecond: number | null = null;
  for (const pod of ready) {
    const previous = previousCounters[pod.name];
    const total = usable.includes(pod as UsablePod) ? tokenCounterTotal((pod as UsablePod).metrics) : null;
    if (total === null) {
      if (previous !== undefined) podTokenCounters[pod.name] = previous; // keep the baseline across a gap
      continue;
    }
    const m = (pod as UsablePod).metrics;
    let reading: PodTokenCounter;
    if (previous === undefined || total < previous.tokensTotal || m.scrapedAtMs < previous.atMs) {
      reading = { atMs: m.scrapedAtMs, tokensTotal: total, tokensPerSecond: null };
    } else if (m.scrapedAtMs - previous.atMs >= MIN_RATE_INTERVAL_MS) {
      const rate = ((total - previous.tokensTotal) * 1000) / (m.scrapedAtMs - previous.atMs);
      reading = { atMs: m.scrapedAtMs, tokensTotal: total, tokensPerSecond: rate };
      // A pod with a queue is saturated: what it processed is what it can process.
      if (m.requestsWaiting > 0)
        learnedTokenCapacityPerSecond = Math.max(learnedTokenCapacityPerSecond ?? 0, rate);
    } else {
      reading = previous;
    }
    podTokenCounters[pod.name] = reading;
    if (reading.tokensPerSecond !== null)
      measuredTokensPerSecond = (measuredTokensPerSecond ?? 0) + reading.tokensPerSecond;
  }
  const configuredCapacity = config.replicaTokenCapacityPerSecond;
  const replicaTokenCapacityPerSecond =
    configuredCapacity !== undefined && Number.isFinite(configuredCapacity) && configuredCapacity > 0
      ? configuredCapacity
      : learnedTokenCapacityPerSecond !== null && learnedTokenCapacityPerSecond > 0
        ? learnedTokenCapacityPerSecond
        : null;
  // Silent ready pods are assumed as busy as the measured ones (as for KV); pods too new to have a
  // rate yet are not extrapolated, so a batch of fresh pods does not multiply the old pods' rate.
  const tokensPerSecond = measuredTokensPerSecond === null ? null : measuredTokensPerSecond * scaleToReady;
  const tokenDemandReplicas =
    tokensPerSecond !== null && replicaTokenCapacityPerSecond !== null
      ? tokensPerSecond / (replicaTokenCapacityPerSecond * tuning.tokenUtilizationTarget)
      : null;

  // Windows of demand samples (only observations with data are recorded).
  const keepFromMs = nowMs - Math.max(tuning.stableWindowSeconds, tuning.tokenWindowSeconds) * 1000;
  const samples = state.samples.filter((s) => s.atMs > keepFromMs && s.atMs <= nowMs);
  if (usable.length > 0)
    samples.push({
      atMs: nowMs,
      kvDemandReplicas,
      queueDemandReplicas,
      ...(tokenDemandReplicas === null ? {} : { tokenDemandReplicas }),
    });
  const panicFromMs = nowMs - tuning.panicWindowSeconds * 1000;
  const panicSamples = samples.filter((s) => s.atMs > panicFromMs);
  const windowDemand = (window: DemandSample[]): { demand: number; signal: "kv" | "queue" } => {
    const kv = mean(window.map((s) => s.kvDemandReplicas));
    const queue = mean(window.map((s) => s.queueDemandReplicas));
    return queue > kv ? { demand: queue, signal: "queue" } : { demand: kv, signal: "kv" };
  };
  const stableFromMs = nowMs - tuning.stableWindowSeconds * 1000;
  const stable = windowDemand(samples.filter((s) => s.atMs > stableFromMs));
  const panic = windowDemand(panicSamples);
  const tokenFromMs = nowMs - tuning.tokenWindowSeconds * 1000;
  const tokenWindow = samples.flatMap((s) =>
    s.atMs > tokenFromMs && s.tokenDemandReplicas !== undefined ? [s.tokenDemandReplicas] : [],
  );
  const tokenPeakDemandReplicas =
    tokenWindow.length > 0 ? quantileOf(tokenWindow, tuning.tokenDemandQuantile) : null;

  let panicUntilMs = state.panicUntilMs !== null && state.panicUntilMs > nowMs ? state.panicUntilMs : null;
  if (ready.length > 0 && panicSamples.length > 0 && panic.demand >= tuning.panicThreshold * ready.length) {
    panicUntilMs = nowMs + tuning.stableWindowSeconds * 1000;
  }
  const panicking = panicUntilMs !== null;
  const kvQueue = panicking && panic.demand > stable.demand ? panic : stable;
  const driving: { demand: number; signal: DemandSignal } =
    tokenPeakDemandReplicas !== null && tokenPeakDemandReplicas > kvQueue.demand
      ? { demand: tokenPeakDemandReplicas, signal: "tokens" }
      : kvQueue;

  const signals: ScaleSignals = {
    readyPods: ready.length,
    startingPods: starting.length,
    podsWithMetrics: usable.length,
    kvCacheUtilization,
    requestsWaiting,
    requestsRunning,
    kvDemandReplicas,
    queueDemandReplicas,
    tokensPerSecond,
    replicaTokenCapacityPerSecond,
    tokenDemandReplicas,
    tokenPeakDemandReplicas,
    stableDemandReplicas: stable.demand,
    panicDemandReplicas: panic.demand,
    panicking,
  };

  // A fresh state (first run, operator restart) has no memory of recent peaks: it must watch for a
  // whole scale-down window before it may scale down.
  const observingSinceMs = state.observingSinceMs ?? nowMs;

  const finish = (desired: number, reason: string, recommendation: number | null): ScaleDecision => {
    const recommendations = state.recommendations.filter(
      (r) =>
        r.atMs >
        nowMs - Math.max(config.scaleDownStabilizationSeconds, config.scaleUpStabilizationSeconds) * 1000,
    );
    if (recommendation !== null) recommendations.push({ atMs: nowMs, replicas: recommendation });
    return {
      desiredReplicas: desired,
      reason,
      signals,
      state: {
        samples,
        recommendations,
        panicUntilMs,
        lastScaleUpAtMs: desired > currentReplicas ? nowMs : state.lastScaleUpAtMs,
        lastScaleDownAtMs: desired < currentReplicas ? nowMs : state.lastScaleDownAtMs,
        observingSinceMs,
        podTokenCounters,
        learnedTokenCapacityPerSecond,
      },
    };
  };

  // Nothing to measure: hold (bounds still apply; they are configuration, not metrics).
  if (usable.length === 0) {
    const held = clamp(currentReplicas);
    const why =
      ready.length === 0
        ? starting.length > 0
          ? `waiting for ${plural(starting.length, "starting pod")}`
          : "no pods yet"
        : `no usable metrics (${problems.join("; ")})`;
    const bound = held !== currentReplicas ? `; bounds [${minReplicas}, ${maxReplicas}] → ${held}` : "";
    return finish(held, `holding at ${currentReplicas}: ${why}${bound}`, null);
  }

  // Recommendation from demand, with a tolerance band around the current count.
  const demand = driving.demand;
  let recommended: number;
  if (currentReplicas > 0 && Math.abs(demand / currentReplicas - 1) <= tuning.tolerance) {
    recommended = currentReplicas;
  } else {
    recommended = Math.max(1, Math.ceil(demand - 1e-9));
  }
  if (recommended < currentReplicas) {
    // Going down: size KV and queue for the lowered (hysteresis) targets; the token signal already
    // carries its headroom in its utilisation target and burst quantile.
    const downDemand = Math.max(
      kvQueue.demand / tuning.scaleDownUtilizationFactor,
      tokenPeakDemandReplicas ?? 0,
    );
    recommended = Math.min(currentReplicas, Math.max(recommended, Math.ceil(downDemand - 1e-9)));
  }
  if (panicking) recommended = Math.max(recommended, currentReplicas); // never down while panicking
  const cappedAtMax = recommended > maxReplicas;
  recommended = clamp(recommended);

  // Stabilization: up follows the lowest recommendation in its window, down the highest in its.
  const upFrom = nowMs - config.scaleUpStabilizationSeconds * 1000;
  const downFrom = nowMs - config.scaleDownStabilizationSeconds * 1000;
  const inWindow = (from: number): number[] => [
    ...state.recommendations.filter((r) => r.atMs > from && r.atMs <= nowMs).map((r) => r.replicas),
    recommended,
  ];
  let desired = currentReplicas;
  if (recommended > currentReplicas) {
    desired = Math.max(currentReplicas, Math.min(...inWindow(upFrom)));
  } else if (recommended < currentReplicas) {
    desired = Math.min(currentReplicas, Math.max(...inWindow(downFrom)));
    if (nowMs - observingSinceMs < config.scaleDownStabilizationSeconds * 1000) desired = currentReplicas;
  }

  // Pods still loading are capacity that is coming: with some starting, add more only when the
  // burst signal says demand exceeds everything requested by the panic threshold.
  // The token signal is a rate that starting pods are already counted against (currentReplicas
  // includes them), so what it asks beyond everything requested is added at once.
  let waitingForStarting = false;
  if (
    desired > currentReplicas &&
    starting.length > 0 &&
    panic.demand < tuning.panicThreshold * tuning.maxScaleUpRate * currentReplicas
  ) {
    const tokenAsks = tokenPeakDemandReplicas === null ? 0 : Math.ceil(tokenPeakDemandReplicas - 1e-9);
    if (tokenAsks > currentReplicas) {
      desired = Math.min(desired, tokenAsks);
    } else {
      desired = currentReplicas;
      waitingForStarting = true;
    }
  }

  // Bounded steps: up by rate or step per decision; down by a step per period.
  const maxUp = Math.max(
    Math.ceil(currentReplicas * tuning.maxScaleUpRate),
    currentReplicas + tuning.maxScaleUpStep,
  );
  desired = Math.min(desired, maxUp);
  desired = Math.max(desired, currentReplicas - tuning.maxScaleDownStep);
  let downRateLimited = false;
  if (
    desired < currentReplicas &&
    state.lastScaleDownAtMs !== null &&
    nowMs - state.lastScaleDownAtMs < tuning.scaleDownPeriodSeconds * 1000
  ) {
    desired = currentReplicas;
    downRateLimited = true;
  }

  // Safety holds for scale-down.
  const signalText = describeSignal(driving.signal, config, signals, ready.length, tuning);
  if (desired < currentReplicas && problems.length > 0) {
    return finish(
      clampKeepingCurrent(currentReplicas, minReplicas, maxReplicas),
      `holding at ${currentReplicas} (would scale down to ${desired}): metrics missing or stale for ${problems.join("; ")}`,
      recommended,
    );
  }
  if (desired < currentReplicas && starting.length > 0) {
    return finish(
      clampKeepingCurrent(currentReplicas, minReplicas, maxReplicas),
      `holding at ${currentReplicas} (would scale down to ${desired}): ${plural(starting.length, "pod")} still starting`,
      recommended,
    );
  }
  desired = clamp(desired);

  const panicText = panicking ? " [panic: burst in the last " + tuning.panicWindowSeconds + "s]" : "";
  const startingText = starting.length > 0 ? `, ${starting.length} starting` : "";
  const silentText = problems.length > 0 ? `; no data from ${problems.length} pod(s)` : "";
  let reason: string;
  if (desired > currentReplicas) {
    const capText = cappedAtMax && desired >= maxReplicas ? ` (maxReplicas; demand ${fmt1(demand)})` : "";
    reason = `${signalText} across ${plural(ready.length, "ready pod")}${startingText} → ${desired}${capText}${panicText}${silentText}`;
  } else if (desired < currentReplicas) {
    reason = `${signalText} across ${plural(ready.length, "ready pod")} → ${desired} (down at most ${tuning.maxScaleDownStep}, highest recommendation in ${config.scaleDownStabilizationSeconds}s)`;
  } else if (waitingForStarting) {
    reason = `holding at ${currentReplicas}: ${signalText}, but ${plural(starting.length, "pod")} still starting`;
  } else if (cappedAtMax && desired >= maxReplicas) {
    reason = `at maxReplicas ${maxReplicas}: ${signalText}, demand ${fmt1(demand)} replicas; raise spec.autoscaling.maxReplicas to serve it`;
  } else if (downRateLimited) {
    reason = `holding at ${currentReplicas}: ${signalText}, last scale-down under ${tuning.scaleDownPeriodSeconds}s ago`;
  } else if (recommended > currentReplicas) {
    reason = `holding at ${currentReplicas}: ${signalText}, scale-up stabilizing (${config.scaleUpStabilizationSeconds}s)`;
  } else if (recommended < currentReplicas) {
    reason = `holding at ${currentReplicas}: ${signalText}, scale-down stabilizing (${config.scaleDownStabilizationSeconds}s window keeps ${desired})`;
  } else {
    const coming = starting.length > 0 ? ` (${starting.length} of them still starting)` : "";
    reason = `steady at ${currentReplicas}${coming}: ${signalText}, demand ${fmt1(demand)} replicas within ±${Math.round(tuning.tolerance * 100)}%${panicText}`;
  }
  return finish(desired, reason, recommended);
}

/** Hold at current, but never outside [min, max] (bounds are configuration, not metrics). */
function clampKeepingCurrent(current: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, current));
}

type DemandSignal = "kv" | "queue" | "tokens";

function describeSignal(
  signal: DemandSignal,
  config: AutoscalingConfig,
  s: ScaleSignals,
  readyPods: number,
  tuning: PolicyTuning,
): string {
  if (signal === "tokens") {
    const rate = Math.round(s.tokensPerSecond ?? 0);
    const capacity = Math.round(s.replicaTokenCapacityPerSecond ?? 0);
    const peak =
      tuning.tokenDemandQuantile >= 1 ? "peak" : `p${Math.round(tuning.tokenDemandQuantile * 100)}`;
    return `token throughput ${rate}/s (${peak} ${fmt1(s.tokenPeakDemandReplicas ?? 0)} replicas at ${Math.round(tuning.tokenUtilizationTarget * 100)}% of ${capacity}/s each over ${tuning.tokenWindowSeconds}s)`;
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
