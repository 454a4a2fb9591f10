/**
 * The chart's ValidatingAdmissionPolicy for the gateway, enforced by the real API server: the gateway's
 * ServiceAccount, even with RBAC that allows much more, can change nothing on a ModelDeployment but the
 * demand.gpufleet.io/* annotations. The policy and binding come from `helm template` of the chart.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { REPO_ROOT } from "../operator/api/generate.js";
import { KubeApiError, KubeClient, type KubeObject } from "../operator/runtime/kube-client.js";
import { ensureClusterBinaries, readPinnedTools } from "../tools/binaries.js";
import { registerChartKinds } from "./support/chart-objects.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { runHelmOk } from "./support/helm.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { modelDeploymentObject, modelDeploymentPath } from "./support/operator.js";
import { serviceAccountKubeconfig } from "./support/serviceaccount-kubeconfig.js";

registerChartKinds();

const kubeConfig = testKubeConfig();
const admin = new KubeClient(kubeConfig);
let gateway: KubeClient;
let namespace: TestNamespace;
let helmHome: string;
const policyObjects: KubeObject[] = [];
/** The chart's default name for the gateway's ServiceAccount: <fullname>-gateway (release "gf"). */
const serviceAccount = "gf-gpufleet-gateway";

const mdPath = () => modelDeploymentPath(namespace.name, "chat");
const demandKey = "demand.gpufleet.io/gw-test-7d9f-abcde";
const demandValue = () => JSON.stringify({ held: 2, lastRequestAt: Date.now(), updatedAt: Date.now() });

async function status(request: Promise<unknown>): Promise<number> {
  try {
    await request;
    return 200;
  } catch (error) {
    if (error instanceof KubeApiError) return error.statusCode;
    throw error;
  }
}

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "vap");
  // The chart as a user renders it, released into this namespace.
  const helm = (await ensureClusterBinaries({ only: ["helm"] })).helm;
  helmHome = mkdtempSync(join(tmpdir(), "gpufleet-helm-home-"));
  const kubeconfigPath = join(helmHome, "admin.kubeconfig");
  writeFileSync(kubeconfigPath, kubeConfig.exportConfig(), { mode: 0o600 });
  const rendered = await runHelmOk(
    helm,
    ["template", "gf", join(REPO_ROOT, "charts", "gpufleet"), "--namespace", namespace.name, "--kube-version", readPinnedTools().versions["kube-apiserver"]],
    { home: helmHome, kubeconfig: kubeconfigPath },
  );
  for (const document of parseAllDocuments(rendered)) {
    const object = document.toJS() as KubeObject | null;
    if ((object?.kind === "ValidatingAdmissionPolicy" || object?.kind === "ValidatingAdmissionPolicyBinding") && object.metadata?.name?.endsWith("-gateway-demand-only")) policyObjects.push(object);
  }
  expect(policyObjects.map((o) => o.kind).sort()).toEqual(["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]);
  for (const object of policyObjects) await admin.apply(object, { fieldManager: "gpufleet-test", force: true });

  // RBAC far wider than the gateway's: every verb on ModelDeployments and their subresources, so that
  // whatever is refused below is refused by the policy, not by RBAC.
  await admin.create({ apiVersion: "v1", kind: "ServiceAccount", metadata: { name: serviceAccount, namespace: namespace.name } } as KubeObject);
  await admin.create({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name: "too-much", namespace: namespace.name },
    rules: [{ apiGroups: ["gpufleet.io"], resources: ["modeldeployments", "modeldeployments/status", "modeldeployments/scale"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete"] }],
  } as KubeObject);
  await admin.create({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name: "too-much", namespace: namespace.name },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "too-much" },
    subjects: [{ kind: "ServiceAccount", name: serviceAccount, namespace: namespace.name }],
  } as KubeObject);
  gateway = new KubeClient((await serviceAccountKubeconfig(kubeConfig, namespace.name, serviceAccount)).kubeConfig);

  await admin.apply(
    modelDeploymentObject(namespace.name, "chat", {
      model: { name: "chat", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } } },
      autoscaling: { enabled: true, minReplicas: 0, maxReplicas: 2, scaleToZeroIdleSeconds: 120 },
      replicas: 0,
    }),
    { fieldManager: "platform-team", force: true },
  );
  await admin.patch(mdPath(), { metadata: { annotations: { "team.example/owner": "ml" }, labels: { tier: "gold" } } });
  // The API server loads a new policy asynchronously: wait until it refuses what it must. Each probe is
  // a real change (a no-op patch leaves object == oldObject, which the policy has no reason to refuse).
  let probe = 0;
  await waitFor(async () => (await status(gateway.patch(mdPath(), { metadata: { labels: { probe: `p${++probe}` } } }))) === 403, {
    timeoutMs: 60_000,
    description: "the policy in force",
  });
  await admin.patch(mdPath(), { metadata: { labels: { probe: null } } });
}, 600_000);

