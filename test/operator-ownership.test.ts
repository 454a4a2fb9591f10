import type { V1Deployment, V1Service } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningOperator } from "../operator/operator.js";
import { KubeClient, type KubeObject } from "../operator/runtime/kube-client.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { condition, modelDeploymentObject, modelDeploymentPath, readModelDeployment, startTestOperator } from "./support/operator.js";

// A ModelDeployment named like an object gpufleet does not own never takes it over: the operator reads the
// object by name, refuses with a NameConflict condition and Event, writes nothing over it, and deleting the
// ModelDeployment leaves it alone (no owner reference was ever added, so the garbage collector has no claim).

const kubeConfig = testKubeConfig();
const client = new KubeClient(kubeConfig);
let namespace: TestNamespace;
const operators: RunningOperator[] = [];

const smallModel = {
  model: { name: "llama-3.2-1b", source: { huggingFace: { repo: "meta-llama/Llama-3.2-1B-Instruct" } }, maxContextLength: 8192 },
  gpu: { products: ["NVIDIA-L4"] },
  replicas: 1,
};

type EventsV1 = KubeObject & { reason?: string; note?: string; regarding?: { name?: string; kind?: string } };

async function eventReasons(ns: string, name: string): Promise<string[]> {
  const events = await client.list<EventsV1>(`/apis/events.k8s.io/v1/namespaces/${ns}/events`);
  return events.items.filter((e) => e.regarding?.kind === "ModelDeployment" && e.regarding.name === name).map((e) => e.reason ?? "");
}

async function waitForNameConflict(ns: string, name: string) {
  return waitFor(
    async () => {
      const md = await readModelDeployment(client, ns, name);
      return condition(md, "Ready")?.reason === "NameConflict" ? md : undefined;
    },
    { timeoutMs: 30_000, description: `${ns}/${name} reported NameConflict` },
  );
}

async function deleteAndWaitGone(ns: string, name: string): Promise<void> {
  await client.delete(modelDeploymentPath(ns, name));
  await waitFor(
    async () => {
      try {
        await readModelDeployment(client, ns, name);
        return false;
      } catch (error) {
        return (error as { statusCode?: number }).statusCode === 404;
      }
    },
    { timeoutMs: 30_000, description: `${ns}/${name} deleted` },
  );
  // Long enough for the garbage collector to act on anything that named it as owner.
  await new Promise((resolve) => setTimeout(resolve, 4_000));
}

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "ownership");
  operators.push(await startTestOperator(kubeConfig, namespace.name));
}, 120_000);

afterAll(async () => {
  await Promise.all(operators.map((operator) => operator.stop()));
  await namespace?.delete();
  client.close();
});

