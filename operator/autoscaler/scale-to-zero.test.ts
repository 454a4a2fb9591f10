import { describe, expect, it } from "vitest";
import {
  decideScaleToZero,
  heldBacklogFloor,
  idleMillis,
  initialScaleToZeroState,
  observeEngineActivity,
  scaleToZeroEnabled,
  scaleToZeroPhase,
  wakeFromZero,
  type ScaleToZeroState,
} from "./scale-to-zero.js";

const zero = { minReplicas: 0, scaleToZeroIdleSeconds: 120 };
const noDemand = { held: 0, lastRequestAtMs: undefined };

describe("scale to zero is on only with minReplicas 0 and an idle period", () => {
  it("needs both", () => {
    expect(scaleToZeroEnabled(zero)).toBe(true);
    expect(scaleToZeroEnabled({ minReplicas: 1, scaleToZeroIdleSeconds: 120 })).toBe(false);
    expect(scaleToZeroEnabled({ minReplicas: 0 })).toBe(false);
  });
});

describe("wake from zero on the informer event", () => {
  it("asks for one replica when requests are held at zero", () => {
    expect(wakeFromZero(zero, 0, { held: 3, lastRequestAtMs: 1 })).toBe(1);
  });
  it("leaves a running model alone, and a model nobody waits for", () => {
    expect(wakeFromZero(zero, 2, { held: 3, lastRequestAtMs: 1 })).toBeUndefined();
    expect(wakeFromZero(zero, 0, noDemand)).toBeUndefined();
  });
  it("does nothing when scale to zero is off", () => {
    expect(wakeFromZero({ minReplicas: 1, scaleToZeroIdleSeconds: 120 }, 0, { held: 3, lastRequestAtMs: 1 })).toBeUndefined();
  });
});

describe("engine activity from counters", () => {
  it("a counter that moves, a first non-zero reading, or requests in flight are activity", () => {
    let state = observeEngineActivity(initialScaleToZeroState(), [{ name: "a", inFlight: 0, counter: 0 }], 1_000);
    expect(state.lastEngineActivityMs).toBeNull();
    expect(state.watchingSinceMs).toBe(1_000);
    state = observeEngineActivity(state, [{ name: "a", inFlight: 0, counter: 0 }], 2_000);
    expect(state.lastEngineActivityMs).toBeNull();
    state = observeEngineActivity(state, [{ name: "a", inFlight: 0, counter: 5 }], 3_000);
    expect(state.lastEngineActivityMs).toBe(3_000);
    state = observeEngineActivity(state, [{ name: "a", inFlight: 1, counter: 5 }], 4_000);
    expect(state.lastEngineActivityMs).toBe(4_000);
    state = observeEngineActivity(state, [{ name: "b", inFlight: 0, counter: 9 }], 5_000);
    expect(state.lastEngineActivityMs).toBe(5_000);
    expect(state.podCounters).toEqual({ b: 9 });
    expect(state.watchingSinceMs).toBe(1_000);
  });
  it("a pod without counters keeps its last reading and is not activity", () => {
    const before: ScaleToZeroState = { watchingSinceMs: 0, lastEngineActivityMs: null, podCounters: { a: 4 } };
    const after = observeEngineActivity(before, [{ name: "a", inFlight: 0, counter: null }], 10);
    expect(after.podCounters).toEqual({ a: 4 });
    expect(after.lastEngineActivityMs).toBeNull();
  });
});

describe("idle time", () => {
  it("is counted from the latest of gateway request, engine activity and the start of watching", () => {
    const state: ScaleToZeroState = { watchingSinceMs: 1_000, lastEngineActivityMs: 5_000, podCounters: {} };
    expect(idleMillis(state, { held: 0, lastRequestAtMs: 8_000 }, 10_000)).toBe(2_000);
    expect(idleMillis(state, { held: 0, lastRequestAtMs: 2_000 }, 10_000)).toBe(5_000);
    expect(idleMillis({ ...state, lastEngineActivityMs: null }, noDemand, 10_000)).toBe(9_000);
  });
  it("a restarted operator does not count from a gateway time older than its own start", () => {
    const fresh = observeEngineActivity(initialScaleToZeroState(), [], 500_000);
    expect(idleMillis(fresh, { held: 0, lastRequestAtMs: 0 }, 500_000)).toBe(0);
  });
});

