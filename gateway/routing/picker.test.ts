import { describe, expect, it } from "vitest";
import {
  combineScores,
  DEFAULT_PICK_LIMITS,
  DEFAULT_PICK_WEIGHTS,
  newRoutingState,
  pickEndpoint,
  recordPick,
} from "./picker.js";
import { promptBlockHashes } from "./prefix.js";
import type { EndpointState, PickWeights, RequestFeatures } from "./types.js";

const ep = (podName: string, extra: Partial<EndpointState> = {}): EndpointState => ({
  podName,
  namespace: "ns",
  address: `127.0.0.${podName.length + 1}:8000`,
  ready: true,
  inFlight: 0,
  ...extra,
});
const prompt = (seed: string, blocks: number): string =>
  `${seed}:`.repeat(Math.ceil((256 * blocks) / (seed.length + 1))).slice(0, 256 * blocks);
const req = (p: string, sessionKey?: string): RequestFeatures => ({
  model: "m",
  prompt: p,
  ...(sessionKey ? { sessionKey } : {}),
});
const W: PickWeights = { prefix: 2, queue: 1, kvCache: 0.5, session: 3, prefill: 0 };

describe("combineScores", () => {
  it("is the weighted sum of the scorers", () => {
    const c = combineScores({ prefix: [1, 0], queue: [0.5, 1], kvCache: [0.2, 0.4], session: [0, 1] }, W);
    expect(c[0]).toBeCloseTo(2 + 0.5 + 0.1);
    expect(c[1]).toBeCloseTo(0 + 1 + 0.2 + 3);
    const noPrefix = combineScores(
      { prefix: [1, 0], queue: [0.5, 1], kvCache: [0, 0], session: [0, 0] },
      { ...W, prefix: 0 },
    );
    expect(noPrefix[1]).toBeGreaterThan(noPrefix[0] as number);
  });
});

describe("pickEndpoint with the default weights", () => {
  /** Pod b holds a ~4k-token conversation; the pods have these prefill backlogs; pick its next turn. */
  const nextTurn = (backlogs: [number, number, number], seed: string) => {
    const state = newRoutingState();
    const history = prompt(seed, 64);
    state.prefix.record("b", promptBlockHashes(history), 0);
    const endpoints = (["a", "b", "c"] as const).map((name, i) =>
      ep(name, { pendingPrefillTokens: backlogs[i] }),
    );
    return pickEndpoint(req(history + "next turn ".repeat(30)), endpoints, state, DEFAULT_PICK_WEIGHTS, 1);
  };

  it("keeps a conversation on the pod that holds its prefix while the prefill work is close", () => {
    const pick = nextTurn([0, 2000, 0], "conversation 1");
    expect(pick?.endpoint.podName).toBe("b");
    expect(pick?.reason).toBe("prefix-affinity");
  });

  it("leaves the prefix's pod when its prefill backlog costs more than the cache saves", () => {
    const pick = nextTurn([500, 200_000, 0], "conversation 2");
    expect(pick?.endpoint.podName).toBe("c");
    expect(pick?.reason).toBe("least-prefill");
  });

  it("a session key outweighs prefix affinity", () => {
    const state = newRoutingState();
    const history = prompt("conversation 3", 64);
    state.prefix.record("b", promptBlockHashes(history), 0);
    state.sessions.record("s-1", "a", 0);
    const pick = pickEndpoint(
      req(history, "s-1"),
      [ep("a"), ep("b"), ep("c")],
      state,
      DEFAULT_PICK_WEIGHTS,
      1,
    );
    expect(pick?.endpoint.podName).toBe("a");
    expect(pick?.reason).toBe("session-affinity");
  });
});

