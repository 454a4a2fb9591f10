import type { V1Deployment, V1Node, V1Pod } from "@kubernetes/client-node";
import type { ModelDeployment, ModelDeploymentStatus, PlanSummary } from "../api/modeldeployment.js";
import { parseGatewayDemand } from "../api/gateway-demand.js";
import { scaleToZeroEnabled, scaleToZeroPhase } from "../autoscaler/scale-to-zero.js";
import { RenderError } from "../render/errors.js";
import type { ResolvedPlan } from "../render/types.js";
import type { AnyRenderedWorkload } from "../render/leaderworkerset.js";
import { ANNOTATIONS, type WorkloadVariant } from "../render/index.js";
import { type LoraModule, startModulesInArgs } from "../render/lora.js";
import { planProductWorkloads, rankedPlacements, type ProductWorkloads } from "./spill-plan.js";
import { type DesiredCondition, mergeConditions } from "./conditions.js";
import {
  choosePlacement,
  discoverGpuPools,
  type GpuPool,
  type Placement,
  type SizeResult,
} from "./placement.js";

/** Everything one reconcile of one ModelDeployment looks at, read from the informers' caches. */
export interface ObservedState {
  modelDeployment: ModelDeployment;
  nodes: V1Node[];
  /** Pods of this ModelDeployment (by its selector label). */
  pods: V1Pod[];
  /** The workload's replica counts: its Deployment, or its LeaderWorkerSet's (see leaderWorkerSetStatus). */
  deployment?: V1Deployment;
  now: Date;
  /** Pods of every gpufleet workload (free-GPU estimate for spill-over); without them spill-over sees no room. */
  clusterPods?: V1Pod[];
  /** clusterPods also holds every other pod on the allowed products' GPU nodes (./node-gpu-usage.ts). */
  clusterPodsComplete?: boolean;
  /** This ModelDeployment's spill-over Deployments, owned by it (./spill-plan.ts). */
  spillDeployments?: V1Deployment[];
  /** The operator's last Deployment writes are in the cache; spill-over moves wait for it. Default true. */
  cacheCurrent?: boolean;
  /** Products a spill-over return must not go to yet (the controller's per-product backoff after a failed return). */
  holdReturns?: string[];
  /** The adapter syncer's last view (./adapter-syncer.ts), for LoRA ModelDeployments. */
  adapters?: { status: { name: string; loadedReplicas: number }[]; condition: DesiredCondition };
}

/** What the reconcile asks of a render besides the plan. */
export interface RenderOptions {
  /** Replicas of the preferred workload when spill-over splits them (default spec replicas). */
  replicas?: number;
  /** Start adapters (--lora-modules) to keep, so an adapter-only change does not restart pods. */
  loraModules?: LoraModule[];
}

export interface ReconcileDependencies {
  /**
   * A reason the model cannot be sized anywhere (config.json not read yet or unreadable, not in the
   * catalogue, bad override), before any pool is tried. A bare string means reason UnknownModel.
   */
  precheck?: (modelDeployment: ModelDeployment) => string | { reason: string; message: string } | undefined;
  /** Sizes one replica of the model on one pool's GPU (the planner, adapted). */
  size: (modelDeployment: ModelDeployment, pool: GpuPool) => SizeResult<ResolvedPlan>;
  /** GPU memory one replica of a plan takes, to prefer the smallest fit when no product order is given. */
  gpuMemoryPerReplica: (plan: ResolvedPlan) => number;
  /** A Deployment for a plan that fits one node, a LeaderWorkerSet group for one that spans nodes. */
  render: (modelDeployment: ModelDeployment, plan: ResolvedPlan, options?: RenderOptions) => AnyRenderedWorkload;
  /** Renders a spill-over Deployment; without it there is no spill-over. */
  renderSpill?: (
    modelDeployment: ModelDeployment,
    plan: ResolvedPlan,
    variant: WorkloadVariant,
    options?: Pick<RenderOptions, "loraModules">,
  ) => V1Deployment;
}

