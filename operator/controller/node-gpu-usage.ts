/**
 * GPUs held on GPU nodes by pods gpufleet does not run. The operator's pod informer sees only the pods of
 * its own workloads (the gpufleet.io/model-deployment label), so its free-GPU estimate for spill-over
 * (./spill.ts) counted a pool full of other work as free, tried a return there, and backed off only after
 * the scheduler refused the new replica. While replicas are spilled, this reads the pods bound to the
 * allowed products' nodes, in every namespace, by node (`fieldSelector=spec.nodeName=<node>`, the
 * kubelet's own query), at most every `ttlMs` per node, and adds them to the estimate.
 *
 * That list needs `list pods` cluster-wide, which the chart grants when the operator watches all
 * namespaces (its namespaced rules are then a ClusterRole). With `watchNamespaces` set the API server
 * refuses it (403): the estimate then counts gpufleet's pods only, as before, and the scheduler stays
 * the judge (a refused return is backed off); the operator says so once in its log and asks again after
 * `forbiddenRetryMs`.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { logger } from "../log/logger.js";
import { KubeApiError, type KubeClient } from "../runtime/kube-client.js";
import { GPU_RESOURCE } from "./placement.js";
import { SELECTOR_LABEL } from "./reconcile-plan.js";

/** Nodes read per reconcile at most: beyond that the estimate keeps what the cache has for the others. */
export const MAX_NODES_PER_READ = 64;

export interface NodeGpuUsageOptions {
  client: Pick<KubeClient, "list">;
  /** How long one node's pods are reused. Default 5 s (the spill-over requeue is 10 s). */
  ttlMs?: number;
  /** After a 403, how long before asking again. Default 10 min. */
  forbiddenRetryMs?: number;
  /** Node lists in flight at once. Default 4. */
  concurrency?: number;
  now?: () => number;
}

/** Only what the free-GPU estimate reads: node, phase and each container's GPU request and limit. */
export function gpuShape(pod: V1Pod): V1Pod {
  const gpu = (values: Record<string, string> | undefined) =>
    values?.[GPU_RESOURCE] !== undefined ? { [GPU_RESOURCE]: String(values[GPU_RESOURCE]).slice(0, 16) } : undefined;
  return {
    metadata: { ...(pod.metadata?.uid ? { uid: pod.metadata.uid } : {}) },
    spec: {
      ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
      containers: (pod.spec?.containers ?? []).slice(0, 64).map((c) => {
        const requests = gpu(c.resources?.requests);
        const limits = gpu(c.resources?.limits);
        return {
          name: "c",
          ...(requests || limits ? { resources: { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) } } : {}),
        };
      }),
    },
    ...(pod.status?.phase ? { status: { phase: pod.status.phase } } : {}),
  };
}

/**
 * Pure: the pods the free-GPU estimate counts: gpufleet's own (the informer's, current), plus the pods
 * listed on the nodes that are not gpufleet's. A listed pod with the gpufleet label is left out: the
 * informer holds its current state (or it was deleted since the list).
 */
export function podsForEstimate(own: readonly V1Pod[], listed: readonly { pod: V1Pod; labelled: boolean }[]): V1Pod[] {
  const ownUids = new Set(own.map((pod) => pod.metadata?.uid).filter((uid): uid is string => !!uid));
  return [...own, ...listed.filter((entry) => !entry.labelled && !ownUids.has(entry.pod.metadata?.uid ?? "")).map((entry) => entry.pod)];
}

const log = logger.child({ component: "node-gpu-usage" });

export class NodeGpuUsage {
  private readonly cache = new Map<string, { atMs: number; pods: { pod: V1Pod; labelled: boolean }[] }>();
  private forbiddenUntilMs = 0;
  private told = false;

  constructor(private readonly options: NodeGpuUsageOptions) {}

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /**
   * The unfinished pods bound to these nodes (any namespace), in their GPU shape, with whether they carry
   * the gpufleet label. Nodes whose list fails keep their last list (or none). Undefined while the API
   * server refuses the list (RBAC).
   */
  async podsOn(nodeNames: readonly string[]): Promise<{ pod: V1Pod; labelled: boolean }[] | undefined> {
    const now = this.now();
    if (now < this.forbiddenUntilMs) return undefined;
    const ttl = this.options.ttlMs ?? 5_000;
    const wanted = [...new Set(nodeNames)].slice(0, MAX_NODES_PER_READ);
    const stale = wanted.filter((node) => {
      const entry = this.cache.get(node);
      return !entry || now - entry.atMs >= ttl;
    });
    let forbidden = false;
    const queue = [...stale];
    const worker = async () => {
      for (let node = queue.shift(); node !== undefined && !forbidden; node = queue.shift()) {
        try {
          const list = await this.options.client.list<V1Pod>("/api/v1/pods", {
            fieldSelector: `spec.nodeName=${node},status.phase!=Succeeded,status.phase!=Failed`,
            limit: 500,
          });
          this.cache.set(node, {
            atMs: this.now(),
            pods: list.items.map((pod) => ({ pod: gpuShape(pod), labelled: pod.metadata?.labels?.[SELECTOR_LABEL] !== undefined })),
          });
        } catch (error) {
          if (error instanceof KubeApiError && error.statusCode === 403) forbidden = true;
          else log.debug({ node, err: String(error) }, "could not list the pods on a GPU node; the estimate keeps the last list");
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency ?? 4, Math.max(1, stale.length)) }, worker));
    if (forbidden) {
      this.forbiddenUntilMs = this.now() + (this.options.forbiddenRetryMs ?? 10 * 60_000);
      if (!this.told)
        log.info(
          "cannot list pods in all namespaces (the operator watches only some namespaces): the spill-over free-GPU estimate counts gpufleet's pods only, and the scheduler judges returns",
        );
      this.told = true;
      return undefined;
    }
    // Forget nodes not asked about for a while (deleted nodes, products no longer allowed).
    for (const [node, entry] of this.cache) if (now - entry.atMs > 10 * ttl && !wanted.includes(node)) this.cache.delete(node);
    return wanted.flatMap((node) => this.cache.get(node)?.pods ?? []);
  }
}