describe("pickEndpoint", () => {
  it("returns undefined with no ready endpoint, and only-endpoint with one", () => {
    const state = newRoutingState();
    expect(pickEndpoint(req("x"), [ep("a", { ready: false })], state, W)).toBeUndefined();
    expect(pickEndpoint(req("x"), [ep("a"), ep("b", { ready: false })], state, W)?.reason).toBe(
      "only-endpoint",
    );
  });

  it("holds (undefined) when every ready endpoint is saturated", () => {
    const state = newRoutingState();
    const limits = { ...DEFAULT_PICK_LIMITS, maxLoadPerEndpoint: 4 };
    expect(
      pickEndpoint(req("x"), [ep("a", { inFlight: 4 }), ep("b", { inFlight: 5 })], state, W, 0, limits),
    ).toBeUndefined();
    expect(
      pickEndpoint(req("x"), [ep("a", { inFlight: 4 }), ep("b", { inFlight: 3 })], state, W, 0, limits)
        ?.endpoint.podName,
    ).toBe("b");
  });

  it("holds (undefined) when every pod's prefill backlog reaches the bound, but a pod with none takes any prompt", () => {
    const state = newRoutingState();
    const limits = { ...DEFAULT_PICK_LIMITS, maxPendingPrefillTokens: 8_000 };
    const busy = [ep("a", { pendingPrefillTokens: 8_000 }), ep("b", { pendingPrefillTokens: 9_500 })];
    expect(pickEndpoint(req("x"), busy, state, W, 0, limits)).toBeUndefined();
    expect(pickEndpoint(req("x"), busy, state, W, 0, DEFAULT_PICK_LIMITS)).toBeDefined();
    const oneFree = [ep("a", { pendingPrefillTokens: 8_000 }), ep("b", { pendingPrefillTokens: 7_999 })];
    expect(pickEndpoint(req("x"), oneFree, state, W, 0, limits)?.endpoint.podName).toBe("b");
    const huge: RequestFeatures = { ...req("x"), promptTokens: 50_000 };
    expect(
      pickEndpoint(huge, [ep("a", { pendingPrefillTokens: 0 })], state, W, 0, limits)?.endpoint.podName,
    ).toBe("a");
  });

  it("picks the least loaded when no pod has the prefix", () => {
    const state = newRoutingState();
    const pick = pickEndpoint(
      req(prompt("q", 4)),
      [ep("a", { inFlight: 2 }), ep("b", { inFlight: 1 }), ep("c", { inFlight: 3 })],
      state,
      W,
    );
    expect(pick?.endpoint.podName).toBe("b");
    expect(pick?.reason).toBe("least-loaded");
  });

  it("sends a prompt sharing a cached prefix to the pod that holds it (prefix-affinity), despite a little more load", () => {
    const state = newRoutingState();
    const system = prompt("system prompt", 8);
    const first = req(system + "first question ".repeat(40));
    const endpoints = [ep("a"), ep("b"), ep("c")];
    const p1 = pickEndpoint(first, endpoints, state, W, 0);
    if (!p1) throw new Error("no pick");
    recordPick(state, first, p1, 0);
    const holder = p1.endpoint.podName;
    const loaded = endpoints.map((e) => (e.podName === holder ? { ...e, inFlight: 2 } : e));
    const p2 = pickEndpoint(req(system + "another question ".repeat(40)), loaded, state, W, 1);
    expect(p2?.endpoint.podName).toBe(holder);
    expect(p2?.reason).toBe("prefix-affinity");
  });

  it("gives up affinity for a pod loaded far above the mean (bounded loads)", () => {
    const state = newRoutingState();
    const p = prompt("hot prefix", 8);
    const hashes = promptBlockHashes(p);
    state.prefix.record("a", hashes, 0);
    const endpoints = [ep("a", { inFlight: 30 }), ep("b", { inFlight: 1 }), ep("c", { inFlight: 2 })];
    const pick = pickEndpoint(req(p), endpoints, state, W, 1);
    expect(pick?.endpoint.podName).toBe("b");
    // With the bound lifted, the affinity wins.
    const pick2 = pickEndpoint(req(p), endpoints, state, { ...W, prefix: 10 }, 1, {
      ...DEFAULT_PICK_LIMITS,
      affinityLoadFactor: 100,
    });
    expect(pick2?.endpoint.podName).toBe("a");
  });

  it("keeps a session on its pod (session-affinity) until it expires", () => {
    const state = newRoutingState({ sessions: { ttlMs: 1000 } });
    const endpoints = [ep("a"), ep("b"), ep("c")];
    const r = req("short", "user-42");
    state.sessions.record("user-42", "c", 0);
    const pick = pickEndpoint(r, endpoints, state, W, 10);
    expect(pick?.endpoint.podName).toBe("c");
    expect(pick?.reason).toBe("session-affinity");
    expect(pickEndpoint(r, endpoints, state, W, 5000)?.endpoint.podName).toBe("a");
  });

  it("prefers free KV cache between equally loaded pods (kv-cache)", () => {
    const state = newRoutingState();
    const m = (kv: number) => ({
      requestsRunning: 2,
      requestsWaiting: 0,
      kvCacheUtilization: kv,
      scrapedAtMs: 0,
    });
    const pick = pickEndpoint(
      req("x"),
      [ep("a", { metrics: m(0.9) }), ep("b", { metrics: m(0.3) })],
      state,
      W,
    );
    expect(pick?.endpoint.podName).toBe("b");
    expect(pick?.reason).toBe("kv-cache");
  });

  it("uses caller-given block hashes instead of hashing the prompt", () => {
    const state = newRoutingState();
    state.prefix.record("b", [7, 8, 9], 0);
    const pick = pickEndpoint(
      { model: "m", prompt: "", blockHashes: [7, 8, 9] },
      [ep("a"), ep("b")],
      state,
      W,
    );
    expect(pick?.endpoint.podName).toBe("b");
    expect(pick?.scores.b).toBeGreaterThan(pick?.scores.a as number);
  });
});
