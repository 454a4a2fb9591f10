/**
 * The decision and arithmetic half of the operator scale benchmark (sim/bench/operator-scale.ts):
 * argument parsing, the node pool the bench runs on, per-object latency bookkeeping, percentiles,
 * /proc and /metrics parsing, and the result table. Pure, so it is pinned by unit tests; the bench
 * itself only wires these to the cluster.
 */
import { parseExposition, samplesNamed } from "../../operator/metrics/exposition.js";
import type { NodePoolsConfig } from "../cluster/nodepools.js";

export interface BenchArgs {
  /** ModelDeployments (and ConfigMaps for the ceiling) to create. */
  count: number;
  /** Requests the bench keeps in flight while creating/applying. */
  concurrency: number;
  /** GPUFLEET_CONCURRENCY of the operator under test (its work-queue workers). */
  operatorConcurrency: number;
  /** GPU nodes of the bench pool; default: enough for every replica to run. */
  gpuNodes: number;
  /**
   * Also wait until every ModelDeployment is Ready (needs gpuNodes × 8 ≥ count). Opt-in: it times KWOK,
   * the scheduler and the ReplicaSet controller on a loaded host as much as the operator.
   */
  waitReady: boolean;
  /** Give up (and print what was measured) after this long. */
  timeoutSeconds: number;
  /** Keep the temp dir (cluster logs, operator log) for a post-mortem. */
  keepDir: boolean;
  /** Apply at a steady rate (ModelDeployments per second) instead of all at once. */
  rate: number | undefined;
  /** Run the operator with --cpu-prof and print where its CPU went. */
  cpuProfile: boolean;
  /**
   * ModelDeployments whose writes are replayed for the ceiling (default all N; 0: none). Fewer than N is a
   * sample: the ceiling for N is then that time scaled by N / sample, and the table says so.
   */
  replayCount: number;
}

export const GPUS_PER_BENCH_NODE = 8;

export class BenchArgsError extends Error {
  override name = "BenchArgsError";
}

export const BENCH_USAGE = `usage: npx tsx sim/bench/operator-scale.ts [--count 1000] [--concurrency 16]
  [--operator-concurrency 8 (the operator's default)] [--gpu-nodes N] [--wait-ready] [--timeout-seconds 900] [--keep-dir]
  [--rate R (apply R ModelDeployments/s instead of all at once)] [--cpu-prof]
  [--replay-count K (replay the writes of K ≤ N for the ceiling; default N, 0 none)]`;

function positiveInteger(flag: string, raw: string | undefined, max: number): number {
  const value = Number(raw);
  if (raw === undefined || !Number.isInteger(value) || value < 1 || value > max)
    throw new BenchArgsError(`${flag} needs a whole number from 1 to ${max} (got ${raw ?? "nothing"})`);
  return value;
}

function wholeNumberUpTo(flag: string, raw: string | undefined, max: number): number {
  const value = Number(raw);
  if (raw === undefined || !Number.isInteger(value) || value < 0 || value > max)
    throw new BenchArgsError(`${flag} needs a whole number from 0 to ${max} (got ${raw ?? "nothing"})`);
  return value;
}

/** Parses `--flag value` / `--flag=value` arguments; unknown flags are an error, not silently ignored. */
export function parseBenchArgs(argv: readonly string[]): BenchArgs {
  const raw = new Map<string, string | undefined>();
  for (let index = 0; index < argv.length; index++) {
    const token = argv[index] ?? "";
    if (!token.startsWith("--")) throw new BenchArgsError(`unexpected argument ${token}\n${BENCH_USAGE}`);
    const equals = token.indexOf("=");
    if (equals > 0) raw.set(token.slice(2, equals), token.slice(equals + 1));
    else if (["wait-ready", "keep-dir", "cpu-prof"].includes(token.slice(2)))
      raw.set(token.slice(2), undefined);
    else raw.set(token.slice(2), argv[++index]);
  }
  const known = new Set([
    "count",
    "concurrency",
    "operator-concurrency",
    "gpu-nodes",
    "wait-ready",
    "timeout-seconds",
    "keep-dir",
    "rate",
    "cpu-prof",
    "replay-count",
  ]);
  for (const flag of raw.keys())
    if (!known.has(flag)) throw new BenchArgsError(`unknown flag --${flag}\n${BENCH_USAGE}`);
  const count = raw.has("count") ? positiveInteger("--count", raw.get("count"), 20_000) : 1000;
  return {
    count,
    concurrency: raw.has("concurrency") ? positiveInteger("--concurrency", raw.get("concurrency"), 256) : 16,
    // 64 is the operator's own ceiling for GPUFLEET_CONCURRENCY (operator/config.ts).
    operatorConcurrency: raw.has("operator-concurrency")
      ? positiveInteger("--operator-concurrency", raw.get("operator-concurrency"), 64)
      : 8,
    gpuNodes: raw.has("gpu-nodes")
      ? positiveInteger("--gpu-nodes", raw.get("gpu-nodes"), 5000)
      : Math.ceil(count / GPUS_PER_BENCH_NODE),
    waitReady: raw.has("wait-ready"),
    timeoutSeconds: raw.has("timeout-seconds")
      ? positiveInteger("--timeout-seconds", raw.get("timeout-seconds"), 3600)
      : 900,
    keepDir: raw.has("keep-dir"),
    rate: raw.has("rate") ? positiveInteger("--rate", raw.get("rate"), 1000) : undefined,
    cpuProfile: raw.has("cpu-prof"),
    replayCount: raw.has("replay-count") ? wholeNumberUpTo("--replay-count", raw.get("replay-count"), count) : count,
  };
}

