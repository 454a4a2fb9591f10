import { CoreV1Api } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { testKubeConfig, uniqueNamespace, waitFor, waitUntil } from "./kube.js";

describe("waitFor", () => {
  it("returns the first value that is not undefined, null or false", async () => {
    let calls = 0;
    const value = await waitFor(() => (++calls >= 3 ? `ready after ${calls}` : undefined), {
      intervalMs: 1,
      description: "a counter",
    });
    expect(value).toBe("ready after 3");
  });

  it("times out with the description and the last error", async () => {
    await expect(
      waitFor(
        () => {
          throw new Error("connection refused");
        },
        { timeoutMs: 50, intervalMs: 10, description: "the engine to answer" },
      ),
    ).rejects.toThrow(
      /timed out after \d+ ms \(\d+ attempts\) waiting for the engine to answer; last error: connection refused/,
    );
  });
});

describe("waitUntil", () => {
  it("returns the first value read that is accepted, even a falsy one", async () => {
    let reads = 0;
    const value = await waitUntil(() => 3 - ++reads, (left) => left === 0, { intervalMs: 1, description: "a countdown", show: String });
    expect([value, reads]).toEqual([0, 3]);
  });

  it("times out quoting the last value it read", async () => {
    let replicas = 3;
    await expect(
      waitUntil(
        () => replicas++,
        (n) => n < 3,
        { timeoutMs: 50, intervalMs: 10, description: "scale-down", show: (n) => `replicas ${n}` },
      ),
    ).rejects.toThrow(/waiting for scale-down; last seen: replicas \d+$/);
  });
});

describe("uniqueNamespace", () => {
  it("creates a fresh namespace with its default ServiceAccount and deletes it", async () => {
    const core = testKubeConfig().makeApiClient(CoreV1Api);
    const namespace = await uniqueNamespace(undefined, "helper");
    expect(namespace.name).toMatch(/^helper-[0-9a-f]{8}$/);
    const created = await core.readNamespace({ name: namespace.name });
    expect(created.status?.phase).toBe("Active");
    await namespace.delete();
    await waitFor(
      async () => {
        try {
          const current = await core.readNamespace({ name: namespace.name });
          return current.status?.phase === "Terminating";
        } catch (error) {
          return (error as { code?: unknown }).code === 404;
        }
      },
      { timeoutMs: 30_000, description: `namespace ${namespace.name} to be terminating or gone` },
    );
  });
});
