/**
 * Operator scale benchmark: `npx tsx sim/bench/operator-scale.ts [--count 1000] [--concurrency 16]`.
 *
 * On its own local control plane (KWOK GPU nodes, own temp dir, stopped at the end even on error):
 *  1. ceilings: the API server's create throughput for N plain ConfigMaps at the same client concurrency,
 *     then for up to 200 Services (ClusterIPs are allocated one at a time: the floor under convergence);
 *     then the writes a ModelDeployment needs, replayed with no reads (replayOperatorWrites: the
 *     ModelDeployment, its Service, PDB and Deployment from the operator's own plan, status, Events) in a
 *     namespace of their own, deleted again before the operator starts;
 *  2. the operator as a separate process (`node --import tsx operator/main.ts`, so its RSS is its own),
 *     then N ModelDeployments applied at that concurrency. Per object, apply → Deployment ADDED is timed
 *     by watch event arrival (creationTimestamp has 1 s resolution), then convergence
 *     (status.observedGeneration == generation and the Deployment exists) and, by default, Ready.
 *
 * Capacity: the bench runs on its own pool of ceil(N/8) g2-standard-96 nodes (8 L4 each), so every
 * 1-GPU replica is scheduled and runs. With pods stuck Pending the operator would requeue every object
 * every 10 s forever (planReconcile polls unfinished rollouts), which measures the poll, not the fleet.
 * `--gpu-nodes` shrinks the pool to see that case. Waiting for Ready is opt-in (`--wait-ready`): it
 * measures KWOK and the kube controllers on a loaded host as much as the operator.
 *
 * SIGINT/SIGTERM end the run like the deadline does: partial figures, then the same cleanup.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { execFileSync } from "node:child_process";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import type { KubeConfig, V1Node } from "@kubernetes/client-node";
import { boundStatus } from "../../operator/api/status-bounds.js";
import { API_GROUP, API_VERSION, KIND, type ModelDeployment } from "../../operator/api/modeldeployment.js";
import { loadConfig } from "../../operator/config.js";
import { reconcileDependencies, workloadObjects } from "../../operator/controller/controller.js";
import { planReconcile, SELECTOR_LABEL } from "../../operator/controller/reconcile-plan.js";
import { EventRecorder } from "../../operator/runtime/events.js";
import { FIELD_MANAGER, isGone, isNotFound, KubeClient, type KubeObject } from "../../operator/runtime/kube-client.js";
import { ensureModelDeploymentCrd } from "../../test/support/crds.js";
import { spawnOperatorProcess, type OperatorProcess } from "../../test/support/operator.js";
import { freeLoopbackPort, startLocalCluster, type LocalCluster } from "../cluster/cluster.js";
import {
  apiserverMeanSeconds,
  apiserverRequestDelta,
  BenchArgsError,
  benchModelDeploymentSpec,
  benchNodePools,
  forEachBounded,
  formatTable,
  GPUS_PER_BENCH_NODE,
  operatorMetricsFromExposition,
  parseBenchArgs,
  parseMachineTicks,
  parseProcStatTicks,
  parseVmRssKiB,
  percentile,
  ScaleTimeline,
  writeCeiling,
  writesIn,
  type BenchArgs,
  type OperatorMetricsSnapshot,
} from "./operator-scale-stats.js";
import { summarizeCpuProfile } from "./cpu-profile.js";
import { sampleLoadAverage } from "../load-average.js";

const NAMESPACE = "bench";
/** Where the operator's writes are replayed for the ceiling (not watched by the operator; deleted before it starts). */
const REPLAY_NAMESPACE = "bench-replay";
/**
 * KWOK's pod IPs for the bench's cluster: not the tests' 127.1.0.0/16, so a bench can run beside a test
 * cluster (the bench dials no pod; its other ports are free loopback ports picked at start).
 */
export const BENCH_POD_CIDR = "127.20.0.0/16";
/** Services created to time the API server's Service create rate (a sample: they are serialized). */
const SERVICE_CEILING_SAMPLE = 200;
const say = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** GET a text endpoint: the API server's /metrics with the kubeconfig's credentials, or a plain http URL. */
async function getText(url: string, kubeConfig?: KubeConfig): Promise<string> {
  const options: https.RequestOptions = { timeout: 30_000 };
  if (kubeConfig) await kubeConfig.applyToHTTPSOptions(options);
  const transport = url.startsWith("https:") ? https : http;
  return new Promise((resolve, reject) => {
    const request = transport.get(url, options, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("error", reject);
      response.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        if ((response.statusCode ?? 0) >= 300)
          reject(new Error(`GET ${url}: HTTP ${response.statusCode}: ${body.slice(0, 200)}`));
        else resolve(body);
      });
    });
    request.on("timeout", () => request.destroy(new Error(`GET ${url}: timeout`)));
    request.on("error", reject);
  });
}

