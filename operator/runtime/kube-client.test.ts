import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { KubeConfig } from "@kubernetes/client-node";
import {
  FIELD_MANAGER,
  KubeApiError,
  KubeClient,
  MAX_RETRY_AFTER_RETRIES,
  parseRetryAfterSeconds,
  errorFromWatchStatus,
  isConflict,
  isGone,
  isNotFound,
  microTime,
  objectKey,
  parseKubeApiError,
  pathFor,
  requestResource,
  requestVerb,
  splitObjectKey,
  type CompletedRequest,
  type WatchEvent,
} from "./kube-client.js";
import { FakeApiServer } from "./testing/fake-apiserver.js";

describe("parseKubeApiError", () => {
  it("reads code, reason, message and causes from a Status body", () => {
    const body = JSON.stringify({
      kind: "Status",
      apiVersion: "v1",
      status: "Failure",
      message: 'ModelDeployment.gpufleet.io "m" is invalid: spec.replicas: Invalid value: -1',
      reason: "Invalid",
      code: 422,
      details: {
        name: "m",
        kind: "ModelDeployment",
        causes: [{ reason: "FieldValueInvalid", field: "spec.replicas", message: "Invalid value: -1" }],
      },
    });
    const err = parseKubeApiError(422, body, { method: "POST", path: "/x" });
    expect(err).toBeInstanceOf(KubeApiError);
    expect(err.statusCode).toBe(422);
    expect(err.reason).toBe("Invalid");
    expect(err.message).toContain("spec.replicas");
    expect(err.causes).toEqual([
      { reason: "FieldValueInvalid", field: "spec.replicas", message: "Invalid value: -1" },
    ]);
    expect(err.details?.kind).toBe("ModelDeployment");
    expect(err.path).toBe("/x");
  });

  it("recognizes conflict, already-exists, not-found and gone", () => {
    const conflict = parseKubeApiError(
      409,
      JSON.stringify({ kind: "Status", code: 409, reason: "Conflict", message: "modified" }),
    );
    const exists = parseKubeApiError(
      409,
      JSON.stringify({ kind: "Status", code: 409, reason: "AlreadyExists", message: "exists" }),
    );
    const missing = parseKubeApiError(
      404,
      JSON.stringify({ kind: "Status", code: 404, reason: "NotFound", message: "nope" }),
    );
    const gone = parseKubeApiError(
      410,
      JSON.stringify({ kind: "Status", code: 410, reason: "Expired", message: "too old" }),
    );
    expect([isConflict(conflict), conflict.isAlreadyExists]).toEqual([true, false]);
    expect([isConflict(exists), exists.isAlreadyExists]).toEqual([false, true]);
    expect([isNotFound(missing), isGone(missing)]).toEqual([true, false]);
    expect([isGone(gone), gone.reason]).toEqual([true, "Expired"]);
    expect(isNotFound(new Error("404"))).toBe(false);
  });

  it("falls back to the HTTP status and the text when the body is not a Status", () => {
    const err = parseKubeApiError(503, "upstream connect error\n");
    expect(err.statusCode).toBe(503);
    expect(err.reason).toBe("ServiceUnavailable");
    expect(err.message).toBe("upstream connect error");
    expect(err.causes).toEqual([]);
  });

  it("turns a watch ERROR Status into a gone error", () => {
    const err = errorFromWatchStatus({
      kind: "Status",
      code: 410,
      reason: "Expired",
      message: "too old resource version: 1 (50)",
    });
    expect(err.isGone).toBe(true);
    expect(err.message).toContain("too old");
  });
});

