/**
 * A namespace that enforces the `restricted` Pod Security Standard (pod-security.kubernetes.io/enforce:
 * restricted, checked by the real API server's PodSecurity admission): a ModelDeployment there runs (its
 * engine pods meet restricted: non-root, no privilege escalation, all capabilities dropped, RuntimeDefault
 * seccomp, no ServiceAccount token), and one that asks to run as root (spec.engine.runAsUser 0) does not,
 * and says exactly why in its Ready condition: reason PodSecurityForbidden with the API server's words.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningOperator } from "../operator/operator.js";
import { KubeClient, type KubeObject } from "../operator/runtime/kube-client.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { condition, modelDeploymentObject, readModelDeployment, startTestOperator } from "./support/operator.js";

const kubeConfig = testKubeConfig();
const client = new KubeClient(kubeConfig);
let namespace: TestNamespace;
let operator: RunningOperator | undefined;

const spec = (extra: Record<string, unknown> = {}) => ({
  model: { name: "llama-3.2-1b", source: { huggingFace: { repo: "meta-llama/Llama-3.2-1B-Instruct" } }, maxContextLength: 8192 },
  gpu: { products: ["NVIDIA-L4"] },
  replicas: 1,
  ...extra,
});

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "restricted");
  await client.patch(`/api/v1/namespaces/${namespace.name}`, {
    metadata: { labels: { "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest" } },
  });
  operator = await startTestOperator(kubeConfig, namespace.name);
  await client.apply(modelDeploymentObject(namespace.name, "fits", spec()), { fieldManager: "tenant", force: true });
  await client.apply(modelDeploymentObject(namespace.name, "as-root", spec({ engine: { runAsUser: 0 } })), { fieldManager: "tenant", force: true });
}, 300_000);

afterAll(async () => {
  await operator?.stop();
  await namespace?.delete();
  client.close();
});

describe("a namespace enforcing the restricted Pod Security Standard", () => {
  it("runs a ModelDeployment: its engine pods are admitted, and it is Ready", async () => {
    const ready = await waitFor(
      async () => {
        const md = await readModelDeployment(client, namespace.name, "fits");
        return condition(md, "Ready")?.status === "True" && md.status?.readyReplicas === 1 ? md : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500, description: "fits Ready with 1 replica in the restricted namespace" },
    );
    expect(ready.status?.observedGeneration).toBe(ready.metadata.generation);
    const pods = await client.list<KubeObject & { spec?: { securityContext?: Record<string, unknown>; automountServiceAccountToken?: boolean } }>(
      `/api/v1/namespaces/${namespace.name}/pods`,
      { labelSelector: "gpufleet.io/model-deployment=fits" },
    );
    expect(pods.items).toHaveLength(1);
    expect(pods.items[0]?.spec?.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    expect(pods.items[0]?.spec?.automountServiceAccountToken).toBe(false);
  });

  it("says exactly why a ModelDeployment that runs as root does not run: PodSecurityForbidden, in the API server's words", async () => {
    const refused = await waitFor(
      async () => {
        const ready = condition(await readModelDeployment(client, namespace.name, "as-root"), "Ready");
        return ready?.reason === "PodSecurityForbidden" ? ready : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500, description: "as-root Ready=False PodSecurityForbidden" },
    );
    expect(refused.status).toBe("False");
    expect(refused.message).toContain("violates PodSecurity \"restricted:latest\"");
    expect(refused.message).toMatch(/runAsNonRoot|runAsUser=0/);
    expect(refused.message).toContain("spec.engine.runAsUser 0 runs as root");
    const pods = await client.list(`/api/v1/namespaces/${namespace.name}/pods`, { labelSelector: "gpufleet.io/model-deployment=as-root" });
    expect(pods.items).toEqual([]);
  });
});
