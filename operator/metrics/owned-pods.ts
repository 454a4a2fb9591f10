/**
 * Which pods belong to a ModelDeployment's workload, decided by the controller owner chain
 * Pod -> ReplicaSet -> Deployment -> ModelDeployment, compared by uid at every link; for a replica that
 * spans nodes, Pod -> StatefulSet -> LeaderWorkerSet -> ModelDeployment, which only the group leaders
 * (the pods that serve the API) match: workers belong to a StatefulSet controlled by their leader pod. A label says
 * nothing: any tenant that can create a pod can give it `gpufleet.io/model-deployment: <name>` and an
 * IP or port of its choosing, and the scraper (and the gateway, which routes with the same function)
 * would then talk to an address the tenant picked. Pure: callers pass what their informers hold.
 */
import type { V1OwnerReference } from "@kubernetes/client-node";
import { API_GROUP, API_VERSION, KIND } from "../api/modeldeployment.js";

interface Owned {
  metadata?: { name?: string; namespace?: string; uid?: string; ownerReferences?: V1OwnerReference[] };
}

/** The owner reference marked `controller: true`, if there is exactly one (the API server allows at most one). */
export function controllerOf(object: Owned): V1OwnerReference | undefined {
  const controllers = (object.metadata?.ownerReferences ?? []).filter((ref) => ref.controller === true);
  return controllers.length === 1 ? controllers[0] : undefined;
}

export interface OwnerChainInput<P extends Owned> {
  /** The ModelDeployment: its namespace and uid. */
  owner: { metadata: { namespace?: string; uid?: string } };
  pods: readonly P[];
  replicaSets: readonly Owned[];
  deployments: readonly Owned[];
  /** The LeaderWorkerSet chain (multi-node replicas); both needed for it. */
  statefulSets?: readonly Owned[];
  leaderWorkerSets?: readonly Owned[];
}

const LEADER_WORKER_SET_API_VERSION = "leaderworkerset.x-k8s.io/v1";

/**
 * The pods whose controller is a ReplicaSet whose controller is a Deployment whose controller is the
 * ModelDeployment (same namespace, uid at each link; apps/v1 kinds). Everything else is left out, however
 * it is labelled.
 */
export function podsOwnedByModelDeployment<P extends Owned>(input: OwnerChainInput<P>): P[] {
  const namespace = input.owner.metadata.namespace;
  const ownerUid = input.owner.metadata.uid;
  if (!ownerUid) return [];
  const inNamespace = (object: Owned) => (object.metadata?.namespace ?? namespace) === namespace;
  const deploymentUids = new Set<string>();
  for (const deployment of input.deployments) {
    const ref = controllerOf(deployment);
    const uid = deployment.metadata?.uid;
    if (inNamespace(deployment) && uid && ref?.kind === KIND && ref.apiVersion === `${API_GROUP}/${API_VERSION}` && ref.uid === ownerUid)
      deploymentUids.add(uid);
  }
  const replicaSetUids = new Set<string>();
  for (const replicaSet of input.replicaSets) {
    const ref = controllerOf(replicaSet);
    const uid = replicaSet.metadata?.uid;
    if (inNamespace(replicaSet) && uid && ref?.kind === "Deployment" && ref.apiVersion === "apps/v1" && deploymentUids.has(ref.uid))
      replicaSetUids.add(uid);
  }
  const groupSetUids = new Set<string>();
  for (const set of input.leaderWorkerSets ?? []) {
    const ref = controllerOf(set);
    const uid = set.metadata?.uid;
    if (inNamespace(set) && uid && ref?.kind === KIND && ref.apiVersion === `${API_GROUP}/${API_VERSION}` && ref.uid === ownerUid)
      groupSetUids.add(uid);
  }
  const leaderSetUids = new Set<string>();
  for (const statefulSet of input.statefulSets ?? []) {
    const ref = controllerOf(statefulSet);
    const uid = statefulSet.metadata?.uid;
    if (inNamespace(statefulSet) && uid && ref?.kind === "LeaderWorkerSet" && ref.apiVersion === LEADER_WORKER_SET_API_VERSION && groupSetUids.has(ref.uid))
      leaderSetUids.add(uid);
  }
  return input.pods.filter((pod) => {
    const ref = controllerOf(pod);
    if (!inNamespace(pod) || ref?.apiVersion !== "apps/v1") return false;
    return (ref.kind === "ReplicaSet" && replicaSetUids.has(ref.uid)) || (ref.kind === "StatefulSet" && leaderSetUids.has(ref.uid));
  });
}
