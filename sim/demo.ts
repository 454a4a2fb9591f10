/**
 * `npm run demo`: the whole of gpufleet on one machine, live.
 *
 * 1. builds (once) and starts the local GPU cluster: a real control plane with KWOK GPU node pools;
 * 2. installs the CRDs with `kubectl apply --server-side -f crds/`, starts the operator, the gateway and a
 *    simulated engine for every engine pod the operator creates (vLLM's API and /metrics on the pod's
 *    127.x IP; an engine whose pod is deleted first finishes its requests, as the pod's preStop drain does);
 * 3. applies examples/llama-3.1-8b-scale-to-zero.yaml: planned, placed, and Idle at zero replicas;
 * 4. scene 1: one request through the gateway wakes the model (held, 0 -> 1, answered), with the time to
 *    its first token split into waiting for the operator, pod start and model load (3 s, simulated);
 * 5. scene 2: a trickle of traffic that ramps up (the Azure 2023 code trace's request sizes, arriving
 *    ever faster, then slower), which the fleet follows up while clients keep the 2 s TTFT objective;
 *    then the return to zero after 60 s without a request;
 * 6. scene 3, the OVERLOAD scene (skip it with --skip-overload): the trace's own opening, a burst of
 *    ~8.5 s of L4 prefill in its first 2 s, arriving at zero replicas: no fleet that is still starting
 *    serves it within 2 s; the gateway holds it, the operator sizes the wake by it.
 *
 * Every scene prints the share of requests whose first token came within 2 s as the clients saw it (time
 * held at the gateway included; a failed request is a miss), per 10 s with the replicas asked for and
 * ready, and a summary at the end.
 *
 * Flags: --peak N (ramp's peak, requests/s, default 3.5), --ramp-seconds N (its rise after a 20 s
 * trickle, default 90; it holds a third of that and falls in a third of that), --speedup N (trace time
 * compression of the overload scene, default 1), --load-seconds N (its length, default 150),
 * --skip-overload, --keep (leave everything running until Ctrl-C).
 */
import { execFile } from "node:child_process";
import { parseArgs, promisify } from "node:util";
import type { V1Pod } from "@kubernetes/client-node";
import { REPO_ROOT } from "../operator/api/generate.js";
import type { ModelDeployment } from "../operator/api/modeldeployment.js";
import { loadConfig } from "../operator/config.js";
import { SELECTOR_LABEL } from "../operator/controller/reconcile-plan.js";
import { startOperator } from "../operator/operator.js";
import { KubeClient } from "../operator/runtime/kube-client.js";
import { loadGatewayConfig } from "../gateway/config.js";
import { startGateway } from "../gateway/gateway.js";
import { ensureClusterBinaries } from "../tools/binaries.js";
import { timeWake, type WakeSplit } from "./bench/wake-split.js";
import { startLocalCluster } from "./cluster/cluster.js";
import { loadNodePools } from "./cluster/nodepools.js";
import { listManagedPods, SimFleet } from "./engine/fleet.js";
import { EngineModel, engineParamsForNames } from "./engine/model.js";
import { type LoadReport, progressBar, runLoad, sendRequest } from "./loadgen/loadgen.js";
import { rampDurationMs, rampSchedule } from "./loadgen/ramp.js";
import { type ScheduledRequest, loadTrace, scheduleTrace } from "./loadgen/trace.js";

const run = promisify(execFile);
const say = (line = "") => process.stdout.write(`${line}\n`);
const heading = (line: string) => say(`\n\x1b[1m== ${line}\x1b[0m`);
const bold = (text: string) => `\x1b[1m${text}\x1b[0m`;

