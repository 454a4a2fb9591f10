import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ModelDeployment } from "../operator/api/modeldeployment.js";
import { findModel } from "../operator/planner/models.js";
import type { RunningOperator } from "../operator/operator.js";
import { KubeClient } from "../operator/runtime/kube-client.js";
import { collectedConfigs, startSimHub, type SimHub } from "../sim/hub/server.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import {
  condition,
  modelDeploymentObject,
  readModelDeployment,
  startTestOperator,
} from "./support/operator.js";

// The operator sizes models the catalogue never knew from their own config.json, read from a
// Hub-shaped server on loopback; Hub outages, private repos and revision changes show as conditions
// and re-plans, and models the catalogue knows keep being served meanwhile.

const H100 = "NVIDIA-H100-80GB-HBM3";
const kubeConfig = testKubeConfig();
const client = new KubeClient(kubeConfig);
let namespace: TestNamespace;
let operator: RunningOperator;
let hub: SimHub;

const NEW_MODELS = ["openai/gpt-oss-20b", "google/gemma-3-27b-it", "Qwen/Qwen3-30B-A3B"] as const;

function spec(repo: string, extra: Record<string, unknown> = {}) {
  return {
    model: {
      name: repo.split("/")[1]!.toLowerCase(),
      source: { huggingFace: { repo, ...extra } },
      maxContextLength: 8192,
    },
    gpu: { products: [H100] },
    replicas: 1,
  };
}

async function apply(name: string, body: Record<string, unknown>): Promise<void> {
  await client.apply(modelDeploymentObject(namespace.name, name, body), {
    fieldManager: "platform-team",
    force: true,
  });
}

async function readyPlan(name: string, description: string, timeoutMs = 60_000): Promise<ModelDeployment> {
  return waitFor(
    async () => {
      const md = await readModelDeployment(client, namespace.name, name);
      return condition(md, "Ready")?.status === "True" && md.status?.plan ? md : undefined;
    },
    { timeoutMs, description },
  );
}

async function notReadyBecause(name: string, reason: string, timeoutMs = 30_000): Promise<ModelDeployment> {
  return waitFor(
    async () => {
      const md = await readModelDeployment(client, namespace.name, name);
      const ready = condition(md, "Ready");
      return ready?.status === "False" && ready.reason === reason ? md : undefined;
    },
    { timeoutMs, description: `${name} not Ready with reason ${reason}` },
  );
}

beforeAll(async () => {
  for (const repo of NEW_MODELS)
    expect(findModel(repo), `${repo} must be unknown to the catalogue`).toBeUndefined();
  hub = await startSimHub({
    indexTotals: new Map([["google/gemma-3-27b-it", 27_432_406_640 * 2]]),
    privateRepos: new Map([["Qwen/Qwen3-32B", "not-given-to-the-operator"]]),
  });
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "hub-models");
  operator = await startTestOperator(kubeConfig, namespace.name, {
    GPUFLEET_HF_ENDPOINT: hub.url,
    GPUFLEET_HF_TIMEOUT_SECONDS: "1",
    GPUFLEET_TENANT_TOKENS: "true",
  });
}, 120_000);

afterAll(async () => {
  await operator?.stop();
  await namespace?.delete();
  await hub?.close();
  client.close();
});

