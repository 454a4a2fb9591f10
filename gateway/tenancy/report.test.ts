import { describe, expect, it } from "vitest";
import type { Tenant, UsageTier } from "../../operator/api/tenancy.js";
import { KubeApiError, type KubeClient, type KubeObject } from "../../operator/runtime/kube-client.js";
import { TenancyCore } from "./core.js";
import { JOURNAL_KEY, journalName, parseJournal } from "./journal.js";
import { replicasSharing } from "./meter.js";
import { Tenancy } from "./tenancy.js";

// The journal and report loop against a stand-in API server that keeps Tenants and ConfigMaps with
// resourceVersions and uids, and can apply a write yet lose its answer (a timeout or a reset
// connection after the server committed it), refuse one, or conflict.

const NOW = Date.parse("2026-12-01T10:00:00Z");
const NS = "tenants";
const TENANT = `/apis/gpufleet.io/v1alpha1/namespaces/${NS}/tenants/acme`;
const journalPath = (replica: string) => `/api/v1/namespaces/${NS}/configmaps/${journalName(replica)}`;

type Fault = "lose-answer" | "refuse" | "conflict";
interface Rule {
  method: string;
  path: RegExp;
  fault: Fault;
}

const apiError = (statusCode: number, reason: string) => new KubeApiError({ statusCode, reason, message: reason });

function apiServer() {
  const objects = new Map<string, KubeObject>();
  let rv = 1;
  let uids = 0;
  objects.set(TENANT, {
    apiVersion: "gpufleet.io/v1alpha1",
    kind: "Tenant",
    metadata: { namespace: NS, name: "acme", resourceVersion: "1", generation: 1, uid: "tenant-uid" },
    spec: { tier: "gold", suspended: false, apiKeys: [] },
  } as KubeObject);
  const rules: Rule[] = [];
  /** The first rule matching a request is used up by it. */
  const faultFor = (method: string, path: string): Fault | undefined => {
    const i = rules.findIndex((r) => r.method === method && r.path.test(path));
    return i < 0 ? undefined : rules.splice(i, 1)[0]!.fault;
  };
  const write = async <T>(method: string, path: string, commit: () => T): Promise<T> => {
    const fault = faultFor(method, path);
    if (fault === "refuse") throw new Error("connect ECONNREFUSED 127.0.0.1:6443");
    if (fault === "conflict") throw apiError(409, "Conflict");
    const result = commit();
    if (fault === "lose-answer") throw new Error("socket hang up");
    return structuredClone(result);
  };
  const client = {
    get: async <T>(path: string): Promise<T> => {
      if (faultFor("GET", path) === "refuse") throw new Error("connect ECONNREFUSED 127.0.0.1:6443");
      const found = objects.get(path);
      if (!found) throw apiError(404, "NotFound");
      return structuredClone(found) as T;
    },
    replace: async <T extends KubeObject>(obj: T, options: { path: string }): Promise<T> =>
      write("PUT", options.path, () => {
        const path = options.path.replace(/\/status$/, "");
        const stored = objects.get(path);
        if (!stored) throw apiError(404, "NotFound");
        if (obj.metadata?.resourceVersion !== stored.metadata?.resourceVersion) throw apiError(409, "Conflict");
        const next = { ...structuredClone(obj), metadata: { ...stored.metadata, ...obj.metadata, uid: stored.metadata?.uid, resourceVersion: String(++rv) } };
        objects.set(path, next);
        return next as T;
      }),
    create: async <T extends KubeObject>(obj: T, options: { path: string }): Promise<T> =>
      write("POST", options.path, () => {
        const path = `${options.path}/${obj.metadata?.name}`;
        if (objects.has(path)) throw apiError(409, "AlreadyExists");
        const next = { ...structuredClone(obj), metadata: { ...obj.metadata, uid: `uid-${++uids}`, resourceVersion: String(++rv) } };
        objects.set(path, next);
        return next as T;
      }),
    list: async <T>(path: string): Promise<{ items: T[]; metadata: object }> => ({
      items: [...objects.entries()].filter(([p]) => p.startsWith(`${path}/`)).map(([, o]) => structuredClone(o) as T),
      metadata: {},
    }),
    delete: async (path: string, options: { preconditions?: { uid?: string; resourceVersion?: string } } = {}) =>
      write("DELETE", path, () => {
        const stored = objects.get(path);
        if (!stored) throw apiError(404, "NotFound");
        const p = options.preconditions;
        if ((p?.uid && p.uid !== stored.metadata?.uid) || (p?.resourceVersion && p.resourceVersion !== stored.metadata?.resourceVersion))
          throw apiError(409, "Conflict");
        objects.delete(path);
        return {};
      }),
  };
  const tenant = () => objects.get(TENANT) as Tenant & KubeObject;
  const journal = (replica: string) => parseJournal((objects.get(journalPath(replica)) as { data?: Record<string, string> } | undefined)?.data?.[JOURNAL_KEY]);
  return { client, rules, tenant, journal, has: (path: string) => objects.has(path) };
}

