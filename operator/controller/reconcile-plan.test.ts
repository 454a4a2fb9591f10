import type { V1Deployment, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { ModelDeployment } from "../api/modeldeployment.js";
import type { RenderedWorkload, ResolvedPlan } from "../render/types.js";
import { desiredReplicas, planReconcile, withheldStatus, type ObservedState, type ReconcileDependencies } from "./reconcile-plan.js";
import { gpuMemoryPerReplica, resolveArchitecture, sizeOnPool } from "./sizing.js";
import { gpuNode, modelDeployment } from "./testing.js";

const H100 = "NVIDIA-H100-80GB-HBM3";
const L4 = "NVIDIA-L4";
const nodes = [gpuNode("h100-a", H100, 8, { "gpufleet.io/pool": "h100" }), gpuNode("l4-a", L4, 4, { "gpufleet.io/pool": "l4" })];
const now = new Date("2026-06-01T12:00:00Z");

/** The real planner; a stand-in renderer that records what it was asked to render. */
const deps: ReconcileDependencies = {
  precheck: (md) => {
    const architecture = resolveArchitecture(md);
    return architecture.known ? undefined : architecture.message;
  },
  size: (md, pool) => {
    const architecture = resolveArchitecture(md);
    if (!architecture.known) throw new Error("precheck should have stopped this");
    return sizeOnPool(md, architecture.model, pool);
  },
  gpuMemoryPerReplica,
  render: (md: ModelDeployment, plan: ResolvedPlan) =>
    ({ deployment: { metadata: { name: md.metadata.name, annotations: { plan: JSON.stringify(plan) } } }, service: {}, podDisruptionBudget: {} }) as RenderedWorkload,
};

const llama8b = (spec: Record<string, unknown> = {}) =>
  modelDeployment("chat", { model: { name: "chat", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 }, ...spec });

function deploymentWith(status: { replicas: number; readyReplicas: number; updatedReplicas: number }, generation = 1): V1Deployment {
  return { metadata: { name: "chat", generation }, status: { observedGeneration: generation, ...status } };
}

function unschedulablePod(name: string): V1Pod {
  return {
    metadata: { name },
    status: { phase: "Pending", conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable" }] },
  } as V1Pod;
}

function observe(md: ModelDeployment, extra: Partial<ObservedState> = {}): ObservedState {
  return { modelDeployment: md, nodes, pods: [], now, ...extra };
}

describe("planReconcile", () => {
  it("plans, places and renders a catalogue model on the first allowed GPU that fits", () => {
    const result = planReconcile(observe(llama8b({ gpu: { products: [L4, H100] } })), deps);
    expect(result.workload).toBeDefined();
    expect(result.status.plan).toMatchObject({ gpuProduct: L4, gpusPerReplica: 1, tensorParallelism: 1, maxContextLength: 8192, pool: "l4" });
    expect(result.status.plan!.kvCacheTokensPerReplica).toBeGreaterThan(8192);
    expect(result.events.map((e) => e.reason)).toContain("Planned");
    expect(result.status.selector).toBe("gpufleet.io/model-deployment=chat");
    expect(result.status.endpoint).toBe("http://chat.team-a.svc:8000/v1");
  });

  it("refuses an unknown model without an architecture, naming the field that fixes it", () => {
    const md = modelDeployment("mystery", { model: { name: "mystery", source: { uri: "s3://bucket/mystery-model" } } });
    const result = planReconcile(observe(md), deps);
    expect(result.workload).toBeUndefined();
    const ready = result.status.conditions!.find((c) => c.type === "Ready")!;
    expect(ready).toMatchObject({ status: "False", reason: "UnknownModel" });
    expect(ready.message).toContain("set spec.model.architecture");
    expect(result.events).toContainEqual(expect.objectContaining({ type: "Warning", reason: "UnknownModel" }));
  });

  it("reports a model too large for every allowed GPU as DoesNotFit with the planner's reasons", () => {
    const md = modelDeployment("big", { model: { name: "big", source: { huggingFace: { repo: "meta-llama/Llama-3.1-405B-Instruct" } } }, gpu: { products: [L4] } });
    const result = planReconcile(observe(md), deps);
    expect(result.workload).toBeUndefined();
    expect(result.status.conditions!.find((c) => c.type === "Degraded")).toMatchObject({ status: "True", reason: "DoesNotFit" });
    expect(result.status.conditions!.find((c) => c.type === "Ready")!.message).toContain("NVIDIA-L4:");
  });

  it("keeps the running workload when a spec change cannot be placed, and says so", () => {
    const md = modelDeployment("chat", { model: { name: "chat", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } } }, gpu: { products: ["NVIDIA-B200"] } });
    md.status = { plan: { gpuProduct: L4, gpusPerReplica: 1, tensorParallelism: 1, kvCacheTokensPerReplica: 50000, maxContextLength: 8192 } };
    const result = planReconcile(observe(md, { deployment: deploymentWith({ replicas: 1, readyReplicas: 1, updatedReplicas: 1 }) }), deps);
    expect(result.workload).toBeUndefined();
    expect(result.status.plan?.gpuProduct).toBe(L4);
    expect(result.status.conditions!.find((c) => c.type === "Ready")).toMatchObject({ status: "True", reason: "AllReplicasReady" });
    expect(result.status.conditions!.find((c) => c.type === "Degraded")!.message).toContain("previous workload keeps running");
  });

  it("raises CapacityShortfall with the GPUs missing when replicas cannot be scheduled", () => {
    const md = modelDeployment("big", {
      model: { name: "big", source: { huggingFace: { repo: "meta-llama/Llama-3.1-70B-Instruct" } }, maxContextLength: 8192 },
      gpu: { products: [H100], tensorParallelism: 4 },
      replicas: 3,
    });
    const pods = [unschedulablePod("big-1"), unschedulablePod("big-2")];
    const result = planReconcile(observe(md, { pods, deployment: deploymentWith({ replicas: 3, readyReplicas: 1, updatedReplicas: 3 }) }), deps);
    const shortfall = result.status.conditions!.find((c) => c.type === "CapacityShortfall")!;
    expect(shortfall).toMatchObject({ status: "True", reason: "InsufficientGpus" });
    expect(shortfall.message).toBe(`2 replica(s) cannot be scheduled: 8 more ${H100} GPU(s) needed (4 per replica)`);
    expect(result.events).toContainEqual(expect.objectContaining({ type: "Warning", reason: "CapacityShortfall" }));
    expect(result.status.conditions!.find((c) => c.type === "Ready")).toMatchObject({ status: "True", reason: "PartiallyReady" });
  });

  it("is Ready with the rollout complete once every desired replica is ready, and stops polling", () => {
    const result = planReconcile(observe(llama8b({ replicas: 2 }), { deployment: deploymentWith({ replicas: 2, readyReplicas: 2, updatedReplicas: 2 }) }), deps);
    const byType = Object.fromEntries(result.status.conditions!.map((c) => [c.type, c]));
    expect(byType.Ready).toMatchObject({ status: "True", reason: "AllReplicasReady" });
    expect(byType.Progressing).toMatchObject({ status: "False", reason: "RolloutComplete" });
    expect(byType.Degraded).toMatchObject({ status: "False" });
    expect(result.requeueAfterMs).toBeUndefined();
    expect(result.events.map((e) => e.reason)).toEqual(["Planned", "Ready"]);
  });

  it("is Progressing while the Deployment has not observed its latest generation", () => {
    const deployment = deploymentWith({ replicas: 1, readyReplicas: 1, updatedReplicas: 1 });
    deployment.metadata!.generation = 2;
    const result = planReconcile(observe(llama8b(), { deployment }), deps);
    expect(result.status.conditions!.find((c) => c.type === "Progressing")).toMatchObject({ status: "True", reason: "Applying" });
    expect(result.requeueAfterMs).toBe(10_000);
  });
});

