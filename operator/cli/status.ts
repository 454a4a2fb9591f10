/**
 * `gpufleet status`: one line per ModelDeployment from what the operator wrote in its status
 * (replicas, plan, autoscaler observation, conditions). Pure summarizing and formatting here; the
 * API call is the thin `listModelDeployments` shell, injected so tests need no cluster.
 */
import { CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { API_GROUP, API_VERSION, PLURAL, type ModelDeployment } from "../api/modeldeployment.js";
import { EXIT_ERROR, EXIT_OK, type StatusCommand } from "./args.js";
import type { CommandOutcome } from "./plan.js";
import { renderStructured, renderTable } from "./output.js";

export interface ModelDeploymentSummary {
  namespace: string;
  name: string;
  model: string;
  engine: string;
  gpuProduct: string | null;
  desiredReplicas: number;
  replicas: number;
  readyReplicas: number;
  gpusPerReplica: number | null;
  /** Pods that exist x GPUs each: what the fleet holds, ready or not. */
  gpusInUse: number;
  kvCacheUtilization: number | null;
  queueDepth: number | null;
  /** Share of recent requests within the TTFT objective (null: no objective or nothing measured). */
  ttftWithinTarget: number | null;
  /** Ready, NotReady, CapacityShortfall, Degraded or Unknown (no Ready condition yet). */
  state: string;
  /** Reason and message of the condition behind `state`, when not Ready. */
  reason: string | null;
}

function conditionStatus(
  md: ModelDeployment,
  type: string,
): { status: string; reason: string; message: string } | undefined {
  return md.status?.conditions?.find((condition) => condition.type === type);
}

export function summarizeModelDeployment(md: ModelDeployment): ModelDeploymentSummary {
  const status = md.status ?? {};
  const gpusPerReplica = status.plan?.gpusPerReplica ?? null;
  const replicas = status.replicas ?? 0;
  const ready = conditionStatus(md, "Ready");
  const shortfall = conditionStatus(md, "CapacityShortfall");
  const degraded = conditionStatus(md, "Degraded");
  // A shortfall or degradation is worth showing even while Ready is True (some replicas serve).
  let state = "Unknown";
  let reason: string | null = null;
  if (shortfall?.status === "True") {
    state = "CapacityShortfall";
    reason = `${shortfall.reason}: ${shortfall.message}`;
  } else if (degraded?.status === "True") {
    state = "Degraded";
    reason = `${degraded.reason}: ${degraded.message}`;
  } else if (ready?.status === "True") state = "Ready";
  else if (ready) {
    state = "NotReady";
    reason = `${ready.reason}: ${ready.message}`;
  }
  return {
    namespace: md.metadata.namespace ?? "",
    name: md.metadata.name,
    model: md.spec.model.name,
    engine: md.spec.engine?.kind ?? "vllm",
    gpuProduct: status.plan?.gpuProduct ?? null,
    desiredReplicas: status.desiredReplicas ?? md.spec.replicas ?? 0,
    replicas,
    readyReplicas: status.readyReplicas ?? 0,
    gpusPerReplica,
    gpusInUse: gpusPerReplica === null ? 0 : replicas * gpusPerReplica,
    kvCacheUtilization: status.autoscaler?.kvCacheUtilization ?? null,
    queueDepth: status.autoscaler?.queueDepth ?? null,
    ttftWithinTarget: status.autoscaler?.ttftWithinTarget ?? null,
    state,
    reason,
  };
}

const percent = (fraction: number | null): string =>
  fraction === null ? "-" : `${(fraction * 100).toFixed(0)}%`;
const number = (value: number | null): string =>
  value === null ? "-" : Number.isInteger(value) ? String(value) : value.toFixed(1);

export function formatStatusTable(
  summaries: readonly ModelDeploymentSummary[],
  showNamespace: boolean,
): string {
  if (summaries.length === 0) return "No ModelDeployments found.\n";
  const header = [
    ...(showNamespace ? ["NAMESPACE"] : []),
    "NAME",
    "MODEL",
    "ENGINE",
    "GPU",
    "READY",
    "GPUS",
    "KV-CACHE",
    "QUEUE",
    "TTFT-OK",
    "STATE",
  ];
  const rows = summaries.map((summary) => [
    ...(showNamespace ? [summary.namespace] : []),
    summary.name,
    summary.model,
    summary.engine,
    summary.gpuProduct ?? "-",
    `${summary.readyReplicas}/${summary.desiredReplicas}`,
    summary.gpusPerReplica === null ? "-" : `${summary.gpusInUse} (${summary.gpusPerReplica}/replica)`,
    percent(summary.kvCacheUtilization),
    number(summary.queueDepth),
    summary.ttftWithinTarget === null ? "-" : `${(summary.ttftWithinTarget * 100).toFixed(1)}%`,
    summary.state,
  ]);
  const totalGpus = summaries.reduce((sum, summary) => sum + summary.gpusInUse, 0);
  const notReady = summaries.filter((summary) => summary.state !== "Ready");
  const lines = [
    `${summaries.length} ModelDeployment(s), ${totalGpus} GPU(s) in use, ${notReady.length} not ready`,
  ];
  for (const summary of notReady)
    if (summary.reason) lines.push(`  ${summary.namespace}/${summary.name}: ${summary.reason}`);
  return `${renderTable(header, rows)}\n${lines.join("\n")}\n`;
}

export interface StatusTarget {
  /** Undefined: all namespaces. */
  namespace: string | undefined;
}

export type ListModelDeployments = (target: StatusTarget) => Promise<ModelDeployment[]>;

/** Resolves the namespace (-n, else the context's, else default) and the lister for a kubeconfig. */
export function kubernetesLister(command: StatusCommand): {
  target: StatusTarget;
  list: ListModelDeployments;
} {
  return customObjectLister<ModelDeployment>(command, PLURAL);
}

/** The namespace flags every cluster command takes. */
export interface ClusterFlags {
  namespace?: string;
  allNamespaces: boolean;
  kubeconfig?: string;
  context?: string;
}

/**
 * Lists gpufleet.io objects of `plural` for a command: its kubeconfig and context, and the namespace
 * (-n, else the context's, else default; -A: all).
 */
export function customObjectLister<T>(
  command: ClusterFlags,
  plural: string,
): { target: StatusTarget; list: (target: StatusTarget) => Promise<T[]> } {
  const kubeConfig = new KubeConfig();
  if (command.kubeconfig) kubeConfig.loadFromFile(command.kubeconfig);
  else kubeConfig.loadFromDefault();
  if (command.context) kubeConfig.setCurrentContext(command.context);
  const contextNamespace = kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace;
  const namespace = command.allNamespaces ? undefined : (command.namespace ?? contextNamespace ?? "default");
  const api = kubeConfig.makeApiClient(CustomObjectsApi);
  const list = async ({ namespace: targetNamespace }: StatusTarget): Promise<T[]> => {
    const request = { group: API_GROUP, version: API_VERSION, plural };
    const response = (
      targetNamespace === undefined
        ? await api.listClusterCustomObject(request)
        : await api.listNamespacedCustomObject({ ...request, namespace: targetNamespace })
    ) as { items?: T[] };
    return response.items ?? [];
  };
  return { target: { namespace }, list };
}

function describeApiError(error: unknown): string {
  const code = (error as { code?: number }).code;
  if (code === 404)
    return "the ModelDeployment CRD is not installed (install the gpufleet chart or `kubectl apply -f crds/`)";
  if (code === 401)
    return "unauthorized: the API server refused the kubeconfig's credentials (expired token?)";
  if (code === 403) return "forbidden: your user may not list modeldeployments.gpufleet.io here";
  return error instanceof Error ? error.message : String(error);
}

export async function runStatus(
  command: StatusCommand,
  target: StatusTarget,
  list: ListModelDeployments,
): Promise<CommandOutcome> {
  let items: ModelDeployment[];
  try {
    items = await list(target);
  } catch (error) {
    return { exitCode: EXIT_ERROR, stdout: "", stderr: `error: ${describeApiError(error)}\n` };
  }
  const summaries = items
    .map(summarizeModelDeployment)
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  if (command.output !== "table")
    return { exitCode: EXIT_OK, stdout: renderStructured({ items: summaries }, command.output), stderr: "" };
  return {
    exitCode: EXIT_OK,
    stdout: formatStatusTable(summaries, target.namespace === undefined),
    stderr: "",
  };
}
