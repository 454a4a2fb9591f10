/**
 * LoRA adapters and spill-over across GPU products on the local cluster, with the operator, simulated
 * vLLM engines on the KWOK pods and the gateway:
 * - an adapter is added to and removed from a running ModelDeployment: the engines load and unload it
 *   through vLLM's runtime endpoints, the pods are not restarted, the gateway routes the adapter's name
 *   to them, and AdaptersReady, status.adapters and Events say what happened;
 * - the H100 pool is filled with other work: the replicas of a ModelDeployment that prefers H100 land on
 *   A100 as a second Deployment with A100's plan (SpilledOver, status.replicasByProduct, Events); the
 *   operator counts the other work's pods, so no return is tried while it holds the pool; the work goes
 *   away and the replicas come back to H100, make before break.
 */
import { CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ModelDeployment } from "../operator/api/modeldeployment.js";
import type { RunningOperator } from "../operator/operator.js";
import { KubeClient, type KubeObject } from "../operator/runtime/kube-client.js";
import { loadGatewayConfig } from "../gateway/config.js";
import { startGateway, type Gateway } from "../gateway/gateway.js";
import { MANAGED_BY_SELECTOR, SimFleet } from "../sim/engine/fleet.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { condition, modelDeploymentObject, modelDeploymentPath, readModelDeployment, startTestOperator } from "./support/operator.js";
import { loopbackGatewayEnv } from "./support/gateway.js";

const H100 = "NVIDIA-H100-80GB-HBM3";
const A100 = "NVIDIA-A100-SXM4-80GB";
const kubeConfig = testKubeConfig();
const admin = new KubeClient(kubeConfig);
const core = kubeConfig.makeApiClient(CoreV1Api);
let namespace: TestNamespace;
let operator: RunningOperator;
let fleet: SimFleet;
let gateway: Gateway;

type EventsV1 = KubeObject & { reason?: string; note?: string; regarding?: { name?: string; kind?: string } };

async function events(name: string): Promise<{ reason: string; note: string }[]> {
  const list = await admin.list<EventsV1>(`/apis/events.k8s.io/v1/namespaces/${namespace.name}/events`);
  return list.items
    .filter((e) => e.regarding?.kind === "ModelDeployment" && e.regarding.name === name)
    .map((e) => ({ reason: e.reason ?? "", note: e.note ?? "" }));
}

async function livePods(name: string): Promise<V1Pod[]> {
  const pods = await core.listNamespacedPod({ namespace: namespace.name, labelSelector: `gpufleet.io/model-deployment=${name}` });
  return pods.items.filter((p) => !p.metadata?.deletionTimestamp);
}