describe("desiredReplicas", () => {
  it("follows spec.replicas without autoscaling and clamps it to [min, max] with autoscaling", () => {
    expect(desiredReplicas(llama8b({ replicas: 7 }))).toBe(7);
    expect(desiredReplicas(llama8b({ replicas: 7, autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 4 } }))).toBe(4);
    expect(desiredReplicas(llama8b({ replicas: 0, autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 4 } }))).toBe(2);
  });
});

describe("observedGeneration: a ModelDeployment that is not served never looks reconciled", () => {
  const tooBig = (generation: number) =>
    modelDeployment(
      "big",
      { model: { name: "big", source: { huggingFace: { repo: "meta-llama/Llama-3.1-405B-Instruct" } } }, gpu: { products: [L4] } },
      { generation },
    );

  it("moves to the generation only with a workload to apply for it", () => {
    const served = planReconcile(observe(llama8b()), deps);
    expect(served.workload).toBeDefined();
    expect(served.status.observedGeneration).toBe(1);
    const unplaceable = planReconcile(observe(tooBig(1)), deps);
    expect(unplaceable.workload).toBeUndefined();
    expect(unplaceable.status.observedGeneration).toBeUndefined();
    expect(unplaceable.status.conditions!.find((c) => c.type === "Ready")).toMatchObject({ status: "False", observedGeneration: 1 });
    // A spec change that cannot be served keeps the generation that still runs.
    const md = tooBig(3);
    md.status = { observedGeneration: 2 };
    expect(planReconcile(observe(md), deps).status.observedGeneration).toBe(2);
  });

  it("a withheld workload (name conflict, waiting, refused apply) reports Ready=False with the reason and never the current generation as observed", () => {
    const md = llama8b();
    md.metadata.generation = 4;
    const planned = planReconcile(observe(md), deps).status;
    const withheld = { reason: "NameConflict", message: "Service chat already exists", progressing: false };
    md.status = { observedGeneration: 3 };
    const older = withheldStatus(md, planned, withheld, now);
    expect(older.observedGeneration).toBe(3);
    expect(older.conditions!.find((c) => c.type === "Ready")).toMatchObject({ status: "False", reason: "NameConflict", observedGeneration: 4 });
    expect(older.conditions!.find((c) => c.type === "Degraded")).toMatchObject({ status: "True", reason: "NameConflict" });
    expect(older.conditions!.find((c) => c.type === "Progressing")).toMatchObject({ status: "False", reason: "NameConflict" });
    md.status = { observedGeneration: 4 };
    expect(withheldStatus(md, planned, withheld, now).observedGeneration).toBeUndefined();
    const waiting = withheldStatus(md, planned, { reason: "WaitingForDeletion", message: "waiting", progressing: true }, now);
    expect(waiting.conditions!.find((c) => c.type === "Progressing")).toMatchObject({ status: "True", reason: "WaitingForDeletion" });
    expect(withheldStatus(md, planned, { ...withheld, message: "x".repeat(5000) }, now).conditions![0]!.message.length).toBeLessThanOrEqual(1024);
  });
});

