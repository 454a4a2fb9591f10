import { describe, expect, it } from "vitest";
import { grantedPermissions, permissionsOf, unusedGrants } from "./rbac-usage.js";

describe("permissionsOf", () => {
  it("maps paths and methods the way the API server's request info does", () => {
    expect(permissionsOf({ method: "GET", path: "/apis/apps/v1/namespaces/a/deployments", status: 200 })).toEqual([{ group: "apps", resource: "deployments", verb: "list" }]);
    expect(permissionsOf({ method: "GET", path: "/apis/apps/v1/namespaces/a/deployments", status: 200, watch: true })).toEqual([{ group: "apps", resource: "deployments", verb: "watch" }]);
    expect(permissionsOf({ method: "GET", path: "/api/v1/namespaces/a/services/web", status: 404 })).toEqual([{ group: "", resource: "services", verb: "get" }]);
    expect(permissionsOf({ method: "GET", path: "/api/v1/nodes", status: 200 })).toEqual([{ group: "", resource: "nodes", verb: "list" }]);
    expect(permissionsOf({ method: "PATCH", path: "/apis/gpufleet.io/v1alpha1/namespaces/a/modeldeployments/m/status", status: 200 })).toEqual([
      { group: "gpufleet.io", resource: "modeldeployments/status", verb: "patch" },
    ]);
    expect(permissionsOf({ method: "PUT", path: "/apis/coordination.k8s.io/v1/namespaces/a/leases/l", status: 200 })).toEqual([{ group: "coordination.k8s.io", resource: "leases", verb: "update" }]);
    expect(permissionsOf({ method: "POST", path: "/apis/events.k8s.io/v1/namespaces/a/events", status: 201 })).toEqual([{ group: "events.k8s.io", resource: "events", verb: "create" }]);
    expect(permissionsOf({ method: "DELETE", path: "/api/v1/namespaces/a/services/web", status: 200 })).toEqual([{ group: "", resource: "services", verb: "delete" }]);
    expect(permissionsOf({ method: "DELETE", path: "/api/v1/namespaces/a/services", status: 200 })).toEqual([{ group: "", resource: "services", verb: "deletecollection" }]);
  });

  it("counts a server-side apply that created its object as create and patch", () => {
    expect(permissionsOf({ method: "PATCH", path: "/api/v1/namespaces/a/services/web", status: 201 }).map((p) => p.verb)).toEqual(["patch", "create"]);
  });

  it("needs nothing for discovery", () => {
    expect(permissionsOf({ method: "GET", path: "/apis/inference.networking.k8s.io/v1", status: 200 })).toEqual([]);
    expect(permissionsOf({ method: "GET", path: "/apis", status: 200 })).toEqual([]);
    expect(permissionsOf({ method: "GET", path: "/version", status: 200 })).toEqual([]);
  });
});

describe("unusedGrants", () => {
  const rules = [{ apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "list", "watch", "delete"] }];
  it("names each granted verb no request used, unless a reason is given", () => {
    const requests = [
      { method: "GET", path: "/apis/apps/v1/namespaces/a/deployments", status: 200 },
      { method: "GET", path: "/apis/apps/v1/namespaces/a/deployments", status: 200, watch: true },
    ];
    expect(unusedGrants(grantedPermissions(rules), requests)).toEqual([
      { group: "apps", resource: "deployments", verb: "get" },
      { group: "apps", resource: "deployments", verb: "delete" },
    ]);
    expect(unusedGrants(grantedPermissions(rules), requests, new Map([["apps|deployments|get", "why"], ["apps|deployments|delete", "why"]]))).toEqual([]);
  });
});
