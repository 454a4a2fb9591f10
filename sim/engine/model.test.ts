import { describe, expect, it } from "vitest";
import {
  ENGINE_GPUS,
  ENGINE_MODELS,
  EngineModel,
  engineParamsFor,
  engineParamsForNames,
  kvBytesPerToken,
  localReplicaPlan,
  type EngineEvent,
  type EngineParams,
} from "./model.js";

const h100Llama8b = (): EngineParams => engineParamsForNames("llama-3.1-8b", "NVIDIA-H100-80GB-HBM3");

/** Mean TTFT (s) of `count` identical requests arriving every `gapMs`. */
function meanTtftSeconds(
  params: EngineParams,
  count: number,
  gapMs: number,
  promptTokens = 2000,
  outputTokens = 200,
): number {
  const engine = new EngineModel(params, { tokenEvents: false });
  for (let i = 0; i < count; i++)
    engine.enqueue({ id: `r${i}`, promptTokens, maxOutputTokens: outputTokens, arrivalMs: i * gapMs });
  engine.advanceTo(10 * 3600_000);
  const { ttftSeconds } = engine.takeSamples();
  expect(ttftSeconds).toHaveLength(count);
  return ttftSeconds.reduce((a, b) => a + b, 0) / count;
}

describe("EngineModel", () => {
  it("emits first-token, every token, then finished for one request, in time order", () => {
    const engine = new EngineModel(h100Llama8b());
    engine.enqueue({ id: "a", promptTokens: 100, maxOutputTokens: 5, arrivalMs: 1000 });
    const events = engine.advanceTo(60_000);
    expect(events.map((e) => e.kind)).toEqual([
      "first-token",
      "token",
      "token",
      "token",
      "token",
      "finished",
    ]);
    expect(events.map((e) => e.tokenIndex)).toEqual([0, 1, 2, 3, 4, 5]);
    const times = events.map((e) => e.atMs);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect(times[0]).toBeGreaterThan(1000);
    expect(engine.snapshot()).toMatchObject({
      requestsFinishedTotal: 1,
      generationTokensTotal: 5,
      promptTokensTotal: 100,
    });
  });

  it("does nothing before a request's arrival time", () => {
    const engine = new EngineModel(h100Llama8b());
    engine.enqueue({ id: "later", promptTokens: 100, maxOutputTokens: 3, arrivalMs: 5000 });
    expect(engine.advanceTo(4999)).toEqual([]);
    expect(engine.snapshot().requestsWaiting).toBe(0);
    expect(engine.nextEventAtMs()).toBe(5000);
  });

  it("reports the next event time so a discrete-event loop can jump to it", () => {
    const engine = new EngineModel(h100Llama8b());
    engine.enqueue({ id: "a", promptTokens: 500, maxOutputTokens: 2, arrivalMs: 0 });
    const first = engine.nextEventAtMs();
    expect(first).not.toBeNull();
    const events = engine.advanceTo(first as number);
    expect(events).toHaveLength(1);
    expect(events[0]?.atMs).toBe(first);
    engine.advanceTo(60_000);
    expect(engine.nextEventAtMs()).toBeNull();
  });

  it("TTFT grows as the arrival rate grows", () => {
    const params = h100Llama8b();
    const light = meanTtftSeconds(params, 200, 1000); // 1 request/s
    const heavy = meanTtftSeconds(params, 200, 50); // 20 requests/s, beyond prefill capacity
    expect(heavy).toBeGreaterThan(light * 3);
  });

  it("inter-token latency grows with the batch size", () => {
    const itl = (concurrent: number): number => {
      const engine = new EngineModel(h100Llama8b());
      for (let i = 0; i < concurrent; i++)
        engine.enqueue({ id: `r${i}`, promptTokens: 1000, maxOutputTokens: 100, arrivalMs: 0 });
      engine.advanceTo(600_000);
      const { interTokenLatencySeconds } = engine.takeSamples();
      const sorted = [...interTokenLatencySeconds].sort((a, b) => a - b);
      return sorted[Math.floor(sorted.length / 2)] as number;
    };
    expect(itl(200)).toBeGreaterThan(itl(1) * 1.5);
  });

  it("queues requests when the KV cache cannot hold their prompts", () => {
    const params: EngineParams = { ...h100Llama8b(), kvCapacityTokens: 16 * 1000 }; // 1000 blocks
    const engine = new EngineModel(params, { tokenEvents: false });
    for (let i = 0; i < 10; i++)
      engine.enqueue({ id: `r${i}`, promptTokens: 4000, maxOutputTokens: 50, arrivalMs: 0 });
    engine.advanceTo(0);
    engine.advanceTo(engine.nextEventAtMs() as number);
    const snap = engine.snapshot();
    // 4001 tokens = 251 blocks; with a 1% watermark (10 blocks) only 3 fit in 1000 blocks.
    expect(snap.requestsRunning).toBe(3);
    expect(snap.requestsWaiting).toBe(7);
    expect(snap.kvCacheUtilization).toBeGreaterThan(0.75);
  });

  it("preempts the most recently admitted request when decoding runs out of blocks, and still finishes all", () => {
    const params: EngineParams = { ...h100Llama8b(), kvCapacityTokens: 16 * 200 };
    const engine = new EngineModel(params, { tokenEvents: false });
    for (let i = 0; i < 4; i++)
      engine.enqueue({ id: `r${i}`, promptTokens: 600, maxOutputTokens: 400, arrivalMs: 0 });
    const events = engine.advanceTo(600_000);
    const snap = engine.snapshot();
    expect(snap.requestsPreemptedTotal).toBeGreaterThan(0);
    expect(snap.requestsFinishedTotal).toBe(4);
    expect(events.filter((e: EngineEvent) => e.kind === "finished").map((e) => e.tokenIndex)).toEqual([
      400, 400, 400, 400,
    ]);
    expect(snap.kvCacheUtilization).toBe(0);
  });

  describe("scheduling policy (vLLM --scheduling-policy)", () => {
    /** Order of first tokens when one running request holds the only seat and three queue behind it. */
    const firstTokenOrder = (schedulingPolicy: "fcfs" | "priority") => {
      const engine = new EngineModel({ ...h100Llama8b(), maxNumSeqs: 1 }, { tokenEvents: false, schedulingPolicy });
      engine.enqueue({ id: "running", promptTokens: 100, maxOutputTokens: 50, arrivalMs: 0, priority: 0 });
      engine.enqueue({ id: "low-1", promptTokens: 100, maxOutputTokens: 5, arrivalMs: 1, priority: 5 });
      engine.enqueue({ id: "low-2", promptTokens: 100, maxOutputTokens: 5, arrivalMs: 2, priority: 5 });
      engine.enqueue({ id: "high", promptTokens: 100, maxOutputTokens: 5, arrivalMs: 3, priority: -3 });
      const events = engine.advanceTo(600_000);
      expect(engine.snapshot().requestsFinishedTotal).toBe(4);
      return events.filter((e) => e.kind === "first-token").map((e) => e.requestId);
    };

    it("priority: a waiting request with a lower priority value is admitted before earlier arrivals; ties in arrival order", () => {
      expect(firstTokenOrder("priority")).toEqual(["running", "high", "low-1", "low-2"]);
    });

    it("fcfs (the default) admits in arrival order whatever the priorities", () => {
      expect(firstTokenOrder("fcfs")).toEqual(["running", "low-1", "low-2", "high"]);
    });

    it("priority: a request that arrives later does not jump the queue before it arrives", () => {
      const engine = new EngineModel({ ...h100Llama8b(), maxNumSeqs: 1 }, { tokenEvents: false, schedulingPolicy: "priority" });
      engine.enqueue({ id: "future-high", promptTokens: 100, maxOutputTokens: 5, arrivalMs: 50_000, priority: -9 });
      engine.enqueue({ id: "now-low", promptTokens: 100, maxOutputTokens: 5, arrivalMs: 0, priority: 9 });
      expect(engine.nextEventAtMs()).toBeLessThan(50_000);
      const events = engine.advanceTo(600_000);
      expect(events.filter((e) => e.kind === "finished").map((e) => e.requestId)).toEqual(["now-low", "future-high"]);
      expect(events.find((e) => e.requestId === "future-high")!.atMs).toBeGreaterThan(50_000);
    });

    /** B (priority 5) is admitted alone at 0, A (priority 0) at 1 ms; both outgrow the 32-block cache. */
    const finishOrder = (schedulingPolicy: "fcfs" | "priority") => {
      const engine = new EngineModel({ ...h100Llama8b(), kvCapacityTokens: 16 * 32 }, { tokenEvents: false, schedulingPolicy });
      engine.enqueue({ id: "B", promptTokens: 100, maxOutputTokens: 200, arrivalMs: 0, priority: 5 });
      engine.enqueue({ id: "A", promptTokens: 100, maxOutputTokens: 200, arrivalMs: 1, priority: 0 });
      const events = engine.advanceTo(600_000);
      const snap = engine.snapshot();
      expect(snap.requestsPreemptedTotal).toBeGreaterThan(0);
      expect(snap.requestsFinishedTotal).toBe(2);
      return events.filter((e) => e.kind === "finished").map((e) => e.requestId);
    };

    it("priority: preempts the running request with the largest priority value when the KV cache runs out", () => {
      expect(finishOrder("priority")).toEqual(["A", "B"]);
    });

    it("fcfs: preempts the most recently admitted request instead", () => {
      expect(finishOrder("fcfs")).toEqual(["B", "A"]);
    });
  });

  it("rejects a request longer than the replica can ever hold", () => {
    const params: EngineParams = { ...h100Llama8b(), kvCapacityTokens: 16 * 100 };
    const engine = new EngineModel(params);
    engine.enqueue({ id: "huge", promptTokens: 5000, maxOutputTokens: 10, arrivalMs: 0 });
    const events = engine.advanceTo(1000);
    expect(events).toEqual([{ requestId: "huge", kind: "rejected", atMs: 0, tokenIndex: 0 }]);
    expect(engine.snapshot().requestsRejectedTotal).toBe(1);
  });

  it("abort drops a running or waiting request, frees its KV blocks and emits nothing more for it", () => {
    const params: EngineParams = { ...h100Llama8b(), maxNumSeqs: 1 };
    const engine = new EngineModel(params);
    engine.enqueue({ id: "run", promptTokens: 1000, maxOutputTokens: 5000, arrivalMs: 0 });
    engine.enqueue({ id: "wait", promptTokens: 1000, maxOutputTokens: 10, arrivalMs: 0 });
    engine.advanceTo(200);
    const busy = engine.snapshot();
    expect(busy).toMatchObject({ requestsRunning: 1, requestsWaiting: 1 });
    expect(busy.kvCacheUtilization).toBeGreaterThan(0);
    expect(engine.abort("run")).toBe(true);
    expect(engine.abort("run")).toBe(false);
    // The waiting request gets the slot; the aborted one never shows up again.
    const events = engine.advanceTo(60_000);
    expect(events.some((e) => e.requestId === "run")).toBe(false);
    expect(events.filter((e) => e.requestId === "wait").map((e) => e.kind).at(-1)).toBe("finished");
    const after = engine.snapshot();
    expect(after).toMatchObject({ requestsRunning: 0, requestsWaiting: 0, requestsAbortedTotal: 1 });
    expect(after.kvCacheUtilization).toBe(0);
    // A request aborted while it waits never runs.
    engine.enqueue({ id: "late", promptTokens: 100, maxOutputTokens: 10, arrivalMs: 70_000 });
    expect(engine.abort("late")).toBe(true);
    expect(engine.advanceTo(120_000)).toEqual([]);
    expect(engine.snapshot().requestsAbortedTotal).toBe(2);
  });

  it("reaches thousands of output tokens/s for Llama 3.1 8B on one H100 at high batch", () => {
    // Published vLLM throughput for Llama 3.1 8B on one H100 at high concurrency is in the
    // thousands to low tens of thousands of output tokens/s (vLLM v0.6 performance blog, 2024-09).
    const engine = new EngineModel(h100Llama8b(), { tokenEvents: false });
    for (let i = 0; i < 1000; i++)
      engine.enqueue({ id: `r${i}`, promptTokens: 1000, maxOutputTokens: 1000, arrivalMs: 0 });
    const events = engine.advanceTo(3600_000);
    const lastMs = events[events.length - 1]?.atMs as number;
    const tokensPerSecond = engine.snapshot().generationTokensTotal / (lastMs / 1000);
    expect(tokensPerSecond).toBeGreaterThan(2000);
    expect(tokensPerSecond).toBeLessThan(20000);
  });

  it("a single short request on an idle H100 has sub-second TTFT and ~ms-scale inter-token latency", () => {
    const engine = new EngineModel(h100Llama8b());
    engine.enqueue({ id: "a", promptTokens: 2000, maxOutputTokens: 50, arrivalMs: 0 });
    engine.advanceTo(60_000);
    const { ttftSeconds, interTokenLatencySeconds } = engine.takeSamples();
    expect(ttftSeconds[0]).toBeLessThan(0.2);
    expect(interTokenLatencySeconds[0]).toBeGreaterThan(0.004);
    expect(interTokenLatencySeconds[0]).toBeLessThan(0.02);
  });
});

