import { describe, expect, it } from "vitest";
import {
  DEMAND_HELD_REFRESH_MS,
  DEMAND_LAST_REQUEST_REFRESH_MS,
  DEMAND_MIN_WRITE_INTERVAL_MS,
  INITIAL_DEMAND_STATE,
  afterDemandWrite,
  nextDemandWrite,
  type DemandInputs,
  type DemandWriteState,
} from "./demand.js";

const T = 1_800_000_000_000;
const inputs = (over: Partial<DemandInputs>): DemandInputs => ({
  held: 0,
  lastRequestAt: 0,
  scalesToZero: false,
  expired: [],
  nowMs: T,
  ...over,
});

/** Runs the decision like the writer does and returns the state after a write (or undefined: no write). */
function step(state: DemandWriteState, over: Partial<DemandInputs>): DemandWriteState | undefined {
  const decision = nextDemandWrite(state, inputs(over));
  return decision.write ? afterDemandWrite(state, decision.value) : undefined;
}

describe("nextDemandWrite", () => {
  it("writes nothing for a replica that holds nothing and serves a model that does not scale to zero", () => {
    expect(nextDemandWrite(INITIAL_DEMAND_STATE, inputs({ lastRequestAt: T - 5 }))).toEqual({ write: false });
  });

  it("writes at once when held goes 0 -> >0, and again when it returns to 0, at most every 2 s", () => {
    const first = nextDemandWrite(
      INITIAL_DEMAND_STATE,
      inputs({ held: 1, lastRequestAt: T, scalesToZero: true }),
    );
    expect(first).toEqual({
      write: true,
      value: { held: 1, lastRequestAt: T, updatedAt: T },
      why: "held-changed",
    });
    if (!first.write) throw new Error("expected a write");
    const s1 = afterDemandWrite(INITIAL_DEMAND_STATE, first.value);
    // 500 ms later held is 3: too soon, retry at the 2 s mark
    expect(nextDemandWrite(s1, inputs({ held: 3, nowMs: T + 500 }))).toEqual({
      write: false,
      retryAtMs: T + DEMAND_MIN_WRITE_INTERVAL_MS,
    });
    const s2 = step(s1, {
      held: 3,
      nowMs: T + DEMAND_MIN_WRITE_INTERVAL_MS,
      scalesToZero: true,
      lastRequestAt: T,
    });
    expect(s2?.writtenHeld).toBe(3);
    const back = nextDemandWrite(
      s2 as DemandWriteState,
      inputs({ held: 0, nowMs: T + 5_000, scalesToZero: true, lastRequestAt: T }),
    );
    expect(back).toMatchObject({ write: true, value: { held: 0 }, why: "held-changed" });
  });

  it("carries the held requests' prompt tokens while any are held, never when none are", () => {
    expect(nextDemandWrite(INITIAL_DEMAND_STATE, inputs({ held: 4, heldTokens: 12_345.4 }))).toMatchObject({
      write: true,
      value: { held: 4, heldTokens: 12_345 },
    });
    const none = nextDemandWrite(
      { ...INITIAL_DEMAND_STATE, writtenHeld: 4 },
      inputs({ held: 0, heldTokens: 0 }),
    );
    expect(none.write && "heldTokens" in none.value).toBe(false);
  });

  it("refreshes a held count every 10 s so the operator (which trusts it for 30 s) keeps seeing it", () => {
    const s = step(INITIAL_DEMAND_STATE, { held: 2 }) as DemandWriteState;
    expect(nextDemandWrite(s, inputs({ held: 2, nowMs: T + 9_000 }))).toEqual({
      write: false,
      retryAtMs: T + DEMAND_HELD_REFRESH_MS,
    });
    expect(nextDemandWrite(s, inputs({ held: 2, nowMs: T + DEMAND_HELD_REFRESH_MS }))).toMatchObject({
      write: true,
      why: "held-refresh",
    });
  });

  it("sends lastRequestAt only for models that scale to zero, at most every 30 s", () => {
    // not scaling to zero: a request alone writes nothing
    expect(nextDemandWrite(INITIAL_DEMAND_STATE, inputs({ lastRequestAt: T }))).toEqual({ write: false });
    const s = step(INITIAL_DEMAND_STATE, { lastRequestAt: T, scalesToZero: true }) as DemandWriteState;
    expect(s.writtenLastRequestAt).toBe(T);
    expect(
      nextDemandWrite(s, inputs({ lastRequestAt: T + 1_000, nowMs: T + 1_000, scalesToZero: true })),
    ).toEqual({
      write: false,
      retryAtMs: T + DEMAND_LAST_REQUEST_REFRESH_MS,
    });
    expect(
      nextDemandWrite(
        s,
        inputs({ lastRequestAt: T + 1_000, nowMs: T + DEMAND_LAST_REQUEST_REFRESH_MS, scalesToZero: true }),
      ),
    ).toEqual({
      write: true,
      value: { held: 0, lastRequestAt: T + 1_000, updatedAt: T + DEMAND_LAST_REQUEST_REFRESH_MS },
      why: "last-request",
    });
  });

  it("writes to delete other replicas' expired entries", () => {
    expect(nextDemandWrite(INITIAL_DEMAND_STATE, inputs({ expired: ["gw-dead"] }))).toMatchObject({
      write: true,
      why: "cleanup",
    });
  });

  it("over a minute of steady traffic to a scale-to-zero model writes at most 3 times", () => {
    let state = INITIAL_DEMAND_STATE;
    let writes = 0;
    for (let t = 0; t <= 60_000; t += 100) {
      const next = step(state, { lastRequestAt: T + t, nowMs: T + t, scalesToZero: true });
      if (next) {
        state = next;
        writes++;
      }
    }
    expect(writes).toBe(3);
  });
});