const READ_VERBS = new Set(["GET", "LIST", "WATCH"]);

/** Requests that wrote (every verb but GET, LIST and WATCH) in a `verb resource` count map. */
export function writesIn(requests: ReadonlyMap<string, number>): number {
  let writes = 0;
  for (const [key, value] of requests) if (!READ_VERBS.has(key.split(" ")[0] ?? "")) writes += value;
  return writes;
}

/**
 * Writes per ModelDeployment (every verb but GET, LIST and WATCH in the request delta, by anyone,
 * over `count`), and how long the API server's measured create rate needs for that many writes:
 * the ceiling the operator's convergence is compared with.
 */
export function writeCeiling(
  requests: ReadonlyMap<string, number>,
  count: number,
  createsPerSecond: number,
): { writesPerObject: number; ceilingSeconds: number } {
  const writesPerObject = writesIn(requests) / count;
  return { writesPerObject, ceilingSeconds: (writesPerObject * count) / createsPerSecond };
}

export const BENCH_GPU_PRODUCT = "NVIDIA-L4";

/**
 * One pool of g2-standard-96 nodes (8 × NVIDIA L4 each, 96 vCPU, 384 GB: Google Cloud's G2 machine
 * series table, cloud.google.com/compute/docs/gpus#l4-gpus). Each bench replica takes 1 L4 plus the
 * 4 vCPU / 16 GiB per GPU the renderer requests, so 8 replicas fit a node and every pod can run.
 */
export function benchNodePools(gpuNodes: number): NodePoolsConfig {
  return {
    systemNode: {
      name: "system",
      cpu: "16",
      memory: "64Gi",
      pods: 110,
      region: "europe-west4",
      zone: "europe-west4-a",
    },
    pools: [
      {
        name: "bench-l4",
        gpuProduct: BENCH_GPU_PRODUCT,
        // What nvidia-smi reports for an L4 (as in sim/cluster/gpu-pools.yaml).
        gpuMemoryMiB: 23034,
        gpusPerNode: GPUS_PER_BENCH_NODE,
        nodeCount: gpuNodes,
        region: "europe-west4",
        zone: "europe-west4-a",
        instanceType: "g2-standard-96",
        cpu: "96",
        memory: "384Gi",
        pods: 110,
      },
    ],
  };
}

/** The spec every bench ModelDeployment gets: an 8B model on one L4, autoscaling off (replicas fixed). */
export function benchModelDeploymentSpec(): Record<string, unknown> {
  return {
    model: {
      name: "llama-3.1-8b-instruct",
      source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } },
      maxContextLength: 8192,
    },
    gpu: { products: [BENCH_GPU_PRODUCT] },
    replicas: 1,
  };
}

/** Nearest-rank percentile (p in (0, 100]) of unsorted values; undefined when there are none. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/**
 * CPU ticks (user + system, children that were waited for included) of a `/proc/<pid>/stat` line: fields 14-17,
 * counted after the command name, which is in parentheses and may itself hold spaces or parentheses.
 */
export function parseProcStatTicks(procStat: string): number | undefined {
  const fields = procStat.slice(procStat.lastIndexOf(")") + 2).trim().split(/\s+/);
  // fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
  const ticks = fields.slice(11, 15).map(Number);
  return ticks.length === 4 && ticks.every(Number.isFinite) ? ticks.reduce((a, b) => a + b, 0) : undefined;
}

/** Busy and total ticks of the first (all-CPU) line of /proc/stat: busy is all but idle and iowait. */
export function parseMachineTicks(procStat: string): { busy: number; total: number } | undefined {
  const line = procStat.split("\n").find((l) => l.startsWith("cpu "));
  if (!line) return undefined;
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  if (ticks.length < 5 || !ticks.every(Number.isFinite)) return undefined;
  // user nice system idle iowait irq softirq steal (guest time is already in user/nice)
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - (ticks[3] ?? 0) - (ticks[4] ?? 0), total };
}

