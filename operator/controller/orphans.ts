import type { V1Deployment } from "@kubernetes/client-node";
import { API_GROUP, API_VERSION, KIND, type ModelDeployment } from "../api/modeldeployment.js";
import { historyConfigMapName } from "../autoscaler/history-store.js";
import { logger } from "../log/logger.js";
import { abortableSleep } from "../runtime/abortable-sleep.js";
import type { Informer } from "../runtime/informer.js";
import { isNotFound, KubeApiError, pathFor, registerKind, type KubeClient, type KubeObject } from "../runtime/kube-client.js";
import { LWS_API_VERSION, LWS_KIND } from "../render/leaderworkerset.js";
import { confirmedOrphans, findOrphans, type OrphanCandidate } from "./ownership.js";
import { SELECTOR_LABEL } from "./reconcile-plan.js";

/** How often the sweep runs by default; an orphan is deleted after it was seen by two sweeps in a row. */
export const ORPHAN_SWEEP_DEFAULT_SECONDS = 30;
/** At most this many deletes per sweep: a backstop, not a second garbage collector. */
export const ORPHAN_DELETES_PER_SWEEP = 100;
/**
 * A term's first sweep comes this soon after it starts, and a sweep that found new orphans is followed by
 * the confirming one this soon (both at most the interval). A term starts after an API outage or a
 * leader change, when the garbage collector is likeliest to have missed a deletion; with the full
 * interval for both, its objects stayed up to two intervals (57.7 s in `npm run chaos -- --only api`).
 * The GC takes a second or two for what it did see, so 10 s does not race it; and each delete is
 * checked by live GETs and a uid precondition, not by the wait.
 */
export const ORPHAN_FIRST_SWEEP_MS = 5_000;
export const ORPHAN_CONFIRM_SWEEP_MS = 10_000;

/** When the next sweep runs: soon for a term's first and for confirming new orphans, else every interval. */
export function nextSweepDelayMs(sweepsDone: number, newOrphansLastSweep: number, intervalMs: number): number {
  if (sweepsDone === 0) return Math.min(intervalMs, ORPHAN_FIRST_SWEEP_MS);
  if (newOrphansLastSweep > 0) return Math.min(intervalMs, ORPHAN_CONFIRM_SWEEP_MS);
  return intervalMs;
}

registerKind(LWS_API_VERSION, LWS_KIND, { plural: "leaderworkersets", namespaced: true });

/** The label the autoscaler's history ConfigMap carries (autoscaler/history-store.ts) besides SELECTOR_LABEL. */
const HISTORY_COMPONENT_SELECTOR = "app.kubernetes.io/component=autoscaling-history";

/**
 * The kinds gpufleet writes per ModelDeployment that the Deployment informer does not cover, listed each
 * sweep by label. `optional`: the API may not be served (LeaderWorkerSet where sigs.k8s.io/lws is not
 * installed): a 404 on the list means there is nothing of that kind to collect.
 */
export const LISTED_KINDS = [
  { apiVersion: "v1", kind: "Service", labelSelector: SELECTOR_LABEL, optional: false },
  { apiVersion: "policy/v1", kind: "PodDisruptionBudget", labelSelector: SELECTOR_LABEL, optional: false },
  { apiVersion: LWS_API_VERSION, kind: LWS_KIND, labelSelector: SELECTOR_LABEL, optional: true },
  // Only the autoscaler's history ConfigMap, `<name>-autoscaling-history` (ConfigMaps are a general kind:
  // the name must be the one gpufleet gives, see isCollectable).
  { apiVersion: "v1", kind: "ConfigMap", labelSelector: `${SELECTOR_LABEL},${HISTORY_COMPONENT_SELECTOR}`, optional: false },
] as const;

const API_VERSIONS: Record<string, string> = {
  Deployment: "apps/v1",
  ...Object.fromEntries(LISTED_KINDS.map(({ kind, apiVersion }) => [kind, apiVersion])),
};

/** Kind-specific names on top of findOrphans' rules: a ConfigMap only if it is the dead owner's history. */
export function isCollectable(orphan: OrphanCandidate): boolean {
  if (!(orphan.kind in API_VERSIONS)) return false;
  return orphan.kind !== "ConfigMap" || orphan.name === historyConfigMapName(orphan.ownerName);
}

export interface OrphanSweeperOptions {
  client: KubeClient;
  modelDeployments: Informer<ModelDeployment & KubeObject>;
  deployments: Informer<V1Deployment & KubeObject>;
  /** Watched namespaces; empty: the whole cluster. */
  namespaces: readonly string[];
  intervalMs: number;
  /** Called after each delete (metrics). */
  onDeleted?: (orphan: OrphanCandidate) => void;
}

