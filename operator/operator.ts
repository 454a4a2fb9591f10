import type { KubeConfig, V1Deployment, V1Node, V1Pod, V1ReplicaSet, V1StatefulSet } from "@kubernetes/client-node";
import { API_GROUP, API_VERSION, KIND, type ModelDeployment } from "./api/modeldeployment.js";
import { AutoscalerLoop } from "./autoscaler/loop.js";
import type { OperatorConfig } from "./config.js";
import { ModelDeploymentController } from "./controller/controller.js";
import { InferencePoolSync } from "./controller/inference-pool.js";
import { OrphanSweeper } from "./controller/orphans.js";
import { ModelRouteStatusWriter } from "./controller/modelroute-status.js";
import { SELECTOR_LABEL } from "./controller/reconcile-plan.js";
import { logger } from "./log/logger.js";
import { AdapterSyncer } from "./controller/adapter-syncer.js";
import { EventRecorder } from "./runtime/events.js";
import { Informer } from "./runtime/informer.js";
import { KubeApiError, KubeClient, pathFor, type KubeObject } from "./runtime/kube-client.js";
import { LeaderElector } from "./runtime/leader.js";
import {
  createOperatorMetrics,
  forgetModelDeployment,
  observeKubeRequest,
  observeReconcile,
  setConditionGauges,
  setReplicaGauges,
  type OperatorMetrics,
} from "./runtime/metrics.js";
import { kubeRequestAuthorizer } from "./runtime/metrics-auth.js";
import { startOpsServer, type OpsServer } from "./runtime/ops-server.js";
import { readFileSync } from "node:fs";
import { HubClient } from "./hub/client.js";
import { HubModelResolver } from "./hub/resolver.js";
import { decodeObjectData, TenantObjectCache, TenantObjectError, type TenantObjectKind } from "./hub/tenant-objects.js";

export interface RunningOperator {
  opsPort: number;
  metrics: OperatorMetrics;
  isLeader(): boolean;
  /** Graceful stop: finish reconciles in flight, release the lease so a standby takes over at once. */
  stop(): Promise<void>;
}

const log = logger.child({ component: "operator" });

/** A term's controllers that take longer than this to stop after a lost lease make the process unhealthy. */
export const TERM_STOP_DEADLINE_MS = 30_000;

