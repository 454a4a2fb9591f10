/**
 * The autoscalers compared by the evaluation, each as a small controller over the simulated fleet.
 * Baselines follow their projects' published defaults (sources cited per controller); where a
 * baseline needs a judgement call to run on this simulator, the comment says which and why.
 */
import {
  AUTOSCALING_DEFAULTS,
  decideScale,
  initialPolicyState,
  type AutoscalingConfig,
  type PolicyState,
} from "../../operator/autoscaler/policy.js";
import {
  emptyTenantHistory,
  recordTenantBucket,
  replicasWithTenantFloor,
  tenantDemandFloor,
  DEFAULT_TENANT_FLOOR_OPTIONS,
  DEFAULT_TENANT_HISTORY_LIMITS,
  type TenantDemandFloor,
  type TenantDemandHistory,
  type TenantFloorOptions,
  type TenantHistoryLimits,
} from "../../operator/autoscaler/tenant-forecast.js";
import { maxOf, type Controller, type ControllerView } from "./fleet.js";

export interface Bounds {
  minReplicas: number;
  maxReplicas: number;
  /** Replicas ready at t=0 (the evaluation starts every autoscaler from the same fleet). */
  initialReplicas?: number;
}

const initial = (b: Bounds): number =>
  Math.min(b.maxReplicas, Math.max(b.minReplicas, b.initialReplicas ?? b.minReplicas));

/** A fixed replica count (static provisioning). */
export function staticController(replicas: number, name = `static-${replicas}`): Controller {
  return { name, intervalSeconds: 3600, initialReplicas: replicas, decide: () => replicas };
}

/**
 * gpufleet's policy, called unchanged with the operator's defaults. `overrides` carries what the
 * operator derives per deployment: the replica token capacity it estimates from the sizing plan
 * (operator/autoscaler/loop.ts `replicaTokenCapacity`; sim/eval/hardware.ts computes the same).
 */
export function gpufleetController(
  bounds: Bounds,
  overrides: Partial<AutoscalingConfig> = {},
  intervalSeconds = 10,
  name = "gpufleet",
): Controller {
  const decide = gpufleetDecider(bounds, overrides);
  return {
    name,
    intervalSeconds,
    initialReplicas: initial(bounds),
    decide: (view) => decide(view).desiredReplicas,
  };
}

/** gpufleet's policy with its state carried from call to call: one whole decision (signals too) per view. */
function gpufleetDecider(
  bounds: Bounds,
  overrides: Partial<AutoscalingConfig>,
): (view: ControllerView) => ReturnType<typeof decideScale> {
  const config: AutoscalingConfig = { ...AUTOSCALING_DEFAULTS, ...bounds, ...overrides };
  let state: PolicyState = initialPolicyState();
  return (view) => {
    const decision = decideScale(config, state, {
      nowMs: view.nowMs,
      currentReplicas: view.currentReplicas,
      pods: view.pods,
    });
    state = decision.state;
    return decision;
  };
}

/**
 * What the gateway meters per tenant: each tenant's mean token demand (tokens/s) over [fromS, toS),
 * seconds of the simulation. Called only for spans that have ended.
 */
export type TenantMeter = (fromS: number, toS: number) => ReadonlyMap<string, number>;

export interface TenantForecastSetup {
  meter: TenantMeter;
  bucketSeconds: number;
  floor?: TenantFloorOptions;
  limits?: TenantHistoryLimits;
}

/**
 * gpufleet's policy plus the per-tenant same-time-of-day floor (operator/autoscaler/tenant-forecast.ts):
 * at the end of every bucket the controller records what the meter reports per tenant (bounded:
 * top tenants by volume, the rest pooled), and every decision is max(the policy's answer, the floor
 * at now + the policy's horizon in replicas at its capacity and utilisation target).
 */
