/**
 * Scale-from-zero figure: `npx tsx sim/bench/scale-from-zero.ts [--runs 3] [--model-load-seconds 60]`.
 *
 * On its own local control plane: the operator and the gateway with their default intervals, simulated
 * engines (sim/engine) for the pods the operator creates, and a ModelDeployment at minReplicas 0 that sits
 * Idle at zero. Each run sends ONE streamed completion through the gateway and splits the time to its first
 * token into:
 *   - operator: request sent → spec.replicas 1 (the gateway holds it and writes its demand annotation; the
 *     operator wakes the model on that informer event, through the scale subresource);
 *   - pod start: → the engine process listens on the pod IP (Deployment → ReplicaSet → scheduler → KWOK's
 *     simulated kubelet → the simulator starting the engine for the pod);
 *   - model load (simulated): → the engine's /health answers 200 (`--model-load-seconds`, default 60 s:
 *     what the trace evaluation assumes for Llama 3.1 8B);
 *   - first token: → the first streamed token reaches the client (the gateway releases the held request
 *     to the ready pod; prefill).
 * Between runs the model idles back to zero (scaleToZeroIdleSeconds 60, the API's minimum). Times are
 * wall-clock on a shared machine; every phase is polled every 25 ms (resolution ±25 ms).
 */
import { parseArgs } from "node:util";
import type { V1Pod } from "@kubernetes/client-node";
import type { ModelDeployment } from "../../operator/api/modeldeployment.js";
import { loadConfig } from "../../operator/config.js";
import { startOperator } from "../../operator/operator.js";
import { SELECTOR_LABEL } from "../../operator/controller/reconcile-plan.js";
import { KubeClient, type KubeObject } from "../../operator/runtime/kube-client.js";
import { loadGatewayConfig } from "../../gateway/config.js";
import { startGateway } from "../../gateway/gateway.js";
import { ensureModelDeploymentCrd } from "../../test/support/crds.js";
import { ensureClusterBinaries } from "../../tools/binaries.js";
import { startLocalCluster } from "../cluster/cluster.js";
import { loadNodePools } from "../cluster/nodepools.js";
import { listManagedPods, SimFleet } from "../engine/fleet.js";
import { sendRequest } from "../loadgen/loadgen.js";
import { firstTime, timeWake } from "./wake-split.js";

const { values: flags } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    "model-load-seconds": { type: "string", default: "60" },
  },
});
const runs = Number(flags.runs);
const modelLoadSeconds = Number(flags["model-load-seconds"]);
if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new Error("--runs takes 1 to 20");
if (!(modelLoadSeconds >= 0 && modelLoadSeconds <= 600)) throw new Error("--model-load-seconds takes 0 to 600");

process.env.GPUFLEET_LOG_LEVEL ??= "warn";
const say = (line: string) => process.stderr.write(`[scale-from-zero] ${line}\n`);
const namespace = "bench";
const name = "llama";
const modelName = "llama-3.1-8b-instruct";

