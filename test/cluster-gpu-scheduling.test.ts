/**
 * The local cluster behaves like a GPU cluster: the real kube-scheduler places pods by
 * nvidia.com/gpu capacity, GFD labels and the GPU taint; KWOK runs them; the real
 * controller-manager runs Deployments.
 */
import { AppsV1Api, CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadNodePools, poolNodeName } from "../sim/cluster/nodepools.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";

const kubeConfig = testKubeConfig();
const core = kubeConfig.makeApiClient(CoreV1Api);
const apps = kubeConfig.makeApiClient(AppsV1Api);
const pools = loadNodePools();

const GPU_TOLERATION = { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" };

function gpuPod(name: string, gpus: number, options: { product?: string; tolerate?: boolean } = {}): V1Pod {
  return {
    metadata: { name, labels: { app: name } },
    spec: {
      containers: [
        {
          name: "engine",
          image: "vllm/vllm-openai:v0.10.1", // never pulled: KWOK only pretends to run containers
          resources: gpus > 0 ? { limits: { "nvidia.com/gpu": String(gpus) } } : {},
        },
      ],
      tolerations: options.tolerate === false ? [] : [GPU_TOLERATION],
      nodeSelector: options.product ? { "nvidia.com/gpu.product": options.product } : undefined,
    },
  };
}

async function podCondition(namespace: string, name: string, type: string) {
  const pod = await core.readNamespacedPod({ name, namespace });
  return { pod, condition: pod.status?.conditions?.find((condition) => condition.type === type) };
}

async function waitUnschedulable(namespace: string, name: string): Promise<string> {
  return waitFor(
    async () => {
      const { pod, condition } = await podCondition(namespace, name, "PodScheduled");
      expect(pod.spec?.nodeName).toBeUndefined();
      return condition?.status === "False" && condition.reason === "Unschedulable"
        ? (condition.message ?? "")
        : undefined;
    },
    { timeoutMs: 30_000, description: `pod ${name} to be reported Unschedulable` },
  );
}

describe("local GPU cluster", () => {
  let namespace: TestNamespace;

  beforeAll(async () => {
    namespace = await uniqueNamespace(kubeConfig, "gpu-sched");
  });
  afterAll(async () => {
    await namespace?.delete();
  });

  it("has every pool's nodes with GPU Feature Discovery labels, GPU capacity and the GPU taint", async () => {
    const nodes = (await core.listNode({ labelSelector: "nvidia.com/gpu.present=true" })).items;
    const byName = new Map(nodes.map((node) => [node.metadata?.name, node]));
    for (const pool of pools.pools) {
      for (let index = 0; index < pool.nodeCount; index++) {
        const node = byName.get(poolNodeName(pool, index));
        expect(node, `node ${poolNodeName(pool, index)}`).toBeDefined();
        expect(node?.metadata?.labels).toMatchObject({
          "nvidia.com/gpu.product": pool.gpuProduct,
          "nvidia.com/gpu.memory": String(pool.gpuMemoryMiB),
          "nvidia.com/gpu.count": String(pool.gpusPerNode),
          "topology.kubernetes.io/region": pool.region,
          "topology.kubernetes.io/zone": pool.zone,
          "node.kubernetes.io/instance-type": pool.instanceType,
          "gpufleet.io/pool": pool.name,
          type: "kwok",
        });
        expect(node?.status?.capacity?.["nvidia.com/gpu"]).toBe(String(pool.gpusPerNode));
        expect(node?.status?.allocatable?.["nvidia.com/gpu"]).toBe(String(pool.gpusPerNode));
        expect(node?.spec?.taints).toContainEqual({
          key: "nvidia.com/gpu",
          value: "present",
          effect: "NoSchedule",
        });
        expect(node?.status?.conditions?.find((condition) => condition.type === "Ready")?.status).toBe(
          "True",
        );
        expect(node?.status?.addresses?.find((address) => address.type === "InternalIP")?.address).toMatch(
          /^127\./,
        );
      }
    }
    const expectedGpuNodes = pools.pools.reduce((sum, pool) => sum + pool.nodeCount, 0);
    expect(nodes).toHaveLength(expectedGpuNodes);
  });

  it("schedules a 4-GPU pod onto the requested pool and KWOK runs it with a loopback pod IP", async () => {
    const l4 = pools.pools.find((pool) => pool.name === "l4");
    expect(l4).toBeDefined();
    await core.createNamespacedPod({
      namespace: namespace.name,
      body: gpuPod("l4-engine", 4, { product: l4?.gpuProduct }),
    });
    const pod = await waitFor(
      async () => {
        const current = await core.readNamespacedPod({ name: "l4-engine", namespace: namespace.name });
        const ready =
          current.status?.conditions?.find((condition) => condition.type === "Ready")?.status === "True";
        return current.status?.phase === "Running" && ready ? current : undefined;
      },
      { timeoutMs: 30_000, description: "pod l4-engine Running and Ready" },
    );
    const node = await core.readNode({ name: pod.spec?.nodeName ?? "" });
    expect(node.metadata?.labels?.["gpufleet.io/pool"]).toBe("l4");
    expect(pod.status?.podIP).toMatch(/^127\.\d+\.\d+\.\d+$/);
    expect(pod.status?.hostIP).toMatch(/^127\./);
  });

  it("keeps a pod asking for more GPUs than any node has Pending as Unschedulable", async () => {
    const largestNode = Math.max(...pools.pools.map((pool) => pool.gpusPerNode));
    await core.createNamespacedPod({ namespace: namespace.name, body: gpuPod("too-big", largestNode + 1) });
    const message = await waitUnschedulable(namespace.name, "too-big");
    expect(message).toContain("Insufficient nvidia.com/gpu");
    const pod = await core.readNamespacedPod({ name: "too-big", namespace: namespace.name });
    expect(pod.status?.phase).toBe("Pending");
  });

  it("does not place a pod without the GPU toleration on GPU nodes", async () => {
    // Pinned to GPU nodes but not tolerating their taint: nowhere to go.
    const pinned = gpuPod("no-toleration-gpu", 0, { tolerate: false });
    pinned.spec!.nodeSelector = { "nvidia.com/gpu.present": "true" };
    await core.createNamespacedPod({ namespace: namespace.name, body: pinned });
    const message = await waitUnschedulable(namespace.name, "no-toleration-gpu");
    expect(message).toContain("untolerated taint");

    // Free to go anywhere: it lands on the untainted CPU-only system node.
    await core.createNamespacedPod({
      namespace: namespace.name,
      body: gpuPod("no-toleration", 0, { tolerate: false }),
    });
    const nodeName = await waitFor(
      async () =>
        (await core.readNamespacedPod({ name: "no-toleration", namespace: namespace.name })).spec?.nodeName,
      { timeoutMs: 30_000, description: "pod no-toleration to be scheduled" },
    );
    const node = await core.readNode({ name: nodeName });
    expect(node.metadata?.labels?.["nvidia.com/gpu.present"]).toBeUndefined();
    expect(node.spec?.taints ?? []).toHaveLength(0);
  });

  it("runs a Deployment's GPU pods through the real controller-manager until Ready", async () => {
    const name = "h100-engine";
    const template = gpuPod(name, 2, { product: "NVIDIA-H100-80GB-HBM3" });
    await apps.createNamespacedDeployment({
      namespace: namespace.name,
      body: {
        metadata: { name },
        spec: {
          replicas: 3,
          selector: { matchLabels: { app: name } },
          template: { metadata: template.metadata, spec: template.spec },
        },
      },
    });
    const deployment = await waitFor(
      async () => {
        const current = await apps.readNamespacedDeployment({ name, namespace: namespace.name });
        return current.status?.readyReplicas === 3 ? current : undefined;
      },
      { timeoutMs: 60_000, description: "deployment h100-engine to have 3 ready replicas" },
    );
    expect(deployment.status?.availableReplicas).toBe(3);
    const pods = (await core.listNamespacedPod({ namespace: namespace.name, labelSelector: `app=${name}` }))
      .items;
    expect(pods).toHaveLength(3);
    for (const pod of pods) {
      expect(pod.metadata?.ownerReferences?.[0]?.kind).toBe("ReplicaSet");
      expect(pod.spec?.nodeName).toMatch(/^h100-\d+$/);
      expect(pod.status?.podIP).toMatch(/^127\./);
    }
  });

  it("completes pod deletion (KWOK finalizes terminating pods)", async () => {
    await core.createNamespacedPod({ namespace: namespace.name, body: gpuPod("short-lived", 1) });
    await waitFor(
      async () =>
        (await core.readNamespacedPod({ name: "short-lived", namespace: namespace.name })).status?.phase ===
        "Running",
      { timeoutMs: 30_000, description: "pod short-lived Running" },
    );
    await core.deleteNamespacedPod({ name: "short-lived", namespace: namespace.name });
    await waitFor(
      async () => {
        try {
          await core.readNamespacedPod({ name: "short-lived", namespace: namespace.name });
          return false;
        } catch (error) {
          return (error as { code?: unknown }).code === 404;
        }
      },
      { timeoutMs: 30_000, description: "pod short-lived to be gone after deletion" },
    );
  });
});