export function gpufleetTenantForecastController(
  bounds: Bounds,
  overrides: Partial<AutoscalingConfig>,
  setup: TenantForecastSetup,
  intervalSeconds = 10,
  name = "gpufleet + tenant forecast",
): Controller {
  const decide = gpufleetDecider(bounds, overrides);
  const bucketMs = setup.bucketSeconds * 1000;
  const limits = setup.limits ?? DEFAULT_TENANT_HISTORY_LIMITS;
  const floorOptions = setup.floor ?? DEFAULT_TENANT_FLOOR_OPTIONS;
  let history: TenantDemandHistory = emptyTenantHistory(setup.bucketSeconds);
  let nextBucketStartMs = 0;
  // The floor changes only when its window moves by a bucket or a bucket is recorded.
  let cached: { key: string; floor: TenantDemandFloor | null } | null = null;
  return {
    name,
    intervalSeconds,
    initialReplicas: initial(bounds),
    decide(view: ControllerView): number {
      while (nextBucketStartMs + bucketMs <= view.nowMs) {
        const fromS = nextBucketStartMs / 1000;
        history = recordTenantBucket(
          history,
          nextBucketStartMs,
          setup.meter(fromS, fromS + setup.bucketSeconds),
          limits,
        );
        nextBucketStartMs += bucketMs;
      }
      const decision = decide(view);
      const atMs = view.nowMs + decision.signals.horizonSeconds * 1000;
      const windowMs = floorOptions.windowSeconds * 1000;
      const key = `${history.buckets}:${Math.floor((atMs - windowMs) / bucketMs)}:${Math.floor((atMs + windowMs) / bucketMs)}`;
      if (cached?.key !== key) cached = { key, floor: tenantDemandFloor(history, atMs, floorOptions) };
      return replicasWithTenantFloor(
        decision.desiredReplicas,
        cached.floor,
        decision.signals.replicaTokenCapacityPerSecond,
        decision.signals.tokenUtilizationTarget,
        bounds.maxReplicas,
      );
    },
  };
}

/**
 * KubeAI (substratusai/kubeai): every `modelAutoscaling.interval` (10 s, charts/kubeai/values.yaml)
 * it averages the active requests over `timeWindow` (10 m → 60 samples, internal/config/system.go
 * AverageWindowCount) and asks for ceil(avg / targetRequests) replicas, targetRequests default 100
 * (api/k8s/v1/model_types.go). Scale-down needs scaleDownDelaySeconds (default 30) of consecutive
 * lower decisions (RequiredConsecutiveScaleDowns = 30 s / 10 s = 3).
 */
export function kubeAiController(bounds: Bounds, targetRequests = 100): Controller {
  const intervalSeconds = 10;
  const windowCount = (10 * 60) / intervalSeconds;
  const requiredConsecutiveScaleDowns = Math.ceil(30 / intervalSeconds);
  const history: number[] = [];
  let consecutiveDown = 0;
  return {
    name: targetRequests === 100 ? "kubeai" : `kubeai(target=${targetRequests})`,
    intervalSeconds,
    initialReplicas: initial(bounds),
    decide(view) {
      history.push(view.inFlightRequests);
      if (history.length > windowCount) history.shift();
      // KubeAI's moving average is over a zero-prefilled ring of windowCount samples.
      const avg = history.reduce((a, b) => a + b, 0) / windowCount;
      const desired = Math.min(
        bounds.maxReplicas,
        Math.max(bounds.minReplicas, Math.ceil(avg / targetRequests)),
      );
      if (desired < view.currentReplicas) {
        consecutiveDown++;
        if (consecutiveDown < requiredConsecutiveScaleDowns) return view.currentReplicas;
      } else {
        consecutiveDown = 0;
      }
      return desired;
    },
  };
}

/**
 * KEDA with the vLLM production-stack chart's settings (vllm-project/production-stack,
 * docs/source/use_cases/autoscaling-keda.rst and helm/templates/scaledobject-vllm.yaml): Prometheus
 * trigger on `vllm:num_requests_waiting`, threshold 5, pollingInterval 15 s, cooldownPeriod 360 s.
 * KEDA hands the value to an HPA with an AverageValue target: desired = ceil(total / 5) with the
 * HPA's 10% tolerance. KEDA's cooldownPeriod formally applies to scaling to zero only; above
 * minReplicaCount the HPA's scale-down stabilization (default 300 s) governs. We apply the chart's
 * 360 s as the scale-down window, which is how its tutorial describes it ("wait 360 seconds before
 * scaling down"). Scale-up follows the HPA default policy: at most max(+100%, +4 pods) per 15 s.
 * The chart's query returns one series per pod; we sum them (as `sum(...)` would).
 */
