/**
 * Chaos scenarios against a real local control plane and the operator as real processes. Each one
 * runs churn (ModelDeployments created, changed, deleted and re-created under the same name) while a
 * fault happens, then waits (bounded) until the fleet is clean (see invariants.ts) and reports one row:
 * fault, runs, objects checked, lost/duplicate/orphaned/stale, time to converge after the fault.
 *
 * Used by `npm run chaos` (sim/chaos/run.ts, full counts) and test/chaos.test.ts (a short share for CI).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { API_GROUP, API_VERSION, KIND, type ModelDeployment } from "../../operator/api/modeldeployment.js";
import { gatewayDemandPatch } from "../../operator/api/gateway-demand.js";
import { SELECTOR_LABEL } from "../../operator/controller/reconcile-plan.js";
import { emptyHistory } from "../../operator/autoscaler/history.js";
import { historyConfigMapName, renderHistoryConfigMap } from "../../operator/autoscaler/history-store.js";
import { isNotFound, KubeClient, type KubeObject } from "../../operator/runtime/kube-client.js";
import { spawnOperatorProcess, type OperatorProcess } from "../../test/support/operator.js";
import { freeLoopbackPort, type LocalCluster } from "../cluster/cluster.js";
import { startFaultProxy, NO_FAULTS, type Faults } from "./fault-proxy.js";
import { logLinesAbout } from "./operator-log.js";
import { gatewayView, podReadiness, startChaosEngines, startChaosGateway, waitForGatewayRoutes } from "./serving.js";
import {
  checkFleet,
  fleetIsClean,
  retryAfterCompliance,
  type FleetCheck,
  type ObservedModelDeployment,
  type ObservedOwnedObject,
  type OwnedKind,
} from "./invariants.js";

export interface ChaosContext {
  cluster: LocalCluster;
  /** Direct (fault-free) client of the test driver. */
  client: KubeClient;
  /** Folder for operator logs and kubeconfigs. */
  dir: string;
  random: () => number;
  say: (line: string) => void;
  /** Bound on each wait for convergence. */
  convergeTimeoutMs: number;
  /**
   * Environment for every operator started (under the scenario's own): e.g. shorter leader-election
   * timings, so an outage "longer than the lease" takes less wall time in CI.
   */
  operatorEnv?: Record<string, string>;
}

/** Short leader-election timings (lease 6 s, renew deadline 4 s, retry 1 s): quick failovers in tests. */
export const SHORT_LEASE_ENV: Readonly<Record<string, string>> = {
  GPUFLEET_LEASE_DURATION_SECONDS: "6",
  GPUFLEET_RENEW_DEADLINE_SECONDS: "4",
  GPUFLEET_RETRY_PERIOD_SECONDS: "1",
};

export interface ChaosRow {
  fault: string;
  runs: number;
  check: FleetCheck;
  /** Seconds from the end of the last fault to a clean fleet, per run (undefined: never within the bound). */
  convergeSeconds: Array<number | undefined>;
  notes: string[];
  /** Fault-proxy phases: requests the operator sent, and retries sooner than Retry-After asked. */
  phases?: PhaseFigures[];
}

export interface PhaseFigures {
  name: string;
  requests: number;
  perSecond: number;
  retryFollowUps: number;
  retriesTooEarly: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mdPath = (namespace: string, name?: string) =>
  `/apis/${API_GROUP}/${API_VERSION}/namespaces/${namespace}/modeldeployments${name ? `/${name}` : ""}`;

export function chaosModelDeploymentSpec(maxContextLength: number, modelName = "llama-3.2-1b"): Record<string, unknown> {
  return {
    model: {
      name: modelName,
      source: { huggingFace: { repo: "meta-llama/Llama-3.2-1B-Instruct" } },
      maxContextLength,
    },
    gpu: { products: ["NVIDIA-L4"] },
    replicas: 1,
  };
}

// ---- churn: the user side, with retries until the API takes each change -----------------------------

/**
 * Creates, changes, deletes and re-creates ModelDeployments in one namespace. Every operation is
 * retried until the API server accepts it (apply and delete are idempotent), so `live` is what the
 * API holds once `drain()` returns, whatever faults happened meanwhile.
 */
export class Churn {
  readonly live = new Map<string, number>();
  private readonly deleted: string[] = [];
  /** Names with an operation in flight: never two at once on one name, so `live` stays the truth. */
  private readonly busy = new Set<string>();
  private sequence = 0;
  operations = 0;
  failedAttempts = 0;

  constructor(
    private readonly client: KubeClient,
    readonly namespace: string,
    private readonly random: () => number,
    private readonly target: number,
  ) {}

