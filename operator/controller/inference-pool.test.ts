import { describe, expect, it } from "vitest";
import { KubeApiError, type KubeClient, type KubeObject } from "../runtime/kube-client.js";
import { endpointPickerRef, InferencePoolSync, renderInferencePool } from "./inference-pool.js";
import { modelDeployment } from "./testing.js";

const md = (annotations: Record<string, string> = {}) =>
  modelDeployment(
    "chat",
    { model: { name: "chat", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } } }, serving: { port: 8080 } },
    { annotations },
  );

describe("renderInferencePool", () => {
  it("selects the ModelDeployment's pods on its serving port and is owned by it", () => {
    const pool = renderInferencePool(md()) as KubeObject & { spec: Record<string, unknown> };
    expect(pool.apiVersion).toBe("inference.networking.k8s.io/v1");
    expect(pool.kind).toBe("InferencePool");
    expect(pool.metadata).toMatchObject({ name: "chat", namespace: "team-a" });
    expect(pool.metadata?.ownerReferences).toEqual([
      { apiVersion: "gpufleet.io/v1alpha1", kind: "ModelDeployment", name: "chat", uid: "uid-chat", controller: true, blockOwnerDeletion: true },
    ]);
    expect(pool.spec).toEqual({
      selector: { matchLabels: { "gpufleet.io/model-deployment": "chat" } },
      targetPorts: [{ number: 8080 }],
      endpointPickerRef: { kind: "Service", name: "chat-epp", port: { number: 9002 }, failureMode: "FailClose" },
    });
  });

  it("refuses a ModelDeployment without a uid (owner references need one)", () => {
    const noUid = md();
    delete noUid.metadata.uid;
    expect(() => renderInferencePool(noUid)).toThrow(/no metadata.uid/);
  });
});

describe("endpointPickerRef", () => {
  it("takes the EPP Service (and port) from the annotation", () => {
    expect(endpointPickerRef(md({ "inference.gpufleet.io/endpoint-picker": "shared-epp:9100" }))).toMatchObject({ name: "shared-epp", port: { number: 9100 } });
    expect(endpointPickerRef(md({ "inference.gpufleet.io/endpoint-picker": "shared-epp" }))).toMatchObject({ name: "shared-epp", port: { number: 9002 } });
  });
  it("falls back to <name>-epp:9002 for a malformed value", () => {
    for (const bad of ["Shared", "epp:99999", "epp:0", "x".repeat(80), "a b", "9epp"])
      expect(endpointPickerRef(md({ "inference.gpufleet.io/endpoint-picker": bad }))).toMatchObject({ name: "chat-epp", port: { number: 9002 } });
  });
});

describe("InferencePoolSync", () => {
  function stub(served: boolean | "error") {
    const calls = { get: 0, applies: [] as KubeObject[] };
    let state = served;
    const client = {
      get: async () => {
        calls.get++;
        if (state === "error") throw new Error("connection refused");
        if (!state) throw new KubeApiError({ statusCode: 404, reason: "NotFound", message: "the server could not find the requested resource" });
        return { resources: [{ name: "inferencepools" }, { name: "inferencepools/status" }] };
      },
      apply: async (obj: KubeObject) => {
        if (!state) throw new KubeApiError({ statusCode: 404, reason: "NotFound", message: "not found" });
        calls.applies.push(obj);
        return obj;
      },
    };
    return { client: client as unknown as KubeClient, calls, set: (next: boolean | "error") => (state = next) };
  }

  it("keeps no recheck timer when stopped during its first discovery (the lease lost as the term began)", async () => {
    const { client, calls } = stub(false);
    const sync = new InferencePoolSync(client, { recheckIntervalMs: 10 });
    const starting = sync.start();
    sync.stop();
    await starting;
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(calls.get).toBe(1);
  });

  it("writes nothing and asks only discovery when the CRD is absent", async () => {
    const { client, calls } = stub(false);
    const sync = new InferencePoolSync(client);
    expect(await sync.discover()).toBe(false);
    await sync.sync(md());
    await sync.sync(md());
    expect(calls).toEqual({ get: 1, applies: [] });
  });

  it("applies once per change when served, and again after forget", async () => {
    const { client, calls } = stub(true);
    const sync = new InferencePoolSync(client);
    await sync.discover();
    await sync.sync(md());
    await sync.sync(md());
    expect(calls.applies).toHaveLength(1);
    await sync.sync(md({ "inference.gpufleet.io/endpoint-picker": "other-epp" }));
    expect(calls.applies).toHaveLength(2);
    sync.forget("team-a/chat");
    await sync.sync(md({ "inference.gpufleet.io/endpoint-picker": "other-epp" }));
    expect(calls.applies).toHaveLength(3);
  });

  it("notices the CRD installed later on a recheck and asks for every ModelDeployment to be reconciled", async () => {
    const { client, set } = stub(false);
    let available = 0;
    const sync = new InferencePoolSync(client, { onAvailable: () => available++ });
    await sync.discover();
    set(true);
    await sync.discover();
    expect(sync.available()).toBe(true);
    expect(available).toBe(1);
  });

  it("stops writing when the CRD disappears under it, and keeps its last answer when discovery fails", async () => {
    const { client, calls, set } = stub(true);
    const sync = new InferencePoolSync(client);
    await sync.discover();
    set(false);
    await sync.sync(md());
    expect(sync.available()).toBe(false);
    expect(calls.applies).toHaveLength(0);
    set(true);
    await sync.discover();
    set("error");
    expect(await sync.discover()).toBe(true);
    expect(sync.available()).toBe(true);
  });
});