const ask = (model: string) =>
  fetch(`http://127.0.0.1:${gateway.port}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, prompt: "hello", max_tokens: 2 }),
  });

async function patchSpec(name: string, spec: Record<string, unknown>): Promise<void> {
  await admin.patch(modelDeploymentPath(namespace.name, name), { spec }, "application/merge-patch+json", { fieldManager: "platform-team" });
}

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "lora-spill");
  operator = await startTestOperator(kubeConfig, namespace.name, { GPUFLEET_SPILL_RETURN_BACKOFF_SECONDS: "2" });
  fleet = new SimFleet({
    listPods: async () => (await core.listNamespacedPod({ namespace: namespace.name, labelSelector: MANAGED_BY_SELECTOR })).items,
    pollIntervalMs: 250,
    loadDelayMs: 300,
  });
  fleet.start();
  gateway = await startGateway(
    new KubeClient(kubeConfig, { userAgent: "gpufleet-gateway" }),
    loadGatewayConfig(loopbackGatewayEnv(namespace.name, "gateway-lora", {
      GPUFLEET_GATEWAY_SCRAPE_INTERVAL_MS: "1000",
      GPUFLEET_GATEWAY_DEMAND_WRITES: "false",
    })),
  );
}, 120_000);

afterAll(async () => {
  await gateway?.stop(500);
  await fleet?.stop();
  await operator?.stop();
  await namespace?.delete();
  admin.close();
});

describe("LoRA adapters on a running ModelDeployment", () => {
  it("adds and removes an adapter live: engines load and unload it, no pod restarts, the gateway routes its name", async () => {
    const adapter = (name: string) => ({ name, source: { huggingFace: { repo: `example-org/llama-3.1-8b-${name}-lora` } }, rank: 16 });
    await admin.apply(
      modelDeploymentObject(namespace.name, "lora", {
        model: { name: "lora-base", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 },
        gpu: { products: ["NVIDIA-L4"] },
        replicas: 2,
        lora: { maxLoras: 2, maxRank: 16 },
        adapters: [adapter("sql")],
      }),
      { fieldManager: "platform-team" },
    );
    const ready = await waitFor(
      async () => {
        const md = await readModelDeployment(admin, namespace.name, "lora");
        return condition(md, "Ready")?.status === "True" && condition(md, "AdaptersReady")?.status === "True" ? md : undefined;
      },
      { timeoutMs: 60_000, description: "lora Ready with its adapter loaded" },
    );
    expect(ready.status?.adapters).toEqual([{ name: "sql", loadedReplicas: 2 }]);
    const podUids = (await livePods("lora")).map((p) => p.metadata?.uid).sort();
    expect(podUids).toHaveLength(2);
    const generation = (await readDeployment("lora")).metadata?.generation;

    // Through the gateway by the adapter's name (the gateway polls which pods list it).
    const sql = await waitFor(async () => ((await ask("sql")).status === 200 ? true : undefined), { timeoutMs: 15_000, description: "sql served through the gateway" });
    expect(sql).toBe(true);
    const models = (await (await fetch(`http://127.0.0.1:${gateway.port}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(expect.arrayContaining(["lora-base", "sql"]));

    // Add one: loaded on both running pods, no restart.
    await patchSpec("lora", { adapters: [adapter("sql"), adapter("chat-de")] });
    await waitFor(
      async () => {
        const md = await readModelDeployment(admin, namespace.name, "lora");
        const loaded = md.status?.adapters?.find((a) => a.name === "chat-de")?.loadedReplicas;
        return loaded === 2 && condition(md, "AdaptersReady")?.status === "True";
      },
      { timeoutMs: 30_000, description: "chat-de loaded on both replicas" },
    );
    const answer = await waitFor(async () => {
      const r = await ask("chat-de");
      return r.status === 200 ? ((await r.json()) as { model: string }) : undefined;
    }, { timeoutMs: 15_000, description: "chat-de served through the gateway" });
    expect(answer.model).toBe("chat-de");
    expect((await events("lora")).some((e) => e.reason === "AdapterLoaded" && e.note.includes("chat-de"))).toBe(true);

    // Remove one: unloaded, the gateway stops routing it.
    await patchSpec("lora", { adapters: [adapter("chat-de")] });
    await waitFor(async () => ((await ask("sql")).status === 404 ? true : undefined), { timeoutMs: 30_000, description: "sql gone at the gateway" });
    await waitFor(
      async () => (await events("lora")).some((e) => e.reason === "AdapterUnloaded" && e.note.includes("sql")),
      { timeoutMs: 15_000, description: "AdapterUnloaded event" },
    );
    for (const server of fleet.servers().values()) if (server.options.modelName === "lora-base") expect(server.adapters?.has("sql")).toBe(false);

    // Same pods and the same Deployment generation throughout: nothing was restarted.
    expect((await livePods("lora")).map((p) => p.metadata?.uid).sort()).toEqual(podUids);
    expect((await readDeployment("lora")).metadata?.generation).toBe(generation);
  }, 120_000);
});

async function readDeployment(name: string): Promise<KubeObject & { spec?: { replicas?: number } }> {
  return admin.get(`/apis/apps/v1/namespaces/${namespace.name}/deployments/${name}`);
}

function filler(name: string): V1Pod {
  return {
    metadata: { name, labels: { app: "other-work" } },
    spec: {
      nodeSelector: { "nvidia.com/gpu.product": H100 },
      tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
      containers: [{ name: "train", image: "example.invalid/trainer:1", resources: { limits: { "nvidia.com/gpu": "8" } } }],
    },
  };
}