export function kedaController(bounds: Bounds, threshold = 5): Controller {
  const intervalSeconds = 15;
  const downWindowMs = 360_000;
  const recommendations: Array<{ atMs: number; replicas: number }> = [];
  return {
    name: threshold === 5 ? "keda" : `keda(threshold=${threshold})`,
    intervalSeconds,
    initialReplicas: initial(bounds),
    decide(view) {
      const ready = view.pods.filter((p) => p.phase === "ready" && p.metrics);
      const waiting = ready.reduce((s, p) => s + (p.metrics?.requestsWaiting ?? 0), 0);
      const current = view.currentReplicas;
      let desired = Math.ceil(waiting / threshold);
      const ratio = current > 0 ? waiting / threshold / current : 1;
      if (current > 0 && Math.abs(ratio - 1) <= 0.1) desired = current;
      desired = Math.min(bounds.maxReplicas, Math.max(bounds.minReplicas, desired));
      recommendations.push({ atMs: view.nowMs, replicas: desired });
      while (
        recommendations.length > 0 &&
        (recommendations[0] as { atMs: number }).atMs <= view.nowMs - downWindowMs
      )
        recommendations.shift();
      if (desired < current) desired = Math.min(current, maxOf(recommendations.map((r) => r.replicas)));
      if (desired > current) desired = Math.min(desired, Math.max(current * 2, current + 4));
      return desired;
    },
  };
}

/**
 * AIBrix KPA (vllm-project/aibrix): stable window 180 s and panic window 60 s
 * (pkg/controller/podautoscaler/metrics/client.go DefaultStableWindowDuration /
 * DefaultPanicWindowDuration; docs metric-based-autoscaling.rst), panic threshold 2.0,
 * max scale-up rate 2, max scale-down rate 2, ±10% tolerance and a 300 s scale-down cooldown
 * (pkg/controller/podautoscaler/context/context.go NewBaseScalingContext). Metric and target from
 * the project's sample samples/autoscaling/kpa.yaml: `gpu_cache_usage_perc` at 0.5.
 * Knative semantics: desired = ceil(total observed / per-pod target), total = sum over pods.
 * (The current AIBrix MetricsClient records the pods' *average*, which caps a 0..1 metric at
 * ceil(1 / 0.5) = 2 replicas; we use Knative's total so the baseline can scale at all.)
 * Sync period assumed 15 s.
 */
export function aibrixKpaController(bounds: Bounds, target = 0.5): Controller {
  const intervalSeconds = 15;
  const stableMs = 180_000;
  const panicMs = 60_000;
  const panicThreshold = 2;
  const tolerance = 0.1;
  const cooldownMs = 300_000;
  const samples: Array<{ atMs: number; total: number }> = [];
  const recommendations: Array<{ atMs: number; replicas: number }> = [];
  let panicTimeMs: number | null = null;
  let maxPanicPods = 0;
  return {
    name: target === 0.5 ? "aibrix-kpa" : `aibrix-kpa(kv=${target})`,
    intervalSeconds,
    initialReplicas: initial(bounds),
    decide(view) {
      const ready = view.pods.filter((p) => p.phase === "ready" && p.metrics);
      const readyCount = view.pods.filter((p) => p.phase === "ready").length;
      if (ready.length > 0)
        samples.push({
          atMs: view.nowMs,
          total: ready.reduce((s, p) => s + (p.metrics?.kvCacheUtilization ?? 0), 0),
        });
      while (samples.length > 0 && (samples[0] as { atMs: number }).atMs <= view.nowMs - stableMs)
        samples.shift();
      if (samples.length === 0) return view.currentReplicas;
      const avg = (from: number): number => {
        const w = samples.filter((s) => s.atMs > from);
        return w.length === 0 ? 0 : w.reduce((a, s) => a + s.total, 0) / w.length;
      };
      const stableValue = avg(view.nowMs - stableMs);
      const panicValue = avg(view.nowMs - panicMs);
      const current = view.currentReplicas;
      const podsForRate = Math.max(1, readyCount);
      const maxUp = Math.max(1, Math.ceil(2 * podsForRate));
      const maxDown = Math.floor(podsForRate / 2);
      const perPod = (v: number): number => v / podsForRate;
      const withTolerance = (value: number): number =>
        perPod(value) > target * (1 + tolerance) || perPod(value) < target * (1 - tolerance)
          ? Math.ceil(value / target)
          : current;
      const dspc = withTolerance(stableValue);
      const dppc = withTolerance(panicValue);
      const stablePods = Math.min(Math.max(dspc, maxDown), maxUp);
      const panicPods = Math.min(Math.max(dppc, maxDown), maxUp);
      if (dppc / podsForRate >= panicThreshold) panicTimeMs = view.nowMs;
      else if (panicTimeMs !== null && view.nowMs - panicTimeMs > stableMs) {
        panicTimeMs = null;
        maxPanicPods = 0;
      }
      let desired = stablePods;
      if (panicTimeMs !== null) {
        desired = Math.max(desired, panicPods);
        maxPanicPods = Math.max(maxPanicPods, desired, current);
        desired = maxPanicPods;
      }
      desired = Math.min(bounds.maxReplicas, Math.max(bounds.minReplicas, desired));
      recommendations.push({ atMs: view.nowMs, replicas: desired });
      while (
        recommendations.length > 0 &&
        (recommendations[0] as { atMs: number }).atMs <= view.nowMs - cooldownMs
      )
        recommendations.shift();
      if (desired < current) desired = Math.min(current, maxOf(recommendations.map((r) => r.replicas)));
      return desired;
    },
  };
}

