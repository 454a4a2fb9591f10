import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ModelDeployment } from "../operator/api/modeldeployment.js";
import type { RunningOperator } from "../operator/operator.js";
import { KubeClient } from "../operator/runtime/kube-client.js";
import type { SimFleet } from "../sim/engine/fleet.js";
import type { ServiceProxy } from "../sim/engine/service-proxy.js";
import { runLoad, type LoadReport } from "../sim/loadgen/loadgen.js";
import type { ScheduledRequest } from "../sim/loadgen/trace.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, waitUntil, type TestNamespace } from "./support/kube.js";
import { readModelDeployment, startTestOperator } from "./support/operator.js";
import { deployBehindProxy, startSimFleet } from "./support/sim-fleet.js";

// End to end: the operator, simulated engines on the KWOK pods' IPs, and a load generator. A load spike
// scales a ModelDeployment up within a few scrape intervals; when the load is gone it scales down after
// the stabilization window; metrics that time out or are garbage hold the scale; both engines.

const SCRAPE_INTERVAL_SECONDS = 1;
const SCALE_DOWN_WINDOW_SECONDS = 20;
// The policy's stable/token windows and scale-down period (GPUFLEET_AUTOSCALER_WINDOW_SECONDS; 60 s by
// default): 15 s lets the spike's scale-down come ~40 s sooner.
const POLICY_WINDOW_SECONDS = 15;
const kubeConfig = testKubeConfig();
const client = new KubeClient(kubeConfig);
const core = kubeConfig.makeApiClient(CoreV1Api);
let namespace: TestNamespace;
let operator: RunningOperator;
let fleet: SimFleet;
const cleanups: Array<() => unknown> = [];

function autoscaled(engine: "vllm" | "tensorrt-llm" | "sglang", replicas = 1, maxReplicas = 3) {
  return {
    model: { name: "llama-3.1-8b-instruct", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 },
    engine: { kind: engine },
    gpu: { products: ["NVIDIA-L4"] },
    replicas,
    autoscaling: { enabled: true, minReplicas: 1, maxReplicas, scaleDownStabilizationSeconds: SCALE_DOWN_WINDOW_SECONDS },
  };
}

/** A steady overload: `ratePerSecond` requests of 2,000 prompt and 128 output tokens for `seconds`. */
function overload(ratePerSecond: number, seconds: number): ScheduledRequest[] {
  return Array.from({ length: ratePerSecond * seconds }, (_, index) => ({
    index,
    offsetMs: (index * 1000) / ratePerSecond,
    sendAtMs: (index * 1000) / ratePerSecond,
    promptTokens: 2000,
    outputTokens: 128,
  }));
}

const deploy = (name: string, spec: Record<string, unknown>): Promise<ServiceProxy> =>
  deployBehindProxy(client, kubeConfig, namespace.name, name, spec, cleanups);

const read = (name: string): Promise<ModelDeployment> => readModelDeployment(client, namespace.name, name);

/** What a timed-out wait on the autoscaler last saw. */
const scaleState = (md: ModelDeployment): string =>
  `spec.replicas ${md.spec.replicas}, ready ${md.status?.readyReplicas ?? 0}, autoscaler: ${md.status?.autoscaler?.reason ?? "no reason yet"}`;

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "autoscale");
  operator = await startTestOperator(kubeConfig, namespace.name, {
    GPUFLEET_SCRAPE_INTERVAL_SECONDS: String(SCRAPE_INTERVAL_SECONDS),
    GPUFLEET_SCRAPE_TIMEOUT_SECONDS: "1",
    GPUFLEET_AUTOSCALER_WINDOW_SECONDS: String(POLICY_WINDOW_SECONDS),
  });
  fleet = startSimFleet(kubeConfig, namespace.name);
}, 120_000);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await fleet?.stop();
  await operator?.stop();
  await namespace?.delete();
  client.close();
});

