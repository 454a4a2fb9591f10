import { CoreV1Api } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { testKubeConfig, uniqueNamespace, waitFor } from "./kube.js";

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