describe("engineParamsFor", () => {
  it("derives the KV bytes per token of Llama 3.1 8B (2 × 32 layers × 8 heads × 128 × 2 B = 128 KiB)", () => {
    expect(kvBytesPerToken(ENGINE_MODELS["llama-3.1-8b"]!)).toBe(131072);
  });

  it("makes a slower GPU produce slower steps", () => {
    const model = ENGINE_MODELS["llama-3.1-8b"]!;
    const plan = { tensorParallelSize: 1, kvCacheTokensPerReplica: 100_000 };
    const h100 = engineParamsFor(model, ENGINE_GPUS["NVIDIA-H100-80GB-HBM3"]!, plan);
    const a100 = engineParamsFor(model, ENGINE_GPUS["NVIDIA-A100-SXM4-80GB"]!, plan);
    expect(a100.weightReadMs).toBeGreaterThan(h100.weightReadMs);
    expect(a100.computeMsPerToken).toBeGreaterThan(h100.computeMsPerToken);
    expect(h100.kvCapacityTokens).toBe(100_000);
  });

  it("sizes Llama 3.1 70B in BF16 onto four H100s, not one", () => {
    const plan = localReplicaPlan(ENGINE_MODELS["llama-3.1-70b"]!, ENGINE_GPUS["NVIDIA-H100-80GB-HBM3"]!);
    expect(plan.tensorParallelSize).toBe(4);
    expect(plan.kvCacheTokensPerReplica).toBeGreaterThan(100_000);
  });
});
