/**
 * Which RBAC permissions a client's requests needed, from a log of the requests themselves (pure). Used by
 * test/helm-operator-rbac.test.ts, which puts a recording proxy (sim/chaos/fault-proxy.ts) between the real
 * operator and the API server and then holds the chart's rules against what was used: a granted verb no
 * request needed is a rule nobody would miss, so the chart's RBAC is minimal only if there is none.
 *
 * The mapping follows the API server's request info (k8s.io/apiserver's RequestInfoFactory): the path gives
 * group, resource, subresource and whether a name is present; the method and the watch parameter give the
 * verb (GET on a name: get; on a collection: list, or watch; POST: create; PUT: update; PATCH: patch;
 * DELETE: delete or deletecollection). A server-side apply that created its object (PATCH answered 201)
 * needed `create` as well as `patch`: the API server authorizes both.
 */

export interface RequestRecord {
  method: string;
  /** Path without the query. */
  path: string;
  status: number;
  watch?: boolean;
}

/** One permission: API group ("" for core), resource with "/subresource" if any, verb. */
export interface Permission {
  group: string;
  resource: string;
  verb: string;
}

export const permissionKey = (p: Permission): string => `${p.group}|${p.resource}|${p.verb}`;

/** The permissions one request needed; empty for discovery and other non-resource paths. */
export function permissionsOf(request: RequestRecord): Permission[] {
  const parts = request.path.split("/").filter(Boolean);
  let group: string;
  let rest: string[];
  if (parts[0] === "api" && parts.length >= 2) {
    group = "";
    rest = parts.slice(2);
  } else if (parts[0] === "apis" && parts.length >= 3) {
    group = parts[1]!;
    rest = parts.slice(3);
  } else return [];
  if (rest[0] === "namespaces" && rest.length >= 3) rest = rest.slice(2); // namespaced resource
  else if (rest[0] === "namespaces" && rest.length < 3) rest = ["namespaces", ...rest.slice(1)];
  const [resource, name, subresource] = rest;
  if (!resource) return [];
  const full = subresource ? `${resource}/${subresource}` : resource;
  const method = request.method.toUpperCase();
  let verbs: string[];
  if (method === "GET") verbs = name ? ["get"] : [request.watch ? "watch" : "list"];
  else if (method === "POST") verbs = ["create"];
  else if (method === "PUT") verbs = ["update"];
  else if (method === "PATCH") verbs = request.status === 201 ? ["patch", "create"] : ["patch"];
  else if (method === "DELETE") verbs = [name ? "delete" : "deletecollection"];
  else return [];
  return verbs.map((verb) => ({ group, resource: full, verb }));
}

export interface RbacRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  nonResourceURLs?: string[];
}

/** Every (group, resource, verb) the rules grant (no wildcards: the chart has none, and a test says so). */
export function grantedPermissions(rules: readonly RbacRule[]): Permission[] {
  return rules.flatMap((rule) =>
    (rule.apiGroups ?? []).flatMap((group) =>
      (rule.resources ?? []).flatMap((resource) => rule.verbs.map((verb) => ({ group, resource, verb }))),
    ),
  );
}

/** Granted permissions that no request used and no named reason covers. */
export function unusedGrants(
  granted: readonly Permission[],
  requests: readonly RequestRecord[],
  explained: ReadonlyMap<string, string> = new Map(),
): Permission[] {
  const used = new Set(requests.flatMap(permissionsOf).map(permissionKey));
  return granted.filter((p) => !used.has(permissionKey(p)) && !explained.has(permissionKey(p)));
}
