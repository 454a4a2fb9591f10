import { afterEach, describe, expect, it } from "vitest";
import { collectedConfigs, startSimHub, type SimHub } from "../../sim/hub/server.js";
import { HubClient, HubError } from "./client.js";
import { HubModelResolver, type ModelConfigState } from "./resolver.js";

let hub: SimHub | undefined;
afterEach(async () => {
  await hub?.close();
  hub = undefined;
});

function waitUntil<T>(read: () => T | undefined, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const poll = () => {
      const value = read();
      if (value !== undefined) return resolve(value);
      if (Date.now() > deadline) return reject(new Error("timed out"));
      setTimeout(poll, 10);
    };
    poll();
  });
}

describe("HubClient against the Hub-shaped server on loopback", () => {
  it("reads config.json and the safetensors index total at a revision", async () => {
    hub = await startSimHub({ indexTotals: new Map([["openai/gpt-oss-20b", 13_761_264_768]]) });
    const client = new HubClient({ endpoint: hub.url });
    const files = await client.readModel("openai/gpt-oss-20b", "main");
    expect((files.config as { model_type: string }).model_type).toBe("gpt_oss");
    expect(files.safetensorsTotalBytes).toBe(13_761_264_768);
    expect(hub.requests).toContain("GET /openai/gpt-oss-20b/resolve/main/config.json");
  });

  it("reads a single-file checkpoint's size from its safetensors header with two ranged reads", async () => {
    hub = await startSimHub({
      singleFileTensors: new Map([["google/gemma-3-1b-it", [1_000_000, 2_000_000, 4_000]]]),
    });
    const files = await new HubClient({ endpoint: hub.url }).readModel("google/gemma-3-1b-it", "main");
    expect(files.safetensorsTotalBytes).toBe(3_004_000);
  });

  it("has no size when the repo has neither index nor single file", async () => {
    hub = await startSimHub();
    const files = await new HubClient({ endpoint: hub.url }).readModel("Qwen/Qwen3-8B", "main");
    expect(files.safetensorsTotalBytes).toBeUndefined();
  });

  it("classifies failures: private without token, unknown revision, down, slow past the timeout, oversized", async () => {
    hub = await startSimHub({ privateRepos: new Map([["Qwen/Qwen3-8B", "s3cret"]]), slowMs: 2_000 });
    const client = new HubClient({ endpoint: hub.url, timeoutMs: 300, maxJsonBytes: 200 });
    const kind = (promise: Promise<unknown>) =>
      promise.then(
        () => "ok",
        (error: HubError) => error.kind,
      );
    expect(await kind(client.readModel("Qwen/Qwen3-8B", "main"))).toBe("unauthorized");
    expect(
      await kind(new HubClient({ endpoint: hub.url }).readModel("Qwen/Qwen3-8B", "main", "s3cret")),
    ).toBe("ok");
    expect(await kind(client.readModel("Qwen/Qwen3-32B", "no-such-branch"))).toBe("not-found");
    // Qwen3-32B's config is larger than 200 bytes.
    expect(await kind(client.readModel("Qwen/Qwen3-32B", "main"))).toBe("invalid");
    hub.setMode("down");
    expect(await kind(client.readModel("Qwen/Qwen3-32B", "main"))).toBe("unavailable");
    hub.setMode("slow");
    const started = Date.now();
    expect(await kind(client.readModel("Qwen/Qwen3-32B", "main"))).toBe("unavailable");
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it("refuses an invalid repository id before any request", async () => {
    hub = await startSimHub();
    await expect(new HubClient({ endpoint: hub.url }).readModel("../etc/passwd", "main")).rejects.toThrow(
      /invalid repository id/,
    );
    expect(hub.requests).toHaveLength(0);
  });
});

describe("HubModelResolver", () => {
  it("answers pending first, then the model, and wakes the subscriber; a second lookup is a cache hit", async () => {
    hub = await startSimHub();
    const woken: string[] = [];
    const resolver = new HubModelResolver({
      reader: new HubClient({ endpoint: hub.url }),
      onSettled: (keys) => woken.push(...keys),
    });
    expect(resolver.lookup("Qwen/Qwen3-30B-A3B", undefined, "ns/a").state).toBe("pending");
    const ready = await waitUntil(() => {
      const state = resolver.lookup("Qwen/Qwen3-30B-A3B", undefined, "ns/a");
      return state.state === "ready" ? state : undefined;
    });
    expect(ready.model.model.moe?.expertCount).toBe(128);
    expect(woken).toContain("ns/a");
    const before = hub.requests.length;
    resolver.lookup("Qwen/Qwen3-30B-A3B", "main", "ns/b");
    expect(hub.requests.length).toBe(before);
  });

  it("keys the cache by revision: a new revision is read anew", async () => {
    hub = await startSimHub();
    const resolver = new HubModelResolver({ reader: new HubClient({ endpoint: hub.url }) });
    const layers = async (revision: string) =>
      waitUntil(() => {
        const state = resolver.lookup("Qwen/Qwen3-8B", revision, "ns/a");
        return state.state === "ready" ? state.model.model.layers : undefined;
      });
    expect(await layers("main")).toBe(36);
    const deeper = {
      ...((await import("../../sim/hub/server.js")).collectedConfigs().get("Qwen/Qwen3-8B") as object),
      num_hidden_layers: 40,
    };
    hub.setRevision("Qwen/Qwen3-8B", "v2", deeper);
    expect(await layers("v2")).toBe(40);
  });

  it("retries an unavailable Hub with exponential backoff and recovers", async () => {
    hub = await startSimHub();
    hub.setMode("down");
    let now = 0;
    const scheduled: number[] = [];
    const resolver = new HubModelResolver({
      reader: new HubClient({ endpoint: hub.url }),
      now: () => now,
      initialBackoffMs: 1_000,
      schedule: (_fn, ms) => scheduled.push(ms),
    });
    const failedState = async (): Promise<Extract<ModelConfigState, { state: "failed" }>> =>
      waitUntil(() => {
        const state = resolver.lookup("openai/gpt-oss-120b", "main", "ns/a");
        return state.state === "failed" ? state : undefined;
      });
    const first = await failedState();
    expect(first.reason).toBe("ModelConfigUnavailable");
    expect(first.message).toMatch(/HTTP 503; retrying in 1 s \(attempt 1\)/);
    now = 1_000; // the retry is due: the next lookup reads again
    await waitUntil(() =>
      scheduled.length >= 2 ? true : (resolver.lookup("openai/gpt-oss-120b", "main", "ns/a"), undefined),
    );
    expect(scheduled).toEqual([1_000, 2_000]);
    hub.setMode("up");
    now = 3_000;
    const ready = await waitUntil(() => {
      const state = resolver.lookup("openai/gpt-oss-120b", "main", "ns/a");
      return state.state === "ready" ? state : undefined;
    });
    expect(ready.model.quantization.quantization).toBe("mxfp4");
  });

  it("says why a private repo cannot be read without a token, and names an unreadable field", async () => {
    hub = await startSimHub({ privateRepos: new Map([["openai/gpt-oss-20b", "t"]]) });
    const resolver = new HubModelResolver({
      reader: new HubClient({ endpoint: hub.url }),
      schedule: () => undefined,
    });
    const failure = (repo: string) =>
      waitUntil(() => {
        const state = resolver.lookup(repo, "main", "ns/a");
        return state.state === "failed" ? state : undefined;
      });
    const unauthorized = await failure("openai/gpt-oss-20b");
    expect(unauthorized.reason).toBe("ModelConfigUnauthorized");
    expect(unauthorized.message).toMatch(/private or gated.*no token was given/);
    // A constructed config (not a published file): DeepSeek-V3's plus the indexer field of V3.2 / GLM-5.
    const v3 = collectedConfigs().get("deepseek-ai/DeepSeek-V3") as Record<string, unknown>;
    hub.setRevision("example/dsa-indexer", "main", { ...v3, index_topk: 2048 });
    const invalid = await failure("example/dsa-indexer");
    expect(invalid.reason).toBe("ModelConfigInvalid");
    expect(invalid.message).toMatch(/index_topk/);
    const withToken = new HubModelResolver({
      reader: new HubClient({ endpoint: hub.url }),
      token: () => "t",
    });
    await waitUntil(() =>
      withToken.lookup("openai/gpt-oss-20b", "main", "ns/a").state === "ready" ? true : undefined,
    );
  });

  it("keeps a repo read with one tenant's token apart from lookups without it", async () => {
    hub = await startSimHub({ privateRepos: new Map([["Qwen/Qwen3-32B", "tenant-a-token"]]) });
    const resolver = new HubModelResolver({ reader: new HubClient({ endpoint: hub.url }), schedule: () => undefined });
    const settled = (credential?: { fingerprint: string; token: string }) =>
      waitUntil(() => {
        const state = resolver.lookup("Qwen/Qwen3-32B", "main", "ns/a", credential);
        return state.state === "pending" ? undefined : state;
      });
    expect((await settled({ fingerprint: "a", token: "tenant-a-token" })).state).toBe("ready");
    const other = await settled();
    expect(other).toMatchObject({ state: "failed", reason: "ModelConfigUnauthorized" });
    expect(await settled({ fingerprint: "b", token: "wrong" })).toMatchObject({
      state: "failed",
      message: expect.stringMatching(/the token given does not grant access/),
    });
  });

  it("keeps at most maxEntries repos", async () => {
    hub = await startSimHub();
    const resolver = new HubModelResolver({ reader: new HubClient({ endpoint: hub.url }), maxEntries: 2 });
    for (const repo of ["Qwen/Qwen3-8B", "Qwen/Qwen3-32B", "openai/gpt-oss-20b"])
      resolver.lookup(repo, "main", "ns/a");
    await waitUntil(() =>
      resolver.lookup("openai/gpt-oss-20b", "main", "ns/a").state === "ready" ? true : undefined,
    );
    const requestsBefore = hub.requests.filter((r) => r.includes("Qwen3-8B/resolve/main/config.json")).length;
    resolver.lookup("Qwen/Qwen3-8B", "main", "ns/a"); // evicted: read again
    await waitUntil(() =>
      hub!.requests.filter((r) => r.includes("Qwen3-8B/resolve/main/config.json")).length > requestsBefore
        ? true
        : undefined,
    );
  });
});
