import type { V1Deployment, V1Node, V1Pod, V1PodDisruptionBudget, V1Service } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningOperator } from "../operator/operator.js";
import { KubeClient, type KubeObject } from "../operator/runtime/kube-client.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { condition, modelDeploymentObject, modelDeploymentPath, readModelDeployment, startTestOperator } from "./support/operator.js";

// The operator against the real control plane: a ModelDeployment becomes a sized, placed, ready workload
// on the right KWOK GPU pool; changes roll out; deletion cascades; what cannot be placed says why.

const H100 = "NVIDIA-H100-80GB-HBM3";
const L4 = "NVIDIA-L4";
const kubeConfig = testKubeConfig();
const client = new KubeClient(kubeConfig);
let namespace: TestNamespace;
let operator: RunningOperator;
let nodesByName: Map<string, V1Node>;

const deploymentPath = (name: string) => `/apis/apps/v1/namespaces/${namespace.name}/deployments/${name}`;
const podsOf = async (name: string) =>
  (await client.list<V1Pod>(`/api/v1/namespaces/${namespace.name}/pods`, { labelSelector: `gpufleet.io/model-deployment=${name}` })).items;

async function apply(name: string, spec: Record<string, unknown>): Promise<void> {
  await client.apply(modelDeploymentObject(namespace.name, name, spec), { fieldManager: "platform-team", force: true });
}

const llama8b = {
  model: { name: "llama-3.1-8b-instruct", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct", tokenSecretRef: { name: "hf-token" } } }, maxContextLength: 16384 },
  gpu: { products: [L4, H100] },
  replicas: 2,
};

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "reconcile");
  const nodes = await client.list<V1Node>("/api/v1/nodes");
  nodesByName = new Map(nodes.items.map((node) => [node.metadata!.name!, node]));
  operator = await startTestOperator(kubeConfig, namespace.name);
}, 120_000);

afterAll(async () => {
  await operator?.stop();
  await namespace?.delete();
  client.close();
});

