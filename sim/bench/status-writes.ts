/**
 * Status writes at steady state: `npx tsx sim/bench/status-writes.ts [--model-deployments 10]
 * [--window-seconds 120] [--settle-seconds 20]`.
 *
 * On its own local control plane (KWOK GPU nodes), three namespaces side by side, each with its own
 * operator process (default intervals: autoscaler every 5 s) and simulated engines on its pods:
 *   - off:        N ModelDeployments, autoscaling off;
 *   - on:         N with autoscaling on (1..2 replicas), idle engines;
 *   - on+traffic: N with autoscaling on and scale to zero (idle after 1 h), one completion per model
 *                 every 10 s through the real gateway, which refreshes its demand annotation
 *                 (lastRequestAt) on the ModelDeployment about every 30 s: a reconcile the autoscaler
 *                 did not ask for.
 * Once every ModelDeployment is served (status current, one ready replica, its engine scraped), it waits
 * `--settle-seconds`, then counts each operator's own requests (gpufleet_kube_requests_total on its
 * /metrics) over `--window-seconds` and prints status writes, all writes and reconciles per
 * ModelDeployment per minute. Bounded: every wait has a deadline; the cluster is stopped even on error.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { API_GROUP, API_VERSION, KIND, type ModelDeployment } from "../../operator/api/modeldeployment.js";
import { KubeClient, type KubeObject } from "../../operator/runtime/kube-client.js";
import { ensureModelDeploymentCrd } from "../../test/support/crds.js";
import { startLocalCluster } from "../cluster/cluster.js";
import { prng } from "../prng.js";
import { chaosModelDeploymentSpec, createNamespace, startOperator, type ChaosContext, type OperatorHandle } from "../chaos/scenarios.js";
import { complete, startChaosEngines, startChaosGateway } from "../chaos/serving.js";
import { benchNodePools, GPUS_PER_BENCH_NODE, operatorMetricsFromExposition, writesIn } from "./operator-scale-stats.js";

const say = (line: string) => process.stderr.write(`[status-writes] ${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const { values } = parseArgs({
  options: {
    "model-deployments": { type: "string", default: "10" },
    "window-seconds": { type: "string", default: "120" },
    "settle-seconds": { type: "string", default: "20" },
  },
});
const count = Number(values["model-deployments"]);
const windowSeconds = Number(values["window-seconds"]);
const settleSeconds = Number(values["settle-seconds"]);
if (!Number.isInteger(count) || count < 1 || count > 200) throw new Error("--model-deployments takes 1 to 200");
if (!(windowSeconds >= 30 && windowSeconds <= 1800)) throw new Error("--window-seconds takes 30 to 1800");
if (!(settleSeconds >= 0 && settleSeconds <= 600)) throw new Error("--settle-seconds takes 0 to 600");

interface Mode {
  name: "off" | "on" | "on+traffic";
  namespace: string;
  autoscaling?: Record<string, unknown>;
}
const MODES: Mode[] = [
  { name: "off", namespace: "writes-off" },
  { name: "on", namespace: "writes-on", autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 2 } },
  {
    name: "on+traffic",
    namespace: "writes-traffic",
    autoscaling: { enabled: true, minReplicas: 0, maxReplicas: 2, scaleToZeroIdleSeconds: 3600 },
  },
];
const mdPath = (namespace: string) => `/apis/${API_GROUP}/${API_VERSION}/namespaces/${namespace}/modeldeployments`;
const names = Array.from({ length: count }, (_, i) => `m${String(i).padStart(3, "0")}`);

/** Every ModelDeployment current, one replica ready and (autoscaling on) its engine scraped; bounded. */
async function waitServed(client: KubeClient, mode: Mode, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let waiting: string[] = [];
  while (Date.now() < deadline) {
    const list = await client.list<ModelDeployment & KubeObject>(mdPath(mode.namespace));
    waiting = list.items
      .filter(
        (md) =>
          md.status?.observedGeneration !== md.metadata.generation ||
          (md.status?.readyReplicas ?? 0) < 1 ||
          (mode.autoscaling !== undefined && (md.status?.autoscaler?.scrapedReplicas ?? 0) < 1),
      )
      .map((md) => `${md.metadata.name} (ready ${md.status?.readyReplicas ?? 0}, scraped ${md.status?.autoscaler?.scrapedReplicas ?? "-"})`);
    if (list.items.length === count && waiting.length === 0) return;
    await sleep(1000);
  }
  throw new Error(`${mode.name}: not served within ${timeoutMs / 1000} s: ${waiting.slice(0, 5).join(", ")}`);
}

