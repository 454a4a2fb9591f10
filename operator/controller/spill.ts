/**
 * Spill-over across GPU products, as pure decisions. A ModelDeployment runs its replicas on its preferred
 * GPU product (the placement's first choice); when that pool is full (its pods pending Unschedulable),
 * further replicas go to the next allowed product that has room, each product with its own plan, as a
 * second workload of the same ModelDeployment. When the preferred pool frees up, replicas come back:
 * scale-down takes spilled replicas first, and while the preferred pool shows room one replica at a time
 * is started there and, once it is ready, one spilled replica is removed (make before break).
 *
 * "Room" is an estimate from what the operator sees (GPU nodes, and the GPU requests of the pods on them:
 * gpufleet's own, and every pod on the allowed products' nodes while replicas are spilled and the operator
 * may list them, ./node-gpu-usage.ts); the scheduler is the judge: a product whose pods of this
 * ModelDeployment go Unschedulable counts as full whatever the estimate says.
 */
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { GPU_PRODUCT_LABEL, GPU_RESOURCE } from "./placement.js";

/** One GPU product this ModelDeployment may run on, in preference order, with its plan. */
export interface ProductOption {
  gpuProduct: string;
  gpusPerReplica: number;
  /** Free GPUs the operator sees on the product's nodes, in whole replicas' worth or not (estimate). */
  freeGpus: number;
  /** The largest free block on one node: a replica needs all its GPUs on one node. */
  freeGpusOnBestNode: number;
}

/** One workload (Deployment) of this ModelDeployment as observed. */
export interface WorkloadObservation {
  gpuProduct: string;
  /** spec.replicas of its Deployment. */
  replicas: number;
  /** Pods not being deleted. */
  pods: number;
  /** Of those, bound to a node. */
  scheduled: number;
  ready: number;
  /** Of those, pending with PodScheduled=False reason Unschedulable. */
  unschedulable: number;
}

export interface SpillInput {
  /** Replicas the ModelDeployment should run in total. */
  wanted: number;
  /** Allowed products that fit a replica, preferred first. */
  options: readonly ProductOption[];
  observed: readonly WorkloadObservation[];
  /**
   * Every observed Deployment's pods match its replicas. Moves between products (spill-out, return)
   * wait for this, so a replica being created or removed is never moved twice; scaling the total does
   * not. (The caller does not plan at all from a cache behind its own last write.)
   */
  settled: boolean;
  /**
   * Products not to start a returning replica on for now: a return there just failed (its replica went
   * Unschedulable: work the operator cannot see holds the GPUs). The shell backs off per product.
   */
  holdReturns?: readonly string[];
}

export interface SpillMove {
  from?: string;
  to?: string;
  count: number;
  /** SpilledOver, SpillReturning, SpillReturned, SpillReturnFailed, ScaledUp, ScaledDown. */
  reason: string;
  message: string;
}

export interface SpillDecision {
  /** Replicas per product, in the order of `options` (products no longer allowed get 0 and come last). */
  replicas: { gpuProduct: string; replicas: number }[];
  moves: SpillMove[];
}

function gpusOf(pod: V1Pod): number {
  let total = 0;
  for (const container of pod.spec?.containers ?? []) {
    const value = Number(container.resources?.requests?.[GPU_RESOURCE] ?? container.resources?.limits?.[GPU_RESOURCE] ?? 0);
    if (Number.isFinite(value) && value > 0) total += value;
  }
  return total;
}

/**
 * Free GPUs per product: each ready, schedulable node's allocatable nvidia.com/gpu (`total`) minus the
 * requests of the pods bound to it that are not finished. `pods` are the pods the operator sees: its own,
 * and, while replicas are spilled and it may list pods in all namespaces, every pod on the allowed
 * products' nodes (./node-gpu-usage.ts). Work it cannot see shows up as Unschedulable pods instead.
 */
