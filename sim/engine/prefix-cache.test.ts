import { describe, expect, it } from "vitest";
import { EngineModel, type EngineParams, type EngineRequest } from "./model.js";
import { PrefixCache } from "./prefix-cache.js";
import { SMALL_ENGINE } from "./testing.js";

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);
const req = (
  id: string,
  arrivalMs: number,
  promptTokens: number,
  hashes?: number[],
  out = 4,
): EngineRequest => ({
  id,
  promptTokens,
  maxOutputTokens: out,
  arrivalMs,
  ...(hashes ? { prefix: { blockHashes: hashes, blockTokens: 64 } } : {}),
});

/** Run one request to completion on `engine` after the others; return its TTFT in ms. */
function ttftMs(engine: EngineModel, r: EngineRequest): number {
  engine.enqueue(r);
  const events = engine.advanceTo(r.arrivalMs + 900);
  const first = events.find((e) => e.requestId === r.id && e.kind === "first-token");
  if (!first) throw new Error(`no first token for ${r.id}`);
  return first.atMs - r.arrivalMs;
}

describe("engine prefix caching", () => {
  it("a prompt whose prefix is cached skips that prefill: lower TTFT, counted as hits", () => {
    const engine = new EngineModel(SMALL_ENGINE, { tokenEvents: false });
    const cold = ttftMs(engine, req("a", 0, 1024, range(0, 16)));
    // Same first 12 blocks (768 tokens), then 4 new ones.
    const warm = ttftMs(engine, req("b", 10_000, 1024, [...range(0, 12), ...range(100, 4)]));
    expect(warm).toBeLessThan(cold * 0.6);
    const s = engine.snapshot();
    expect(s.prefixCacheQueriesTotal).toBe(2048);
    expect(s.prefixCacheHitsTotal).toBe(768);
  });

  it("an identical prompt hits all but the last KV block (the last token is always computed)", () => {
    const engine = new EngineModel(SMALL_ENGINE, { tokenEvents: false });
    ttftMs(engine, req("a", 0, 1000, range(0, 16)));
    ttftMs(engine, req("b", 10_000, 1000, range(0, 16)));
    // floor(999 / 16) × 16 = 992.
    expect(engine.snapshot().prefixCacheHitsTotal).toBe(992);
  });

  it("requests without block identities, or with caching off, never hit", () => {
    const off: EngineParams = { ...SMALL_ENGINE, prefixCaching: false };
    const a = new EngineModel(off, { tokenEvents: false });
    ttftMs(a, req("a", 0, 512, range(0, 8)));
    ttftMs(a, req("b", 10_000, 512, range(0, 8)));
    expect(a.snapshot().prefixCacheHitsTotal).toBe(0);
    expect(a.snapshot().prefixCacheQueriesTotal).toBe(0);
    const b = new EngineModel(SMALL_ENGINE, { tokenEvents: false });
    ttftMs(b, req("a", 0, 512));
    ttftMs(b, req("b", 10_000, 512));
    expect(b.snapshot().prefixCacheQueriesTotal).toBe(1024);
    expect(b.snapshot().prefixCacheHitsTotal).toBe(0);
  });

  it("cached blocks no request uses count as free KV and are evicted least recently used, tail first", () => {
    // 4096 tokens of KV: each 1024-token prompt is a quarter of it.
    const engine = new EngineModel(SMALL_ENGINE, { tokenEvents: false });
    ttftMs(engine, req("a", 0, 1024, range(0, 16)));
    ttftMs(engine, req("b", 1000, 1024, range(100, 16)));
    ttftMs(engine, req("c", 2000, 1024, range(200, 16)));
    expect(engine.snapshot().kvCacheUtilization).toBe(0);
    // d needs room: the least recently freed blocks (a's, tail first) are evicted.
    ttftMs(engine, req("d", 3000, 1536, range(300, 24)));
    const before = engine.snapshot().prefixCacheHitsTotal;
    ttftMs(engine, req("a2", 4000, 1024, range(0, 16)));
    const aHits = engine.snapshot().prefixCacheHitsTotal - before;
    // d needed 97 KV blocks with 64 empty: 9 of a's 16 cached blocks (4 KV blocks each) went, its tail
    // first, so a's first 7 blocks (448 tokens) still hit.
    expect(aHits).toBe(7 * 64);
    // a2 needed room in turn: the least recently freed blocks now were b's, so b lost its tail while
    // c, freed after b, is still whole (an identical prompt hits all but its last KV block).
    const beforeC = engine.snapshot().prefixCacheHitsTotal;
    ttftMs(engine, req("c2", 5000, 1024, range(200, 16)));
    expect(engine.snapshot().prefixCacheHitsTotal - beforeC).toBe(1008);
    const beforeB = engine.snapshot().prefixCacheHitsTotal;
    ttftMs(engine, req("b2", 6000, 1024, range(100, 16)));
    expect(engine.snapshot().prefixCacheHitsTotal - beforeB).toBeLessThan(1008);
  });

  it("shared blocks are in use while any running request holds them, and KV accounting returns to zero", () => {
    const engine = new EngineModel(SMALL_ENGINE, { tokenEvents: false });
    ttftMs(engine, req("a", 0, 1024, range(0, 16)));
    for (let i = 0; i < 6; i++)
      engine.enqueue(req(`r${i}`, 1000, 1024, [...range(0, 8), ...range(1000 + i * 10, 8)], 50));
    engine.advanceTo(1000 + 20);
    const busy = engine.snapshot();
    // Sharing the 512-token head, all 6 fit in 4096 tokens of KV at once (6 × 513 own + 512 shared);
    // without caching at most 3 of 1025 tokens do.
    expect(busy.requestsRunning).toBe(6);
    const off = new EngineModel({ ...SMALL_ENGINE, prefixCaching: false }, { tokenEvents: false });
    for (let i = 0; i < 6; i++)
      off.enqueue(req(`r${i}`, 1000, 1024, [...range(0, 8), ...range(1000 + i * 10, 8)], 50));
    off.advanceTo(1000 + 20);
    expect(off.snapshot().requestsRunning).toBe(3);
    engine.advanceTo(3600_000);
    const idle = engine.snapshot();
    expect(idle.requestsFinishedTotal).toBe(7);
    expect(idle.kvCacheUtilization).toBe(0);
    expect(idle.prefixCacheHitsTotal).toBe(6 * 512);
  });
});

describe("PrefixCache", () => {
  it("evicts only unreferenced blocks, in the order they were freed", () => {
    const cache = new PrefixCache();
    const a = cache.insert(1, 64, 4);
    const b = cache.insert(2, 64, 4);
    if (!a || !b) throw new Error("insert");
    expect(cache.insert(1, 64, 4)).toBeUndefined();
    expect(cache.release([a, b])).toBe(8); // freed b first, then a
    expect(cache.evictableEngineBlocks).toBe(8);
    expect(cache.acquire(a)).toBe(4);
    expect(cache.evict(100)).toBe(4); // only b is evictable
    expect(cache.leadingHits([1, 2])).toBe(1);
    expect(cache.size()).toBe(1);
  });
});