/**
 * List then watch a collection until `signal` aborts, calling `onObject` with each object and the
 * arrival time of the event that carried it; rewatches when the server ends the stream, relists on 410.
 */
async function followCollection<T extends KubeObject>(
  client: KubeClient,
  path: string,
  labelSelector: string | undefined,
  onObject: (object: T, arrivedAtMs: number) => void,
  signal: AbortSignal,
): Promise<void> {
  let resourceVersion: string | undefined;
  while (!signal.aborted) {
    try {
      if (resourceVersion === undefined) {
        const list = await client.list<T>(path, labelSelector ? { labelSelector } : {});
        const now = performance.now();
        for (const item of list.items) onObject(item, now);
        resourceVersion = list.metadata.resourceVersion;
      }
      await client.watch<T>(
        path,
        {
          resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds: 600,
          ...(labelSelector ? { labelSelector } : {}),
        },
        (event) => {
          const arrivedAtMs = performance.now();
          if (event.type === "ERROR") {
            // Usually 410 Gone: the stream's resourceVersion is too old. Relist.
            resourceVersion = undefined;
            return;
          }
          resourceVersion = event.object.metadata?.resourceVersion ?? resourceVersion;
          if (event.type === "ADDED" || event.type === "MODIFIED") onObject(event.object, arrivedAtMs);
        },
        signal,
      );
    } catch (error) {
      if (signal.aborted) return;
      if (isGone(error)) resourceVersion = undefined;
      else say(`watch ${path} broke (${error instanceof Error ? error.message : String(error)}); rewatching`);
      await sleep(200);
    }
  }
}

/**
 * The ceiling for the writes a ModelDeployment needs, measured on this cluster: per object, what the bench
 * and the operator's first reconcile write, with no read, queue or watch in between. The ModelDeployment is
 * applied; its Service, PDB and Deployment (rendered by the operator's own planReconcile from the applied
 * object and the cluster's nodes) are applied together; then its status and its Events. `concurrency`
 * objects are in flight. The Deployments run their replica as the operator's do, so the kube controllers,
 * the scheduler and KWOK react as in the operator phase. Returns the wall time and the writes made.
 */
async function replayOperatorWrites(
  client: KubeClient,
  names: readonly string[],
  concurrency: number,
  timedOut: () => boolean,
): Promise<{ seconds: number; objects: number; writes: number; latencyMs: number[] }> {
  const nodes = (await client.list<V1Node & KubeObject>("/api/v1/nodes")).items;
  // The operator's configuration as the bench starts it (images and defaults from the same environment).
  const dependencies = reconcileDependencies({ config: loadConfig({ ...process.env, POD_NAMESPACE: NAMESPACE }) });
  const events = new EventRecorder(client, { host: "gpufleet-bench-replay" });
  const spec = benchModelDeploymentSpec();
  let objects = 0;
  let writes = 0;
  const latencyMs: number[] = [];
  const start = performance.now();
  await forEachBounded(
    names,
    concurrency,
    async (name) => {
      const appliedAt = performance.now();
      const modelDeployment = await client.apply(
        { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, metadata: { name, namespace: REPLAY_NAMESPACE }, spec } as KubeObject,
        { fieldManager: "gpufleet-bench", force: true },
      ) as ModelDeployment & KubeObject;
      const plan = planReconcile({ modelDeployment, nodes, pods: [], now: new Date() }, dependencies);
      if (!plan.workload)
        throw new Error(`replay: the operator's plan for ${name} has no workload: ${JSON.stringify(plan.status.conditions ?? [])}`);
      const workload = workloadObjects(plan.workload);
      await Promise.all(workload.map((object) => client.apply(object, { fieldManager: FIELD_MANAGER })));
      latencyMs.push(performance.now() - appliedAt);
      await client.apply(
        {
          apiVersion: `${API_GROUP}/${API_VERSION}`,
          kind: KIND,
          metadata: { name, namespace: REPLAY_NAMESPACE },
          status: boundStatus(plan.status),
        } as KubeObject,
        { fieldManager: FIELD_MANAGER, force: true, subresource: "status" },
      );
      await Promise.all(plan.events.map((event) => events.record(modelDeployment, event.type, event.reason, event.message)));
      objects++;
      writes += 2 + workload.length + plan.events.length;
    },
    timedOut,
  );
  return { seconds: (performance.now() - start) / 1000, objects, writes, latencyMs };
}

/**
 * Deletes a namespace and waits until it is gone. Its pods are force-deleted (KWOK's pods would otherwise
 * end only as KWOK gets to them) so their GPUs are free for what runs next.
 */
async function deleteNamespaceAndWait(client: KubeClient, namespace: string, timedOut: () => boolean): Promise<void> {
  await client.delete(`/api/v1/namespaces/${namespace}`);
  while (!timedOut()) {
    try {
      await client.get(`/api/v1/namespaces/${namespace}`);
    } catch (error) {
      if (isNotFound(error)) return;
      throw error;
    }
    await client.delete(`/api/v1/namespaces/${namespace}/pods`, { gracePeriodSeconds: 0 }).catch(() => undefined);
    await sleep(1000);
  }
  throw new Error(`namespace ${namespace} still there at the deadline`);
}

