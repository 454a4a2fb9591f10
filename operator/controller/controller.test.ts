import type { V1Deployment, V1Node, V1Pod } from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ModelDeployment } from "../api/modeldeployment.js";
import { Informer } from "../runtime/informer.js";
import { KubeClient, type KubeObject } from "../runtime/kube-client.js";
import { FakeApiServer } from "../runtime/testing/fake-apiserver.js";
import {
  lastApplyStillStands,
  ModelDeploymentController,
  WORKLOAD_RESYNC_MS,
  workloadHash,
} from "./controller.js";
import { SELECTOR_LABEL } from "./reconcile-plan.js";
import { gpuNode, modelDeployment } from "./testing.js";

async function waitFor(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("lastApplyStillStands", () => {
  const last = { hash: "h1", ownerUid: "u1", deploymentGeneration: 3, appliedAtMs: 1_000 };
  const current = {
    hash: "h1",
    ownerUid: "u1",
    deploymentGeneration: 3,
    deploymentExists: true,
    nowMs: 2_000,
  };

  it("holds when the same objects were applied for the same owner and the Deployment is the one that apply made", () => {
    expect(lastApplyStillStands(last, current)).toBe(true);
  });

  it("does not hold after a spec change, an owner re-creation, an edit or deletion of the Deployment, or the resync period", () => {
    expect(lastApplyStillStands(undefined, current)).toBe(false);
    expect(lastApplyStillStands(last, { ...current, hash: "h2" })).toBe(false);
    expect(lastApplyStillStands(last, { ...current, ownerUid: "u2" })).toBe(false);
    expect(lastApplyStillStands(last, { ...current, deploymentGeneration: 4 })).toBe(false);
    expect(
      lastApplyStillStands(last, { ...current, deploymentExists: false, deploymentGeneration: undefined }),
    ).toBe(false);
    expect(lastApplyStillStands(last, { ...current, nowMs: last.appliedAtMs + WORKLOAD_RESYNC_MS })).toBe(
      false,
    );
  });

  it("hashes equal objects equally and different objects differently", () => {
    expect(workloadHash([{ a: 1 }, { b: [2] }])).toBe(workloadHash([{ a: 1 }, { b: [2] }]));
    expect(workloadHash([{ a: 1 }])).not.toBe(workloadHash([{ a: 2 }]));
  });
});

describe("ModelDeploymentController against a fake API server", () => {
  const namespace = "team-a";
  const mdPath = `/apis/gpufleet.io/v1alpha1/namespaces/${namespace}/modeldeployments/chat`;
  const deploymentPath = `/apis/apps/v1/namespaces/${namespace}/deployments/chat`;
  let fake: FakeApiServer;
  let client: KubeClient;
  let controller: ModelDeploymentController;
  let deployments: Informer<V1Deployment & KubeObject>;

  const workloadApplies = () =>
    fake.requests.filter(
      (request) =>
        request.method === "PATCH" &&
        request.contentType?.startsWith("application/apply-patch") &&
        /\/(services|poddisruptionbudgets|deployments)\/chat$/.test(request.path),
    ).length;

  /** A controller over fresh informers of the fake API server (not started). */
  function newController(): ModelDeploymentController {
    const informer = <T extends KubeObject>(
      apiVersion: string,
      kind: string,
      name: string,
      labelSelector?: string,
    ) =>
      new Informer<T>(client, {
        apiVersion,
        kind,
        name,
        namespaces: [namespace],
        ...(labelSelector ? { labelSelector } : {}),
      });
    return new ModelDeploymentController({
      client,
      informers: {
        modelDeployments: informer<ModelDeployment & KubeObject>(
          "gpufleet.io/v1alpha1",
          "ModelDeployment",
          "modeldeployments",
        ),
        deployments: (deployments = informer<V1Deployment & KubeObject>(
          "apps/v1",
          "Deployment",
          "deployments",
          SELECTOR_LABEL,
        )),
        pods: informer<V1Pod & KubeObject>("v1", "Pod", "pods", SELECTOR_LABEL),
        nodes: new Informer<V1Node & KubeObject>(client, { apiVersion: "v1", kind: "Node", name: "nodes" }),
      },
      config: { concurrency: 2, images: {} },
    });
  }

  beforeEach(async () => {
    fake = new FakeApiServer();
    await fake.start();
    client = new KubeClient(fake.kubeConfig(), { requestTimeoutMs: 2000 });
    fake.put("/api/v1/nodes/l4-0", {
      apiVersion: "v1",
      kind: "Node",
      ...gpuNode("l4-0", "NVIDIA-L4", 8),
    } as never);
    const md = modelDeployment("chat", {
      model: {
        name: "llama-3.1-8b-instruct",
        source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } },
        maxContextLength: 8192,
      },
      gpu: { products: ["NVIDIA-L4"] },
      replicas: 1,
    });
    fake.put(mdPath, md as unknown as KubeObject & Record<string, unknown>);
    controller = newController();
    await controller.start();
  });

  afterEach(async () => {
    await controller.stop();
    client.close();
    await fake.stop();
  });

  it("stops while its caches sync without ever starting workers (SIGTERM right after winning the lease)", async () => {
    await controller.stop();
    fake.delayNext("GET", /modeldeployments$/, 3000);
    const late = newController();
    const before = workloadApplies();
    const starting = late.start();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const stoppedAt = Date.now();
    await late.stop();
    await starting; // returns with the stop, not when the slow list finally answers
    expect(Date.now() - stoppedAt).toBeLessThan(1500);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(workloadApplies()).toBe(before);
  });

  it("applies the workload once, then skips identical re-applies until the Deployment is edited or deleted", async () => {
    // The cache compares the informer's Deployment with what the last apply produced; until the
    // informer has seen that object a reconcile may re-apply once (harmless), so the test waits for it.
    const generationInServer = () => (fake.getObject(deploymentPath) as V1Deployment | undefined)?.metadata?.generation;
    const informerCaughtUp = () =>
      deployments.list().some((d) => d.metadata?.name === "chat" && d.metadata.generation === generationInServer());
    await waitFor(() => fake.getObject(deploymentPath) !== undefined, "the Deployment");
    await waitFor(() => workloadApplies() >= 3 && informerCaughtUp(), "Service, PDB and Deployment applied and seen");
    const afterCreate = workloadApplies();
    await controller.reconcile(`${namespace}/chat`);
    await controller.reconcile(`${namespace}/chat`);
    expect(workloadApplies()).toBe(afterCreate);

    // Someone edits the Deployment's spec: its generation moves, so the operator applies its intent again.
    const deployment = fake.getObject(deploymentPath) as V1Deployment & KubeObject;
    fake.put(deploymentPath, {
      ...deployment,
      metadata: { ...deployment.metadata, generation: 7 },
      spec: { ...deployment.spec!, replicas: 5 },
    } as never);
    await waitFor(() => workloadApplies() >= afterCreate + 3 && informerCaughtUp(), "the workload re-applied after the edit");
    expect((fake.getObject(deploymentPath) as V1Deployment).spec?.replicas).toBe(1);
    const afterEdit = workloadApplies();

    // Someone deletes it: it is re-created.
    fake.remove(deploymentPath);
    await waitFor(
      () => workloadApplies() >= afterEdit + 3 && fake.getObject(deploymentPath) !== undefined,
      "the Deployment re-created",
    );
  });
});
