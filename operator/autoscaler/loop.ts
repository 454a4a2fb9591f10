import type { V1Deployment, V1Pod, V1ReplicaSet, V1StatefulSet } from "@kubernetes/client-node";
import { parseGatewayDemand } from "../api/gateway-demand.js";
import { API_GROUP, API_VERSION, PLURAL, type ModelDeployment } from "../api/modeldeployment.js";
import type { AutoscalerView, EventSink } from "../controller/controller.js";
import { desiredReplicas } from "../controller/reconcile-plan.js";
import { resolveArchitecture } from "../controller/sizing.js";
import { logger } from "../log/logger.js";
import { findGpu } from "../planner/gpus.js";
import { podsOwnedByModelDeployment } from "../metrics/owned-pods.js";
import { ConcurrencyLimiter, scrapePods, scrapeTargetFromPod, type PodCompute, type ScrapeResult } from "../metrics/scrape.js";
import type { Informer } from "../runtime/informer.js";
import type { KubeClient, KubeObject } from "../runtime/kube-client.js";
import {
  decideScale,
  initialPolicyState,
  type AutoscalingConfig,
  type MetricsSample,
  type PodObservation,
  type PolicyState,
  type ScaleDecision,
} from "./policy.js";
import { kvCapacityWeight, throughputWeight, weighKvUtilization } from "./capacity-weight.js";
import { estimateReplicaTokenCapacity } from "./capacity.js";
import {
  initialTtftAttainmentState,
  observeTtftAttainment,
  type TtftAttainmentState,
  type TtftPodReport,
} from "./ttft-attainment.js";
import { DEFAULT_TTFT_TARGET_SECONDS } from "./ttft-objective.js";
import { emptyHistory, HISTORY_BUCKET_SECONDS, type WorkloadHistory } from "./history.js";
import { HistoryStore } from "./history-store.js";
import {
  decideScaleToZero,
  initialScaleToZeroState,
  observeEngineActivity,
  scaleToZeroEnabled,
  heldBacklogFloor,
  wakeFromZero,
  wakeReason,
  type EnginePodActivity,
  type GatewayDemandSummary,
  type ScaleToZeroState,
} from "./scale-to-zero.js";

export interface AutoscalerObserver {
  decided?(namespace: string, name: string, direction: "up" | "down" | "hold", kvCacheUtilization: number | null, queueDepth: number): void;
  /** Share of recent requests within the TTFT objective (null: no objective or no requests seen). */
  ttftAttainment?(namespace: string, name: string, withinTargetShare: number | null): void;
}

/** The window the TTFT attainment in the status is measured over. */
export const TTFT_ATTAINMENT_WINDOW_SECONDS = 300;

export interface AutoscalerLoopOptions {
  client: KubeClient;
  modelDeployments: Informer<ModelDeployment & KubeObject>;
  pods: Informer<V1Pod & KubeObject>;
  /** With `deployments`, the owner chain that decides which pods are the ModelDeployment's (never a label). */
  replicaSets: Informer<V1ReplicaSet & KubeObject>;
  deployments: Informer<V1Deployment & KubeObject>;
  /** The LeaderWorkerSet chain of multi-node replicas: StatefulSets, and the sets the controller found owned. */
  statefulSets?: Informer<V1StatefulSet & KubeObject>;
  leaderWorkerSets?: (namespace: string | undefined) => readonly KubeObject[];
  intervalMs: number;
  scrapeTimeoutMs: number;
  /** Scrapes in flight per ModelDeployment. */
  scrapeConcurrency?: number;
  /** Scrapes in flight across all ModelDeployments (default 32). */
  globalScrapeConcurrency?: number;
  events?: EventSink;
  observer?: AutoscalerObserver;
  /** Called when the status should show a new view (the controller re-reconciles the key). */
  onViewChanged?: (key: string) => void;
  now?: () => number;
  /** Length of the history's demand buckets (default 300 s; tests shorten it). */
  historyBucketSeconds?: number;
  /** Shortest time between two writes of a ModelDeployment's history (default 60 s). */
  historySaveIntervalMs?: number;
  /** The policy's stable window, token window and scale-down period, seconds (default: the policy's, 60 s; tests shorten them). */
  policyWindowSeconds?: number;
}

