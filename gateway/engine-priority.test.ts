import { afterEach, describe, expect, it } from "vitest";
import type { Tenant, UsageTier } from "../operator/api/tenancy.js";
import { startEngineServer, type EngineServer } from "../sim/engine/server.js";
import { SMALL_ENGINE } from "../sim/engine/testing.js";
import { schedulesByPriority, vllmPriorityForBand, withEnginePriority } from "./engine-priority.js";
import { StaticFleet, staticEndpoint } from "./fleet.js";
import { createGatewayMetrics } from "./metrics.js";
import { GatewayServer } from "./server.js";
import { TenancyCore } from "./tenancy/core.js";
import { createTenancyMetrics } from "./tenancy/metrics.js";
import { TenancyGate } from "./tenancy/tenancy.js";

describe("vllmPriorityForBand", () => {
  it("negates the band, so a higher band is scheduled first by vLLM (lower value first), bounded", () => {
    expect(vllmPriorityForBand(0)).toBe(0);
    expect(vllmPriorityForBand(100)).toBe(-100);
    expect(vllmPriorityForBand(1000)).toBe(-1000);
    expect(vllmPriorityForBand(1e9)).toBe(-1000);
    // Sheddable admissions (band -1) go after every tier's requests.
    expect(vllmPriorityForBand(-1)).toBe(1);
    expect(vllmPriorityForBand(-50)).toBe(1);
    expect(vllmPriorityForBand(Number.NaN)).toBe(0);
    expect(vllmPriorityForBand(2.4)).toBe(-2);
  });
});

describe("schedulesByPriority", () => {
  const target = (engine: "vllm" | "sglang", schedulingPolicy?: "priority") => ({
    ...staticEndpoint("p", "127.0.0.1", 1).target,
    engine,
    ...(schedulingPolicy ? { schedulingPolicy } : {}),
  });
  it("is true only for a vLLM pod annotated with priority scheduling", () => {
    expect(schedulesByPriority(target("vllm", "priority"))).toBe(true);
    expect(schedulesByPriority(target("vllm"))).toBe(false);
    expect(schedulesByPriority(target("sglang", "priority"))).toBe(false);
  });
});

describe("withEnginePriority", () => {
  const body = (text: string) => Buffer.from(text);
  const parsed = (b: Buffer) => JSON.parse(b.toString("utf8")) as Record<string, unknown>;

  it("adds the member before the closing brace, keeping the client's bytes (whitespace after it too)", () => {
    const out = withEnginePriority(body('{"model":"m","prompt":"\\u00e9 big 12345678901234567890"}\n '), -100, false);
    expect(out.toString()).toBe('{"model":"m","prompt":"\\u00e9 big 12345678901234567890","priority":-100}\n ');
    expect(parsed(out).priority).toBe(-100);
  });

  it("adds no comma to an empty object", () => {
    expect(withEnginePriority(body("{ }"), 1, false).toString()).toBe('{ "priority":1}');
  });

  it("leaves a body alone for priority 0 (vLLM's default) when the client sent none", () => {
    const b = body('{"model":"m"}');
    expect(withEnginePriority(b, 0, false)).toBe(b);
  });

  it("replaces the client's own priority (a tenant cannot move itself up the engine's queue)", () => {
    const out = withEnginePriority(body('{"model":"m","priority":-1000000,"prompt":"x"}'), 0, true);
    expect(parsed(out)).toEqual({ model: "m", priority: 0, prompt: "x" });
    const duplicated = withEnginePriority(body('{"priority":-5,"model":"m","priority":-7}'), 1, true);
    expect(parsed(duplicated).priority).toBe(1);
    expect(duplicated.toString().match(/priority/g)).toHaveLength(1);
  });

  it("refuses what is not an integer priority or not an object", () => {
    expect(() => withEnginePriority(body('{"model":"m"}'), 0.5, false)).toThrow();
    expect(() => withEnginePriority(body('["model"]'), 1, false)).toThrow();
  });
});

// Through the real gateway (tenancy on) to the engine simulator running vLLM's priority scheduling with
// one seat: requests queue in the engine, not in the gateway (no load limit).
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const tier = (name: string, priority: number): UsageTier => ({
  metadata: { name },
  spec: { priority, overLimit: "Reject", defaultMaxTokens: 16, tokensPerMinute: 1_000_000 },
});
const tenant = (name: string, tierName: string): Tenant => ({
  metadata: { namespace: "tenants", name },
  spec: { tier: tierName, suspended: false, apiKeys: [{ name: "main", format: "Plain", secretRef: { name: `${name}-key`, key: "key" } }] },
});

