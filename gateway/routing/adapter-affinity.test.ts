import { describe, expect, it } from "vitest";
import { adapterCandidates, type AdapterResidency, recordAdapterUse, residentAdapters } from "./adapter-affinity.js";
import type { EndpointState } from "./types.js";

const endpoint = (podName: string, inFlight = 0): EndpointState => ({
  podName,
  namespace: "ns",
  address: `127.0.0.${podName.slice(1)}:8000`,
  ready: true,
  inFlight,
});
const limits = { residencyMs: 10_000, slots: 2, affinityLoadFactor: 1.5, affinityLoadSlack: 2 };

describe("adapterCandidates", () => {
  const pods = [endpoint("p1"), endpoint("p2"), endpoint("p3")];
  const all = new Set(["sql", "chat", "de"]);

  it("only offers pods whose engine lists the adapter", () => {
    const loaded = (e: EndpointState) => (e.podName === "p2" ? all : e.podName === "p1" ? new Set(["chat"]) : undefined);
    const result = adapterCandidates({ adapter: "sql", endpoints: pods, loaded, residency: new Map(), nowMs: 0, limits });
    expect(result.endpoints.map((e) => e.podName)).toEqual(["p2"]);
    expect(adapterCandidates({ adapter: "nope", endpoints: pods, loaded: () => all, residency: new Map(), nowMs: 0, limits }).preference).toBe("none");
  });

  it("sends an adapter back to the pods it is warm on, until their load passes the bound", () => {
    const residency: AdapterResidency = new Map();
    recordAdapterUse(residency, pods[1]!.address, "sql", 1_000);
    const warm = adapterCandidates({ adapter: "sql", endpoints: pods, loaded: () => all, residency, nowMs: 2_000, limits });
    expect(warm).toMatchObject({ preference: "warm" });
    expect(warm.endpoints.map((e) => e.podName)).toEqual(["p2"]);
    const busy = [endpoint("p1"), endpoint("p2", 12), endpoint("p3")];
    const spread = adapterCandidates({ adapter: "sql", endpoints: busy, loaded: () => all, residency, nowMs: 2_000, limits });
    expect(spread.preference).not.toBe("warm");
    // Past the residency window the slot is taken to be cold again.
    expect(adapterCandidates({ adapter: "sql", endpoints: pods, loaded: () => all, residency, nowMs: 20_000, limits }).preference).toBe("any");
  });

  it("prefers pods with a free slot over pods that would have to evict an adapter", () => {
    const residency: AdapterResidency = new Map();
    recordAdapterUse(residency, pods[0]!.address, "chat", 1_000);
    recordAdapterUse(residency, pods[0]!.address, "de", 1_100);
    const result = adapterCandidates({ adapter: "sql", endpoints: pods, loaded: () => all, residency, nowMs: 2_000, limits });
    expect(result.preference).toBe("free-slot");
    expect(result.endpoints.map((e) => e.podName)).toEqual(["p2", "p3"]);
  });

  it("keeps the most recent adapters as a pod's residents and bounds what it tracks", () => {
    const residency: AdapterResidency = new Map();
    for (let i = 0; i < 100; i++) recordAdapterUse(residency, "a", `ad${i}`, i);
    expect(residency.get("a")!.size).toBe(64);
    expect(residentAdapters(residency, "a", 100, limits)).toEqual(["ad99", "ad98"]);
  });
});