interface PerDeployment {
  state: PolicyState;
  zeroState: ScaleToZeroState;
  ttftState: TtftAttainmentState;
  view?: AutoscalerView;
  /** Last good sample per pod, kept so a failed scrape holds on known (and ageing) data. */
  lastSamples: Map<string, MetricsSample>;
  viewWrittenAtMs: number;
  /** The history as last written to the cluster (null: not yet), and when. */
  savedHistory: WorkloadHistory | null;
  historySavedAtMs: number;
  /** The history could not be written (a foreign ConfigMap); logged once. */
  historyRefused?: string;
}

/**
 * One replica's token capacity for the policy's throughput signal, from the sizing plan in the status
 * (GPU product, tensor parallelism) and the model's active parameters; undefined until a plan exists
 * or when model or GPU is not in the catalogue (the policy then learns it from saturated pods).
 */
export function replicaTokenCapacity(modelDeployment: ModelDeployment): number | undefined {
  const plan = modelDeployment.status?.plan;
  if (!plan) return undefined;
  const gpu = findGpu(plan.gpuProduct);
  const architecture = resolveArchitecture(modelDeployment);
  if (!gpu || !architecture.known) return undefined;
  return (
    estimateReplicaTokenCapacity({
      activeParameters: architecture.model.activeParameters,
      denseBf16Tflops: gpu.denseBf16Tflops,
      // A replica that spans nodes computes on all its stages' GPUs (pipeline stages work on different batches).
      tensorParallelism: plan.tensorParallelism * (plan.pipelineParallelism ?? 1),
    }) ?? undefined
  );
}

/** TTFT objective assumed for sizing a wake when the ModelDeployment declares none, seconds. */
export const DEFAULT_WAKE_TTFT_SECONDS = 2;

/**
 * Prompt tokens one replica prefills within the TTFT objective (the plan's token capacity ×
 * ttftTargetSeconds, default 2 s): what a wake from zero sizes held demand by. Undefined without a plan.
 */
export function wakeTokensPerReplica(modelDeployment: ModelDeployment): number | undefined {
  const capacity = replicaTokenCapacity(modelDeployment);
  if (capacity === undefined) return undefined;
  return capacity * (modelDeployment.spec.autoscaling?.ttftTargetSeconds ?? DEFAULT_WAKE_TTFT_SECONDS);
}

/**
 * The CRD's autoscaling fields as the policy's config. The floor is 0 only with scale to zero on
 * (minReplicas 0 and scaleToZeroIdleSeconds); the policy itself never goes from 1 to 0 (./scale-to-zero.ts does).
 */
export function policyConfig(modelDeployment: ModelDeployment, windowSeconds?: number): AutoscalingConfig {
  const autoscaling = modelDeployment.spec.autoscaling;
  const capacity = replicaTokenCapacity(modelDeployment);
  const explicitTarget = autoscaling.tokenThroughputUtilizationTarget;
  return {
    minReplicas: scaleToZeroEnabled(autoscaling) ? 0 : Math.max(1, autoscaling.minReplicas),
    maxReplicas: autoscaling.maxReplicas,
    kvCacheUtilizationTarget: autoscaling.kvCacheUtilizationTarget,
    queueDepthTargetPerReplica: autoscaling.queueDepthTargetPerReplica,
    scaleUpStabilizationSeconds: autoscaling.scaleUpStabilizationSeconds,
    scaleDownStabilizationSeconds: autoscaling.scaleDownStabilizationSeconds,
    // An explicit target is used as is; otherwise the headroom is derived from the measured bursts,
    // the learned time to ready and the objective (./headroom.ts), the 2 s one when none is declared.
    ...(explicitTarget === undefined ? {} : { tokenUtilizationTarget: explicitTarget }),
    ttftTargetSeconds: autoscaling.ttftTargetSeconds ?? DEFAULT_TTFT_TARGET_SECONDS,
    ...(autoscaling.forecast === true ? { forecast: true } : {}),
    ...(capacity === undefined ? {} : { replicaTokenCapacityPerSecond: capacity }),
    ...(windowSeconds === undefined
      ? {}
      : { stableWindowSeconds: windowSeconds, tokenWindowSeconds: windowSeconds, scaleDownPeriodSeconds: windowSeconds }),
  };
}

