import { API_GROUP, KIND } from "../api/modeldeployment.js";
import type { KubeObject } from "../runtime/kube-client.js";
import { SELECTOR_LABEL } from "./reconcile-plan.js";

/**
 * Who owns an object the operator is about to write, decided from the object as read by name from the
 * API server (never from a label-filtered cache: a tenant's or the cluster's own object need not carry
 * gpufleet's labels). Pure: the observed object and the ModelDeployment's identity in, a verdict out.
 *
 *  - absent: nothing by that name; the operator may create it.
 *  - owned: its controller owner reference carries this ModelDeployment's uid; the operator may apply over it.
 *  - stale: gpufleet's object (gpufleet's selector label for this name) whose controller is a ModelDeployment
 *    of the same name but another uid. A namespace holds one ModelDeployment per name, so that owner has been
 *    deleted; the object is left over (the garbage collector has not caught up, e.g. after a control-plane
 *    outage) and is gpufleet's to take over: a server-side apply by gpufleet's field manager with this
 *    ModelDeployment's owner reference replaces the dead one (the field manager that wrote it), and the
 *    object's uid in the applied body is a precondition, so only that very object is taken over.
 *  - terminating: being deleted; wait for it to go.
 *  - foreign: anything else (no controller, another controller, another kind or name of owner, no gpufleet
 *    label). Never written over: the ModelDeployment reports NameConflict.
 */
export type OwnershipVerdict =
  | { verdict: "absent" }
  | { verdict: "owned"; uid: string }
  | { verdict: "stale"; uid: string; deadOwnerUid: string }
  | { verdict: "terminating"; uid: string | undefined }
  | { verdict: "foreign"; owner: string };

export interface OwnerIdentity {
  name: string;
  uid: string;
}

function isModelDeploymentRef(ref: { apiVersion?: string; kind?: string }): boolean {
  return ref.kind === KIND && (ref.apiVersion ?? "").split("/")[0] === API_GROUP;
}

/** A short description of who controls an object, for the NameConflict message (names only, bounded). */
function describeController(object: KubeObject): string {
  const controller = object.metadata?.ownerReferences?.find((ref) => ref.controller);
  if (!controller) return "no controller owner";
  const kind = String(controller.kind ?? "").slice(0, 63);
  const name = String(controller.name ?? "").slice(0, 253);
  return `controlled by ${kind} ${name}`;
}

export function ownershipVerdict(object: KubeObject | undefined, owner: OwnerIdentity): OwnershipVerdict {
  if (!object) return { verdict: "absent" };
  const uid = object.metadata?.uid;
  if (object.metadata?.deletionTimestamp) return { verdict: "terminating", uid };
  const controllers = (object.metadata?.ownerReferences ?? []).filter((ref) => ref.controller === true);
  const controller = controllers.length === 1 ? controllers[0] : undefined;
  if (controller && isModelDeploymentRef(controller) && controller.uid === owner.uid && uid)
    return { verdict: "owned", uid };
  if (
    controller &&
    uid &&
    isModelDeploymentRef(controller) &&
    controller.name === owner.name &&
    controller.uid !== owner.uid &&
    object.metadata?.labels?.[SELECTOR_LABEL] === owner.name
  )
    return { verdict: "stale", uid, deadOwnerUid: controller.uid };
  return { verdict: "foreign", owner: describeController(object) };
}

/** One object the operator wants to write, and what is there now under its name. */
export interface GuardedObject {
  kind: string;
  name: string;
  observed: KubeObject | undefined;
}

/**
 * What to do with a whole workload (Service, PDB, Deployment, ...) given each object's verdict. Any foreign
 * object refuses the whole workload, so a ModelDeployment never runs half-wired to someone else's Service.
 */
export type WorkloadGuard =
  | {
      action: "apply";
      /** Each object with the uid an apply over it must carry as a precondition (undefined: create it). */
      objects: Array<{ kind: string; name: string; uid: string | undefined }>;
      /** Objects left by a deleted namesake that the apply takes over. */
      takeOver: Array<{ kind: string; name: string; deadOwnerUid: string }>;
    }
  | { action: "wait"; message: string }
  | { action: "refuse"; message: string };