describe("pathFor", () => {
  it("builds core, group, cluster-scoped and collection paths", () => {
    expect(pathFor({ apiVersion: "v1", kind: "Pod", namespace: "ml", name: "p-0" })).toBe(
      "/api/v1/namespaces/ml/pods/p-0",
    );
    expect(pathFor({ apiVersion: "apps/v1", kind: "Deployment", namespace: "ml" })).toBe(
      "/apis/apps/v1/namespaces/ml/deployments",
    );
    expect(
      pathFor({
        apiVersion: "gpufleet.io/v1alpha1",
        kind: "ModelDeployment",
        namespace: "ml",
        name: "llama",
      }),
    ).toBe("/apis/gpufleet.io/v1alpha1/namespaces/ml/modeldeployments/llama");
    expect(pathFor({ apiVersion: "v1", kind: "Node", namespace: "ignored", name: "gpu-a" })).toBe(
      "/api/v1/nodes/gpu-a",
    );
    expect(pathFor({ apiVersion: "v1", kind: "ConfigMap" })).toBe("/api/v1/configmaps");
    expect(
      pathFor({ apiVersion: "coordination.k8s.io/v1", kind: "Lease", namespace: "sys", name: "l" }),
    ).toBe("/apis/coordination.k8s.io/v1/namespaces/sys/leases/l");
    expect(pathFor({ apiVersion: "policy/v1", kind: "PodDisruptionBudget", namespace: "a", name: "b" })).toBe(
      "/apis/policy/v1/namespaces/a/poddisruptionbudgets/b",
    );
    expect(() => pathFor({ apiVersion: "v9", kind: "Nope" })).toThrow(/unknown kind/);
  });

  it("keys objects namespace/name and splits keys back", () => {
    expect(objectKey({ metadata: { namespace: "ml", name: "a" } })).toBe("ml/a");
    expect(objectKey({ metadata: { name: "node-1" } })).toBe("node-1");
    expect(splitObjectKey("ml/a")).toEqual({ namespace: "ml", name: "a" });
    expect(splitObjectKey("node-1")).toEqual({ namespace: undefined, name: "node-1" });
  });

  it("formats MicroTime with six fractional digits", () => {
    expect(microTime(new Date("2025-01-02T03:04:05.678Z"))).toBe("2025-01-02T03:04:05.678000Z");
  });
});

describe("KubeClient against a fake API server", () => {
  const fake = new FakeApiServer();
  let client: KubeClient;
  beforeAll(async () => {
    await fake.start();
    client = new KubeClient(fake.kubeConfig(), { requestTimeoutMs: 2000 });
  });
  afterAll(async () => {
    client.close();
    await fake.stop();
  });

  it("creates, gets, replaces with optimistic concurrency and deletes", async () => {
    const created = await client.create({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "c1", namespace: "ns" },
      data: { a: "1" },
    } as never);
    const path = pathFor({ apiVersion: "v1", kind: "ConfigMap", namespace: "ns", name: "c1" });
    const got = await client.get<{ metadata: { resourceVersion: string }; data: Record<string, string> }>(
      path,
    );
    expect(got.data.a).toBe("1");
    expect(fake.requests.at(-1)?.query).toEqual({});
    const stale = { ...(created as object), metadata: { name: "c1", namespace: "ns", resourceVersion: "1" } };
    await expect(client.replace(stale as never)).rejects.toSatisfy(isConflict);
    await client.replace({ ...got, apiVersion: "v1", kind: "ConfigMap", data: { a: "2" } } as never);
    await client.delete(path, { propagationPolicy: "Background" });
    expect(fake.requests.at(-1)?.body).toMatchObject({
      kind: "DeleteOptions",
      propagationPolicy: "Background",
    });
    await expect(client.get(path)).rejects.toSatisfy(isNotFound);
  });

  it("server-side applies with the apply content type, field manager and force", async () => {
    await client.apply({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "sa", namespace: "ns" } });
    await client.apply(
      { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "sa", namespace: "ns" } },
      { subresource: "status", force: false },
    );
    const [main, status] = fake.requests.slice(-2);
    expect(main).toMatchObject({
      method: "PATCH",
      path: "/api/v1/namespaces/ns/configmaps/sa",
      contentType: "application/apply-patch+yaml",
    });
    expect(main?.query).toEqual({ fieldManager: FIELD_MANAGER, force: "true" });
    expect(status?.path).toBe("/api/v1/namespaces/ns/configmaps/sa/status");
    expect(status?.query.force).toBe("false");
  });

  it("follows continue tokens until the list is complete", async () => {
    for (let i = 0; i < 7; i++)
      fake.put(`/api/v1/namespaces/page/configmaps/c${i}`, { metadata: { labels: { set: "p" } } });
    const before = fake.requests.length;
    const list = await client.list("/api/v1/namespaces/page/configmaps", {
      limit: 3,
      labelSelector: "set=p",
    });
    expect(list.items.map((o) => o.metadata?.name)).toEqual(["c0", "c1", "c2", "c3", "c4", "c5", "c6"]);
    expect(fake.requests.length - before).toBe(3);
    expect(list.metadata.resourceVersion).toBe(fake.resourceVersion);
  });

  it("streams watch events line by line and resolves when the server ends the watch", async () => {
    const rv = fake.resourceVersion;
    fake.put("/api/v1/namespaces/w/configmaps/x", { metadata: {} });
    fake.remove("/api/v1/namespaces/w/configmaps/x");
    const events: WatchEvent[] = [];
    await client.watch("/api/v1/namespaces/w/configmaps", { resourceVersion: rv, timeoutSeconds: 1 }, (e) =>
      events.push(e),
    );
    expect(events.map((e) => `${e.type}:${e.object.metadata?.name}`)).toEqual(["ADDED:x", "DELETED:x"]);
  });

  it("rejects a refused watch with the typed error", async () => {
    fake.failNext("WATCH", /\/configmaps$/, 403, "Forbidden");
    await expect(client.watch("/api/v1/configmaps", {}, () => {})).rejects.toMatchObject({
      statusCode: 403,
      reason: "Forbidden",
    });
  });
});

