import type { V1Deployment, V1Pod, V1ReplicaSet, V1StatefulSet } from "@kubernetes/client-node";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { ModelDeployment } from "../operator/api/modeldeployment.js";
import { KubeClient, type KubeObject } from "../operator/runtime/kube-client.js";
import { FakeApiServer } from "../operator/runtime/testing/fake-apiserver.js";
import { Fleet, PREFIX_INDEX_MAX_BLOCKS, PREFIX_INDEX_MIN_BLOCKS, buildRoutes, routeLimits } from "./fleet.js";

type MD = ModelDeployment & KubeObject;

function md(name: string, model: string, uid: string, created: string, namespace = "team-a"): MD {
  return {
    apiVersion: "gpufleet.io/v1alpha1",
    kind: "ModelDeployment",
    metadata: { name, namespace, uid, creationTimestamp: created },
    spec: { model: { name: model }, autoscaling: { minReplicas: 0 } },
  } as unknown as MD;
}

const controller = (apiVersion: string, kind: string, name: string, uid: string) => [
  { apiVersion, kind, name, uid, controller: true },
];

function chain(owner: MD, suffix: string) {
  const ns = owner.metadata?.namespace as string;
  const deployment = {
    metadata: {
      name: owner.metadata?.name,
      namespace: ns,
      uid: `d-${suffix}`,
      ownerReferences: controller(
        "gpufleet.io/v1alpha1",
        "ModelDeployment",
        owner.metadata?.name as string,
        owner.metadata?.uid as string,
      ),
    },
  } as V1Deployment & KubeObject;
  const replicaSet = {
    metadata: {
      name: `${owner.metadata?.name}-rs`,
      namespace: ns,
      uid: `rs-${suffix}`,
      ownerReferences: controller("apps/v1", "Deployment", owner.metadata?.name as string, `d-${suffix}`),
    },
  } as V1ReplicaSet & KubeObject;
  return { deployment, replicaSet };
}

function pod(
  name: string,
  ip: string,
  rsUid: string | undefined,
  ready: boolean,
  namespace = "team-a",
  extra: Partial<V1Pod["metadata"]> = {},
): V1Pod & KubeObject {
  return {
    metadata: {
      name,
      namespace,
      labels: { "gpufleet.io/model-deployment": "llama", "inference.networking.k8s.io/engine-type": "vllm" },
      ...(rsUid ? { ownerReferences: controller("apps/v1", "ReplicaSet", "llama-rs", rsUid) } : {}),
      ...extra,
    },
    spec: { containers: [{ name: "engine", ports: [{ name: "http", containerPort: 8000 }] }] },
    status: {
      phase: "Running",
      podIP: ip,
      conditions: [{ type: "Ready", status: ready ? "True" : "False" }],
    },
  } as V1Pod & KubeObject;
}