async function setup(schedulingPolicy: "fcfs" | "priority", annotated: boolean) {
  const engine: EngineServer = await startEngineServer({
    host: "127.0.0.1",
    port: 0,
    engine: "vllm",
    modelName: "m",
    params: { ...SMALL_ENGINE, maxNumSeqs: 1 },
    schedulingPolicy,
  });
  cleanups.push(() => engine.close());
  const endpoint = staticEndpoint("m-0", "127.0.0.1", engine.port, "models");
  if (annotated) endpoint.target.schedulingPolicy = "priority";
  const fleet = new StaticFleet();
  fleet.set({ model: "m", namespace: "models", name: "m", endpoints: [endpoint] });
  const gatewayMetrics = createGatewayMetrics(undefined, { processMetrics: false });
  const metrics = createTenancyMetrics(gatewayMetrics.registry);
  const core = new TenancyCore({
    replica: "gw-test",
    staleMs: 30_000,
    metrics,
    pricing: { usdPerGpuHour: {}, defaultUsdPerGpuHour: 1, gramsCO2PerKWh: 400, boardPowerW: () => 100 },
  });
  core.update({
    tiers: [tier("gold", 100), tier("free", 0)],
    tenants: [tenant("acme", "gold"), tenant("hobby", "free")],
    secrets: [
      { namespace: "tenants", name: "acme-key", data: { key: Buffer.from("sk-acme").toString("base64") } },
      { namespace: "tenants", name: "hobby-key", data: { key: Buffer.from("sk-hobby").toString("base64") } },
    ],
  });
  const gate = new TenancyGate({
    core,
    metrics,
    replica: "gw-test",
    staleMs: 30_000,
    planOf: () => ({ gpuProduct: "NVIDIA-L4", gpusPerReplica: 1 }),
    engineTokens: () => undefined,
  });
  const server = new GatewayServer({ fleet, metrics: gatewayMetrics, tenancy: gate });
  const port = await server.listen(0, "127.0.0.1");
  cleanups.push(() => server.close());
  const post = (key: string, body: Record<string, unknown>, signal?: AbortSignal) =>
    fetch(`http://127.0.0.1:${port}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: "m", prompt: "x".repeat(40), max_tokens: 5, ...body }),
      ...(signal ? { signal } : {}),
    });
  /** Waits until the engine holds `count` requests (running or waiting). */
  const untilInEngine = async (count: number) => {
    const deadline = Date.now() + 20_000;
    while (engine.model.inFlight() < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(engine.model.inFlight()).toBe(count);
  };
  return { post, untilInEngine, engine };
}

/**
 * The engine's one seat is taken by a long request; two free-tier requests then a gold one queue in the
 * engine, behind it; the seat is freed. Returns the order in which the three were answered.
 */
async function answerOrder(g: Awaited<ReturnType<typeof setup>>, freeBody: Record<string, unknown> = {}): Promise<string[]> {
  const answered: string[] = [];
  const send = (name: string, key: string, body: Record<string, unknown> = {}) =>
    g.post(key, body).then(async (response) => {
      expect(response.status, name).toBe(200);
      await response.json();
      answered.push(name);
    });
  const holder = new AbortController();
  const first = g.post("sk-hobby", { max_tokens: 2000 }, holder.signal).catch(() => undefined);
  await g.untilInEngine(1);
  const all = [send("free-1", "sk-hobby", freeBody)];
  await g.untilInEngine(2);
  all.push(send("free-2", "sk-hobby", freeBody));
  await g.untilInEngine(3);
  all.push(send("gold", "sk-acme"));
  await g.untilInEngine(4);
  holder.abort();
  await Promise.all([first, ...all]);
  return answered;
}

describe("the tenant's band in the engine's queue (gateway + vLLM engine simulator)", () => {
  it("a gold request queued in the engine behind free-tier ones is served first on a pod that schedules by priority", async () => {
    expect(await answerOrder(await setup("priority", true))).toEqual(["gold", "free-1", "free-2"]);
  });

  it("without the pod's annotation the gateway sends no priority: the engine serves in arrival order", async () => {
    expect(await answerOrder(await setup("priority", false))).toEqual(["free-1", "free-2", "gold"]);
  });

  it("a free-tier client's own priority does not move it ahead of gold: the gateway's value replaces it", async () => {
    expect(await answerOrder(await setup("priority", true), { priority: -1_000_000 })).toEqual(["gold", "free-1", "free-2"]);
  });

  it("an FCFS vLLM pod gets the body as sent, with no priority field it would refuse", async () => {
    const g = await setup("fcfs", false);
    const response = await g.post("sk-acme", {});
    expect(response.status).toBe(200);
  });
});