/** VmRSS of a `/proc/<pid>/status` text, in KiB. */
export function parseVmRssKiB(procStatus: string): number | undefined {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(procStatus);
  return match ? Number(match[1]) : undefined;
}

export interface OperatorMetricsSnapshot {
  reconcilesByResult: Record<string, number>;
  reconcileSecondsSum: number;
  reconcileCount: number;
  workqueueRetries: number;
  /** Sum and count of the seconds keys waited in the work queue (gpufleet_workqueue_wait_seconds). */
  queueWaitSecondsSum: number;
  queueWaitCount: number;
  cpuSeconds: number | undefined;
  /** The operator's own API requests by `verb resource` (gpufleet_kube_requests_total, every code). */
  requests: Map<string, number>;
  /** Mean seconds per request by verb, as the operator saw them (gpufleet_kube_request_duration_seconds). */
  meanRequestSecondsByVerb: Map<string, number>;
}

/** The operator's own figures from its /metrics text (see operator/runtime/metrics.ts for the names). */
export function operatorMetricsFromExposition(text: string): OperatorMetricsSnapshot {
  const families = parseExposition(text);
  const sum = (name: string) =>
    samplesNamed(families, name).reduce((total, sample) => total + sample.value, 0);
  const reconcilesByResult: Record<string, number> = {};
  for (const sample of samplesNamed(families, "gpufleet_reconcile_total")) {
    const result = sample.labels.result ?? "";
    reconcilesByResult[result] = (reconcilesByResult[result] ?? 0) + sample.value;
  }
  const cpu = samplesNamed(families, "process_cpu_seconds_total")[0];
  const requests = new Map<string, number>();
  for (const sample of samplesNamed(families, "gpufleet_kube_requests_total")) {
    const key = `${sample.labels.verb ?? ""} ${sample.labels.resource ?? ""}`;
    requests.set(key, (requests.get(key) ?? 0) + sample.value);
  }
  const durationSums = new Map<string, number>();
  for (const sample of samplesNamed(families, "gpufleet_kube_request_duration_seconds_sum"))
    durationSums.set(sample.labels.verb ?? "", sample.value);
  const meanRequestSecondsByVerb = new Map<string, number>();
  for (const sample of samplesNamed(families, "gpufleet_kube_request_duration_seconds_count")) {
    const verb = sample.labels.verb ?? "";
    if (sample.value > 0) meanRequestSecondsByVerb.set(verb, (durationSums.get(verb) ?? 0) / sample.value);
  }
  return {
    requests: new Map([...requests].sort((a, b) => b[1] - a[1])),
    meanRequestSecondsByVerb,
    reconcilesByResult,
    reconcileSecondsSum: sum("gpufleet_reconcile_duration_seconds_sum"),
    reconcileCount: sum("gpufleet_reconcile_duration_seconds_count"),
    workqueueRetries: sum("gpufleet_workqueue_retries_total"),
    queueWaitSecondsSum: sum("gpufleet_workqueue_wait_seconds_sum"),
    queueWaitCount: sum("gpufleet_workqueue_wait_seconds_count"),
    cpuSeconds: cpu?.value,
  };
}

/**
 * API server requests by `verb resource[/subresource]` between two scrapes of its /metrics
 * (`apiserver_request_total`), limited to `resources`: what the operator phase cost the API server.
 */
export function apiserverRequestDelta(
  before: string,
  after: string,
  resources: ReadonlySet<string>,
  metric = "apiserver_request_total",
): Map<string, number> {
  const counts = (text: string) => {
    const byKey = new Map<string, number>();
    for (const sample of samplesNamed(parseExposition(text), metric)) {
      const { verb = "", resource = "", subresource = "" } = sample.labels;
      if (!resources.has(resource)) continue;
      const key = `${verb} ${resource}${subresource ? `/${subresource}` : ""}`;
      byKey.set(key, (byKey.get(key) ?? 0) + sample.value);
    }
    return byKey;
  };
  const start = counts(before);
  const delta = new Map<string, number>();
  for (const [key, value] of counts(after)) {
    const grown = value - (start.get(key) ?? 0);
    if (grown > 0) delta.set(key, grown);
  }
  return new Map([...delta].sort((a, b) => b[1] - a[1]));
}

/**
 * Mean seconds the API server spent per request by `verb resource[/subresource]` between two scrapes
 * (apiserver_request_duration_seconds sum/count deltas): which requests cost the server its time.
 */