describe("buildRoutes", () => {
  it("routes a model to the pods its ModelDeployment owns through ReplicaSet and Deployment, by uid, not by label", () => {
    const llama = md("llama", "llama-3.1-8b", "u-llama", "2026-01-01T00:00:00Z");
    const { deployment, replicaSet } = chain(llama, "1");
    const { routes } = buildRoutes({
      modelDeployments: [llama],
      deployments: [deployment],
      replicaSets: [replicaSet],
      pods: [
        pod("llama-a", "127.0.0.11", "rs-1", true),
        pod("llama-b", "127.0.0.12", "rs-1", false),
        // a tenant's pod with the right labels but no owner chain
        pod("impostor", "127.0.0.66", undefined, true),
        // a tenant's pod claiming a ReplicaSet uid that is not the workload's
        pod("impostor-2", "127.0.0.67", "rs-other", true),
        // being deleted
        pod("llama-c", "127.0.0.13", "rs-1", true, "team-a", { deletionTimestamp: new Date() }),
      ],
    });
    const route = routes.get("llama-3.1-8b");
    expect(route?.targets.map((t) => [t.podName, t.podIP, t.port, t.ready])).toEqual([
      ["llama-a", "127.0.0.11", 8000, true],
      ["llama-b", "127.0.0.12", 8000, false],
    ]);
  });

  it("gives a model name two ModelDeployments claim to the oldest, and reports the other", () => {
    const old = md("first", "shared", "u-1", "2026-01-01T00:00:00Z", "team-a");
    const young = md("second", "shared", "u-2", "2026-02-01T00:00:00Z", "team-b");
    const { routes, shadowed } = buildRoutes({
      modelDeployments: [young, old],
      deployments: [],
      replicaSets: [],
      pods: [],
    });
    expect(routes.get("shared")?.modelDeployment.metadata?.uid).toBe("u-1");
    expect(shadowed).toEqual(["team-b/second"]);
  });

  it("does not take pods from another namespace even when the uids chain", () => {
    const llama = md("llama", "m", "u-llama", "2026-01-01T00:00:00Z", "team-a");
    const { deployment, replicaSet } = chain(llama, "1");
    const { routes } = buildRoutes({
      modelDeployments: [llama],
      deployments: [deployment],
      replicaSets: [replicaSet],
      pods: [pod("elsewhere", "127.0.0.20", "rs-1", true, "team-b")],
    });
    expect(routes.get("m")?.targets).toEqual([]);
  });
});

describe("buildRoutes: multi-node replicas (LeaderWorkerSet groups)", () => {
  it("routes to the group leaders the ModelDeployment owns through StatefulSet and LeaderWorkerSet by uid; never to a worker or a tenant's set", () => {
    const big = md("big", "llama-3.1-405b", "u-big", "2026-01-01T00:00:00Z");
    const lws = {
      apiVersion: "leaderworkerset.x-k8s.io/v1",
      kind: "LeaderWorkerSet",
      metadata: { name: "big", namespace: "team-a", uid: "lws-1", ownerReferences: controller("gpufleet.io/v1alpha1", "ModelDeployment", "big", "u-big") },
    } as KubeObject;
    const tenantLws = { ...lws, metadata: { name: "fake", namespace: "team-a", uid: "lws-t", ownerReferences: [] } } as KubeObject;
    const leaders = { metadata: { name: "big", namespace: "team-a", uid: "sts-1", ownerReferences: controller("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", "big", "lws-1") } } as V1StatefulSet & KubeObject;
    const tenantSts = { metadata: { name: "fake", namespace: "team-a", uid: "sts-t", ownerReferences: controller("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", "fake", "lws-t") } } as V1StatefulSet & KubeObject;
    // Workers' StatefulSet is controlled by their leader pod.
    const workers = { metadata: { name: "big-0", namespace: "team-a", uid: "sts-w", ownerReferences: controller("v1", "Pod", "big-0", "pod-big-0") } } as V1StatefulSet & KubeObject;
    const byStatefulSet = (name: string, ip: string, stsName: string, stsUid: string) => {
      const p = pod(name, ip, undefined, true);
      p.metadata = { ...p.metadata, ownerReferences: controller("apps/v1", "StatefulSet", stsName, stsUid) };
      return p;
    };
    const pods = [
      byStatefulSet("big-0", "127.0.0.31", "big", "sts-1"),
      byStatefulSet("big-1", "127.0.0.32", "big", "sts-1"),
      byStatefulSet("big-0-1", "127.0.0.33", "big-0", "sts-w"),
      byStatefulSet("fake-0", "127.0.0.66", "fake", "sts-t"),
    ];
    const input = { modelDeployments: [big], deployments: [], replicaSets: [], pods };
    const routed = (extra: object) => buildRoutes({ ...input, ...extra }).routes.get("llama-3.1-405b")?.targets.map((t) => t.podName);
    expect(routed({ statefulSets: [leaders, workers, tenantSts], leaderWorkerSets: [lws, tenantLws] })).toEqual(["big-0", "big-1"]);
    // Without the LeaderWorkerSet (not listed yet, or the CRD is absent) no leader is routable.
    expect(routed({ statefulSets: [leaders, workers] })).toEqual([]);
    expect(routed({})).toEqual([]);
  });
});

