import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { CONDITION_TYPES } from "../controller/conditions.js";
import { requestResource, type CompletedRequest } from "./kube-client.js";
import type { WorkQueueOptions } from "./workqueue.js";

/**
 * The operator's own Prometheus metrics, all in one Registry served at /metrics by the ops server.
 * Names follow Prometheus conventions (`_total` counters, `_seconds` durations, base units).
 */

export type ReplicaState = "desired" | "ready" | "current";
export type ScaleDirection = "up" | "down" | "hold";
export type ReconcileResult = "success" | "error" | "requeue";

export interface OperatorMetrics {
  registry: Registry;
  reconcileDuration: Histogram<"result">;
  reconcileTotal: Counter<"result">;
  reconcileErrors: Counter<never>;
  workqueueDepth: Gauge<never>;
  workqueueWait: Histogram<never>;
  workqueueRetries: Counter<never>;
  replicas: Gauge<"namespace" | "name" | "state">;
  conditions: Gauge<"namespace" | "name" | "type" | "status">;
  autoscalerDecisions: Counter<"namespace" | "name" | "direction">;
  kvCacheUtilization: Gauge<"namespace" | "name">;
  queueDepth: Gauge<"namespace" | "name">;
  ttftWithinTarget: Gauge<"namespace" | "name">;
  leader: Gauge<never>;
  kubeRequests: Counter<"verb" | "resource" | "code">;
  kubeRequestDuration: Histogram<"verb">;
}