/** The controllers one leader runs; built fresh at each leadership term so no state leaks across terms. */
function buildControllers(client: KubeClient, config: OperatorConfig, metrics: OperatorMetrics, events: EventRecorder) {
  const namespaces = config.watchNamespaces.length ? { namespaces: config.watchNamespaces } : {};
  const informers = {
    modelDeployments: new Informer<ModelDeployment & KubeObject>(client, {
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: KIND,
      name: "modeldeployments",
      ...namespaces,
    }),
    deployments: new Informer<V1Deployment & KubeObject>(client, {
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: "deployments",
      labelSelector: SELECTOR_LABEL,
      ...namespaces,
    }),
    pods: new Informer<V1Pod & KubeObject>(client, {
      apiVersion: "v1",
      kind: "Pod",
      name: "pods",
      labelSelector: SELECTOR_LABEL,
      ...namespaces,
    }),
    nodes: new Informer<V1Node & KubeObject>(client, { apiVersion: "v1", kind: "Node", name: "nodes" }),
    // Leader StatefulSets of LeaderWorkerSets (multi-node replicas): Pod -> StatefulSet -> LeaderWorkerSet.
    statefulSets: new Informer<V1StatefulSet & KubeObject>(client, {
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      name: "statefulsets",
      labelSelector: "leaderworkerset.sigs.k8s.io/name",
      ...namespaces,
    }),
    // The link Pod -> ReplicaSet -> Deployment by which the autoscaler knows a pod is the workload's.
    replicaSets: new Informer<V1ReplicaSet & KubeObject>(client, {
      apiVersion: "apps/v1",
      kind: "ReplicaSet",
      name: "replicasets",
      labelSelector: SELECTOR_LABEL,
      ...namespaces,
    }),
  };
  // Each refers to the other only from callbacks that run after both exist.
  const autoscaler: AutoscalerLoop = new AutoscalerLoop({
    client,
    modelDeployments: informers.modelDeployments,
    pods: informers.pods,
    replicaSets: informers.replicaSets,
    deployments: informers.deployments,
    statefulSets: informers.statefulSets,
    leaderWorkerSets: (namespace) => controller.leaderWorkerSets(namespace),
    globalScrapeConcurrency: config.scrapeConcurrency,
    intervalMs: config.scrapeIntervalSeconds * 1000,
    scrapeTimeoutMs: config.scrapeTimeoutSeconds * 1000,
    historyBucketSeconds: config.historyBucketSeconds,
    historySaveIntervalMs: config.historySaveSeconds * 1000,
    ...(config.autoscalerWindowSeconds === undefined ? {} : { policyWindowSeconds: config.autoscalerWindowSeconds }),
    events,
    onViewChanged: (key) => controller.enqueue(key),
    observer: {
      decided: (namespace, name, direction, kvCacheUtilization, queueDepth) => {
        metrics.autoscalerDecisions.inc({ namespace, name, direction });
        if (kvCacheUtilization !== null) metrics.kvCacheUtilization.set({ namespace, name }, kvCacheUtilization);
        metrics.queueDepth.set({ namespace, name }, queueDepth);
      },
      ttftAttainment: (namespace, name, withinTargetShare) => {
        if (withinTargetShare === null) metrics.ttftWithinTarget.remove({ namespace, name });
        else metrics.ttftWithinTarget.set({ namespace, name }, withinTargetShare);
      },
    },
  });
  const hub = config.hub;
  const resolver = hub
    ? new HubModelResolver({
        reader: new HubClient({ endpoint: hub.endpoint, timeoutMs: hub.timeoutMs }),
        ...(hub.tokenFile ? { token: () => readToken(hub.tokenFile as string) } : {}),
        onSettled: (keys) => {
          for (const key of keys) controller.enqueue(key);
        },
      })
    : undefined;
  // A tenant's ConfigMap (config.json for pvc/uri sources) or token Secret: one GET of the named object
  // in the ModelDeployment's own namespace, bounded, value never logged (operator/hub/tenant-objects.ts).
  const tenantObjects = new TenantObjectCache({
    get: async (kind: TenantObjectKind, namespace: string, name: string) => {
      try {
        const object = await client.get<{ data?: Record<string, string> }>(
          pathFor({ apiVersion: "v1", kind, namespace, name }),
        );
        return decodeObjectData(kind, object);
      } catch (error) {
        if (error instanceof KubeApiError) {
          if (error.statusCode === 404) return undefined;
          throw new TenantObjectError(error.statusCode, `HTTP ${error.statusCode}`);
        }
        throw new TenantObjectError(0, "request failed");
      }
    },
    onSettled: (keys) => {
      for (const key of keys) controller.enqueue(key);
    },
  });
  const inferencePools = new InferencePoolSync(client, {
    recheckIntervalMs: config.inferencePoolRecheckSeconds * 1000,
    onAvailable: () => {
      for (const md of informers.modelDeployments.list()) controller.enqueue(`${md.metadata.namespace ?? ""}/${md.metadata.name}`);
    },
  });
  const adapters: AdapterSyncer = new AdapterSyncer({
    modelDeployments: informers.modelDeployments,
    pods: informers.pods,
    replicaSets: informers.replicaSets,
    deployments: informers.deployments,
    events,
    onViewChanged: (key) => controller.enqueue(key),
  });
  const controller: ModelDeploymentController = new ModelDeploymentController({
    client,
    informers,
    config,
    events,
    ...(resolver
      ? {
          modelConfigs: (repo, revision, subscriber, credential) =>
            resolver.lookup(repo, revision, subscriber, credential),
        }
      : {}),
    tenantValues: {
      lookup: (kind, namespace, name, key, subscriber) => tenantObjects.lookup(kind, namespace, name, key, subscriber),
      readTokens: config.tenantTokens,
    },
    inferencePools,
    autoscalerView: (key) => autoscaler.view(key),
    adapterView: (key) => adapters.view(key),
    observer: {
      reconciled: (result, seconds) => observeReconcile(metrics, result, seconds),
      queueDepth: (depth) => metrics.workqueueDepth.set(depth),
      queueWait: (seconds) => metrics.workqueueWait.observe(seconds),
      retried: () => metrics.workqueueRetries.inc(),
      replicas: (namespace, name, desired, ready, current) => setReplicaGauges(metrics, namespace, name, { desired, ready, current }),
      conditions: (namespace, name, conditions) => setConditionGauges(metrics, namespace, name, conditions),
      forget: (namespace, name) => forgetModelDeployment(metrics, namespace, name),
    },
  });
  const orphans = new OrphanSweeper({
    client,
    modelDeployments: informers.modelDeployments,
    deployments: informers.deployments,
    namespaces: config.watchNamespaces,
    intervalMs: config.orphanSweepSeconds * 1000,
  });
  // ModelRoute status: the operator is its only writer (the gateways read routes, they do not write them).
  const modelRoutes = new ModelRouteStatusWriter({
    client,
    modelDeployments: informers.modelDeployments,
    namespaces: config.watchNamespaces,
  });
  return { controller, autoscaler, adapters, informers, inferencePools, orphans, modelRoutes };
}

/** The operator-wide Hub token, read at each use so a rotated file takes effect; bounded, trimmed. */
function readToken(path: string): string | undefined {
  try {
    const token = readFileSync(path, "utf8").slice(0, 4096).trim();
    return token || undefined;
  } catch (error) {
    log.warn({ err: String(error) }, "GPUFLEET_HF_TOKEN_FILE unreadable; reading the Hub without a token");
    return undefined;
  }
}

/**
 * Runs the operator in this process: the ops server at once (so probes answer), then — as leader, when
 * leader election is on — the informers, the reconcile loop and the autoscaler. Losing the lease stops
 * them; a later term starts new ones.
 */