  private async retry(what: () => Promise<void>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await what();
        this.operations++;
        return;
      } catch (error) {
        if (isNotFound(error)) {
          this.operations++;
          return;
        }
        this.failedAttempts++;
        await sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 5)));
      }
    }
  }

  private apply(name: string, maxContextLength: number): Promise<void> {
    this.live.set(name, maxContextLength);
    return this.retry(async () => {
      await this.client.apply(
        {
          apiVersion: `${API_GROUP}/${API_VERSION}`,
          kind: KIND,
          metadata: { name, namespace: this.namespace },
          // The served model is named as the ModelDeployment, so the gateway routes each one on its own.
          spec: chaosModelDeploymentSpec(maxContextLength, name),
        } as KubeObject,
        { fieldManager: "chaos-user", force: true },
      );
    });
  }

  private remove(name: string): Promise<void> {
    this.live.delete(name);
    this.deleted.push(name);
    return this.retry(async () => {
      await this.client.request("DELETE", mdPath(this.namespace, name), {
        body: { kind: "DeleteOptions", apiVersion: "v1", propagationPolicy: "Background" },
      });
    });
  }

  /** Names deleted and not re-created since. */
  deletedNames(): readonly string[] {
    return [...this.deleted];
  }

  /** Deletes one live ModelDeployment (retried until the API takes it). */
  delete(name: string): Promise<void> {
    return this.locked(name, () => this.remove(name));
  }

  /** One random operation: create until the target count, then change, delete or re-create a namesake. */
  async step(): Promise<void> {
    const names = [...this.live.keys()].filter((name) => !this.busy.has(name));
    const roll = this.random();
    if (names.length < this.target * 0.8 || (names.length < this.target && roll < 0.5)) {
      // A deleted name comes back now and then: its old objects belong to a dead uid.
      const reuse = this.deleted.length > 0 && this.random() < 0.3;
      const name = reuse
        ? this.deleted.splice(Math.floor(this.random() * this.deleted.length), 1)[0]!
        : `md-${String(this.sequence++).padStart(4, "0")}`;
      if (this.live.has(name) || this.busy.has(name)) return;
      return this.locked(name, () => this.apply(name, 8192));
    }
    const name = names[Math.floor(this.random() * names.length)];
    if (name === undefined) return;
    if (roll < 0.75)
      return this.locked(name, () => this.apply(name, this.live.get(name) === 8192 ? 4096 : 8192));
    return this.locked(name, () => this.remove(name));
  }

  private async locked(name: string, operation: () => Promise<void>): Promise<void> {
    this.busy.add(name);
    try {
      await operation();
    } finally {
      this.busy.delete(name);
    }
  }

  /** Runs `step` with `concurrency` users until `until()` says stop; names are never touched by two at once. */
  async run(concurrency: number, until: () => boolean, pauseMs = 50): Promise<void> {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (!until()) {
          await this.step();
          await sleep(pauseMs);
        }
      }),
    );
  }
}

// ---- observing the fleet --------------------------------------------------------------------------

const OWNED_PATHS: Record<OwnedKind, string> = {
  Deployment: "/apis/apps/v1/namespaces/NS/deployments",
  Service: "/api/v1/namespaces/NS/services",
  PodDisruptionBudget: "/apis/policy/v1/namespaces/NS/poddisruptionbudgets",
  LeaderWorkerSet: "/apis/leaderworkerset.x-k8s.io/v1/namespaces/NS/leaderworkersets",
  ConfigMap: "/api/v1/namespaces/NS/configmaps",
};
/** Only the autoscaler's history ConfigMaps are gpufleet's (autoscaler/history-store.ts). */
const OWNED_SELECTORS: Partial<Record<OwnedKind, string>> = {
  ConfigMap: `${SELECTOR_LABEL},app.kubernetes.io/component=autoscaling-history`,
};
/** Served only where that CRD is installed: a 404 list means none. */
const OPTIONAL_APIS: ReadonlySet<OwnedKind> = new Set(["LeaderWorkerSet"]);

export async function observeFleet(
  client: KubeClient,
  namespace: string,
  expectedLive: ReadonlySet<string>,
): Promise<FleetCheck> {
  const mds = await client.list<ModelDeployment & KubeObject>(mdPath(namespace));
  const modelDeployments: ObservedModelDeployment[] = mds.items.map((md) => ({
    name: md.metadata.name ?? "",
    uid: md.metadata.uid ?? "",
    generation: md.metadata.generation ?? 0,
    observedGeneration: md.status?.observedGeneration,
    deleting: Boolean(md.metadata.deletionTimestamp),
  }));
  const owned: ObservedOwnedObject[] = [];
  for (const [kind, template] of Object.entries(OWNED_PATHS) as Array<[OwnedKind, string]>) {
    let list: { items: KubeObject[] };
    try {
      list = await client.list<KubeObject>(template.replace("NS", namespace), {
        labelSelector: OWNED_SELECTORS[kind] ?? SELECTOR_LABEL,
      });
    } catch (error) {
      if (OPTIONAL_APIS.has(kind) && isNotFound(error)) continue;
      throw error;
    }
    for (const object of list.items) {
      owned.push({
        kind,
        name: object.metadata?.name ?? "",
        modelDeploymentLabel: object.metadata?.labels?.[SELECTOR_LABEL],
        controllerUid: object.metadata?.ownerReferences?.find((reference) => reference.controller)?.uid,
        deleting: Boolean(object.metadata?.deletionTimestamp),
      });
    }
  }
  return checkFleet(expectedLive, modelDeployments, owned);
}