/**
 * The garbage collector's backstop (issue 11, found by `npm run chaos -- --seed 7`): after a kube-apiserver
 * kill, the Deployment, Service and PDB of a ModelDeployment deleted around the kill were never collected.
 * Every `intervalMs` this lists gpufleet-labelled Services, PDBs, LeaderWorkerSets (where that API is served) and
 * the autoscaler's history ConfigMaps (Deployments come from the informer),
 * picks those whose controller is a ModelDeployment that no longer lives and whose name no live
 * ModelDeployment has (`findOrphans`), and once an object has been such an orphan for two sweeps in a row,
 * confirms with live GETs (the ModelDeployment by name is 404; the object still has that uid and that
 * controller) and deletes it with a uid precondition. Runs only while leading (one term's controllers).
 */
export class OrphanSweeper {
  private readonly log = logger.child({ component: "orphan-sweeper" });
  private readonly stopController = new AbortController();
  private previous = new Set<string>();
  private sweepsDone = 0;
  /** Orphans the last sweep saw for the first time (they wait for a confirming sweep). */
  private newOrphansLastSweep = 0;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: OrphanSweeperOptions) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopController.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const signal = this.stopController.signal;
    while (!signal.aborted) {
      await abortableSleep(nextSweepDelayMs(this.sweepsDone, this.newOrphansLastSweep, this.options.intervalMs), signal);
      if (signal.aborted) return;
      try {
        await this.sweep();
      } catch (error) {
        this.newOrphansLastSweep = 0;
        this.log.warn({ err: String(error) }, "orphan sweep failed; trying again next interval");
      }
      this.sweepsDone++;
    }
  }

  /** One sweep; returns the objects deleted. Public for tests. */
  async sweep(): Promise<OrphanCandidate[]> {
    const { client, modelDeployments, deployments, namespaces } = this.options;
    if (!modelDeployments.hasSynced || !deployments.hasSynced) return [];
    const objects: KubeObject[] = deployments.list().map((d) => ({ ...d, kind: "Deployment" }));
    for (const { apiVersion, kind, labelSelector, optional } of LISTED_KINDS)
      for (const namespace of namespaces.length ? namespaces : [undefined]) {
        try {
          const list = await client.list<KubeObject>(pathFor({ apiVersion, kind, namespace }), { labelSelector });
          objects.push(...list.items.map((item) => ({ ...item, kind })));
        } catch (error) {
          if (optional && isNotFound(error)) break; // That API is not served: nothing of this kind anywhere.
          throw error;
        }
      }
    // Live ModelDeployments from the cache, read after the lists: one created meanwhile is in it or its
    // objects are not yet in the lists; one the cache missed is caught by the live GET below.
    const live = modelDeployments.list().map((md) => ({ namespace: md.metadata.namespace ?? "", name: md.metadata.name, uid: md.metadata.uid ?? "" }));
    const candidates = findOrphans(objects, live).filter(isCollectable);
    const confirmed = confirmedOrphans(this.previous, candidates).slice(0, ORPHAN_DELETES_PER_SWEEP);
    this.newOrphansLastSweep = candidates.filter((c) => !this.previous.has(c.uid)).length;
    this.previous = new Set(candidates.map((c) => c.uid));
    const deleted: OrphanCandidate[] = [];
    for (const orphan of confirmed) if (await this.confirmAndDelete(orphan)) deleted.push(orphan);
    return deleted;
  }

  private async confirmAndDelete(orphan: OrphanCandidate): Promise<boolean> {
    const { client } = this.options;
    const mdPath = pathFor({ apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, namespace: orphan.namespace, name: orphan.ownerName });
    try {
      await client.get(mdPath);
      return false; // A ModelDeployment of that name lives (the cache is behind): its reconcile takes the object over.
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const apiVersion = API_VERSIONS[orphan.kind];
    if (!apiVersion) return false;
    const path = pathFor({ apiVersion, kind: orphan.kind, namespace: orphan.namespace, name: orphan.name });
    let current: KubeObject;
    try {
      current = await client.get<KubeObject>(path);
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
    const controller = current.metadata?.ownerReferences?.find((ref) => ref.controller === true);
    if (current.metadata?.uid !== orphan.uid || controller?.uid !== orphan.ownerUid || current.metadata?.deletionTimestamp) return false;
    try {
      await client.request("DELETE", path, {
        body: { apiVersion: "v1", kind: "DeleteOptions", propagationPolicy: "Background", preconditions: { uid: orphan.uid } },
      });
    } catch (error) {
      // Gone meanwhile, or replaced by another object of that name (the uid precondition fails with 409).
      if (isNotFound(error) || (error instanceof KubeApiError && error.statusCode === 409)) return false;
      throw error;
    }
    this.log.info(
      { kind: orphan.kind, name: orphan.name, namespace: orphan.namespace, deadOwnerUid: orphan.ownerUid },
      "deleted an object whose ModelDeployment is gone (the garbage collector had not, after two sweeps)",
    );
    this.options.onDeleted?.(orphan);
    return true;
  }
}