// The four cases run at once (each has its own ModelDeployment and engines; one operator serves them
// all): the file takes as long as its longest case, the vLLM spike and its scale-down, instead of the
// sum. At their maxReplicas they need the 12 L4 GPUs of sim/cluster/gpu-pools.yaml (3 nodes x 4).
describe.concurrent("autoscaling on KV-cache pressure and queue depth, end to end", () => {
  it("scales a vLLM ModelDeployment up within a few scrape intervals of a load spike, and down after the stabilization window once the load is gone", async () => {
    const spec = autoscaled("vllm");
    const proxy = await deploy("spike", { ...spec, autoscaling: { ...spec.autoscaling, ttftTargetSeconds: 2 } });
    const loadStarted = Date.now();
    const load: Promise<LoadReport> = runLoad(overload(8, 25), {
      endpoints: [proxy.url],
      policy: "round-robin",
      model: "llama-3.1-8b-instruct",
      maxOutputTokens: 128,
      requestTimeoutMs: 120_000,
      maxDurationMs: 30_000,
    });

    const scaledUp = await waitUntil(() => read("spike"), (md) => md.spec.replicas > 1, {
      timeoutMs: 30_000,
      intervalMs: 250,
      description: "scale-up under the spike",
      show: scaleState,
    });
    const scaleUpSeconds = (Date.now() - loadStarted) / 1000;
    expect(scaleUpSeconds).toBeLessThan(10 * SCRAPE_INTERVAL_SECONDS + 5);
    expect(scaledUp.status?.autoscaler?.reason ?? "").toMatch(/kv-cache|queue|throughput/);

    const report = await load;
    const loadEnded = Date.now();
    expect(report.succeeded).toBeGreaterThan(0);
    const peak = (await read("spike")).spec.replicas;
    expect(peak).toBeGreaterThan(1);

    // Idle now: the operator waits out the stabilization window, then steps down.
    const scaledDown = await waitUntil(() => read("spike"), (md) => md.spec.replicas < peak, {
      timeoutMs: (SCALE_DOWN_WINDOW_SECONDS + 90) * 1000,
      intervalMs: 500,
      description: `scale-down from ${peak} after the load`,
      show: scaleState,
    });
    const scaleDownSeconds = (Date.now() - loadEnded) / 1000;
    expect(scaleDownSeconds).toBeGreaterThanOrEqual(SCALE_DOWN_WINDOW_SECONDS - 2);
    const events = await client.list<{ reason?: string; regarding?: { name?: string } }>(`/apis/events.k8s.io/v1/namespaces/${namespace.name}/events`);
    const reasons = events.items.filter((e) => e.regarding?.name === "spike").map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(["ScaledUp", "ScaledDown"]));

    // The TTFT objective is reported from the engines' histograms: every request the load generator saw
    // get a first token is counted once (the window is 5 minutes; the load lasted 25 s).
    const reported = await waitUntil(
      async () => (await read("spike")).status?.autoscaler,
      (autoscaler) => (autoscaler?.ttftRequests ?? 0) >= report.succeeded,
      {
        timeoutMs: 45_000,
        intervalMs: 500,
        description: `TTFT attainment of at least ${report.succeeded} requests in the status`,
        show: (autoscaler) => `ttftRequests ${autoscaler?.ttftRequests ?? "absent"}, ttftWithinTarget ${autoscaler?.ttftWithinTarget ?? "absent"}`,
      },
    );
    if (reported === undefined) throw new Error("no autoscaler status");
    expect(reported.ttftRequests).toBeLessThanOrEqual(report.sent);
    expect(reported.ttftWithinTarget).toBeGreaterThanOrEqual(0);
    expect(reported.ttftWithinTarget).toBeLessThanOrEqual(1);
    process.stderr.write(
      `[autoscaling-e2e] vllm: scaled up ${scaleUpSeconds.toFixed(1)}s after the spike began (peak ${peak}), down ${scaleDownSeconds.toFixed(1)}s after it ended (to ${scaledDown.spec.replicas}); TTFT p50 ${report.ttftMs.p50.toFixed(0)} ms, status: ${((reported.ttftWithinTarget ?? 0) * 100).toFixed(1)}% of ${reported.ttftRequests} requests within 2 s\n`,
    );
    // Deploy, a 25 s load, the stabilization window, a scale-down step and a status refresh: more than
    // the default 180 s on a busy 2-core machine.
  }, 360_000);

  it("holds the replica count while metrics are garbage or time out, and scales down once they are sane again", async () => {
    await deploy("hold", autoscaled("vllm", 2, 3));
    await waitUntil(() => read("hold"), (md) => md.status?.readyReplicas === 2, { timeoutMs: 60_000, description: "hold: 2 ready", show: scaleState });
    const servers = await waitFor(
      () => {
        const ours = [...fleet.servers()].filter(([key]) => key.startsWith(`${namespace.name}/hold-`)).map(([, server]) => server);
        return ours.length === 2 ? ours : undefined;
      },
      { timeoutMs: 30_000, description: "two simulated engines for hold" },
    );
    servers[0]!.setFaults({ garbageMetrics: true });
    servers[1]!.setFaults({ metricsDelayMs: 5_000 }); // longer than the 1 s scrape timeout

    // Idle engines would be scaled down after the window; broken metrics must hold the count instead.
    await new Promise((resolve) => setTimeout(resolve, (SCALE_DOWN_WINDOW_SECONDS + 15) * 1000));
    const held = await read("hold");
    expect(held.spec.replicas).toBe(2);
    expect(held.status?.autoscaler?.reason ?? "").toMatch(/holding at 2/);
    expect(held.status?.autoscaler?.reason ?? "").toMatch(/parse|timeout|malformed|scrape failed|no usable metrics/);

    for (const server of servers) server.setFaults({});
    await waitUntil(() => read("hold"), (md) => md.spec.replicas === 1, {
      timeoutMs: (SCALE_DOWN_WINDOW_SECONDS + 60) * 1000,
      intervalMs: 500,
      description: "hold: scale-down to 1 once metrics are sane",
      show: scaleState,
    });
  });

  it.each([
    ["TensorRT-LLM", "tensorrt-llm", "trt", /trtllm-serve/],
    ["SGLang", "sglang", "sgl", /sglang/],
  ] as const)("scales a %s ModelDeployment on its engine's own metrics", async (label, engine, name, command) => {
    const proxy = await deploy(name, autoscaled(engine));
    const loadStarted = Date.now();
    const load = runLoad(overload(8, 20), {
      endpoints: [proxy.url],
      policy: "round-robin",
      model: "llama-3.1-8b-instruct",
      maxOutputTokens: 128,
      requestTimeoutMs: 120_000,
      maxDurationMs: 25_000,
    });
    await waitUntil(() => read(name), (md) => md.spec.replicas > 1, { timeoutMs: 30_000, intervalMs: 250, description: `${label} scale-up`, show: scaleState });
    const seconds = (Date.now() - loadStarted) / 1000;
    expect(seconds).toBeLessThan(10 * SCRAPE_INTERVAL_SECONDS + 5);
    const md = await read(name);
    expect(md.status?.autoscaler?.scrapedReplicas ?? 0).toBeGreaterThan(0);
    const pods = await core.listNamespacedPod({ namespace: namespace.name, labelSelector: `gpufleet.io/model-deployment=${name}` });
    const container = pods.items[0]?.spec?.containers[0];
    expect([...(container?.command ?? []), ...(container?.args ?? [])].join(" ")).toMatch(command);
    await load;
    process.stderr.write(`[autoscaling-e2e] ${engine}: scaled up ${seconds.toFixed(1)}s after the spike began\n`);
  });
});