/** Polls until the fleet is clean or the bound passes; returns the last check and the seconds it took. */
export async function waitForCleanFleet(
  context: ChaosContext,
  namespace: string,
  expectedLive: ReadonlySet<string>,
  fromMs: number,
): Promise<{ check: FleetCheck; seconds: number | undefined; timeline: string }> {
  const deadline = Date.now() + context.convergeTimeoutMs;
  let check: FleetCheck | undefined;
  // What was still wrong, each time that changed (seconds from fromMs): where a convergence's time goes.
  const timeline: string[] = [];
  let lastShape = "";
  const note = (shape: string, example?: string) => {
    if (shape === lastShape) return;
    lastShape = shape;
    if (timeline.length < 40)
      timeline.push(`${((performance.now() - fromMs) / 1000).toFixed(1)} s ${shape}${example ? ` (${example})` : ""}`);
  };
  for (;;) {
    try {
      const observed = await observeFleet(context.client, namespace, expectedLive);
      check = observed;
      const shape = (["lost", "duplicate", "orphaned", "stale"] as const)
        .filter((kind) => observed[kind] > 0)
        .map((kind) => `${kind} ${observed[kind]}`)
        .join(", ");
      note(shape || "clean", observed.problems[0]);
      if (fleetIsClean(observed)) return { check: observed, seconds: (performance.now() - fromMs) / 1000, timeline: timeline.join("; ") };
    } catch (error) {
      context.say(`observing the fleet failed: ${error instanceof Error ? error.message : String(error)}`);
      note("unobservable");
    }
    if (Date.now() > deadline) {
      if (!check) throw new Error("the fleet could not be observed within the bound");
      return { check, seconds: undefined, timeline: timeline.join("; ") };
    }
    await sleep(500);
  }
}

/**
 * For up to 3 ModelDeployments a check found stale, what the scenario's operator logs said of each (its own
 * reconciles and the leadership terms around them, oldest log first): a failure seen once, in CI, can be read.
 */
export function staleStories(context: ChaosContext, namespace: string, check: FleetCheck): string[] {
  const names = (check.staleNames ?? []).slice(0, 3);
  if (!names.length) return [];
  const files = readdirSync(context.dir)
    .filter((file) => file.startsWith(`${namespace}-`) && file.endsWith(".log"))
    .map((file) => join(context.dir, file))
    .sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);
  const logs = files.map((file) => ({ file: basename(file, ".log"), text: readFileSync(file, "utf8") }));
  return names.map((name) => {
    const lines = logs.flatMap(({ file, text }) => logLinesAbout(text, namespace, name).map((line) => `${file} ${line}`)).slice(-12);
    return `stale ${name}, the operator said: ${lines.length ? lines.join(" | ") : "nothing"}`;
  });
}

// ---- the operator ------------------------------------------------------------------------------------

export interface OperatorHandle {
  process: OperatorProcess;
  opsPort: number;
}

export async function startOperator(
  context: ChaosContext,
  namespace: string,
  name: string,
  kubeconfigPath = context.cluster.kubeconfigPath,
  env: Record<string, string> = {},
): Promise<OperatorHandle> {
  const opsPort = await freeLoopbackPort();
  const operator = spawnOperatorProcess(
    kubeconfigPath,
    {
      GPUFLEET_WATCH_NAMESPACES: namespace,
      GPUFLEET_LEADER_ELECT: "true",
      GPUFLEET_LEASE_NAMESPACE: namespace,
      GPUFLEET_LEASE_NAME: `chaos-${namespace}`,
      POD_NAMESPACE: namespace,
      POD_NAME: name,
      GPUFLEET_OPS_PORT: String(opsPort),
      // Debug: a ModelDeployment found stale is then told from its own reconciles (staleStories).
      GPUFLEET_LOG_LEVEL: "debug",
      ...context.operatorEnv,
      ...env,
    },
    join(context.dir, `${namespace}-${name}.log`),
  );
  return { process: operator, opsPort };
}

/** Waits (bounded) until the operator's ops server answers, so a kill lands in its work, not its start-up. */
async function waitUntilServing(operator: OperatorHandle, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && operator.process.child.exitCode === null) {
    try {
      if ((await fetch(`http://127.0.0.1:${operator.opsPort}/healthz`)).ok) return;
    } catch {
      // Not listening yet.
    }
    await sleep(100);
  }
}

