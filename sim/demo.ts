/**
 * `npm run demo`: the whole of gpufleet on one machine, live.
 *
 * 1. builds (once) and starts the local GPU cluster: a real control plane with KWOK GPU node pools;
 * 2. installs the CRD with `kubectl apply --server-side -f crds/`, starts the operator and a simulated
 *    engine for every engine pod it creates (vLLM's API and /metrics on the pod's 127.x IP);
 * 3. applies examples/llama-3.1-8b-vllm.yaml and shows it planned, placed and Ready;
 * 4. replays the Azure 2023 code trace against it (time-compressed) and prints, every few seconds, what
 *    the autoscaler sees and does; then lets the load go and shows the scale-down.
 *
 * Flags: --speedup N (trace time compression, default 5), --load-seconds N (default 150),
 * --keep (leave the cluster and operator running until Ctrl-C).
 */
import { execFile } from "node:child_process";
import { parseArgs, promisify } from "node:util";
import { REPO_ROOT } from "../operator/api/generate.js";
import type { ModelDeployment } from "../operator/api/modeldeployment.js";
import { loadConfig } from "../operator/config.js";
import { startOperator } from "../operator/operator.js";
import { KubeClient } from "../operator/runtime/kube-client.js";
import { ensureClusterBinaries } from "./cluster/binaries.js";
import { startLocalCluster } from "./cluster/cluster.js";
import { loadNodePools } from "./cluster/nodepools.js";
import { listManagedPods, SimFleet } from "./engine/fleet.js";
import { startServiceProxy, watchReadyEndpoints } from "./engine/service-proxy.js";
import { runLoad, progressBar } from "./loadgen/loadgen.js";
import { loadTrace, scheduleTrace } from "./loadgen/trace.js";

const run = promisify(execFile);
const say = (line = "") => process.stdout.write(`${line}\n`);
const heading = (line: string) => say(`\n\x1b[1m== ${line}\x1b[0m`);

const { values: flags } = parseArgs({
  options: {
    speedup: { type: "string", default: "5" },
    "load-seconds": { type: "string", default: "150" },
    keep: { type: "boolean", default: false },
  },
});

process.env.GPUFLEET_LOG_LEVEL ??= "warn";
const namespace = "demo";
const name = "llama-3-1-8b";

heading("local GPU cluster");
const binaries = await ensureClusterBinaries();
const cluster = await startLocalCluster({ binaries, nodePools: loadNodePools() });
say(`ready in ${(cluster.startupMs / 1000).toFixed(1)}s; export KUBECONFIG=${cluster.kubeconfigPath}`);
const kubectl = async (...args: string[]) =>
  (await run(binaries.kubectl, ["--kubeconfig", cluster.kubeconfigPath, ...args], { cwd: REPO_ROOT })).stdout;

const stopAll: Array<() => Promise<void> | void> = [];
const shutdown = async () => {
  for (const stop of stopAll.reverse()) await stop();
  await cluster.stop();
};
process.once("SIGINT", () => void shutdown().then(() => process.exit(130)));