function isReady(pod: V1Pod): boolean {
  return pod.status?.phase === "Running" && (pod.status.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
}

/** Pods as the policy sees them: ready (with their latest metrics or why there are none) or starting. */
export function observePods(
  pods: V1Pod[],
  results: ScrapeResult[],
  lastSamples: Map<string, MetricsSample>,
  /** KV tokens of a replica of the preferred product (status.plan); pods of other products are weighted by theirs. */
  referenceKvTokens?: number,
  /** GPU product and GPUs per replica of the preferred plan; pods of other plans are weighted by their token throughput. */
  referenceCompute?: PodCompute,
): PodObservation[] {
  const byPod = new Map(results.map((result) => [result.target.podName, result]));
  return pods
    .filter((pod) => !pod.metadata?.deletionTimestamp && pod.status?.phase !== "Failed" && pod.status?.phase !== "Succeeded")
    .map((pod): PodObservation => {
      const name = pod.metadata?.name ?? "";
      const created = Date.parse(pod.metadata?.creationTimestamp as unknown as string) || 0;
      if (!isReady(pod)) return { name, phase: "starting", sinceMs: created };
      const readySince = pod.status?.conditions?.find((c) => c.type === "Ready")?.lastTransitionTime;
      const result = byPod.get(name);
      const previous = lastSamples.get(name);
      const observation: PodObservation = {
        name,
        phase: "ready",
        sinceMs: Date.parse(readySince as unknown as string) || created,
        ...(created > 0 ? { createdAtMs: created } : {}),
      };
      const weight = kvCapacityWeight(pod, referenceKvTokens);
      const throughput = throughputWeight(pod, referenceCompute);
      if (weight !== 1 || throughput !== 1) observation.capacityWeights = { kv: weight, throughput };
      if (result?.ok) {
        lastSamples.set(name, result.sample);
        return { ...observation, metrics: weighKvUtilization(result.sample, weight) };
      }
      return {
        ...observation,
        ...(previous ? { metrics: weighKvUtilization(previous, weight) } : {}),
        metricsError: result ? `${result.error.kind}: ${result.error.message}` : "pod has no scrapable metrics endpoint",
      };
    });
}

/**
 * The autoscaler's shell: every interval, for each ModelDeployment with autoscaling on, scrape its ready
 * pods, ask the pure policy, and write a changed replica count through the ModelDeployment's scale
 * subresource (the one path: the reconcile loop carries spec.replicas to the Deployment).
 * The policy state lives in memory; a new leader starts with none, which only delays scale-down.
 */
export class AutoscalerLoop {
  private readonly perDeployment = new Map<string, PerDeployment>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly log = logger.child({ component: "autoscaler" });
  /** Wakes written lately per key (ms), so the informer events that follow one do not repeat it. */
  private readonly recentWakes = new Map<string, { atMs: number; replicas: number }>();

  private readonly scrapeLimiter: ConcurrencyLimiter;
  private readonly historyStore: HistoryStore;

  constructor(private readonly options: AutoscalerLoopOptions) {
    this.historyStore = new HistoryStore(options.client);
    this.scrapeLimiter = new ConcurrencyLimiter(options.globalScrapeConcurrency ?? 32);
    // Scale from zero on the informer event that carries the gateway's demand, not on the next tick.
    const wake = (md: ModelDeployment & KubeObject) => {
      void this.wakeIfHeld(md).catch((error: unknown) =>
        this.log.warn({ resource: `${md.metadata.namespace}/${md.metadata.name}`, err: String(error) }, "scale from zero failed; the next tick retries"),
      );
    };
    options.modelDeployments.addHandlers({ onAdd: wake, onUpdate: (_old, md) => wake(md) });
  }

  /** 0 → 1 at once when a gateway holds requests for a ModelDeployment at zero (scale to zero on). */
  async wakeIfHeld(md: ModelDeployment): Promise<boolean> {
    if (!this.timer || md.spec?.autoscaling?.enabled !== true || md.metadata.deletionTimestamp) return false;
    const now = this.options.now?.() ?? Date.now();
    const key = `${md.metadata.namespace}/${md.metadata.name}`;
    const demand = parseGatewayDemand(md.metadata.annotations, now);
    const currentReplicas = desiredReplicas(md);
    const summary: GatewayDemandSummary = { held: demand.held, heldTokens: demand.heldTokens, lastRequestAtMs: demand.lastRequestAt };
    const to = wakeFromZero(md.spec.autoscaling, currentReplicas, summary, {
      readyReplicas: md.status?.readyReplicas ?? 0,
      tokensPerReplica: wakeTokensPerReplica(md),
    });
    if (to === undefined) return false;
    // One wake per step size: later events of the same burst do not repeat it, a bigger burst grows it.
    const lastWake = this.recentWakes.get(key);
    if (lastWake !== undefined && now - lastWake.atMs < WAKE_DEDUP_MS && to <= lastWake.replicas) return false;
    this.recentWakes.set(key, { atMs: now, replicas: to });
    const reason = wakeReason(currentReplicas, to, summary);
    await this.writeReplicas(md, key, currentReplicas, to, reason, now);
    const entry = this.perDeployment.get(key);
    if (entry?.view) {
      entry.view = { ...entry.view, desiredReplicas: to, reason, lastScaleTime: isoSeconds(now) };
      entry.viewWrittenAtMs = now;
    }
    this.options.onViewChanged?.(key);
    return true;
  }

  private async writeReplicas(md: ModelDeployment, key: string, from: number, to: number, reason: string, now: number): Promise<void> {
    await this.options.client.patch(
      `/apis/${API_GROUP}/${API_VERSION}/namespaces/${md.metadata.namespace}/${PLURAL}/${md.metadata.name}/scale`,
      { spec: { replicas: to } },
      "application/merge-patch+json",
    );
    this.options.events?.record(md as KubeObject & ModelDeployment, "Normal", to > from ? "ScaledUp" : "ScaledDown", `${from} → ${to}: ${reason}`);
    this.log.info({ resource: key, from, to, reason, atMs: now }, "scaled");
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.tick().finally(() => (this.running = undefined));
    }, this.options.intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  view(key: string): AutoscalerView | undefined {
    return this.perDeployment.get(key)?.view;
  }

  async tick(): Promise<void> {
    const deployments = this.options.modelDeployments.list((md) => md.spec?.autoscaling?.enabled === true && !md.metadata.deletionTimestamp);
    const live = new Set<string>();
    await Promise.all(
      deployments.map(async (md) => {
        const key = `${md.metadata.namespace}/${md.metadata.name}`;
        live.add(key);
        try {
          await this.evaluate(md, key);
        } catch (error) {
          this.log.warn({ resource: key, err: String(error) }, "autoscaler evaluation failed; holding");
        }
      }),
    );
    for (const key of this.perDeployment.keys()) if (!live.has(key)) this.perDeployment.delete(key);
    const now = this.options.now?.() ?? Date.now();
    for (const [key, wake] of this.recentWakes) if (now - wake.atMs >= WAKE_DEDUP_MS) this.recentWakes.delete(key);
  }

  /**
   * A fresh policy state seeded with the history kept in the cluster (./history-store.ts), so a
   * restarted operator or a new leader keeps what was learned. Any failure starts from nothing.
   */
  private async resumeState(md: ModelDeployment, key: string): Promise<PolicyState> {
    const fresh = { ...initialPolicyState(), history: emptyHistory(this.options.historyBucketSeconds ?? HISTORY_BUCKET_SECONDS) };
    try {
      const read = await this.historyStore.load(md);
      if (read.kind === "loaded") {
        this.log.info({ resource: key, buckets: read.history.tokensPerSecond.length }, "resumed the autoscaling history");
        return { ...fresh, history: read.history, learnedTokenCapacityPerSecond: read.history.capacity?.tokensPerSecond ?? null };
      }
      if (read.kind !== "absent") this.log.warn({ resource: key, why: read.why }, "autoscaling history not used; starting without it");
    } catch (error) {
      this.log.warn({ resource: key, err: String(error) }, "could not read the autoscaling history; starting without it");
    }
    return fresh;
  }

  /** Write the history when a bucket closed or something was learned, at most every save interval. */
  private async maybeSaveHistory(md: ModelDeployment, key: string, entry: PerDeployment, now: number): Promise<void> {
    const history = entry.state.history;
    if (!history || entry.historyRefused) return;
    const saved = entry.savedHistory;
    const changed =
      saved === null
        ? history.open !== null || history.tokensPerSecond.length > 0 || history.capacity !== null
        : saved.tokensPerSecond.length !== history.tokensPerSecond.length ||
          saved.startMs !== history.startMs ||
          saved.timeToReadySeconds.length !== history.timeToReadySeconds.length ||
          saved.capacity?.observations !== history.capacity?.observations;
    if (!changed || now - entry.historySavedAtMs < (this.options.historySaveIntervalMs ?? 60_000)) return;
    try {
      const result = await this.historyStore.save(md, history);
      if (result === "written") {
        entry.savedHistory = history;
        entry.historySavedAtMs = now;
      } else {
        entry.historyRefused = result.refused;
        this.log.warn({ resource: key, why: result.refused }, "not writing the autoscaling history");
        this.options.events?.record(md as KubeObject & ModelDeployment, "Warning", "HistoryNotSaved", `${result.refused}; the autoscaler keeps its history in memory only`);
      }
    } catch (error) {
      entry.historySavedAtMs = now; // retry after the interval
      this.log.warn({ resource: key, err: String(error) }, "could not write the autoscaling history; retrying later");
    }
  }

  async evaluate(md: ModelDeployment, key: string): Promise<ScaleDecision> {
    const now = this.options.now?.() ?? Date.now();
    const entry: PerDeployment = this.perDeployment.get(key) ?? {
      state: await this.resumeState(md, key),
      zeroState: initialScaleToZeroState(),
      ttftState: initialTtftAttainmentState(),
      lastSamples: new Map(),
      viewWrittenAtMs: 0,
      savedHistory: null,
      historySavedAtMs: 0,
    };
    this.perDeployment.set(key, entry);

    const namespace = md.metadata.namespace;
    const inNamespace = (object: KubeObject) => object.metadata?.namespace === namespace;
    const pods = podsOwnedByModelDeployment({
      owner: md,
      pods: this.options.pods.list(inNamespace),
      replicaSets: this.options.replicaSets.list(inNamespace),
      deployments: this.options.deployments.list(inNamespace),
      ...(this.options.statefulSets ? { statefulSets: this.options.statefulSets.list(inNamespace) } : {}),
      ...(this.options.leaderWorkerSets ? { leaderWorkerSets: this.options.leaderWorkerSets(namespace) } : {}),
    });
    const targets = pods
      .map((pod) => scrapeTargetFromPod(pod, md.spec.model.name))
      .filter((target): target is NonNullable<typeof target> => !!target && target.ready);
    const results = await scrapePods(targets, {
      concurrency: this.options.scrapeConcurrency ?? 8,
      limiter: this.scrapeLimiter,
      timeoutMs: this.options.scrapeTimeoutMs,
      now: () => this.options.now?.() ?? Date.now(),
    });
    const podNames = new Set(pods.map((pod) => pod.metadata?.name));
    for (const name of entry.lastSamples.keys()) if (!podNames.has(name)) entry.lastSamples.delete(name);

    const currentReplicas = desiredReplicas(md);
    const plan = md.status?.plan;
    const observed = observePods(
      pods,
      results,
      entry.lastSamples,
      plan?.kvCacheTokensPerReplica,
      plan ? { gpuProduct: plan.gpuProduct, gpusPerReplica: plan.tensorParallelism * (plan.pipelineParallelism ?? 1) } : undefined,
    );
    const gatewayDemand = parseGatewayDemand(md.metadata.annotations, now);
    const gateway: GatewayDemandSummary = { held: gatewayDemand.held, heldTokens: gatewayDemand.heldTokens, lastRequestAtMs: gatewayDemand.lastRequestAt };
    const policyDecision = decideScale(policyConfig(md, this.options.policyWindowSeconds), entry.state, {
      nowMs: now,
      currentReplicas,
      pods: observed,
      heldRequests: gateway.held,
    });
    entry.state = policyDecision.state;
    await this.maybeSaveHistory(md, key, entry, now);
    entry.zeroState = observeEngineActivity(entry.zeroState, engineActivity(pods, results), now);
    const zero = decideScaleToZero({
      nowMs: now,
      settings: md.spec.autoscaling,
      specReplicas: currentReplicas,
      policyReplicas: policyDecision.desiredReplicas,
      demand: gateway,
      state: entry.zeroState,
      sizing: { readyReplicas: observed.filter((pod) => pod.phase === "ready").length, tokensPerReplica: wakeTokensPerReplica(md) },
    });
    let decision: ScaleDecision = { ...policyDecision, desiredReplicas: zero.replicas, reason: zero.reason ?? policyDecision.reason };
    // Requests held at the gateway beyond what the ready pods take ask for replicas at once (any scale).
    const readyNow = observed.filter((pod) => pod.phase === "ready").length;
    const heldFloor = heldBacklogFloor(md.spec.autoscaling, gateway, { readyReplicas: readyNow, tokensPerReplica: wakeTokensPerReplica(md) });
    if (readyNow > 0 && heldFloor > decision.desiredReplicas && heldFloor > currentReplicas)
      decision = {
        ...decision,
        desiredReplicas: heldFloor,
        reason: `${gateway.held} request(s) (~${Math.round(gateway.heldTokens ?? 0)} prompt tokens) held at the gateway beyond ${readyNow} ready pod(s) → ${heldFloor}`,
      };

    const ttftTargetSeconds = md.spec.autoscaling.ttftTargetSeconds;
    let ttft: { withinTargetShare: number | null; requests: number | null } = { withinTargetShare: null, requests: null };
    if (ttftTargetSeconds !== undefined) {
      const attainment = observeTtftAttainment(entry.ttftState, ttftPodReports(pods, results), {
        targetSeconds: ttftTargetSeconds,
        nowMs: now,
        windowSeconds: TTFT_ATTAINMENT_WINDOW_SECONDS,
      });
      entry.ttftState = attainment.state;
      ttft = attainment;
    }
    this.options.observer?.ttftAttainment?.(md.metadata.namespace ?? "", md.metadata.name, ttft.withinTargetShare);

    const direction = decision.desiredReplicas > currentReplicas ? "up" : decision.desiredReplicas < currentReplicas ? "down" : "hold";
    const { signals } = decision;
    this.options.observer?.decided?.(md.metadata.namespace ?? "", md.metadata.name, direction, signals.kvCacheUtilization, signals.requestsWaiting);

    let lastScaleTime = entry.view?.lastScaleTime;
    if (direction !== "hold") {
      if (currentReplicas === 0 || zero.reason?.startsWith("activating")) this.recentWakes.set(key, { atMs: now, replicas: decision.desiredReplicas });
      await this.writeReplicas(md, key, currentReplicas, decision.desiredReplicas, decision.reason, now);
      lastScaleTime = isoSeconds(now);
    }

    const ready = Math.max(1, signals.readyPods);
    const view: AutoscalerView = {
      lastObservationTime: isoSeconds(now),
      ...(signals.kvCacheUtilization === null ? {} : { kvCacheUtilization: round(signals.kvCacheUtilization, 3) }),
      queueDepth: signals.requestsWaiting,
      queueDepthPerReplica: round(signals.requestsWaiting / ready, 2),
      requestsRunning: signals.requestsRunning,
      scrapedReplicas: signals.podsWithMetrics,
      desiredReplicas: decision.desiredReplicas,
      reason: decision.reason,
      ...(ttft.withinTargetShare === null ? {} : { ttftWithinTarget: round(ttft.withinTargetShare, 4) }),
      ...(ttft.requests === null ? {} : { ttftRequests: ttft.requests }),
      ...(lastScaleTime ? { lastScaleTime } : {}),
    };
    // The view the status shows is replaced (and the controller asked to write it) when the decision or the
    // picture changes, and otherwise every 30 s. Between those it stays as published: a reconcile for any
    // other reason (a gateway's demand annotation, a pod event) then finds the autoscaler's part of the
    // status unchanged and writes nothing, where a view with a fresh lastObservationTime would cost a status
    // write per reconcile.
    const previous = entry.view;
    if (!previous || direction !== "hold" || materiallyDifferent(previous, view) || now - entry.viewWrittenAtMs >= 30_000) {
      entry.view = view;
      entry.viewWrittenAtMs = now;
      this.options.onViewChanged?.(key);
    }
    return decision;
  }
}

/**
 * Every pod that exists, for the TTFT report (one left out would lose its histogram baseline); only
 * this round's fresh scrapes carry metrics (a held sample would count nothing new anyway).
 */
function ttftPodReports(pods: V1Pod[], results: ScrapeResult[]): TtftPodReport[] {
  const freshSamples = new Map(results.flatMap((r) => (r.ok ? [[r.target.podName, r.sample] as const] : [])));
  return pods.map((pod) => {
    const name = pod.metadata?.name ?? "";
    const sample = freshSamples.get(name);
    const createdMs = Date.parse(pod.metadata?.creationTimestamp as unknown as string);
    return { name, ...(Number.isFinite(createdMs) ? { createdAtMs: createdMs } : {}), ...(sample ? { metrics: sample } : {}) };
  });
}

/** Informer events within this long after a wake do not wake again (the cache may still show 0). */
const WAKE_DEDUP_MS = 10_000;

function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * What each pod's engine shows of requests, for the idle clock: in flight now, and a count that moves
 * with every request served (first tokens from the TTFT histogram, prompt and generated tokens). A pod
 * not scraped this round reports no counter, so it keeps its baseline.
 */
export function engineActivity(pods: V1Pod[], results: ScrapeResult[]): EnginePodActivity[] {
  const byPod = new Map(results.flatMap((r) => (r.ok ? [[r.target.podName, r.sample] as const] : [])));
  return pods.map((pod) => {
    const name = pod.metadata?.name ?? "";
    const sample = byPod.get(name);
    if (!sample) return { name, inFlight: 0, counter: null };
    const parts = [sample.promptTokensTotal, sample.generationTokensTotal, sample.ttftHistogram?.cumulativeCounts.at(-1)].filter(
      (x): x is number => typeof x === "number" && Number.isFinite(x) && x >= 0,
    );
    return {
      name,
      inFlight: sample.requestsRunning + sample.requestsWaiting,
      counter: parts.length === 0 ? null : parts.reduce((a, b) => a + b, 0),
    };
  });
}

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** A reason without its figures: "holding at 4: no pods yet" and "… no usable metrics (…)" differ, two KV readings do not. */
function reasonKind(reason: string | undefined): string {
  return (reason ?? "").replace(/\d+(\.\d+)?/g, "#");
}

function materiallyDifferent(a: AutoscalerView, b: AutoscalerView): boolean {
  return (
    a.desiredReplicas !== b.desiredReplicas ||
    reasonKind(a.reason) !== reasonKind(b.reason) ||
    a.scrapedReplicas !== b.scrapedReplicas ||
    Math.abs((a.kvCacheUtilization ?? 0) - (b.kvCacheUtilization ?? 0)) >= 0.05 ||
    Math.abs((a.queueDepth ?? 0) - (b.queueDepth ?? 0)) >= 1 ||
    (a.ttftWithinTarget === undefined) !== (b.ttftWithinTarget === undefined) ||
    Math.abs((a.ttftWithinTarget ?? 0) - (b.ttftWithinTarget ?? 0)) >= 0.01
  );
}