/** Peak and latest VmRSS of a process, sampled every `intervalMs` from /proc/<pid>/status. */
function sampleRss(
  pid: number,
  intervalMs: number,
): { peakKiB: () => number; latestKiB: () => number; stop: () => void } {
  let peak = 0;
  let latest = 0;
  const sample = () => {
    try {
      latest = parseVmRssKiB(readFileSync(`/proc/${pid}/status`, "utf8")) ?? latest;
      peak = Math.max(peak, latest);
    } catch {
      // The process is gone; keep the last figures.
    }
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return { peakKiB: () => peak, latestKiB: () => latest, stop: () => clearInterval(timer) };
}

/** CPU ticks of some processes and of the whole machine at one moment (/proc). */
interface CpuSnapshot {
  processTicks: number;
  machine: { busy: number; total: number } | undefined;
  atMs: number;
}

function cpuSnapshot(pids: readonly number[]): CpuSnapshot {
  let processTicks = 0;
  for (const pid of pids) {
    try {
      processTicks += parseProcStatTicks(readFileSync(`/proc/${pid}/stat`, "utf8")) ?? 0;
    } catch {
      // Gone: its time is no longer readable.
    }
  }
  let machine: CpuSnapshot["machine"];
  try {
    machine = parseMachineTicks(readFileSync("/proc/stat", "utf8"));
  } catch {
    machine = undefined;
  }
  return { processTicks, machine, atMs: performance.now() };
}

const CLOCK_TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * The cores the bench's own processes used between two snapshots, and how busy the whole machine was
 * (in cores): on a shared machine the second says how much of it the first could have had.
 */
function coresBetween(from: CpuSnapshot, to: CpuSnapshot): string {
  const wallSeconds = (to.atMs - from.atMs) / 1000;
  if (wallSeconds <= 0) return "n/a";
  const own = (to.processTicks - from.processTicks) / CLOCK_TICKS_PER_SECOND / wallSeconds;
  const cpus = availableParallelism();
  const machine =
    from.machine && to.machine && to.machine.total > from.machine.total
      ? ((to.machine.busy - from.machine.busy) / (to.machine.total - from.machine.total)) * cpus
      : undefined;
  return `${own.toFixed(2)} of ${cpus} cores${machine === undefined ? "" : ` (machine busy: ${machine.toFixed(2)})`}`;
}

interface Figures {
  args: BenchArgs;
  clusterStartupMs?: number;
  configMapSeconds?: number;
  configMapsCreated?: number;
  serviceSeconds?: number;
  servicesCreated?: number;
  /** The operator's writes replayed with no reads (replayOperatorWrites): wall time, objects done, writes. */
  replaySeconds?: number;
  replayedObjects?: number;
  replayWrites?: number;
  replayCores?: string;
  replayCleanupSeconds?: number;
  /** Per replayed object: from its apply to its Deployment's apply returning. */
  replayLatencyMs?: number[];
  applySeconds?: number;
  modelDeploymentsApplied?: number;
  allDeploymentsSeconds?: number;
  convergeSeconds?: number;
  readySeconds?: number;
  timeline?: ScaleTimeline;
  idleRssKiB?: number;
  peakRssKiB?: number;
  operatorMetrics?: OperatorMetricsSnapshot;
  apiserverRequests?: Map<string, number>;
  /** Writes the simulated nodes make whatever the operator does (KWOK's leases and node status), same window. */
  backgroundRequests?: Map<string, number>;
  /** Seconds from the first apply to the metrics snapshot (the window of the request deltas). */
  operatorPhaseSeconds?: number;
  apiserverMeanSeconds?: Map<string, number>;
  cpuProfileSummary?: string;
  /** Cores the cluster used while the ConfigMaps were created, and the cluster plus operator from apply to convergence. */
  ceilingCores?: string;
  operatorPhaseCores?: string;
  /** The machine's 1-minute load average, min–max per phase (sampleLoadAverage). */
  loadAverage?: string;
  aborted?: string;
}

const seconds = (value: number | undefined, digits = 1) =>
  value === undefined ? "n/a" : `${value.toFixed(digits)} s`;
const perSecond = (count: number | undefined, secs: number | undefined) =>
  count === undefined || !secs ? undefined : count / secs;
const rate = (value: number | undefined) => (value === undefined ? "n/a" : `${value.toFixed(1)} /s`);
const mib = (kib: number | undefined) =>
  kib === undefined || kib === 0 ? "n/a" : `${(kib / 1024).toFixed(0)} MiB`;
const ms = (value: number | undefined) => (value === undefined ? "n/a" : `${value.toFixed(0)} ms`);

function report(figures: Figures): string {
  const { args, timeline } = figures;
  const configMapRate = perSecond(figures.configMapsCreated, figures.configMapSeconds);
  const serviceRate = perSecond(figures.servicesCreated, figures.serviceSeconds);
  const serviceFloorSeconds = serviceRate ? args.count / serviceRate : undefined;
  const applyRate = perSecond(figures.modelDeploymentsApplied, figures.applySeconds);
  const convergedCount = timeline?.converged;
  const convergeRate = perSecond(args.count, figures.convergeSeconds);
  const latencies = timeline?.applyToDeploymentMs() ?? [];
  const reconciles = figures.operatorMetrics?.reconcilesByResult;
  const reconcileTotal = reconciles ? Object.values(reconciles).reduce((a, b) => a + b, 0) : undefined;
  const meanReconcileMs =
    figures.operatorMetrics && figures.operatorMetrics.reconcileCount > 0
      ? (figures.operatorMetrics.reconcileSecondsSum / figures.operatorMetrics.reconcileCount) * 1000
      : undefined;
  // Per-ModelDeployment write counts only mean something once every one has converged: a partial run
  // has applied all N but written the workloads of only some.
  const complete = (timeline?.converged ?? 0) === args.count;
  const operatorWrites = figures.operatorMetrics ? writesIn(figures.operatorMetrics.requests) : undefined;
  const workloadsWritten = figures.operatorMetrics?.requests.get("APPLY deployments");
  const ceiling =
    complete && figures.apiserverRequests && configMapRate
      ? writeCeiling(figures.apiserverRequests, args.count, configMapRate)
      : undefined;
  // A replay of every object is the ceiling; a complete replay of a sample is scaled to N (labelled an estimate).
  const replayScale =
    figures.replayedObjects && figures.replayedObjects === args.replayCount ? args.count / figures.replayedObjects : undefined;
  const rows: Array<[string, string]> = [
    ["N (ModelDeployments / ConfigMaps)", String(args.count)],
    ["arrival", args.rate ? `steady ${args.rate}/s` : "all at once"],
    ["client concurrency / operator workers", `${args.concurrency} / ${args.operatorConcurrency}`],
    ["GPU nodes (8 × L4 each)", String(args.gpuNodes)],
    ["ceiling: ConfigMap create throughput", rate(configMapRate)],
    ["ModelDeployment apply throughput", rate(applyRate)],
    ["time to all N Deployments", seconds(figures.allDeploymentsSeconds)],
    ["time to converge all N", seconds(figures.convergeSeconds)],
    ["converged", `${convergedCount ?? 0}/${args.count}`],
    ["time to all N Ready", args.waitReady ? seconds(figures.readySeconds) : "not waited"],
    ["ready", `${timeline?.ready ?? 0}/${args.count}`],
    ["apply→Deployment p50", ms(percentile(latencies, 50))],
    ["apply→Deployment p99", ms(percentile(latencies, 99))],
    ["apply→Deployment max", ms(percentile(latencies, 100))],
    ["operator throughput (N / converge time)", rate(convergeRate)],
    [
      "ratio operator / ConfigMap ceiling",
      convergeRate && configMapRate ? (convergeRate / configMapRate).toFixed(3) : "n/a",
    ],
    ["writes per ModelDeployment (all clients)", ceiling ? ceiling.writesPerObject.toFixed(2) : complete ? "n/a" : "n/a (partial run)"],
    [
      "  of which the operator's (its own counter)",
      operatorWrites === undefined
        ? "n/a"
        : complete
          ? (operatorWrites / args.count).toFixed(2)
          : workloadsWritten
            ? `${(operatorWrites / workloadsWritten).toFixed(2)} per workload written (partial run)`
            : "n/a (partial run)",
    ],
    ["ceiling: those writes at the ConfigMap rate", seconds(ceiling?.ceilingSeconds)],
    [
      "converge time / ceiling for its writes",
      ceiling && figures.convergeSeconds
        ? (figures.convergeSeconds / ceiling.ceilingSeconds).toFixed(2)
        : "n/a",
    ],
    [
      `ceiling: the operator's writes replayed, no reads (${figures.replayedObjects ?? 0} objects, concurrency ${args.concurrency})`,
      figures.replaySeconds === undefined
        ? "not replayed"
        : `${seconds(figures.replaySeconds)} (${figures.replayedObjects ? ((figures.replayWrites ?? 0) / figures.replayedObjects).toFixed(2) : 0} writes each by the bench)`,
    ],
    [
      replayScale === 1 || replayScale === undefined
        ? "converge time / replayed-writes ceiling (aim ≤ 2)"
        : `converge time / replayed-writes ceiling scaled ×${replayScale.toFixed(1)} from the sample (an estimate; aim ≤ 2)`,
      figures.replaySeconds && figures.convergeSeconds && replayScale
        ? (figures.convergeSeconds / (figures.replaySeconds * replayScale)).toFixed(2)
        : "n/a",
    ],
    ["apply→Deployment p50 / p99 in the replay (no queue, no reads)", figures.replayLatencyMs?.length ? `${ms(percentile(figures.replayLatencyMs, 50))} / ${ms(percentile(figures.replayLatencyMs, 99))}` : "n/a"],
    ["replay namespace deleted (before the operator starts) in", seconds(figures.replayCleanupSeconds)],
    [`ceiling: Service create throughput (${figures.servicesCreated ?? 0} timed)`, rate(serviceRate)],
    ["floor: N Services at that rate (one per ModelDeployment)", seconds(serviceFloorSeconds)],
    [
      "converge time / that floor",
      serviceFloorSeconds && figures.convergeSeconds ? (figures.convergeSeconds / serviceFloorSeconds).toFixed(2) : "n/a",
    ],
    ["operator RSS idle (synced, 0 objects)", mib(figures.idleRssKiB)],
    ["operator peak RSS", mib(figures.peakRssKiB)],
    [
      "reconciles (gpufleet_reconcile_total)",
      reconcileTotal === undefined
        ? "n/a"
        : `${reconcileTotal} (${Object.entries(reconciles ?? {})
            .map(([result, count]) => `${result} ${count}`)
            .join(", ")})`,
    ],
    [
      "reconciles per ModelDeployment",
      reconcileTotal === undefined ? "n/a" : (reconcileTotal / args.count).toFixed(2),
    ],
    ["mean reconcile duration", ms(meanReconcileMs)],
    [
      "mean wait in the work queue (gpufleet_workqueue_wait_seconds)",
      figures.operatorMetrics?.queueWaitCount
        ? ms((figures.operatorMetrics.queueWaitSecondsSum / figures.operatorMetrics.queueWaitCount) * 1000)
        : "n/a",
    ],
    [
      "work-queue retries",
      figures.operatorMetrics ? String(figures.operatorMetrics.workqueueRetries) : "n/a",
    ],
    ["operator CPU time", seconds(figures.operatorMetrics?.cpuSeconds)],
    ["CPU the cluster had while ConfigMaps were created", figures.ceilingCores ?? "n/a"],
    ["CPU the cluster had during the replay", figures.replayCores ?? "n/a"],
    ["CPU the cluster + operator had from apply to convergence", figures.operatorPhaseCores ?? "n/a"],
    ["machine load average (1 min), min–max per phase", figures.loadAverage ?? "n/a"],
  ];
  let text = formatTable(rows);
  if (figures.apiserverRequests?.size) {
    const requestRows: Array<[string, string]> = [...figures.apiserverRequests].map(([key, count]) => {
      const mean = key.startsWith("WATCH") ? undefined : figures.apiserverMeanSeconds?.get(key);
      return [key, `${count} (${(count / args.count).toFixed(2)}/MD)${mean === undefined ? "" : `, ${ms(mean * 1000)}`}`];
    });
    text += `\nAPI server requests during the operator phase (apiserver_request_total delta, all clients; mean server time per request):\n${formatTable(requestRows)}`;
  }
  const background = [...(figures.backgroundRequests ?? [])].filter(([key]) => writesIn(new Map([[key, 1]])) > 0);
  if (background.length && figures.operatorPhaseSeconds) {
    const window = figures.operatorPhaseSeconds;
    text += `\nBackground writes in the same window (the ${args.gpuNodes + 1} simulated nodes' heartbeats; not counted per ModelDeployment):\n${formatTable(
      background.map(([key, count]) => [key, `${count} (${(count / window).toFixed(1)}/s)`]),
    )}`;
  }
  if (figures.operatorMetrics?.requests.size) {
    const rows: Array<[string, string]> = [...figures.operatorMetrics.requests].map(([key, count]) => [
      key,
      `${count} (${(count / args.count).toFixed(2)}/MD)`,
    ]);
    for (const [verb, mean] of figures.operatorMetrics.meanRequestSecondsByVerb)
      rows.push([`mean ${verb} round trip (operator's view)`, ms(mean * 1000)]);
    text += `\nThe operator's own requests (gpufleet_kube_requests_total, whole run incl. start-up):\n${formatTable(rows)}`;
  }
  if (figures.cpuProfileSummary) text += `\nOperator CPU profile (self time):\n${figures.cpuProfileSummary}`;
  if (figures.aborted) text += `\nPARTIAL: ${figures.aborted}`;
  return text;
}

/** Resources whose request counts say what the operator phase cost (writes by the operator and for it). */
const COUNTED_RESOURCES = new Set([
  "modeldeployments",
  "deployments",
  "services",
  "poddisruptionbudgets",
  "events",
  "replicasets",
  "pods",
]);

/** Resources the simulated nodes write on their own (KWOK heartbeats): load beside the operator phase, not its writes. */
const BACKGROUND_RESOURCES = new Set(["leases", "nodes"]);

/** Set by SIGINT/SIGTERM: every wait gives up as at the deadline, so cleanup still runs. */
let interrupted = false;

async function run(
  args: BenchArgs,
  figures: Figures,
  deadline: number,
  benchDir: string,
  cleanup: Array<() => Promise<void>>,
): Promise<void> {
  const remaining = () => (interrupted ? 0 : deadline - Date.now());
  const timedOut = () => remaining() <= 0;

  const load = sampleLoadAverage(5_000);
  cleanup.push(async () => {
    figures.loadAverage = load.ranges();
    load.stop();
  });
  load.phase("cluster start");
  say(`starting a local cluster with ${args.gpuNodes} × ${GPUS_PER_BENCH_NODE} L4 nodes in ${benchDir}`);
  const cluster: LocalCluster = await startLocalCluster({
    parentDir: benchDir,
    keepDir: args.keepDir,
    // Our own SIGINT/SIGTERM handler stops the operator first; the cluster's exit hook stays as a backstop.
    handleSignals: false,
    nodePools: benchNodePools(args.gpuNodes),
    podCidr: BENCH_POD_CIDR,
    readyTimeoutMs: Math.max(60_000, Math.min(300_000, remaining())),
    log: say,
  });
  cleanup.push(() => cluster.stop());
  figures.clusterStartupMs = cluster.startupMs;
  const client = new KubeClient(cluster.kubeConfig, { userAgent: "gpufleet-bench" });
  cleanup.push(async () => client.close());

  await ensureModelDeploymentCrd(cluster.kubeConfig);
  for (const namespace of args.replayCount > 0 ? [NAMESPACE, REPLAY_NAMESPACE] : [NAMESPACE]) {
    await client.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } });
    // Pods are refused until the namespace's default ServiceAccount exists; wait so no ReplicaSet backs off.
    while (!timedOut()) {
      try {
        await client.get(`/api/v1/namespaces/${namespace}/serviceaccounts/default`);
        break;
      } catch {
        await sleep(200);
      }
    }
  }

  // ---- 1. ceiling: plain ConfigMap creates, same N and client concurrency --------------------------
  const indexes = Array.from({ length: args.count }, (_, index) => index);
  /** Creates `count` objects at the bench's concurrency; how many were made and how long it took. */
  const timeCreates = async (count: number, make: (index: number) => KubeObject) => {
    let created = 0;
    const start = performance.now();
    await forEachBounded(
      indexes.slice(0, count),
      args.concurrency,
      async (index) => {
        await client.create(make(index));
        created++;
      },
      timedOut,
    );
    return { created, seconds: (performance.now() - start) / 1000 };
  };
  const clusterPids = () => Object.values(cluster.processes).map((process) => process.pid);
  load.phase("ceilings");
  say(`creating ${args.count} ConfigMaps (concurrency ${args.concurrency})`);
  const ceilingCpuStart = cpuSnapshot(clusterPids());
  const configMaps = await timeCreates(args.count, (index) => ({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: `ceiling-${index}`, namespace: NAMESPACE },
    data: { index: String(index) },
  }) as KubeObject);
  figures.configMapSeconds = configMaps.seconds;
  figures.configMapsCreated = configMaps.created;
  figures.ceilingCores = coresBetween(ceilingCpuStart, cpuSnapshot(clusterPids()));
  say(`ConfigMaps: ${configMaps.created} in ${configMaps.seconds.toFixed(1)} s`);

  // ---- 1b. Services: the one write a ModelDeployment needs that the API server does not run in parallel --
  // kube-apiserver 1.34 allocates each ClusterIP under one lock held across the IPAddress write
  // (MetaAllocator.AllocateNextService, pkg/registry/core/service/ipallocator/cidrallocator.go), so N
  // ModelDeployments cannot converge faster than N Service creates, however many clients write at once.
  const serviceSample = Math.min(args.count, SERVICE_CEILING_SAMPLE);
  say(`creating ${serviceSample} selector-less ClusterIP Services (concurrency ${args.concurrency})`);
  const services = await timeCreates(serviceSample, (index) => ({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: `ceiling-${index}`, namespace: NAMESPACE },
    spec: { ports: [{ name: "http", port: 80 }] },
  }) as KubeObject);
  figures.serviceSeconds = services.seconds;
  figures.servicesCreated = services.created;
  say(`Services: ${services.created} in ${services.seconds.toFixed(1)} s`);

  // ---- 1c. the operator's writes replayed: the ceiling for the writes a ModelDeployment needs ------------
  const names = indexes.map((index) => `md-${String(index).padStart(5, "0")}`);
  if (args.replayCount > 0) {
    say(`replaying the operator's writes for ${args.replayCount} ModelDeployments in ${REPLAY_NAMESPACE} (concurrency ${args.concurrency})`);
    load.phase("replay");
    const replayCpuStart = cpuSnapshot(clusterPids());
    const replay = await replayOperatorWrites(client, names.slice(0, args.replayCount), args.concurrency, timedOut);
    figures.replaySeconds = replay.seconds;
    figures.replayedObjects = replay.objects;
    figures.replayWrites = replay.writes;
    figures.replayLatencyMs = replay.latencyMs;
    figures.replayCores = coresBetween(replayCpuStart, cpuSnapshot(clusterPids()));
    say(`replayed ${replay.objects} in ${replay.seconds.toFixed(1)} s (${replay.writes} writes); deleting ${REPLAY_NAMESPACE}`);
    const deleteStart = performance.now();
    await deleteNamespaceAndWait(client, REPLAY_NAMESPACE, timedOut);
    figures.replayCleanupSeconds = (performance.now() - deleteStart) / 1000;
    say(`${REPLAY_NAMESPACE} gone after ${figures.replayCleanupSeconds.toFixed(1)} s`);
  }

  // ---- 2. the operator, as its own process --------------------------------------------------------
  const opsPort = await freeLoopbackPort();
  const operator: OperatorProcess = spawnOperatorProcess(
    cluster.kubeconfigPath,
    {
      GPUFLEET_WATCH_NAMESPACES: NAMESPACE,
      GPUFLEET_LEADER_ELECT: "false",
      GPUFLEET_OPS_PORT: String(opsPort),
      GPUFLEET_CONCURRENCY: String(args.operatorConcurrency),
      POD_NAMESPACE: NAMESPACE,
    },
    join(benchDir, "operator.log"),
    // Node refuses --cpu-prof in NODE_OPTIONS: it goes on the command line.
    args.cpuProfile ? ["--cpu-prof", `--cpu-prof-dir=${join(benchDir, "cpu-profile")}`] : [],
  );
  cleanup.unshift(async () => {
    await Promise.race([operator.kill("SIGTERM"), sleep(15_000)]);
    await operator.kill("SIGKILL");
    // Written by the operator as it exits (SIGTERM is a graceful exit).
    if (args.cpuProfile) figures.cpuProfileSummary = summarizeCpuProfile(join(benchDir, "cpu-profile"));
  });
  const pid = operator.child.pid;
  if (pid === undefined) throw new Error("operator process did not start");
  const rss = sampleRss(pid, 100);
  cleanup.unshift(async () => rss.stop());
  const operatorUrl = `http://127.0.0.1:${opsPort}`;
  for (;;) {
    if (operator.child.exitCode !== null)
      throw new Error(`operator exited with ${operator.child.exitCode}; see ${operator.logFile}`);
    if (timedOut()) throw new Error("operator not ready before the deadline");
    try {
      await getText(`${operatorUrl}/readyz`);
      break;
    } catch {
      await sleep(200);
    }
  }
  await sleep(1000);
  figures.idleRssKiB = rss.latestKiB();
  say(`operator ready (pid ${pid}, RSS ${(figures.idleRssKiB / 1024).toFixed(0)} MiB)`);

  const timeline = new ScaleTimeline(new Set(names));
  figures.timeline = timeline;
  const watchStop = new AbortController();
  cleanup.unshift(async () => watchStop.abort());
  const watches = [
    followCollection<KubeObject>(
      client,
      `/apis/apps/v1/namespaces/${NAMESPACE}/deployments`,
      SELECTOR_LABEL,
      (deployment, at) => timeline.deploymentSeen(deployment.metadata?.labels?.[SELECTOR_LABEL] ?? "", at),
      watchStop.signal,
    ),
    followCollection<ModelDeployment & KubeObject>(
      client,
      `/apis/${API_GROUP}/${API_VERSION}/namespaces/${NAMESPACE}/modeldeployments`,
      undefined,
      (md, at) =>
        timeline.modelDeploymentSeen(
          md.metadata.name,
          {
            generation: md.metadata.generation,
            observedGeneration: md.status?.observedGeneration,
            ready:
              md.status?.conditions?.some(
                (c) => c.type === "Ready" && c.status === "True" && c.reason === "AllReplicasReady",
              ) ?? false,
          },
          at,
        ),
      watchStop.signal,
    ),
  ];
  await sleep(500);

  const apiserverMetricsBefore = await getText(`${cluster.apiServerUrl}/metrics`, cluster.kubeConfig);
  say(
    `applying ${args.count} ModelDeployments (concurrency ${args.concurrency}${args.rate ? `, ${args.rate}/s` : ""})`,
  );
  const spec = benchModelDeploymentSpec();
  let applied = 0;
  load.phase("operator");
  const operatorPhaseCpuStart = cpuSnapshot([...clusterPids(), pid]);
  const applyStart = performance.now();
  await forEachBounded(
    names,
    args.concurrency,
    async (name, index) => {
      if (args.rate) {
        // Steady arrivals: the i-th apply starts i/rate seconds in, whatever the others took.
        const due = applyStart + (index * 1000) / args.rate;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
      }
      timeline.applied(name, performance.now());
      await client.apply(
        {
          apiVersion: `${API_GROUP}/${API_VERSION}`,
          kind: KIND,
          metadata: { name, namespace: NAMESPACE },
          spec,
        } as KubeObject,
        { fieldManager: "gpufleet-bench", force: true },
      );
      applied++;
    },
    timedOut,
  );
  figures.applySeconds = (performance.now() - applyStart) / 1000;
  figures.modelDeploymentsApplied = applied;
  say(`applied ${applied} in ${figures.applySeconds.toFixed(1)} s`);

  const since = (at: number | undefined) => (at === undefined ? undefined : (at - applyStart) / 1000);
  let lastProgress = 0;
  const waitFor = async (what: string, done: () => boolean) => {
    while (!done()) {
      if (operator.child.exitCode !== null)
        throw new Error(
          `operator exited with ${operator.child.exitCode} while waiting for ${what}; see ${operator.logFile}`,
        );
      if (timedOut())
        throw new Error(
          `${interrupted ? "interrupted" : `deadline of ${args.timeoutSeconds} s passed`} while waiting for ${what}`,
        );
      if (Date.now() - lastProgress > 10_000) {
        lastProgress = Date.now();
        say(
          `t=${((performance.now() - applyStart) / 1000).toFixed(0)} s: deployments ${timeline.deploymentsSeen}, converged ${timeline.converged}, ready ${timeline.ready} of ${args.count}; RSS ${(rss.latestKiB() / 1024).toFixed(0)} MiB`,
        );
      }
      await sleep(100);
    }
  };
  const snapshotFigures = async () => {
    figures.allDeploymentsSeconds = since(timeline.lastOf("deploymentSeenAtMs"));
    figures.convergeSeconds = since(timeline.lastOf("convergedAtMs"));
    figures.readySeconds = since(timeline.lastOf("readyAtMs"));
    figures.peakRssKiB = rss.peakKiB();
    try {
      figures.operatorMetrics = operatorMetricsFromExposition(await getText(`${operatorUrl}/metrics`));
      const apiserverMetricsAfter = await getText(`${cluster.apiServerUrl}/metrics`, cluster.kubeConfig);
      figures.apiserverRequests = apiserverRequestDelta(apiserverMetricsBefore, apiserverMetricsAfter, COUNTED_RESOURCES);
      figures.backgroundRequests = apiserverRequestDelta(apiserverMetricsBefore, apiserverMetricsAfter, BACKGROUND_RESOURCES);
      figures.operatorPhaseSeconds = (performance.now() - applyStart) / 1000;
      figures.apiserverMeanSeconds = apiserverMeanSeconds(apiserverMetricsBefore, apiserverMetricsAfter, COUNTED_RESOURCES);
    } catch (error) {
      say(`could not read metrics: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  cleanup.unshift(async () => {
    // Runs before the operator stops: partial figures on error too.
    if (figures.operatorMetrics === undefined) await snapshotFigures();
  });

  await waitFor("every Deployment", () => timeline.deploymentsSeen === args.count);
  await waitFor("convergence", () => timeline.converged === args.count);
  figures.operatorPhaseCores = coresBetween(operatorPhaseCpuStart, cpuSnapshot([...clusterPids(), pid]));
  say(`converged ${args.count} in ${since(timeline.lastOf("convergedAtMs"))?.toFixed(1)} s`);
  if (args.waitReady) {
    if (args.gpuNodes * GPUS_PER_BENCH_NODE < args.count)
      say("not enough GPUs for every replica: skipping the wait for Ready");
    else await waitFor("every ModelDeployment Ready", () => timeline.ready === args.count);
  }
  await snapshotFigures();
  watchStop.abort();
  await Promise.allSettled(watches);
}

async function main(): Promise<void> {
  let args: BenchArgs;
  try {
    args = parseBenchArgs(process.argv.slice(2));
  } catch (error) {
    if (error instanceof BenchArgsError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const deadline = Date.now() + args.timeoutSeconds * 1000;
  const benchDir = mkdtempSync(join(tmpdir(), "gpufleet-bench-"));
  const figures: Figures = { args };
  // Run in order at the end, success or not: stop watches and the operator before the cluster.
  const cleanup: Array<() => Promise<void>> = [];
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.on(signal, () => {
      if (interrupted) return;
      interrupted = true;
      say(`${signal}: stopping after cleanup (send again to leave it to the exit hooks)`);
      process.once(signal, () => process.exit(130));
    });
  let failed = false;
  try {
    await run(args, figures, deadline, benchDir, cleanup);
  } catch (error) {
    failed = true;
    figures.aborted = error instanceof Error ? error.message : String(error);
  } finally {
    for (const step of cleanup) {
      try {
        await step();
      } catch (error) {
        say(`cleanup step failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    if (args.keepDir) say(`kept ${benchDir} (operator.log, cluster logs)`);
    else rmSync(benchDir, { recursive: true, force: true });
  }
  process.stdout.write(`\ngpufleet operator scale benchmark\n${report(figures)}\n`);
  process.exit(failed ? 1 : 0);
}

void main();
