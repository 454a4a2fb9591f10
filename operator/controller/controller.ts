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
import { boundStatus } from "../api/status-bounds.js";
import type { OperatorConfig } from "../config.js";
import { logger } from "../log/logger.js";
import { isGroupWorkload, LWS_API_VERSION, LWS_KIND, renderAnyWorkload, type LeaderWorkerSet } from "../render/leaderworkerset.js";
import { LABELS, renderSpillDeployment } from "../render/index.js";
import type { Informer } from "../runtime/informer.js";
import {
  FIELD_MANAGER,
  isNotFound,
  KubeApiError,
  pathFor,
  registerKind,
  type KubeClient,
  type KubeObject,
} from "../runtime/kube-client.js";
import { WorkQueue } from "../runtime/workqueue.js";
import { MAX_NODES_PER_READ, NodeGpuUsage, podsForEstimate } from "./node-gpu-usage.js";
import { guardWorkload, ownershipVerdict } from "./ownership.js";
import { GPU_PRODUCT_LABEL } from "./placement.js";
import {
  planReconcile,
  SELECTOR_LABEL,
  withheldStatus,
  type ObservedState,
  type ReconcileDependencies,
  type WithheldWorkload,
} from "./reconcile-plan.js";
import { gpuMemoryPerReplica, resolveArchitecture, sizeOnPool, type ModelConfigLookup, type TenantValues } from "./sizing.js";

registerKind(LWS_API_VERSION, LWS_KIND, { plural: "leaderworkersets", namespaced: true });
type ReconcileObservedAdapters = NonNullable<ObservedState["adapters"]>;

/** Where the controller writes Kubernetes Events; the runtime's EventRecorder in production. */
export interface EventSink {
  record(object: KubeObject, type: "Normal" | "Warning", reason: string, message: string): void | Promise<void>;
}

