import { afterEach, describe, expect, it, vi } from "vitest";
import type { ModelDeployment } from "../api/modeldeployment.js";
import type { Informer } from "../runtime/informer.js";
import { KubeApiError, type KubeClient, type KubeObject } from "../runtime/kube-client.js";
import { isCollectable, nextSweepDelayMs, ORPHAN_CONFIRM_SWEEP_MS, ORPHAN_FIRST_SWEEP_MS, OrphanSweeper } from "./orphans.js";
import { SELECTOR_LABEL } from "./reconcile-plan.js";

const NS = "team-a";
const DEAD = "uid-dead";
const deadRef = (name = "web") => ({ apiVersion: "gpufleet.io/v1alpha1", kind: "ModelDeployment", name, uid: DEAD, controller: true });
const labelled = (apiVersion: string, kind: string, name: string, uid: string, extraLabels: Record<string, string> = {}): KubeObject => ({
  apiVersion,
  kind,
  metadata: { name, namespace: NS, uid, labels: { [SELECTOR_LABEL]: "web", ...extraLabels }, ownerReferences: [deadRef()] },
});
const HISTORY_LABELS = { "app.kubernetes.io/component": "autoscaling-history" };

const PATHS: Record<string, string> = {
  Service: `/api/v1/namespaces/${NS}/services`,
  PodDisruptionBudget: `/apis/policy/v1/namespaces/${NS}/poddisruptionbudgets`,
  LeaderWorkerSet: `/apis/leaderworkerset.x-k8s.io/v1/namespaces/${NS}/leaderworkersets`,
  ConfigMap: `/api/v1/namespaces/${NS}/configmaps`,
};

/** An API server of one namespace: lists by collection path, GETs and DELETEs (uid precondition) by name. */
function fakeApi(objects: KubeObject[], options: { lwsServed?: boolean } = {}) {
  const store = new Map(objects.map((o) => [`${PATHS[o.kind!]}/${o.metadata!.name}`, o]));
  const requests: string[] = [];
  const notFound = (path: string) => new KubeApiError({ statusCode: 404, reason: "NotFound", message: `${path} not found` });
  const client = {
    async list<T>(path: string, opts: { labelSelector?: string } = {}) {
      requests.push(`LIST ${path} ${opts.labelSelector ?? ""}`);
      if (path === PATHS.LeaderWorkerSet && options.lwsServed === false) throw notFound(path);
      const wanted = (opts.labelSelector ?? "").split(",").filter(Boolean).map((term) => term.split("="));
      const items = [...store.entries()]
        .filter(([key]) => key.startsWith(`${path}/`))
        .map(([, o]) => o)
        .filter((o) => wanted.every(([k, v]) => (v === undefined ? k! in (o.metadata?.labels ?? {}) : o.metadata?.labels?.[k!] === v)));
      return { items: items as T[] };
    },
    async get<T>(path: string) {
      requests.push(`GET ${path}`);
      const object = store.get(path);
      if (!object) throw notFound(path);
      return object as T;
    },
    async request(method: string, path: string, opts: { body?: { preconditions?: { uid?: string } } } = {}) {
      requests.push(`${method} ${path} uid=${opts.body?.preconditions?.uid ?? "-"}`);
      const object = store.get(path);
      if (!object) throw notFound(path);
      if (opts.body?.preconditions?.uid !== object.metadata?.uid) throw new KubeApiError({ statusCode: 409, reason: "Conflict", message: "uid precondition failed" });
      store.delete(path);
      return {};
    },
  };
  return { client: client as unknown as KubeClient, store, requests };
}

const informer = <T>(items: T[]) => ({ hasSynced: true, list: () => items }) as unknown as Informer<T & KubeObject>;

function sweeper(client: KubeClient, live: Array<{ name: string; uid: string }> = []) {
  return new OrphanSweeper({
    client,
    modelDeployments: informer(live.map(({ name, uid }) => ({ metadata: { name, namespace: NS, uid } }) as unknown as ModelDeployment)),
    deployments: informer([]),
    namespaces: [NS],
    intervalMs: 60_000,
  });
}