/** A gateway replica's tenancy (its own meter and clock) against the stand-in API server. */
function replica(client: unknown, name: string, clock: { now: number }) {
  const tier: UsageTier = { metadata: { name: "gold" }, spec: { priority: 1, overLimit: "Reject", defaultMaxTokens: 16 } };
  const now = () => clock.now;
  const core = new TenancyCore(
    { replica: name, staleMs: 30_000, pricing: { usdPerGpuHour: {}, defaultUsdPerGpuHour: 1, gramsCO2PerKWh: 400, boardPowerW: () => 100 } },
    now,
  );
  core.update({ tiers: [tier], tenants: [], secrets: [] });
  const tenancy = new Tenancy({
    client: client as KubeClient,
    core,
    namespaces: [NS],
    reportIntervalMs: 10_000,
    journalIntervalMs: 1_000,
    orphanAfterMs: 60_000,
    replica: name,
    staleMs: 30_000,
    planOf: () => undefined,
    engineTokens: () => undefined,
    now,
  });
  const use = (prompt: number, completion: number) =>
    core.meter.record(`${NS}/acme`, "m", { promptTokens: prompt, completionTokens: completion }, undefined, clock.now);
  return { tenancy, use };
}

const totals = (t: Tenant) => {
  const m = t.status?.today?.models.find((x) => x.model === "m");
  return { requests: m?.requests ?? 0, tokens: (m?.promptTokens ?? 0) + (m?.completionTokens ?? 0) };
};