describe("requestVerb and requestResource", () => {
  it("name requests as apiserver_request_total does", () => {
    expect(requestVerb("GET", "/api/v1/namespaces/ns/pods", undefined)).toBe("LIST");
    expect(requestVerb("GET", "/api/v1/nodes", undefined)).toBe("LIST");
    expect(requestVerb("GET", "/api/v1/namespaces/ns", undefined)).toBe("GET");
    expect(requestVerb("GET", "/apis/apps/v1/namespaces/ns/deployments/d", undefined)).toBe("GET");
    expect(requestVerb("PATCH", "/apis/apps/v1/namespaces/ns/deployments/d", "application/apply-patch+yaml")).toBe("APPLY");
    expect(requestVerb("PATCH", "/apis/events.k8s.io/v1/namespaces/ns/events/e", "application/merge-patch+json")).toBe("PATCH");
    expect(requestVerb("POST", "/apis/events.k8s.io/v1/namespaces/ns/events", "application/json")).toBe("POST");
    expect(requestResource("/apis/gpufleet.io/v1alpha1/namespaces/ns/modeldeployments/m/status")).toBe("modeldeployments/status");
    expect(requestResource("/api/v1/namespaces/ns/services/s")).toBe("services");
    expect(requestResource("/api/v1/nodes")).toBe("nodes");
    expect(requestResource("/api/v1/namespaces/ns")).toBe("namespaces");
    expect(requestResource("/version")).toBe("other");
  });

  it("are reported for every request the client makes, answered or not", async () => {
    const fake = new FakeApiServer();
    await fake.start();
    const seen: CompletedRequest[] = [];
    const client = new KubeClient(fake.kubeConfig(), { requestTimeoutMs: 2000, onRequest: (r) => seen.push(r) });
    try {
      await client.apply({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "r", namespace: "ns" } });
      await expect(client.get("/api/v1/namespaces/ns/configmaps/absent")).rejects.toSatisfy(isNotFound);
      await client.list("/api/v1/namespaces/ns/configmaps");
    } finally {
      client.close();
      await fake.stop();
    }
    expect(seen.map((r) => `${r.verb} ${requestResource(r.path)} ${r.status}`)).toEqual([
      "APPLY configmaps 201",
      "GET configmaps 404",
      "LIST configmaps 200",
    ]);
    expect(seen.every((r) => r.seconds >= 0 && r.seconds < 2)).toBe(true);
  });
});

