/**
 * Spill-over wired into reconcile, still pure: from the observed Deployments, pods and nodes to the
 * replicas of the preferred workload, the spill-over Deployments to apply or delete, the status per
 * product and the Events. The rules are in ./spill.ts.
 */
import type { V1Deployment, V1Node, V1Pod } from "@kubernetes/client-node";
import type { ModelDeployment, ProductReplicas } from "../api/modeldeployment.js";
import { ANNOTATIONS, LABELS } from "../render/index.js";
import type { ResolvedPlan } from "../render/types.js";
import type { DesiredCondition } from "./conditions.js";
import { choosePlacement, type GpuPool, type SizeResult } from "./placement.js";
import { freeGpusByProduct, planSpill, type SpillMove, type WorkloadObservation } from "./spill.js";

/** Label-value and name suffix for a product's spill-over workload: `NVIDIA-A100-SXM4-80GB` -> `nvidia-a100-sxm4-80gb`. */
export function productSlot(gpuProduct: string): string {
  return (
    gpuProduct
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 40)
      .replace(/-+$/, "") || "gpu"
  );
}

export function spillDeploymentName(modelDeploymentName: string, gpuProduct: string): string {
  return `${modelDeploymentName}-${productSlot(gpuProduct)}`;
}

/** Every allowed product that fits one replica, in the placement's own order of preference. */
export function rankedPlacements(input: {
  pools: GpuPool[];
  allowedProducts?: string[];
  size: (pool: GpuPool) => SizeResult<ResolvedPlan>;
  gpuMemoryPerReplica: (plan: ResolvedPlan) => number;
}): { pool: GpuPool; plan: ResolvedPlan }[] {
  const ranked: { pool: GpuPool; plan: ResolvedPlan }[] = [];
  let pools = input.pools;
  while (pools.length) {
    const placement = choosePlacement<ResolvedPlan>({ ...input, pools });
    if (!placement.placed) break;
    ranked.push({ pool: placement.pool, plan: placement.plan });
    pools = pools.filter((pool) => pool.gpuProduct !== placement.pool.gpuProduct);
  }
  return ranked;
}

function isUnschedulable(pod: V1Pod): boolean {
  if (pod.metadata?.deletionTimestamp || pod.spec?.nodeName) return false;
  return (pod.status?.conditions ?? []).some(
    (c) => c.type === "PodScheduled" && c.status === "False" && c.reason === "Unschedulable",
  );
}

