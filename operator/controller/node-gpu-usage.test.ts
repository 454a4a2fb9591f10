import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { KubeApiError } from "../runtime/kube-client.js";
import { MAX_NODES_PER_READ, NodeGpuUsage, gpuShape, podsForEstimate } from "./node-gpu-usage.js";

const gpuPod = (uid: string, node: string, gpus: string, labels: Record<string, string> = {}): V1Pod => ({
  metadata: { uid, name: uid, namespace: "ml", labels, annotations: { secret: "x".repeat(1000) } },
  spec: { nodeName: node, containers: [{ name: "train", image: "example.invalid/t:1", env: [{ name: "TOKEN", value: "s3cret" }], resources: { limits: { "nvidia.com/gpu": gpus, cpu: "4" } } }] },
  status: { phase: "Running", podIP: "127.0.0.9" },
});

function fakeClient(byNode: Record<string, V1Pod[]>, fail?: (node: string) => Error | undefined) {
  const calls: { path: string; fieldSelector?: string }[] = [];
  return {
    calls,
    list: async <T>(path: string, options: { fieldSelector?: string } = {}) => {
      calls.push({ path, ...(options.fieldSelector ? { fieldSelector: options.fieldSelector } : {}) });
      const node = /spec\.nodeName=([^,]+)/.exec(options.fieldSelector ?? "")?.[1] ?? "";
      const error = fail?.(node);
      if (error) throw error;
      return { metadata: {}, items: (byNode[node] ?? []) as T[] };
    },
  };
}

describe("the other pods on GPU nodes, for the spill-over free-GPU estimate", () => {
  it("lists each node's unfinished pods in every namespace by field selector, keeping only what the estimate reads", async () => {
    const client = fakeClient({ "h100-a": [gpuPod("t1", "h100-a", "8")] });
    const usage = new NodeGpuUsage({ client, now: () => 0 });
    const pods = await usage.podsOn(["h100-a"]);
    expect(client.calls).toEqual([{ path: "/api/v1/pods", fieldSelector: "spec.nodeName=h100-a,status.phase!=Succeeded,status.phase!=Failed" }]);
    expect(pods).toEqual([
      {
        labelled: false,
        pod: { metadata: { uid: "t1" }, spec: { nodeName: "h100-a", containers: [{ name: "c", resources: { limits: { "nvidia.com/gpu": "8" } } }] }, status: { phase: "Running" } },
      },
    ]);
    // Nothing of the tenant's pod beyond that (names, env, annotations, images, IPs) is kept.
    expect(JSON.stringify(pods)).not.toMatch(/s3cret|example\.invalid|127\.0\.0\.9|xxxx|ml/);
    expect(gpuShape({}).spec?.containers).toEqual([]);
  });

  it("reuses a node's list within the TTL and lists it again after", async () => {
    let now = 0;
    const client = fakeClient({ "h100-a": [gpuPod("t1", "h100-a", "8")] });
    const usage = new NodeGpuUsage({ client, ttlMs: 10_000, now: () => now });
    await usage.podsOn(["h100-a"]);
    now = 9_000;
    await usage.podsOn(["h100-a"]);
    expect(client.calls).toHaveLength(1);
    now = 10_000;
    await usage.podsOn(["h100-a"]);
    expect(client.calls).toHaveLength(2);
  });

  it("says nothing (undefined) while the API server refuses the list, and asks again after the retry period", async () => {
    let now = 0;
    let forbidden = true;
    const client = fakeClient({ "h100-a": [gpuPod("t1", "h100-a", "8")] }, () =>
      forbidden ? new KubeApiError({ statusCode: 403, reason: "Forbidden", message: "pods is forbidden" }) : undefined,
    );
    const usage = new NodeGpuUsage({ client, forbiddenRetryMs: 60_000, now: () => now });
    expect(await usage.podsOn(["h100-a", "h100-b"])).toBeUndefined();
    const asked = client.calls.length;
    now = 30_000;
    expect(await usage.podsOn(["h100-a"])).toBeUndefined();
    expect(client.calls).toHaveLength(asked);
    forbidden = false;
    now = 60_000;
    expect(await usage.podsOn(["h100-a"])).toHaveLength(1);
  });

  it("keeps a node's last list when listing it fails for another reason, and reads at most MAX_NODES_PER_READ nodes", async () => {
    let now = 0;
    let down = false;
    const client = fakeClient({ "h100-a": [gpuPod("t1", "h100-a", "8")] }, () => (down ? new Error("connection reset") : undefined));
    const usage = new NodeGpuUsage({ client, ttlMs: 1, now: () => now });
    await usage.podsOn(["h100-a"]);
    down = true;
    now = 5;
    expect(await usage.podsOn(["h100-a"])).toHaveLength(1);
    const many = Array.from({ length: MAX_NODES_PER_READ + 10 }, (_, i) => `n${i}`);
    const fresh = fakeClient({});
    await new NodeGpuUsage({ client: fresh, now: () => 0 }).podsOn(many);
    expect(fresh.calls).toHaveLength(MAX_NODES_PER_READ);
  });

  it("counts gpufleet's pods from the informer only, and every other listed pod once", () => {
    const own = [gpuPod("ours", "h100-a", "1", { "gpufleet.io/model-deployment": "chat" })];
    const listed = [
      { pod: gpuShape(gpuPod("ours", "h100-a", "1")), labelled: true },
      // A pod of ours deleted since the informer's view: still in the node's list, left out.
      { pod: gpuShape(gpuPod("gone", "h100-a", "1")), labelled: true },
      { pod: gpuShape(gpuPod("train", "h100-a", "7")), labelled: false },
    ];
    expect(podsForEstimate(own, listed).map((p) => p.metadata?.uid)).toEqual(["ours", "train"]);
  });
});
