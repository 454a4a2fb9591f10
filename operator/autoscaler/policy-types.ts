/**
 * Types, defaults and the state of gpufleet's autoscaling policy (./policy.ts decides; the stages
 * live in ./policy-signals.ts, ./policy-windows.ts and ./policy-clamp.ts).
 */
import type { DemandForecast } from "./forecast.js";
import { emptyHistory, type WorkloadHistory } from "./history.js";
import { MAX_GROWTH_MARGIN, MAX_UTILIZATION_TARGET } from "./headroom.js";
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
  /** Remove at most this many replicas per `scaleDownPeriodSeconds` … */
  maxScaleDownStep?: number;
  /** … or this fraction of the current replicas (rounded down), whichever allows more. */
  maxScaleDownFraction?: number;
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
   * Upper bound of the derived token utilisation target (./headroom.ts MAX_UTILIZATION_TARGET). A tuning
   * knob kept so the evaluation can measure what the bound costs (`bench:forecast --causes`).
   */
  maxTokenUtilizationTarget?: number;
  /**
   * Most relative growth over the time to ready the derived headroom provisions for
   * (./headroom.ts MAX_GROWTH_MARGIN); 0 turns the growth margin off (`bench:forecast --causes`).
   */
  maxGrowthMargin?: number;
  /**
   * Prompt + generation tokens per second one replica sustains at saturation. Not a tuning default:
   * it depends on model and GPU (the operator estimates it from the sizing plan). When absent, the
   * policy learns it from pods observed saturated (with a queue); until then the signal is off.
   */
  replicaTokenCapacityPerSecond?: number;
  /**
   * The TTFT objective (spec.autoscaling.ttftTargetSeconds). With it and no explicit
   * `tokenUtilizationTarget`, the token headroom is derived from the measured burstiness, the learned
   * time to ready and this objective (./headroom.ts), and the token window takes the mean, not the peak.
   */
  ttftTargetSeconds?: number;
  /** Share of requests the objective lets miss (1 − goal share); default 0.01. */
  missShare?: number;
  /** Prior for the time a new replica takes to become ready, seconds (until one is observed). */
  timeToReadySeconds?: number;
  /** spec.autoscaling.forecast: also provision for the forecast demand at the horizon. */
  forecast?: boolean;
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
    | "maxScaleDownFraction"
    | "scaleDownPeriodSeconds"
    | "maxQueueInflation"
    | "scaleDownUtilizationFactor"
    | "metricStalenessSeconds"
    | "tokenUtilizationTarget"
    | "tokenDemandQuantile"
    | "tokenWindowSeconds"
    | "maxTokenUtilizationTarget"
    | "maxGrowthMargin"
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
  // 10% of the fleet a minute (at least 1): after a burst that took the fleet to 96 replicas it is
  // back at ~20 in 16 minutes, not 76; the highest recommendation over the scale-down window still
  // keeps what a returning burst needs. Chosen on ServeGen m-small (a tuning trace, fluid simulation,
  // days 8-14): 2,504 GPU-h at 1 replica a minute, 2,048 at 10% (both 98.24% within 2 s), 1,972 at
  // 25% (98.20%); fleets under 20 replicas still step by one.
  maxScaleDownFraction: 0.1,
  scaleDownPeriodSeconds: 60,
  maxQueueInflation: 2,
  scaleDownUtilizationFactor: 0.3,
  metricStalenessSeconds: 45,
  tokenUtilizationTarget: DEFAULT_TOKEN_UTILIZATION_TARGET,
  tokenDemandQuantile: 1,
  tokenWindowSeconds: 60,
  maxTokenUtilizationTarget: MAX_UTILIZATION_TARGET,
  maxGrowthMargin: MAX_GROWTH_MARGIN,
};

