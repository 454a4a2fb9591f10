import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderInferencePool } from "../operator/controller/inference-pool.js";
import type { RunningOperator } from "../operator/operator.js";
import { KubeApiError, KubeClient, type KubeObject } from "../operator/runtime/kube-client.js";
import { ensureInferencePoolCrd, ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { condition, modelDeploymentObject, readModelDeployment, startTestOperator } from "./support/operator.js";

// InferencePool (Gateway API Inference Extension) against the real API server with the real CRD from its
// pinned Go module: absent at first (the operator reconciles as usual, writes no pool, fails nothing),
// installed later (a recheck finds it and every ModelDeployment gets its pool, accepted by the CRD's
// schema). The CRD is removed afterwards so the other files see the cluster without it.

const kubeConfig = testKubeConfig();
const client = new KubeClient(kubeConfig);
const CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/inferencepools.inference.networking.k8s.io";
let namespace: TestNamespace;
let operator: RunningOperator;

const poolPath = (name: string) => `/apis/inference.networking.k8s.io/v1/namespaces/${namespace.name}/inferencepools/${name}`;
const llama8b = {
  model: { name: "llama-3.1-8b-instruct", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 },
  gpu: { products: ["NVIDIA-L4"] },
  replicas: 1,
};

async function metricValue(name: string): Promise<number> {
  const text = await operator.metrics.registry.getSingleMetricAsString(name);
  return text
    .split("\n")
    .filter((line) => line.startsWith(name))
    .reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0);
}

async function removeCrd(): Promise<void> {
  try {
    await client.delete(CRD_PATH);
  } catch (error) {
    if (!(error instanceof KubeApiError && error.isNotFound)) throw error;
  }
  await waitFor(
    async () => {
      try {
        await client.get(CRD_PATH);
        return false;
      } catch (error) {
        return error instanceof KubeApiError && error.isNotFound;
      }
    },
    { timeoutMs: 60_000, description: "InferencePool CRD gone" },
  );
}

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig);
  await removeCrd();
  namespace = await uniqueNamespace(kubeConfig, "infpool");
  operator = await startTestOperator(kubeConfig, namespace.name, { GPUFLEET_INFERENCE_POOL_RECHECK_SECONDS: "2" });
}, 300_000);

afterAll(async () => {
  await operator?.stop();
  await namespace?.delete();
  await removeCrd();
  client.close();
});

describe("InferencePool per ModelDeployment", () => {
  it("without the CRD: the ModelDeployment becomes Ready, no pool is written and no reconcile fails", async () => {
    await client.apply(modelDeploymentObject(namespace.name, "chat", llama8b), { fieldManager: "platform-team", force: true });
    await waitFor(async () => condition(await readModelDeployment(client, namespace.name, "chat"), "Ready")?.status === "True", {
      timeoutMs: 60_000,
      description: "ModelDeployment chat Ready",
    });
    // Several rechecks pass.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    expect(await metricValue("gpufleet_reconcile_errors_total")).toBe(0);
    await expect(client.get("/apis/inference.networking.k8s.io/v1")).rejects.toMatchObject({ statusCode: 404 });
  });

  it("once the CRD is installed: the pool appears, selects the pods, is owned by the ModelDeployment, and the API server accepted it", async () => {
    await ensureInferencePoolCrd(kubeConfig);
    const md = await readModelDeployment(client, namespace.name, "chat");
    const pool = await waitFor(
      async () => {
        try {
          return await client.get<KubeObject & { spec: Record<string, unknown> }>(poolPath("chat"));
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 60_000, description: "InferencePool chat" },
    );
    expect(pool.spec).toMatchObject({
      selector: { matchLabels: { "gpufleet.io/model-deployment": "chat" } },
      targetPorts: [{ number: 8000 }],
      endpointPickerRef: { kind: "Service", name: "chat-epp", port: { number: 9002 }, failureMode: "FailClose" },
    });
    expect(pool.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: "ModelDeployment", name: "chat", uid: md.metadata.uid, controller: true })]);
    const managed = (pool.metadata as { managedFields?: Array<{ manager: string; operation: string }> }).managedFields ?? [];
    expect(managed.map((entry) => `${entry.manager}/${entry.operation}`)).toEqual(["gpufleet/Apply"]);
    // The selector finds the ModelDeployment's pods.
    const pods = await client.list(`/api/v1/namespaces/${namespace.name}/pods`, { labelSelector: "gpufleet.io/model-deployment=chat" });
    expect(pods.items.length).toBe(1);
    expect(await metricValue("gpufleet_reconcile_errors_total")).toBe(0);
  });

  it("the CRD's schema is enforced on what the operator renders: a pool without target ports is refused", async () => {
    const md = await readModelDeployment(client, namespace.name, "chat");
    const pool = renderInferencePool(md) as KubeObject & { spec: Record<string, unknown> };
    await expect(client.apply(pool, { fieldManager: "gpufleet", force: true, dryRun: true })).resolves.toBeDefined();
    const broken = { ...pool, metadata: { ...pool.metadata, name: "broken" }, spec: { ...pool.spec, targetPorts: [] } };
    await expect(client.apply(broken, { fieldManager: "gpufleet", force: true, dryRun: true })).rejects.toMatchObject({ statusCode: 422 });
  });

  it("an annotation points the pool at another endpoint picker", async () => {
    await client.patch(
      `/apis/gpufleet.io/v1alpha1/namespaces/${namespace.name}/modeldeployments/chat`,
      { metadata: { annotations: { "inference.gpufleet.io/endpoint-picker": "shared-epp:9100" } } },
    );
    await waitFor(
      async () => {
        const pool = await client.get<{ spec: { endpointPickerRef: { name: string; port: { number: number } } } }>(poolPath("chat"));
        return pool.spec.endpointPickerRef.name === "shared-epp" && pool.spec.endpointPickerRef.port.number === 9100;
      },
      { timeoutMs: 30_000, description: "pool pointing at shared-epp:9100" },
    );
  });
});