const binaries = await ensureClusterBinaries();
const cluster = await startLocalCluster({ binaries, nodePools: loadNodePools() });
const stops: Array<() => Promise<void> | void> = [];
const client = new KubeClient(cluster.kubeConfig);
stops.push(() => client.close());
try {
  await ensureModelDeploymentCrd(cluster.kubeConfig);
  await client.create({ apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } } as KubeObject);
  // Default intervals: only what must differ on one machine (ports, no leader election) is set.
  const operator = await startOperator(
    cluster.kubeConfig,
    loadConfig({ GPUFLEET_LEADER_ELECT: "false", GPUFLEET_OPS_HOST: "127.0.0.1", GPUFLEET_OPS_PORT: "0", POD_NAMESPACE: namespace }),
  );
  stops.push(() => operator.stop());
  const gateway = await startGateway(
    client,
    loadGatewayConfig({ GPUFLEET_GATEWAY_HOST: "127.0.0.1", GPUFLEET_GATEWAY_PORT: "0", GPUFLEET_GATEWAY_OPS_HOST: "127.0.0.1", GPUFLEET_GATEWAY_OPS_PORT: "0", POD_NAME: "gateway-bench-0" }),
  );
  stops.push(() => gateway.stop());
  const fleet = new SimFleet({ listPods: listManagedPods(cluster.kubeConfig), loadDelayMs: modelLoadSeconds * 1000, pollIntervalMs: 500 });
  fleet.start();
  stops.push(() => fleet.stop());

  await client.apply(
    {
      apiVersion: "gpufleet.io/v1alpha1",
      kind: "ModelDeployment",
      metadata: { name, namespace },
      spec: {
        model: { name: modelName, source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 16384 },
        gpu: { products: ["NVIDIA-L4"] },
        replicas: 0,
        autoscaling: { enabled: true, minReplicas: 0, maxReplicas: 2, scaleToZeroIdleSeconds: 60, ttftTargetSeconds: 2 },
      },
    } as KubeObject,
    { fieldManager: "bench", force: true },
  );
  const mdPath = `/apis/gpufleet.io/v1alpha1/namespaces/${namespace}/modeldeployments/${name}`;
  const readMd = () => client.get<ModelDeployment>(mdPath);
  const readyReason = async () => (await readMd()).status?.conditions?.find((c) => c.type === "Ready")?.reason;
  const pods = async () =>
    (await client.list<V1Pod>(`/api/v1/namespaces/${namespace}/pods`, { labelSelector: `${SELECTOR_LABEL}=${name}` })).items.filter(
      (pod) => !pod.metadata?.deletionTimestamp,
    );

  const rows: Array<{ operator: number; podStart: number; modelLoad: number; firstToken: number; total: number }> = [];
  for (let run = 1; run <= runs; run++) {
    say(`run ${run}/${runs}: waiting for the model to be Idle at zero`);
    await firstTime(async () => (await readyReason()) === "Idle" && (await pods()).length === 0, performance.now() + 240_000, "Idle at zero");
    const deadline = performance.now() + 600_000;
    const sentAt = performance.now();
    const outcome = sendRequest(`http://127.0.0.1:${gateway.port}`, { index: run, offsetMs: 0, sendAtMs: 0, promptTokens: 512, outputTokens: 16 }, {
      model: modelName,
      maxOutputTokens: 16,
      requestTimeoutMs: 600_000,
    });
    const split = await timeWake({
      sentAt,
      outcome,
      replicas: async () => (await readMd()).spec.replicas ?? 0,
      podIP: async () => (await pods()).find((pod) => pod.status?.podIP)?.status?.podIP,
      deadlineMs: deadline,
    });
    const row = {
      operator: split.operatorMs,
      podStart: split.podStartMs,
      modelLoad: split.modelLoadMs,
      firstToken: split.firstTokenMs,
      total: split.totalMs,
    };
    rows.push(row);
    say(`run ${run}: ${JSON.stringify(Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Math.round(v)])))} ms`);
  }

  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
  const seconds = (ms: number) => (ms / 1000).toFixed(2).padStart(8);
  const table = [
    `scale from zero: first request → first token, ${runs} run(s), simulated model load ${modelLoadSeconds} s, operator and gateway at default intervals`,
    `phase                         ${rows.map((_, i) => `  run ${i + 1}`.padStart(8)).join(" ")}   median (s)`,
    ...(
      [
        ["waiting for the operator", "operator"],
        ["pod start", "podStart"],
        ["model load (simulated)", "modelLoad"],
        ["release → first token", "firstToken"],
        ["total (time to first token)", "total"],
      ] as const
    ).map(([label, key]) => `${label.padEnd(30)}${rows.map((r) => seconds(r[key])).join(" ")}   ${seconds(median(rows.map((r) => r[key])))}`),
  ];
  process.stdout.write(`${table.join("\n")}\n`);
} finally {
  for (const stop of stops.reverse()) await Promise.resolve(stop()).catch(() => undefined);
  await cluster.stop();
}
