import { describe, expect, it } from "vitest";
import { HoldQueue } from "./hold-queue.js";

describe("HoldQueue", () => {
  it("releases in arrival order, per model", () => {
    const q = new HoldQueue<string>({ maxPerModel: 10, maxWaitMs: 1000 });
    q.hold("m", "r1", 0);
    q.hold("other", "o1", 1);
    q.hold("m", "r2", 2);
    q.hold("m", "r3", 3);
    expect(q.size("m")).toBe(3);
    expect(q.release("m", 2).map((e) => e.item)).toEqual(["r1", "r2"]);
    expect(q.release("m").map((e) => e.item)).toEqual(["r3"]);
    expect(q.release("m")).toEqual([]);
    expect(q.models()).toEqual(["other"]);
  });

  it("refuses beyond maxPerModel and beyond maxModels", () => {
    const q = new HoldQueue<number>({ maxPerModel: 2, maxWaitMs: 1000, maxModels: 2 });
    expect(q.hold("m", 1, 0).held).toBe(true);
    expect(q.hold("m", 2, 0).held).toBe(true);
    expect(q.hold("m", 3, 0)).toEqual({ held: false, reason: "queue-full" });
    expect(q.hold("n", 1, 0).held).toBe(true);
    expect(q.hold("z", 1, 0)).toEqual({ held: false, reason: "too-many-models" });
    expect(q.totalSize()).toBe(3);
    q.release("m");
    expect(q.hold("z", 1, 0).held).toBe(true);
  });

  it("expires what waited maxWaitMs, oldest first, and keeps the rest", () => {
    const q = new HoldQueue<string>({ maxPerModel: 10, maxWaitMs: 100 });
    q.hold("m", "a", 0);
    q.hold("m", "b", 50);
    q.hold("n", "c", 20);
    expect(q.nextDeadlineMs()).toBe(100);
    expect(q.expire(99)).toEqual([]);
    expect(q.expire(120).map((e) => e.item)).toEqual(["a", "c"]);
    expect(q.size("m")).toBe(1);
    expect(q.nextDeadlineMs()).toBe(150);
    expect(q.expire(150).map((e) => [e.item, e.heldAtMs, e.deadlineMs])).toEqual([["b", 50, 150]]);
    expect(q.nextDeadlineMs()).toBeUndefined();
    expect(q.totalSize()).toBe(0);
  });

  it("deadlines never go backwards along a queue even if the clock does", () => {
    const q = new HoldQueue<string>({ maxPerModel: 10, maxWaitMs: 100 });
    q.hold("m", "a", 500);
    const late = q.hold("m", "b", 400);
    expect(late).toMatchObject({ held: true, deadlineMs: 600 });
    expect(q.expire(599)).toEqual([]);
    expect(q.expire(600).map((e) => e.item)).toEqual(["a", "b"]);
  });

  it("cancel removes one held request (client gone) and frees its place", () => {
    const q = new HoldQueue<string>({ maxPerModel: 2, maxWaitMs: 100 });
    const a = q.hold("m", "a", 0);
    q.hold("m", "b", 0);
    if (!a.held) throw new Error("not held");
    expect(q.cancel("m", a.ticket)).toBe(true);
    expect(q.cancel("m", a.ticket)).toBe(false);
    expect(q.hold("m", "c", 1).held).toBe(true);
    expect(q.release("m").map((e) => e.item)).toEqual(["b", "c"]);
  });
});
