import { describe, expect, it } from "vitest";
import { SMALL_ENGINE } from "../engine/testing.js";
import {
  chwblRouter,
  gpufleetRouter,
  randomRouter,
  roundRobinRouter,
  type Router,
  scaleUsers,
  sequenceHitRatio,
  simulateRouting,
} from "./routing.js";
import type { Trace, TraceRequest } from "./traces.js";

/**
 * 30 conversations of 6 turns each, sized so that their prefixes fit in 4 SMALL_ENGINEs' KV caches
 * (16 Ki tokens) only when each conversation stays on one pod: turn t repeats the conversation's
 * blocks so far and adds one (64-token blocks, as the gateway hashes text). 30 is not a multiple of 4,
 * so round-robin does not keep conversations on a pod by accident.
 */
function conversations(): Trace {
  const requests: TraceRequest[] = [];
  for (let c = 0; c < 30; c++) {
    for (let t = 0; t < 6; t++) {
      const blocks = 2 + t;
      requests.push({
        arrivalMs: c * 150 + t * 6000,
        promptTokens: blocks * 64,
        outputTokens: 8,
        blockIds: Array.from({ length: blocks }, (_, i) => c * 100 + i),
      });
    }
  }
  requests.sort((a, b) => a.arrivalMs - b.arrivalMs);
  return { name: "synthetic", requests, durationMs: requests[requests.length - 1]?.arrivalMs ?? 0 };
}

const scenario = {
  name: "synthetic",
  trace: conversations(),
  params: SMALL_ENGINE,
  replicas: 4,
  scrapeIntervalMs: 1000,
  blockTokens: 64,
};

describe("routing simulation", () => {
  it("is deterministic and finishes every request", () => {
    const a = simulateRouting(scenario, randomRouter(5));
    const b = simulateRouting(scenario, randomRouter(5));
    expect(a).toEqual(b);
    expect(a.finished).toBe(180);
  });

  it("a router that follows prefixes gets more prefix-cache hits than round-robin", () => {
    const rr = simulateRouting(scenario, roundRobinRouter());
    const ours = simulateRouting(scenario, gpufleetRouter(2 * (SMALL_ENGINE.kvCapacityTokens / 64)));
    expect(ours.hitRatio).toBeGreaterThan(rr.hitRatio + 0.1);
  });

  it("round-robin spreads requests evenly; CHWBL keeps a key on one pod under low load", () => {
    const seen: string[] = [];
    const spy = (inner: Router): Router => ({
      name: inner.name,
      pick: (r, eps, now) => {
        const i = inner.pick(r, eps, now);
        seen.push(`${r.prefixKey}:${eps[i]?.podName}`);
        return i;
      },
    });
    simulateRouting(scenario, spy(roundRobinRouter()));
    const perPod = new Map<string, number>();
    for (const s of seen)
      perPod.set(s.split(":")[1] as string, (perPod.get(s.split(":")[1] as string) ?? 0) + 1);
    expect([...perPod.values()].sort()).toEqual([45, 45, 45, 45]);
    seen.length = 0;
    simulateRouting(scenario, spy(chwblRouter()));
    const podsPerKey = new Map<string, Set<string>>();
    for (const s of seen) {
      const [key, pod] = s.split(":") as [string, string];
      podsPerKey.set(key, (podsPerKey.get(key) ?? new Set()).add(pod));
    }
    const sticky = [...podsPerKey.values()].filter((pods) => pods.size === 1).length;
    expect(sticky / podsPerKey.size).toBeGreaterThan(0.9);
  });

  it("scaleUsers gives copies their own block ids", () => {
    const t = scaleUsers(conversations(), 2);
    expect(t.requests).toHaveLength(360);
    const ids = new Set(t.requests.flatMap((r) => r.blockIds ?? []));
    expect(ids.size).toBe(2 * new Set(conversations().requests.flatMap((r) => r.blockIds ?? [])).size);
  });

  it("sequenceHitRatio counts leading cached blocks in tokens under an LRU bound", () => {
    const trace: Trace = {
      name: "t",
      durationMs: 2,
      requests: [
        { arrivalMs: 0, promptTokens: 1024, outputTokens: 1, blockIds: [1, 2] },
        { arrivalMs: 1, promptTokens: 1024, outputTokens: 1, blockIds: [1, 3] },
        { arrivalMs: 2, promptTokens: 1024, outputTokens: 1, blockIds: [1, 2] },
      ],
    };
    expect(sequenceHitRatio(trace, Number.MAX_SAFE_INTEGER)).toBeCloseTo((512 + 1024) / 3072);
    // Room for 2 blocks: request 2 evicts block 2 (least recent), so request 3 hits only block 1.
    expect(sequenceHitRatio(trace, 1024)).toBeCloseTo((512 + 512) / 3072);
  });
});