describe("tenant usage goes through each replica's journal into Tenant status exactly once", () => {
  it("keeps journaled usage over a restart without a flush, and the restarted replica adds it once", async () => {
    const api = apiServer();
    const clock = { now: NOW };
    const first = replica(api.client, "gw-a", clock);
    first.use(10, 5);
    first.use(3, 4);
    await first.tenancy.flushJournals();
    expect(totals(api.tenant())).toEqual({ requests: 0, tokens: 0 });
    expect(api.journal("gw-a")?.batches).toHaveLength(1);
    await first.tenancy.stopWithoutFlush();
    // The same replica (the same pod name) starts again and folds its journal.
    const again = replica(api.client, "gw-a", clock);
    await again.tenancy.report();
    expect(totals(api.tenant())).toEqual({ requests: 2, tokens: 22 });
    expect(api.journal("gw-a")?.batches).toEqual([]);
    await again.tenancy.report();
    expect(totals(api.tenant())).toEqual({ requests: 2, tokens: 22 });
    // And what it meters now adds to that, once.
    again.use(1, 1);
    await again.tenancy.report();
    await again.tenancy.report();
    expect(totals(api.tenant())).toEqual({ requests: 3, tokens: 24 });
  });

  it("adds a status PUT whose answer was lost once, though the process that sent it is gone", async () => {
    const api = apiServer();
    const clock = { now: NOW };
    const first = replica(api.client, "gw-a", clock);
    first.use(10, 5);
    api.rules.push({ method: "PUT", path: /tenants\/acme\/status$/, fault: "lose-answer" });
    await first.tenancy.report();
    expect(totals(api.tenant())).toEqual({ requests: 1, tokens: 15 });
    // The journal still holds the batch (its prune waits for a confirmed fold); the process dies.
    await first.tenancy.stopWithoutFlush();
    const again = replica(api.client, "gw-a", clock);
    await again.tenancy.report();
    await again.tenancy.report();
    expect(totals(api.tenant())).toEqual({ requests: 1, tokens: 15 });
    expect(api.journal("gw-a")?.batches).toEqual([]);
  });

  it("reads back a journal write that got no answer: landed, it is not written twice; not landed, it is written again", async () => {
    const api = apiServer();
    const clock = { now: NOW };
    const gw = replica(api.client, "gw-a", clock);
    gw.use(10, 5);
    api.rules.push({ method: "POST", path: /configmaps$/, fault: "lose-answer" });
    await gw.tenancy.flushJournals();
    gw.use(1, 1);
    api.rules.push({ method: "PUT", path: /configmaps\//, fault: "refuse" });
    await gw.tenancy.flushJournals();
    await gw.tenancy.flushJournals();
    expect(api.journal("gw-a")?.batches.map((b) => b.tenants.acme?.[0]?.requests)).toEqual([1, 1]);
    await gw.tenancy.report();
    expect(totals(api.tenant())).toEqual({ requests: 2, tokens: 17 });
  });

  it("folds a gone replica's journal once from another replica, deletes it, and does not count the gone one as sharing limits", async () => {
    const api = apiServer();
    const clock = { now: NOW };
    const gone = replica(api.client, "gw-gone", clock);
    gone.use(20, 20);
    gone.use(5, 5);
    await gone.tenancy.flushJournals();
    await gone.tenancy.stopWithoutFlush();
    const survivor = replica(api.client, "gw-b", clock);
    survivor.use(1, 1);
    await survivor.tenancy.report();
    // Not yet an orphan: only the survivor's own usage is in.
    expect(totals(api.tenant())).toEqual({ requests: 1, tokens: 2 });
    expect(api.has(journalPath("gw-gone"))).toBe(true);
    clock.now += 61_000;
    // Its first fold's answer is lost: the next report folds again from the mark, adding nothing twice.
    api.rules.push({ method: "PUT", path: /tenants\/acme\/status$/, fault: "lose-answer" });
    await survivor.tenancy.report();
    await survivor.tenancy.report();
    expect(totals(api.tenant())).toEqual({ requests: 3, tokens: 52 });
    expect(api.has(journalPath("gw-gone"))).toBe(false);
    expect(replicasSharing(api.tenant().status, "gw-b", clock.now, 30_000)).toBe(1);
    const entry = api.tenant().status?.gateways?.find((g) => g.replica === "gw-gone");
    expect(entry?.lastReportTime).toBe(new Date(NOW).toISOString());
  });

  it("sums two replicas exactly through conflicts, lost answers and a restart of one", async () => {
    const api = apiServer();
    const clock = { now: NOW };
    const a = replica(api.client, "gw-a", clock);
    const b = replica(api.client, "gw-b", clock);
    let expected = { requests: 0, tokens: 0 };
    const use = (r: ReturnType<typeof replica>, p: number, c: number) => {
      r.use(p, c);
      expected = { requests: expected.requests + 1, tokens: expected.tokens + p + c };
    };
    for (let i = 0; i < 12; i++) {
      use(a, i, 1);
      use(b, 1, i);
      if (i % 3 === 0) api.rules.push({ method: "PUT", path: /status$/, fault: "conflict" });
      if (i % 4 === 1) api.rules.push({ method: "PUT", path: /status$/, fault: "lose-answer" });
      if (i % 5 === 2) api.rules.push({ method: "PUT", path: /configmaps\//, fault: "lose-answer" });
      await a.tenancy.flushJournals();
      await Promise.all([a.tenancy.report(), b.tenancy.report()]);
      clock.now += 1_000;
    }
    // a dies after journaling more; b keeps going; a comes back under its name.
    use(a, 7, 7);
    await a.tenancy.flushJournals();
    await a.tenancy.stopWithoutFlush();
    use(b, 2, 2);
    await b.tenancy.report();
    const back = replica(api.client, "gw-a", clock);
    await Promise.all([back.tenancy.report(), b.tenancy.report()]);
    await Promise.all([back.tenancy.report(), b.tenancy.report()]);
    expect(totals(api.tenant())).toEqual(expected);
  });

  it("loses and doubles nothing when a survivor folds and deletes a journal while its owner's write got no answer", async () => {
    for (const fault of ["lose-answer", "refuse"] as const) {
      const api = apiServer();
      const clock = { now: NOW };
      const owner = replica(api.client, "gw-a", clock);
      owner.use(10, 0);
      await owner.tenancy.flushJournals();
      // The owner stalls (no write for over orphanAfter); its next write lands with the answer lost, or not at all.
      clock.now += 61_000;
      owner.use(5, 0);
      api.rules.push({ method: "PUT", path: /configmaps\//, fault });
      await owner.tenancy.flushJournals();
      clock.now += 61_000;
      const survivor = replica(api.client, "gw-b", clock);
      await survivor.tenancy.report();
      expect(api.has(journalPath("gw-a"))).toBe(false);
      await owner.tenancy.report();
      await owner.tenancy.report();
      expect(totals(api.tenant()), fault).toEqual({ requests: 2, tokens: 15 });
    }
  });

  it("starts a new journal when a survivor folded and deleted the owner's while it stalled, and counts both once", async () => {
    const api = apiServer();
    const clock = { now: NOW };
    const owner = replica(api.client, "gw-a", clock);
    owner.use(10, 0);
    await owner.tenancy.flushJournals();
    clock.now += 61_000;
    await replica(api.client, "gw-b", clock).tenancy.report();
    expect(api.has(journalPath("gw-a"))).toBe(false);
    owner.use(5, 0);
    await owner.tenancy.flushJournals(); // 404: a new journal next time
    await owner.tenancy.report();
    await owner.tenancy.report();
    expect(totals(api.tenant())).toEqual({ requests: 2, tokens: 15 });
    expect(api.journal("gw-a")?.epoch).toBe(clock.now);
  });

  it("stops cleanly: reports what is left and deletes its emptied journal", async () => {
    const api = apiServer();
    const clock = { now: NOW };
    const gw = replica(api.client, "gw-a", clock);
    gw.use(4, 4);
    await gw.tenancy.flushJournals();
    gw.use(1, 1);
    await gw.tenancy.stop();
    expect(totals(api.tenant())).toEqual({ requests: 2, tokens: 10 });
    expect(api.has(journalPath("gw-a"))).toBe(false);
  });
});