/** Shorter counter intervals are not turned into a rate (a retry seconds after a scrape is noise). */
export const MIN_RATE_INTERVAL_MS = 5_000;

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
  /**
   * vLLM `vllm:request_success_total` (counter, summed over its labels): with the token counters it gives
   * the tokens per request, which turns a growing or shrinking queue into tokens/s of demand.
   */
  requestsFinishedTotal?: number;
  scrapedAtMs: number;
}

export interface PodObservation {
  name: string;
  /** `ready`: serving; `starting`: scheduled or loading the model. */
  phase: "ready" | "starting";
  /** When the pod entered its phase. */
  sinceMs: number;
  /** When the pod was created (with `sinceMs` of a ready pod: its time to ready). */
  createdAtMs?: number;
  /** Last successful scrape, if any. */
  metrics?: MetricsSample;
  /** Why the last scrape failed, if it did. */
  metricsError?: string;
  /**
   * The replica's capacity relative to one of the preferred product (status.plan), when its plan differs
   * (spill-over): `kv`, KV-cache tokens (its metrics' KV utilization is already weighted by it);
   * `throughput`, token throughput. Absent: 1.
   */
  capacityWeights?: { kv: number; throughput: number };
}

export interface Observation {
  nowMs: number;
  /** Replicas in the spec now (ready + starting, as the workload sees them). */
  currentReplicas: number;
  pods: PodObservation[];
  /** Requests held at the gateway for want of a free pod: waiting demand like an engine's queue. */
  heldRequests?: number;
}

export interface DemandSample {
  atMs: number;
  kvDemandReplicas: number;
  queueDemandReplicas: number;
  /** Absent when no pod had a token rate (or no capacity was known) at that time. */
  tokenDemandReplicas?: number;
  /** Requests waiting across the fleet (engines and gateway) at that time. */
  waiting?: number;
  /** Requests in the fleet (waiting, held and running) at that time. */
  inFlight?: number;
}

/** Last counter reading per pod, to turn cumulative token counters into a rate. */
export interface PodTokenCounter {
  atMs: number;
  tokensTotal: number;
  /** Rate measured between the previous reading and this one (null: first reading). */
  tokensPerSecond: number | null;
  /** Requests waiting at this reading (a rate between two readings with a queue is a saturated one). */
  waiting?: number;
  /** Consecutive intervals up to this reading over which the pod was saturated (see readTokenRates). */
  saturatedIntervals?: number;
  /** The pod's finished-requests counter at this reading (absent: the engine does not export it). */
  requestsFinishedTotal?: number;
}

export interface Recommendation {
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
  /** The learned replica capacity (mirrors history.capacity; kept for states saved before it). */
  learnedTokenCapacityPerSecond?: number | null;
  /** The fleet's token rate per decision over the last minutes (burstiness and growth). */
  rateSeries?: Array<{ atMs: number; value: number }>;
  /** What survives a restart: demand buckets, learned capacity, readiness times (./history.ts). */
  history?: WorkloadHistory;
  /** Pods whose time to ready has been recorded (so each counts once). */
  timedPods?: string[];
  /** The forecast for one bucket, computed once per bucket. */
  forecastCache?: { bucket: number; horizonBuckets: number; forecast: DemandForecast | null };
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
    rateSeries: [],
    history: emptyHistory(),
    timedPods: [],
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
  /** The utilisation target the token signal used (derived or configured; null: signal off). */
  tokenUtilizationTarget: number | null;
  /** Measured index of dispersion of the token demand, tokens (null: not enough samples). */
  tokenDispersion: number | null;
  /** The horizon: learned time to ready + one interval, seconds. */
  horizonSeconds: number;
  /** The forecast's demand at the horizon in replicas (null: off, or no history or cycle). */
  forecastDemandReplicas: number | null;
}

export interface ScaleDecision {
  desiredReplicas: number;
  /** A sentence a person understands, e.g. "kv-cache 0.93 > target 0.80 across 3 ready pods → 4". */
  reason: string;
  state: PolicyState;
  signals: ScaleSignals;
}
