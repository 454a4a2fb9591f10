import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { WorkQueue, backoffDelay, type HandlerResult } from "./workqueue.js";

/** A promise the test resolves by hand, to hold a handler in flight. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const flush = () => vi.advanceTimersByTimeAsync(0);

describe("backoffDelay", () => {
  const policy = { baseDelayMs: 500, maxDelayMs: 300_000, jitter: 0 };
  it("doubles from the base delay and stops at the cap", () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, policy))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffDelay(20, policy)).toBe(300_000);
    expect(backoffDelay(5000, policy)).toBe(300_000);
  });
  it("takes at most the jitter fraction off, never adds", () => {
    const jittered = { ...policy, jitter: 0.2 };
    expect(backoffDelay(3, jittered, () => 0)).toBe(2000);
    expect(backoffDelay(3, jittered, () => 1)).toBe(1600);
    expect(backoffDelay(30, jittered, () => 0.5)).toBe(270_000);
  });
});

describe("WorkQueue", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("reports how long each key waited in the queue before a worker took it", async () => {
    let clock = 0;
    const waits: Array<[string, number]> = [];
    const q = new WorkQueue({ now: () => clock, onWait: (key, ms) => waits.push([key, ms]) });
    const held = deferred();
    q.add("a");
    clock = 100;
    q.add("b");
    q.add("b"); // already queued: it keeps its first time
    q.start(async (key) => {
      if (key === "a") await held.promise;
    });
    clock = 400;
    held.resolve();
    await flush();
    expect(waits).toEqual([
      ["a", 100],
      ["b", 300],
    ]);
  });

  it("takes urgent keys before the others, moving up a queued key that became urgent, each once", async () => {
    const urgent = new Set(["new-1", "new-2"]);
    const taken: string[] = [];
    const q = new WorkQueue({ urgent: (key) => urgent.has(key) });
    for (const key of ["old-1", "new-1", "old-2", "changed", "new-2"]) q.add(key);
    urgent.add("changed");
    q.add("changed"); // already queued behind old-2: moved up
    expect(q.length).toBe(5);
    q.start((key) => {
      taken.push(key);
    });
    await flush();
    expect(taken).toEqual(["new-1", "new-2", "changed", "old-1", "old-2"]);
    expect(q.length).toBe(0);
  });

  it("queues a key once however often it is added", async () => {
    const q = new WorkQueue();
    q.add("a");
    q.add("a");
    q.add("b");
    q.add("a");
    expect(q.length).toBe(2);
    const seen: string[] = [];
    q.start((key) => {
      seen.push(key);
    });
    await flush();
    expect(seen).toEqual(["a", "b"]);
    expect(q.length).toBe(0);
  });

  it("never handles one key concurrently and handles a key re-added during processing once more after", async () => {
    const q = new WorkQueue({ concurrency: 4 });
    const gate = deferred();
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    q.start(async () => {
      calls++;
      running++;
      maxRunning = Math.max(maxRunning, running);
      if (calls === 1) await gate.promise;
      running--;
    });
    q.add("a");
    await flush();
    q.add("a");
    q.add("a");
    await flush();
    expect(calls).toBe(1);
    expect(q.length).toBe(0);
    gate.resolve();
    await flush();
    expect(calls).toBe(2);
    expect(maxRunning).toBe(1);
  });

  it("runs at most `concurrency` handlers at once", async () => {
    const q = new WorkQueue({ concurrency: 2 });
    const gates = new Map<string, ReturnType<typeof deferred<void>>>();
    const started: string[] = [];
    q.start(async (key) => {
      started.push(key);
      const g = deferred<void>();
      gates.set(key, g);
      await g.promise;
    });
    ["a", "b", "c", "d"].forEach((k) => q.add(k));
    await flush();
    expect(started).toEqual(["a", "b"]);
    expect(q.length).toBe(2);
    expect(q.inFlight).toBe(2);
    gates.get("a")!.resolve();
    await flush();
    expect(started).toEqual(["a", "b", "c"]);
  });

  it("retries a failing key with exponential backoff and forgets it after success", async () => {
    const retries: number[] = [];
    const q = new WorkQueue({
      baseDelayMs: 500,
      maxDelayMs: 300_000,
      jitter: 0,
      onRetry: (_k, _n, delay) => retries.push(delay),
    });
    const times: number[] = [];
    const start = Date.now();
    let failuresLeft = 3;
    q.start(() => {
      times.push(Date.now() - start);
      if (failuresLeft-- > 0) throw new Error("transient");
    });
    q.add("k");
    await flush();
    expect(q.numRequeues("k")).toBe(1);
    await vi.advanceTimersByTimeAsync(499);
    expect(times).toEqual([0]);
    await vi.advanceTimersByTimeAsync(1);
    expect(times).toEqual([0, 500]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(times).toEqual([0, 500, 1500]);
    await vi.advanceTimersByTimeAsync(2000);
    expect(times).toEqual([0, 500, 1500, 3500]);
    expect(retries).toEqual([500, 1000, 2000]);
    expect(q.numRequeues("k")).toBe(0);
    // After success the next failure starts from the base delay again.
    failuresLeft = 1;
    q.add("k");
    await flush();
    expect(retries.at(-1)).toBe(500);
  });

  it("caps the backoff at maxDelayMs", async () => {
    const retries: number[] = [];
    const q = new WorkQueue({
      baseDelayMs: 500,
      maxDelayMs: 4000,
      jitter: 0,
      onRetry: (_k, _n, d) => retries.push(d),
    });
    q.start(() => {
      throw new Error("always");
    });
    q.add("k");
    await vi.advanceTimersByTimeAsync(60_000);
    expect(retries.slice(0, 6)).toEqual([500, 1000, 2000, 4000, 4000, 4000]);
    await q.shutDown();
  });

  it("does not lengthen a key's backoff when it fails again on an early re-run (an event came while it was handled)", async () => {
    const retries: Array<[number, number]> = [];
    const q = new WorkQueue({
      baseDelayMs: 500,
      maxDelayMs: 300_000,
      jitter: 0,
      onRetry: (_k, failures, delay) => retries.push([failures, delay]),
    });
    let runs = 0;
    q.start((key) => {
      runs++;
      // Ten events for the key while it is handled (an API outage's burst): each re-runs it at once.
      if (runs <= 10) q.add(key);
      throw new Error("500");
    });
    q.add("k");
    await flush();
    expect(runs).toBe(11);
    // One failure counted: every early re-run's failure keeps the first retry's time.
    expect(q.numRequeues("k")).toBe(1);
    expect(retries.every(([failures, delay]) => failures === 1 && delay <= 500)).toBe(true);
    await vi.advanceTimersByTimeAsync(500);
    expect(runs).toBe(12);
    expect(retries.at(-1)).toEqual([2, 1000]);
    await q.shutDown();
  });

  it("forget() resets the backoff of a key", () => {
    const q = new WorkQueue({ baseDelayMs: 100, jitter: 0 });
    expect(q.addRateLimited("k")).toBe(100);
    vi.advanceTimersByTime(100);
    expect(q.addRateLimited("k")).toBe(200);
    q.forget("k");
    expect(q.addRateLimited("k")).toBe(100);
  });

  it("requeues after requeueAfterMs and keeps the earliest of several delayed adds", async () => {
    const q = new WorkQueue();
    const start = Date.now();
    const times: number[] = [];
    let result: HandlerResult = { requeueAfterMs: 10_000 };
    q.start(() => {
      times.push(Date.now() - start);
      const r = result;
      result = undefined;
      return r;
    });
    q.add("k");
    await flush();
    q.addAfter("k", 20_000); // later than the pending 10 s: ignored
    q.addAfter("k", 3_000); // earlier: replaces it
    expect(q.delayedCount).toBe(1);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(times).toEqual([0, 3_000]);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(times).toEqual([0, 3_000]);
  });

  it("reports the queue depth as it changes", async () => {
    const depths: number[] = [];
    const q = new WorkQueue({ onDepthChange: (d) => depths.push(d) });
    q.add("a");
    q.add("b");
    q.add("b");
    q.start(() => {});
    await flush();
    expect(depths).toEqual([1, 2, 1, 0]);
  });

  it("shutDown stops taking work and waits for in-flight handlers", async () => {
    const q = new WorkQueue({ concurrency: 1 });
    const gate = deferred();
    const seen: string[] = [];
    q.start(async (key) => {
      seen.push(key);
      await gate.promise;
    });
    q.add("a");
    q.add("b");
    q.addAfter("c", 1000);
    await flush();
    let done: boolean | undefined;
    void q.shutDown(5000).then((d) => (done = d));
    await flush();
    expect(done).toBeUndefined();
    q.add("d");
    gate.resolve();
    await flush();
    expect(done).toBe(true);
    await vi.advanceTimersByTimeAsync(5000);
    expect(seen).toEqual(["a"]);
    expect(q.length).toBe(0);
  });

  it("shutDown gives up after its timeout when a handler hangs", async () => {
    const q = new WorkQueue();
    q.start(() => new Promise<void>(() => {}));
    q.add("stuck");
    await flush();
    let done: boolean | undefined;
    void q.shutDown(1000).then((d) => (done = d));
    await vi.advanceTimersByTimeAsync(999);
    expect(done).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(false);
  });
});