/** What the controller reports to metrics; see operator/runtime/metrics.ts. */
export interface ControllerObserver {
  reconciled?(result: "success" | "error", seconds: number): void;
  queueDepth?(depth: number): void;
  /** Seconds a key waited in the work queue before a worker took it. */
  queueWait?(seconds: number): void;
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
  config: Pick<OperatorConfig, "concurrency" | "images"> & Partial<Pick<OperatorConfig, "spillReturnBackoffSeconds">>;
  events?: EventSink;
  observer?: ControllerObserver;
  /** The autoscaler's last observation and decision per `namespace/name`, if autoscaling runs. */
  autoscalerView?: (key: string) => AutoscalerView | undefined;
  /** Reads models' config.json from the Hub (operator/hub/resolver.ts); without it only catalogue and inline architectures size. */
  modelConfigs?: ModelConfigLookup;
  /** Reads a tenant's ConfigMap config.json or token Secret key, bounded (operator/hub/tenant-objects.ts). */
  tenantValues?: TenantValues;
  /** The adapter syncer's view per `namespace/name` (./adapter-syncer.ts), for LoRA ModelDeployments. */
  adapterView?: (key: string) => ReconcileObservedAdapters | undefined;
  /** Keeps an InferencePool per ModelDeployment where that CRD is served (./inference-pool.ts). */
  inferencePools?: { sync(modelDeployment: ModelDeployment): Promise<void>; forget(key: string): void };
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

/** How often a ModelDeployment refused for a name conflict looks again (the operator watches no Services). */
export const NAME_CONFLICT_RECHECK_MS = 30_000;

/**
 * The ModelDeployment a reconcile should read: the informer's copy, or the object our own last status write
 * returned while the informer still shows the copy that write was based on (its watch event has not come
 * yet). Without this, the reconcile that the new Deployment's event starts right after the first one sees
 * no status, writes the same status again with fresh transition times and repeats the Planned event. Pure.
 */
export function freshestModelDeployment<T extends { metadata: { uid?: string; resourceVersion?: string } }>(
  cached: T,
  lastWrite: { basedOnResourceVersion: string | undefined; object: T } | undefined,
): T {
  if (!lastWrite || !cached.metadata.resourceVersion) return cached;
  const current =
    lastWrite.basedOnResourceVersion === cached.metadata.resourceVersion && lastWrite.object.metadata.uid === cached.metadata.uid;
  return current ? lastWrite.object : cached;
}

/** Every object of a rendered workload, in a fixed order (the renderer's keys). */
export function workloadObjects(workload: object): KubeObject[] {
  return Object.values(workload).filter((object): object is KubeObject => !!object && typeof object === "object" && "kind" in object);
}

async function getIfExists(client: KubeClient, object: KubeObject): Promise<KubeObject | undefined> {
  try {
    return await client.get<KubeObject>(
      pathFor({ apiVersion: object.apiVersion!, kind: object.kind!, namespace: object.metadata?.namespace, name: object.metadata?.name }),
    );
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

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
 * What planReconcile needs besides the observed state: sizing, rendering, spill-over rendering, from the
 * operator's configuration. The controller's own; exported so a benchmark can plan exactly as it does.
 */
export function reconcileDependencies(
  options: Pick<ControllerOptions, "config" | "modelConfigs" | "tenantValues">,
): ReconcileDependencies {
  return {
    precheck: (md) => {
      const architecture = resolveArchitecture(md, options.modelConfigs, options.tenantValues);
      return architecture.known ? undefined : { reason: architecture.reason, message: architecture.message };
    },
    size: (md, pool) => {
      const architecture = resolveArchitecture(md, options.modelConfigs, options.tenantValues);
      if (!architecture.known) return { fits: false, message: architecture.message };
      return sizeOnPool(md, architecture.model, pool);
    },
    gpuMemoryPerReplica,
    render: (md, plan, extra) =>
      renderAnyWorkload({
        modelDeployment: md,
        plan,
        images: options.config.images,
        ...(extra?.loraModules ? { loraModules: extra.loraModules } : {}),
        ...(extra?.replicas !== undefined ? { replicas: extra.replicas } : {}),
      }),
    renderSpill: (md, plan, variant, extra) =>
      renderSpillDeployment({
        modelDeployment: md,
        plan,
        variant,
        images: options.config.images,
        ...(extra?.loraModules ? { loraModules: extra.loraModules } : {}),
      }),
  };
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
  /** What the last status write of each ModelDeployment returned, and the resourceVersion it was based on. */
  private readonly lastStatusWrite = new Map<string, { basedOnResourceVersion: string | undefined; object: ModelDeployment & KubeObject }>();
  /** The LeaderWorkerSet each multi-node ModelDeployment controls, as last read or applied (by `namespace/name`). */
  private readonly groupSets = new Map<string, LeaderWorkerSet & KubeObject>();
  /** metadata.generation of each Deployment this operator last wrote, by namespace/name (spill-over waits for the cache to show it). */
  private readonly writtenGenerations = new Map<string, number>();
  /** Per `namespace/name|product`: no spill-over return to that product before `untilMs` (after a failed one). */
  private readonly returnBackoff = new Map<string, { untilMs: number; delayMs: number }>();
  private stopRequested = false;
  private readonly stopWaiters: Array<() => void> = [];
  /** The other pods on GPU nodes, read while replicas are spilled (./node-gpu-usage.ts). */
  private readonly nodeGpuUsage: NodeGpuUsage;

  constructor(private readonly options: ControllerOptions) {
    this.nodeGpuUsage = new NodeGpuUsage({ client: options.client });
    this.queue = new WorkQueue({
      name: "modeldeployments",
      concurrency: options.config.concurrency,
      onDepthChange: (depth) => options.observer?.queueDepth?.(depth),
      onWait: (_key, waitedMs) => options.observer?.queueWait?.(waitedMs / 1000),
      // A ModelDeployment whose spec this operator has not yet observed (new, or changed) goes before the
      // re-reconciles that pod and Deployment status changes cause: the latency a user feels.
      urgent: (key) => this.specUnobserved(key),
      onRetry: (key, failures, delayMs, error) => {
        options.observer?.retried?.();
        // A Conflict is a view the API server has moved past (the status write's precondition, e.g. right
        // after the autoscaler scaled): expected, and retried on the fresh object, so not a warning.
        const conflict = error instanceof KubeApiError && error.statusCode === 409;
        this.log[conflict ? "debug" : "warn"]({ resource: key, failures, delayMs, err: String(error) }, "reconcile failed; retrying with backoff");
      },
    });
    this.dependencies = reconcileDependencies(options);
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
        this.lastStatusWrite.delete(keyOf(md.metadata.namespace, md.metadata.name));
        this.groupSets.delete(keyOf(md.metadata.namespace, md.metadata.name));
        for (const key of this.returnBackoff.keys())
          if (key.startsWith(`${keyOf(md.metadata.namespace, md.metadata.name)}|`)) this.returnBackoff.delete(key);
        this.options.inferencePools?.forget(keyOf(md.metadata.namespace, md.metadata.name));
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
    // Stopped before it started (the lease lost while the term's other controllers started): starting the
    // informers now would leave their watches running after the term, one more set per lost lease.
    if (this.stopRequested) return;
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

  /**
   * The LeaderWorkerSets this controller found controlled (by uid) by a ModelDeployment of `namespace`: the
   * middle link of Pod -> StatefulSet -> LeaderWorkerSet -> ModelDeployment for the autoscaler's owner chain.
   */
  leaderWorkerSets(namespace: string | undefined): KubeObject[] {
    return [...this.groupSets.values()].filter((set) => set.metadata?.namespace === namespace);
  }

  /** The LeaderWorkerSet of this name if this ModelDeployment controls it (read by name; absent when LWS is not installed). */
  private async readOwnedGroupSet(modelDeployment: ModelDeployment, key: string): Promise<(LeaderWorkerSet & KubeObject) | undefined> {
    const { name, namespace, uid } = modelDeployment.metadata;
    const path = pathFor({ apiVersion: LWS_API_VERSION, kind: LWS_KIND, namespace, name });
    let set: (LeaderWorkerSet & KubeObject) | undefined;
    try {
      set = await this.options.client.get<LeaderWorkerSet & KubeObject>(path);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const owned = set && ownershipVerdict(set, { name, uid: uid ?? "" }).verdict === "owned" ? set : undefined;
    if (owned) this.groupSets.set(key, owned);
    else this.groupSets.delete(key);
    return owned;
  }

  /** Whether the freshest copy of this ModelDeployment has a spec generation its status has not observed. */
  private specUnobserved(key: string): boolean {
    const [namespace = "", name = ""] = key.split("/");
    const cached = this.options.informers.modelDeployments.get(namespace, name);
    if (!cached) return false;
    const md = freshestModelDeployment(cached, this.lastStatusWrite.get(key));
    return md.status?.observedGeneration !== md.metadata.generation;
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
    const { informers } = this.options;
    const cached = informers.modelDeployments.get(namespace, name);
    if (!cached) {
      log.debug("gone; owned objects are garbage-collected through owner references");
      return;
    }
    const statusWrite = this.lastStatusWrite.get(keyOf(namespace, name));
    const modelDeployment = freshestModelDeployment(cached, statusWrite);
    // Once the informer has moved past the write's base, the informer is the authority again.
    if (statusWrite && modelDeployment === cached) this.lastStatusWrite.delete(keyOf(namespace, name));
    if (modelDeployment.metadata.deletionTimestamp) return;

    const pods = informers.pods.list(
      (pod) => pod.metadata?.namespace === namespace && pod.metadata?.labels?.[SELECTOR_LABEL] === name,
    );
    const deployment = informers.deployments.get(namespace, name);
    // The label-filtered cache only serves status (replica counts); who owns the objects is decided below
    // from the objects themselves, read by name.
    const ownedDeployment = ownershipVerdict(deployment, { name, uid: modelDeployment.metadata.uid ?? "" }).verdict === "owned" ? deployment : undefined;

    const uid = modelDeployment.metadata.uid ?? "";
    const spillDeployments = informers.deployments.list(
      (d) =>
        d.metadata?.namespace === namespace &&
        d.metadata?.labels?.[SELECTOR_LABEL] === name &&
        !!d.spec?.selector?.matchLabels?.[LABELS.workloadSlot] &&
        ownershipVerdict(d, { name, uid }).verdict === "owned",
    );
    const cacheCurrent = [...(ownedDeployment ? [ownedDeployment] : []), ...spillDeployments].every(
      (d) => (d.metadata?.generation ?? 0) >= (this.writtenGenerations.get(keyOf(namespace, d.metadata?.name ?? "")) ?? 0),
    );
    const adapters = this.options.adapterView?.(keyOf(namespace, name));
    const nowMs = Date.now();
    const holdReturns = [...this.returnBackoff]
      .filter(([k, b]) => k.startsWith(`${keyOf(namespace, name)}|`) && b.untilMs > nowMs)
      .map(([k]) => k.slice(k.indexOf("|") + 1));
    const key = keyOf(namespace, name);
    // While replicas are spilled, the free-GPU estimate also counts the other pods on the allowed products'
    // nodes (where the operator may list them), so a return is not tried into a pool other work holds.
    let clusterPods: V1Pod[] = informers.pods.list();
    let clusterPodsComplete = false;
    if (spillDeployments.some((d) => (d.spec?.replicas ?? 0) > 0)) {
      const allowed = modelDeployment.spec.gpu.products;
      const preferred = modelDeployment.status?.plan?.gpuProduct;
      const gpuNodes = informers.nodes
        .list()
        .flatMap((node) => {
          const product = node.metadata?.labels?.[GPU_PRODUCT_LABEL];
          return product && node.metadata?.name && (!allowed || allowed.includes(product)) ? [{ name: node.metadata.name, first: product === preferred }] : [];
        })
        .sort((a, b) => Number(b.first) - Number(a.first) || a.name.localeCompare(b.name));
      const listed = await this.nodeGpuUsage.podsOn(gpuNodes.map((node) => node.name));
      if (listed) {
        clusterPods = podsForEstimate(clusterPods, listed);
        clusterPodsComplete = gpuNodes.length <= MAX_NODES_PER_READ;
      }
    }
    const observe = (workload: V1Deployment | undefined) =>
      planReconcile(
        {
          modelDeployment,
          nodes: informers.nodes.list(),
          pods,
          ...(workload ? { deployment: workload } : {}),
          now: this.options.now?.() ?? new Date(),
          clusterPods,
          ...(clusterPodsComplete ? { clusterPodsComplete } : {}),
          spillDeployments,
          cacheCurrent,
          ...(holdReturns.length ? { holdReturns } : {}),
          ...(adapters ? { adapters } : {}),
        },
        this.dependencies,
      );
    // A replica that spans nodes runs as a LeaderWorkerSet (read by name: no informer, the CRD may be absent).
    const wasGroup = (modelDeployment.status?.plan?.nodesPerReplica ?? 1) > 1 || this.groupSets.has(key);
    let groupSet = wasGroup ? await this.readOwnedGroupSet(modelDeployment, key) : undefined;
    let plan = observe(groupSet ? leaderWorkerSetStatus(groupSet) : ownedDeployment);
    if (plan.workload && isGroupWorkload(plan.workload) && !wasGroup) {
      groupSet = await this.readOwnedGroupSet(modelDeployment, key);
      plan = observe(groupSet ? leaderWorkerSetStatus(groupSet) : undefined);
    } else if (plan.workload && !isGroupWorkload(plan.workload) && groupSet) {
      plan = observe(ownedDeployment);
    }
    const group = !!plan.workload && isGroupWorkload(plan.workload);
    const mainObject = group ? groupSet : ownedDeployment;

    let withheld: { withheld: WithheldWorkload; requeueAfterMs: number; error?: unknown } | undefined;
    if (plan.workload) {
      const objects = workloadObjects(plan.workload);
      const applied = {
        hash: workloadHash(objects),
        ownerUid: modelDeployment.metadata.uid,
        nowMs: Date.now(),
      };
      const unchanged = lastApplyStillStands(this.lastApplied.get(key), {
        ...applied,
        deploymentGeneration: mainObject?.metadata?.generation,
        deploymentExists: !!mainObject,
      });
      if (!unchanged) {
        this.lastApplied.delete(key);
        const outcome = await this.writeWorkload(modelDeployment, objects, log);
        if (outcome.written && group) this.groupSets.set(key, outcome.written as LeaderWorkerSet & KubeObject);
        // The workload changed kind (the plan now fits one node, or no longer does): retire the other one.
        if (outcome.written) await this.retireOtherKind(group ? ownedDeployment : groupSet, log);
        if (!group && outcome.written?.metadata?.generation !== undefined)
          this.writtenGenerations.set(keyOf(namespace, name), outcome.written.metadata.generation);
        if (outcome.written)
          this.lastApplied.set(key, {
            hash: applied.hash,
            ownerUid: applied.ownerUid,
            deploymentGeneration: outcome.written.metadata?.generation,
            appliedAtMs: applied.nowMs,
          });
        else withheld = outcome;
      }
    }

    for (const product of plan.failedReturns ?? []) {
      const key = `${keyOf(namespace, name)}|${product}`;
      const base = (this.options.config.spillReturnBackoffSeconds ?? 60) * 1000;
      const delayMs = Math.min(base * 16, this.returnBackoff.has(key) ? (this.returnBackoff.get(key)?.delayMs ?? base) * 2 : base);
      this.returnBackoff.set(key, { untilMs: nowMs + delayMs, delayMs });
    }
    if (!withheld && plan.workload) {
      // Spill-over Deployments: each judged and written like the workload (owned by this ModelDeployment's uid).
      for (const spill of plan.spillWorkloads ?? []) {
        const outcome = await this.writeWorkload(modelDeployment, [spill as KubeObject], log);
        if (outcome.withheld) {
          withheld = outcome;
          break;
        }
        if (outcome.written.metadata?.generation !== undefined)
          this.writtenGenerations.set(keyOf(namespace, spill.metadata?.name ?? ""), outcome.written.metadata.generation);
      }
      for (const gone of withheld ? [] : (plan.removeWorkloads ?? [])) {
        try {
          await this.options.client.delete(
            pathFor({ apiVersion: "apps/v1", kind: "Deployment", namespace, name: gone.name }),
            { preconditions: { uid: gone.uid } },
          );
          this.writtenGenerations.delete(keyOf(namespace, gone.name));
          log.info({ deployment: gone.name }, "spill-over Deployment removed");
        } catch (error) {
          if (!isNotFound(error)) throw error;
        }
      }
    }

    const autoscaler = this.options.autoscalerView?.(keyOf(namespace, name));
    const planned = withheld
      ? withheldStatus(modelDeployment, plan.status, withheld.withheld, this.options.now?.() ?? new Date())
      : plan.status;
    const status: ModelDeploymentStatus = boundStatus({ ...planned, ...(autoscaler ? { autoscaler } : {}) });
    if (!isDeepStrictEqual(status, modelDeployment.status ?? {})) await this.writeStatus(modelDeployment, status, log);

    const events = withheld
      ? [
          ...plan.events.filter((event) => event.reason !== "Ready"),
          ...(withheld.withheld.progressing ? [] : [{ type: "Warning" as const, reason: withheld.withheld.reason, message: withheld.withheld.message }]),
        ]
      : plan.events;
    for (const event of events) this.options.events?.record(modelDeployment, event.type, event.reason, event.message);
    if (withheld?.error) throw withheld.error;
    // After the status, so a failure here (retried with backoff) does not hold the status back; not for a
    // workload withheld (the pool would select pods this ModelDeployment does not run).
    if (plan.workload && !withheld) await this.options.inferencePools?.sync(modelDeployment);
    this.options.observer?.replicas?.(namespace, name, status.desiredReplicas ?? 0, status.readyReplicas ?? 0, status.replicas ?? 0);
    this.options.observer?.conditions?.(namespace, name, status.conditions ?? []);
    log.debug({ placed: plan.placement.placed, ready: status.readyReplicas, desired: status.desiredReplicas }, "reconciled");
    if (withheld) return { requeueAfterMs: withheld.requeueAfterMs };
    return plan.requeueAfterMs ? { requeueAfterMs: plan.requeueAfterMs } : undefined;
  }

  /**
   * Writes the workload only over objects this ModelDeployment controls. Each object is read by name first
   * (a consistent GET, not the label-filtered cache) and judged by `guardWorkload`: foreign objects refuse
   * the whole workload (NameConflict); objects left by a deleted namesake are taken over (the apply replaces
   * the dead owner reference); every apply over an existing object carries that object's uid, so an object
   * deleted or replaced since the read fails the apply instead of being taken over.
   */
  private async writeWorkload(
    modelDeployment: ModelDeployment & KubeObject,
    objects: KubeObject[],
    log: typeof this.log,
  ): Promise<{ written: KubeObject; withheld?: never } | { written?: never; withheld: WithheldWorkload; requeueAfterMs: number; error?: unknown }> {
    const { client } = this.options;
    const namespace = modelDeployment.metadata.namespace ?? "";
    const name = modelDeployment.metadata.name;
    const owner = { name, uid: modelDeployment.metadata.uid ?? "" };
    const observed = await Promise.all(
      objects.map(async (object) => ({
        kind: object.kind ?? "",
        name: object.metadata?.name ?? "",
        observed: await getIfExists(client, object),
      })),
    );
    const guard = guardWorkload(observed, owner);
    if (guard.action === "refuse") {
      log.warn({ reason: "NameConflict" }, guard.message);
      return { withheld: { reason: "NameConflict", message: guard.message, progressing: false }, requeueAfterMs: NAME_CONFLICT_RECHECK_MS };
    }
    if (guard.action === "wait")
      return { withheld: { reason: "WaitingForDeletion", message: guard.message, progressing: true }, requeueAfterMs: 2_000 };
    if (guard.takeOver.length) {
      // The dead owner's uid is not this ModelDeployment's: confirm against the API server (not the cache,
      // which may be behind a delete and re-create) that this ModelDeployment is the one that lives.
      const live = await client.get<ModelDeployment>(pathFor({ apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, namespace, name }));
      if (live.metadata.uid !== owner.uid)
        return { withheld: { reason: "WaitingForDeletion", message: "this ModelDeployment was deleted or re-created; catching up", progressing: true }, requeueAfterMs: 1_000 };
      for (const object of guard.takeOver)
        log.info({ kind: object.kind, deadOwnerUid: object.deadOwnerUid }, "taking over an object left by a deleted ModelDeployment of the same name");
    }
    const uidOf = new Map(guard.objects.map((o) => [o.kind, o.uid]));
    const write = (object: KubeObject) => {
      const uid = uidOf.get(object.kind ?? "");
      // Over an existing object: its uid is a precondition, and force takes fields back from other managers
      // (the operator is the authority over its own objects). A new object: no force, so an object created by
      // someone else since the read makes the apply conflict instead of being taken over.
      const body = uid ? { ...object, metadata: { ...object.metadata, uid } } : object;
      return client.apply(body, { fieldManager: FIELD_MANAGER, force: !!uid });
    };
    try {
      // All at once: none depends on another (the ownership guard above has already judged every one). The
      // API server creates Services one at a time (each ClusterIP under one lock: MetaAllocator in
      // kube-apiserver 1.34), so in a burst a Service create waits behind every other one; written first, it
      // held each Deployment back by that wait. Pods need seconds to be created and scheduled, by which time
      // the Service and PDB written beside their Deployment exist.
      const settled = await Promise.allSettled(objects.map(write));
      const failure = settled.find((result): result is PromiseRejectedResult => result.status === "rejected");
      if (failure) throw failure.reason;
      const mainIndex = objects.findIndex((object) => object.kind === "Deployment" || object.kind === LWS_KIND);
      const main = settled[mainIndex];
      return { written: main?.status === "fulfilled" ? main.value : {} };
    } catch (error) {
      // A replica that spans nodes needs the LeaderWorkerSet API; without it a person must install it.
      if (error instanceof KubeApiError && error.statusCode === 404 && objects.some((object) => object.kind === LWS_KIND)) {
        const message =
          "a replica of this model spans nodes and runs as a LeaderWorkerSet group, but the LeaderWorkerSet API (leaderworkerset.x-k8s.io/v1, sigs.k8s.io/lws) is not installed in this cluster: install LWS, or allow a GPU or quantization that fits one node";
        return { withheld: { reason: "LeaderWorkerSetNotInstalled", message, progressing: false }, requeueAfterMs: 60_000 };
      }
      // A refusal the API server will repeat (invalid, forbidden): say so in the status and an Event, then
      // retry with backoff. Conflicts and outages are retried silently.
      if (error instanceof KubeApiError && error.statusCode >= 400 && error.statusCode < 500 && ![404, 408, 409, 429].includes(error.statusCode)) {
        const message = `the API server refused the workload (${error.reason}): ${error.message.slice(0, 512)}`;
        return { withheld: { reason: "ApplyFailed", message, progressing: false }, requeueAfterMs: 0, error };
      }
      throw error;
    }
  }

  /**
   * Scales the owned workload of the kind no longer rendered to zero (this exact object: its uid in the
   * patch is a precondition). The operator deletes nothing; the object goes with the ModelDeployment.
   */
  private async retireOtherKind(other: KubeObject | undefined, log: typeof this.log): Promise<void> {
    const kind = other?.kind === "Deployment" || other?.kind === LWS_KIND ? other.kind : undefined;
    if (!kind || !other?.metadata?.uid || (other as { spec?: { replicas?: number } }).spec?.replicas === 0) return;
    const apiVersion = kind === "Deployment" ? "apps/v1" : LWS_API_VERSION;
    const path = pathFor({ apiVersion, kind, namespace: other.metadata.namespace, name: other.metadata.name });
    try {
      await this.options.client.patch(path, { metadata: { uid: other.metadata.uid }, spec: { replicas: 0 } }, "application/merge-patch+json", {
        fieldManager: FIELD_MANAGER,
      });
      log.info({ kind }, "scaled the workload of the previous plan to zero (the replica's node span changed)");
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  private async writeStatus(modelDeployment: ModelDeployment, status: ModelDeploymentStatus, log: typeof this.log): Promise<void> {
    const key = keyOf(modelDeployment.metadata.namespace, modelDeployment.metadata.name);
    this.lastStatusWrite.delete(key);
    // The status was computed from this copy: its resourceVersion is the write's precondition, so a status
    // planned from a view the API server has moved past fails with a Conflict (retried on the fresh object)
    // instead of landing. A uid would not do: the status subresource of a custom resource ignores the uid in
    // an apply, so a status planned for a ModelDeployment deleted meanwhile was written onto its namesake.
    const written = await this.options.client.apply(
      {
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: KIND,
        metadata: {
          name: modelDeployment.metadata.name,
          namespace: modelDeployment.metadata.namespace,
          ...(modelDeployment.metadata.resourceVersion ? { resourceVersion: modelDeployment.metadata.resourceVersion } : {}),
        },
        status,
      } as KubeObject,
      { fieldManager: FIELD_MANAGER, force: true, subresource: "status" },
    );
    const object = written as (ModelDeployment & KubeObject) | undefined;
    if (object?.metadata?.resourceVersion && object.metadata.uid === modelDeployment.metadata.uid)
      this.lastStatusWrite.set(key, { basedOnResourceVersion: modelDeployment.metadata.resourceVersion, object });
    log.debug("status written");
  }
}

/**
 * A LeaderWorkerSet's group counts in the shape planReconcile reads from a Deployment: a replica is a group,
 * ready when all its pods are (LWS status.readyReplicas). LWS reports no observedGeneration; its counts are
 * taken as current.
 */
export function leaderWorkerSetStatus(set: LeaderWorkerSet & KubeObject): V1Deployment {
  const generation = set.metadata?.generation ?? 0;
  return {
    metadata: { name: set.metadata?.name, generation },
    status: {
      observedGeneration: generation,
      replicas: set.status?.replicas ?? 0,
      readyReplicas: set.status?.readyReplicas ?? 0,
      updatedReplicas: set.status?.updatedReplicas ?? 0,
    },
  };
}
