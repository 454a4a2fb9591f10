/**
 * `npm run demo`: the whole of gpufleet on one machine, live.
 *
 * 1. builds (once) and starts the local GPU cluster: a real control plane with KWOK GPU node pools;
 * 2. installs the CRD with `kubectl apply --server-side -f crds/`, starts the operator, the gateway and a
 *    simulated engine for every engine pod the operator creates (vLLM's API and /metrics on the pod's 127.x IP);
 * 3. applies examples/llama-3.1-8b-scale-to-zero.yaml: planned, placed, and Idle at zero replicas;
 * 4. sends one request through the gateway: it is held, the model wakes (0 -> 1), the request is answered;
 * 5. replays the Azure 2023 code trace through the gateway at its own pace (1x, what the L4 pool can serve)
 *    and prints, every few seconds, what the autoscaler sees and does; then lets the load go and shows the
 *    scale-down and, after the idle period, the return to zero.
 * 6. with --overload, a last scene replays the trace at 5x: more than maxReplicas L4s can serve.
 *
 * Flags: --speedup N (trace time compression of the main scene, default 1), --load-seconds N (default 150),
 * --overload, --keep (leave everything running until Ctrl-C).
 */
import { execFile } from "node:child_process";
import { parseArgs, promisify } from "node:util";
import { REPO_ROOT } from "../operator/api/generate.js";
import type { ModelDeployment } from "../operator/api/modeldeployment.js";
import { loadConfig } from "../operator/config.js";
import { startOperator } from "../operator/operator.js";
import { KubeClient } from "../operator/runtime/kube-client.js";
import { loadGatewayConfig } from "../gateway/config.js";
import { startGateway } from "../gateway/gateway.js";
import { ensureClusterBinaries } from "../tools/binaries.js";
import { startLocalCluster } from "./cluster/cluster.js";
import { loadNodePools } from "./cluster/nodepools.js";
import { listManagedPods, SimFleet } from "./engine/fleet.js";
import { runLoad, progressBar } from "./loadgen/loadgen.js";
import { loadTrace, scheduleTrace } from "./loadgen/trace.js";

const run = promisify(execFile);
const say = (line = "") => process.stdout.write(`${line}\n`);
const heading = (line: string) => say(`\n\x1b[1m== ${line}\x1b[0m`);

