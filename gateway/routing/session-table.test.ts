import { describe, expect, it } from "vitest";
import { SessionTable } from "./session-table.js";

describe("SessionTable", () => {
  it("remembers a session's pod within the TTL only", () => {
    const t = new SessionTable({ ttlMs: 100 });
    t.record("s1", "pod-a", 0);
    expect(t.lookup("s1", 100)).toBe("pod-a");
    expect(t.lookup("s1", 101)).toBeUndefined();
    expect(t.lookup("s2", 0)).toBeUndefined();
  });

  it("holds at most maxSessions, least recently used evicted, whatever the key length", () => {
    const t = new SessionTable({ maxSessions: 2 });
    const long = "k".repeat(1 << 20);
    t.record(long, "a", 0);
    t.record("b", "b", 1);
    expect(t.lookup(long, 2)).toBe("a");
    t.record(long, "a", 2); // refresh
    t.record("c", "c", 3); // evicts b
    expect(t.size()).toBe(2);
    expect(t.lookup("b", 3)).toBeUndefined();
    expect(t.lookup(long, 3)).toBe("a");
  });
});