export async function createNamespace(context: ChaosContext, name: string): Promise<void> {
  await context.client.create({ apiVersion: "v1", kind: "Namespace", metadata: { name } } as KubeObject);
  // Pods are refused until the default ServiceAccount exists.
  for (let i = 0; i < 100; i++) {
    try {
      await context.client.get(`/api/v1/namespaces/${name}/serviceaccounts/default`);
      return;
    } catch {
      await sleep(200);
    }
  }
}

/** Deletes the scenario's namespace (its objects go with it) so the next scenario starts light. */
export async function dropNamespace(context: ChaosContext, name: string): Promise<void> {
  try {
    await context.client.request("DELETE", `/api/v1/namespaces/${name}`);
  } catch (error) {
    context.say(`could not delete namespace ${name}: ${String(error)}`);
  }
}

export const mergeChecks = (a: FleetCheck, b: FleetCheck): FleetCheck => ({
  objectsChecked: a.objectsChecked + b.objectsChecked,
  lost: a.lost + b.lost,
  duplicate: a.duplicate + b.duplicate,
  orphaned: a.orphaned + b.orphaned,
  stale: a.stale + b.stale,
  problems: [...a.problems, ...b.problems].slice(0, 20),
});
export const EMPTY_CHECK: FleetCheck = {
  objectsChecked: 0,
  lost: 0,
  duplicate: 0,
  orphaned: 0,
  stale: 0,
  problems: [],
};

// ---- scenarios -------------------------------------------------------------------------------------

/** The operator SIGKILLed `kills` times at random points while `modelDeployments` are churned. */
export async function operatorKills(
  context: ChaosContext,
  options: { modelDeployments: number; kills: number; maxGapMs?: number; churnPauseMs?: number },
): Promise<ChaosRow> {
  const namespace = "chaos-kill";
  await createNamespace(context, namespace);
  const churn = new Churn(context.client, namespace, context.random, options.modelDeployments);
  let operator = await startOperator(context, namespace, "kill-0");
  let done = false;
  const churning = churn.run(4, () => done, options.churnPauseMs ?? 50);
  let lastKillAt = performance.now();
  let churnEndedAt: number;
  let converged: { check: FleetCheck; seconds: number | undefined };
  try {
    for (let kill = 1; kill <= options.kills; kill++) {
      await waitUntilServing(operator);
      await sleep(context.random() * (options.maxGapMs ?? 3000));
      await operator.process.kill("SIGKILL");
      lastKillAt = performance.now();
      operator = await startOperator(context, namespace, `kill-${kill}`);
    }
    done = true;
    await churning;
    churnEndedAt = performance.now();
    converged = await waitForCleanFleet(context, namespace, new Set(churn.live.keys()), churnEndedAt);
  } finally {
    // Also when a step above threw: no operator process outlives its scenario.
    done = true;
    await operator.process.kill("SIGTERM");
    await dropNamespace(context, namespace);
  }
  const { check, seconds } = converged;
  return {
    fault: "operator SIGKILL",
    runs: options.kills,
    check,
    convergeSeconds: [seconds],
    notes: [
      `${churn.operations} churn operations on ${churn.live.size} live ModelDeployments at the end`,
      `converge timed from the end of churn (last kill ${((churnEndedAt - lastKillAt) / 1000).toFixed(1)} s before)`,
      ...staleStories(context, namespace, check),
    ],
  };
}

/**
 * kube-apiserver or etcd SIGKILLed and restarted after `downMs`, under churn, `runs` times; with one
 * operator or two replicas (leader election). Converge is timed from the moment the API is back.
 */