try {
  say(await kubectl("get", "nodes", "-L", "nvidia.com/gpu.product,nvidia.com/gpu.count,topology.kubernetes.io/region"));

  heading("gpufleet: CRD, operator, simulated engines");
  say(await kubectl("apply", "--server-side", "-f", "crds/"));
  const operator = await startOperator(
    cluster.kubeConfig,
    loadConfig({ GPUFLEET_LEADER_ELECT: "false", GPUFLEET_OPS_HOST: "127.0.0.1", GPUFLEET_OPS_PORT: "0", GPUFLEET_SCRAPE_INTERVAL_SECONDS: "2", POD_NAMESPACE: "gpufleet-system" }),
  );
  stopAll.push(() => operator.stop());
  say(`operator running; metrics at http://127.0.0.1:${operator.opsPort}/metrics`);
  const fleet = new SimFleet({ listPods: listManagedPods(cluster.kubeConfig), loadDelayMs: 3_000, pollIntervalMs: 500 });
  fleet.start();
  stopAll.push(() => fleet.stop());

  heading(`kubectl apply -f examples/llama-3.1-8b-vllm.yaml`);
  await kubectl("create", "namespace", namespace);
  await kubectl("-n", namespace, "create", "secret", "generic", "hf-token", "--from-literal=token=hf_demo");
  say(await kubectl("-n", namespace, "apply", "-f", "examples/llama-3.1-8b-vllm.yaml"));
  // A short scale-down window, so the demo shows the way down within a couple of minutes; room for the
  // whole L4 pool (12 GPUs), which the 5× replay needs at its peak.
  await kubectl("-n", namespace, "patch", "md", name, "--type=merge", "-p", '{"spec":{"autoscaling":{"scaleDownStabilizationSeconds":45,"maxReplicas":12}}}');

  const client = new KubeClient(cluster.kubeConfig);
  stopAll.push(() => client.close());
  const read = () => client.get<ModelDeployment>(`/apis/gpufleet.io/v1alpha1/namespaces/${namespace}/modeldeployments/${name}`);
  for (let waited = 0; ; waited += 500) {
    const md = await read();
    if (md.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) break;
    if (waited > 90_000) throw new Error(`ModelDeployment not Ready: ${JSON.stringify(md.status?.conditions)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  say(await kubectl("-n", namespace, "get", "md", "-o", "wide"));
  say(await kubectl("-n", namespace, "get", "pods", "-o", "wide"));
  const planned = await read();
  say(`plan: ${JSON.stringify(planned.status?.plan)}`);

  heading(`replaying the Azure 2023 code trace at ${flags.speedup}× for up to ${flags["load-seconds"]}s`);
  const endpoints = watchReadyEndpoints(cluster.kubeConfig, namespace, name);
  await endpoints.ready;
  // The engine answers /health once its (simulated) model is loaded; only then does it get traffic.
  for (let waited = 0; endpoints.current().length === 0; waited += 250) {
    if (waited > 60_000) throw new Error("no engine became healthy within 60 s");
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  stopAll.push(() => endpoints.stop());
  const proxy = await startServiceProxy({ endpoints: endpoints.current });
  stopAll.push(() => proxy.close());
  const trace = loadTrace("azure-code");
  const schedule = scheduleTrace(trace, { speedup: Number(flags.speedup), maxRequests: 20_000, maxDurationMs: Number(flags["load-seconds"]) * 1000 });
  const started = Date.now();
  const watcher = setInterval(() => {
    void read().then((md) => {
      const a = md.status?.autoscaler;
      process.stderr.write(
        `\n[t+${String(Math.round((Date.now() - started) / 1000)).padStart(3)}s] replicas ${md.spec.replicas} (ready ${md.status?.readyReplicas ?? 0})` +
          `  kv-cache ${a?.kvCacheUtilization?.toFixed(2) ?? "-"}  queue ${a?.queueDepth ?? "-"}  running ${a?.requestsRunning ?? "-"}` +
          `  TTFT ≤ ${md.spec.autoscaling.ttftTargetSeconds ?? "-"}s: ${a?.ttftWithinTarget === undefined ? "-" : `${(a.ttftWithinTarget * 100).toFixed(1)}% of ${a.ttftRequests ?? 0}`}` +
          `  ${a?.reason ?? ""}\n`,
      );
    }, () => undefined);
  }, 5_000);
  const report = await runLoad(schedule, {
    endpoints: [proxy.url],
    policy: "round-robin",
    model: planned.spec.model.name,
    maxOutputTokens: 256,
    requestTimeoutMs: 120_000,
    maxDurationMs: Number(flags["load-seconds"]) * 1000,
    onProgress: progressBar(process.stderr),
  });
  const errors = Object.entries(report.errors).map(([kind, count]) => `${kind} ×${count}`).join(", ");
  say(
    `\nload: ${report.succeeded} ok, ${report.failed} failed${errors ? ` (${errors})` : ""}; ` +
      `TTFT p50 ${report.ttftMs.p50.toFixed(0)} ms, p99 ${report.ttftMs.p99.toFixed(0)} ms`,
  );
  const peak = await read();
  say(`after the load: ${peak.spec.replicas} replicas; waiting for the scale-down window…`);
  for (let waited = 0; waited < 150_000; waited += 5_000) {
    const md = await read();
    if (md.spec.replicas <= 1) break;
    await new Promise((resolve) => setTimeout(resolve, 5_000));
  }
  clearInterval(watcher);
  say(await kubectl("-n", namespace, "get", "md", "-o", "wide"));
  say(await kubectl("-n", namespace, "get", "events.events.k8s.io", "--field-selector", `regarding.name=${name}`, "--sort-by=.metadata.creationTimestamp"));

  if (flags.keep) {
    say(`\nLeft running. export KUBECONFIG=${cluster.kubeconfigPath}; Ctrl-C stops everything.`);
    await new Promise(() => undefined);
  }
} finally {
  if (!flags.keep) await shutdown();
}
