import { createHash, randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import type { V1Deployment, V1Node, V1Pod } from "@kubernetes/client-node";
import {
  API_GROUP,
  API_VERSION,
  KIND,
  type ModelDeployment,
  type ModelDeploymentStatus,
} from "../api/modeldeployment.js";
import type { OperatorConfig } from "../config.js";
import { logger } from "../log/logger.js";
import { renderWorkload } from "../render/index.js";
import type { Informer } from "../runtime/informer.js";
import { FIELD_MANAGER, type KubeClient, type KubeObject } from "../runtime/kube-client.js";
import { WorkQueue } from "../runtime/workqueue.js";
import { planReconcile, SELECTOR_LABEL, type ReconcileDependencies } from "./reconcile-plan.js";
import { gpuMemoryPerReplica, resolveArchitecture, sizeOnPool } from "./sizing.js";

/** Where the controller writes Kubernetes Events; the runtime's EventRecorder in production. */
export interface EventSink {
  record(object: KubeObject, type: "Normal" | "Warning", reason: string, message: string): void | Promise<void>;
}

/** What the controller reports to metrics; see operator/runtime/metrics.ts. */
export interface ControllerObserver {
  reconciled?(result: "success" | "error", seconds: number): void;
  queueDepth?(depth: number): void;
  retried?(): void;
  replicas?(namespace: string, name: string, desired: number, ready: number, current: number): void;
  conditions?(namespace: string, name: string, conditions: ReadonlyArray<{ type: string; status: string }>): void;
  forget?(namespace: string, name: string): void;
}

/** The autoscaler's latest view of a ModelDeployment, merged into its status by each reconcile. */
export type AutoscalerView = NonNullable<ModelDeploymentStatus["autoscaler"]>;

export interface ControllerInformers {
  modelDeployments: Informer<ModelDeployment & KubeObject>;
  deployments: Informer<V1Deployment & KubeObject>;
  pods: Informer<V1Pod & KubeObject>;
  nodes: Informer<V1Node & KubeObject>;
}

export interface ControllerOptions {
  client: KubeClient;
  informers: ControllerInformers;
  config: Pick<OperatorConfig, "concurrency" | "images">;
  events?: EventSink;
  observer?: ControllerObserver;
  /** The autoscaler's last observation and decision per `namespace/name`, if autoscaling runs. */
  autoscalerView?: (key: string) => AutoscalerView | undefined;
  now?: () => Date;
}

/** A node change that can change placement: GPUs offered, labels, schedulability, readiness. */
function nodeFingerprint(node: V1Node): string {
  const ready = node.status?.conditions?.find((condition) => condition.type === "Ready")?.status;
  return JSON.stringify([node.metadata?.labels, node.status?.allocatable, node.spec?.unschedulable, node.spec?.taints, ready]);
}

function keyOf(namespace: string | undefined, name: string): string {
  return `${namespace ?? ""}/${name}`;
}

/**
 * What the last successful apply of one ModelDeployment's workload wrote. Reconciles come far more often
 * than spec changes (every pod and Deployment status change, every node change, the 10 s rollout poll),
 * and each server-side apply is an API round trip even when it changes nothing: at 1,000 ModelDeployments
 * those no-op applies were most of the operator's API traffic (sim/bench/operator-scale.ts).
 */
interface AppliedWorkload {
  /** Hash of the rendered Service, PDB and Deployment. */
  hash: string;
  ownerUid: string | undefined;
  /** metadata.generation of the Deployment the apply returned: a later edit by anyone bumps it. */
  deploymentGeneration: number | undefined;
  appliedAtMs: number;
}

/**
 * Re-apply an unchanged workload at least this often anyway, so a Service or PDB deleted or edited by
 * hand (the operator watches neither) is restored within this time even when nothing else changes.
 */
export const WORKLOAD_RESYNC_MS = 5 * 60_000;

export function workloadHash(objects: readonly unknown[]): string {
  return createHash("sha256").update(JSON.stringify(objects)).digest("hex");
}

/**
 * Whether the last apply still stands: same rendered objects, same owner, the cached Deployment is the
 * one that apply produced (no spec edit since, not deleted), and the resync period has not passed. Pure.
 */
export function lastApplyStillStands(
  last: AppliedWorkload | undefined,
  current: { hash: string; ownerUid: string | undefined; deploymentGeneration: number | undefined; deploymentExists: boolean; nowMs: number },
): boolean {
  return (
    !!last &&
    current.deploymentExists &&
    last.hash === current.hash &&
    last.ownerUid === current.ownerUid &&
    last.deploymentGeneration === current.deploymentGeneration &&
    current.nowMs - last.appliedAtMs < WORKLOAD_RESYNC_MS
  );
}

/**
 * The ModelDeployment reconcile loop: informers feed a work queue (dedup, per-key backoff, requeue-after);
 * each reconcile reads the caches, asks the pure `planReconcile` what to write, and writes it with
 * server-side apply under one field manager. Owner references make deletion cascade, so there is no finalizer.
 */
export class ModelDeploymentController {
  readonly queue: WorkQueue;
  private readonly log = logger.child({ component: "controller" });
  private readonly dependencies: ReconcileDependencies;
  private readonly lastApplied = new Map<string, AppliedWorkload>();
  private stopRequested = false;
  private readonly stopWaiters: Array<() => void> = [];

  constructor(private readonly options: ControllerOptions) {
    this.queue = new WorkQueue({
      name: "modeldeployments",
      concurrency: options.config.concurrency,
      onDepthChange: (depth) => options.observer?.queueDepth?.(depth),
      onRetry: (key, failures, delayMs, error) => {
        options.observer?.retried?.();
        this.log.warn({ resource: key, failures, delayMs, err: String(error) }, "reconcile failed; retrying with backoff");
      },
    });
    this.dependencies = {
      precheck: (md) => {
        const architecture = resolveArchitecture(md);
        return architecture.known ? undefined : architecture.message;
      },
      size: (md, pool) => {
        const architecture = resolveArchitecture(md);
        if (!architecture.known) return { fits: false, message: architecture.message };
        return sizeOnPool(md, architecture.model, pool);
      },
      gpuMemoryPerReplica,
      render: (md, plan) => renderWorkload({ modelDeployment: md, plan, images: options.config.images }),
    };
    this.wireInformers();
  }

  private wireInformers(): void {
    const { informers } = this.options;
    informers.modelDeployments.addHandlers({
      onAdd: (md) => this.queue.add(keyOf(md.metadata.namespace, md.metadata.name)),
      onUpdate: (_old, md) => this.queue.add(keyOf(md.metadata.namespace, md.metadata.name)),
      onDelete: (md) => {
        this.queue.forget(keyOf(md.metadata.namespace, md.metadata.name));
        this.lastApplied.delete(keyOf(md.metadata.namespace, md.metadata.name));
        this.options.observer?.forget?.(md.metadata.namespace ?? "", md.metadata.name);
      },
    });
    const enqueueOwner = (object: { metadata?: { namespace?: string; labels?: Record<string, string> } }) => {
      const owner = object.metadata?.labels?.[SELECTOR_LABEL];
      if (owner) this.queue.add(keyOf(object.metadata?.namespace, owner));
    };
    informers.deployments.addHandlers({ onAdd: enqueueOwner, onUpdate: (_old, d) => enqueueOwner(d), onDelete: enqueueOwner });
    informers.pods.addHandlers({ onAdd: enqueueOwner, onUpdate: (_old, p) => enqueueOwner(p), onDelete: enqueueOwner });
    const enqueueAll = () => {
      for (const md of informers.modelDeployments.list()) this.queue.add(keyOf(md.metadata.namespace, md.metadata.name));
    };
    informers.nodes.addHandlers({
      onAdd: enqueueAll,
      onDelete: enqueueAll,
      onUpdate: (before, after) => {
        if (nodeFingerprint(before) !== nodeFingerprint(after)) enqueueAll();
      },
    });
  }

  /** Starts the informers, waits for their caches, then starts reconciling. */
  async start(): Promise<void> {
    const { informers } = this.options;
    for (const informer of Object.values(informers)) informer.start();
    // A stop while the caches sync (SIGTERM right after winning the lease) ends the start: no workers.
    await Promise.race([
      Promise.all(Object.values(informers).map((informer) => informer.waitForSync())),
      new Promise<void>((resolve) => this.stopWaiters.push(resolve)),
    ]);
    if (this.stopRequested) return;
    this.queue.start((key) => this.reconcile(key));
    this.log.info({ modelDeployments: informers.modelDeployments.list().length }, "caches synced; reconciling");
  }

  /** Stops taking work and waits for reconciles in flight (graceful shutdown). */
  async stop(): Promise<void> {
    this.stopRequested = true;
    for (const wake of this.stopWaiters.splice(0)) wake();
    await this.queue.shutDown();
    await Promise.all(Object.values(this.options.informers).map((informer) => informer.stop()));
  }

  /** Re-reconciles a ModelDeployment soon (the autoscaler calls this after it scaled). */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  async reconcile(key: string): Promise<{ requeueAfterMs?: number } | void> {
    const started = process.hrtime.bigint();
    const [namespace = "", name = ""] = key.split("/");
    const log = this.log.child({ resource: `${KIND}/${key}`, reconcileId: randomUUID().slice(0, 8) });
    try {
      const result = await this.reconcileOne(namespace, name, log);
      this.options.observer?.reconciled?.("success", Number(process.hrtime.bigint() - started) / 1e9);
      return result;
    } catch (error) {
      this.options.observer?.reconciled?.("error", Number(process.hrtime.bigint() - started) / 1e9);
      throw error;
    }
  }

  private async reconcileOne(namespace: string, name: string, log: typeof this.log): Promise<{ requeueAfterMs?: number } | void> {
    const { informers, client } = this.options;
    const modelDeployment = informers.modelDeployments.get(namespace, name);
    if (!modelDeployment) {
      log.debug("gone; owned objects are garbage-collected through owner references");
      return;
    }
    if (modelDeployment.metadata.deletionTimestamp) return;

    const pods = informers.pods.list(
      (pod) => pod.metadata?.namespace === namespace && pod.metadata?.labels?.[SELECTOR_LABEL] === name,
    );
    const deployment = informers.deployments.get(namespace, name);
    const ownedDeployment =
      deployment && deployment.metadata?.ownerReferences?.some((owner) => owner.uid === modelDeployment.metadata.uid)
        ? deployment
        : undefined;
    if (deployment && !ownedDeployment) {
      const message = `a Deployment named ${name} exists that this ModelDeployment does not own; rename one of them`;
      await this.writeStatus(modelDeployment, {
        ...modelDeployment.status,
        observedGeneration: modelDeployment.metadata.generation ?? 0,
      }, log);
      this.options.events?.record(modelDeployment, "Warning", "NameConflict", message);
      log.warn(message);
      return { requeueAfterMs: 60_000 };
    }

    const plan = planReconcile(
      {
        modelDeployment,
        nodes: informers.nodes.list(),
        pods,
        ...(ownedDeployment ? { deployment: ownedDeployment } : {}),
        now: this.options.now?.() ?? new Date(),
      },
      this.dependencies,
    );

    if (plan.workload) {
      const { service, podDisruptionBudget, deployment: desiredDeployment } = plan.workload;
      const key = keyOf(namespace, name);
      const applied = {
        hash: workloadHash([service, podDisruptionBudget, desiredDeployment]),
        ownerUid: modelDeployment.metadata.uid,
        nowMs: Date.now(),
      };
      const unchanged = lastApplyStillStands(this.lastApplied.get(key), {
        ...applied,
        deploymentGeneration: ownedDeployment?.metadata?.generation,
        deploymentExists: !!ownedDeployment,
      });
      if (!unchanged) {
        this.lastApplied.delete(key);
        // Service and PDB first (together: they do not depend on each other), so that by the time pods
        // exist they are selectable and protected.
        await Promise.all(
          [service, podDisruptionBudget].map((object) => client.apply(object as KubeObject, { fieldManager: FIELD_MANAGER, force: true })),
        );
        const written = await client.apply(desiredDeployment as KubeObject, { fieldManager: FIELD_MANAGER, force: true });
        this.lastApplied.set(key, {
          hash: applied.hash,
          ownerUid: applied.ownerUid,
          deploymentGeneration: written.metadata?.generation,
          appliedAtMs: applied.nowMs,
        });
      }
    }

    const autoscaler = this.options.autoscalerView?.(keyOf(namespace, name));
    const status: ModelDeploymentStatus = { ...plan.status, ...(autoscaler ? { autoscaler } : {}) };
    if (!isDeepStrictEqual(status, modelDeployment.status ?? {})) await this.writeStatus(modelDeployment, status, log);

    for (const event of plan.events) this.options.events?.record(modelDeployment, event.type, event.reason, event.message);
    this.options.observer?.replicas?.(namespace, name, status.desiredReplicas ?? 0, status.readyReplicas ?? 0, status.replicas ?? 0);
    this.options.observer?.conditions?.(namespace, name, status.conditions ?? []);
    log.debug({ placed: plan.placement.placed, ready: status.readyReplicas, desired: status.desiredReplicas }, "reconciled");
    return plan.requeueAfterMs ? { requeueAfterMs: plan.requeueAfterMs } : undefined;
  }

  private async writeStatus(modelDeployment: ModelDeployment, status: ModelDeploymentStatus, log: typeof this.log): Promise<void> {
    await this.options.client.apply(
      {
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: KIND,
        metadata: { name: modelDeployment.metadata.name, namespace: modelDeployment.metadata.namespace },
        status,
      } as KubeObject,
      { fieldManager: FIELD_MANAGER, force: true, subresource: "status" },
    );
    log.debug("status written");
  }
}
