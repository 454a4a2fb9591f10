import type { V1Deployment, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { renderSpillDeployment, renderWorkload } from "../render/index.js";
import type { AnyRenderedWorkload } from "../render/leaderworkerset.js";
import { startModulesInArgs } from "../render/lora.js";
import { keptStartAdapters, planReconcile, type ObservedState, type ReconcileDependencies } from "./reconcile-plan.js";
import { gpuMemoryPerReplica, resolveArchitecture, sizeOnPool } from "./sizing.js";
import { productSlot, spillDeploymentName } from "./spill-plan.js";
import { gpuNode, modelDeployment } from "./testing.js";

const H100 = "NVIDIA-H100-80GB-HBM3";
const A100 = "NVIDIA-A100-SXM4-80GB";
const now = new Date("2026-06-01T12:00:00Z");

/** The real planner and renderer, as the controller wires them. */
const deps: ReconcileDependencies = {
  size: (md, pool) => {
    const architecture = resolveArchitecture(md);
    if (!architecture.known) throw new Error("unknown model");
    return sizeOnPool(md, architecture.model, pool);
  },
  gpuMemoryPerReplica,
  render: (md, plan, extra) =>
    renderWorkload({
      modelDeployment: md,
      plan,
      ...(extra?.loraModules ? { loraModules: extra.loraModules } : {}),
      ...(extra?.replicas !== undefined ? { replicas: extra.replicas } : {}),
    }),
  renderSpill: (md, plan, variant, extra) =>
    renderSpillDeployment({ modelDeployment: md, plan, variant, ...(extra?.loraModules ? { loraModules: extra.loraModules } : {}) }),
};

const chat = (spec: Record<string, unknown> = {}) =>
  modelDeployment("chat", {
    model: { name: "chat", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 },
    gpu: { products: [H100, A100] },
    replicas: 4,
    ...spec,
  });

const nodes = [gpuNode("h100-a", H100, 2), gpuNode("a100-a", A100, 8)];

/** A pod of `chat` on a node (or pending Unschedulable), ready when bound. */
function pod(name: string, node: string | undefined, slot?: string): V1Pod {
  return {
    metadata: { name, labels: { "gpufleet.io/model-deployment": "chat", ...(slot ? { "gpufleet.io/workload-slot": slot } : {}) } },
    spec: { ...(node ? { nodeName: node } : {}), containers: [{ name: "engine", resources: { requests: { "nvidia.com/gpu": "1" } } }] },
    status: node
      ? { phase: "Running", conditions: [{ type: "Ready", status: "True" }] }
      : { phase: "Pending", conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable" }] },
  } as V1Pod;
}

function asObserved(d: V1Deployment, ready: number): V1Deployment {
  return { ...d, metadata: { ...d.metadata, generation: 1, uid: `uid-${d.metadata?.name}` }, status: { observedGeneration: 1, replicas: d.spec?.replicas ?? 0, readyReplicas: ready, updatedReplicas: d.spec?.replicas ?? 0 } };
}

/** The workload's Deployment (these plans fit one node: no LeaderWorkerSet). */
function deploymentOf(workload: AnyRenderedWorkload | undefined): V1Deployment | undefined {
  return workload && "deployment" in workload ? workload.deployment : undefined;
}

const observe = (extra: Partial<ObservedState>): ObservedState => ({ modelDeployment: chat(), nodes, pods: [], now, ...extra });

describe("spill-over in reconcile", () => {
  it("keeps today's single workload when the preferred product has room", () => {
    const result = planReconcile(observe({ nodes: [gpuNode("h100-a", H100, 8), gpuNode("a100-a", A100, 8)] }), deps);
    expect(deploymentOf(result.workload)?.spec?.replicas).toBe(4);
    expect(result.spillWorkloads).toBeUndefined();
  });

  it("moves unschedulable replicas of the full H100 pool to A100 with A100's own plan, and says so", () => {
    const first = planReconcile(observe({}), deps);
    // First placement: 2 H100 GPUs free, so 2 replicas there and 2 on A100.
    expect(deploymentOf(first.workload)?.spec?.replicas).toBe(2);
    const spill = first.spillWorkloads?.[0];
    expect(spill?.metadata?.name).toBe(spillDeploymentName("chat", A100));
    expect(spill?.spec?.replicas).toBe(2);
    expect(spill?.spec?.template.metadata?.annotations?.["gpufleet.io/gpu-product"]).toBe(A100);
    expect(first.status.replicasByProduct?.map((r) => [r.gpuProduct, r.replicas])).toEqual([[H100, 2], [A100, 2]]);
    expect(first.status.replicasByProduct?.[1]?.kvCacheTokensPerReplica).toBeGreaterThan(0);
    expect(first.status.conditions?.find((c) => c.type === "SpilledOver")).toMatchObject({ status: "True", reason: "PreferredPoolFull" });
    expect(first.events.map((e) => e.reason)).toContain("SpilledOver");

    // Later: the 4 H100 replicas exist but other work took the pool: 2 bound, 2 unschedulable.
    const primary = asObserved(renderWorkload({ modelDeployment: chat(), plan: { gpuProduct: H100, gpusPerReplica: 1, tensorParallelism: 1, maxContextLength: 8192, kvCacheTokensPerReplica: 1, gpuMemoryUtilization: 0.9, modelId: "x" } }).deployment, 2);
    const pods = [pod("p1", "h100-a"), pod("p2", "h100-a"), pod("p3", undefined), pod("p4", undefined)];
    const later = planReconcile(observe({ deployment: primary, pods, clusterPods: pods }), deps);
    expect(deploymentOf(later.workload)?.spec?.replicas).toBe(2);
    expect(later.spillWorkloads?.[0]?.spec?.replicas).toBe(2);
    expect(later.status.conditions?.find((c) => c.type === "CapacityShortfall")?.status).toBe("True");
  });

  it("writes nothing while the cache is behind its own last write of a spill-over workload", () => {
    const first = planReconcile(observe({}), deps);
    const spill = asObserved(first.spillWorkloads![0]!, 2);
    const primary = asObserved(deploymentOf(first.workload)!, 2);
    const pods = [pod("p1", "h100-a"), pod("p2", "h100-a"), pod("s1", "a100-a", "nvidia-a100-sxm4-80gb"), pod("s2", "a100-a", "nvidia-a100-sxm4-80gb")];
    const stale = planReconcile(observe({ deployment: primary, spillDeployments: [spill], pods, clusterPods: pods, cacheCurrent: false }), deps);
    expect(stale.workload).toBeUndefined();
    expect(stale.spillWorkloads).toBeUndefined();
    expect(stale.requeueAfterMs).toBe(1_000);
    const current = planReconcile(observe({ deployment: primary, spillDeployments: [spill], pods, clusterPods: pods, cacheCurrent: true }), deps);
    expect(deploymentOf(current.workload)?.spec?.replicas).toBe(2);
    expect(current.spillWorkloads?.[0]?.spec?.replicas).toBe(2);
    expect(current.status.readyReplicas).toBe(4);
  });

  it("does not start a return into a pool other work holds once the other pods on its nodes are counted", () => {
    // All 4 replicas spilled to A100 and ready; the H100 node looks empty to gpufleet's own pods.
    const nodes8 = [gpuNode("h100-a", H100, 8), gpuNode("a100-a", A100, 8)];
    const first = planReconcile(observe({}), deps);
    const spill = asObserved({ ...first.spillWorkloads![0]!, spec: { ...first.spillWorkloads![0]!.spec!, replicas: 4 } } as V1Deployment, 4);
    const primary = asObserved({ ...deploymentOf(first.workload)!, spec: { ...deploymentOf(first.workload)!.spec!, replicas: 0 } } as V1Deployment, 0);
    const ours = [1, 2, 3, 4].map((i) => pod(`s${i}`, "a100-a", "nvidia-a100-sxm4-80gb"));
    const training: V1Pod = {
      metadata: { name: "train", namespace: "ml", uid: "train-uid" },
      spec: { nodeName: "h100-a", containers: [{ name: "c", resources: { limits: { "nvidia.com/gpu": "8" } } }] },
      status: { phase: "Running" },
    };
    const blind = planReconcile(observe({ nodes: nodes8, deployment: primary, spillDeployments: [spill], pods: ours, clusterPods: ours }), deps);
    expect(blind.events.map((e) => e.reason)).toContain("SpillReturning");
    expect(blind.status.conditions?.find((c) => c.type === "SpilledOver")?.message).toContain("8 of 8 GPU(s) free, counting gpufleet's pods only");

    const seeing = planReconcile(
      observe({ nodes: nodes8, deployment: primary, spillDeployments: [spill], pods: ours, clusterPods: [...ours, training], clusterPodsComplete: true }),
      deps,
    );
    expect(seeing.events.map((e) => e.reason)).not.toContain("SpillReturning");
    expect(deploymentOf(seeing.workload)?.spec?.replicas).toBe(0);
    expect(seeing.status.conditions?.find((c) => c.type === "SpilledOver")?.message).toContain("0 of 8 GPU(s) free, counting every pod on its nodes");
  });

  it("names spill-over workloads after the product, within label limits", () => {
    expect(productSlot(A100)).toBe("nvidia-a100-sxm4-80gb");
    expect(productSlot("X".repeat(100)).length).toBeLessThanOrEqual(40);
    expect(productSlot("---")).toBe("gpu");
  });
});

describe("adapters without a restart", () => {
  const adapters = (names: string[]) => names.map((name) => ({ name, source: { huggingFace: { repo: `org/${name}` } }, rank: 8 }));
  const plan = { gpuProduct: H100, gpusPerReplica: 1, tensorParallelism: 1, maxContextLength: 8192, kvCacheTokensPerReplica: 100_000, gpuMemoryUtilization: 0.9, modelId: "llama-3.1-8b" };

  it("keeps the running template's start adapters when only the adapter list changed", () => {
    const running = renderWorkload({ modelDeployment: chat({ adapters: adapters(["sql"]) }), plan }).deployment;
    const next = renderWorkload({ modelDeployment: chat({ adapters: adapters(["sql", "chat-de"]) }), plan }).deployment;
    expect(keptStartAdapters(next, running)).toEqual([{ name: "sql", path: "org/sql" }]);
  });

  it("starts pods with the spec's adapters when the template changes anyway", () => {
    const running = renderWorkload({ modelDeployment: chat({ adapters: adapters(["sql"]) }), plan }).deployment;
    const next = renderWorkload({ modelDeployment: chat({ adapters: adapters(["sql", "chat-de"]), engine: { image: "vllm/vllm-openai:v0.20.0" } }), plan }).deployment;
    expect(keptStartAdapters(next, running)).toBeUndefined();
  });

  it("renders an unchanged template in reconcile when an adapter is added (no rollout)", () => {
    const nodes8 = [gpuNode("h100-a", H100, 8)];
    const before = planReconcile({ modelDeployment: chat({ adapters: adapters(["sql"]), gpu: { products: [H100] } }), nodes: nodes8, pods: [], now }, deps);
    const running = asObserved(deploymentOf(before.workload)!, 4);
    const after = planReconcile(
      { modelDeployment: chat({ adapters: adapters(["sql", "chat-de"]), gpu: { products: [H100] } }), nodes: nodes8, pods: [], deployment: running, now },
      deps,
    );
    expect(deploymentOf(after.workload)?.spec?.template).toEqual(deploymentOf(before.workload)?.spec?.template);
    expect(startModulesInArgs(deploymentOf(after.workload)?.spec?.template.spec?.containers[0]?.args)).toEqual([{ name: "sql", path: "org/sql" }]);
  });
});