/**
 * llm-d workload-variant-autoscaler saturation analyzer (llm-d/llm-d-workload-variant-autoscaler,
 * docs/saturation-analyzer.md): a replica is saturated when KV ≥ 0.80 or queue ≥ 5; scale up by one
 * when the non-saturated replicas' average spare KV < 0.10 or spare queue < 3 (or none is
 * non-saturated); scale down by one when removing a replica would still leave those spares; pending
 * replicas count (no further scale-up while some start). It uses each pod's peak over the last
 * minute and reconciles every 60 s.
 */
export interface LlmdThresholds {
  kvThreshold: number;
  queueThreshold: number;
  kvSpareTrigger: number;
  queueSpareTrigger: number;
}

export const LLMD_DEFAULT_THRESHOLDS: LlmdThresholds = {
  kvThreshold: 0.8,
  queueThreshold: 5,
  kvSpareTrigger: 0.1,
  queueSpareTrigger: 3,
};

export function llmdSaturationController(
  bounds: Bounds,
  thresholds: LlmdThresholds = LLMD_DEFAULT_THRESHOLDS,
): Controller {
  const reconcileMs = 60_000;
  const { kvThreshold, queueThreshold, kvSpareTrigger, queueSpareTrigger } = thresholds;
  const isDefault = (Object.keys(LLMD_DEFAULT_THRESHOLDS) as Array<keyof LlmdThresholds>).every(
    (k) => thresholds[k] === LLMD_DEFAULT_THRESHOLDS[k],
  );
  // Called at every scrape to keep each pod's last-minute peak; acts once per reconcile period.
  const history = new Map<string, Array<{ atMs: number; kv: number; queue: number }>>();
  let lastActMs = 0;
  return {
    name: isDefault
      ? "llm-d-saturation"
      : `llm-d-saturation(kv=${kvThreshold},queue=${queueThreshold},spare=${kvSpareTrigger}/${queueSpareTrigger})`,
    intervalSeconds: 10,
    initialReplicas: initial(bounds),
    decide(view) {
      const current = view.currentReplicas;
      const peaks: Array<{ kv: number; queue: number }> = [];
      for (const p of view.pods) {
        if (p.phase !== "ready" || !p.metrics) continue;
        const h = history.get(p.name) ?? [];
        h.push({ atMs: view.nowMs, kv: p.metrics.kvCacheUtilization, queue: p.metrics.requestsWaiting });
        while (h.length > 0 && (h[0] as { atMs: number }).atMs <= view.nowMs - 60_000) h.shift();
        history.set(p.name, h);
        peaks.push({ kv: maxOf(h.map((x) => x.kv)), queue: maxOf(h.map((x) => x.queue)) });
      }
      if (view.nowMs - lastActMs < reconcileMs) return current;
      lastActMs = view.nowMs;
      const starting = view.pods.filter((p) => p.phase === "starting").length;
      if (peaks.length === 0) return current;
      const nonSaturated = peaks.filter((p) => p.kv < kvThreshold && p.queue < queueThreshold);
      let scaleUp = nonSaturated.length === 0;
      if (!scaleUp) {
        const spareKv = nonSaturated.reduce((s, p) => s + (kvThreshold - p.kv), 0) / nonSaturated.length;
        const spareQueue =
          nonSaturated.reduce((s, p) => s + (queueThreshold - p.queue), 0) / nonSaturated.length;
        scaleUp = spareKv < kvSpareTrigger || spareQueue < queueSpareTrigger;
      }
      if (scaleUp) return starting > 0 ? current : Math.min(bounds.maxReplicas, current + 1);
      if (nonSaturated.length >= 2 && starting === 0) {
        const remaining = nonSaturated.length - 1;
        const kvAfter = nonSaturated.reduce((s, p) => s + p.kv, 0) / remaining;
        const queueAfter = nonSaturated.reduce((s, p) => s + p.queue, 0) / remaining;
        if (kvThreshold - kvAfter >= kvSpareTrigger && queueThreshold - queueAfter >= queueSpareTrigger) {
          return Math.max(bounds.minReplicas, current - 1);
        }
      }
      return current;
    },
  };
}

