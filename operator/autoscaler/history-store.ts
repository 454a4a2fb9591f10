/**
 * Where the autoscaler's workload history lives in the cluster: one ConfigMap per ModelDeployment,
 * `<name>-autoscaling-history`, controlled by the ModelDeployment (owner reference by uid, so it is
 * garbage-collected with it). A restarted operator, or a new leader, reads it back and resumes with
 * the learned capacity, readiness times and demand buckets instead of starting blind.
 *
 * Why a ConfigMap and not the status: the history is up to ~60 KB (MAX_BUCKETS of two numbers),
 * written every few minutes; in the status it would ride along on every status write and every
 * `kubectl get -o yaml`. The ConfigMap is the operator's own: one it does not control by uid is
 * never read nor overwritten (a tenant could pre-create the name to feed the autoscaler a history).
 */
import type { ModelDeployment } from "../api/modeldeployment.js";
import { ownershipVerdict } from "../controller/ownership.js";
import { SELECTOR_LABEL } from "../controller/reconcile-plan.js";
import { ownerReference } from "../render/index.js";
import { isNotFound, type KubeClient, type KubeObject, type OwnerReference } from "../runtime/kube-client.js";
import { parseHistory, type WorkloadHistory } from "./history.js";

export const HISTORY_KEY = "history.json";
/** Refuse to read more than this (the history's bound is ~60 KB; a ConfigMap may hold 1 MiB). */
export const MAX_HISTORY_BYTES = 256 * 1024;

export function historyConfigMapName(modelDeploymentName: string): string {
  return `${modelDeploymentName}-autoscaling-history`;
}

export function renderHistoryConfigMap(
  md: ModelDeployment,
  history: WorkloadHistory,
): KubeObject & { data: Record<string, string> } {
  const { name, namespace, uid } = md.metadata;
  if (!uid || !namespace)
    throw new Error(`ModelDeployment ${name} has no uid or namespace: render it as read from the API server`);
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: historyConfigMapName(name),
      namespace,
      labels: {
        [SELECTOR_LABEL]: name,
        "app.kubernetes.io/managed-by": "gpufleet",
        "app.kubernetes.io/component": "autoscaling-history",
      },
      ownerReferences: [ownerReference(md) as OwnerReference],
    },
    data: { [HISTORY_KEY]: JSON.stringify(history) },
  };
}

export type HistoryRead =
  | { kind: "absent" }
  | { kind: "loaded"; history: WorkloadHistory }
  | { kind: "unreadable"; why: string }
  | { kind: "foreign"; why: string };

/** What a ConfigMap read from the API server holds for `md` (pure). */
export function historyFromConfigMap(configMap: KubeObject | undefined, md: ModelDeployment): HistoryRead {
  if (!configMap) return { kind: "absent" };
  const verdict = ownershipVerdict(configMap, { name: md.metadata.name, uid: md.metadata.uid ?? "" });
  if (verdict.verdict !== "owned")
    return { kind: "foreign", why: verdict.verdict === "foreign" ? verdict.owner : verdict.verdict };
  const text = (configMap as KubeObject & { data?: Record<string, unknown> }).data?.[HISTORY_KEY];
  if (typeof text !== "string") return { kind: "unreadable", why: `no ${HISTORY_KEY}` };
  if (text.length > MAX_HISTORY_BYTES)
    return { kind: "unreadable", why: `${HISTORY_KEY} larger than ${MAX_HISTORY_BYTES} bytes` };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: "unreadable", why: `${HISTORY_KEY} is not JSON` };
  }
  const history = parseHistory(value);
  return history
    ? { kind: "loaded", history }
    : { kind: "unreadable", why: `${HISTORY_KEY} is not a version-1 history` };
}

export class HistoryStore {
  constructor(private readonly client: KubeClient) {}

  private path(md: ModelDeployment): string {
    return `/api/v1/namespaces/${md.metadata.namespace}/configmaps/${historyConfigMapName(md.metadata.name)}`;
  }

  private async read(md: ModelDeployment): Promise<KubeObject | undefined> {
    try {
      return await this.client.get<KubeObject>(this.path(md));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async load(md: ModelDeployment): Promise<HistoryRead> {
    return historyFromConfigMap(await this.read(md), md);
  }

  /**
   * Write the history, read first by name: created when absent, updated (uid precondition) when
   * ours or left by a deleted namesake; a foreign or terminating ConfigMap is left alone.
   */
  async save(md: ModelDeployment, history: WorkloadHistory): Promise<"written" | { refused: string }> {
    const existing = await this.read(md);
    const verdict = ownershipVerdict(existing, { name: md.metadata.name, uid: md.metadata.uid ?? "" });
    if (verdict.verdict === "foreign")
      return { refused: `ConfigMap ${historyConfigMapName(md.metadata.name)} exists, ${verdict.owner}` };
    if (verdict.verdict === "terminating")
      return { refused: `ConfigMap ${historyConfigMapName(md.metadata.name)} is being deleted` };
    const object = renderHistoryConfigMap(md, history);
    if (verdict.verdict === "absent") {
      await this.client.create(object);
    } else {
      await this.client.apply(
        { ...object, metadata: { ...object.metadata, uid: verdict.uid } },
        { force: true },
      );
    }
    return "written";
  }
}