export async function startOperator(kubeConfig: KubeConfig, config: OperatorConfig): Promise<RunningOperator> {
  const metrics = createOperatorMetrics();
  const client = new KubeClient(kubeConfig, { onRequest: (request) => observeKubeRequest(metrics, request) });
  const events = new EventRecorder(client, { host: config.identity });
  let leading = false;
  let synced = false;
  let stopping = false;
  let current: ReturnType<typeof buildControllers> | undefined;
  /** The last term's shutdown: a new term starts only once the previous one has stopped. */
  let termStopped: Promise<void> = Promise.resolve();
  /** When the current shutdown of a term began (undefined when none is under way). */
  let termStoppingSinceMs: number | undefined;
  let electionFailed = false;
  let elector: LeaderElector | undefined;

  const ops: OpsServer = await startOpsServer({
    host: config.opsHost,
    port: config.opsPort,
    registry: metrics.registry,
    ...(config.metricsAuth ? { authorizeMetrics: kubeRequestAuthorizer(client) } : {}),
    // Liveness: false when leader election is stuck (its loop stopped stepping or ended with an error) or a
    // lost term cannot finish stopping; the kubelet then restarts the process, as it would a hung client-go one.
    healthy: () => {
      if (stopping) return false;
      if (electionFailed || (elector && !elector.isProgressing())) return false;
      return termStoppingSinceMs === undefined || Date.now() - termStoppingSinceMs < TERM_STOP_DEADLINE_MS;
    },
    ready: () => {
      if (stopping) return { ready: false, reason: "shutting down" };
      // A standby is ready: it is healthy and waiting for the lease. The leader is ready once synced.
      if (!config.leaderElect) return synced ? true : { ready: false, reason: "caches not synced" };
      return leading && !synced ? { ready: false, reason: "leader; caches not synced" } : true;
    },
  });

  const lead = async (signal: AbortSignal) => {
    // Fresh controllers for every term, and never two terms' controllers at once.
    await termStopped;
    if (signal.aborted || stopping) return;
    leading = true;
    metrics.leader.set(1);
    log.info({ identity: config.identity, term: elector?.termsLed ?? 1 }, "leading");
    const term = buildControllers(client, config, metrics, events);
    current = term;
    signal.addEventListener(
      "abort",
      () => {
        termStoppingSinceMs = Date.now();
        termStopped = stopTerm(term)
          .catch((error: unknown) => log.error({ err: String(error) }, "stopping the controllers failed"))
          .finally(() => (termStoppingSinceMs = undefined));
      },
      { once: true },
    );
    try {
      // Discovery first, so the first reconciles already write pools where the CRD is served.
      await term.inferencePools.start();
      await term.controller.start();
      // Stopped (shutdown or lost lease) while the caches synced: this term is over before it began.
      if (signal.aborted || stopping || current !== term) return;
      synced = true;
      term.autoscaler.start();
      term.adapters.start();
      term.orphans.start();
      term.modelRoutes.start();
    } catch (error) {
      // Holding the lease without controllers would stall every ModelDeployment: fail liveness instead.
      electionFailed = true;
      log.error({ err: String(error) }, "controllers failed to start; reporting unhealthy");
      throw error;
    }
  };

  const stopTerm = async (term: ReturnType<typeof buildControllers>) => {
    await term.autoscaler.stop();
    await term.adapters.stop();
    await term.orphans.stop();
    await term.modelRoutes.stop();
    term.inferencePools.stop();
    await term.controller.stop();
    if (current === term) current = undefined;
    synced = false;
  };

  if (config.leaderElect) {
    elector = new LeaderElector(client, {
      namespace: config.leaseNamespace,
      name: config.leaseName,
      identity: config.identity,
      leaseDurationMs: config.leaseDurationSeconds * 1000,
      renewDeadlineMs: config.renewDeadlineSeconds * 1000,
      retryPeriodMs: config.retryPeriodSeconds * 1000,
    });
    // Term after term: losing the lease (an API outage longer than the renew deadline) stops this term's
    // controllers, and the elector campaigns again at once; the next term builds new ones.
    elector
      .runUntilStopped({
        onStartedLeading: lead,
        onStoppedLeading: () => {
          leading = false;
          metrics.leader.set(0);
          log.warn({ identity: config.identity }, "leadership lost; stopping this term's controllers and campaigning again");
        },
        onNewLeader: (identity) => log.info({ leader: identity }, "leader observed"),
      })
      .catch((error: unknown) => {
        electionFailed = true;
        log.error({ err: String(error) }, "leader election failed; reporting unhealthy");
      });
  } else {
    await lead(new AbortController().signal);
  }

  return {
    opsPort: ops.port,
    metrics,
    isLeader: () => leading && synced,
    async stop() {
      stopping = true;
      if (current) await stopTerm(current);
      await termStopped;
      if (elector) await elector.release();
      await ops.close();
      client.close();
      log.info("stopped");
    },
  };
}