describe("KubeClient request timeout", () => {
  let server: http.Server;
  afterEach(() => server?.closeAllConnections());
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("fails a request that gets no answer within the timeout", async () => {
    server = http.createServer(() => {
      /* never answers */
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        {
          name: "c",
          server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
          skipTLSVerify: true,
        },
      ],
      users: [{ name: "u" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    const client = new KubeClient(kc, { requestTimeoutMs: 150 });
    const started = Date.now();
    await expect(client.get("/api/v1/nodes")).rejects.toMatchObject({ statusCode: 504, reason: "Timeout" });
    expect(Date.now() - started).toBeLessThan(2000);
    client.close();
  });
});

describe("KubeClient and Retry-After", () => {
  let server: http.Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
  });

  /** A server answering `answers[i]` to the i-th request (the last one after that); returns the client and the request times. */
  async function clientFor(
    answers: Array<{ status: number; retryAfter?: string }>,
  ): Promise<{ client: KubeClient; times: number[] }> {
    const times: number[] = [];
    server = http.createServer((_req, res) => {
      const answer = answers[Math.min(times.length, answers.length - 1)]!;
      times.push(Date.now());
      res.writeHead(answer.status, {
        "content-type": "application/json",
        ...(answer.retryAfter !== undefined ? { "retry-after": answer.retryAfter } : {}),
      });
      res.end(
        answer.status === 200
          ? "{}"
          : JSON.stringify({ kind: "Status", code: answer.status, message: "busy" }),
      );
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [
        {
          name: "c",
          server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
          skipTLSVerify: true,
        },
      ],
      users: [{ name: "u" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    return { client: new KubeClient(kc), times };
  }

  it("waits as long as a 429's Retry-After asks, then retries", async () => {
    const { client, times } = await clientFor([{ status: 429, retryAfter: "1" }, { status: 200 }]);
    await client.get("/api/v1/nodes");
    expect(times).toHaveLength(2);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(950);
    client.close();
  });

  it("gives up after a bounded number of Retry-After answers and hands the delay to the caller", async () => {
    const { client, times } = await clientFor([{ status: 503, retryAfter: "0" }]);
    await expect(client.get("/api/v1/nodes")).rejects.toMatchObject({
      statusCode: 503,
      retryAfterSeconds: 0,
    });
    expect(times).toHaveLength(MAX_RETRY_AFTER_RETRIES + 1);
    client.close();
  });

  it("does not retry a 500 without Retry-After, nor wait out a Retry-After longer than the bound", async () => {
    const plain = await clientFor([{ status: 500 }]);
    await expect(plain.client.get("/x")).rejects.toMatchObject({ statusCode: 500 });
    expect(plain.times).toHaveLength(1);
    plain.client.close();
    server?.closeAllConnections();
    await new Promise<void>((r) => server!.close(() => r()));
    const long = await clientFor([{ status: 429, retryAfter: "3600" }]);
    await expect(long.client.get("/x")).rejects.toMatchObject({ statusCode: 429, retryAfterSeconds: 3600 });
    expect(long.times).toHaveLength(1);
    long.client.close();
  });
});

describe("parseRetryAfterSeconds", () => {
  it("reads delta-seconds and ignores dates and junk", () => {
    expect(parseRetryAfterSeconds("2")).toBe(2);
    expect(parseRetryAfterSeconds(["7"])).toBe(7);
    expect(parseRetryAfterSeconds("Wed, 21 Oct 2015 07:28:00 GMT")).toBeUndefined();
    expect(parseRetryAfterSeconds("-1")).toBeUndefined();
    expect(parseRetryAfterSeconds(undefined)).toBeUndefined();
  });
});