describe("Fleet: which Ready pods take requests", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("routes to a Ready pod only once its engine answers /health 200 (a Ready pod may still be loading), again after a refused connection, and after a 404 for its model only once /v1/models lists it", async () => {
    // The engine answers 503 (loading) until `loaded` flips, as vLLM does while it loads weights.
    let loaded = false;
    let listed = "llama-3.1-8b";
    const engine = http.createServer((req, res) => {
      if (req.url === "/v1/models") {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ object: "list", data: [{ id: listed, object: "model" }] }));
        return;
      }
      res.statusCode = req.url === "/health" && loaded ? 200 : 503;
      res.end();
    });
    await new Promise<void>((resolve) => engine.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise((resolve) => engine.close(() => resolve())));
    const enginePort = (engine.address() as AddressInfo).port;

    const fake = new FakeApiServer();
    await fake.start();
    cleanups.push(() => fake.stop());
    const owner = md("llama", "llama-3.1-8b", "md-uid", "2026-01-01T00:00:00Z");
    const { deployment, replicaSet } = chain(owner, "a");
    const label = { "gpufleet.io/model-deployment": "llama" };
    const readyPod = pod("llama-0", "127.0.0.1", "rs-a", true);
    readyPod.spec = {
      containers: [{ name: "engine", ports: [{ name: "http", containerPort: enginePort }] }],
    };
    fake.put("/apis/gpufleet.io/v1alpha1/namespaces/team-a/modeldeployments/llama", owner as never);
    fake.put("/apis/apps/v1/namespaces/team-a/deployments/llama", {
      ...deployment,
      metadata: { ...deployment.metadata, labels: label },
    } as never);
    fake.put("/apis/apps/v1/namespaces/team-a/replicasets/llama-rs", {
      ...replicaSet,
      metadata: { ...replicaSet.metadata, labels: label },
    } as never);
    fake.put("/api/v1/namespaces/team-a/pods/llama-0", readyPod as never);

    const fleet = new Fleet(new KubeClient(fake.kubeConfig(), { requestTimeoutMs: 2000 }), {
      watchNamespaces: [],
      scrapeIntervalMs: 60_000,
      scrapeTimeoutMs: 1000,
      healthCheckIntervalMs: 20,
    });
    cleanups.push(() => fleet.stop());
    await fleet.start(5000);
    const endpoint = () => fleet.route("llama-3.1-8b")?.endpoints[0];
    expect(endpoint()?.podName).toBe("llama-0");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(endpoint()?.ready).toBe(false);

    loaded = true;
    const deadline = Date.now() + 5000;
    while (!endpoint()?.ready && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(endpoint()?.ready).toBe(true);

    // A refused connection (the gateway's `suspect`): not routable until /health answers 200 again.
    loaded = false;
    const route = fleet.route("llama-3.1-8b");
    const suspected = endpoint();
    if (!route || !suspected) throw new Error("no route");
    let told = 0;
    const unsubscribe = fleet.subscribe(() => told++);
    fleet.suspect(route, suspected);
    expect(endpoint()?.ready).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(endpoint()?.ready).toBe(false);
    loaded = true;
    const again = Date.now() + 5000;
    while (!endpoint()?.ready && Date.now() < again) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(endpoint()?.ready).toBe(true);
    expect(told).toBeGreaterThan(0);
    unsubscribe();

    // The engine answered 404 for the model (the gateway's `suspect` with "wrong-model"): /health 200 is
    // not enough while /v1/models lists another model, as when the pod's address went to another engine.
    listed = "mistral-7b";
    fleet.suspect(route, suspected, "wrong-model");
    expect(endpoint()?.ready).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(endpoint()?.ready).toBe(false);
    listed = "llama-3.1-8b";
    const listedAgain = Date.now() + 5000;
    while (!endpoint()?.ready && Date.now() < listedAgain) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(endpoint()?.ready).toBe(true);
  });
});