export async function controlPlaneRestarts(
  context: ChaosContext,
  options: {
    component: "kube-apiserver" | "etcd";
    downMs: number[];
    modelDeployments: number;
    replicas: 1 | 2;
    /**
     * Keep churning while the component is killed (default true). False churns only before and after the
     * outage: a ModelDeployment deleted right at the kill can leave its objects to a garbage collector that
     * missed the deletion (found by `npm run chaos -- --seed 7`); the operator's backstop
     * (operator/controller/orphans.ts) removes them after two sweeps (60 s by default), longer than CI waits.
     */
    churnDuringOutage?: boolean;
    /**
     * Also run the gateway (with simulated engines on the pods): after the fault it must have relisted,
     * answering every live ModelDeployment's model (including those created after the API came back) and
     * 404 for deleted ones. Default true.
     */
    gateway?: boolean;
  },
): Promise<ChaosRow> {
  const namespace = `chaos-${options.component === "etcd" ? "etcd" : "api"}-${options.replicas}`;
  await createNamespace(context, namespace);
  const churn = new Churn(context.client, namespace, context.random, options.modelDeployments);
  const operators = await Promise.all(
    Array.from({ length: options.replicas }, (_, i) => startOperator(context, namespace, `replica-${i}`)),
  );
  const withGateway = options.gateway !== false;
  const engines = withGateway ? startChaosEngines(context, namespace) : undefined;
  let gateway: Awaited<ReturnType<typeof startChaosGateway>> | undefined;
  let total = EMPTY_CHECK;
  const convergeSeconds: Array<number | undefined> = [];
  const notes: string[] = [];
  let runs = 0;
  try {
    gateway = withGateway ? await startChaosGateway(context, namespace) : undefined;
    // Fill the fleet first.
    await churn.run(4, () => churn.live.size >= options.modelDeployments * 0.8);
    for (const downMs of options.downMs) {
      runs++;
      let done = false;
      let churning = churn.run(2, () => done, 100);
      await sleep(1000);
      if (options.churnDuringOutage === false) {
        done = true;
        await churning;
        // Let the garbage collector see the last deletions before the kill.
        await sleep(2000);
      }
      // The restarted process may take long to be ready on a loaded machine (it relists everything from etcd
      // and runs its start-up hooks): that wait is bounded like a convergence, and reported.
      await context.cluster.killComponent(options.component);
      await sleep(downMs);
      const restartedAt = performance.now();
      await context.cluster.startComponent(options.component, { timeoutMs: context.convergeTimeoutMs });
      const backAt = performance.now();
      notes.push(`down ${(downMs / 1000).toFixed(0)} s: ${options.component} ready ${((backAt - restartedAt) / 1000).toFixed(1)} s after its restart`);
      // A little churn after the API is back too: new objects must be served by the operator.
      if (done) {
        done = false;
        churning = churn.run(2, () => done, 100);
      }
      await sleep(3000);
      done = true;
      await churning;
      const { check, seconds, timeline } = await waitForCleanFleet(
        context,
        namespace,
        new Set(churn.live.keys()),
        backAt,
      );
      total = mergeChecks(total, check);
      convergeSeconds.push(seconds);
      notes.push(
        `down ${(downMs / 1000).toFixed(0)} s: ${seconds === undefined ? "NOT converged" : `converged ${seconds.toFixed(1)} s after the API was back`}; ` +
          `what was left, from the API back: ${timeline}`,
      );
      notes.push(...staleStories(context, namespace, check));
      if (gateway) {
        // The gateway relisted: every live model answered (those created after the restart too), deleted ones 404.
        const live = [...churn.live.keys()];
        const gone = churn.deletedNames().slice(-5);
        const chaosGateway = gateway;
        const routes = await waitForGatewayRoutes(
          gateway.url,
          live,
          gone,
          backAt,
          context.convergeTimeoutMs,
          async (model) => `${await podReadiness(context.client, namespace, model)}; ${gatewayView(chaosGateway.gateway, model)}`,
        );
        const lostRoutes = routes.problems.length;
        total = mergeChecks(total, {
          ...EMPTY_CHECK,
          objectsChecked: live.length + gone.length,
          lost: lostRoutes,
          problems: routes.problems.map((line) => `gateway: ${line}`),
        });
        convergeSeconds.push(routes.seconds);
        notes.push(
          `down ${(downMs / 1000).toFixed(0)} s: the gateway ` +
            (routes.seconds === undefined
              ? "did NOT route every live model"
              : `routed all ${live.length} live models and refused ${gone.length} deleted ones ${routes.seconds.toFixed(1)} s after the API was back`) +
            (routes.lastPending.length ? ` (the last to answer said before: ${routes.lastPending.join("; ")})` : "") +
            `; what was left, from the API back: ${routes.timeline}`,
        );
        if (routes.seconds === undefined) break;
      }
      if (seconds === undefined) break;
    }
  } finally {
    // Also when a step above threw: no operator, engine or gateway outlives its scenario.
    for (const operator of operators) {
      if (operator.process.child.exitCode !== null)
        notes.push(`operator exited with ${operator.process.child.exitCode}`);
      await operator.process.kill("SIGTERM");
    }
    await gateway?.stop();
    await engines?.stop();
    await dropNamespace(context, namespace);
  }
  return {
    fault: `${options.component} restart, ${options.replicas} replica${options.replicas > 1 ? "s" : ""}${withGateway ? " + gateway" : ""}`,
    runs,
    check: total,
    convergeSeconds,
    notes,
  };
}

/**
 * The garbage collector's backstop: kube-controller-manager (and with it the garbage collector) is
 * stopped, ModelDeployments are deleted, and the operator alone must remove their Deployment, Service and
 * PDB (operator/controller/orphans.ts), as it must when the collector misses a deletion across an API
 * outage (the finding of `npm run chaos -- --seed 7`). Converge is timed from the deletes.
 */
