/**
 * The gateway end to end on the local cluster: the operator, simulated engines on the KWOK pods' IPs,
 * and two gateway replicas running with exactly the chart's RBAC (its ServiceAccount's own token).
 * Requests reach the pods of the ModelDeployment whose model they name; unknown models get 404; both
 * replicas answer the same; a pod killed mid-stream ends the client's stream with an error event; a
 * request held for a model with no ready pod is reported in the replica's demand annotation.
 */
import { CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseGatewayDemand } from "../operator/api/gateway-demand.js";
import type { RunningOperator } from "../operator/operator.js";
import { KubeClient, type KubeObject } from "../operator/runtime/kube-client.js";
import { loadGatewayConfig } from "../gateway/config.js";
import { startGateway, type Gateway } from "../gateway/gateway.js";
import { PICK_REASONS } from "../gateway/routing/types.js";
import { MANAGED_BY_SELECTOR, SimFleet } from "../sim/engine/fleet.js";
import { applyChartTemplates, registerChartKinds } from "./support/chart-objects.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import {
  condition,
  modelDeploymentObject,
  readModelDeployment,
  startTestOperator,
} from "./support/operator.js";
import { serviceAccountKubeconfig } from "./support/serviceaccount-kubeconfig.js";
import { loopbackGatewayEnv } from "./support/gateway.js";

registerChartKinds();

const kubeConfig = testKubeConfig();
const admin = new KubeClient(kubeConfig);
const core = kubeConfig.makeApiClient(CoreV1Api);
let namespace: TestNamespace;
let operator: RunningOperator;
let fleet: SimFleet;
const gateways: Gateway[] = [];

function spec(model: string, replicas: number) {
  return {
    model: {
      name: model,
      source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } },
      maxContextLength: 8192,
    },
    engine: { kind: "vllm" },
    gpu: { products: ["NVIDIA-L4"] },
    replicas,
  };
}

/** The chart's gateway RBAC for this namespace, applied as the release `gf` in it would apply it. */
async function applyChartGatewayRbac(ns: string): Promise<string> {
  const objects = await applyChartTemplates({
    kubeConfig,
    admin,
    namespace: ns,
    release: "gf",
    set: `watchNamespaces={${ns}}`,
    templates: ["gateway-serviceaccount.yaml", "gateway-rbac.yaml"],
  });
  expect(objects.map((o) => o.kind).sort()).toEqual(["Role", "RoleBinding", "ServiceAccount"]);
  return "gf-gpufleet-gateway";
}

async function deploy(name: string, model: string, replicas: number): Promise<void> {
  await admin.apply(modelDeploymentObject(namespace.name, name, spec(model, replicas)), {
    fieldManager: "platform-team",
  });
  if (replicas === 0) return;
  await waitFor(
    async () => condition(await readModelDeployment(admin, namespace.name, name), "Ready")?.status === "True",
    {
      timeoutMs: 60_000,
      description: `${name} Ready`,
    },
  );
}

/** Names of the running pods of a ModelDeployment (by the operator's label; the gateway checks owners itself). */
async function podsOf(name: string): Promise<string[]> {
  const pods = await core.listNamespacedPod({
    namespace: namespace.name,
    labelSelector: `gpufleet.io/model-deployment=${name}`,
  });
  return pods.items.filter((p: V1Pod) => !p.metadata?.deletionTimestamp).map((p) => p.metadata?.name ?? "");
}

const url = (gateway: Gateway, path: string) => `http://127.0.0.1:${gateway.port}${path}`;
const post = (gateway: Gateway, path: string, body: unknown, signal?: AbortSignal) =>
  fetch(url(gateway, path), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "gateway");
  operator = await startTestOperator(kubeConfig, namespace.name);
  fleet = new SimFleet({
    listPods: async () =>
      (await core.listNamespacedPod({ namespace: namespace.name, labelSelector: MANAGED_BY_SELECTOR })).items,
    pollIntervalMs: 250,
    loadDelayMs: 500,
  });
  fleet.start();
  const serviceAccountName = await applyChartGatewayRbac(namespace.name);
  for (const replica of ["gateway-a", "gateway-b"]) {
    const identity = await serviceAccountKubeconfig(kubeConfig, namespace.name, serviceAccountName);
    const config = loadGatewayConfig(loopbackGatewayEnv(namespace.name, replica, {
      GPUFLEET_GATEWAY_SCRAPE_INTERVAL_MS: "1000",
    }));
    gateways.push(
      await startGateway(new KubeClient(identity.kubeConfig, { userAgent: "gpufleet-gateway" }), config),
    );
  }
  await deploy("alpha", "model-alpha", 2);
  await deploy("beta", "model-beta", 1);
}, 300_000);

afterAll(async () => {
  for (const gateway of gateways) await gateway.stop(1_000);
  await fleet?.stop();
  await operator?.stop();
  await namespace?.delete();
  admin.close();
});