const { values: flags } = parseArgs({
  options: {
    speedup: { type: "string", default: "1" },
    "load-seconds": { type: "string", default: "150" },
    overload: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
});

process.env.GPUFLEET_LOG_LEVEL ??= "warn";
const namespace = "demo";
const name = "llama-3-1-8b-on-demand";

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
  say(
    await kubectl(
      "get",
      "nodes",
      "-L",
      "nvidia.com/gpu.product,nvidia.com/gpu.count,topology.kubernetes.io/region",
    ),
  );

  heading("gpufleet: CRD, operator, simulated engines");
  say(await kubectl("apply", "--server-side", "-f", "crds/"));
  const operator = await startOperator(
    cluster.kubeConfig,
    loadConfig({
      GPUFLEET_LEADER_ELECT: "false",
      GPUFLEET_OPS_HOST: "127.0.0.1",
      GPUFLEET_OPS_PORT: "0",
      GPUFLEET_SCRAPE_INTERVAL_SECONDS: "2",
      POD_NAMESPACE: "gpufleet-system",
    }),
  );
  stopAll.push(() => operator.stop());
  say(`operator running; metrics at http://127.0.0.1:${operator.opsPort}/metrics`);
  const fleet = new SimFleet({
    listPods: listManagedPods(cluster.kubeConfig),
    loadDelayMs: 3_000,
    pollIntervalMs: 500,
  });
  fleet.start();
  stopAll.push(() => fleet.stop());

  const gateway = await startGateway(
    new KubeClient(cluster.kubeConfig, { userAgent: "gpufleet-gateway" }),
    loadGatewayConfig({
      GPUFLEET_GATEWAY_WATCH_NAMESPACES: namespace,
      GPUFLEET_GATEWAY_HOST: "127.0.0.1",
      GPUFLEET_GATEWAY_PORT: "0",
      GPUFLEET_GATEWAY_OPS_HOST: "127.0.0.1",
      GPUFLEET_GATEWAY_OPS_PORT: "0",
      POD_NAME: "demo-gateway",
    }),
  );
  stopAll.push(() => gateway.stop(1_000));
  const gatewayUrl = `http://127.0.0.1:${gateway.port}`;
  say(`gateway serving the OpenAI API at ${gatewayUrl}`);

  heading(`kubectl apply -f examples/llama-3.1-8b-scale-to-zero.yaml`);
  await kubectl("create", "namespace", namespace);
  await kubectl("-n", namespace, "create", "secret", "generic", "hf-token", "--from-literal=token=hf_demo");
  say(await kubectl("-n", namespace, "apply", "-f", "examples/llama-3.1-8b-scale-to-zero.yaml"));
  // A short scale-down window, so the demo shows the way down within a couple of minutes; room for the
  // whole L4 pool (12 GPUs) for the overload scene.
  await kubectl(
    "-n",
    namespace,
    "patch",
    "md",
    name,
    "--type=merge",
    "-p",
    '{"spec":{"autoscaling":{"scaleDownStabilizationSeconds":45,"maxReplicas":12}}}',
  );

  const client = new KubeClient(cluster.kubeConfig);
  stopAll.push(() => client.close());
  const read = () =>
    client.get<ModelDeployment>(
      `/apis/gpufleet.io/v1alpha1/namespaces/${namespace}/modeldeployments/${name}`,
    );
  const readyReason = (md: ModelDeployment) => md.status?.conditions?.find((c) => c.type === "Ready")?.reason;
  const waitUntil = async (what: string, limitMs: number, done: (md: ModelDeployment) => boolean) => {
    for (let waited = 0; ; waited += 500) {
      const md = await read();
      if (done(md)) return md;
      if (waited > limitMs)
        throw new Error(
          `${what} not reached in ${limitMs / 1000}s: ${JSON.stringify(md.status?.conditions)}`,
        );
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  };
  const idle = await waitUntil("Idle at zero", 90_000, (md) => readyReason(md) === "Idle");
  say(await kubectl("-n", namespace, "get", "md"));
  say(`plan: ${JSON.stringify(idle.status?.plan)}`);
  say("no engine pod runs: the model holds no GPU until someone calls it.");

  heading("the first request wakes the model (held at the gateway, 0 -> 1, answered)");
  const firstSent = Date.now();
  const phases: string[] = [];
  const phaseWatch = setInterval(() => {
    void read().then(
      (md) => {
        const reason = readyReason(md) ?? "-";
        if (phases.at(-1) !== reason) {
          phases.push(reason);
          say(
            `  t+${((Date.now() - firstSent) / 1000).toFixed(1)}s  replicas ${md.spec.replicas}  STATUS ${reason}`,
          );
        }
      },
      () => undefined,
    );
  }, 250);
  const first = await fetch(`${gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: idle.spec.model.name,
      messages: [{ role: "user", content: "Hello!" }],
      max_tokens: 16,
      stream: true,
    }),
    signal: AbortSignal.timeout(180_000),
  });
  const reader = first.body?.getReader();
  const firstChunk = await reader?.read();
  const ttft = (Date.now() - firstSent) / 1000;
  while (reader && !(await reader.read()).done);
  clearInterval(phaseWatch);
  say(
    `  HTTP ${first.status}, first token after ${ttft.toFixed(1)}s (operator, pod start, a 3 s simulated model load) ` +
      `from ${first.headers.get("x-gpufleet-endpoint") ?? "?"} (${first.headers.get("x-gpufleet-pick-reason") ?? "?"})` +
      (firstChunk?.value ? "" : " — no body"),
  );
  await waitUntil(
    "Ready",
    60_000,
    (md) => md.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
  );
  say(await kubectl("-n", namespace, "get", "md", "-o", "wide"));

  const replay = async (speedup: number, label: string) => {
    heading(label);
    const trace = loadTrace("azure-code");
    const schedule = scheduleTrace(trace, {
      speedup,
      maxRequests: 20_000,
      maxDurationMs: Number(flags["load-seconds"]) * 1000,
    });
    const started = Date.now();
    let peak = 0;
    /** Highest spec.replicas seen in each 10 s window of the schedule. */
    const replicasAt = new Map<number, number>();
    const watcher = setInterval(() => {
      void read().then(
        (md) => {
          peak = Math.max(peak, md.spec.replicas ?? 0);
          const w = Math.floor((Date.now() - started) / 10_000);
          replicasAt.set(w, Math.max(replicasAt.get(w) ?? 0, md.spec.replicas ?? 0));
          const a = md.status?.autoscaler;
          process.stderr.write(
            `\n[t+${String(Math.round((Date.now() - started) / 1000)).padStart(3)}s] replicas ${md.spec.replicas} (ready ${md.status?.readyReplicas ?? 0})` +
              `  kv-cache ${a?.kvCacheUtilization?.toFixed(2) ?? "-"}  queue ${a?.queueDepth ?? "-"}  running ${a?.requestsRunning ?? "-"}` +
              `  TTFT ≤ ${md.spec.autoscaling.ttftTargetSeconds ?? "-"}s: ${a?.ttftWithinTarget === undefined ? "-" : `${(a.ttftWithinTarget * 100).toFixed(1)}% of ${a.ttftRequests ?? 0}`}` +
              `  held at the gateway ${gateway.server.holds.size(md.spec.model.name)}  ${a?.reason ?? ""}\n`,
          );
        },
        () => undefined,
      );
    }, 5_000);
    const report = await runLoad(schedule, {
      endpoints: [gatewayUrl],
      policy: "round-robin",
      model: idle.spec.model.name,
      maxOutputTokens: 256,
      requestTimeoutMs: 120_000,
      // Prompts as long as the trace's, as a real client sends them: the gateway sizes its per-pod
      // prefill budget and the held demand it reports from them.
      fullPrompts: true,
      maxDurationMs: Number(flags["load-seconds"]) * 1000,
      onProgress: progressBar(process.stderr),
    });
    clearInterval(watcher);
    const errors = Object.entries(report.errors)
      .map(([kind, count]) => `${kind} ×${count}`)
      .join(", ");
    const md = await read();
    const within = md.status?.autoscaler?.ttftWithinTarget;
    const targetSeconds = md.spec.autoscaling.ttftTargetSeconds ?? 2;
    // As the client saw it (time held at the gateway included); a failed request counts as a miss.
    const clientWithin =
      report.sent > 0
        ? report.ttftSamplesMs.filter((ms) => ms <= targetSeconds * 1000).length / report.sent
        : 0;
    // The same share per 10 s of the schedule, with the replicas asked for by then: the opening burst
    // meets the fleet the wake left, the later ones the fleet the autoscaler grew.
    const windows = new Map<number, { sent: number; within: number }>();
    for (const outcome of report.outcomes) {
      const at = schedule[outcome.index]?.sendAtMs ?? 0;
      const w = windows.get(Math.floor(at / 10_000)) ?? { sent: 0, within: 0 };
      w.sent++;
      if (outcome.ok && (outcome.ttftMs ?? Infinity) <= targetSeconds * 1000) w.within++;
      windows.set(Math.floor(at / 10_000), w);
    }
    for (const [w, { sent, within }] of [...windows].sort((a, b) => a[0] - b[0]))
      say(
        `  requests sent t+${w * 10}-${w * 10 + 10}s: ${sent}, within ${targetSeconds} s: ${within} (${((within / sent) * 100).toFixed(0)}%)` +
          (replicasAt.has(w) ? `; replicas asked for then ${replicasAt.get(w)}` : ""),
      );
    say(
      `\nload through the gateway: ${report.succeeded} ok, ${report.failed} failed${errors ? ` (${errors})` : ""}; ` +
        `TTFT p50 ${report.ttftMs.p50.toFixed(0)} ms, p90 ${report.ttftMs.p90.toFixed(0)} ms, p99 ${report.ttftMs.p99.toFixed(0)} ms; ` +
        `\x1b[1mwithin the ${targetSeconds} s objective, as clients saw it: ${(clientWithin * 100).toFixed(1)}% of ${report.sent}\x1b[0m ` +
        `(engines' histograms, last 5 min, which do not see time held at the gateway: ${within === undefined ? "-" : `${(within * 100).toFixed(1)}%`}); ` +
        `replicas now ${md.spec.replicas}, peak ${peak}`,
    );
  };

  await replay(
    Number(flags.speedup),
    `replaying the Azure 2023 code trace through the gateway at ${flags.speedup}× for up to ${flags["load-seconds"]}s`,
  );
  heading("the load is over: scale down, then back to zero after 60 s without a request");
  const down = Date.now();
  let lastReplicas = -1;
  await waitUntil("back at zero", 300_000, (md) => {
    if (md.spec.replicas !== lastReplicas) {
      lastReplicas = md.spec.replicas;
      say(
        `  t+${Math.round((Date.now() - down) / 1000)}s  replicas ${md.spec.replicas}  STATUS ${readyReason(md) ?? "-"}`,
      );
    }
    return md.spec.replicas === 0 && readyReason(md) === "Idle";
  });
  say(await kubectl("-n", namespace, "get", "md", "-o", "wide"));
  say(
    await kubectl(
      "-n",
      namespace,
      "get",
      "events.events.k8s.io",
      "--field-selector",
      `regarding.name=${name}`,
      "--sort-by=.metadata.creationTimestamp",
    ),
  );

  if (flags.overload) {
    await replay(
      5,
      "OVERLOAD SCENE: the same trace at 5×, about twice what the 12 L4 GPUs of the pool can serve; the status names the maxReplicas cap and the TTFT objective is missed",
    );
  }

  if (flags.keep) {
    say(`\nLeft running. export KUBECONFIG=${cluster.kubeconfigPath}; Ctrl-C stops everything.`);
    await new Promise(() => undefined);
  }
} finally {
  if (!flags.keep) await shutdown();
}