export function guardWorkload(objects: readonly GuardedObject[], owner: OwnerIdentity): WorkloadGuard {
  const verdicts = objects.map((object) => ({ ...object, ...ownershipVerdict(object.observed, owner) }));
  const foreign = verdicts.flatMap((v) => (v.verdict === "foreign" ? [`${v.kind} ${v.name} (${v.owner})`] : []));
  if (foreign.length)
    return {
      action: "refuse",
      message: `${foreign.join("; ")} already exists and is not owned by this ModelDeployment; gpufleet does not write over it: rename the ModelDeployment or remove the other object`,
    };
  const terminating = verdicts.filter((v) => v.verdict === "terminating");
  if (terminating.length)
    return {
      action: "wait",
      message: `waiting for the previous ${terminating.map((v) => `${v.kind} ${v.name}`).join(", ")} to be deleted`,
    };
  return {
    action: "apply",
    objects: verdicts.map((v) => ({ kind: v.kind, name: v.name, uid: v.verdict === "owned" || v.verdict === "stale" ? v.uid : undefined })),
    takeOver: verdicts.flatMap((v) => (v.verdict === "stale" ? [{ kind: v.kind, name: v.name, deadOwnerUid: v.deadOwnerUid }] : [])),
  };
}

/** A ModelDeployment as the orphan sweep sees it: identity only. */
export interface LiveModelDeployment {
  namespace: string;
  name: string;
  uid: string;
}

/** An object gpufleet wrote for a ModelDeployment that no longer exists, and whose namesake does not exist either. */
export interface OrphanCandidate {
  kind: string;
  namespace: string;
  name: string;
  uid: string;
  ownerName: string;
  ownerUid: string;
}

/**
 * The garbage collector's backstop (pure): objects gpufleet labelled for a ModelDeployment whose controller
 * owner reference names a ModelDeployment (by uid) that is not among the live ones, and whose owner's name is
 * not taken by a live ModelDeployment either (a namesake takes such objects over instead; see "stale" above).
 * The kube garbage collector should delete these through their owner reference; after a control-plane outage
 * it was seen not to (sim/chaos, seed 7). Only objects that are gpufleet's by both the label and the owner
 * reference's kind and name are candidates; the caller still confirms each one against the API server.
 */
export function findOrphans(
  objects: readonly KubeObject[],
  live: readonly LiveModelDeployment[],
): OrphanCandidate[] {
  const liveUids = new Set(live.map((md) => `${md.namespace}/${md.uid}`));
  const liveNames = new Set(live.map((md) => `${md.namespace}/${md.name}`));
  const orphans: OrphanCandidate[] = [];
  for (const object of objects) {
    const metadata = object.metadata;
    if (!metadata?.uid || !metadata.name || metadata.deletionTimestamp) continue;
    const namespace = metadata.namespace ?? "";
    const label = metadata.labels?.[SELECTOR_LABEL];
    const controllers = (metadata.ownerReferences ?? []).filter((ref) => ref.controller === true);
    const controller = controllers.length === 1 ? controllers[0] : undefined;
    if (!label || !controller || !isModelDeploymentRef(controller) || !controller.uid) continue;
    if (controller.name !== label) continue;
    if (liveUids.has(`${namespace}/${controller.uid}`) || liveNames.has(`${namespace}/${controller.name}`)) continue;
    orphans.push({ kind: object.kind ?? "", namespace, name: metadata.name, uid: metadata.uid, ownerName: controller.name, ownerUid: controller.uid });
  }
  return orphans;
}

/**
 * Orphans seen in this sweep and the previous one (by object uid): the garbage collector gets a whole sweep
 * interval to do its job before the operator steps in, so in normal operation the backstop deletes nothing.
 */
export function confirmedOrphans(previous: ReadonlySet<string>, current: readonly OrphanCandidate[]): OrphanCandidate[] {
  return current.filter((orphan) => previous.has(orphan.uid));
}
