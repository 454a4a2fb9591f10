/**
 * /metrics behind TokenReview + SubjectAccessReview (operator/runtime/metrics-auth.ts) against the real
 * API server: no token or a forged one is 401, a ServiceAccount without `get /metrics` is 403, one bound
 * to a ClusterRole granting it reads the metrics; the probes stay open for the kubelet.
 */
import { CoreV1Api, RbacAuthorizationV1Api, type KubeConfig } from "@kubernetes/client-node";
import { Registry, Counter } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeClient } from "../operator/runtime/kube-client.js";
import { kubeRequestAuthorizer } from "../operator/runtime/metrics-auth.js";
import { startOpsServer, type OpsServer } from "../operator/runtime/ops-server.js";
import { testKubeConfig, uniqueNamespace, type TestNamespace } from "./support/kube.js";
import { serviceAccountKubeconfig } from "./support/serviceaccount-kubeconfig.js";

let kubeConfig: KubeConfig;
let namespace: TestNamespace;
let client: KubeClient;
let ops: OpsServer;
const roleName = `metrics-reader-${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  kubeConfig = testKubeConfig();
  namespace = await uniqueNamespace(kubeConfig, "metrics-auth");
  const core = kubeConfig.makeApiClient(CoreV1Api);
  for (const name of ["prometheus", "nosy"]) await core.createNamespacedServiceAccount({ namespace: namespace.name, body: { metadata: { name } } });
  const rbac = kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createClusterRole({ body: { metadata: { name: roleName }, rules: [{ nonResourceURLs: ["/metrics"], verbs: ["get"] }] } });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: roleName },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: roleName },
      subjects: [{ kind: "ServiceAccount", name: "prometheus", namespace: namespace.name }],
    },
  });
  const registry = new Registry();
  new Counter({ name: "gpufleet_test_total", help: "a metric", registers: [registry] }).inc();
  client = new KubeClient(kubeConfig);
  ops = await startOpsServer({
    host: "127.0.0.1",
    port: 0,
    registry,
    healthy: () => true,
    ready: () => true,
    authorizeMetrics: kubeRequestAuthorizer(client),
  });
}, 120_000);

afterAll(async () => {
  await ops?.close();
  client?.close();
  const rbac = kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  await rbac.deleteClusterRoleBinding({ name: roleName }).catch(() => undefined);
  await rbac.deleteClusterRole({ name: roleName }).catch(() => undefined);
  await namespace?.delete();
});

const get = (path: string, token?: string) =>
  fetch(`http://127.0.0.1:${ops.port}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

describe("/metrics with authentication and authorization by the API server", () => {
  it("refuses a request without a token, and a forged token, with 401", async () => {
    expect((await get("/metrics")).status).toBe(401);
    expect((await get("/metrics", "not-a-real-token")).status).toBe(401);
  });

  it("refuses an authenticated ServiceAccount that may not get /metrics with 403", async () => {
    const nosy = await serviceAccountKubeconfig(kubeConfig, namespace.name, "nosy");
    const response = await get("/metrics", nosy.token);
    expect(response.status).toBe(403);
    expect(await response.text()).not.toContain("gpufleet_test_total");
  });

  it("serves the metrics to a ServiceAccount bound to a ClusterRole granting get /metrics", async () => {
    const prometheus = await serviceAccountKubeconfig(kubeConfig, namespace.name, "prometheus");
    const response = await get("/metrics", prometheus.token);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain("gpufleet_test_total 1");
  });

  it("keeps /healthz and /readyz open for the kubelet's probes", async () => {
    expect((await get("/healthz")).status).toBe(200);
    expect((await get("/readyz")).status).toBe(200);
  });
});
