import { describe, expect, it } from "vitest";
import { parseLoadedAdapters, planAdapterSync } from "./adapter-sync.js";

const sql = { name: "sql", path: "org/sql" };
const chat = { name: "chat", path: "org/chat" };

describe("planAdapterSync", () => {
  it("loads what a pod lacks and unloads what the spec no longer lists", () => {
    const plan = planAdapterSync([sql, chat], [
      { pod: "p1", loaded: new Map([["sql", "org/sql"], ["old", "org/old"]]) },
      { pod: "p2", loaded: new Map([["sql", "org/sql"], ["chat", "org/chat"]]) },
    ]);
    expect(plan.actions).toEqual([{ pod: "p1", load: [chat], unload: ["old"] }]);
    expect(plan.status).toEqual([
      { name: "sql", loadedReplicas: 2 },
      { name: "chat", loadedReplicas: 1 },
    ]);
    expect(plan.condition).toMatchObject({ status: "False", reason: "AdaptersSyncing" });
    expect(plan.condition.message).toContain("chat (1/2)");
    expect(plan.condition.message).toContain("unloading old");
  });

  it("replaces an adapter whose source changed under the same name", () => {
    const plan = planAdapterSync([{ name: "sql", path: "org/sql-v2" }], [{ pod: "p1", loaded: new Map([["sql", "org/sql"]]) }]);
    expect(plan.actions).toEqual([{ pod: "p1", load: [{ name: "sql", path: "org/sql-v2" }], unload: ["sql"] }]);
  });

  it("is ready when every ready pod has every adapter, and says so", () => {
    const plan = planAdapterSync([sql], [{ pod: "p1", loaded: new Map([["sql", "org/sql"]]) }]);
    expect(plan.actions).toEqual([]);
    expect(plan.condition).toMatchObject({ status: "True", reason: "AdaptersLoaded" });
  });

  it("acts on no pod it could not read, and does not call that ready", () => {
    const plan = planAdapterSync([sql], [{ pod: "p1" }, { pod: "p2", loaded: new Map([["sql", "org/sql"]]) }]);
    expect(plan.actions).toEqual([]);
    expect(plan.condition).toMatchObject({ status: "False", reason: "AdaptersUnknown" });
  });
});

describe("parseLoadedAdapters", () => {
  it("keeps the base model's adapters with well-formed names, bounded", () => {
    const body = {
      data: [
        { id: "base", parent: null },
        { id: "sql", parent: "base", root: "org/sql" },
        { id: "other", parent: "another-base", root: "x" },
        { id: "Evil\nName", parent: "base", root: "x" },
        { id: "long", parent: "base", root: "r".repeat(5000) },
      ],
    };
    const loaded = parseLoadedAdapters(body, "base");
    expect([...loaded!.keys()]).toEqual(["sql", "long"]);
    expect(loaded!.get("long")).toHaveLength(512);
    expect(parseLoadedAdapters({ data: "nope" }, "base")).toBeUndefined();
  });
});

describe("planAdapterSync: URL adapters (on disk only in pods started with them)", () => {
  it("never loads a URL adapter at runtime, and counts it where the pod started with it", () => {
    const fetched = { name: "sql", path: "/adapters/sql", startOnly: true as const };
    const plan = planAdapterSync([fetched, chat], [
      { pod: "new", loaded: new Map([["sql", "/adapters/sql"], ["chat", "org/chat"]]) },
      { pod: "old", loaded: new Map([["chat", "org/chat"]]) },
    ]);
    expect(plan.actions).toEqual([]);
    expect(plan.status).toEqual([
      { name: "sql", loadedReplicas: 1 },
      { name: "chat", loadedReplicas: 2 },
    ]);
    expect(plan.condition).toMatchObject({ status: "False", reason: "AdaptersSyncing" });
  });
});
