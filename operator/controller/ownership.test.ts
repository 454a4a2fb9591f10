import { describe, expect, it } from "vitest";
import type { KubeObject } from "../runtime/kube-client.js";
import { confirmedOrphans, findOrphans, guardWorkload, ownershipVerdict } from "./ownership.js";
import { SELECTOR_LABEL } from "./reconcile-plan.js";

const owner = { name: "web", uid: "uid-live" };
const mdRef = (uid: string, name = "web") => ({
  apiVersion: "gpufleet.io/v1alpha1",
  kind: "ModelDeployment",
  name,
  uid,
  controller: true,
  blockOwnerDeletion: true,
});
const object = (metadata: KubeObject["metadata"]): KubeObject => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name: "web", namespace: "team-a", uid: "svc-uid", resourceVersion: "7", ...metadata },
});

describe("ownershipVerdict", () => {
  it("lets the operator create what is absent and apply over what this ModelDeployment controls", () => {
    expect(ownershipVerdict(undefined, owner)).toEqual({ verdict: "absent" });
    expect(ownershipVerdict(object({ ownerReferences: [mdRef("uid-live")] }), owner)).toEqual({ verdict: "owned", uid: "svc-uid" });
  });

  it("calls foreign a plain Service, the cluster's own `kubernetes` Service, and anything controlled by another owner", () => {
    const kubernetes = object({ name: "kubernetes", labels: { component: "apiserver", provider: "kubernetes" } });
    expect(ownershipVerdict(kubernetes, { name: "kubernetes", uid: "md" }).verdict).toBe("foreign");
    expect(ownershipVerdict(object({ labels: { app: "web" } }), owner).verdict).toBe("foreign");
    const deploymentOwned = object({ ownerReferences: [{ apiVersion: "apps/v1", kind: "Deployment", name: "web", uid: "x", controller: true }] });
    expect(ownershipVerdict(deploymentOwned, owner)).toEqual({ verdict: "foreign", owner: "controlled by Deployment web" });
  });

  it("does not trust gpufleet's labels alone: a labelled object with no controller, or only a non-controller reference, is foreign", () => {
    expect(ownershipVerdict(object({ labels: { [SELECTOR_LABEL]: "web" } }), owner).verdict).toBe("foreign");
    const notController = object({ labels: { [SELECTOR_LABEL]: "web" }, ownerReferences: [{ ...mdRef("uid-live"), controller: false }] });
    expect(ownershipVerdict(notController, owner).verdict).toBe("foreign");
  });

  it("calls stale gpufleet's object left by a deleted ModelDeployment of the same name, and only that", () => {
    const leftover = object({ labels: { [SELECTOR_LABEL]: "web" }, ownerReferences: [mdRef("uid-dead")] });
    expect(ownershipVerdict(leftover, owner)).toEqual({ verdict: "stale", uid: "svc-uid", deadOwnerUid: "uid-dead" });
    // Another ModelDeployment's name on the reference, no gpufleet label, or a label for another name: foreign.
    expect(ownershipVerdict(object({ labels: { [SELECTOR_LABEL]: "web" }, ownerReferences: [mdRef("uid-a", "a")] }), owner).verdict).toBe("foreign");
    expect(ownershipVerdict(object({ ownerReferences: [mdRef("uid-dead")] }), owner).verdict).toBe("foreign");
    expect(ownershipVerdict(object({ labels: { [SELECTOR_LABEL]: "other" }, ownerReferences: [mdRef("uid-dead")] }), owner).verdict).toBe("foreign");
    // A reference that looks like ours but in another API group is not a ModelDeployment.
    const lookalike = object({ labels: { [SELECTOR_LABEL]: "web" }, ownerReferences: [{ ...mdRef("uid-dead"), apiVersion: "evil.example/v1" }] });
    expect(ownershipVerdict(lookalike, owner).verdict).toBe("foreign");
  });

  it("waits for an object that is being deleted, whoever owns it", () => {
    expect(ownershipVerdict(object({ deletionTimestamp: "2026-01-01T00:00:00Z", ownerReferences: [mdRef("uid-dead")] }), owner).verdict).toBe("terminating");
  });
});

