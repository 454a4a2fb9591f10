import { describe, expect, it } from "vitest";
import type { Tenant, UsageTier } from "../../operator/api/tenancy.js";
import { KubeApiError, type KubeClient, type KubeObject } from "../../operator/runtime/kube-client.js";
import { TenancyCore } from "./core.js";
import { reportApplied } from "./meter.js";
import { Tenancy } from "./tenancy.js";

// The report loop against a stand-in API server that keeps one Tenant with a resourceVersion, and can
// apply a PUT yet lose its answer (a timeout or a reset connection after the server committed it).

const NOW = Date.parse("2026-12-01T10:00:00Z");

type Stored = Tenant & KubeObject;

function apiServer() {
  let stored: Stored = {
    apiVersion: "gpufleet.io/v1alpha1",
    kind: "Tenant",
    metadata: { namespace: "tenants", name: "acme", resourceVersion: "1", generation: 1 },
    spec: { tier: "gold", suspended: false, apiKeys: [] },
  };
  let rv = 1;
  const faults: Array<"lose-answer" | "conflict" | "refuse-get" | "none"> = [];
  const client = {
    get: async <T>(): Promise<T> => {
      if (faults[0] === "refuse-get") {
        faults.shift();
        throw new Error("connect ECONNREFUSED 127.0.0.1:6443");
      }
      return structuredClone(stored) as T;
    },
    replace: async <T extends KubeObject>(obj: T): Promise<T> => {
      const fault = faults.shift() ?? "none";
      if (fault === "conflict" || obj.metadata?.resourceVersion !== stored.metadata?.resourceVersion)
        throw new KubeApiError({ statusCode: 409, reason: "Conflict", message: "the object has been modified" });
      stored = { ...(structuredClone(obj) as unknown as Stored), metadata: { ...stored.metadata, resourceVersion: String(++rv) } };
      if (fault === "lose-answer") throw new Error("socket hang up");
      return structuredClone(stored) as unknown as T;
    },
    /** Someone else (another replica) changes the status meanwhile. */
    touch: () => {
      stored = { ...stored, metadata: { ...stored.metadata, resourceVersion: String(++rv) } };
    },
  };
  return { client, faults, stored: () => stored };
}

function tenancyWith(client: unknown) {
  const tier: UsageTier = { metadata: { name: "gold" }, spec: { priority: 1, overLimit: "Reject", defaultMaxTokens: 16 } };
  const core = new TenancyCore(
    { replica: "gw-a", staleMs: 30_000, pricing: { usdPerGpuHour: {}, defaultUsdPerGpuHour: 1, gramsCO2PerKWh: 400, boardPowerW: () => 100 } },
    () => NOW,
  );
  core.update({ tiers: [tier], tenants: [], secrets: [] });
  const tenancy = new Tenancy({
    client: client as KubeClient,
    core,
    namespaces: ["tenants"],
    reportIntervalMs: 10_000,
    replica: "gw-a",
    staleMs: 30_000,
    planOf: () => undefined,
    engineTokens: () => undefined,
    now: () => NOW,
  });
  const use = (prompt: number, completion: number) =>
    core.meter.record("tenants/acme", "m", { promptTokens: prompt, completionTokens: completion }, undefined, NOW);
  return { tenancy, use };
}

const totals = (t: Stored) => {
  const m = t.status?.today?.models.find((x) => x.model === "m");
  return { requests: m?.requests ?? 0, tokens: (m?.promptTokens ?? 0) + (m?.completionTokens ?? 0) };
};

describe("tenant usage reports are idempotent", () => {
  it("adds a report whose PUT was applied but whose answer was lost exactly once", async () => {
    const api = apiServer();
    const { tenancy, use } = tenancyWith(api.client);
    use(10, 5);
    api.faults.push("lose-answer");
    await tenancy.report();
    expect(totals(api.stored())).toEqual({ requests: 1, tokens: 15 });
    // The next report reads the id back: applied, so only the new usage is added.
    use(3, 4);
    await tenancy.report();
    expect(totals(api.stored())).toEqual({ requests: 2, tokens: 22 });
    await tenancy.report();
    expect(totals(api.stored())).toEqual({ requests: 2, tokens: 22 });
  });

  it("sends a report again when its lost PUT was not applied, and never drops usage", async () => {
    const api = apiServer();
    const { tenancy, use } = tenancyWith(api.client);
    use(10, 5);
    // The PUT conflicts on a status another replica changed, the retry's answer is lost after it applied.
    api.faults.push("conflict", "lose-answer");
    await tenancy.report();
    expect(totals(api.stored())).toEqual({ requests: 1, tokens: 15 });
    use(1, 1);
    // The API server is unreachable for a report: nothing is lost or doubled.
    api.faults.push("refuse-get");
    await tenancy.report();
    expect(totals(api.stored())).toEqual({ requests: 1, tokens: 15 });
    api.client.touch();
    await tenancy.report();
    expect(totals(api.stored())).toEqual({ requests: 2, tokens: 17 });
  });

  it("resends with the same id an unconfirmed report the server did not apply", async () => {
    const api = apiServer();
    const { tenancy, use } = tenancyWith(api.client);
    use(10, 5);
    // The answer is lost and the write did not happen either (a refused connection after the GET).
    const replace = api.client.replace;
    let calls = 0;
    api.client.replace = async <T extends KubeObject>(obj: T): Promise<T> => {
      if (calls++ === 0) throw new Error("read ETIMEDOUT");
      return replace(obj);
    };
    await tenancy.report();
    expect(totals(api.stored())).toEqual({ requests: 0, tokens: 0 });
    use(2, 2);
    await tenancy.report();
    // The unconfirmed report (15 tokens) went again under its id, then the new one (4 tokens).
    expect(totals(api.stored())).toEqual({ requests: 2, tokens: 19 });
    const entry = api.stored().status?.gateways?.find((g) => g.replica === "gw-a");
    expect(entry?.lastReportId).toMatch(/^[0-9a-f]{8}-2$/);
    expect(reportApplied(api.stored().status, "gw-a", entry!.lastReportId!)).toBe(true);
    expect(reportApplied(api.stored().status, "gw-b", entry!.lastReportId!)).toBe(false);
  });
});
