import type { V1OwnerReference, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { podsOwnedByModelDeployment } from "./owned-pods.js";

const ref = (kind: string, apiVersion: string, uid: string, controller = true): V1OwnerReference => ({
  kind,
  apiVersion,
  uid,
  name: `${kind.toLowerCase()}-${uid}`,
  controller,
});
const object = (uid: string, owners: V1OwnerReference[], namespace = "team-a", labels: Record<string, string> = {}) => ({
  metadata: { name: uid, namespace, uid, labels, ownerReferences: owners },
});

const md = { metadata: { name: "llama", namespace: "team-a", uid: "md-uid" } };
const deployment = object("deploy-uid", [ref("ModelDeployment", "gpufleet.io/v1alpha1", "md-uid")]);
const replicaSet = object("rs-uid", [ref("Deployment", "apps/v1", "deploy-uid")]);
const label = { "gpufleet.io/model-deployment": "llama" };

describe("podsOwnedByModelDeployment", () => {
  it("keeps the pods whose controller chain ReplicaSet -> Deployment -> ModelDeployment matches by uid", () => {
    const pods = [object("pod-1", [ref("ReplicaSet", "apps/v1", "rs-uid")], "team-a", label) as V1Pod];
    expect(podsOwnedByModelDeployment({ owner: md, pods, replicaSets: [replicaSet], deployments: [deployment] })).toEqual(pods);
  });

  it.each([
    ["a labelled pod with no owner", object("p", [], "team-a", label)],
    ["a pod owned by another ReplicaSet", object("p", [ref("ReplicaSet", "apps/v1", "other-rs")], "team-a", label)],
    ["a pod naming the ReplicaSet as a non-controller owner", object("p", [ref("ReplicaSet", "apps/v1", "rs-uid", false)])],
    ["a pod whose controller has the uid but another kind", object("p", [ref("StatefulSet", "apps/v1", "rs-uid")])],
    ["a pod in another namespace", object("p", [ref("ReplicaSet", "apps/v1", "rs-uid")], "team-b", label)],
  ])("leaves out %s", (_what, pod) => {
    expect(podsOwnedByModelDeployment({ owner: md, pods: [pod as V1Pod], replicaSets: [replicaSet], deployments: [deployment] })).toEqual([]);
  });

  it("leaves out pods of a ReplicaSet whose Deployment another ModelDeployment (or a same-named dead one) controls", () => {
    const pod = object("p", [ref("ReplicaSet", "apps/v1", "rs-uid")], "team-a", label) as V1Pod;
    const foreign = object("deploy-uid", [ref("ModelDeployment", "gpufleet.io/v1alpha1", "old-uid")]);
    const tenantRs = object("rs-uid", [ref("Deployment", "apps/v1", "tenant-deploy")]);
    expect(podsOwnedByModelDeployment({ owner: md, pods: [pod], replicaSets: [replicaSet], deployments: [foreign] })).toEqual([]);
    expect(podsOwnedByModelDeployment({ owner: md, pods: [pod], replicaSets: [tenantRs], deployments: [deployment] })).toEqual([]);
    expect(podsOwnedByModelDeployment({ owner: { metadata: { namespace: "team-a" } }, pods: [pod], replicaSets: [replicaSet], deployments: [deployment] })).toEqual([]);
  });
});

describe("podsOwnedByModelDeployment: multi-node replicas (LeaderWorkerSet)", () => {
  const lws = object("lws-uid", [ref("ModelDeployment", "gpufleet.io/v1alpha1", "md-uid")]);
  const leaderSet = object("leader-sts-uid", [ref("LeaderWorkerSet", "leaderworkerset.x-k8s.io/v1", "lws-uid")]);
  const leader = object("leader-0", [ref("StatefulSet", "apps/v1", "leader-sts-uid")], "team-a", label) as V1Pod;
  // Worker StatefulSets are controlled by their leader pod, so workers never match: they serve no API.
  const workerSet = object("worker-sts-uid", [ref("Pod", "v1", "leader-0")]);
  const worker = object("leader-0-1", [ref("StatefulSet", "apps/v1", "worker-sts-uid")], "team-a", label) as V1Pod;
  const chain = { owner: md, replicaSets: [], deployments: [], statefulSets: [leaderSet, workerSet], leaderWorkerSets: [lws] };

  it("keeps the group leaders, by uid at every link Pod -> StatefulSet -> LeaderWorkerSet -> ModelDeployment, and no worker", () => {
    expect(podsOwnedByModelDeployment({ ...chain, pods: [leader, worker] })).toEqual([leader]);
  });

  it("leaves out a leader whose LeaderWorkerSet another ModelDeployment controls, or whose set is not known", () => {
    const foreignSet = object("lws-uid", [ref("ModelDeployment", "gpufleet.io/v1alpha1", "other-md")]);
    expect(podsOwnedByModelDeployment({ ...chain, leaderWorkerSets: [foreignSet], pods: [leader] })).toEqual([]);
    expect(podsOwnedByModelDeployment({ ...chain, leaderWorkerSets: [], pods: [leader] })).toEqual([]);
    const tenantSet = object("leader-sts-uid", [ref("LeaderWorkerSet", "leaderworkerset.x-k8s.io/v1", "tenant-lws")]);
    expect(podsOwnedByModelDeployment({ ...chain, statefulSets: [tenantSet], pods: [leader] })).toEqual([]);
  });
});
