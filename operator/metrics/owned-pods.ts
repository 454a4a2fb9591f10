/**
 * Which pods belong to a ModelDeployment's workload, decided by the controller owner chain
 * Pod -> ReplicaSet -> Deployment -> ModelDeployment, compared by uid at every link. A label says
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
}

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
  return input.pods.filter((pod) => {
    const ref = controllerOf(pod);
    return inNamespace(pod) && ref?.kind === "ReplicaSet" && ref.apiVersion === "apps/v1" && replicaSetUids.has(ref.uid);
  });
}