function isReady(pod: V1Pod): boolean {
  return (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
}

function observe(gpuProduct: string, deployment: V1Deployment | undefined, pods: readonly V1Pod[]): WorkloadObservation {
  const live = pods.filter((pod) => !pod.metadata?.deletionTimestamp);
  return {
    gpuProduct,
    replicas: deployment?.spec?.replicas ?? 0,
    pods: live.length,
    scheduled: live.filter((pod) => !!pod.spec?.nodeName).length,
    ready: live.filter(isReady).length,
    unschedulable: live.filter(isUnschedulable).length,
  };
}

export interface ProductWorkloads {
  /** Replicas for the preferred workload (the ModelDeployment's own Deployment). */
  primaryReplicas: number;
  /** Spill-over Deployments to apply: product, its plan, name, slot and replicas. */
  spill: { gpuProduct: string; plan: ResolvedPlan; name: string; slot: string; replicas: number }[];
  /** Spill-over Deployments to delete (empty, or on a product no longer allowed), with their uid. */
  remove: { name: string; uid: string }[];
  replicasByProduct: ProductReplicas[];
  condition?: DesiredCondition;
  events: { type: "Normal" | "Warning"; reason: string; message: string }[];
  /** Products a return to just failed (the shell backs off from them). */
  failedReturns: string[];
  /** The cache is behind the operator's last write of a spill-over workload: write nothing this time. */
  hold?: boolean;
}

export function planProductWorkloads(input: {
  modelDeployment: ModelDeployment;
  wanted: number;
  nodes: V1Node[];
  /** Pods of every gpufleet workload in the cluster, and the other pods on GPU nodes when readable (free-GPU estimate). */
  clusterPods: readonly V1Pod[];
  /** clusterPods holds every pod on the allowed products' nodes, not only gpufleet's (./node-gpu-usage.ts). */
  clusterPodsComplete?: boolean;
  /** Pods of this ModelDeployment. */
  pods: readonly V1Pod[];
  primary: { deployment?: V1Deployment; pool: GpuPool; plan: ResolvedPlan };
  /** This ModelDeployment's spill-over Deployments (already checked to be owned by it). */
  spillDeployments: readonly V1Deployment[];
  /** Other fitting products after the preferred one, in order. */
  alternatives: { pool: GpuPool; plan: ResolvedPlan }[];
  /** The operator's last writes are in the cache (see SpillInput.settled). */
  cacheCurrent: boolean;
  /** Products whose last return failed, still backing off (SpillInput.holdReturns). */
  holdReturns?: readonly string[];
}): ProductWorkloads {
  const { modelDeployment, wanted, primary } = input;
  const name = modelDeployment.metadata.name;
  const slotOf = (pod: V1Pod) => pod.metadata?.labels?.[LABELS.workloadSlot];
  const productOf = (d: V1Deployment) => d.spec?.template?.metadata?.annotations?.[ANNOTATIONS.gpuProduct] ?? "";
  const primaryPods = input.pods.filter((pod) => !slotOf(pod));
  const options = [{ pool: primary.pool, plan: primary.plan }, ...input.alternatives];

  // With nothing spilled and nowhere to spill, the preferred workload simply runs what is wanted.
  if (input.alternatives.length === 0 && input.spillDeployments.length === 0)
    return {
      primaryReplicas: wanted,
      spill: [],
      remove: [],
      replicasByProduct: [row(primary.plan.gpuProduct, name, wanted, observe(primary.plan.gpuProduct, primary.deployment, primaryPods), primary.plan)],
      events: [],
      failedReturns: [],
    };

  // Every pod on every GPU node: only when spill-over is possible (it was once per reconcile of any ModelDeployment).
  const free = freeGpusByProduct(input.nodes, input.clusterPods);
  const observedSpill = input.spillDeployments.map((deployment) => {
    const slot = deployment.spec?.selector?.matchLabels?.[LABELS.workloadSlot] ?? "";
    return { deployment, gpuProduct: productOf(deployment), slot, pods: input.pods.filter((pod) => slotOf(pod) === slot) };
  });
  const observations: WorkloadObservation[] = [];
  if (primary.deployment) observations.push(observe(primary.plan.gpuProduct, primary.deployment, primaryPods));
  for (const spill of observedSpill)
    if (spill.gpuProduct && spill.gpuProduct !== primary.plan.gpuProduct) observations.push(observe(spill.gpuProduct, spill.deployment, spill.pods));
  const settled = observations.every((o) => o.pods === o.replicas);

  const decision = planSpill({
    wanted,
    options: options.map(({ pool, plan }) => ({
      gpuProduct: pool.gpuProduct,
      gpusPerReplica: plan.gpusPerReplica,
      freeGpus: free.get(pool.gpuProduct)?.free ?? 0,
      freeGpusOnBestNode: free.get(pool.gpuProduct)?.bestNode ?? 0,
    })),
    observed: observations,
    settled,
    ...(input.holdReturns?.length ? { holdReturns: input.holdReturns } : {}),
  });
  const replicasOf = new Map(decision.replicas.map((r) => [r.gpuProduct, r.replicas]));
  const spill: ProductWorkloads["spill"] = [];
  for (const { pool, plan } of input.alternatives) {
    const replicas = replicasOf.get(pool.gpuProduct) ?? 0;
    const existing = observedSpill.find((s) => s.gpuProduct === pool.gpuProduct);
    if (replicas === 0 && existing && existing.pods.length === 0) continue; // removed below
    if (replicas === 0 && !existing) continue;
    spill.push({ gpuProduct: pool.gpuProduct, plan, name: spillDeploymentName(name, pool.gpuProduct), slot: productSlot(pool.gpuProduct), replicas });
  }
  const remove = observedSpill
    .filter((s) => {
      const allowed = input.alternatives.some((a) => a.pool.gpuProduct === s.gpuProduct);
      return !allowed || ((replicasOf.get(s.gpuProduct) ?? 0) === 0 && s.pods.length === 0);
    })
    .map((s) => ({ name: s.deployment.metadata?.name ?? "", uid: s.deployment.metadata?.uid ?? "" }));

  const byProduct: ProductReplicas[] = [
    row(primary.plan.gpuProduct, name, replicasOf.get(primary.plan.gpuProduct) ?? 0, observe(primary.plan.gpuProduct, primary.deployment, primaryPods), primary.plan),
    ...spill.map((s) => row(s.gpuProduct, s.name, s.replicas, observe(s.gpuProduct, observedSpill.find((o) => o.gpuProduct === s.gpuProduct)?.deployment, observedSpill.find((o) => o.gpuProduct === s.gpuProduct)?.pods ?? []), s.plan)),
  ];
  const spilled = spill.reduce((sum, s) => sum + s.replicas, 0);
  const condition: DesiredCondition = spilled > 0
    ? {
        type: "SpilledOver",
        status: "True",
        reason: "PreferredPoolFull",
        message: `${spilled} of ${wanted} replica(s) run on ${spill.filter((s) => s.replicas > 0).map((s) => `${s.gpuProduct} (${s.replicas})`).join(", ")} because ${primary.plan.gpuProduct} has no room (${roomNote(free.get(primary.plan.gpuProduct), input.clusterPodsComplete === true)}); they move back when it does`,
      }
    : { type: "SpilledOver", status: "False", reason: "OnPreferredProduct", message: `every replica runs on ${primary.plan.gpuProduct}` };
  return {
    primaryReplicas: replicasOf.get(primary.plan.gpuProduct) ?? 0,
    spill,
    remove,
    replicasByProduct: byProduct,
    condition,
    events: decision.moves.map(eventOf),
    failedReturns: decision.moves.flatMap((m) => (m.reason === "SpillReturnFailed" && m.from ? [m.from] : [])),
    ...(!input.cacheCurrent && observedSpill.length > 0 ? { hold: true } : {}),
  };
}

/** How the free-GPU estimate of the preferred product reads in the SpilledOver message. */
function roomNote(free: { free: number; total: number } | undefined, complete: boolean): string {
  const counted = complete ? "counting every pod on its nodes" : "counting gpufleet's pods only: other work there is not visible to the operator";
  return `${free?.free ?? 0} of ${free?.total ?? 0} GPU(s) free, ${counted}`;
}

function eventOf(move: SpillMove): { type: "Normal" | "Warning"; reason: string; message: string } {
  return { type: move.reason === "SpilledOver" || move.reason === "SpillReturnFailed" ? "Warning" : "Normal", reason: move.reason, message: move.message };
}

function row(gpuProduct: string, workload: string, replicas: number, seen: WorkloadObservation, plan: ResolvedPlan): ProductReplicas {
  return {
    gpuProduct,
    workload,
    replicas,
    readyReplicas: seen.ready,
    unschedulable: seen.unschedulable,
    gpusPerReplica: plan.gpusPerReplica,
    tensorParallelism: plan.tensorParallelism,
    kvCacheTokensPerReplica: plan.kvCacheTokensPerReplica,
  };
}
