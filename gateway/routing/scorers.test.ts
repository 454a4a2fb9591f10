import { describe, expect, it } from "vitest";
import { PrefixIndex } from "./prefix-index.js";
import {
  estimatedLoad,
  kvCacheScores,
  prefillScores,
  prefixScores,
  queueScores,
  sessionScores,
} from "./scorers.js";
import type { EndpointState } from "./types.js";

const ep = (podName: string, extra: Partial<EndpointState> = {}): EndpointState => ({
  podName,
  namespace: "ns",
  address: "127.0.0.2:8000",
  ready: true,
  inFlight: 0,
  ...extra,
});
const metrics = (running: number, waiting: number, kv = 0) => ({
  requestsRunning: running,
  requestsWaiting: waiting,
  kvCacheUtilization: kv,
  scrapedAtMs: 0,
});

describe("estimatedLoad", () => {
  it("adds what was sent since the scrape and takes off what finished, never below own in-flight", () => {
    expect(estimatedLoad(ep("a", { inFlight: 3 }))).toBe(3);
    expect(estimatedLoad(ep("a", { metrics: metrics(5, 2), inFlight: 4, inFlightAtScrape: 1 }))).toBe(10);
    expect(estimatedLoad(ep("a", { metrics: metrics(5, 2), inFlight: 0, inFlightAtScrape: 3 }))).toBe(4);
    expect(estimatedLoad(ep("a", { metrics: metrics(0, 0), inFlight: 2, inFlightAtScrape: 5 }))).toBe(2);
  });
});

describe("prefixScores", () => {
  it("score the share of the prompt's blocks each pod holds as a leading prefix", () => {
    const index = new PrefixIndex();
    index.record("a", [1, 2, 3, 4], 0);
    index.record("b", [1, 2], 0);
    expect(prefixScores([ep("a"), ep("b"), ep("c")], [1, 2, 3, 4], index)).toEqual([1, 0.5, 0]);
    expect(prefixScores([ep("a")], [], index)).toEqual([0]);
  });
});

describe("queueScores", () => {
  it("gives the least loaded 1 and others (least+1)/(load+1)", () => {
    const s = queueScores([
      ep("a", { inFlight: 1 }),
      ep("b", { inFlight: 3 }),
      ep("c", { metrics: metrics(8, 1) }),
    ]);
    expect(s).toEqual([1, 0.5, 0.2]);
  });
});

describe("kvCacheScores", () => {
  it("score free KV; an unscraped pod gets the mean of the others", () => {
    const s = kvCacheScores([
      ep("a", { metrics: metrics(0, 0, 0.2) }),
      ep("b", { metrics: metrics(0, 0, 0.6) }),
      ep("c"),
    ]);
    expect(s[0]).toBeCloseTo(0.8);
    expect(s[1]).toBeCloseTo(0.4);
    expect(s[2]).toBeCloseTo(0.6);
    expect(kvCacheScores([ep("x")])).toEqual([0.5]);
  });
});

describe("sessionScores", () => {
  it("score 1 only for the session's pod", () => {
    expect(sessionScores([ep("a"), ep("b")], "b")).toEqual([0, 1]);
    expect(sessionScores([ep("a"), ep("b")], undefined)).toEqual([0, 0]);
  });
});

describe("prefillScores", () => {
  it("score backlog + the uncached part of the prompt, relative to the cheapest pod", () => {
    // a: 10k tokens backlog, b: none, c: none but holds 75% of the 8k prompt.
    const s = prefillScores(
      [
        ep("a", { pendingPrefillTokens: 10_000 }),
        ep("b", { pendingPrefillTokens: 0 }),
        ep("c", { pendingPrefillTokens: 0 }),
      ],
      8000,
      [0, 0, 0.75],
    );
    expect(s[2]).toBe(1);
    expect(s[1]).toBeCloseTo((2000 + 8192) / (8000 + 8192));
    expect(s[0]).toBeCloseTo((2000 + 8192) / (18_000 + 8192));
  });

  it("without a backlog figure, use the load estimate × this prompt", () => {
    const s = prefillScores([ep("a", { inFlight: 2 }), ep("b", { inFlight: 0 })], 1000, [0, 0]);
    expect(s[1]).toBe(1);
    expect(s[0]).toBeCloseTo((1000 + 8192) / (3000 + 8192));
  });
});