describe("models sized from their own config.json", () => {
  it("deploys three models the catalogue never knew, each planned from its config", async () => {
    for (const [index, repo] of NEW_MODELS.entries()) await apply(`new-${index}`, spec(repo));
    const plans = await Promise.all(
      NEW_MODELS.map((repo, index) => readyPlan(`new-${index}`, `${repo} Ready`)),
    );
    // gpt-oss-20b (13 GiB of MXFP4) and Qwen3-30B-A3B (57 GiB bf16) fit one H100; Gemma 3 27B too.
    for (const md of plans)
      expect(md.status?.plan).toMatchObject({ gpuProduct: H100, gpusPerReplica: 1, maxContextLength: 8192 });
    // KV tokens follow each model's own attention: gpt-oss caches 48 KiB a token, Gemma 3 27B 560 KiB (70 layer slots).
    const tokens = plans.map((md) => md.status!.plan!.kvCacheTokensPerReplica);
    expect(tokens[0]! / tokens[1]!).toBeGreaterThan(8);
    expect(hub.requests).toContain("GET /openai/gpt-oss-20b/resolve/main/config.json");
  }, 120_000);

  it("re-plans when the revision changes", async () => {
    const qwen3 = collectedConfigs().get("Qwen/Qwen3-30B-A3B") as Record<string, unknown>;
    // A revision with half the KV heads: twice the KV-cache tokens in the same memory.
    hub.setRevision("Qwen/Qwen3-30B-A3B", "halved-kv", { ...qwen3, num_key_value_heads: 2 });
    const before = (await readModelDeployment(client, namespace.name, "new-2")).status!.plan!
      .kvCacheTokensPerReplica;
    await apply("new-2", spec("Qwen/Qwen3-30B-A3B", { revision: "halved-kv" }));
    const after = await waitFor(
      async () => {
        const md = await readModelDeployment(client, namespace.name, "new-2");
        const tokens = md.status?.plan?.kvCacheTokensPerReplica ?? 0;
        return tokens > before * 1.9 ? tokens : undefined;
      },
      { timeoutMs: 30_000, description: "new-2 re-planned at revision halved-kv" },
    );
    expect(after / before).toBeCloseTo(2, 1);
    expect(hub.requests).toContain("GET /Qwen/Qwen3-30B-A3B/resolve/halved-kv/config.json");
  }, 60_000);

  it("says a private repo cannot be read without a token", async () => {
    await apply("private", spec("Qwen/Qwen3-32B"));
    const md = await notReadyBecause("private", "ModelConfigUnauthorized");
    expect(condition(md, "Ready")?.message).toMatch(
      /HTTP 401: the repository is private or gated and no token was given/,
    );
    expect(condition(md, "Ready")?.message).toMatch(/tokenSecretRef/);
  }, 60_000);

  it("reads a private repo with the ModelDeployment's own token Secret, and names a missing one", async () => {
    await client.apply(
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "hf-token", namespace: namespace.name },
        stringData: { token: "not-given-to-the-operator" },
      } as never,
      { fieldManager: "platform-team", force: true },
    );
    await apply("private-token", spec("Qwen/Qwen3-32B", { tokenSecretRef: { name: "hf-token", key: "token" } }));
    const md = await readyPlan("private-token", "Qwen3-32B Ready with its token Secret");
    expect(md.status?.plan?.gpuProduct).toBe(H100);
    // The token never reaches status.
    expect(JSON.stringify(md.status)).not.toContain("not-given-to-the-operator");
    await apply("missing-token", spec("Qwen/Qwen3-32B", { tokenSecretRef: { name: "absent", key: "token" } }));
    const missing = await notReadyBecause("missing-token", "ModelConfigNotFound");
    expect(condition(missing, "Ready")?.message).toMatch(/token Secret for Qwen\/Qwen3-32B: Secret .*\/absent not found/);
  }, 60_000);

  it("sizes a pvc model from the config.json in a ConfigMap, and says when that ConfigMap is missing", async () => {
    const qwen = collectedConfigs().get("Qwen/Qwen3-8B");
    await client.apply(
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "custom-config", namespace: namespace.name },
        data: { "config.json": JSON.stringify(qwen) },
      } as never,
      { fieldManager: "platform-team", force: true },
    );
    const pvc = (configMap: string) => ({
      model: {
        name: "custom",
        source: { pvc: { claimName: "weights", path: "/models/in-house-8b" }, configMap: { name: configMap } },
        maxContextLength: 8192,
      },
      gpu: { products: [H100] },
      replicas: 1,
    });
    await apply("from-configmap", pvc("custom-config"));
    // Planned (no PersistentVolumeClaim exists here, so its pod never becomes Ready: the plan is the point).
    const md = await waitFor(
      async () => {
        const current = await readModelDeployment(client, namespace.name, "from-configmap");
        return current.status?.plan ? current : undefined;
      },
      { timeoutMs: 30_000, description: "pvc model planned from its ConfigMap" },
    );
    expect(md.status?.plan).toMatchObject({ gpuProduct: H100, gpusPerReplica: 1 });
    expect(md.status?.plan?.maxContextLength).toBe(8192);
    expect(condition(md, "Ready")?.reason).not.toMatch(/^ModelConfig|UnknownModel/);
    await apply("no-configmap", pvc("not-there"));
    const missing = await notReadyBecause("no-configmap", "ModelConfigNotFound");
    expect(condition(missing, "Ready")?.message).toMatch(/ConfigMap .*\/not-there not found/);
  }, 60_000);

  it("names the field of a config it cannot size", async () => {
    // A constructed config (not a published file): DeepSeek-V3's plus the indexer field of V3.2 / GLM-5.
    const v3 = collectedConfigs().get("deepseek-ai/DeepSeek-V3") as Record<string, unknown>;
    hub.setRevision("example/dsa-indexer", "main", { ...v3, index_topk: 2048 });
    await apply("dsa", spec("example/dsa-indexer"));
    const md = await notReadyBecause("dsa", "ModelConfigInvalid");
    expect(condition(md, "Ready")?.message).toMatch(/config.json field index_topk/);
  }, 60_000);

  it("while the Hub is down: a new model waits with a condition and retries, catalogue models still deploy, and it recovers", async () => {
    hub.setMode("down");
    await apply("during-outage", spec("Qwen/Qwen3-8B"));
    await apply("catalogued", {
      model: {
        name: "llama",
        source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } },
        maxContextLength: 8192,
      },
      gpu: { products: [H100] },
      replicas: 1,
    });
    const waiting = await notReadyBecause("during-outage", "ModelConfigUnavailable");
    expect(condition(waiting, "Ready")?.message).toMatch(/HTTP 503; retrying in \d+ s/);
    const catalogued = await readyPlan("catalogued", "catalogued model Ready while the Hub is down");
    expect(catalogued.status?.plan?.gpuProduct).toBe(H100);
    // The three models planned before the outage keep their workloads.
    for (const index of [0, 1, 2])
      expect(
        condition(await readModelDeployment(client, namespace.name, `new-${index}`), "Ready")?.status,
      ).toBe("True");
    const readsDuringOutage = hub.requests.filter((r) => r.includes("/Qwen/Qwen3-8B/")).length;
    hub.setMode("up");
    const recovered = await readyPlan("during-outage", "Qwen3-8B Ready after the Hub came back", 60_000);
    expect(recovered.status?.plan?.gpuProduct).toBe(H100);
    expect(readsDuringOutage).toBeGreaterThanOrEqual(1);
  }, 120_000);

  it("while the Hub is slow: reads time out into the same condition", async () => {
    hub.setMode("slow");
    await apply("slow", spec("Qwen/Qwen3-32B-FP8-not-served"));
    // An unknown repo on a slow Hub: the 1 s timeout fires before the 404 would come back.
    const md = await notReadyBecause("slow", "ModelConfigUnavailable");
    expect(condition(md, "Ready")?.message).toMatch(/timed out after 1000 ms/);
    hub.setMode("up");
  }, 60_000);
});
