import { describe, expect, it } from "vitest";
import {
  checkFleet,
  fleetIsClean,
  retryAfterCompliance,
  type ObservedModelDeployment,
  type ObservedOwnedObject,
} from "./invariants.js";

const md = (
  name: string,
  uid: string,
  generation = 1,
  observedGeneration: number | undefined = generation,
): ObservedModelDeployment => ({
  name,
  uid,
  generation,
  observedGeneration,
  deleting: false,
});
const objects = (name: string, uid: string | undefined): ObservedOwnedObject[] =>
  (["Deployment", "Service", "PodDisruptionBudget"] as const).map((kind) => ({
    kind,
    name,
    modelDeploymentLabel: name,
    controllerUid: uid,
    deleting: false,
  }));

describe("checkFleet", () => {
  it("passes a fleet with one Deployment, Service and PDB per live ModelDeployment, all current", () => {
    const check = checkFleet(
      new Set(["a", "b"]),
      [md("a", "u1"), md("b", "u2", 3)],
      [...objects("a", "u1"), ...objects("b", "u2")],
    );
    expect(check).toMatchObject({ objectsChecked: 8, lost: 0, duplicate: 0, orphaned: 0, stale: 0 });
    expect(fleetIsClean(check)).toBe(true);
  });

  it("counts a missing PDB and a missing ModelDeployment as lost", () => {
    const check = checkFleet(new Set(["a", "gone"]), [md("a", "u1")], objects("a", "u1").slice(0, 2));
    expect(check.lost).toBe(2);
    expect(check.problems).toEqual(["a: no PodDisruptionBudget", "ModelDeployment gone is missing"]);
  });

  it("counts objects of a deleted ModelDeployment's uid as orphaned, even when a namesake lives", () => {
    const check = checkFleet(
      new Set(["a"]),
      [md("a", "new")],
      [...objects("a", "old"), ...objects("a", "new")],
    );
    expect(check.orphaned).toBe(3);
    expect(check.lost).toBe(0);
    expect(fleetIsClean(check)).toBe(false);
  });

  it("counts a second Deployment controlled by the same ModelDeployment as a duplicate", () => {
    const extra: ObservedOwnedObject = {
      kind: "Deployment",
      name: "a-2",
      modelDeploymentLabel: "a",
      controllerUid: "u1",
      deleting: false,
    };
    expect(checkFleet(new Set(["a"]), [md("a", "u1")], [...objects("a", "u1"), extra]).duplicate).toBe(1);
  });

  it("counts a status behind its generation as stale and a surviving deleted ModelDeployment as orphaned", () => {
    const check = checkFleet(
      new Set(["a"]),
      [md("a", "u1", 4, 3), md("b", "u2")],
      [...objects("a", "u1"), ...objects("b", "u2")],
    );
    expect(check.stale).toBe(1);
    expect(check.orphaned).toBe(1);
  });

  it("does not require a LeaderWorkerSet or history ConfigMap, but counts a dead owner's as orphaned and a second as a duplicate", () => {
    const optional = (kind: "LeaderWorkerSet" | "ConfigMap", name: string, uid: string): ObservedOwnedObject => ({
      kind,
      name,
      modelDeploymentLabel: name,
      controllerUid: uid,
      deleting: false,
    });
    expect(fleetIsClean(checkFleet(new Set(["a"]), [md("a", "u1")], objects("a", "u1")))).toBe(true);
    const withHistory = checkFleet(new Set(["a"]), [md("a", "u1")], [...objects("a", "u1"), optional("ConfigMap", "a", "u1")]);
    expect(fleetIsClean(withHistory)).toBe(true);
    const leftovers = checkFleet(new Set(["a"]), [md("a", "u1")], [
      ...objects("a", "u1"),
      optional("ConfigMap", "gone", "u-dead"),
      optional("LeaderWorkerSet", "gone", "u-dead"),
      optional("LeaderWorkerSet", "a", "u1"),
      optional("LeaderWorkerSet", "a", "u1"),
    ]);
    expect(leftovers).toMatchObject({ lost: 0, orphaned: 2, duplicate: 1 });
  });

  it("ignores objects already being deleted", () => {
    const dying = objects("x", "dead").map((object) => ({ ...object, deleting: true }));
    expect(fleetIsClean(checkFleet(new Set(["a"]), [md("a", "u1")], [...objects("a", "u1"), ...dying]))).toBe(
      true,
    );
  });
});

describe("retryAfterCompliance", () => {
  it("flags a retry of the same request sooner than Retry-After asked", () => {
    const log = [
      { atMs: 0, method: "GET", path: "/x", status: 429, retryAfterSeconds: 2 },
      { atMs: 500, method: "GET", path: "/x", status: 200 },
      { atMs: 0, method: "PATCH", path: "/y", status: 429, retryAfterSeconds: 1 },
      { atMs: 1000, method: "PATCH", path: "/y", status: 200 },
      { atMs: 100, method: "GET", path: "/other", status: 200 },
    ];
    expect(retryAfterCompliance(log)).toEqual({ followUps: 2, early: 1 });
  });

  it("leaves out creates (another Event POSTed to the same collection is no retry) and tells a watch from a list", () => {
    const log = [
      { atMs: 0, method: "POST", path: "/events", status: 429, retryAfterSeconds: 2 },
      { atMs: 100, method: "POST", path: "/events", status: 201 },
      { atMs: 0, method: "GET", path: "/pods", status: 429, retryAfterSeconds: 2 },
      { atMs: 50, method: "GET", path: "/pods", status: 200, watch: true },
      { atMs: 2100, method: "GET", path: "/pods", status: 200 },
    ];
    expect(retryAfterCompliance(log)).toEqual({ followUps: 1, early: 0 });
  });
});