export function freeGpusByProduct(nodes: readonly V1Node[], pods: readonly V1Pod[]): Map<string, { free: number; bestNode: number; total: number }> {
  const used = new Map<string, number>();
  for (const pod of pods) {
    const node = pod.spec?.nodeName;
    if (!node || pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") continue;
    used.set(node, (used.get(node) ?? 0) + gpusOf(pod));
  }
  const result = new Map<string, { free: number; bestNode: number; total: number }>();
  for (const node of nodes) {
    const product = node.metadata?.labels?.[GPU_PRODUCT_LABEL];
    if (!product || node.spec?.unschedulable) continue;
    if (node.status?.conditions?.find((c) => c.type === "Ready")?.status !== "True") continue;
    const allocatable = Number(node.status?.allocatable?.[GPU_RESOURCE] ?? 0);
    if (!Number.isFinite(allocatable) || allocatable <= 0) continue;
    const free = Math.max(0, allocatable - (used.get(node.metadata?.name ?? "") ?? 0));
    const entry = result.get(product) ?? { free: 0, bestNode: 0, total: 0 };
    entry.free += free;
    entry.total += allocatable;
    entry.bestNode = Math.max(entry.bestNode, free);
    result.set(product, entry);
  }
  return result;
}

/**
 * Replicas per product for the next step. Pure; one step at a time (the reconcile loop calls it again
 * after each change is observed). See the module comment for the rules.
 */
export function planSpill(input: SpillInput): SpillDecision {
  const { wanted, options } = input;
  const moves: SpillMove[] = [];
  const observedBy = new Map(input.observed.map((o) => [o.gpuProduct, o]));
  const blank: WorkloadObservation = { gpuProduct: "", replicas: 0, pods: 0, scheduled: 0, ready: 0, unschedulable: 0 };
  const obs = options.map((o) => observedBy.get(o.gpuProduct) ?? { ...blank, gpuProduct: o.gpuProduct });
  const a = obs.map((o) => o.replicas);
  // Workloads on products no longer allowed or no longer fitting: emptied (their replicas are re-added below).
  const gone = input.observed.filter((o) => !options.some((p) => p.gpuProduct === o.gpuProduct));
  const result = (): SpillDecision => ({
    replicas: [
      ...options.map((o, i) => ({ gpuProduct: o.gpuProduct, replicas: a[i] ?? 0 })),
      ...gone.map((o) => ({ gpuProduct: o.gpuProduct, replicas: 0 })),
    ],
    moves,
  });
  if (options.length === 0) return result();

  // A product is blocked when pods of ours there cannot be scheduled; its room estimate is then 0.
  const blocked = obs.map((o) => o.unschedulable > 0);
  // Room left in whole replicas, after the replicas already asked of it that are not yet bound.
  const room = options.map((o, i) => {
    if (blocked[i]) return 0;
    const waiting = Math.max(0, (a[i] ?? 0) - (obs[i]?.scheduled ?? 0));
    const free = o.freeGpus - waiting * o.gpusPerReplica;
    return o.freeGpusOnBestNode >= o.gpusPerReplica ? Math.max(0, Math.floor(free / o.gpusPerReplica)) : 0;
  });
  const take = (i: number) => {
    room[i] = Math.max(0, (room[i] ?? 0) - 1);
  };
  const firstWithRoom = (from: number) => {
    for (let i = from; i < options.length; i++) if ((room[i] ?? 0) > 0) return i;
    return -1;
  };
  const name = (i: number) => options[i]?.gpuProduct ?? "";

  let total = a.reduce((sum, n) => sum + n, 0);

  // First placement (nothing observed anywhere): fill by room, preferred first; what fits nowhere waits on the preferred pool.
  if (total === 0 && gone.length === 0 && wanted > 0 && input.observed.length === 0) {
    for (let k = 0; k < wanted; k++) {
      const i = Math.max(0, firstWithRoom(0));
      a[i] = (a[i] ?? 0) + 1;
      take(i);
    }
    if ((a[0] ?? 0) < wanted)
      moves.push({ to: name(firstWithRoom(1)), count: wanted - (a[0] ?? 0), reason: "SpilledOver", message: `${name(0)} has room for ${a[0]} of ${wanted} replica(s); the rest start on the next allowed GPU product` });
    return result();
  }

  // Scale up: each new replica to the first product with room, else to the preferred one (where it waits and spills next).
  if (total < wanted) {
    const added = new Map<number, number>();
    for (let k = total; k < wanted; k++) {
      const i = Math.max(0, firstWithRoom(0));
      a[i] = (a[i] ?? 0) + 1;
      take(i);
      added.set(i, (added.get(i) ?? 0) + 1);
    }
    for (const [i, count] of added)
      moves.push({ to: name(i), count, reason: i === 0 ? "ScaledUp" : "SpilledOver", message: i === 0 ? `${count} replica(s) added on ${name(i)}` : `${name(0)} is full: ${count} new replica(s) on ${name(i)}` });
    total = wanted;
  }

  // Scale down (or finish a return): unschedulable replicas first, then spilled ones (last product first)
  // once everything before them is ready, then the preferred product's when nothing is spilled.
  if (total > wanted) {
    let surplus = total - wanted;
    for (let i = options.length - 1; i >= 0 && surplus > 0; i--) {
      const r = Math.min(surplus, obs[i]?.unschedulable ?? 0, a[i] ?? 0);
      if (r > 0) {
        a[i] = (a[i] ?? 0) - r;
        surplus -= r;
        const returning = a.slice(i + 1).some((n) => n > 0);
        moves.push(
          returning
            ? { from: name(i), count: r, reason: "SpillReturnFailed", message: `${name(i)} had no room after all (its new replica is unschedulable: other work holds the GPUs); replicas stay where they are and the return is tried again later` }
            : { from: name(i), count: r, reason: "ScaledDown", message: `${r} replica(s) that could not be scheduled on ${name(i)} removed` },
        );
      }
    }
    for (let i = options.length - 1; i >= 1 && surplus > 0; i--) {
      if ((a[i] ?? 0) === 0) continue;
      const before = obs.slice(0, i).every((o, j) => o.ready >= (a[j] ?? 0));
      if (!before) break;
      const r = Math.min(surplus, a[i] ?? 0);
      a[i] = (a[i] ?? 0) - r;
      surplus -= r;
      const returning = obs.slice(0, i).some((o, j) => (a[j] ?? 0) > 0 && o.ready >= (a[j] ?? 0)) && (a[0] ?? 0) > 0;
      moves.push({
        from: name(i),
        count: r,
        reason: returning ? "SpillReturned" : "ScaledDown",
        message: `${r} replica(s) removed from ${name(i)} (spilled replicas go first; ${name(0)} has ${a[0]} ready)`,
      });
    }
    if (surplus > 0 && a.slice(1).every((n) => n === 0)) {
      a[0] = Math.max(0, (a[0] ?? 0) - surplus);
      moves.push({ from: name(0), count: surplus, reason: "ScaledDown", message: `${surplus} replica(s) removed from ${name(0)}` });
      surplus = 0;
    }
    return result();
  }
  if (!input.settled) return result();

  // Spill out: replicas that cannot be scheduled move to the next product with room.
  let spilled = false;
  for (let i = 0; i < options.length - 1; i++) {
    let stuck = Math.min(obs[i]?.unschedulable ?? 0, a[i] ?? 0);
    while (stuck > 0) {
      const j = firstWithRoom(i + 1);
      if (j === -1) break;
      a[i] = (a[i] ?? 0) - 1;
      a[j] = (a[j] ?? 0) + 1;
      take(j);
      stuck--;
      spilled = true;
      const last = moves[moves.length - 1];
      if (last && last.reason === "SpilledOver" && last.from === name(i) && last.to === name(j)) last.count++;
      else moves.push({ from: name(i), to: name(j), count: 1, reason: "SpilledOver", message: "" });
    }
  }
  for (const move of moves)
    if (move.reason === "SpilledOver")
      move.message = `${move.from} is full (${move.count} replica(s) unschedulable there): moved to ${move.to}, which has room`;
  if (spilled) return result();

  // Return: while nothing is blocked, the most preferred product with room takes one replica from the
  // least preferred product holding any, started before the spilled one goes (removed above once ready).
  if (blocked.some(Boolean) || obs.some((o, i) => o.ready < (a[i] ?? 0))) return result();
  let donor = -1;
  for (let j = options.length - 1; j >= 1; j--)
    if ((a[j] ?? 0) > 0) {
      donor = j;
      break;
    }
  if (donor === -1) return result();
  const held = new Set(input.holdReturns ?? []);
  let target = -1;
  for (let i = 0; i < donor; i++)
    if ((room[i] ?? 0) > 0 && !held.has(name(i))) {
      target = i;
      break;
    }
  if (target === -1) return result();
  a[target] = (a[target] ?? 0) + 1;
  moves.push({
    from: name(donor),
    to: name(target),
    count: 1,
    reason: "SpillReturning",
    message: `${name(target)} has room again: starting a replica there; one on ${name(donor)} is removed once it is ready`,
  });
  return result();
}