afterAll(async () => {
  for (const object of policyObjects.reverse())
    await admin.delete(`/apis/admissionregistration.k8s.io/v1/${object.kind === "ValidatingAdmissionPolicy" ? "validatingadmissionpolicies" : "validatingadmissionpolicybindings"}/${object.metadata?.name}`).catch(() => undefined);
  gateway?.close();
  await namespace?.delete();
  admin.close();
  if (helmHome) rmSync(helmHome, { recursive: true, force: true });
});

describe("the gateway's ServiceAccount on a ModelDeployment", () => {
  it("may set and remove its demand annotation", async () => {
    await gateway.patch(mdPath(), { metadata: { annotations: { [demandKey]: demandValue() } } });
    const md = await admin.get<KubeObject>(mdPath());
    expect(md.metadata?.annotations?.[demandKey]).toContain('"held":2');
    await gateway.patch(mdPath(), { metadata: { annotations: { [demandKey]: null } } });
    expect((await admin.get<KubeObject>(mdPath())).metadata?.annotations?.[demandKey]).toBeUndefined();
  });

  it("may not change the spec, other annotations, labels or finalizers", async () => {
    const refused = async (patch: unknown) => {
      try {
        await gateway.patch(mdPath(), patch);
      } catch (error) {
        return error as KubeApiError;
      }
      throw new Error(`patch ${JSON.stringify(patch)} was accepted`);
    };
    const spec = await refused({ spec: { replicas: 2 } });
    expect(spec.statusCode).toBe(403);
    expect(spec.message).toContain("only demand.gpufleet.io/* annotations");
    expect((await refused({ metadata: { annotations: { "team.example/owner": "gateway" } } })).statusCode).toBe(403);
    expect((await refused({ metadata: { annotations: { "team.example/owner": null } } })).statusCode).toBe(403);
    expect((await refused({ metadata: { annotations: { "gpufleet.io/other": "x", [demandKey]: demandValue() } } })).statusCode).toBe(403);
    expect((await refused({ metadata: { labels: { tier: "free" } } })).statusCode).toBe(403);
    expect((await refused({ metadata: { finalizers: ["example.com/hold"] } })).statusCode).toBe(403);
    const md = await admin.get<KubeObject & { spec: { replicas: number } }>(mdPath());
    expect(md.spec.replicas).toBe(0);
    expect(md.metadata?.labels?.tier).toBe("gold");
  });

  it("may not scale, write status, create or delete", async () => {
    expect(await status(gateway.patch(`${mdPath()}/scale`, { spec: { replicas: 1 } }))).toBe(403);
    expect(await status(gateway.patch(`${mdPath()}/status`, { status: { replicas: 5 } }))).toBe(403);
    expect(await status(gateway.delete(mdPath()))).toBe(403);
    const other = modelDeploymentObject(namespace.name, "other", { model: { name: "other", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } } } });
    expect(await status(gateway.create(other))).toBe(403);
  });

  it("leaves everyone else alone: an admin still changes the spec", async () => {
    await admin.patch(mdPath(), { spec: { autoscaling: { maxReplicas: 3 } } });
    expect((await admin.get<KubeObject & { spec: { autoscaling: { maxReplicas: number } } }>(mdPath())).spec.autoscaling.maxReplicas).toBe(3);
  });
});