describe("pods the API server refuses", () => {
  it("says in Ready and Degraded that a namespace's Pod Security level refuses the pods, with the API server's reason", () => {
    const deployment = deploymentWith({ replicas: 0, readyReplicas: 0, updatedReplicas: 0 });
    deployment.status!.conditions = [
      {
        type: "ReplicaFailure",
        status: "True",
        reason: "FailedCreate",
        message: 'pods "chat-7d9f-x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true (pod or container "engine" must set securityContext.runAsNonRoot=true)',
      },
    ];
    const result = planReconcile(observe(llama8b(), { deployment }), deps);
    const ready = result.status.conditions!.find((c) => c.type === "Ready")!;
    expect(ready).toMatchObject({ status: "False", reason: "PodSecurityForbidden" });
    expect(ready.message).toContain('violates PodSecurity "restricted:latest"');
    expect(result.status.conditions!.find((c) => c.type === "Degraded")).toMatchObject({ status: "True", reason: "PodSecurityForbidden" });
  });
});

describe("scale to zero in the status", () => {
  const atZero = (replicas: number, annotations: Record<string, string> = {}) =>
    modelDeployment(
      "chat",
      {
        model: { name: "chat", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 },
        replicas,
        autoscaling: { enabled: true, minReplicas: 0, maxReplicas: 4, scaleToZeroIdleSeconds: 120 },
      },
      { annotations },
    );
  const ready = (md: ModelDeployment, deployment: V1Deployment) => planReconcile(observe(md, { deployment }), deps).status.conditions?.find((c) => c.type === "Ready");

  it("a model at zero with minReplicas 0 runs no replica and shows Idle", () => {
    const md = atZero(0);
    expect(desiredReplicas(md)).toBe(0);
    expect(ready(md, deploymentWith({ replicas: 0, readyReplicas: 0, updatedReplicas: 0 }))).toMatchObject({ status: "False", reason: "Idle" });
  });

  it("requests held at the gateway at zero show Activating", () => {
    const held = JSON.stringify({ held: 2, lastRequestAt: now.getTime() - 1_000, updatedAt: now.getTime() - 500 });
    const condition = ready(atZero(0, { "demand.gpufleet.io/gw-a": held }), deploymentWith({ replicas: 0, readyReplicas: 0, updatedReplicas: 0 }));
    expect(condition).toMatchObject({ status: "False", reason: "Activating" });
    expect(condition?.message).toContain("2 request(s) held");
  });

  it("held demand older than the freshness bound does not count", () => {
    const stale = JSON.stringify({ held: 2, lastRequestAt: now.getTime() - 60_000, updatedAt: now.getTime() - 60_000 });
    expect(ready(atZero(0, { "demand.gpufleet.io/gw-a": stale }), deploymentWith({ replicas: 0, readyReplicas: 0, updatedReplicas: 0 }))?.reason).toBe("Idle");
  });

  it("woken to one replica and none ready yet shows Activating, then AllReplicasReady", () => {
    const md = atZero(1);
    expect(ready(md, deploymentWith({ replicas: 1, readyReplicas: 0, updatedReplicas: 1 }))?.reason).toBe("Activating");
    expect(ready(md, deploymentWith({ replicas: 1, readyReplicas: 1, updatedReplicas: 1 }))?.reason).toBe("AllReplicasReady");
  });

  it("without scale to zero the floor stays one replica and nothing shows Idle", () => {
    const md = modelDeployment("chat", {
      model: { name: "chat", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 },
      replicas: 0,
      autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 4 },
    });
    expect(desiredReplicas(md)).toBe(1);
    expect(ready(md, deploymentWith({ replicas: 1, readyReplicas: 0, updatedReplicas: 1 }))?.reason).toBe("ReplicasNotReady");
  });
});