describe("spill-over across GPU products", () => {
  it("lands on A100 while the H100 pool is full of other work and comes back when it frees up", async () => {
    // Other work takes every H100 GPU (2 nodes x 8).
    for (const name of ["train-0", "train-1"]) await core.createNamespacedPod({ namespace: namespace.name, body: filler(name) });
    await waitFor(
      async () => {
        const pods = await core.listNamespacedPod({ namespace: namespace.name, labelSelector: "app=other-work" });
        return pods.items.filter((p) => p.spec?.nodeName).length === 2;
      },
      { timeoutMs: 30_000, description: "the other work on both H100 nodes" },
    );

    await admin.apply(
      modelDeploymentObject(namespace.name, "spill", {
        model: { name: "spill-model", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 },
        gpu: { products: [H100, A100] },
        replicas: 3,
      }),
      { fieldManager: "platform-team" },
    );
    const spilled = await waitFor(
      async () => {
        const md = await readModelDeployment(admin, namespace.name, "spill");
        const a100 = md.status?.replicasByProduct?.find((r) => r.gpuProduct === A100);
        return condition(md, "SpilledOver")?.status === "True" && a100?.readyReplicas === 3 && condition(md, "Ready")?.status === "True" ? md : undefined;
      },
      { timeoutMs: 60_000, description: "3 replicas ready on A100, SpilledOver" },
    );
    const byProduct = new Map((spilled.status?.replicasByProduct ?? []).map((r) => [r.gpuProduct, r]));
    // Nothing runs on H100 (a return may be being tried there; it cannot be scheduled while the work holds the pool).
    expect(byProduct.get(H100)?.readyReplicas).toBe(0);
    expect(byProduct.get(A100)).toMatchObject({ replicas: 3, workload: "spill-nvidia-a100-sxm4-80gb", tensorParallelism: 1 });
    expect(byProduct.get(A100)?.kvCacheTokensPerReplica).toBeGreaterThan(8192);
    expect(condition(spilled, "SpilledOver")?.message).toContain(A100);
    // The second Deployment is the ModelDeployment's, by uid.
    const second = await readDeployment("spill-nvidia-a100-sxm4-80gb");
    expect(second.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "ModelDeployment", uid: spilled.metadata.uid, controller: true });
    expect((await livePods("spill")).every((p) => p.metadata?.annotations?.["gpufleet.io/gpu-product"] === A100 || !p.spec?.nodeName)).toBe(true);
    await waitFor(async () => ((await ask("spill-model")).status === 200 ? true : undefined), { timeoutMs: 15_000, description: "served from A100 through the gateway" });
    expect((await events("spill")).map((e) => e.reason)).toContain("SpilledOver");

    // The operator counts the other work's pods on the H100 nodes (it may list pods in every namespace here):
    // a status written with all 3 A100 replicas ready, so with a return possible, says H100 has no free GPU
    // and asks nothing of H100; no return was tried (before, one was, and the scheduler refused it).
    const seen = await waitFor(
      async () => {
        const md = await readModelDeployment(admin, namespace.name, "spill");
        const a100 = md.status?.replicasByProduct?.find((r) => r.gpuProduct === A100);
        return a100?.readyReplicas === 3 && /\(0 of \d+ GPU\(s\) free, counting every pod on its nodes\)/.test(condition(md, "SpilledOver")?.message ?? "") ? md : undefined;
      },
      { timeoutMs: 30_000, description: "SpilledOver says the other work holds every H100 GPU" },
    );
    expect(seen.status?.replicasByProduct?.find((r) => r.gpuProduct === H100)?.replicas).toBe(0);
    expect((await events("spill")).map((e) => e.reason)).not.toEqual(expect.arrayContaining(["SpillReturning"]));
    expect((await events("spill")).map((e) => e.reason)).not.toEqual(expect.arrayContaining(["SpillReturnFailed"]));

    // The other work ends: replicas return to H100, one at a time, each started before one on A100 goes.
    for (const name of ["train-0", "train-1"]) await core.deleteNamespacedPod({ namespace: namespace.name, name, gracePeriodSeconds: 0 });
    let fewestReady = 3;
    const back = await waitFor(
      async () => {
        const md: ModelDeployment = await readModelDeployment(admin, namespace.name, "spill");
        fewestReady = Math.min(fewestReady, md.status?.readyReplicas ?? 0);
        const h100 = md.status?.replicasByProduct?.find((r) => r.gpuProduct === H100);
        // The last A100 replica counts while its pod terminates; done when only the H100 ones are left.
        return condition(md, "SpilledOver")?.status === "False" && (h100?.readyReplicas ?? md.status?.readyReplicas) === 3 && md.status?.readyReplicas === 3
          ? md
          : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250, description: "all 3 replicas back on H100" },
    );
    expect(back.status?.readyReplicas).toBe(3);
    expect(fewestReady).toBeGreaterThanOrEqual(2);
    const reasons = (await events("spill")).map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(["SpillReturning", "SpillReturned"]));
    const onNodes = (await livePods("spill")).map((p) => p.spec?.nodeName ?? "");
    expect(onNodes).toHaveLength(3);
    for (const node of onNodes) expect(node).toMatch(/h100/);
  }, 180_000);
});
