import type { V1Deployment, V1Node, V1Pod } from "@kubernetes/client-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ModelDeployment } from "../api/modeldeployment.js";
import { Informer } from "../runtime/informer.js";
import { KubeClient, type KubeObject } from "../runtime/kube-client.js";
import { FakeApiServer } from "../runtime/testing/fake-apiserver.js";
import {
  type EventSink,
  freshestModelDeployment,
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

describe("freshestModelDeployment", () => {
  const cached = { metadata: { uid: "u1", resourceVersion: "10" }, status: "before" };
  const written = { metadata: { uid: "u1", resourceVersion: "11" }, status: "after" };

  it("reads our own last status write while the cache still shows the object it was based on", () => {
    expect(freshestModelDeployment(cached, { basedOnResourceVersion: "10", object: written })).toBe(written);
  });

  it("reads the cache once it moved on, for another object of the same name, or without a write", () => {
    expect(freshestModelDeployment({ ...cached, metadata: { uid: "u1", resourceVersion: "11" } }, { basedOnResourceVersion: "10", object: written }).status).toBe("before");
    expect(freshestModelDeployment({ ...cached, metadata: { uid: "u1", resourceVersion: "12" } }, { basedOnResourceVersion: "10", object: written }).status).toBe("before");
    expect(freshestModelDeployment({ ...cached, metadata: { uid: "u2", resourceVersion: "10" } }, { basedOnResourceVersion: "10", object: written }).status).toBe("before");
    expect(freshestModelDeployment(cached, undefined)).toBe(cached);
  });
});

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
  function newController(events?: EventSink): ModelDeploymentController {
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
      ...(events ? { events } : {}),
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

  it("starts no informer when it was stopped before it started (the lease lost while the term started), so no watch outlives the term", async () => {
    await controller.stop();
    const late = newController();
    await late.stop();
    const listsBefore = fake.requests.filter((request) => request.method === "GET").length;
    await late.start();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(fake.requests.filter((request) => request.method === "GET").length).toBe(listsBefore);
  });

  it("writes the Deployment without waiting for its Service (the API server creates Services one at a time)", async () => {
    await controller.stop();
    const servicePath = `/api/v1/namespaces/${namespace}/services/chat`;
    for (const path of [deploymentPath, servicePath, `/apis/policy/v1/namespaces/${namespace}/poddisruptionbudgets/chat`]) fake.remove(path);
    // The Service's apply is answered (and stored) 1.5 s late, as a Service create queued behind others is.
    fake.delayNext("PATCH", /\/services\/chat$/, 1500);
    controller = newController();
    await controller.start();
    await waitFor(() => fake.getObject(deploymentPath) !== undefined, "the Deployment");
    expect(fake.getObject(servicePath), "the Deployment waited for the Service").toBeUndefined();
    await waitFor(() => fake.getObject(servicePath) !== undefined, "the Service");
  });

  it("applies the workload once, then skips identical re-applies until the Deployment is edited or deleted", async () => {
    // The cache compares the informer's Deployment with what the last apply produced; until the
    // informer has seen that object a reconcile may re-apply once (harmless), so the test waits for it.
    const generationInServer = () => (fake.getObject(deploymentPath) as V1Deployment | undefined)?.metadata?.generation;
    const informerCaughtUp = () =>
      deployments.list().some((d) => d.metadata?.name === "chat" && d.metadata.generation === generationInServer());
    await waitFor(() => fake.getObject(deploymentPath) !== undefined, "the Deployment");
    await waitFor(() => workloadApplies() >= 3 && informerCaughtUp(), "Service, PDB and Deployment applied and seen");
    // The reconciles below run beside the queue's: let its own finish first, or the two write the status at
    // once and one meets the other's resourceVersion (a Conflict, as it should).
    await waitFor(() => controller.queue.length === 0 && controller.queue.inFlight === 0, "the queue idle");
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

describe("ModelDeploymentController ownership against a fake API server", () => {
  const namespace = "team-a";
  const mdPath = `/apis/gpufleet.io/v1alpha1/namespaces/${namespace}/modeldeployments/web`;
  const servicePath = `/api/v1/namespaces/${namespace}/services/web`;
  const deploymentPath = `/apis/apps/v1/namespaces/${namespace}/deployments/web`;
  const pdbPath = `/apis/policy/v1/namespaces/${namespace}/poddisruptionbudgets/web`;
  let fake: FakeApiServer;
  let client: KubeClient;
  let controller: ModelDeploymentController;
  let events: Array<{ reason: string; message: string }>;

  const spec = {
    model: { name: "llama-3.1-8b-instruct", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 },
    gpu: { products: ["NVIDIA-L4"] },
    replicas: 1,
  };

  async function start(md: ModelDeployment): Promise<void> {
    fake.put(mdPath, md as unknown as KubeObject & Record<string, unknown>);
    const informer = <T extends KubeObject>(apiVersion: string, kind: string, name: string, labelSelector?: string) =>
      new Informer<T>(client, { apiVersion, kind, name, namespaces: [namespace], ...(labelSelector ? { labelSelector } : {}) });
    controller = new ModelDeploymentController({
      client,
      informers: {
        modelDeployments: informer<ModelDeployment & KubeObject>("gpufleet.io/v1alpha1", "ModelDeployment", "modeldeployments"),
        deployments: informer<V1Deployment & KubeObject>("apps/v1", "Deployment", "deployments", SELECTOR_LABEL),
        pods: informer<V1Pod & KubeObject>("v1", "Pod", "pods", SELECTOR_LABEL),
        nodes: new Informer<V1Node & KubeObject>(client, { apiVersion: "v1", kind: "Node", name: "nodes" }),
      },
      config: { concurrency: 2, images: {} },
      events: { record: (_object, _type, reason, message) => void events.push({ reason, message }) },
    });
    await controller.start();
  }

  const statusOf = () => (fake.getObject(mdPath) as ModelDeployment | undefined)?.status;
  const writes = (path: string) =>
    fake.requests.filter((request) => request.path === path && ["PATCH", "PUT", "POST", "DELETE"].includes(request.method));

  beforeEach(async () => {
    fake = new FakeApiServer();
    await fake.start();
    client = new KubeClient(fake.kubeConfig(), { requestTimeoutMs: 2000 });
    events = [];
    fake.put("/api/v1/nodes/l4-0", { apiVersion: "v1", kind: "Node", ...gpuNode("l4-0", "NVIDIA-L4", 8) } as never);
  });

  afterEach(async () => {
    await controller?.stop();
    client.close();
    await fake.stop();
  });

  it("never writes over a Service it does not own (no gpufleet label, so no cache sees it): NameConflict status and Event, nothing applied", async () => {
    fake.put(servicePath, {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web", namespace, labels: { app: "web" } },
      spec: { selector: { app: "web" }, ports: [{ port: 80 }] },
    });
    await start(modelDeployment("web", spec, { generation: 1 }));
    await waitFor(() => statusOf()?.conditions?.some((c) => c.type === "Ready") === true, "a status");
    const status = statusOf()!;
    expect(status.conditions?.find((c) => c.type === "Ready")).toMatchObject({ status: "False", reason: "NameConflict", observedGeneration: 1 });
    expect(status.conditions?.find((c) => c.type === "Ready")?.message).toMatch(/^Service web \(no controller/);
    // Not served, so it must not look reconciled.
    expect(status.observedGeneration).toBeUndefined();
    await waitFor(() => events.some((e) => e.reason === "NameConflict"), "a NameConflict event");
    expect(writes(servicePath)).toEqual([]);
    expect(writes(deploymentPath)).toEqual([]);
    expect(writes(pdbPath)).toEqual([]);
    expect((fake.getObject(servicePath) as { spec: { selector: unknown } }).spec.selector).toEqual({ app: "web" });
  });

  it("takes over the objects of a deleted ModelDeployment of the same name, each apply carrying the object's uid as a precondition", async () => {
    const deadRef = { apiVersion: "gpufleet.io/v1alpha1", kind: "ModelDeployment", name: "web", uid: "uid-dead", controller: true, blockOwnerDeletion: true };
    const leftover = (apiVersion: string, kind: string) => ({
      apiVersion,
      kind,
      metadata: { name: "web", namespace, labels: { [SELECTOR_LABEL]: "web" }, ownerReferences: [deadRef] },
      spec: {},
    });
    const oldService = fake.put(servicePath, leftover("v1", "Service"));
    fake.put(deploymentPath, leftover("apps/v1", "Deployment"));
    fake.put(pdbPath, leftover("policy/v1", "PodDisruptionBudget"));
    await start(modelDeployment("web", spec, { uid: "uid-live", generation: 1 }));
    const ownerUid = (path: string) => (fake.getObject(path) as KubeObject | undefined)?.metadata?.ownerReferences?.[0]?.uid;
    await waitFor(
      () => [servicePath, deploymentPath, pdbPath].every((path) => ownerUid(path) === "uid-live"),
      "the workload re-created under the live owner",
    );
    // The same object, not a new one: no delete, the apply named its uid.
    expect((fake.getObject(servicePath) as KubeObject).metadata?.uid).toBe(oldService.metadata?.uid);
    expect(fake.requests.filter((r) => r.method === "DELETE")).toEqual([]);
    const applies = fake.requests.filter((r) => r.method === "PATCH" && r.path === servicePath);
    expect(applies[0]?.body).toMatchObject({ metadata: { uid: oldService.metadata?.uid } });
    await waitFor(() => statusOf()?.observedGeneration === 1, "observedGeneration once served");
    expect(statusOf()?.conditions?.find((c) => c.type === "Ready")?.reason).not.toBe("NameConflict");
  });

  it("writes each status and the Planned event once while its ModelDeployment cache lags behind its own status write", async () => {
    // The ModelDeployment watch opens late: the reconcile the new Deployment's event starts right after the
    // first one reads the cached object from before the status write (as under a burst on a loaded API server).
    fake.delayNext("WATCH", /modeldeployments$/, 1500);
    await start(modelDeployment("web", spec, { generation: 1 }));
    await waitFor(() => statusOf()?.observedGeneration === 1, "the status");
    await waitFor(() => writes(deploymentPath).length > 0, "the Deployment");
    // Past the watch's delay, so every reconcile those events start has run.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    // Two real changes (the Deployment appeared: Applying, then RollingOut), no repeat of either.
    const progressing = writes(`${mdPath}/status`).map(
      (write) => (write.body as ModelDeployment).status?.conditions?.find((c) => c.type === "Progressing")?.reason,
    );
    expect(progressing).toEqual(["Applying", "RollingOut"]);
    expect(events.filter((event) => event.reason === "Planned")).toHaveLength(1);
  });

  it("never writes a status planned from a ModelDeployment deleted and re-created meanwhile onto its namesake (the copy's resourceVersion is the precondition)", async () => {
    // The status apply is answered late; meanwhile the ModelDeployment is deleted and a namesake created, and
    // the operator's watches hear nothing of it (as behind a cut stream). The API server ignores a uid in a
    // custom resource's status apply, so only the resourceVersion keeps the old plan off the new object.
    fake.delayNext("PATCH", /modeldeployments\/web\/status$/, 1500);
    await start(modelDeployment("web", spec, { generation: 1 }));
    await waitFor(() => writes(deploymentPath).length > 0, "the Deployment");
    fake.stallWatches();
    fake.remove(mdPath);
    fake.put(mdPath, modelDeployment("web", spec, { generation: 1, uid: "uid-namesake" }) as unknown as KubeObject & Record<string, unknown>);
    await waitFor(() => writes(`${mdPath}/status`).length >= 2, "the late status write and the retry after its conflict");
    const namesake = fake.getObject(mdPath) as ModelDeployment | undefined;
    expect(namesake?.metadata.uid).toBe("uid-namesake");
    expect(namesake?.status, "a status planned for the deleted ModelDeployment").toBeUndefined();
  });

  it("reports an apply the API server refuses as ApplyFailed in the status and an Event, instead of retrying in silence", async () => {
    fake.failNext("PATCH", /services\/web$/, 422, "Invalid", 1000);
    await start(modelDeployment("web", spec, { generation: 1 }));
    await waitFor(() => statusOf()?.conditions?.find((c) => c.type === "Ready")?.reason === "ApplyFailed", "ApplyFailed status");
    expect(statusOf()?.observedGeneration).toBeUndefined();
    expect(statusOf()?.conditions?.find((c) => c.type === "Ready")?.message).toMatch(/^the API server refused the workload \(Invalid\)/);
    await waitFor(() => events.some((e) => e.reason === "ApplyFailed"), "an ApplyFailed event");
  });
});