export async function garbageCollectorDown(
  context: ChaosContext,
  options: { modelDeployments: number; deletes: number; sweepSeconds: number },
): Promise<ChaosRow> {
  const namespace = "chaos-gc";
  await createNamespace(context, namespace);
  const churn = new Churn(context.client, namespace, context.random, options.modelDeployments);
  const operator = await startOperator(context, namespace, "gc-0", context.cluster.kubeconfigPath, {
    GPUFLEET_ORPHAN_SWEEP_SECONDS: String(options.sweepSeconds),
  });
  const notes: string[] = [];
  let controllerManagerDown = false;
  try {
    await churn.run(2, () => churn.live.size >= options.modelDeployments);
    const filled = await waitForCleanFleet(context, namespace, new Set(churn.live.keys()), performance.now());
    if (filled.seconds === undefined) notes.push("the fleet did not converge before the fault");
    const victims = [...churn.live.keys()].slice(0, options.deletes);
    // Every ModelDeployment gets the autoscaler's history ConfigMap (KWOK pods serve no samples, so it is
    // written here as the operator writes it) and each victim a LeaderWorkerSet: the backstop must take the
    // victims' and leave the survivors'.
    const lwsServed = await context.client.get("/apis/leaderworkerset.x-k8s.io/v1").then(() => true, () => false);
    const extras: string[] = [];
    for (const name of churn.live.keys()) {
      const md = await context.client.get<ModelDeployment & KubeObject>(mdPath(namespace, name));
      for (const object of ownedExtras(md, victims.includes(name) && lwsServed)) {
        await context.client.create(object);
        extras.push(`${object.kind}/${object.metadata?.name}`);
      }
    }
    if (!lwsServed) notes.push("the LeaderWorkerSet API is not served: no LeaderWorkerSets to collect");
    await context.cluster.killComponent("kube-controller-manager");
    controllerManagerDown = true;
    const deletedAt = performance.now();
    for (const name of victims) await churn.delete(name);
    const { check, seconds } = await waitForCleanFleet(context, namespace, new Set(churn.live.keys()), deletedAt);
    // The survivors' history ConfigMaps are still there (the backstop took only the dead owners').
    for (const name of churn.live.keys()) {
      const kept = await context.client.get(`/api/v1/namespaces/${namespace}/configmaps/${historyConfigMapName(name)}`).then(() => true, () => false);
      check.objectsChecked++;
      if (!kept) {
        check.lost++;
        check.problems.push(`${name}: its history ConfigMap was deleted`);
      }
    }
    notes.push(
      `${victims.length} ModelDeployments deleted with the garbage collector stopped (sweep every ${options.sweepSeconds} s; ` +
        `${extras.length} history ConfigMaps/LeaderWorkerSets added): ` +
        (seconds === undefined ? "their objects were NOT removed" : `their objects removed by the operator in ${seconds.toFixed(1)} s`),
    );
    return { fault: "garbage collector down, deletes", runs: 1, check, convergeSeconds: [seconds], notes };
  } finally {
    if (controllerManagerDown) await context.cluster.startComponent("kube-controller-manager");
    await operator.process.kill("SIGTERM");
    await dropNamespace(context, namespace);
  }
}

/**
 * The objects a ModelDeployment has beyond its Deployment, Service and PDB, as the operator writes them: the
 * autoscaler's history ConfigMap, and (`withGroup`) a LeaderWorkerSet as for a replica spanning nodes.
 */
function ownedExtras(md: ModelDeployment & KubeObject, withGroup: boolean): KubeObject[] {
  const reference = { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, name: md.metadata.name, uid: md.metadata.uid!, controller: true, blockOwnerDeletion: true };
  const history = renderHistoryConfigMap(md, emptyHistory());
  const objects: KubeObject[] = [history];
  if (withGroup)
    objects.push({
      apiVersion: "leaderworkerset.x-k8s.io/v1",
      kind: "LeaderWorkerSet",
      metadata: { name: md.metadata.name, namespace: md.metadata.namespace, labels: { [SELECTOR_LABEL]: md.metadata.name }, ownerReferences: [reference] },
      spec: {
        replicas: 0,
        leaderWorkerTemplate: { size: 2, workerTemplate: { spec: { containers: [{ name: "engine", image: "registry.example/engine:1" }] } } },
      },
    } as KubeObject);
  return objects;
}

/**
 * Leader failover during a scale-up: ModelDeployments sit at zero (minReplicas 0) under two operator
 * replicas; a gateway's held request is written to all of them at once (a wave of scale-ups from zero), and
 * the leader is SIGKILLed a random moment later, mid-wave. The standby takes over. Every ModelDeployment must
 * end at exactly one replica (no lost decision) having changed its replicas once (generation 2: the scale
 * write bumps the generation, so a second write, i.e. double scaling, would show as generation 3 or more).
 * Converge is timed from the kill. Short leases keep the failover quick.
 */
