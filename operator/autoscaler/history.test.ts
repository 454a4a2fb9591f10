import { describe, expect, it } from "vitest";
import {
  CAPACITY_EVIDENCE,
  CAPACITY_MIN_EVIDENCE,
  demandSeries,
  emptyHistory,
  learnCapacity,
  learnedTimeToReady,
  MAX_BUCKETS,
  MAX_READY_TIMES,
  parseHistory,
  recordDemand,
  recordTimeToReady,
} from "./history.js";

const MIN = 60_000;

describe("workload history", () => {
  it("averages demand into 5-minute buckets and closes a bucket when the next begins", () => {
    let h = emptyHistory();
    for (let t = 0; t < 5 * MIN; t += 10_000) h = recordDemand(h, t, 100, 500);
    expect(h.tokensPerSecond).toEqual([]);
    h = recordDemand(h, 5 * MIN, 300, null);
    expect(h.tokensPerSecond).toEqual([100]);
    expect(h.dispersion).toEqual([500]);
    expect(h.open?.n).toBe(1);
  });

  it("keeps time exact across a gap with empty buckets", () => {
    let h = recordDemand(emptyHistory(), 0, 10, null);
    h = recordDemand(h, 20 * MIN, 20, null);
    h = recordDemand(h, 25 * MIN, 20, null);
    expect(h.tokensPerSecond).toEqual([10, null, null, null, 20]);
    expect(demandSeries(h).map((p) => p.atMs)).toEqual([0, 20 * MIN]);
  });

  it("stays bounded: the oldest buckets go first", () => {
    let h = emptyHistory();
    for (let i = 0; i <= MAX_BUCKETS + 10; i++) h = recordDemand(h, i * 5 * MIN, i, null);
    expect(h.tokensPerSecond).toHaveLength(MAX_BUCKETS);
    expect(h.tokensPerSecond[0]).toBe(10);
    expect(h.startMs).toBe(10 * 5 * MIN);
    for (let i = 0; i < 40; i++) h = recordTimeToReady(h, 30 + i);
    expect(h.timeToReadySeconds).toHaveLength(MAX_READY_TIMES);
  });

  it("does not mutate its input", () => {
    const h = recordDemand(emptyHistory(), 0, 10, null);
    const before = JSON.stringify(h);
    recordDemand(h, 6 * MIN, 5, null);
    recordTimeToReady(h, 40);
    expect(JSON.stringify(h)).toBe(before);
  });

  it("round-trips through JSON and refuses or trims what is malformed", () => {
    let h = recordDemand(emptyHistory(), 0, 10, 3);
    h = recordDemand(h, 5 * MIN, 12, null);
    h = recordTimeToReady(h, 75);
    h = { ...h, capacity: { tokensPerSecond: 9_000, observations: 4 } };
    expect(parseHistory(JSON.parse(JSON.stringify(h)))).toEqual(h);
    expect(parseHistory({ v: 99 })).toBeNull();
    expect(parseHistory("x")).toBeNull();
    const bad = parseHistory({ ...h, tokensPerSecond: [1, "x", -5, 7], capacity: { tokensPerSecond: -1 } });
    expect(bad?.tokensPerSecond).toEqual([1, null, null, 7]);
    expect(bad?.capacity).toBeNull();
    const long = parseHistory({ ...h, tokensPerSecond: Array.from({ length: MAX_BUCKETS + 5 }, () => 1) });
    expect(long?.tokensPerSecond).toHaveLength(MAX_BUCKETS);
    expect(long?.startMs).toBe(h.startMs + 5 * 5 * MIN);
  });

  it("learns the time to ready as the median of recent pods, with a fallback before any", () => {
    expect(learnedTimeToReady(emptyHistory(), 120)).toBe(120);
    let h = emptyHistory();
    for (const s of [60, 90, 300]) h = recordTimeToReady(h, s);
    expect(learnedTimeToReady(h, 120)).toBe(90);
  });
});

describe("learnCapacity", () => {
  it("starts from the planner's prior and, after a few saturated readings, takes what they did", () => {
    let c = learnCapacity(null, 10_000, [], []);
    expect(c?.tokensPerSecond).toBe(10_000);
    // An engine 30% slower than planned: every saturated pod reports ~7,000.
    for (let i = 0; i < CAPACITY_MIN_EVIDENCE - 1; i++) c = learnCapacity(c, 10_000, [7_000], []);
    expect(c?.tokensPerSecond).toBe(10_000); // too little evidence: the prior holds
    c = learnCapacity(c, 10_000, [7_000], []);
    expect(c?.tokensPerSecond).toBe(7_000);
  });

  it("is not dragged down by pods that queued briefly at a fraction of their capacity", () => {
    // Most "saturated" readings of a bursty fleet are partial: 40-90% of a 10,000 tokens/s capacity.
    let c = learnCapacity(null, 10_000, [], []);
    const partial = [4_000, 9_000, 5_500, 6_000, 4_500, 8_800, 5_000, 6_500];
    for (let round = 0; round < 3; round++) for (const x of partial) c = learnCapacity(c, 10_000, [x], []);
    expect(c?.tokensPerSecond).toBe(9_000);
    // Rates below half the prior are bursts (or memory-bound), not evidence.
    const low = learnCapacity(null, 10_000, [3_000, 3_000, 3_000, 3_000], []);
    expect(low?.tokensPerSecond).toBe(10_000);
  });

  it("keeps its evidence bounded and across a round trip through the cluster", () => {
    let c = learnCapacity(null, 10_000, [], []);
    for (let i = 0; i < 100; i++) c = learnCapacity(c, 10_000, [6_000 + i], []);
    expect(c?.evidence).toHaveLength(CAPACITY_EVIDENCE);
    const h = parseHistory(JSON.parse(JSON.stringify({ ...emptyHistory(), capacity: c })));
    expect(h?.capacity).toEqual(c);
    expect(learnCapacity(h?.capacity ?? null, 10_000, [], [])?.tokensPerSecond).toBe(6_099);
  });

  it("takes a rate above the estimate on an unsaturated pod as proof it is too low, but not one below", () => {
    const c = learnCapacity({ tokensPerSecond: 8_000, observations: 10 }, 8_000, [], [5_000]);
    expect(c?.tokensPerSecond).toBe(8_000);
    const up = learnCapacity(c, 8_000, [], [11_000]);
    expect(up?.tokensPerSecond).toBeGreaterThan(8_000);
  });

  it("without a prior, learns from the first saturated pod and stays unknown until then", () => {
    expect(learnCapacity(null, null, [], [3_000])).toBeNull();
    expect(learnCapacity(null, null, [6_000], [])?.tokensPerSecond).toBe(6_000);
  });
});
