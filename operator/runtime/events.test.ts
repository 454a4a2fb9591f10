import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EventRecorder, REPORTING_CONTROLLER, eventName, type EventsV1Event } from "./events.js";
import { KubeClient } from "./kube-client.js";
import { FakeApiServer } from "./testing/fake-apiserver.js";

const md = {
  apiVersion: "gpufleet.io/v1alpha1",
  kind: "ModelDeployment",
  metadata: { name: "llama", namespace: "ml", uid: "uid-1", resourceVersion: "42" },
};

describe("eventName", () => {
  it("is the object name, a dot and a unique hex suffix", () => {
    const now = new Date("2025-01-01T00:00:00Z");
    const a = eventName("llama", now);
    expect(a).toMatch(/^llama\.[0-9a-f]+$/);
    expect(eventName("llama", now)).not.toBe(a);
    expect(eventName("x".repeat(300), now).length).toBeLessThanOrEqual(253);
  });
});

describe("EventRecorder against a fake API server", () => {
  let fake: FakeApiServer;
  let client: KubeClient;
  let clock: number;
  let recorder: EventRecorder;

  const events = () =>
    fake.requests
      .filter((r) => r.path.startsWith("/apis/events.k8s.io/v1/"))
      .map((r) => ({ method: r.method, path: r.path, body: r.body }));

  beforeEach(async () => {
    fake = new FakeApiServer();
    await fake.start();
    client = new KubeClient(fake.kubeConfig(), { requestTimeoutMs: 1000 });
    clock = Date.parse("2025-06-01T12:00:00Z");
    recorder = new EventRecorder(client, { component: "gpufleet", host: "op-0", now: () => new Date(clock) });
  });
  afterEach(async () => {
    client.close();
    await fake.stop();
  });

  it("writes an events.k8s.io/v1 Event with regarding, note, action and the reporting controller", async () => {
    await recorder.record(md, "Warning", "CapacityShortfall", "needs 8 H100, pool has 4", "Plan");
    const [req] = events();
    expect(req?.method).toBe("POST");
    expect(req?.path).toBe("/apis/events.k8s.io/v1/namespaces/ml/events");
    const event = req?.body as EventsV1Event;
    expect(event).toMatchObject({
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      type: "Warning",
      reason: "CapacityShortfall",
      note: "needs 8 H100, pool has 4",
      action: "Plan",
      reportingController: REPORTING_CONTROLLER,
      reportingInstance: "gpufleet-op-0",
      regarding: {
        apiVersion: "gpufleet.io/v1alpha1",
        kind: "ModelDeployment",
        name: "llama",
        namespace: "ml",
        uid: "uid-1",
      },
      eventTime: "2025-06-01T12:00:00.000000Z",
    });
    expect(event.series).toBeUndefined();
  });

  it("aggregates repeats within 10 minutes into a series on the same Event", async () => {
    await recorder.record(md, "Normal", "ScaledUp", "2 -> 3 replicas");
    clock += 60_000;
    await recorder.record(md, "Normal", "ScaledUp", "2 -> 3 replicas");
    clock += 9 * 60_000;
    await recorder.record(md, "Normal", "ScaledUp", "2 -> 3 replicas");
    const reqs = events();
    expect(reqs.map((r) => r.method)).toEqual(["POST", "PATCH", "PATCH"]);
    const name = (reqs[0]?.body as EventsV1Event).metadata.name;
    expect(reqs[2]?.path).toBe(`/apis/events.k8s.io/v1/namespaces/ml/events/${name}`);
    expect(reqs[2]?.body).toEqual({ series: { count: 3, lastObservedTime: "2025-06-01T12:10:00.000000Z" } });
    const stored = fake.getObject(reqs[2]!.path) as unknown as EventsV1Event;
    expect(stored.series?.count).toBe(3);
  });

  it("starts a new Event after the window, or for another message, type or object", async () => {
    await recorder.record(md, "Normal", "ScaledUp", "a");
    clock += 10 * 60_000 + 1;
    await recorder.record(md, "Normal", "ScaledUp", "a");
    await recorder.record(md, "Normal", "ScaledUp", "b");
    await recorder.record(md, "Warning", "ScaledUp", "b");
    await recorder.record(
      { ...md, metadata: { ...md.metadata, name: "other", uid: "uid-2" } },
      "Normal",
      "ScaledUp",
      "b",
    );
    expect(events().map((r) => r.method)).toEqual(["POST", "POST", "POST", "POST", "POST"]);
  });

  it("coalesces a burst of repeats into few series writes with the final count", async () => {
    await recorder.record(md, "Warning", "ScrapeFailed", "timeout");
    await Promise.all(
      Array.from({ length: 20 }, () => recorder.record(md, "Warning", "ScrapeFailed", "timeout")),
    );
    const patches = events().filter((r) => r.method === "PATCH");
    expect(patches.length).toBeLessThan(20);
    expect(patches.at(-1)?.body).toMatchObject({ series: { count: 21 } });
  });

  it("creates a new Event when the series target was deleted", async () => {
    await recorder.record(md, "Normal", "Ready", "all replicas ready");
    const first = events()[0]!.body as EventsV1Event;
    fake.remove(`/apis/events.k8s.io/v1/namespaces/ml/events/${first.metadata.name}`);
    await recorder.record(md, "Normal", "Ready", "all replicas ready");
    const reqs = events();
    expect(reqs.map((r) => r.method)).toEqual(["POST", "PATCH", "POST"]);
    expect((reqs[2]?.body as EventsV1Event).series?.count).toBe(2);
  });

  it("never throws when the API server refuses, and truncates long notes", async () => {
    fake.failNext("POST", /events$/, 403, "Forbidden");
    await expect(recorder.record(md, "Warning", "Denied", "x")).resolves.toBeUndefined();
    await recorder.record(md, "Normal", "Long", "é".repeat(2000));
    const note = (events().at(-1)?.body as EventsV1Event).note;
    expect(Buffer.byteLength(note)).toBeLessThanOrEqual(1024);
    expect(note.endsWith("...")).toBe(true);
  });

  it("files events about cluster-scoped objects in the default namespace", async () => {
    await recorder.record(
      { apiVersion: "v1", kind: "Node", metadata: { name: "gpu-node-1", uid: "n1" } },
      "Warning",
      "GpuXid",
      "Xid 79",
    );
    expect(events()[0]?.path).toBe("/apis/events.k8s.io/v1/namespaces/default/events");
  });
});