export async function failoverDuringScaleUp(
  context: ChaosContext,
  options: { modelDeployments: number; runs: number; maxKillDelayMs?: number },
): Promise<ChaosRow> {
  const namespace = "chaos-failover";
  await createNamespace(context, namespace);
  const lease = SHORT_LEASE_ENV;
  let sequence = 0;
  const operators = new Map<string, OperatorHandle>();
  const startReplica = async () => {
    const name = `replica-${sequence++}`;
    operators.set(name, await startOperator(context, namespace, name, context.cluster.kubeconfigPath, lease));
  };
  let total = EMPTY_CHECK;
  const convergeSeconds: Array<number | undefined> = [];
  const notes: string[] = [];
  const all = new Set<string>();
  try {
    await startReplica();
    await startReplica();
    for (let run = 0; run < options.runs; run++) {
      const names = Array.from({ length: options.modelDeployments }, (_, i) => `wave${run}-${String(i).padStart(3, "0")}`);
      for (const name of names) {
        all.add(name);
        await context.client.apply(
          {
            apiVersion: `${API_GROUP}/${API_VERSION}`,
            kind: KIND,
            metadata: { name, namespace },
            spec: {
              ...chaosModelDeploymentSpec(8192),
              replicas: 0,
              autoscaling: { enabled: true, minReplicas: 0, maxReplicas: 3, scaleToZeroIdleSeconds: 600 },
            },
          } as KubeObject,
          { fieldManager: "chaos-user", force: true },
        );
      }
      // Served at zero first (a status for the current generation), so the wave is a scale-up, not a create.
      const idle = await waitForCleanFleet(context, namespace, all, performance.now());
      if (idle.seconds === undefined) notes.push(`run ${run}: the fleet did not converge at zero before the wave`);
      const leaseHolder = (
        await context.client.get<{ spec?: { holderIdentity?: string } }>(`/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/chaos-${namespace}`)
      ).spec?.holderIdentity;
      const now = Date.now();
      await Promise.all(
        names.map((name) =>
          context.client.patch(mdPath(namespace, name), gatewayDemandPatch("chaos-gateway", { held: 1, lastRequestAt: now, updatedAt: now })),
        ),
      );
      await sleep(context.random() * (options.maxKillDelayMs ?? 1000));
      const leader = leaseHolder ? operators.get(leaseHolder) : undefined;
      if (!leader) notes.push(`run ${run}: no leader found to kill (lease holder ${leaseHolder ?? "none"})`);
      await leader?.process.kill("SIGKILL");
      if (leaseHolder) operators.delete(leaseHolder);
      const killedAt = performance.now();
      await startReplica();
      // Clean fleet (objects, observedGeneration) and every ModelDeployment of the wave at one replica.
      const deadline = Date.now() + context.convergeTimeoutMs;
      let check: FleetCheck | undefined;
      let seconds: number | undefined;
      for (;;) {
        const fleet = await observeFleet(context.client, namespace, all).catch(() => undefined);
        const mds = await context.client.list<ModelDeployment & KubeObject>(mdPath(namespace)).catch(() => undefined);
        const wave = (mds?.items ?? []).filter((md) => names.includes(md.metadata.name ?? ""));
        const woken = wave.filter((md) => md.spec.replicas === 1).length;
        if (fleet) {
          const doubled = wave.filter((md) => (md.spec.replicas ?? 0) > 1 || (md.metadata.generation ?? 0) > 2);
          check = {
            ...fleet,
            objectsChecked: fleet.objectsChecked,
            lost: fleet.lost + (names.length - woken),
            duplicate: fleet.duplicate + doubled.length,
            problems: [
              ...fleet.problems,
              ...(woken < names.length ? [`${names.length - woken} of ${names.length} not scaled to 1 (lost decision)`] : []),
              ...doubled.map((md) => `${md.metadata.name}: replicas ${md.spec.replicas}, generation ${md.metadata.generation} (scaled more than once)`),
            ].slice(0, 20),
          };
          if (fleetIsClean(check)) {
            seconds = (performance.now() - killedAt) / 1000;
            break;
          }
        }
        if (Date.now() > deadline) break;
        await sleep(500);
      }
      if (!check) throw new Error("the fleet could not be observed within the bound");
      total = mergeChecks(total, check);
      convergeSeconds.push(seconds);
      notes.push(
        `run ${run}: ${names.length} scale-ups from zero, leader ${leaseHolder ?? "?"} killed mid-wave: ` +
          (seconds === undefined ? "NOT converged" : `all at 1 replica, generation 2, ${seconds.toFixed(1)} s after the kill`),
      );
      if (seconds === undefined) break;
    }
    return { fault: "leader SIGKILL during a scale-up", runs: convergeSeconds.length, check: total, convergeSeconds, notes };
  } finally {
    for (const operator of operators.values()) await operator.process.kill("SIGTERM");
    await dropNamespace(context, namespace);
  }
}