/** Creates the metrics in `registry` (a fresh one by default; tests make their own). */
export function createOperatorMetrics(
  registry: Registry = new Registry(),
  options: { processMetrics?: boolean } = {},
): OperatorMetrics {
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const metrics: OperatorMetrics = {
    registry,
    reconcileDuration: new Histogram({
      name: "gpufleet_reconcile_duration_seconds",
      help: "Time one reconcile of a ModelDeployment took, by result.",
      labelNames: ["result"],
      // Reconciles are API round trips: milliseconds to tens of seconds when the API server is slow.
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    reconcileTotal: new Counter({
      name: "gpufleet_reconcile_total",
      help: "Reconciles run, by result.",
      labelNames: ["result"],
      registers,
    }),
    reconcileErrors: new Counter({
      name: "gpufleet_reconcile_errors_total",
      help: "Reconciles that failed and were retried with backoff.",
      registers,
    }),
    workqueueDepth: new Gauge({
      name: "gpufleet_workqueue_depth",
      help: "Keys waiting in the work queue.",
      registers,
    }),
    workqueueWait: new Histogram({
      name: "gpufleet_workqueue_wait_seconds",
      help: "Time a key waited in the work queue from being queued to a worker taking it.",
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    workqueueRetries: new Counter({
      name: "gpufleet_workqueue_retries_total",
      help: "Keys re-queued with backoff after a failed reconcile.",
      registers,
    }),
    replicas: new Gauge({
      name: "gpufleet_modeldeployment_replicas",
      help: "Replicas of a ModelDeployment: desired (the operator's target), current (pods that exist), ready.",
      labelNames: ["namespace", "name", "state"],
      registers,
    }),
    conditions: new Gauge({
      name: "gpufleet_modeldeployment_condition",
      help: "1 for the current status (True, False, Unknown) of each condition of a ModelDeployment, else 0.",
      labelNames: ["namespace", "name", "type", "status"],
      registers,
    }),
    autoscalerDecisions: new Counter({
      name: "gpufleet_autoscaler_decisions_total",
      help: "Autoscaler decisions by direction.",
      labelNames: ["namespace", "name", "direction"],
      registers,
    }),
    kvCacheUtilization: new Gauge({
      name: "gpufleet_autoscaler_kv_cache_utilization",
      help: "Mean KV-cache utilization (0..1) over ready replicas, as the autoscaler last saw it.",
      labelNames: ["namespace", "name"],
      registers,
    }),
    queueDepth: new Gauge({
      name: "gpufleet_autoscaler_queue_depth",
      help: "Requests waiting, summed over ready replicas, as the autoscaler last saw it.",
      labelNames: ["namespace", "name"],
      registers,
    }),
    ttftWithinTarget: new Gauge({
      name: "gpufleet_autoscaler_ttft_within_target_ratio",
      help: "Share (0..1) of the last 5 minutes' requests whose first token came within the ModelDeployment's TTFT objective.",
      labelNames: ["namespace", "name"],
      registers,
    }),
    leader: new Gauge({
      name: "gpufleet_leader",
      help: "1 while this operator instance holds the leader lease, else 0.",
      registers,
    }),
    // Like client-go's rest_client_requests_total, with the API server's verb and resource names so that
    // the operator's share of apiserver_request_total can be read off (sim/bench/operator-scale.ts).
    kubeRequests: new Counter({
      name: "gpufleet_kube_requests_total",
      help: "Requests this operator made to the Kubernetes API (not watches), by verb, resource and HTTP code (0: no answer).",
      labelNames: ["verb", "resource", "code"],
      registers,
    }),
    kubeRequestDuration: new Histogram({
      name: "gpufleet_kube_request_duration_seconds",
      help: "Time from sending a Kubernetes API request to its whole answer, as this operator saw it, by verb.",
      labelNames: ["verb"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
  };
  metrics.leader.set(0);
  metrics.workqueueDepth.set(0);
  return metrics;
}

/** Observes one reconcile: duration, total by result, and errors. */
export function observeReconcile(metrics: OperatorMetrics, result: ReconcileResult, seconds: number): void {
  metrics.reconcileDuration.observe({ result }, seconds);
  metrics.reconcileTotal.inc({ result });
  if (result === "error") metrics.reconcileErrors.inc();
}

/** Counts one Kubernetes API request (KubeClient's onRequest). The resource comes from the operator's own paths: bounded. */
export function observeKubeRequest(metrics: OperatorMetrics, request: CompletedRequest): void {
  metrics.kubeRequests.inc({ verb: request.verb, resource: requestResource(request.path), code: String(request.status) });
  metrics.kubeRequestDuration.observe({ verb: request.verb }, request.seconds);
}

/** Work-queue hooks that feed the depth gauge and the retry counter. */
export function workQueueMetricsHooks(
  metrics: OperatorMetrics,
): Pick<WorkQueueOptions, "onDepthChange" | "onRetry" | "onWait"> {
  return {
    onDepthChange: (depth) => metrics.workqueueDepth.set(depth),
    onWait: (_key, waitedMs) => metrics.workqueueWait.observe(waitedMs / 1000),
    onRetry: () => metrics.workqueueRetries.inc(),
  };
}

/** Sets the three replica gauges of one ModelDeployment. */
export function setReplicaGauges(
  metrics: OperatorMetrics,
  namespace: string,
  name: string,
  replicas: Record<ReplicaState, number>,
): void {
  for (const state of ["desired", "ready", "current"] as const)
    metrics.replicas.set({ namespace, name, state }, replicas[state]);
}

/** Sets the condition gauges of one ModelDeployment: 1 on each condition's current status, 0 on the others. */
export function setConditionGauges(
  metrics: OperatorMetrics,
  namespace: string,
  name: string,
  conditions: ReadonlyArray<{ type: string; status: string }>,
): void {
  for (const condition of conditions)
    for (const status of CONDITION_STATUSES)
      metrics.conditions.set({ namespace, name, type: condition.type, status }, condition.status === status ? 1 : 0);
}

const CONDITION_STATUSES = ["True", "False", "Unknown"] as const;

/** Drops every per-ModelDeployment series of a deleted ModelDeployment (no stale series on /metrics). */
export function forgetModelDeployment(metrics: OperatorMetrics, namespace: string, name: string): void {
  for (const state of ["desired", "ready", "current"] as const)
    metrics.replicas.remove({ namespace, name, state });
  for (const direction of ["up", "down", "hold"] as const)
    metrics.autoscalerDecisions.remove({ namespace, name, direction });
  metrics.kvCacheUtilization.remove({ namespace, name });
  for (const type of CONDITION_TYPES)
    for (const status of CONDITION_STATUSES) metrics.conditions.remove({ namespace, name, type, status });
  metrics.queueDepth.remove({ namespace, name });
  metrics.ttftWithinTarget.remove({ namespace, name });
}

let processMetrics: OperatorMetrics | undefined;

/** The process-wide metrics (created on first use, with default process metrics): what main.ts serves. */
export function operatorMetrics(): OperatorMetrics {
  processMetrics ??= createOperatorMetrics();
  return processMetrics;
}