// The three cases run at once: each names a different object (the first in `default`, with its own
// operator), so the file takes as long as its longest case.
describe.concurrent("a ModelDeployment named like an object gpufleet does not own", () => {
  it("named `kubernetes` in `default`: refused with NameConflict, the API server's Service untouched and kept after the ModelDeployment is deleted", async () => {
    operators.push(await startTestOperator(kubeConfig, "default"));
    const servicePath = "/api/v1/namespaces/default/services/kubernetes";
    const before = await client.get<V1Service>(servicePath);
    await client.apply(modelDeploymentObject("default", "kubernetes", smallModel), { fieldManager: "tenant" });
    try {
      const md = await waitForNameConflict("default", "kubernetes");
      expect(condition(md, "Ready")).toMatchObject({ status: "False", observedGeneration: md.metadata.generation });
      expect(condition(md, "Ready")?.message).toMatch(/^Service kubernetes .*not owned by this ModelDeployment/);
      expect(md.status?.observedGeneration).toBeUndefined(); // not served: never looks reconciled
      await waitFor(async () => (await eventReasons("default", "kubernetes")).includes("NameConflict"), {
        timeoutMs: 15_000,
        description: "a NameConflict Event",
      });
      const after = await client.get<V1Service>(servicePath);
      expect(after.spec?.selector).toEqual(before.spec?.selector);
      expect(after.spec?.ports).toEqual(before.spec?.ports);
      expect(after.metadata?.ownerReferences).toBeUndefined();
      expect(after.metadata?.labels).toEqual(before.metadata?.labels);
      for (const path of ["/apis/apps/v1/namespaces/default/deployments/kubernetes", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/kubernetes"])
        await expect(client.get(path)).rejects.toMatchObject({ statusCode: 404 });
    } finally {
      await deleteAndWaitGone("default", "kubernetes");
    }
    expect((await client.get<V1Service>(servicePath)).metadata?.uid).toBe(before.metadata?.uid);
  });

  it("named like a plain Service `web` with an unnamed port: NameConflict status and Event, selector kept, Service survives the ModelDeployment's deletion", async () => {
    const ns = namespace.name;
    const service = await client.create<V1Service & KubeObject>({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web", namespace: ns, labels: { app: "web" } },
      spec: { selector: { app: "web" }, ports: [{ port: 80, targetPort: 8080 }] },
    });
    await client.apply(modelDeploymentObject(ns, "web", smallModel), { fieldManager: "tenant" });
    const md = await waitForNameConflict(ns, "web");
    expect(condition(md, "Degraded")).toMatchObject({ status: "True", reason: "NameConflict" });
    expect(md.status?.observedGeneration).toBeUndefined();
    await waitFor(async () => (await eventReasons(ns, "web")).includes("NameConflict"), { timeoutMs: 15_000, description: "a NameConflict Event" });
    const kept = await client.get<V1Service>(`/api/v1/namespaces/${ns}/services/web`);
    expect(kept.spec?.selector).toEqual({ app: "web" });
    expect(kept.spec?.ports).toHaveLength(1);
    expect(kept.metadata?.ownerReferences).toBeUndefined();
    // No half of the workload either: the Deployment would run pods nothing selects.
    await expect(client.get(`/apis/apps/v1/namespaces/${ns}/deployments/web`)).rejects.toMatchObject({ statusCode: 404 });

    await deleteAndWaitGone(ns, "web");
    const survivor = await client.get<V1Service>(`/api/v1/namespaces/${ns}/services/web`);
    expect(survivor.metadata?.uid).toBe(service.metadata?.uid);
    expect(survivor.spec?.selector).toEqual({ app: "web" });
  });

  it("named like a Deployment gpufleet did not create (no gpufleet label, so no label-filtered cache sees it): refused, the Deployment untouched", async () => {
    const ns = namespace.name;
    const deployment = await client.create<V1Deployment & KubeObject>({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "api", namespace: ns },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: "api" } },
        template: { metadata: { labels: { app: "api" } }, spec: { containers: [{ name: "api", image: "registry.example/api:1" }] } },
      },
    });
    await client.apply(modelDeploymentObject(ns, "api", smallModel), { fieldManager: "tenant" });
    const md = await waitForNameConflict(ns, "api");
    expect(condition(md, "Ready")?.message).toMatch(/^Deployment api /);
    const after = await client.get<V1Deployment>(`/apis/apps/v1/namespaces/${ns}/deployments/api`);
    expect(after.metadata?.generation).toBe(deployment.metadata?.generation);
    expect(after.metadata?.ownerReferences).toBeUndefined();
    // The Service and PDB it would have created are not created either.
    await expect(client.get(`/api/v1/namespaces/${ns}/services/api`)).rejects.toMatchObject({ statusCode: 404 });

    // Once the other object is gone, the ModelDeployment is served (the operator looks again on its own).
    await client.delete(`/apis/apps/v1/namespaces/${ns}/deployments/api`);
    const served = await waitFor(
      async () => {
        const current = await readModelDeployment(client, ns, "api");
        return current.status?.observedGeneration === current.metadata.generation && condition(current, "Ready")?.status === "True" ? current : undefined;
      },
      { timeoutMs: 90_000, description: "api served after the foreign Deployment was removed" },
    );
    const owned = await client.get<V1Deployment>(`/apis/apps/v1/namespaces/${ns}/deployments/api`);
    expect(owned.metadata?.ownerReferences?.[0]?.uid).toBe(served.metadata.uid);
  });
});