export function apiserverMeanSeconds(
  before: string,
  after: string,
  resources: ReadonlySet<string>,
): Map<string, number> {
  const sums = apiserverRequestDelta(before, after, resources, "apiserver_request_duration_seconds_sum");
  const counts = apiserverRequestDelta(before, after, resources, "apiserver_request_duration_seconds_count");
  const means = new Map<string, number>();
  for (const [key, count] of counts) means.set(key, (sums.get(key) ?? 0) / count);
  return means;
}

/** What the bench saw of one ModelDeployment in its watch stream. */
interface ObjectTimeline {
  appliedAtMs?: number;
  deploymentSeenAtMs?: number;
  convergedAtMs?: number;
  readyAtMs?: number;
}

export interface ModelDeploymentObservation {
  generation: number | undefined;
  observedGeneration: number | undefined;
  ready: boolean;
}

/**
 * Per-object timeline of the operator phase, fed with watch event arrival times (creationTimestamp has
 * only 1 s resolution). "Converged": status.observedGeneration == metadata.generation and its Deployment
 * exists. Times are the first moment each held; later flaps do not move them.
 */
export class ScaleTimeline {
  private readonly objects = new Map<string, ObjectTimeline>();
  private readonly latestObservation = new Map<string, ModelDeploymentObservation>();

  constructor(private readonly expected: ReadonlySet<string>) {}

  private entry(name: string): ObjectTimeline | undefined {
    if (!this.expected.has(name)) return undefined;
    let timeline = this.objects.get(name);
    if (!timeline) this.objects.set(name, (timeline = {}));
    return timeline;
  }

  applied(name: string, atMs: number): void {
    const timeline = this.entry(name);
    if (timeline && timeline.appliedAtMs === undefined) timeline.appliedAtMs = atMs;
  }

  deploymentSeen(name: string, atMs: number): void {
    const timeline = this.entry(name);
    if (!timeline || timeline.deploymentSeenAtMs !== undefined) return;
    timeline.deploymentSeenAtMs = atMs;
    const observation = this.latestObservation.get(name);
    if (observation) this.modelDeploymentSeen(name, observation, atMs);
  }

  modelDeploymentSeen(name: string, observation: ModelDeploymentObservation, atMs: number): void {
    const timeline = this.entry(name);
    if (!timeline) return;
    this.latestObservation.set(name, observation);
    const observed =
      observation.generation !== undefined && observation.observedGeneration === observation.generation;
    if (observed && timeline.deploymentSeenAtMs !== undefined) {
      timeline.convergedAtMs ??= atMs;
      if (observation.ready) timeline.readyAtMs ??= atMs;
    }
  }

  private countWhere(pick: (timeline: ObjectTimeline) => number | undefined): number {
    let count = 0;
    for (const timeline of this.objects.values()) if (pick(timeline) !== undefined) count++;
    return count;
  }

  get deploymentsSeen(): number {
    return this.countWhere((t) => t.deploymentSeenAtMs);
  }
  get converged(): number {
    return this.countWhere((t) => t.convergedAtMs);
  }
  get ready(): number {
    return this.countWhere((t) => t.readyAtMs);
  }

  /** Milliseconds from each object's apply to the arrival of its Deployment's ADDED event. */
  applyToDeploymentMs(): number[] {
    const latencies: number[] = [];
    for (const t of this.objects.values())
      if (t.appliedAtMs !== undefined && t.deploymentSeenAtMs !== undefined)
        latencies.push(t.deploymentSeenAtMs - t.appliedAtMs);
    return latencies;
  }

  /** The latest of `pick` over all expected objects, or undefined while any is missing. */
  lastOf(pick: "deploymentSeenAtMs" | "convergedAtMs" | "readyAtMs"): number | undefined {
    let latest = -Infinity;
    for (const name of this.expected) {
      const at = this.objects.get(name)?.[pick];
      if (at === undefined) return undefined;
      latest = Math.max(latest, at);
    }
    return Number.isFinite(latest) ? latest : undefined;
  }
}

/** Runs `task` over `items` with at most `concurrency` in flight; stops starting new ones once `shouldStop()`. */
export async function forEachBounded<T>(
  items: readonly T[],
  concurrency: number,
  task: (item: T, index: number) => Promise<void>,
  shouldStop: () => boolean = () => false,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length && !shouldStop()) {
      const index = next++;
      await task(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
}

/** A two-column table, figures right-aligned. */
export function formatTable(rows: ReadonlyArray<readonly [string, string]>): string {
  const labelWidth = Math.max(...rows.map(([label]) => label.length));
  const valueWidth = Math.max(...rows.map(([, value]) => value.length));
  const rule = `+${"-".repeat(labelWidth + 2)}+${"-".repeat(valueWidth + 2)}+`;
  const lines = rows.map(
    ([label, value]) => `| ${label.padEnd(labelWidth)} | ${value.padStart(valueWidth)} |`,
  );
  return [rule, ...lines, rule].join("\n");
}