export interface PlannedEvent {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

/** What to write: the workload (absent when the model cannot be placed: the last one keeps running), the status, events. */
export interface ReconcilePlan {
  workload?: AnyRenderedWorkload;
  /** Spill-over Deployments to apply after the workload (only with a workload). */
  spillWorkloads?: V1Deployment[];
  /** Products a spill-over return to just failed (the controller backs off from them). */
  failedReturns?: string[];
  /** Spill-over Deployments to delete, by name and uid. */
  removeWorkloads?: { name: string; uid: string }[];
  placement: Placement<ResolvedPlan> | Unsizable;
  status: ModelDeploymentStatus;
  events: PlannedEvent[];
  /** Come back this soon even if nothing changes (rollouts and pending pods are polled, not only watched). */
  requeueAfterMs?: number;
}

/** The model itself cannot be sized (not in the catalogue and no architecture given). */
export interface Unsizable {
  placed: false;
  /** UnknownModel, or ModelConfigPending / ModelConfigUnavailable / ModelConfigUnauthorized / ModelConfigNotFound / ModelConfigInvalid. */
  reason: string;
  message: string;
  rejected: [];
}

export const SELECTOR_LABEL = "gpufleet.io/model-deployment";
/** The LeaderWorkerSet controller's label of a pod's group (replica) index. */
export const GROUP_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/group-index";

/**
 * Why the API server refuses to create the engine pods, from the Deployment's ReplicaFailure condition
 * (the ReplicaSet controller's FailedCreate, copied up): a namespace enforcing a Pod Security level the
 * pods do not meet, a quota, an admission policy. Reason PodSecurityForbidden when it is Pod Security.
 */
export function podsRefused(deployment: V1Deployment | undefined): { reason: string; message: string } | undefined {
  const failure = deployment?.status?.conditions?.find((c) => c.type === "ReplicaFailure" && c.status === "True");
  if (!failure) return undefined;
  const detail = failure.message ?? failure.reason ?? "no reason given";
  const podSecurity = /violates PodSecurity/.test(detail);
  return {
    reason: podSecurity ? "PodSecurityForbidden" : "PodsRefused",
    message: `the API server refuses the engine pods: ${detail}${
      podSecurity ? " (the namespace's pod-security.kubernetes.io/enforce level; spec.engine.runAsUser 0 runs as root, which restricted refuses)" : ""
    }`,
  };
}

/**
 * Replicas the workload should run: the spec, held inside [min, max] while the autoscaler owns it. The
 * floor is 0 only with scale to zero on (minReplicas 0 and scaleToZeroIdleSeconds), else at least 1.
 */
export function desiredReplicas(modelDeployment: ModelDeployment): number {
  const { replicas, autoscaling } = modelDeployment.spec;
  if (!autoscaling.enabled) return replicas;
  const floor = scaleToZeroEnabled(autoscaling) ? 0 : Math.max(1, autoscaling.minReplicas);
  return Math.min(Math.max(replicas, floor), autoscaling.maxReplicas);
}

function isUnschedulable(pod: V1Pod): boolean {
  if (pod.metadata?.deletionTimestamp || pod.spec?.nodeName) return false;
  return (pod.status?.conditions ?? []).some(
    (condition) =>
      condition.type === "PodScheduled" &&
      condition.status === "False" &&
      condition.reason === "Unschedulable",
  );
}

function summarizePlan(plan: ResolvedPlan, pool: GpuPool): PlanSummary {
  return {
    gpuProduct: plan.gpuProduct,
    gpusPerReplica: plan.gpusPerReplica,
    tensorParallelism: plan.tensorParallelism,
    kvCacheTokensPerReplica: plan.kvCacheTokensPerReplica,
    maxContextLength: plan.maxContextLength,
    maxConcurrentFullContextSequences:
      Math.floor((plan.kvCacheTokensPerReplica / plan.maxContextLength) * 100) / 100,
    ...(pool.poolNames.length ? { pool: pool.poolNames.join(",") } : {}),
    ...((plan.pipelineParallelism ?? 1) > 1
      ? {
          pipelineParallelism: plan.pipelineParallelism,
          nodesPerReplica: plan.pipelineParallelism,
          ...(plan.stages ? { stages: plan.stages.slice(0, 2048) } : {}),
        }
      : {}),
  };
}

function samePlan(a: PlanSummary | undefined, b: PlanSummary | undefined): boolean {
  return (
    !!a &&
    !!b &&
    a.gpuProduct === b.gpuProduct &&
    a.gpusPerReplica === b.gpusPerReplica &&
    a.tensorParallelism === b.tensorParallelism &&
    (a.pipelineParallelism ?? 1) === (b.pipelineParallelism ?? 1) &&
    a.kvCacheTokensPerReplica === b.kvCacheTokensPerReplica &&
    a.maxContextLength === b.maxContextLength
  );
}

/**
 * The decision half of reconcile: from observed state to the objects and status to write. Pure, so every
 * branch (no GPU fits, capacity shortfall, rollout in progress, ready) is pinned by plain unit tests.
 */
export function planReconcile(observed: ObservedState, deps: ReconcileDependencies): ReconcilePlan {
  const { modelDeployment, nodes, pods, deployment, now } = observed;
  const { spec } = modelDeployment;
  const previous = modelDeployment.status;
  const generation = modelDeployment.metadata.generation ?? 0;
  const name = modelDeployment.metadata.name;
  const namespace = modelDeployment.metadata.namespace ?? "default";
  const events: PlannedEvent[] = [];

  const precheck = deps.precheck?.(modelDeployment);
  const unsizable = typeof precheck === "string" ? { reason: "UnknownModel", message: precheck } : precheck;
  const placement: Placement<ResolvedPlan> | Unsizable = unsizable
    ? { placed: false, reason: unsizable.reason, message: unsizable.message, rejected: [] }
    : choosePlacement<ResolvedPlan>({
        pools: discoverGpuPools(nodes, spec.placement.nodeSelector),
        ...(spec.gpu.products ? { allowedProducts: spec.gpu.products } : {}),
        size: (pool) => deps.size(modelDeployment, pool),
        gpuMemoryPerReplica: (plan) => deps.gpuMemoryPerReplica(plan),
      });

  const wanted = desiredReplicas(modelDeployment);
  const deploymentCurrent =
    !!deployment &&
    [deployment, ...(deps.renderSpill ? (observed.spillDeployments ?? []) : [])].every(
      (d) => (d.status?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0),
    );
  // Spill-over Deployments count with the preferred one: the ModelDeployment's replicas are all of them.
  const allDeployments = [deployment, ...(deps.renderSpill ? (observed.spillDeployments ?? []) : [])];
  const sumOf = (field: "replicas" | "readyReplicas" | "updatedReplicas") =>
    allDeployments.reduce((sum, d) => sum + (d?.status?.[field] ?? 0), 0);
  const replicas = sumOf("replicas");
  const readyReplicas = sumOf("readyReplicas");
  const updatedReplicas = sumOf("updatedReplicas");
  const unschedulable = pods.filter(isUnschedulable);

  let workload: AnyRenderedWorkload | undefined;
  let planSummary = previous?.plan;
  const conditions: DesiredCondition[] = [];

  let renderFailure: { reason: string; message: string } | undefined;
  let products: ProductWorkloads | undefined;
  let spillWorkloads: V1Deployment[] | undefined;
  // Spill-over is for replicas that fit one node (a multi-node group runs as one LeaderWorkerSet).
  if (placement.placed && deps.renderSpill && !unsizable && (placement.plan.pipelineParallelism ?? 1) <= 1) {
    const ranked = rankedPlacements({
      pools: discoverGpuPools(nodes, spec.placement.nodeSelector),
      ...(spec.gpu.products ? { allowedProducts: spec.gpu.products } : {}),
      size: (pool) => deps.size(modelDeployment, pool),
      gpuMemoryPerReplica: (plan) => deps.gpuMemoryPerReplica(plan),
    });
    products = planProductWorkloads({
      modelDeployment,
      wanted: desiredReplicas(modelDeployment),
      nodes,
      clusterPods: observed.clusterPods ?? [],
      ...(observed.clusterPodsComplete ? { clusterPodsComplete: true } : {}),
      pods,
      primary: { ...(deployment ? { deployment } : {}), pool: placement.pool, plan: placement.plan },
      spillDeployments: observed.spillDeployments ?? [],
      alternatives: ranked.filter((r) => r.pool.gpuProduct !== placement.pool.gpuProduct),
      cacheCurrent: observed.cacheCurrent ?? true,
      ...(observed.holdReturns?.length ? { holdReturns: observed.holdReturns } : {}),
    });
    events.push(...products.events);
  }
  // A replica that spans nodes is not spilled over (see multiNodeSpillNote): said while its groups wait for room.
  const multiNodeNote =
    placement.placed && deps.renderSpill && !unsizable && (placement.plan.pipelineParallelism ?? 1) > 1 && unschedulable.length > 0
      ? multiNodeSpillNote(placement.plan.gpuProduct, placement.plan.pipelineParallelism ?? 1, spec.gpu.products)
      : undefined;
  if (placement.placed && !products?.hold) {
    try {
      const replicas = products && products.spill.length ? { replicas: products.primaryReplicas } : {};
      workload = deps.render(modelDeployment, placement.plan, replicas);
      const keep = "deployment" in workload ? keptStartAdapters(workload.deployment, deployment) : undefined;
      if (keep) workload = deps.render(modelDeployment, placement.plan, { ...replicas, loraModules: keep });
      if (products && deps.renderSpill) {
        const renderSpill = deps.renderSpill;
        spillWorkloads = products.spill.map((s) => {
          const variant = { name: s.name, slot: s.slot, replicas: s.replicas };
          const fresh = renderSpill(modelDeployment, s.plan, variant);
          const observedSpill = observed.spillDeployments?.find((d) => d.metadata?.name === s.name);
          const kept = keptStartAdapters(fresh, observedSpill);
          return kept ? renderSpill(modelDeployment, s.plan, variant, { loraModules: kept }) : fresh;
        });
      }
    } catch (error) {
      // The spec asks for something the engine cannot do (e.g. TensorRT-LLM from s3): a person must change it.
      if (!(error instanceof RenderError)) throw error;
      renderFailure = { reason: error.reason, message: error.message };
      events.push({ type: "Warning", reason: error.reason, message: error.message });
    }
    planSummary = summarizePlan(placement.plan, placement.pool);
    if (!samePlan(previous?.plan, planSummary))
      events.push({
        type: "Normal",
        reason: "Planned",
        message:
          (planSummary.nodesPerReplica ?? 1) > 1
            ? `${planSummary.gpusPerReplica}× ${planSummary.gpuProduct} per replica as a LeaderWorkerSet group of ${planSummary.nodesPerReplica} pods (PP ${planSummary.pipelineParallelism} x TP ${planSummary.tensorParallelism}), ${planSummary.kvCacheTokensPerReplica} KV-cache tokens, context ${planSummary.maxContextLength}: ${planSummary.stages ?? ""}`
            : `${planSummary.gpusPerReplica}× ${planSummary.gpuProduct} per replica (TP ${planSummary.tensorParallelism}), ${planSummary.kvCacheTokensPerReplica} KV-cache tokens, context ${planSummary.maxContextLength}`,
      });
  } else if (!placement.placed) {
    events.push({ type: "Warning", reason: placement.reason, message: placement.message });
  }

  const gpusPerReplica = planSummary?.gpusPerReplica ?? 0;
  const nodesPerReplica = planSummary?.nodesPerReplica ?? 1;
  // A LeaderWorkerSet group is one replica of nodesPerReplica pods, each of TP GPUs.
  const gpusPerPod = nodesPerReplica > 1 ? (planSummary?.tensorParallelism ?? 0) : gpusPerReplica;
  const missingGpus = unschedulable.length * gpusPerPod;
  const unschedulableGroups = new Set(
    unschedulable.map((pod) => pod.metadata?.labels?.[GROUP_INDEX_LABEL] ?? pod.metadata?.name),
  ).size;
  if (unschedulable.length > 0) {
    const message =
      nodesPerReplica > 1
        ? `${unschedulableGroups} replica group(s) cannot be scheduled (${unschedulable.length} pod(s)): ${missingGpus} more ${planSummary?.gpuProduct ?? "GPU"} GPU(s) needed (${nodesPerReplica} nodes of ${gpusPerPod} per replica, all in one pool)`
        : `${unschedulable.length} replica(s) cannot be scheduled: ${missingGpus} more ${planSummary?.gpuProduct ?? "GPU"} GPU(s) needed (${gpusPerReplica} per replica)`;
    conditions.push({ type: "CapacityShortfall", status: "True", reason: "InsufficientGpus", message });
    if (previous?.conditions?.find((c) => c.type === "CapacityShortfall")?.status !== "True")
      events.push({ type: "Warning", reason: "CapacityShortfall", message });
  } else {
    conditions.push({
      type: "CapacityShortfall",
      status: "False",
      reason: "Scheduled",
      message: "every replica has a node",
    });
  }

  const rolloutDone =
    deploymentCurrent && updatedReplicas >= wanted && replicas === wanted && readyReplicas >= wanted;
  const blocked = !placement.placed
    ? { reason: placement.reason, message: placement.message }
    : renderFailure;
  if (blocked && !deployment) {
    conditions.push(
      { type: "Ready", status: "False", reason: blocked.reason, message: blocked.message },
      {
        type: "Progressing",
        status: "False",
        reason: blocked.reason,
        message: "waiting for a change to the spec or to the cluster's GPUs",
      },
      { type: "Degraded", status: "True", reason: blocked.reason, message: blocked.message },
    );
  } else {
    const refused = podsRefused(deployment);
    const held = spec.autoscaling.enabled ? parseGatewayDemand(modelDeployment.metadata.annotations, now.getTime()).held : 0;
    const phase = spec.autoscaling.enabled ? scaleToZeroPhase(spec.autoscaling, wanted, readyReplicas, held) : undefined;
    if (phase === "Idle")
      conditions.push({
        type: "Ready",
        status: "False",
        reason: "Idle",
        message: `scaled to zero after ${spec.autoscaling.scaleToZeroIdleSeconds}s without requests; the first request through the gateway wakes it`,
      });
    else if (phase === "Activating" && !unschedulable.length && !refused)
      conditions.push({
        type: "Ready",
        status: "False",
        reason: "Activating",
        message:
          wanted === 0
            ? `scaling from zero: ${held} request(s) held at the gateway`
            : `scaling from zero: 0/${wanted} replicas ready (pod starting or model loading)${held ? `; ${held} request(s) held at the gateway` : ""}`,
      });
    else if (wanted === 0) conditions.push({ type: "Ready", status: "False", reason: "ScaledToZero", message: "0 replicas requested" });
    else if (readyReplicas >= wanted)
      conditions.push({
        type: "Ready",
        status: "True",
        reason: "AllReplicasReady",
        message: `${readyReplicas}/${wanted} replicas ready`,
      });
    else if (readyReplicas > 0)
      conditions.push({
        type: "Ready",
        status: "True",
        reason: "PartiallyReady",
        message: `${readyReplicas}/${wanted} replicas ready; serving on those`,
      });
    else if (refused) conditions.push({ type: "Ready", status: "False", ...refused });
    else
      conditions.push({
        type: "Ready",
        status: "False",
        reason: unschedulable.length ? "InsufficientGpus" : "ReplicasNotReady",
        message: `0/${wanted} replicas ready${unschedulable.length ? "; see CapacityShortfall" : " (model loading or pods starting)"}`,
      });

    conditions.push(
      rolloutDone
        ? {
            type: "Progressing",
            status: "False",
            reason: "RolloutComplete",
            message: `${wanted} replica(s) up to date`,
          }
        : {
            type: "Progressing",
            status: "True",
            reason: deploymentCurrent ? "RollingOut" : "Applying",
            message: `${updatedReplicas}/${wanted} updated, ${readyReplicas}/${wanted} ready`,
          },
    );

    if (blocked)
      conditions.push({
        type: "Degraded",
        status: "True",
        reason: blocked.reason,
        message: `the new spec cannot be applied, the previous workload keeps running: ${blocked.message}`,
      });
    else if (refused && readyReplicas < wanted) conditions.push({ type: "Degraded", status: "True", ...refused });
    else if (unschedulable.length)
      conditions.push({
        type: "Degraded",
        status: "True",
        reason: "InsufficientGpus",
        message: `${readyReplicas}/${wanted} replicas ready, ${unschedulable.length} unschedulable`,
      });
    else
      conditions.push({
        type: "Degraded",
        status: "False",
        reason: "AsPlanned",
        message: "no fault observed",
      });
  }

  if (products?.condition) conditions.push(products.condition);
  if (multiNodeNote) conditions.push(multiNodeNote);
  if (observed.adapters && (spec.adapters?.length || spec.lora)) conditions.push(observed.adapters.condition);
  const mergedConditions = mergeConditions(previous?.conditions, conditions, generation, now);
  const wasReady = previous?.conditions?.find((c) => c.type === "Ready")?.status === "True";
  const isReady = mergedConditions.find((c) => c.type === "Ready")?.status === "True";
  if (!wasReady && isReady)
    events.push({ type: "Normal", reason: "Ready", message: `${readyReplicas}/${wanted} replicas ready` });

  // observedGeneration says which spec is served: it moves to this generation only with a workload to apply
  // for it (the controller writes the status after the apply succeeded). A spec that cannot be served
  // (no fit, a refused render) leaves it at the last generation that was; its conditions carry this one.
  const servedGeneration = workload ? generation : previous?.observedGeneration;
  const status: ModelDeploymentStatus = {
    ...(servedGeneration !== undefined ? { observedGeneration: servedGeneration } : {}),
    conditions: mergedConditions,
    replicas,
    readyReplicas,
    desiredReplicas: wanted,
    selector: `${SELECTOR_LABEL}=${name}`,
    ...(planSummary ? { plan: planSummary } : {}),
    ...(products && (products.spill.length || (observed.spillDeployments ?? []).length)
      ? { replicasByProduct: products.replicasByProduct }
      : {}),
    ...(observed.adapters && spec.adapters?.length ? { adapters: observed.adapters.status } : {}),
    ...(previous?.autoscaler ? { autoscaler: previous.autoscaler } : {}),
    endpoint: `http://${name}.${namespace}.svc:${spec.serving.port}/v1`,
  };

  return {
    ...(workload ? { workload } : {}),
    ...(workload && spillWorkloads?.length ? { spillWorkloads } : {}),
    ...(products?.remove.length ? { removeWorkloads: products.remove } : {}),
    ...(products?.failedReturns.length ? { failedReturns: products.failedReturns } : {}),
    placement,
    status,
    events,
    // While replicas are spilled over, look again every 10 s: the preferred pool may free up without any
    // event the operator watches (the work that filled it need not be gpufleet's).
    ...(products?.hold
      ? { requeueAfterMs: 1_000 }
      : rolloutDone && !blocked && !products?.spill.some((s) => s.replicas > 0)
        ? {}
        : { requeueAfterMs: blocked ? 60_000 : 10_000 }),
  };
}

/**
 * The SpilledOver condition of a multi-node plan whose groups cannot be scheduled. Spill-over moves
 * single-node replicas only: a second LeaderWorkerSet per product (with its own plan, its own group size
 * and its own leader Service selection) is not rendered, so the groups wait for room on the preferred
 * product. Says which other products the spec allows, so a person can pin one (spec.gpu.products).
 */
export function multiNodeSpillNote(gpuProduct: string, nodesPerReplica: number, allowed: readonly string[] | undefined): DesiredCondition {
  const others = (allowed ?? []).filter((product) => product !== gpuProduct).slice(0, 8);
  return {
    type: "SpilledOver",
    status: "False",
    reason: "MultiNodeNotSpilled",
    message: `a replica spans ${nodesPerReplica} nodes (a LeaderWorkerSet group): spill-over to another GPU product is done for single-node replicas only, so groups that cannot be scheduled wait for room on ${gpuProduct}${
      others.length ? `; to run on ${others.join(" or ")} instead, list it first in spec.gpu.products` : ""
    }`,
  };
}

/** Why the controller did not write the planned workload: a name conflict, an object being deleted, a refused apply. */
export interface WithheldWorkload {
  /** Condition reason: NameConflict, WaitingForDeletion, ApplyFailed. */
  reason: string;
  message: string;
  /** True while the operator waits for something that resolves itself (an object being deleted); false when a person must act. */
  progressing: boolean;
}

/**
 * The status when the planned workload was not written. Pure. The ModelDeployment must not look reconciled:
 * observedGeneration stays at the last older generation whose workload was applied (absent if none), Ready is
 * False with the reason, and every condition carries the current generation, so `kubectl get` and anything
 * that waits for observedGeneration == generation see a spec that is not served.
 */
export function withheldStatus(
  modelDeployment: ModelDeployment,
  planned: ModelDeploymentStatus,
  withheld: WithheldWorkload,
  now: Date,
): ModelDeploymentStatus {
  const previous = modelDeployment.status;
  const generation = modelDeployment.metadata.generation ?? 0;
  const message = withheld.message.length > 1024 ? `${withheld.message.slice(0, 1021)}...` : withheld.message;
  const shortfall = planned.conditions?.find((c) => c.type === "CapacityShortfall");
  const desired: DesiredCondition[] = [
    { type: "Ready", status: "False", reason: withheld.reason, message },
    withheld.progressing
      ? { type: "Progressing", status: "True", reason: withheld.reason, message }
      : { type: "Progressing", status: "False", reason: withheld.reason, message: "waiting for a change to the spec or to the conflicting object" },
    { type: "Degraded", status: withheld.progressing ? "False" : "True", reason: withheld.reason, message },
    ...(shortfall
      ? [{ type: "CapacityShortfall" as const, status: shortfall.status, reason: shortfall.reason, message: shortfall.message }]
      : []),
  ];
  // The last generation served, if older than this one; never this one, which is not served now.
  const served = previous?.observedGeneration;
  const { observedGeneration: _planned, ...rest } = planned;
  return {
    ...rest,
    ...(served !== undefined && served < generation ? { observedGeneration: served } : {}),
    conditions: mergeConditions(previous?.conditions, desired, generation, now),
  };
}

/**
 * The start adapters (--lora-modules) of the running Deployment, when its pod template differs from the
 * freshly rendered one only in them: rendering those instead leaves the template as it is, so adapters
 * added or removed in the spec reach the running engines through vLLM's runtime API (./adapter-syncer.ts)
 * rather than a rolling restart. Any other template change (image, plan, flags) starts the pods with the
 * spec's adapters. Undefined when the spec's list is to be rendered.
 */
export function keptStartAdapters(rendered: V1Deployment, observed: V1Deployment | undefined): LoraModule[] | undefined {
  const hash = rendered.metadata?.annotations?.[ANNOTATIONS.templateWithoutAdapters];
  if (!hash || !observed || observed.metadata?.annotations?.[ANNOTATIONS.templateWithoutAdapters] !== hash) return undefined;
  const container = observed.spec?.template?.spec?.containers?.[0];
  return startModulesInArgs(container?.args) ?? [];
}