describe("operator reconcile on the local GPU cluster", () => {
  it("turns a ModelDeployment into a Deployment, Service and PDB, runs its pods on the chosen GPU pool, and reports Ready", async () => {
    await apply("chat", llama8b);

    const md = await waitFor(
      async () => {
        const current = await readModelDeployment(client, namespace.name, "chat");
        return condition(current, "Ready")?.status === "True" && current.status?.readyReplicas === 2 ? current : undefined;
      },
      { timeoutMs: 60_000, description: "ModelDeployment chat Ready with 2 replicas" },
    );
    expect(md.status?.plan).toMatchObject({ gpuProduct: L4, gpusPerReplica: 1, tensorParallelism: 1, maxContextLength: 16384, pool: "l4" });
    expect(md.status?.observedGeneration).toBe(md.metadata.generation);
    expect(md.status?.selector).toBe("gpufleet.io/model-deployment=chat");

    const deployment = await client.get<V1Deployment>(deploymentPath("chat"));
    const owner = deployment.metadata?.ownerReferences?.[0];
    expect(owner).toMatchObject({ kind: "ModelDeployment", name: "chat", uid: md.metadata.uid, controller: true });
    const container = deployment.spec!.template.spec!.containers[0]!;
    expect(container.resources?.limits?.["nvidia.com/gpu"]).toBe("1");
    expect(container.args).toEqual(expect.arrayContaining(["--tensor-parallel-size", "1", "--max-model-len", "16384", "--served-model-name", "llama-3.1-8b-instruct"]));
    expect(deployment.spec!.template.spec!.tolerations).toContainEqual(expect.objectContaining({ key: "nvidia.com/gpu", operator: "Exists" }));

    const service = await client.get<V1Service>(`/api/v1/namespaces/${namespace.name}/services/chat`);
    expect(service.spec?.ports?.[0]).toMatchObject({ name: "http", port: 8000 });
    expect(service.metadata?.ownerReferences?.[0]?.uid).toBe(md.metadata.uid);
    const pdb = await client.get<V1PodDisruptionBudget>(`/apis/policy/v1/namespaces/${namespace.name}/poddisruptionbudgets/chat`);
    expect(pdb.spec?.maxUnavailable).toBe(1);

    const pods = await podsOf("chat");
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      expect(pod.status?.phase).toBe("Running");
      expect(pod.status?.podIP).toMatch(/^127\./);
      expect(nodesByName.get(pod.spec!.nodeName!)?.metadata?.labels?.["nvidia.com/gpu.product"]).toBe(L4);
    }

    const events = await client.list<KubeObject & { reason?: string; regarding?: { name?: string } }>(
      `/apis/events.k8s.io/v1/namespaces/${namespace.name}/events`,
    );
    const reasons = events.items.filter((event) => event.regarding?.name === "chat").map((event) => event.reason);
    expect(reasons).toEqual(expect.arrayContaining(["Planned", "Ready"]));
  });

  it("rolls out a spec change and reports the new generation as observed", async () => {
    const before = await client.get<V1Deployment>(deploymentPath("chat"));
    await apply("chat", { ...llama8b, model: { ...llama8b.model, maxContextLength: 8192 } });
    const md = await waitFor(
      async () => {
        const current = await readModelDeployment(client, namespace.name, "chat");
        const progressing = condition(current, "Progressing");
        return current.status?.observedGeneration === current.metadata.generation &&
          progressing?.reason === "RolloutComplete" &&
          current.status?.readyReplicas === 2
          ? current
          : undefined;
      },
      { timeoutMs: 90_000, description: "rollout of maxContextLength 8192 complete" },
    );
    expect(md.metadata.generation).toBe(2);
    expect(md.status?.plan?.maxContextLength).toBe(8192);
    const after = await client.get<V1Deployment>(deploymentPath("chat"));
    expect(after.metadata?.generation).toBeGreaterThan(before.metadata!.generation!);
    expect(after.spec!.template.spec!.containers[0]!.args).toEqual(expect.arrayContaining(["--max-model-len", "8192"]));
    // The new ReplicaSet replaces the old pods one at a time (maxSurge 0): in the end, two pods of one template.
    await waitFor(
      async () => {
        const current = (await podsOf("chat")).filter((pod) => !pod.metadata?.deletionTimestamp);
        const hashes = new Set(current.map((pod) => pod.metadata?.labels?.["pod-template-hash"]));
        return current.length === 2 && hashes.size === 1 && current.every((pod) => pod.status?.phase === "Running");
      },
      { timeoutMs: 60_000, description: "two running pods of the new template" },
    );
  });

  it("reports a model that fits no allowed GPU as DoesNotFit, with the planner's reason, and creates nothing", async () => {
    await apply("too-big", {
      model: { name: "llama-405b", source: { huggingFace: { repo: "meta-llama/Llama-3.1-405B-Instruct" } } },
      gpu: { products: [L4] },
    });
    const md = await waitFor(
      async () => {
        const current = await readModelDeployment(client, namespace.name, "too-big");
        return condition(current, "Ready")?.reason === "DoesNotFit" ? current : undefined;
      },
      { timeoutMs: 30_000, description: "too-big reported DoesNotFit" },
    );
    expect(condition(md, "Ready")?.status).toBe("False");
    expect(condition(md, "Degraded")).toMatchObject({ status: "True", reason: "DoesNotFit" });
    expect(condition(md, "Ready")?.message).toMatch(/NVIDIA-L4: .*(H200|B200|fp8|int4)/);
    await expect(client.get(deploymentPath("too-big"))).rejects.toMatchObject({ statusCode: 404 });
  });

  it("raises CapacityShortfall, with the GPUs missing, when the pool cannot hold every replica", async () => {
    // Llama 3.1 70B in bf16 at TP 4 on the H100 pool: 2 nodes × 8 GPUs hold 4 replicas; the 5th cannot be placed.
    await apply("big", {
      model: { name: "llama-70b", source: { huggingFace: { repo: "meta-llama/Llama-3.1-70B-Instruct" } }, maxContextLength: 8192 },
      gpu: { products: [H100], tensorParallelism: 4 },
      replicas: 5,
    });
    const md = await waitFor(
      async () => {
        const current = await readModelDeployment(client, namespace.name, "big");
        return condition(current, "CapacityShortfall")?.status === "True" && current.status?.readyReplicas === 4 ? current : undefined;
      },
      { timeoutMs: 90_000, description: "big: 4 ready and CapacityShortfall" },
    );
    expect(condition(md, "CapacityShortfall")?.message).toBe(`1 replica(s) cannot be scheduled: 4 more ${H100} GPU(s) needed (4 per replica)`);
    expect(condition(md, "Ready")).toMatchObject({ status: "True", reason: "PartiallyReady" });
    const pending = (await podsOf("big")).filter((pod) => pod.status?.phase === "Pending");
    expect(pending).toHaveLength(1);

    // Scaling down to what fits clears the shortfall.
    await client.patch(`${modelDeploymentPath(namespace.name, "big")}/scale`, { spec: { replicas: 4 } });
    await waitFor(
      async () => condition(await readModelDeployment(client, namespace.name, "big"), "CapacityShortfall")?.status === "False",
      { timeoutMs: 60_000, description: "shortfall cleared after scale to 4" },
    );
  });

  it("deletes the Deployment, Service and PDB with the ModelDeployment (owner references, no finalizer)", async () => {
    const md = await readModelDeployment(client, namespace.name, "big");
    expect(md.metadata.finalizers ?? []).toEqual([]);
    await client.delete(modelDeploymentPath(namespace.name, "big"));
    await waitFor(
      async () => {
        const owned = (path: string) => client.list<KubeObject>(path, { labelSelector: "gpufleet.io/model-deployment=big" });
        const [deployments, services, pdbs] = await Promise.all([
          owned(`/apis/apps/v1/namespaces/${namespace.name}/deployments`),
          owned(`/api/v1/namespaces/${namespace.name}/services`),
          owned(`/apis/policy/v1/namespaces/${namespace.name}/poddisruptionbudgets`),
        ]);
        return deployments.items.length + services.items.length + pdbs.items.length === 0;
      },
      { timeoutMs: 60_000, description: "owned objects of big garbage-collected" },
    );
  });
});