describe("routeLimits", () => {
  const planned = (annotations: Record<string, string> = {}, kvCacheTokensPerReplica = 38_000): MD =>
    ({
      ...md("llama", "llama-3.1-8b", "md-uid", "2026-01-01T00:00:00Z"),
      metadata: { name: "llama", namespace: "team-a", uid: "md-uid", annotations },
      spec: {
        model: { name: "llama-3.1-8b", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } } },
        autoscaling: { minReplicas: 0, ttftTargetSeconds: 2 },
      },
      status: {
        plan: {
          gpuProduct: "NVIDIA-L4",
          gpusPerReplica: 1,
          tensorParallelism: 1,
          kvCacheTokensPerReplica,
          maxContextLength: 16384,
        },
      },
    }) as unknown as MD;
  const now = 1_800_000_000_000;
  const entry = (updatedAt: number) => JSON.stringify({ held: 1, lastRequestAt: updatedAt, updatedAt });

  it("bounds the prefix index by what the pod's KV cache holds (twice, in ~64-token blocks), within fixed bounds", () => {
    expect(routeLimits({ modelDeployment: planned(), blockTokens: 64, nowMs: now }).prefixIndexBlocksPerPod).toBe(
      Math.ceil((2 * 38_000) / 64),
    );
    expect(
      routeLimits({ modelDeployment: planned({}, 10_000_000), blockTokens: 64, nowMs: now }).prefixIndexBlocksPerPod,
    ).toBe(PREFIX_INDEX_MAX_BLOCKS);
    expect(
      routeLimits({ modelDeployment: planned({}, 1_000), blockTokens: 64, nowMs: now }).prefixIndexBlocksPerPod,
    ).toBe(PREFIX_INDEX_MIN_BLOCKS);
    const unplanned = { ...planned(), status: {} } as MD;
    expect(routeLimits({ modelDeployment: unplanned, blockTokens: 64, nowMs: now })).toEqual({ gatewayReplicas: 1 });
  });

  it("gives each gateway replica a share of what one pod prefills within the objective, split among the replicas it sees", () => {
    const alone = routeLimits({ modelDeployment: planned(), replicaName: "gw-a", share: 0.5, blockTokens: 64, nowMs: now });
    // L4 (121 dense BF16 TFLOPS) at the planner's 50% prefill MFU, 8B parameters: ~3,780 tokens/s; × 2 s × 0.5.
    expect(alone.prefillTokensPerSecond).toBeGreaterThan(3_500);
    expect(alone.prefillTokensPerSecond).toBeLessThan(4_000);
    expect(alone.prefillBudgetTokens).toBeCloseTo((alone.prefillTokensPerSecond ?? 0) * 2 * 0.5, 6);
    const shared = routeLimits({
      modelDeployment: planned({
        "demand.gpufleet.io/gw-a": entry(now - 1_000),
        "demand.gpufleet.io/gw-b": entry(now - 5_000),
        "demand.gpufleet.io/gw-old": entry(now - 11 * 60_000), // expired: gone
      }),
      replicaName: "gw-a",
      share: 0.5,
      blockTokens: 64,
      nowMs: now,
    });
    expect(shared.gatewayReplicas).toBe(2);
    expect(shared.prefillBudgetTokens).toBeCloseTo((alone.prefillBudgetTokens ?? 0) / 2, 6);
    expect(routeLimits({ modelDeployment: planned(), share: 0, blockTokens: 64, nowMs: now }).prefillBudgetTokens).toBeUndefined();
  });
});