async function operatorMetrics(operator: OperatorHandle) {
  const response = await fetch(`http://127.0.0.1:${operator.opsPort}/metrics`, { signal: AbortSignal.timeout(10_000) });
  return operatorMetricsFromExposition(await response.text());
}

const dir = mkdtempSync(join(tmpdir(), "gpufleet-status-writes-"));
const cluster = await startLocalCluster({
  parentDir: dir,
  nodePools: benchNodePools(Math.ceil((count * MODES.length * 1.5) / GPUS_PER_BENCH_NODE) + 1),
  log: say,
});
const client = new KubeClient(cluster.kubeConfig, { userAgent: "gpufleet-status-writes" });
const context: ChaosContext = { cluster, client, dir, random: prng(1), say, convergeTimeoutMs: 180_000 };
const stops: Array<() => Promise<unknown> | void> = [];
let exitCode = 0;
try {
  await ensureModelDeploymentCrd(cluster.kubeConfig);
  const operators = new Map<Mode["name"], OperatorHandle>();
  for (const mode of MODES) {
    await createNamespace(context, mode.namespace);
    const operator = await startOperator(context, mode.namespace, "operator-0");
    stops.push(() => operator.process.kill("SIGTERM"));
    operators.set(mode.name, operator);
    const engines = startChaosEngines(context, mode.namespace);
    stops.push(() => engines.stop());
    for (const name of names)
      await client.apply(
        {
          apiVersion: `${API_GROUP}/${API_VERSION}`,
          kind: KIND,
          metadata: { name, namespace: mode.namespace },
          spec: { ...chaosModelDeploymentSpec(8192, name), ...(mode.autoscaling ? { autoscaling: mode.autoscaling } : {}) },
        } as KubeObject,
        { fieldManager: "status-writes", force: true },
      );
  }
  const trafficMode = MODES.find((mode) => mode.name === "on+traffic")!;
  const gateway = await startChaosGateway(context, trafficMode.namespace);
  stops.push(() => gateway.stop());
  await Promise.all(MODES.map((mode) => waitServed(client, mode, 300_000)));
  say(`all ${count * MODES.length} ModelDeployments served; settling ${settleSeconds} s`);
  let trafficDone = false;
  let requests = 0;
  let failed = 0;
  // One completion per model every 10 s (staggered), so the gateway keeps its demand annotations fresh.
  const traffic = Promise.all(
    names.map(async (name, index) => {
      await sleep((index * 10_000) / names.length);
      while (!trafficDone) {
        const answer = await complete(gateway.url, name, { timeoutMs: 10_000 });
        requests++;
        if (answer.status !== 200) failed++;
        await sleep(10_000);
      }
    }),
  );
  await sleep(settleSeconds * 1000);
  const before = new Map(await Promise.all(MODES.map(async (mode) => [mode.name, await operatorMetrics(operators.get(mode.name)!)] as const)));
  const windowStartedAt = performance.now();
  await sleep(windowSeconds * 1000);
  const after = new Map(await Promise.all(MODES.map(async (mode) => [mode.name, await operatorMetrics(operators.get(mode.name)!)] as const)));
  const minutes = (performance.now() - windowStartedAt) / 60_000;
  trafficDone = true;
  await traffic;
  const perMdMinute = (value: number) => (value / count / minutes).toFixed(2);
  const rows = MODES.map((mode) => {
    const a = before.get(mode.name)!;
    const b = after.get(mode.name)!;
    const delta = new Map([...b.requests].map(([key, value]) => [key, value - (a.requests.get(key) ?? 0)] as const));
    const statusWrites = delta.get("APPLY modeldeployments/status") ?? 0;
    const reconciles = b.reconcileCount - a.reconcileCount;
    return [mode.name, String(count), perMdMinute(statusWrites), perMdMinute(writesIn(delta)), perMdMinute(reconciles)];
  });
  const [one, five] = loadavg();
  process.stdout.write(
    `\nOperator writes at steady state, per ModelDeployment per minute (window ${minutes.toFixed(1)} min, ` +
      `load average ${one!.toFixed(1)} / ${five!.toFixed(1)}; ${requests} completions through the gateway, ${failed} failed):\n` +
      [["autoscaling", "ModelDeployments", "status writes", "all writes", "reconciles"], ["---", "---", "---", "---", "---"], ...rows]
        .map((cells) => `| ${cells.join(" | ")} |`)
        .join("\n") +
      "\n",
  );
} catch (error) {
  exitCode = 1;
  say(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
} finally {
  for (const stop of stops.reverse()) await stop();
  client.close();
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(exitCode);