describe("the tick's decision", () => {
  const watched = (since: number, engine: number | null = null): ScaleToZeroState => ({
    watchingSinceMs: since,
    lastEngineActivityMs: engine,
    podCounters: {},
  });

  it("scales to zero after scaleToZeroIdleSeconds without a request", () => {
    const decision = decideScaleToZero({
      nowMs: 200_000,
      settings: zero,
      specReplicas: 2,
      policyReplicas: 2,
      demand: { held: 0, lastRequestAtMs: 79_000 },
      state: watched(0, 60_000),
    });
    expect(decision.replicas).toBe(0);
    expect(decision.reason).toMatch(/no request for 121s/);
  });

  it("keeps the policy's count while the idle period runs", () => {
    const decision = decideScaleToZero({
      nowMs: 200_000,
      settings: zero,
      specReplicas: 2,
      policyReplicas: 1,
      demand: { held: 0, lastRequestAtMs: 81_000 },
      state: watched(0),
    });
    expect(decision).toEqual({ replicas: 1, idleMs: 119_000 });
  });

  it("an engine still counting requests keeps the model up even when no gateway saw any", () => {
    const decision = decideScaleToZero({
      nowMs: 200_000,
      settings: zero,
      specReplicas: 1,
      policyReplicas: 1,
      demand: noDemand,
      state: watched(0, 190_000),
    });
    expect(decision.replicas).toBe(1);
  });

  it("wakes from zero when requests are held, and never sleeps while any are", () => {
    expect(
      decideScaleToZero({ nowMs: 500_000, settings: zero, specReplicas: 0, policyReplicas: 0, demand: { held: 2, lastRequestAtMs: 1 }, state: watched(0) }),
    ).toMatchObject({ replicas: 1, reason: expect.stringMatching(/2 request\(s\) held/) });
    expect(
      decideScaleToZero({ nowMs: 500_000, settings: zero, specReplicas: 1, policyReplicas: 1, demand: { held: 2, lastRequestAtMs: 1 }, state: watched(0) })
        .replicas,
    ).toBe(1);
  });

  it("sizes the wake by the held prompt tokens against what one replica prefills within the objective", () => {
    const settings = { ...zero, maxReplicas: 6 };
    const burst = { held: 12, heldTokens: 32_000, lastRequestAtMs: 1 };
    // 7,500 tokens per replica within the objective: 32,000 held tokens need 5.
    expect(wakeFromZero(settings, 0, burst, { readyReplicas: 0, tokensPerReplica: 7_500 })).toBe(5);
    // Activating (replicas asked for, none ready): a bigger held burst grows the first step…
    expect(wakeFromZero(settings, 1, burst, { readyReplicas: 0, tokensPerReplica: 7_500 })).toBe(5);
    // …but never shrinks it, and once a replica is ready the policy sizes from its metrics.
    expect(wakeFromZero(settings, 5, burst, { readyReplicas: 0, tokensPerReplica: 7_500 })).toBeUndefined();
    expect(wakeFromZero(settings, 1, burst, { readyReplicas: 1, tokensPerReplica: 7_500 })).toBeUndefined();
    // Bounded by maxReplicas; one replica when the gateway reports no token figure or there is no plan.
    expect(wakeFromZero(settings, 0, { ...burst, heldTokens: 10_000_000 }, { readyReplicas: 0, tokensPerReplica: 7_500 })).toBe(6);
    expect(wakeFromZero(settings, 0, { held: 12, lastRequestAtMs: 1 }, { readyReplicas: 0, tokensPerReplica: 7_500 })).toBe(1);
    expect(wakeFromZero(settings, 0, burst, { readyReplicas: 0 })).toBe(1);
    expect(
      decideScaleToZero({
        nowMs: 500_000,
        settings,
        specReplicas: 1,
        policyReplicas: 1,
        demand: burst,
        state: watched(0),
        sizing: { readyReplicas: 0, tokensPerReplica: 7_500 },
      }),
    ).toMatchObject({ replicas: 5, reason: expect.stringMatching(/activating: 12 request\(s\) held .*1 → 5/) });
  });

  it("at any scale, asks for the ready replicas plus what the held prompt tokens need, not more while pods start", () => {
    const settings = { minReplicas: 1, maxReplicas: 8 };
    const held = { held: 20, heldTokens: 30_000, lastRequestAtMs: 1 };
    expect(heldBacklogFloor(settings, held, { readyReplicas: 2, tokensPerReplica: 7_500 })).toBe(6);
    // The same backlog while those 4 start: still 6 (ready, not requested, is the base).
    expect(heldBacklogFloor(settings, held, { readyReplicas: 2, tokensPerReplica: 7_500 })).toBe(6);
    expect(heldBacklogFloor(settings, { ...held, heldTokens: 1e9 }, { readyReplicas: 2, tokensPerReplica: 7_500 })).toBe(8);
    expect(heldBacklogFloor(settings, { held: 0, heldTokens: 0, lastRequestAtMs: 1 }, { readyReplicas: 2, tokensPerReplica: 7_500 })).toBe(0);
    expect(heldBacklogFloor(settings, { held: 3, lastRequestAtMs: 1 }, { readyReplicas: 2, tokensPerReplica: 7_500 })).toBe(0);
    expect(heldBacklogFloor(settings, held, { readyReplicas: 2 })).toBe(0);
    // Less than one replica's worth (one request held while a Ready pod's engine loads): nothing.
    expect(heldBacklogFloor(settings, { held: 1, heldTokens: 3, lastRequestAtMs: 1 }, { readyReplicas: 1, tokensPerReplica: 7_500 })).toBe(0);
    expect(heldBacklogFloor(settings, { ...held, heldTokens: 7_499 }, { readyReplicas: 1, tokensPerReplica: 7_500 })).toBe(0);
  });

  it("stays at zero without demand", () => {
    const decision = decideScaleToZero({ nowMs: 500_000, settings: zero, specReplicas: 0, policyReplicas: 0, demand: noDemand, state: watched(0) });
    expect(decision.replicas).toBe(0);
    expect(decision.reason).toMatch(/idle at zero/);
  });

  it("leaves everything to the policy when scale to zero is off", () => {
    const decision = decideScaleToZero({
      nowMs: 10_000_000,
      settings: { minReplicas: 1, scaleToZeroIdleSeconds: 60 },
      specReplicas: 1,
      policyReplicas: 1,
      demand: noDemand,
      state: watched(0),
    });
    expect(decision).toEqual({ replicas: 1, idleMs: 10_000_000 });
  });
});

describe("phase for the status", () => {
  it("Idle at zero with nothing held; Activating while held at zero or no pod is ready yet", () => {
    expect(scaleToZeroPhase(zero, 0, 0, 0)).toBe("Idle");
    expect(scaleToZeroPhase(zero, 0, 0, 1)).toBe("Activating");
    expect(scaleToZeroPhase(zero, 1, 0, 0)).toBe("Activating");
    expect(scaleToZeroPhase(zero, 1, 1, 0)).toBeUndefined();
    expect(scaleToZeroPhase({ minReplicas: 1, scaleToZeroIdleSeconds: 60 }, 1, 0, 0)).toBeUndefined();
  });
});
