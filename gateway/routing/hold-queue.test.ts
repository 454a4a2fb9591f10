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

describe("HoldQueue priority bands and fair queueing", () => {
  it("releases the highest band first, whatever the arrival order", () => {
    const q = new HoldQueue<string>({ maxPerModel: 10, maxWaitMs: 1000 });
    q.hold("m", "low1", 0, { priority: 0 });
    q.hold("m", "mid1", 1, { priority: 5 });
    q.hold("m", "low2", 2, { priority: 0 });
    q.hold("m", "high1", 3, { priority: 9 });
    q.hold("m", "mid2", 4, { priority: 5 });
    expect(q.sizeByBand("m")).toEqual(
      new Map([
        [0, 2],
        [5, 2],
        [9, 1],
      ]),
    );
    expect(q.release("m").map((e) => e.item)).toEqual(["high1", "mid1", "mid2", "low1", "low2"]);
  });

  it("shares a band between tenants in proportion to tokens, not to requests", () => {
    const q = new HoldQueue<string>({ maxPerModel: 100, maxWaitMs: 1000 });
    // Tenant a queues 6 requests of 100 tokens first, then b queues 3 of 200 tokens.
    for (let i = 0; i < 6; i++) q.hold("m", `a${i}`, i, { fairnessKey: "a", cost: 100 });
    for (let i = 0; i < 3; i++) q.hold("m", `b${i}`, 10 + i, { fairnessKey: "b", cost: 200 });
    const order = q.release("m").map((e) => e.item);
    // FIFO would serve all of a first; fair queueing alternates by tokens: two a's per b.
    expect(order).toEqual(["a0", "a1", "b0", "a2", "a3", "b1", "a4", "a5", "b2"]);
    const tokensBy = (prefix: string, first: number) =>
      order.slice(0, first).filter((x) => x.startsWith(prefix)).length * (prefix === "a" ? 100 : 200);
    expect(tokensBy("a", 6)).toBe(tokensBy("b", 6));
  });

  it("weights give a tenant a larger share of its band", () => {
    const q = new HoldQueue<string>({ maxPerModel: 100, maxWaitMs: 1000 });
    for (let i = 0; i < 4; i++) q.hold("m", `a${i}`, 0, { fairnessKey: "a", weight: 3 });
    for (let i = 0; i < 4; i++) q.hold("m", `b${i}`, 0, { fairnessKey: "b", weight: 1 });
    // Finish tags a: 1/3, 2/3, 1, 4/3; b: 1, 2, 3, 4 (a tie goes to the earlier arrival).
    expect(q.release("m").map((e) => e.item)).toEqual(["a0", "a1", "a2", "b0", "a3", "b1", "b2", "b3"]);
  });

  it("a tenant arriving late is not owed the service it missed (virtual time)", () => {
    const q = new HoldQueue<string>({ maxPerModel: 100, maxWaitMs: 1000 });
    for (let i = 0; i < 4; i++) q.hold("m", `a${i}`, 0, { fairnessKey: "a" });
    expect(q.release("m", 3).map((e) => e.item)).toEqual(["a0", "a1", "a2"]);
    for (let i = 0; i < 3; i++) q.hold("m", `b${i}`, 1, { fairnessKey: "b" });
    q.hold("m", "a4", 1, { fairnessKey: "a" });
    // b starts at the band's virtual time (2), not at 0: it does not get three turns in a row before a3.
    expect(q.release("m").map((e) => e.item)).toEqual(["b0", "a3", "b1", "b2", "a4"]);
  });

  it("a full queue evicts the last entry of the lowest band for a higher band, never the reverse", () => {
    const q = new HoldQueue<string>({ maxPerModel: 3, maxWaitMs: 1000 });
    q.hold("m", "low1", 0, { priority: 0 });
    q.hold("m", "low2", 1, { priority: 0 });
    q.hold("m", "mid", 2, { priority: 1 });
    const high = q.hold("m", "high", 3, { priority: 2 });
    expect(high.held).toBe(true);
    expect(high.held && high.shed.map((e) => e.item)).toEqual(["low2"]);
    expect(q.hold("m", "low3", 4, { priority: 0 })).toEqual({ held: false, reason: "queue-full" });
    expect(q.hold("m", "mid2", 4, { priority: 1 }).held).toBe(true);
    expect(q.release("m").map((e) => e.item)).toEqual(["high", "mid", "mid2"]);
  });

  it("sheds the lowest band first once the release rate says its wait would exceed its limit", () => {
    const q = new HoldQueue<string>({
      maxPerModel: 100,
      maxWaitMs: 10_000,
      bandMaxWaitMs: { 0: 2_000, 2: 10_000 },
    });
    // Learn a release rate: 10 releases per second.
    for (let i = 0; i < 10; i++) {
      q.hold("m", `warm${i}`, i * 100);
      q.release("m", 1, i * 100 + 100);
    }
    expect(q.releaseRate("m", 1000)).toBeCloseTo(10, 0);
    // 15 low-band requests fit their 2 s limit at 10/s (released by 1.5 s) ...
    for (let i = 0; i < 15; i++) expect(q.hold("m", `low${i}`, 1000, { priority: 0 }).held).toBe(true);
    // ... until 10 high-band requests go ahead of them: the last 5 low ones would wait 2.5 s.
    const shed: string[] = [];
    for (let i = 0; i < 10; i++) {
      const o = q.hold("m", `high${i}`, 1000, { priority: 2 });
      expect(o.held).toBe(true);
      if (o.held) shed.push(...o.shed.map((e) => e.item));
    }
    expect(shed).toEqual(["low14", "low13", "low12", "low11", "low10"]);
    expect(q.sizeByBand("m").get(2)).toBe(10);
    // A new low-band request would wait beyond its limit: refused at once (429), not held until 503.
    expect(q.hold("m", "late-low", 1000, { priority: 0 })).toMatchObject({ held: false, reason: "shed" });
    // The high band's 10 s limit still admits it.
    expect(q.hold("m", "late-high", 1000, { priority: 2 }).held).toBe(true);
  });

  it("predicts nothing without recent releases (scale from zero): deadlines alone bound the wait", () => {
    const q = new HoldQueue<string>({ maxPerModel: 100, maxWaitMs: 100, bandMaxWaitMs: { 1: 300 } });
    for (let i = 0; i < 50; i++) expect(q.hold("m", `r${i}`, 0).held).toBe(true);
    q.hold("m", "vip", 0, { priority: 1 });
    expect(q.releaseRate("m", 0)).toBeUndefined();
    expect(q.expire(100)).toHaveLength(50);
    expect(q.nextDeadlineMs()).toBe(300);
  });

  it("bounds a tier's wait by its own limit (maxQueueWaitMs), shedding its own excess at once while other tiers of the band wait longer", () => {
    const q = new HoldQueue<string>({ maxPerModel: 100, maxWaitMs: 30_000 });
    for (let i = 0; i < 10; i++) {
      q.hold("m", `warm${i}`, i * 100);
      q.release("m", 1, i * 100 + 100);
    }
    // 10 releases per second: a 1.5 s limit holds 15 entries; the 16th would wait 1.6 s.
    const held: boolean[] = [];
    for (let i = 0; i < 16; i++) held.push(q.hold("m", `gold${i}`, 1000, { priority: 2, fairnessKey: "gold", maxWaitMs: 1_500 }).held);
    expect(held.filter(Boolean)).toHaveLength(15);
    expect(held[15]).toBe(false);
    // Another tier of the same band without its own limit waits up to the band's 30 s (its fair share
    // puts it ahead of gold's later entries, and the last gold one, now past 1.5 s, is shed for it).
    const other = q.hold("m", "other", 1000, { priority: 2, fairnessKey: "other" });
    expect(other.held && other.shed.map((e) => e.item)).toEqual(["gold14"]);
    // The deadline is the tier's (never past the band's limit), whatever came before it.
    const o = q.hold("m", "late-gold", 1000, { priority: 1, maxWaitMs: 60_000 });
    expect(o.held && o.deadlineMs).toBe(31_000);
    expect(q.expire(2_500).map((e) => e.item)).toEqual(Array.from({ length: 14 }, (_, i) => `gold${i}`));
    expect(q.size("m")).toBe(2);
  });

  it("peek shows the entry release would hand out next (highest band, fair within it) and leaves it held", () => {
    const q = new HoldQueue<string>({ maxPerModel: 10, maxWaitMs: 60_000 });
    expect(q.peek("m")).toBeUndefined();
    q.hold("m", "bronze", 0, { priority: 0 });
    q.hold("m", "gold-a", 1, { priority: 2, fairnessKey: "a", cost: 100 });
    q.hold("m", "gold-b", 2, { priority: 2, fairnessKey: "b", cost: 10 });
    expect(q.peek("m")?.item).toBe("gold-b");
    expect(q.size("m")).toBe(3);
    expect(q.release("m", 1)[0]?.item).toBe("gold-b");
    expect(q.peek("m")?.item).toBe("gold-a");
    q.release("m", 1);
    expect(q.peek("m")).toMatchObject({ item: "bronze", priority: 0 });
  });
});
