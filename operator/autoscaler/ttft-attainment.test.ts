import { describe, expect, it } from "vitest";
import type { CumulativeHistogram } from "../metrics/engines.js";
import {
  countAtOrBelow,
  initialTtftAttainmentState,
  observeTtftAttainment,
  type TtftAttainmentState,
} from "./ttft-attainment.js";

// vLLM's default TTFT buckets around the objectives used here.
const BOUNDS = [0.5, 1, 2.5, 5, Number.POSITIVE_INFINITY];
const histogram = (...cumulativeCounts: number[]): CumulativeHistogram => ({
  upperBoundsSeconds: BOUNDS,
  cumulativeCounts,
});

describe("countAtOrBelow", () => {
  it("reads a bucket bound exactly", () => {
    expect(countAtOrBelow(histogram(10, 20, 30, 40, 50), 1)).toBe(20);
  });

  it("interpolates inside the bucket that holds the objective", () => {
    // 2 s lies 2/3 of the way from 1 s to 2.5 s: 20 + (30 − 20) × 2/3.
    expect(countAtOrBelow(histogram(10, 20, 30, 40, 50), 2)).toBeCloseTo(26.667, 3);
    // Below the first bound: a share of the first bucket, from 0 s.
    expect(countAtOrBelow(histogram(10, 20, 30, 40, 50), 0.25)).toBeCloseTo(5);
  });

  it("counts requests past the last finite bucket as misses", () => {
    expect(countAtOrBelow(histogram(10, 20, 30, 40, 50), 60)).toBe(40);
  });
});

describe("observeTtftAttainment", () => {
  const options = (nowMs: number) => ({ targetSeconds: 1, nowMs, windowSeconds: 300 });
  const pod = (name: string, h?: CumulativeHistogram) => ({ name, ...(h ? { metrics: { ttftHistogram: h } } : {}) });

  it("reports nothing until a pod has been read twice", () => {
    const first = observeTtftAttainment(initialTtftAttainmentState(), [pod("a", histogram(5, 9, 9, 9, 9))], options(0));
    expect(first.requests).toBeNull();
    expect(first.withinTargetShare).toBeNull();
  });

  it("counts only the requests since the previous reading, summed over pods", () => {
    let state: TtftAttainmentState = initialTtftAttainmentState();
    state = observeTtftAttainment(state, [pod("a", histogram(5, 9, 9, 9, 9)), pod("b", histogram(0, 0, 0, 0, 0))], options(0)).state;
    // a: 10 more requests, 8 within 1 s; b: 10 more, all beyond 5 s.
    const next = observeTtftAttainment(
      state,
      [pod("a", histogram(12, 17, 19, 19, 19)), pod("b", histogram(0, 0, 0, 0, 10))],
      options(10_000),
    );
    expect(next.requests).toBe(20);
    expect(next.withinTargetShare).toBeCloseTo(8 / 20);
  });

  it("forgets readings older than the window", () => {
    let state = observeTtftAttainment(initialTtftAttainmentState(), [pod("a", histogram(0, 0, 0, 0, 0))], options(0)).state;
    state = observeTtftAttainment(state, [pod("a", histogram(0, 0, 0, 0, 10))], options(10_000)).state; // 10 misses
    const later = observeTtftAttainment(state, [pod("a", histogram(10, 10, 10, 10, 20))], options(400_000));
    expect(later.requests).toBe(10);
    expect(later.withinTargetShare).toBe(1);
  });

  it("takes a restarted engine's falling counts as a new baseline, not as negative requests", () => {
    let state = observeTtftAttainment(initialTtftAttainmentState(), [pod("a", histogram(50, 50, 50, 50, 50))], options(0)).state;
    state = observeTtftAttainment(state, [pod("a", histogram(1, 1, 1, 1, 2))], options(10_000)).state;
    const next = observeTtftAttainment(state, [pod("a", histogram(3, 3, 3, 3, 4))], options(20_000));
    expect(next.requests).toBe(2);
    expect(next.withinTargetShare).toBe(1);
  });

  it("keeps a recent pod's baseline across a failed scrape instead of counting it again from zero", () => {
    const recent = (h?: CumulativeHistogram) => ({ ...pod("a", h), createdAtMs: 0 });
    let state = observeTtftAttainment(initialTtftAttainmentState(), [recent(histogram(1, 1, 1, 1, 1))], options(10_000)).state;
    state = observeTtftAttainment(state, [recent()], options(20_000)).state;
    const next = observeTtftAttainment(state, [recent(histogram(1, 1, 1, 1, 3))], options(30_000));
    expect(next.requests).toBe(3); // 1 at its first reading + 2 since, not 1 + 3
  });

  it("keeps a pod's baseline across a failed scrape", () => {
    let state = observeTtftAttainment(initialTtftAttainmentState(), [pod("a", histogram(1, 1, 1, 1, 1))], options(0)).state;
    state = observeTtftAttainment(state, [pod("a")], options(10_000)).state;
    const next = observeTtftAttainment(state, [pod("a", histogram(1, 1, 1, 1, 5))], options(20_000));
    expect(next.requests).toBe(4);
    expect(next.withinTargetShare).toBe(0);
  });

  it("starts over when the bucket layout changes (an engine upgraded to other buckets)", () => {
    const state = observeTtftAttainment(initialTtftAttainmentState(), [pod("a", histogram(1, 1, 1, 1, 1))], options(0)).state;
    const other = { upperBoundsSeconds: [1, Number.POSITIVE_INFINITY], cumulativeCounts: [7, 9] };
    expect(observeTtftAttainment(state, [pod("a", other)], options(10_000)).requests).toBeNull();
  });

  it("counts everything a pod served when it was created within the window", () => {
    const fresh = { ...pod("new", histogram(3, 4, 4, 4, 4)), createdAtMs: 5_000 };
    const first = observeTtftAttainment(initialTtftAttainmentState(), [fresh], options(10_000));
    expect(first.requests).toBe(4);
    expect(first.withinTargetShare).toBe(1);
  });

  it("takes a pod created before the window as a baseline only (its history may be old)", () => {
    const old = { ...pod("old", histogram(3, 4, 4, 4, 4)), createdAtMs: 0 };
    expect(observeTtftAttainment(initialTtftAttainmentState(), [old], options(600_000)).requests).toBeNull();
  });

  it("drops pods that are gone from its state", () => {
    const state = observeTtftAttainment(initialTtftAttainmentState(), [pod("a", histogram(1, 1, 1, 1, 1))], options(0)).state;
    expect(Object.keys(observeTtftAttainment(state, [], options(10_000)).state.pods)).toEqual([]);
  });
});