describe("the gateway on the local cluster", () => {
  it("routes each model to its ModelDeployment's pods, the same through either replica, and lists the models", async () => {
    const alphaPods = await podsOf("alpha");
    const betaPods = await podsOf("beta");
    expect(alphaPods).toHaveLength(2);
    expect(betaPods).toHaveLength(1);
    for (const gateway of gateways) {
      // Routable once the engines answered the gateway's own /health check.
      await waitFor(
        async () =>
          (await post(gateway, "/v1/completions", { model: "model-beta", prompt: "ping", max_tokens: 1 }))
            .status === 200,
        {
          timeoutMs: 30_000,
          description: "model-beta served through the gateway",
        },
      );
      const models = (await (await fetch(url(gateway, "/v1/models"))).json()) as {
        data: Array<{ id: string }>;
      };
      expect(models.data.map((m) => m.id)).toEqual(["model-alpha", "model-beta"]);
      const seenAlpha = new Set<string>();
      for (let i = 0; i < 8; i++) {
        const response = await post(gateway, "/v1/chat/completions", {
          model: "model-alpha",
          messages: [{ role: "user", content: `question ${i}: ${"context ".repeat(40)}` }],
          max_tokens: 4,
        });
        expect(response.status).toBe(200);
        const body = (await response.json()) as { model: string };
        expect(body.model).toBe("model-alpha");
        const pod = response.headers.get("x-gpufleet-endpoint") ?? "";
        expect(alphaPods).toContain(pod);
        expect(PICK_REASONS).toContain(response.headers.get("x-gpufleet-pick-reason"));
        seenAlpha.add(pod);
      }
      const beta = await post(gateway, "/v1/completions", {
        model: "model-beta",
        prompt: "hello",
        max_tokens: 3,
        stream: true,
      });
      expect(beta.status).toBe(200);
      expect(betaPods).toContain(beta.headers.get("x-gpufleet-endpoint"));
      expect((await beta.text()).trimEnd().endsWith("data: [DONE]")).toBe(true);
    }
  });

  it("answers an unknown model with 404 in OpenAI's error shape on both replicas", async () => {
    for (const gateway of gateways) {
      const response = await post(gateway, "/v1/completions", { model: "no-such-model", prompt: "x" });
      expect(response.status).toBe(404);
      expect(await response.json()).toEqual({
        error: {
          message: "The model `no-such-model` does not exist.",
          type: "invalid_request_error",
          param: null,
          code: "model_not_found",
        },
      });
    }
  });

  it("ends the client's stream with an error event when the pod serving it is killed mid-stream", async () => {
    const gateway = gateways[0]!;
    const response = await post(gateway, "/v1/completions", {
      model: "model-beta",
      prompt: "write a long story",
      max_tokens: 3000,
      stream: true,
    });
    expect(response.status).toBe(200);
    const pod = response.headers.get("x-gpufleet-endpoint") ?? "";
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    let text = "";
    while (!text.includes("\n\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    const engine = fleet.servers().get(`${namespace.name}/${pod}`);
    expect(engine, `engine of ${pod}`).toBeDefined();
    const killedAt = Date.now();
    await engine!.close(); // the engine process dies: its connections are reset
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    expect(Date.now() - killedAt).toBeLessThan(5_000);
    const events = text.split("\n\n").filter(Boolean);
    expect(events.at(-1)).toMatch(/^data: \{"error":\{.*"code":"upstream_disconnected"/);
    expect(events.slice(0, -1).every((e) => e.startsWith("data: {") && JSON.parse(e.slice(6)))).toBe(true);
  });

  it("holds a request for a model with no ready pod and reports it in its own demand annotation, then clears it", async () => {
    await deploy("gamma", "model-gamma", 0);
    const gateway = gateways[1]!;
    await waitFor(
      async () =>
        (
          (await (await fetch(url(gateway, "/v1/models"))).json()) as { data: Array<{ id: string }> }
        ).data.some((m) => m.id === "model-gamma"),
      {
        timeoutMs: 10_000,
        description: "model-gamma known to the gateway",
      },
    );
    const abort = new AbortController();
    const held = post(
      gateway,
      "/v1/completions",
      { model: "model-gamma", prompt: "anyone?", max_tokens: 2 },
      abort.signal,
    ).catch(() => "aborted");
    const demand = await waitFor(
      async () => {
        const md = await admin.get<KubeObject>(
          `/apis/gpufleet.io/v1alpha1/namespaces/${namespace.name}/modeldeployments/gamma`,
        );
        const parsed = parseGatewayDemand(md.metadata?.annotations as Record<string, string>, Date.now());
        return parsed.held > 0 ? parsed : undefined;
      },
      { timeoutMs: 10_000, description: "demand annotation with held > 0" },
    );
    expect(demand.entries.map((e) => [e.replica, e.held])).toEqual([["gateway-b", 1]]);
    abort.abort();
    expect(await held).toBe("aborted");
    await waitFor(
      async () => {
        const md = await admin.get<KubeObject>(
          `/apis/gpufleet.io/v1alpha1/namespaces/${namespace.name}/modeldeployments/gamma`,
        );
        const entry = parseGatewayDemand(
          md.metadata?.annotations as Record<string, string>,
          Date.now(),
        ).entries.find((e) => e.replica === "gateway-b");
        return entry?.held === 0;
      },
      { timeoutMs: 10_000, description: "demand annotation back to held 0" },
    );
  });

  it("serves /healthz, /readyz and /metrics with a pick counter per reason on the ops port", async () => {
    const gateway = gateways[0]!;
    expect((await fetch(`http://127.0.0.1:${gateway.opsPort}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${gateway.opsPort}/metrics`)).text();
    expect(metrics).toMatch(/gpufleet_gateway_picks_total\{reason="[a-z-]+"\} [1-9]/);
    expect(metrics).toMatch(/gpufleet_gateway_requests_total\{model="model-alpha",code="200"\} [1-9]/);
    expect(metrics).toMatch(/gpufleet_gateway_upstream_errors_total\{kind="disconnected"\} 1/);
  });
});