interface FaultPhase {
  name: string;
  faults: Partial<Faults>;
  seconds: number;
}

/**
 * The operator talks to the API through a fault-injecting proxy: latency, 429 with Retry-After, 500s,
 * watch streams cut. Counts its requests per phase, and the retries sooner than Retry-After asked.
 */
export async function apiFaults(
  context: ChaosContext,
  options: { modelDeployments: number; phaseSeconds: number },
): Promise<ChaosRow> {
  const namespace = "chaos-proxy";
  await createNamespace(context, namespace);
  const proxy = await startFaultProxy(context.cluster.kubeConfig, Math.floor(context.random() * 2 ** 31));
  const kubeconfigPath = proxy.writeKubeconfig(join(context.dir, "proxy.kubeconfig"));
  const churn = new Churn(context.client, namespace, context.random, options.modelDeployments);
  const operator = await startOperator(context, namespace, "proxied", kubeconfigPath);
  const notes: string[] = [];
  try {
    await churn.run(4, () => churn.live.size >= options.modelDeployments * 0.8);
    // The baseline phase must see a working operator: wait until it has served the fleet.
    const filled = await waitForCleanFleet(context, namespace, new Set(churn.live.keys()), performance.now());
    if (filled.seconds === undefined) notes.push("the fleet did not converge before the faults began");
    const phases: FaultPhase[] = [
      { name: "no faults", faults: NO_FAULTS, seconds: options.phaseSeconds },
      { name: "latency 300 ms", faults: { ...NO_FAULTS, latencyMs: 300 }, seconds: options.phaseSeconds },
      {
        name: "30% 429 Retry-After 2 s",
        faults: { ...NO_FAULTS, tooManyRequests: 0.3, retryAfterSeconds: 2 },
        seconds: options.phaseSeconds,
      },
      { name: "30% 500", faults: { ...NO_FAULTS, serverErrors: 0.3 }, seconds: options.phaseSeconds },
      {
        name: "watches cut every 2 s",
        faults: { ...NO_FAULTS, dropWatchesEveryMs: 2000 },
        seconds: options.phaseSeconds,
      },
    ];
    const figures: PhaseFigures[] = [];
    for (const phase of phases) {
      const startIndex = proxy.log.length;
      proxy.setFaults(phase.faults);
      let done = false;
      const churning = churn.run(2, () => done, 200);
      await sleep(phase.seconds * 1000);
      done = true;
      await churning;
      const entries = proxy.log.slice(startIndex);
      const rate = entries.length / phase.seconds;
      const compliance = retryAfterCompliance(entries);
      figures.push({
        name: phase.name,
        requests: entries.length,
        perSecond: rate,
        retryFollowUps: compliance.followUps,
        retriesTooEarly: compliance.early,
      });
      notes.push(
        `${phase.name}: ${entries.length} requests (${rate.toFixed(1)}/s)` +
          (phase.faults.tooManyRequests
            ? `, ${compliance.early} of ${compliance.followUps} retries sooner than Retry-After`
            : ""),
      );
    }
    proxy.setFaults(NO_FAULTS);
    const cleanFrom = performance.now();
    const { check, seconds } = await waitForCleanFleet(
      context,
      namespace,
      new Set(churn.live.keys()),
      cleanFrom,
    );
    notes.push(`watch streams cut: ${proxy.watchesCut()}`);
    notes.push(...staleStories(context, namespace, check));
    return {
      fault: "API latency/429/500/watch cuts (proxy)",
      runs: phases.length - 1,
      check,
      convergeSeconds: [seconds],
      notes,
      phases: figures,
    };
  } finally {
    await operator.process.kill("SIGTERM");
    await proxy.stop();
    await dropNamespace(context, namespace);
  }
}

export function formatChaosTable(rows: readonly ChaosRow[]): string {
  const header = [
    "fault",
    "runs",
    "objects checked",
    "lost/duplicate/orphaned/stale",
    "time to converge (s)",
  ];
  const body = rows.map((row) => [
    row.fault,
    String(row.runs),
    String(row.check.objectsChecked),
    `${row.check.lost}/${row.check.duplicate}/${row.check.orphaned}/${row.check.stale}`,
    row.convergeSeconds.map((s) => (s === undefined ? "never" : s.toFixed(1))).join(", "),
  ]);
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((cells) => cells[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(" | ")} |`;
  const lines = [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...body.map(line)];
  for (const row of rows) {
    for (const note of row.notes) lines.push(`  ${row.fault}: ${note}`);
    for (const problem of row.check.problems) lines.push(`  ${row.fault}: PROBLEM ${problem}`);
  }
  return lines.join("\n");
}