describe("OrphanSweeper (the garbage collector's backstop), per kind", () => {
  for (const [apiVersion, kind, name, labels] of [
    ["v1", "Service", "web", {}],
    ["policy/v1", "PodDisruptionBudget", "web", {}],
    ["leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", "web", {}],
    ["v1", "ConfigMap", "web-autoscaling-history", HISTORY_LABELS],
  ] as const) {
    it(`deletes a ${kind} whose ModelDeployment is gone on the second sweep, after a live GET, with its uid as a precondition`, async () => {
      const api = fakeApi([labelled(apiVersion, kind, name, `${kind}-uid`, labels)]);
      const sweep = sweeper(api.client);
      expect(await sweep.sweep()).toEqual([]); // first sighting: the garbage collector gets one interval
      expect(api.store.size).toBe(1);
      const deleted = await sweep.sweep();
      expect(deleted).toEqual([{ kind, namespace: NS, name, uid: `${kind}-uid`, ownerName: "web", ownerUid: DEAD }]);
      expect(api.store.size).toBe(0);
      const path = `${PATHS[kind]}/${name}`;
      // The ModelDeployment confirmed gone and the object re-read (same uid, same controller) just before.
      const tail = api.requests.slice(-3);
      expect(tail[0]).toBe("GET /apis/gpufleet.io/v1alpha1/namespaces/team-a/modeldeployments/web");
      expect(tail[1]).toBe(`GET ${path}`);
      expect(tail[2]).toBe(`DELETE ${path} uid=${kind}-uid`);
    });

    it(`leaves a ${kind} alone when a ModelDeployment of that name lives (the cache was behind, or a namesake takes it over)`, async () => {
      const api = fakeApi([labelled(apiVersion, kind, name, `${kind}-uid`, labels)]);
      // Alive by name in the cache: not even a candidate.
      const cached = sweeper(api.client, [{ name: "web", uid: "uid-new" }]);
      await cached.sweep();
      expect(await cached.sweep()).toEqual([]);
      // Missing from the cache but alive at the API server: the live GET keeps it.
      api.store.set("/apis/gpufleet.io/v1alpha1/namespaces/team-a/modeldeployments/web", { metadata: { name: "web", uid: "uid-new" } });
      const behind = sweeper(api.client);
      await behind.sweep();
      expect(await behind.sweep()).toEqual([]);
      expect(api.store.has(`${PATHS[kind]}/${name}`)).toBe(true);
      expect(api.requests.some((r) => r.startsWith("DELETE"))).toBe(false);
    });

    it(`does not delete a ${kind} replaced between the sweeps by another object of that name`, async () => {
      const api = fakeApi([labelled(apiVersion, kind, name, `${kind}-uid`, labels)]);
      const sweep = sweeper(api.client);
      await sweep.sweep();
      // Between the list and the delete: a new object of that name (a new uid) whose controller is another.
      const path = `${PATHS[kind]}/${name}`;
      const original = api.store.get(path)!;
      const replacement = { ...original, metadata: { ...original.metadata, uid: "other-uid" } };
      const client = api.client as unknown as { list: (p: string, o: unknown) => Promise<{ items: KubeObject[] }> };
      const list = client.list.bind(client);
      client.list = async (p, o) => {
        const result = await list(p, o);
        api.store.set(path, replacement); // replaced right after this sweep listed it
        return result;
      };
      expect(await sweep.sweep()).toEqual([]);
      expect(api.store.get(path)?.metadata?.uid).toBe("other-uid");
    });
  }

  it("takes only the autoscaler's history ConfigMap: another labelled ConfigMap of a dead owner stays", async () => {
    const stray = labelled("v1", "ConfigMap", "web-settings", "cm-uid", HISTORY_LABELS);
    const api = fakeApi([stray]);
    const sweep = sweeper(api.client);
    await sweep.sweep();
    expect(await sweep.sweep()).toEqual([]);
    expect(isCollectable({ kind: "ConfigMap", namespace: NS, name: "web-settings", uid: "x", ownerName: "web", ownerUid: DEAD })).toBe(false);
    expect(isCollectable({ kind: "ConfigMap", namespace: NS, name: "web-autoscaling-history", uid: "x", ownerName: "web", ownerUid: DEAD })).toBe(true);
    // ConfigMaps are listed with the history component label too, not every gpufleet-labelled one.
    expect(api.requests).toContain(`LIST ${PATHS.ConfigMap} ${SELECTOR_LABEL},app.kubernetes.io/component=autoscaling-history`);
  });

  it("sweeps on where the LeaderWorkerSet API is not served (a 404 list), and still collects the other kinds", async () => {
    const api = fakeApi([labelled("v1", "Service", "web", "svc-uid")], { lwsServed: false });
    const sweep = sweeper(api.client);
    await sweep.sweep();
    expect((await sweep.sweep()).map((o) => o.kind)).toEqual(["Service"]);
  });
});

describe("when the sweeps run", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("a term's first sweep comes 5 s after it starts, a confirming one 10 s after new orphans, else every interval", () => {
    expect(nextSweepDelayMs(0, 0, 30_000)).toBe(ORPHAN_FIRST_SWEEP_MS);
    expect(nextSweepDelayMs(1, 3, 30_000)).toBe(ORPHAN_CONFIRM_SWEEP_MS);
    expect(nextSweepDelayMs(5, 0, 30_000)).toBe(30_000);
    // Never later than the interval asked for.
    expect(nextSweepDelayMs(0, 0, 2_000)).toBe(2_000);
    expect(nextSweepDelayMs(3, 1, 2_000)).toBe(2_000);
  });

  it("an orphan the garbage collector missed before a term began is deleted 15 s into the term, not two intervals", async () => {
    vi.useFakeTimers();
    const api = fakeApi([labelled("v1", "Service", "web", "svc-uid")]);
    const sweep = sweeper(api.client); // a 60 s interval
    sweep.start();
    await vi.advanceTimersByTimeAsync(ORPHAN_FIRST_SWEEP_MS + ORPHAN_CONFIRM_SWEEP_MS - 100);
    expect(api.store.size).toBe(1); // seen once, at 5 s: the GC gets its chance
    await vi.advanceTimersByTimeAsync(200);
    expect(api.store.size).toBe(0);
    // Nothing new after that: the next sweep waits the whole interval.
    const lists = api.requests.filter((r) => r.startsWith("LIST")).length;
    await vi.advanceTimersByTimeAsync(59_000);
    expect(api.requests.filter((r) => r.startsWith("LIST")).length).toBe(lists);
    await sweep.stop();
  });
});