const { values: flags } = parseArgs({
  options: {
    peak: { type: "string", default: "3.5" },
    "ramp-seconds": { type: "string", default: "90" },
    speedup: { type: "string", default: "1" },
    "load-seconds": { type: "string", default: "150" },
    "skip-overload": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
});
const peak = Number(flags.peak);
const rampSeconds = Number(flags["ramp-seconds"]);
if (!(peak > 0.3 && peak <= 20)) throw new Error("--peak takes requests/s in (0.3, 20]");
if (!(rampSeconds >= 10 && rampSeconds <= 600)) throw new Error("--ramp-seconds takes 10 to 600");

process.env.GPUFLEET_LOG_LEVEL ??= "warn";
const namespace = "demo";
const name = "llama-3-1-8b-on-demand";
const TARGET_SECONDS = 2;

/** One line per scene for the summary at the end. */
const summary: string[] = [];

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

  heading("gpufleet: CRDs, operator, gateway, simulated engines");
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
    // KWOK runs no preStop hook: the simulated engine of a deleted pod drains its requests itself.
    drainOnDeleteMs: 30_000,
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
  // Room for the whole L4 pool (12 GPUs). A fixed token-throughput target of 30% per replica: an L4
  // prefills a 7,000-token prompt (the trace's p95) in 1.9 s, so a replica must stay mostly free for
  // every first token to come within 2 s. Unset, the autoscaler starts at 75% and learns a lower
  // target from the misses it sees (25% in our runs), i.e. only after missing. The scale-down window
  // stays at its default (300 s): the way down is the return to zero after 60 s without a request.
  await kubectl(
    "-n",
    namespace,
    "patch",
    "md",
    name,
    "--type=merge",
    "-p",
    '{"spec":{"autoscaling":{"maxReplicas":12,"tokenThroughputUtilizationTarget":0.3}}}',
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
  const model = idle.spec.model.name;
  say(await kubectl("-n", namespace, "get", "md"));
  say(`plan: ${JSON.stringify(idle.status?.plan)}`);
  say("no engine pod runs: the model holds no GPU until someone calls it.");

  // What an idle replica of the plan needs for a prompt by itself (the simulator's L4 timing): a prompt
  // whose first token takes longer than the objective alone misses it whatever the fleet size.
  const planParams = engineParamsForNames("llama-3.1-8b", idle.status?.plan?.gpuProduct ?? "NVIDIA-L4");
  const aloneTtftMs = (promptTokens: number): number => {
    const engine = new EngineModel(planParams, { tokenEvents: false });
    engine.enqueue({ id: "alone", promptTokens, maxOutputTokens: 2, arrivalMs: 0 });
    const first = engine.advanceTo(60_000).find((e) => e.kind === "first-token");
    return first?.atMs ?? Number.POSITIVE_INFINITY;
  };

  /** Back to zero after the idle period; prints every change of spec.replicas. */
  const followDownToZero = async () => {
    const down = Date.now();
    let last = -1;
    await waitUntil("back at zero", 300_000, (md) => {
      if (md.spec.replicas !== last) {
        last = md.spec.replicas;
        say(
          `  t+${Math.round((Date.now() - down) / 1000)}s  replicas ${md.spec.replicas}  STATUS ${readyReason(md) ?? "-"}`,
        );
      }
      return md.spec.replicas === 0 && readyReason(md) === "Idle";
    });
    return (Date.now() - down) / 1000;
  };

  heading("scene 1: the first request wakes the model (held at the gateway, 0 -> 1, answered)");
  const pods = async () =>
    (
      await client.list<V1Pod>(`/api/v1/namespaces/${namespace}/pods`, {
        labelSelector: `${SELECTOR_LABEL}=${name}`,
      })
    ).items.filter((pod) => !pod.metadata?.deletionTimestamp);
  const sentAt = performance.now();
  const first = sendRequest(
    gatewayUrl,
    { index: 0, offsetMs: 0, sendAtMs: 0, promptTokens: 512, outputTokens: 16 },
    { model, maxOutputTokens: 16, requestTimeoutMs: 180_000 },
  );
  let wake: WakeSplit | undefined;
  try {
    wake = await timeWake({
      sentAt,
      outcome: first,
      replicas: async () => (await read()).spec.replicas ?? 0,
      podIP: async () => (await pods()).find((pod) => pod.status?.podIP)?.status?.podIP,
      deadlineMs: performance.now() + 180_000,
    });
  } catch (error) {
    say(`  the first request was not answered: ${error instanceof Error ? error.message : String(error)}`);
  }
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  if (wake) {
    say(`  first token after ${bold(s(wake.totalMs))}:`);
    say(
      `    waiting for the operator  ${s(wake.operatorMs).padStart(7)}  (the gateway holds the request and writes its demand; the operator scales 0 -> 1)`,
    );
    say(
      `    pod start                 ${s(wake.podStartMs).padStart(7)}  (Deployment, scheduler, kubelet, engine process)`,
    );
    say(
      `    model load (simulated)    ${s(wake.modelLoadMs).padStart(7)}  (3 s here; ~60 s for Llama 3.1 8B from a local cache)`,
    );
    say(
      `    release -> first token    ${s(wake.firstTokenMs).padStart(7)}  (the held request goes to the new pod; prefill)`,
    );
    summary.push(
      `scene 1, one request wakes the model: first token after ${s(wake.totalMs)} (operator ${s(wake.operatorMs)}, pod start ${s(wake.podStartMs)}, model load ${s(wake.modelLoadMs)}, release → first token ${s(wake.firstTokenMs)}); replicas 0 → 1`,
    );
  }
  await waitUntil(
    "Ready",
    60_000,
    (md) => md.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
  );
  say(await kubectl("-n", namespace, "get", "md", "-o", "wide"));

  /** Replays `schedule` through the gateway; prints its figures per 10 s and returns them. */
  const replay = async (schedule: ScheduledRequest[], label: string) => {
    const started = Date.now();
    /** spec.replicas and ready replicas, sampled every 2 s. */
    const samples: Array<{ atMs: number; replicas: number; ready: number }> = [];
    let lastLine = 0;
    const watcher = setInterval(() => {
      void read().then(
        (md) => {
          const atMs = Date.now() - started;
          samples.push({ atMs, replicas: md.spec.replicas ?? 0, ready: md.status?.readyReplicas ?? 0 });
          if (atMs - lastLine < 10_000) return;
          lastLine = atMs;
          const a = md.status?.autoscaler;
          process.stderr.write(
            `\n[t+${String(Math.round(atMs / 1000)).padStart(3)}s] replicas ${md.spec.replicas} (ready ${md.status?.readyReplicas ?? 0})` +
              `  kv-cache ${a?.kvCacheUtilization?.toFixed(2) ?? "-"}  queue ${a?.queueDepth ?? "-"}  running ${a?.requestsRunning ?? "-"}` +
              `  held at the gateway ${gateway.server.holds.size(model)}  ${a?.reason ?? ""}\n`,
          );
        },
        () => undefined,
      );
    }, 2_000);
    const report = await runLoad(schedule, {
      endpoints: [gatewayUrl],
      policy: "round-robin",
      model,
      maxOutputTokens: 256,
      requestTimeoutMs: 120_000,
      // Prompts as long as the trace's, as a real client sends them: the gateway sizes its per-pod
      // prefill budget and the held demand it reports from them.
      fullPrompts: true,
      maxDurationMs: (schedule.at(-1)?.sendAtMs ?? 0) + 1_000,
      onProgress: progressBar(process.stderr),
    });
    clearInterval(watcher);
    return { report, samples, label };
  };

  /** Per 10 s of the schedule: sent, within the objective, replicas asked for and ready (highest). */
  const describeReplay = (
    schedule: ScheduledRequest[],
    {
      report,
      samples,
      label,
    }: {
      report: LoadReport;
      samples: Array<{ atMs: number; replicas: number; ready: number }>;
      label: string;
    },
  ) => {
    const windows = new Map<number, { sent: number; within: number }>();
    let within = 0;
    /** Misses whose prompt alone takes an idle replica most of the objective (under 0.5 s left to wait). */
    let tightMisses = 0;
    for (const outcome of report.outcomes) {
      const at = schedule[outcome.index]?.sendAtMs ?? 0;
      const w = windows.get(Math.floor(at / 10_000)) ?? { sent: 0, within: 0 };
      w.sent++;
      const ok = outcome.ok && (outcome.ttftMs ?? Infinity) <= TARGET_SECONDS * 1000;
      if (ok) {
        w.within++;
        within++;
      } else if (aloneTtftMs(schedule[outcome.index]?.promptTokens ?? 0) > TARGET_SECONDS * 1000 - 500)
        tightMisses++;
      windows.set(Math.floor(at / 10_000), w);
    }
    const last = Math.max(...windows.keys(), ...samples.map((x) => Math.floor(x.atMs / 10_000)));
    say(
      `  ${"sent at".padEnd(10)} ${"requests".padStart(8)} ${`within ${TARGET_SECONDS} s`.padStart(12)}   replicas asked for / ready`,
    );
    for (let w = 0; w <= last; w++) {
      const row = windows.get(w);
      const inWindow = samples.filter((x) => Math.floor(x.atMs / 10_000) === w);
      const replicas = inWindow.length ? Math.max(...inWindow.map((x) => x.replicas)) : undefined;
      const ready = inWindow.length ? Math.max(...inWindow.map((x) => x.ready)) : undefined;
      say(
        `  ${`t+${w * 10}s`.padEnd(10)} ${String(row?.sent ?? 0).padStart(8)} ${(row && row.sent ? `${row.within} (${Math.round((row.within / row.sent) * 100)}%)` : "-").padStart(12)}   ` +
          `${replicas === undefined ? "-" : `${replicas} / ${ready}`}${replicas === undefined ? "" : ` ${"#".repeat(ready ?? 0)}`}`,
      );
    }
    const errors = Object.entries(report.errors)
      .map(([kind, count]) => `${kind} ×${count}`)
      .join(", ");
    const share = report.sent > 0 ? within / report.sent : 0;
    const peakReplicas = Math.max(0, ...samples.map((x) => x.replicas));
    say(
      `\n  ${report.succeeded} ok, ${report.failed} failed${errors ? ` (${errors})` : ""}; TTFT as clients saw it: ` +
        `p50 ${report.ttftMs.p50.toFixed(0)} ms, p90 ${report.ttftMs.p90.toFixed(0)} ms, p99 ${report.ttftMs.p99.toFixed(0)} ms`,
    );
    say(
      `  ${bold(`within the ${TARGET_SECONDS} s objective: ${(share * 100).toFixed(1)}% of ${report.sent}`)} ` +
        `(time held at the gateway included; a failure counts as a miss)`,
    );
    if (report.sent > within)
      say(
        `  of the ${report.sent - within} late or failed, ${tightMisses} have a prompt (≥ ~5,700 tokens) that takes an idle L4 over ` +
          `${TARGET_SECONDS - 0.5} s to prefill by itself: under 0.5 s left for any wait`,
      );
    summary.push(
      `${label}: ${report.sent} requests, ${(share * 100).toFixed(1)}% within ${TARGET_SECONDS} s, ` +
        `${report.failed} failed, TTFT p99 ${(report.ttftMs.p99 / 1000).toFixed(1)} s; replicas up to ${peakReplicas}`,
    );
  };

  const trace = loadTrace("azure-code");
  const ramp = {
    fromPerSecond: 0.3,
    peakPerSecond: peak,
    flatMs: 20_000,
    upMs: rampSeconds * 1000,
    holdMs: (rampSeconds / 3) * 1000,
    downMs: (rampSeconds / 3) * 1000,
    seed: 1,
  };
  const rampRequests = rampSchedule(trace, ramp);
  heading(
    `scene 2: a trickle (0.3 requests/s for 20 s) ramps up to ${peak} requests/s over ${rampSeconds} s, holds ${rampSeconds / 3} s, ramps down over ${rampSeconds / 3} s ` +
      `(${rampRequests.length} requests with the Azure 2023 code trace's prompt and output sizes; ${(rampDurationMs(ramp) / 1000).toFixed(0)} s)`,
  );
  describeReplay(
    rampRequests,
    await replay(rampRequests, `scene 2, trickle and ramp 0.3 → ${peak} → 0.3 requests/s`),
  );
  heading("the load is over: scale down, then back to zero after 60 s without a request");
  const toZeroSeconds = await followDownToZero();
  summary.push(
    `after scene 2: back at zero replicas ${toZeroSeconds.toFixed(0)} s after the last request was answered`,
  );
  say(await kubectl("-n", namespace, "get", "md", "-o", "wide"));
  say(
    await kubectl(
      "-n",
      namespace,
      "get",
      "events.events.k8s.io",
      "--field-selector",
      `regarding.kind=ModelDeployment,regarding.name=${name}`,
      "--sort-by=.metadata.creationTimestamp",
    ),
  );

  if (!flags["skip-overload"]) {
    const speedup = Number(flags.speedup);
    const burst = scheduleTrace(trace, {
      speedup,
      maxRequests: 20_000,
      maxDurationMs: Number(flags["load-seconds"]) * 1000,
    });
    heading(
      `OVERLOAD SCENE: the Azure 2023 code trace as it starts (${speedup}×), arriving at ZERO replicas: ` +
        `12 requests, ~32k prompt tokens in 2 s, ~8.5 s of prefill for one L4 while the first replica is still starting`,
    );
    say(
      "  No fleet that is still starting answers this burst within 2 s. The gateway holds it, reports the held prompt tokens,\n" +
        "  and the operator sizes the wake by them (several replicas at once); the later requests meet that fleet.",
    );
    describeReplay(
      burst,
      await replay(burst, `OVERLOAD scene, the trace's opening burst at zero replicas (${speedup}×)`),
    );
  }

  heading("summary");
  for (const line of summary) say(`- ${line}`);

  if (flags.keep) {
    say(`\nLeft running. export KUBECONFIG=${cluster.kubeconfigPath}; Ctrl-C stops everything.`);
    await new Promise(() => undefined);
  }
} finally {
  if (!flags.keep) await shutdown();
}
