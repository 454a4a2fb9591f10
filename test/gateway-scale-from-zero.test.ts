/**
 * Scale from zero and back, through the gateway, on the local cluster with the operator's default
 * intervals: a ModelDeployment at minReplicas 0 is Idle at zero; the first request through the gateway
 * is held, the gateway's demand annotation wakes the model (the operator scales 0 -> 1 on the informer
 * event), the simulated engine loads, and the held request is answered by the new pod. With no request
 * for scaleToZeroIdleSeconds the model goes back to zero. The time to the first token is split into
 * waiting for the operator, pod start and model load, and printed.
 */
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ModelDeployment } from "../operator/api/modeldeployment.js";
import type { RunningOperator } from "../operator/operator.js";
import { KubeClient } from "../operator/runtime/kube-client.js";
import { loadGatewayConfig } from "../gateway/config.js";
import { startGateway, type Gateway } from "../gateway/gateway.js";
import { MANAGED_BY_SELECTOR, SimFleet } from "../sim/engine/fleet.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import {
  condition,
  modelDeploymentObject,
  readModelDeployment,
  startTestOperator,
} from "./support/operator.js";
import { loopbackGatewayEnv } from "./support/gateway.js";

const IDLE_SECONDS = 60; // the API's minimum scaleToZeroIdleSeconds
const MODEL_LOAD_MS = 3_000; // simulated model load after the pod is Ready
const kubeConfig = testKubeConfig();
const client = new KubeClient(kubeConfig);
const core = kubeConfig.makeApiClient(CoreV1Api);
let namespace: TestNamespace;
let operator: RunningOperator;
let fleet: SimFleet;
let gateway: Gateway;
/** When each replica count and pod readiness was first seen (ms since epoch). */
const seen: { replicas1?: number; podReady?: number } = {};
const watchAbort = new AbortController();

const read = (): Promise<ModelDeployment> => readModelDeployment(client, namespace.name, "sleepy");

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "gw-zero");
  // The operator's default scrape interval (5 s), not the tests' usual 1 s.
  operator = await startTestOperator(kubeConfig, namespace.name, { GPUFLEET_SCRAPE_INTERVAL_SECONDS: "5" });
  fleet = new SimFleet({
    listPods: async () =>
      (await core.listNamespacedPod({ namespace: namespace.name, labelSelector: MANAGED_BY_SELECTOR })).items,
    pollIntervalMs: 100,
    loadDelayMs: MODEL_LOAD_MS,
  });
  fleet.start();
  gateway = await startGateway(
    new KubeClient(kubeConfig, { userAgent: "gpufleet-gateway" }),
    loadGatewayConfig(loopbackGatewayEnv(namespace.name, "gateway-zero")),
  );
  await client.apply(
    modelDeploymentObject(namespace.name, "sleepy", {
      model: {
        name: "sleepy-model",
        source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } },
        maxContextLength: 8192,
      },
      gpu: { products: ["NVIDIA-L4"] },
      replicas: 0,
      autoscaling: { enabled: true, minReplicas: 0, maxReplicas: 2, scaleToZeroIdleSeconds: IDLE_SECONDS },
    }),
    { fieldManager: "platform-team", force: true },
  );
  // Timestamps of the wake, from watches (polling would blur them).
  void client
    .watch<ModelDeployment>(
      `/apis/gpufleet.io/v1alpha1/namespaces/${namespace.name}/modeldeployments`,
      { fieldSelector: "metadata.name=sleepy" },
      (event) => {
        if ((event.object?.spec?.replicas ?? 0) >= 1) seen.replicas1 ??= Date.now();
      },
      watchAbort.signal,
    )
    .catch(() => undefined);
  void client
    .watch<{ status?: { conditions?: Array<{ type: string; status: string }> } }>(
      `/api/v1/namespaces/${namespace.name}/pods`,
      { labelSelector: "gpufleet.io/model-deployment=sleepy" },
      (event) => {
        if (event.object?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"))
          seen.podReady ??= Date.now();
      },
      watchAbort.signal,
    )
    .catch(() => undefined);
}, 300_000);

afterAll(async () => {
  watchAbort.abort();
  await gateway?.stop(1_000);
  await fleet?.stop();
  await operator?.stop();
  await namespace?.delete();
  client.close();
});

describe("scale from zero through the gateway", () => {
  it("wakes a model at zero on its first request and answers that request from the new pod", async () => {
    await waitFor(async () => condition(await read(), "Ready")?.reason === "Idle", {
      timeoutMs: 60_000,
      description: "sleepy Idle at zero",
    });
    expect((await read()).spec.replicas).toBe(0);
    await waitFor(async () => gateway.fleet.route("sleepy-model") !== undefined, {
      timeoutMs: 10_000,
      description: "gateway knows sleepy-model",
    });
    const sent = Date.now();
    const response = await fetch(`http://127.0.0.1:${gateway.port}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "sleepy-model",
        messages: [{ role: "user", content: "wake up" }],
        max_tokens: 8,
        stream: true,
      }),
    });
    expect(response.status).toBe(200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    let text = "";
    let firstTokenAt: number | undefined;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      firstTokenAt ??= Date.now();
      text += Buffer.from(value).toString();
    }
    expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
    expect(Number(response.headers.get("x-gpufleet-held-ms"))).toBeGreaterThan(MODEL_LOAD_MS - 500);
    expect(seen.replicas1).toBeDefined();
    expect(seen.podReady).toBeDefined();
    const operatorMs = (seen.replicas1 as number) - sent;
    const podStartMs = (seen.podReady as number) - (seen.replicas1 as number);
    const loadMs = (firstTokenAt as number) - (seen.podReady as number);
    process.stdout.write(
      `[scale-from-zero] first token after ${((firstTokenAt as number) - sent) / 1000} s: operator ${operatorMs / 1000} s, pod start ${podStartMs / 1000} s, model load + first token ${loadMs / 1000} s (simulated load ${MODEL_LOAD_MS / 1000} s)\n`,
    );
    // The wake is the informer event's doing, not the next autoscaler tick.
    expect(operatorMs).toBeLessThan(5_000);
    expect(loadMs).toBeGreaterThanOrEqual(MODEL_LOAD_MS - 500);
  }, 120_000);

  it("goes back to zero after scaleToZeroIdleSeconds without a request", async () => {
    const idleSince = Date.now();
    await waitFor(
      async () => (await read()).spec.replicas === 0 && condition(await read(), "Ready")?.reason === "Idle",
      {
        timeoutMs: (IDLE_SECONDS + 60) * 1000,
        intervalMs: 1_000,
        description: "sleepy back to zero",
      },
    );
    const seconds = (Date.now() - idleSince) / 1000;
    process.stdout.write(`[scale-from-zero] back to zero ${seconds} s after the last answer\n`);
    expect(seconds).toBeGreaterThan(IDLE_SECONDS - 15);
  }, 200_000);
});
