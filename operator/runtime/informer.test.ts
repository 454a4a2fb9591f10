import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Informer, diffSnapshots, type InformerOptions } from "./informer.js";
import { KubeClient, type KubeObject } from "./kube-client.js";
import { FakeApiServer } from "./testing/fake-apiserver.js";

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

async function waitFor(condition: () => boolean, timeoutMs = 3000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const cmPath = (ns: string, name: string) => `/api/v1/namespaces/${ns}/configmaps/${name}`;

describe("diffSnapshots", () => {
  it("finds added, changed (by resourceVersion) and deleted objects", () => {
    const o = (name: string, rv: string): KubeObject => ({
      metadata: { namespace: "n", name, resourceVersion: rv },
    });
    const before = new Map([
      ["n/a", o("a", "1")],
      ["n/b", o("b", "2")],
      ["n/c", o("c", "3")],
    ]);
    const after = new Map([
      ["n/a", o("a", "1")],
      ["n/b", o("b", "5")],
      ["n/d", o("d", "6")],
    ]);
    const diff = diffSnapshots(before, after);
    expect(diff.added.map((x) => x.metadata?.name)).toEqual(["d"]);
    expect(
      diff.updated.map(([p, n]) => `${p.metadata?.resourceVersion}->${n.metadata?.resourceVersion}`),
    ).toEqual(["2->5"]);
    expect(diff.deleted.map((x) => x.metadata?.name)).toEqual(["c"]);
  });
});

describe("Informer against a fake API server", () => {
  let fake: FakeApiServer;
  let client: KubeClient;
  let informer: Informer<ConfigMap> | undefined;
  let log: string[];

  beforeEach(async () => {
    fake = new FakeApiServer();
    await fake.start();
    client = new KubeClient(fake.kubeConfig(), { requestTimeoutMs: 2000 });
    log = [];
  });
  afterEach(async () => {
    await informer?.stop();
    informer = undefined;
    client.close();
    await fake.stop();
  });

  /** Synced AND its watches open, so that fault injection hits a live stream. */
  async function watching(inf: Informer<ConfigMap>, watches = 1): Promise<void> {
    await inf.waitForSync(2000);
    await waitFor(() => fake.openWatchCount === watches, 2000, "open watches");
  }

  function startInformer(options: Partial<InformerOptions> = {}): Informer<ConfigMap> {
    informer = new Informer<ConfigMap>(client, {
      apiVersion: "v1",
      kind: "ConfigMap",
      backoff: { baseDelayMs: 20, maxDelayMs: 100 },
      watchTimeoutSeconds: 60,
      ...options,
    });
    informer
      .onAdd((o) => log.push(`add ${o.metadata?.name}`))
      .onUpdate((_p, o) => log.push(`update ${o.metadata?.name}=${o.data?.v ?? ""}`))
      .onDelete((o, info) =>
        log.push(`delete ${o.metadata?.name}${info.finalStateUnknown ? " (relist)" : ""}`),
      );
    informer.start();
    return informer;
  }

  it("lists existing objects, syncs, then follows add, update and delete", async () => {
    fake.put(cmPath("a", "one"), { data: { v: "1" } });
    const inf = startInformer();
    expect(inf.hasSynced).toBe(false);
    await inf.waitForSync(2000);
    expect(inf.hasSynced).toBe(true);
    expect(log).toEqual(["add one"]);
    const cached = inf.get("a", "one");
    expect(cached?.kind).toBe("ConfigMap");
    expect(cached?.apiVersion).toBe("v1");
    fake.put(cmPath("b", "two"), {});
    fake.put(cmPath("a", "one"), { data: { v: "2" } });
    fake.remove(cmPath("b", "two"));
    await waitFor(() => log.length === 4, 2000, "watch events");
    expect(log).toEqual(["add one", "add two", "update one=2", "delete two"]);
    expect(inf.list().map((o) => o.metadata?.name)).toEqual(["one"]);
    expect(inf.getByKey("a/one")?.data?.v).toBe("2");
    expect(inf.resourceVersions()[""]).toBe(fake.resourceVersion);
  });

  it("after a 410 relists and emits what it missed, deletions included", async () => {
    fake.put(cmPath("a", "keep"), { data: { v: "1" } });
    fake.put(cmPath("a", "doomed"), {});
    const inf = startInformer();
    await watching(inf);
    // While the stream says nothing, the world moves on and the history is compacted away.
    fake.stallWatches();
    fake.put(cmPath("a", "keep"), { data: { v: "2" } });
    fake.remove(cmPath("a", "doomed"));
    fake.put(cmPath("a", "new"), {});
    fake.compact();
    fake.expireWatches();
    await waitFor(() => log.length === 5, 2000, "relist events");
    expect(log.slice(2).sort()).toEqual(["add new", "delete doomed (relist)", "update keep=2"]);
    expect(
      inf
        .list()
        .map((o) => o.metadata?.name)
        .sort(),
    ).toEqual(["keep", "new"]);
    expect(inf.stats().relistsAfterGone).toBe(1);
    expect(inf.stats().lists).toBe(2);
  });

  it("relists when the rewatch after a dropped stream is refused as too old", async () => {
    fake.put(cmPath("a", "x"), {});
    const inf = startInformer({ backoff: { baseDelayMs: 200, maxDelayMs: 200, jitter: 0 } });
    await watching(inf);
    fake.dropWatches();
    // During the backoff: a deletion, then compaction, so the rewatch gets an ERROR 410 event.
    fake.remove(cmPath("a", "x"));
    fake.compact();
    await waitFor(() => log.includes("delete x (relist)"), 3000, "deletion via relist");
    expect(inf.list()).toEqual([]);
    expect(inf.stats().relistsAfterGone).toBe(1);
  });

  it("relists when the watch request itself is answered 410", async () => {
    const inf = startInformer();
    await inf.waitForSync(2000);
    fake.failNext("WATCH", /configmaps$/, 410, "Expired");
    fake.put(cmPath("a", "y"), {});
    inf.restartWatches();
    await waitFor(
      () => inf.stats().relistsAfterGone === 1 && inf.get("a", "y") !== undefined,
      3000,
      "relist after HTTP 410",
    );
    expect(log).toEqual(["add y"]);
  });

  it("rewatches from the last resourceVersion after a dropped stream, without relisting", async () => {
    const inf = startInformer();
    await inf.waitForSync(2000);
    fake.put(cmPath("a", "before"), {});
    await waitFor(() => log.length === 1);
    fake.dropWatches();
    fake.put(cmPath("a", "after"), {});
    await waitFor(() => log.length === 2, 3000, "event after drop");
    expect(log).toEqual(["add before", "add after"]);
    expect(inf.stats().lists).toBe(1);
    expect(inf.stats().watches).toBeGreaterThanOrEqual(2);
    const rewatch = fake.requests.filter((r) => r.query.watch === "true").at(-1);
    expect(rewatch?.query.allowWatchBookmarks).toBe("true");
    expect(rewatch?.query.timeoutSeconds).toBe("60");
    expect(Number(rewatch?.query.resourceVersion)).toBeGreaterThan(100);
  });

  it("aborts a stale stream and catches up on the rewatch", async () => {
    const inf = startInformer({ staleAfterMs: 300 });
    await watching(inf);
    fake.stallWatches();
    fake.put(cmPath("a", "quiet"), {});
    await waitFor(() => log.length === 1, 3000, "event after stale abort");
    expect(log).toEqual(["add quiet"]);
    expect(inf.stats().staleAborts).toBeGreaterThanOrEqual(1);
    expect(inf.stats().lists).toBe(1);
  });

  it("treats bookmarks as liveness and moves its resourceVersion to them", async () => {
    const inf = startInformer({ staleAfterMs: 400 });
    await watching(inf);
    fake.put(cmPath("other", "elsewhere"), {}); // bumps the server's resourceVersion
    await waitFor(() => log.length === 1);
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 100));
      fake.sendBookmarks();
    }
    expect(inf.stats().staleAborts).toBe(0);
    expect(inf.resourceVersions()[""]).toBe(fake.resourceVersion);
  });

  it("watches only the given namespaces, one list and watch each", async () => {
    fake.put(cmPath("team-a", "a1"), {});
    fake.put(cmPath("team-b", "b1"), {});
    fake.put(cmPath("team-c", "c1"), {});
    const inf = startInformer({ namespaces: ["team-a", "team-b"] });
    await inf.waitForSync(2000);
    fake.put(cmPath("team-c", "c2"), {});
    fake.put(cmPath("team-b", "b2"), {});
    await waitFor(() => log.length === 3);
    expect(log.sort()).toEqual(["add a1", "add b1", "add b2"]);
    expect(inf.get("team-c", "c1")).toBeUndefined();
    expect(inf.get("team-b", "b2")).toBeDefined();
    const listPaths = fake.requests
      .filter((r) => r.method === "GET" && r.query.watch !== "true")
      .map((r) => r.path)
      .sort();
    expect(listPaths).toEqual([
      "/api/v1/namespaces/team-a/configmaps",
      "/api/v1/namespaces/team-b/configmaps",
    ]);
    expect(Object.keys(inf.resourceVersions()).sort()).toEqual(["team-a", "team-b"]);
  });

  it("passes the label selector to list and watch", async () => {
    fake.put(cmPath("a", "mine"), { metadata: { labels: { app: "gpufleet" } } });
    fake.put(cmPath("a", "theirs"), { metadata: { labels: { app: "other" } } });
    const inf = startInformer({ labelSelector: "app=gpufleet" });
    await inf.waitForSync(2000);
    fake.put(cmPath("a", "theirs2"), { metadata: { labels: { app: "other" } } });
    fake.put(cmPath("a", "mine2"), { metadata: { labels: { app: "gpufleet" } } });
    await waitFor(() => log.length === 2);
    expect(log).toEqual(["add mine", "add mine2"]);
  });

  it("keeps retrying a failing list with backoff until it syncs", async () => {
    fake.failNext("GET", /configmaps$/, 500, "InternalError", 3);
    fake.put(cmPath("a", "eventually"), {});
    const inf = startInformer();
    await expect(inf.waitForSync(30)).rejects.toThrow(/not synced/);
    await inf.waitForSync(3000);
    expect(inf.get("a", "eventually")).toBeDefined();
    expect(inf.stats().lists).toBe(4);
  });

  it("starts its backoff again after a watch that worked: a new outage waits the first delay, not the last one's next", async () => {
    const inf = startInformer({ backoff: { baseDelayMs: 20, maxDelayMs: 10_000, jitter: 0 } });
    await watching(inf);
    // Outage 1: the stream drops, and four rewatches fail: 20, 40, 80, 160, 320 ms.
    fake.failNext("WATCH", /configmaps/, 500, "InternalError", 4);
    fake.dropWatches();
    await waitFor(() => fake.openWatchCount === 1 && inf.stats().lastBackoffMs === 320, 5000, "the rewatch after outage 1");
    // The stream works again: it delivers an event.
    fake.put(cmPath("a", "after-one"), {});
    await waitFor(() => log.includes("add after-one"), 2000, "an event after outage 1");
    // Outage 2: one failure. Counting on from outage 1 would wait 640 ms.
    fake.dropWatches();
    await waitFor(() => fake.openWatchCount === 1, 2000, "the rewatch after outage 2");
    expect(inf.stats().lastBackoffMs).toBe(20);
    fake.put(cmPath("a", "after-two"), {});
    await waitFor(() => log.includes("add after-two"), 2000, "an event after outage 2");
  });

  it("waits at most 5 s between attempts by default, so an API server back from an outage is seen within 5 s", async () => {
    fake.failNext("GET", /configmaps$/, 500, "InternalError", 1);
    const inf = startInformer({ backoff: {} });
    await inf.waitForSync(3000);
    expect(inf.backoff).toEqual({ baseDelayMs: 800, maxDelayMs: 5_000, jitter: 0.1 });
  });

  it("waits quietly for a resource type that is not served yet (404, e.g. an optional CRD) and lists once it is", async () => {
    fake.failNext("GET", /configmaps$/, 404, "NotFound", 3);
    fake.put(cmPath("a", "later"), {});
    const inf = startInformer();
    await inf.waitForSync(3000);
    expect(inf.get("a", "later")).toBeDefined();
    expect(inf.stats().notServedRetries).toBe(3);
  });

  it("survives a handler that throws", async () => {
    const inf = startInformer();
    inf.onAdd(() => {
      throw new Error("handler bug");
    });
    await inf.waitForSync(2000);
    fake.put(cmPath("a", "p"), {});
    fake.put(cmPath("a", "q"), {});
    await waitFor(() => log.length === 2);
    expect(log).toEqual(["add p", "add q"]);
  });

  it("stops at once when stop() comes while the first list is still in flight (no watch is left open)", async () => {
    fake.delayNext("GET", /configmaps$/, 300);
    const inf = startInformer();
    await new Promise((r) => setTimeout(r, 50));
    const stopping = Date.now();
    await inf.stop();
    expect(Date.now() - stopping).toBeLessThan(2000);
    await new Promise((r) => setTimeout(r, 300));
    expect(fake.openWatchCount).toBe(0);
  });

  it("stops its watches on stop()", async () => {
    const inf = startInformer();
    await inf.waitForSync(2000);
    await waitFor(() => fake.openWatchCount === 1);
    await inf.stop();
    await waitFor(() => fake.openWatchCount === 0, 2000, "watch closed");
    fake.put(cmPath("a", "late"), {});
    await new Promise((r) => setTimeout(r, 100));
    expect(log).toEqual([]);
  });
});