/**
 * A throughput planner in the style of NVIDIA Dynamo's (ai-dynamo/dynamo, components/planner: the
 * SLA planner adjusts every `adjustment_interval`, 180 s by default, from the frontend's request
 * rate and mean input/output lengths over the last interval, forecasts the next interval with a
 * load predictor, and sizes replicas by the throughput one replica sustains per its profile).
 * Here: every 180 s, the token demand (prompt + output tokens/s from the router's counters) of each
 * past interval; the next interval's demand forecast by a least-squares line through the last
 * `historyIntervals` intervals (a constant while fewer than two exist), never below zero; replicas =
 * ceil(forecast / (capacity × utilization)). The capacity is the planner's per-replica token
 * capacity (the prior gpufleet's policy also gets), so when the engine is slower than planned this
 * baseline does not learn it. `utilization` 1 is the default: the profiled capacity is what Dynamo
 * sizes with; lower values add headroom (the tuned row sweeps it).
 */
export function dynamoPlannerController(
  bounds: Bounds,
  replicaTokenCapacityPerSecond: number,
  utilization = 1,
  historyIntervals = 5,
): Controller {
  const intervalMs = 180_000;
  const demand: number[] = [];
  let last: { atMs: number; tokens: number } | null = null;
  return {
    name: utilization === 1 ? "dynamo-planner" : `dynamo-planner(util=${utilization})`,
    intervalSeconds: 10,
    initialReplicas: initial(bounds),
    decide(view) {
      const tokens = view.arrived.promptTokens + view.arrived.outputTokens;
      if (last === null) {
        last = { atMs: view.nowMs, tokens };
        return view.currentReplicas;
      }
      if (view.nowMs - last.atMs < intervalMs) return view.currentReplicas;
      demand.push(((tokens - last.tokens) * 1000) / (view.nowMs - last.atMs));
      if (demand.length > historyIntervals) demand.shift();
      last = { atMs: view.nowMs, tokens };
      const forecast = Math.max(0, linearForecast(demand));
      const desired = Math.ceil(forecast / (replicaTokenCapacityPerSecond * utilization));
      return Math.min(bounds.maxReplicas, Math.max(bounds.minReplicas, desired));
    },
  };
}

/** The next value of `series` on its least-squares line (the last value if fewer than two). */
export function linearForecast(series: readonly number[]): number {
  const n = series.length;
  if (n === 0) return 0;
  if (n === 1) return series[0] as number;
  const meanX = (n - 1) / 2;
  let meanY = 0;
  for (const y of series) meanY += y / n;
  let sxy = 0;
  let sxx = 0;
  series.forEach((y, x) => {
    sxy += (x - meanX) * (y - meanY);
    sxx += (x - meanX) ** 2;
  });
  return meanY + (sxy / sxx) * (n - meanX);
}

/** Replays a replica schedule (replicas per window) with no cold start: the oracle's controller. */
export function scheduleController(name: string, windowMs: number, replicasPerWindow: number[]): Controller {
  return {
    name,
    intervalSeconds: 5,
    initialReplicas: replicasPerWindow[0] ?? 1,
    modelLoadSecondsOverride: 0,
    decide(view) {
      const i = Math.min(replicasPerWindow.length - 1, Math.floor(view.nowMs / windowMs));
      return replicasPerWindow[i] ?? view.currentReplicas;
    },
  };
}
