import type { V1Deployment } from "@kubernetes/client-node";
import { API_GROUP, API_VERSION, KIND, type ModelDeployment } from "../api/modeldeployment.js";
import { logger } from "../log/logger.js";
import { abortableSleep } from "../runtime/abortable-sleep.js";
import type { Informer } from "../runtime/informer.js";
import { isNotFound, KubeApiError, pathFor, type KubeClient, type KubeObject } from "../runtime/kube-client.js";
import { confirmedOrphans, findOrphans, type OrphanCandidate } from "./ownership.js";
import { SELECTOR_LABEL } from "./reconcile-plan.js";

/** How often the sweep runs by default; an orphan is deleted after it was seen by two sweeps in a row. */
export const ORPHAN_SWEEP_DEFAULT_SECONDS = 30;
/** At most this many deletes per sweep: a backstop, not a second garbage collector. */
export const ORPHAN_DELETES_PER_SWEEP = 100;

/** The kinds gpufleet writes per ModelDeployment that the Deployment informer does not cover. */
const LISTED_KINDS = [
  { apiVersion: "v1", kind: "Service", plural: "services", group: "" },
  { apiVersion: "policy/v1", kind: "PodDisruptionBudget", plural: "poddisruptionbudgets", group: "policy" },
] as const;

function collectionPath(apiVersion: string, plural: string, namespace: string | undefined): string {
  const base = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return namespace ? `${base}/namespaces/${namespace}/${plural}` : `${base}/${plural}`;
}

const API_VERSIONS: Record<string, string> = { Deployment: "apps/v1", Service: "v1", PodDisruptionBudget: "policy/v1" };

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
 * Every `intervalMs` this lists gpufleet-labelled Services and PDBs (Deployments come from the informer),
 * picks those whose controller is a ModelDeployment that no longer lives and whose name no live
 * ModelDeployment has (`findOrphans`), and once an object has been such an orphan for two sweeps in a row,
 * confirms with live GETs (the ModelDeployment by name is 404; the object still has that uid and that
 * controller) and deletes it with a uid precondition. Runs only while leading (one term's controllers).
 */
export class OrphanSweeper {
  private readonly log = logger.child({ component: "orphan-sweeper" });
  private readonly stopController = new AbortController();
  private previous = new Set<string>();
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
      await abortableSleep(this.options.intervalMs, signal);
      if (signal.aborted) return;
      try {
        await this.sweep();
      } catch (error) {
        this.log.warn({ err: String(error) }, "orphan sweep failed; trying again next interval");
      }
    }
  }

  /** One sweep; returns the objects deleted. Public for tests. */
  async sweep(): Promise<OrphanCandidate[]> {
    const { client, modelDeployments, deployments, namespaces } = this.options;
    if (!modelDeployments.hasSynced || !deployments.hasSynced) return [];
    const objects: KubeObject[] = deployments.list().map((d) => ({ ...d, kind: "Deployment" }));
    for (const { apiVersion, kind, plural } of LISTED_KINDS)
      for (const namespace of namespaces.length ? namespaces : [undefined]) {
        const list = await client.list<KubeObject>(collectionPath(apiVersion, plural, namespace), { labelSelector: SELECTOR_LABEL });
        objects.push(...list.items.map((item) => ({ ...item, kind })));
      }
    // Live ModelDeployments from the cache, read after the lists: one created meanwhile is in it or its
    // objects are not yet in the lists; one the cache missed is caught by the live GET below.
    const live = modelDeployments.list().map((md) => ({ namespace: md.metadata.namespace ?? "", name: md.metadata.name, uid: md.metadata.uid ?? "" }));
    const candidates = findOrphans(objects, live);
    const confirmed = confirmedOrphans(this.previous, candidates).slice(0, ORPHAN_DELETES_PER_SWEEP);
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
    const apiVersion = API_VERSIONS[orphan.kind] ?? "v1";
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