describe("planReconcile: a model bigger than one node", () => {
  const llama405b = (spec: Record<string, unknown> = {}) =>
    modelDeployment("big", { model: { name: "big", source: { huggingFace: { repo: "meta-llama/Llama-3.1-405B-Instruct" } } }, ...spec });
  const h100Pool = [
    gpuNode("h100-0", H100, 8, { "gpufleet.io/pool": "h100", "topology.kubernetes.io/zone": "z-a" }),
    gpuNode("h100-1", H100, 8, { "gpufleet.io/pool": "h100", "topology.kubernetes.io/zone": "z-a" }),
  ];

  it("plans PP 2 x TP 8 on a two-node pool, keeps the group in one pool and zone, and says what each stage holds", () => {
    let rendered: ResolvedPlan | undefined;
    const result = planReconcile(observe(llama405b(), { nodes: h100Pool }), {
      ...deps,
      render: (md, plan) => {
        rendered = plan;
        return deps.render(md, plan);
      },
    });
    expect(result.status.plan).toMatchObject({ gpuProduct: H100, tensorParallelism: 8, pipelineParallelism: 2, nodesPerReplica: 2, gpusPerReplica: 16 });
    expect(result.status.plan!.stages).toMatch(/stage 0: layers 0-62 \+ embedding/);
    expect(rendered?.groupTopologyKeys).toEqual(["gpufleet.io/pool", "topology.kubernetes.io/zone"]);
    const planned = result.events.find((e) => e.reason === "Planned");
    expect(planned?.message).toMatch(/LeaderWorkerSet group of 2 pods \(PP 2 x TP 8\)/);
  });

  it("refuses a pool of one node with DoesNotFit, naming the nodes it needs", () => {
    const result = planReconcile(observe(llama405b({ gpu: { products: ["NVIDIA-A100-SXM4-80GB"] } }), { nodes: [gpuNode("a100-0", "NVIDIA-A100-SXM4-80GB", 8)] }), deps);
    expect(result.workload).toBeUndefined();
    const ready = result.status.conditions?.find((c) => c.type === "Ready");
    expect(ready).toMatchObject({ status: "False", reason: "DoesNotFit" });
    expect(ready?.message).toMatch(/needs 2 nodes per replica \(PP 2 x TP 8 = 16 x NVIDIA-A100-SXM4-80GB\) but the NVIDIA-A100-SXM4-80GB pool has 1 ready node/);
    expect(result.events).toContainEqual(expect.objectContaining({ type: "Warning", reason: "DoesNotFit" }));
  });

  it("counts an unschedulable group once, with the GPUs of its pods", () => {
    const pending = (name: string, group: string) => {
      const pod = unschedulablePod(name);
      pod.metadata!.labels = { "leaderworkerset.sigs.k8s.io/group-index": group };
      return pod;
    };
    const result = planReconcile(
      observe(llama405b({ replicas: 2 }), { nodes: h100Pool, pods: [pending("big-1", "1"), pending("big-1-1", "1")] }),
      deps,
    );
    const shortfall = result.status.conditions?.find((c) => c.type === "CapacityShortfall");
    expect(shortfall?.message).toBe(
      "1 replica group(s) cannot be scheduled (2 pod(s)): 16 more NVIDIA-H100-80GB-HBM3 GPU(s) needed (2 nodes of 8 per replica, all in one pool)",
    );
  });

  it("says groups that cannot be scheduled are not spilled over to another product, and which one the spec could pin", () => {
    const pending = unschedulablePod("big-1");
    pending.metadata!.labels = { "leaderworkerset.sigs.k8s.io/group-index": "1" };
    const withSpill: ReconcileDependencies = { ...deps, renderSpill: () => ({}) };
    const md = llama405b({ replicas: 2, gpu: { products: [H100, "NVIDIA-A100-SXM4-80GB"] } });
    const result = planReconcile(observe(md, { nodes: h100Pool, pods: [pending] }), withSpill);
    expect(result.status.conditions?.find((c) => c.type === "SpilledOver")).toMatchObject({
      status: "False",
      reason: "MultiNodeNotSpilled",
      message: `a replica spans 2 nodes (a LeaderWorkerSet group): spill-over to another GPU product is done for single-node replicas only, so groups that cannot be scheduled wait for room on ${H100}; to run on NVIDIA-A100-SXM4-80GB instead, list it first in spec.gpu.products`,
    });
    expect(result.spillWorkloads).toBeUndefined();
    // Every group scheduled: no such condition.
    expect(planReconcile(observe(md, { nodes: h100Pool }), withSpill).status.conditions?.some((c) => c.type === "SpilledOver")).toBe(false);
  });
});
