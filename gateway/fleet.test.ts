import type { V1Deployment, V1Pod, V1ReplicaSet } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { ModelDeployment } from "../operator/api/modeldeployment.js";
import type { KubeObject } from "../operator/runtime/kube-client.js";
import { buildRoutes } from "./fleet.js";

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