describe("guardWorkload", () => {
  const ours = object({ ownerReferences: [mdRef("uid-live")] });
  const leftover = object({ labels: { [SELECTOR_LABEL]: "web" }, ownerReferences: [mdRef("uid-dead")] });

  it("applies when every object is absent or controlled by this ModelDeployment, with each one's uid as a precondition", () => {
    const guard = guardWorkload(
      [
        { kind: "Service", name: "web", observed: ours },
        { kind: "Deployment", name: "web", observed: undefined },
      ],
      owner,
    );
    expect(guard).toEqual({
      action: "apply",
      objects: [
        { kind: "Service", name: "web", uid: "svc-uid" },
        { kind: "Deployment", name: "web", uid: undefined },
      ],
      takeOver: [],
    });
  });

  it("refuses the whole workload when any one object is foreign, naming it", () => {
    const guard = guardWorkload(
      [
        { kind: "Service", name: "web", observed: object({ labels: { app: "web" } }) },
        { kind: "PodDisruptionBudget", name: "web", observed: leftover },
        { kind: "Deployment", name: "web", observed: undefined },
      ],
      owner,
    );
    expect(guard.action).toBe("refuse");
    expect(guard.action === "refuse" && guard.message).toMatch(/^Service web \(no controller.*\) already exists and is not owned by this ModelDeployment/);
  });

  it("takes over the objects of a dead namesake with their uid as a precondition, and waits for objects being deleted", () => {
    expect(guardWorkload([{ kind: "Service", name: "web", observed: leftover }, { kind: "Deployment", name: "web", observed: undefined }], owner)).toEqual({
      action: "apply",
      objects: [
        { kind: "Service", name: "web", uid: "svc-uid" },
        { kind: "Deployment", name: "web", uid: undefined },
      ],
      takeOver: [{ kind: "Service", name: "web", deadOwnerUid: "uid-dead" }],
    });
    const deleting = object({ deletionTimestamp: "2026-01-01T00:00:00Z" });
    expect(guardWorkload([{ kind: "Service", name: "web", observed: deleting }], owner).action).toBe("wait");
  });
});

describe("findOrphans (the garbage collector's backstop)", () => {
  const labelled = (metadata: KubeObject["metadata"], kind = "Service"): KubeObject => ({
    ...object({ labels: { [SELECTOR_LABEL]: "web" }, ...metadata }),
    kind,
  });
  const live = [{ namespace: "team-a", name: "other", uid: "uid-other" }];

  it("finds a gpufleet object whose ModelDeployment is gone and whose name no live ModelDeployment has", () => {
    expect(findOrphans([labelled({ ownerReferences: [mdRef("uid-dead")] })], live)).toEqual([
      { kind: "Service", namespace: "team-a", name: "web", uid: "svc-uid", ownerName: "web", ownerUid: "uid-dead" },
    ]);
  });

  it("leaves objects of live ModelDeployments, of a live namesake (taken over instead), and in other namespaces' terms", () => {
    const dead = labelled({ ownerReferences: [mdRef("uid-dead")] });
    expect(findOrphans([labelled({ ownerReferences: [mdRef("uid-live")] })], [{ namespace: "team-a", name: "web", uid: "uid-live" }])).toEqual([]);
    expect(findOrphans([dead], [{ namespace: "team-a", name: "web", uid: "uid-new" }])).toEqual([]);
    // The same uid alive in another namespace does not keep this one: identity is per namespace.
    expect(findOrphans([dead], [{ namespace: "team-b", name: "web", uid: "uid-dead" }])).toHaveLength(1);
  });

  it("never touches what is not gpufleet's by both label and owner, nor what is already being deleted", () => {
    const candidates = [
      object({ ownerReferences: [mdRef("uid-dead")] }), // no gpufleet label
      labelled({}), // no owner
      labelled({ ownerReferences: [{ ...mdRef("uid-dead"), controller: false }] }), // not a controller
      labelled({ ownerReferences: [{ ...mdRef("uid-dead"), kind: "Deployment", apiVersion: "apps/v1" }] }), // another kind
      labelled({ ownerReferences: [{ ...mdRef("uid-dead"), apiVersion: "other.io/v1" }] }), // another group
      labelled({ ownerReferences: [mdRef("uid-dead", "someone-else")] }), // label and owner disagree
      labelled({ ownerReferences: [mdRef("uid-dead"), { ...mdRef("uid-x", "x") }] }), // two controllers
      labelled({ ownerReferences: [mdRef("uid-dead")], deletionTimestamp: "2026-11-30T00:00:00Z" }),
      labelled({ ownerReferences: [mdRef("uid-dead")], uid: undefined }),
    ];
    expect(findOrphans(candidates, [])).toEqual([]);
  });

  it("confirms only orphans seen by the previous sweep too (the garbage collector gets one interval first)", () => {
    const orphans = findOrphans(
      [labelled({ ownerReferences: [mdRef("uid-dead")] }), labelled({ uid: "dep-uid", ownerReferences: [mdRef("uid-dead")] }, "Deployment")],
      [],
    );
    expect(confirmedOrphans(new Set(), orphans)).toEqual([]);
    expect(confirmedOrphans(new Set(["dep-uid"]), orphans).map((o) => o.kind)).toEqual(["Deployment"]);
  });
});
