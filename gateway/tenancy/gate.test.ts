import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { Tenant, UsageTier } from "../../operator/api/tenancy.js";
import { StaticFleet, staticEndpoint } from "../fleet.js";
import { createGatewayMetrics } from "../metrics.js";
import { GatewayServer, type GatewayServerConfig } from "../server.js";
import { TenancyCore } from "./core.js";
import { createTenancyMetrics } from "./metrics.js";
import { TenancyGate } from "./tenancy.js";
import { CascadeServer, HEADER_ALIAS, HEADER_CASCADE, HEADER_MODEL } from "../cascade/serve.js";

// The tenancy hook in the real gateway server, against a loopback engine that reports usage.

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const tier = (name: string, spec: Partial<UsageTier["spec"]>): UsageTier => ({
  metadata: { name },
  spec: { priority: 0, overLimit: "Reject", defaultMaxTokens: 16, ...spec },
});
const tenant = (name: string, tierName: string, secret: string): Tenant => ({
  metadata: { namespace: "tenants", name },
  spec: { tier: tierName, suspended: false, apiKeys: [{ name: "main", format: "Plain", secretRef: { name: secret, key: "key" } }] },
});
const b64 = (s: string) => Buffer.from(s).toString("base64");

async function setup(options: { anonymousTier?: string; server?: Partial<GatewayServerConfig>; manualAnswers?: boolean } = {}) {
  const seen: Array<{ authorization: string | undefined; body: string }> = [];
  /** With manualAnswers: the engine's answers in arrival order, each sent when the test calls it. */
  const pendingAnswers: Array<() => void> = [];
  const engine = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      seen.push({ authorization: req.headers.authorization, body });
      const request = JSON.parse(body) as { max_tokens?: number; prompt?: string };
      const completion = request.max_tokens ?? 4;
      const answer = () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ choices: [{ text: "x".repeat(completion) }], usage: { prompt_tokens: 11, completion_tokens: completion } }));
      };
      if (options.manualAnswers) pendingAnswers.push(answer);
      else answer();
    });
  });
  await new Promise<void>((resolve) => engine.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise<void>((resolve) => { engine.closeAllConnections(); engine.close(() => resolve()); }));
  const fleet = new StaticFleet();
  fleet.set({ model: "small", namespace: "models", name: "small", endpoints: [staticEndpoint("small-0", "127.0.0.1", (engine.address() as AddressInfo).port, "models")] });
  fleet.set({ model: "large", namespace: "models", name: "large", endpoints: [staticEndpoint("large-0", "127.0.0.1", (engine.address() as AddressInfo).port, "models")] });
  const gatewayMetrics = createGatewayMetrics(undefined, { processMetrics: false });
  const metrics = createTenancyMetrics(gatewayMetrics.registry);
  const core = new TenancyCore({
    replica: "gw-test",
    staleMs: 30_000,
    metrics,
    ...(options.anonymousTier ? { anonymousTier: options.anonymousTier } : {}),
    pricing: { usdPerGpuHour: {}, defaultUsdPerGpuHour: 1, gramsCO2PerKWh: 400, boardPowerW: () => 100 },
  });
  core.update({
    tiers: [
      tier("gold", { priority: 100, tokensPerMinute: 10_000 }),
      tier("free", { tokensPerMinute: 100, models: ["small", "cut"] }),
      tier("aliased", { tokensPerMinute: 10_000, models: ["chat"] }),
    ],
    tenants: [
      tenant("acme", "gold", "acme-key"),
      tenant("hobby", "free", "hobby-key"),
      tenant("orphan", "platinum", "orphan-key"),
      tenant("keyless", "gold", "gone"),
      tenant("teamx", "aliased", "teamx-key"),
    ],
    secrets: [
      { namespace: "tenants", name: "teamx-key", data: { key: b64("sk-teamx") } },
      { namespace: "tenants", name: "orphan-key", data: { key: b64("sk-orphan") } },
      { namespace: "tenants", name: "acme-key", data: { key: b64("sk-acme") } },
      { namespace: "tenants", name: "hobby-key", data: { key: b64("sk-hobby") } },
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
  // The alias `chat` over small -> large, gold always large (ModelRoute largeForTiers).
  let port = 0;
  const cascade = new CascadeServer({
    resolve: (alias) =>
      alias === "chat"
        ? {
            ok: true,
            alias,
            route: "models/chat",
            createdAtSeconds: 0,
            rules: { steps: [{ model: "small" }, { model: "large" }], largeForTiers: ["gold"], streaming: "hold" },
          }
        : undefined,
    self: () => ({ host: "127.0.0.1", port }),
    tierOf: (req) => gate.identify(req)?.tier,
  });
  const server = new GatewayServer({
    fleet,
    metrics: gatewayMetrics,
    ...(options.server ? { config: options.server } : {}),
    tenancy: gate,
    cascade: { serve: (r) => cascade.serve(r), aliasOf: (req) => cascade.aliasOf(req) },
  });
  port = await server.listen(0, "127.0.0.1");
  cleanups.push(() => server.close(), () => cascade.close());
  const post = (body: unknown, key?: string, extra: Record<string, string> = {}) =>
    fetch(`http://127.0.0.1:${port}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(key !== undefined ? { authorization: `Bearer ${key}` } : {}), ...extra },
      body: JSON.stringify(body),
    });
  const settled = async (tenantKey: string) => {
    // Settlement runs as the exchange finishes; give the event loop a turn.
    await new Promise((r) => setTimeout(r, 20));
    return core.meter.take(tenantKey);
  };
  return { post, seen, core, settled, server, fleet, engineAddress: engine.address() as AddressInfo, pendingAnswers, metrics: () => gatewayMetrics.registry.metrics() };
}

describe("tenancy in the gateway's request path", () => {
  it("answers a missing or wrong key with 401 in OpenAI's shape, never reaches an engine, meters nothing", async () => {
    const g = await setup();
    const missing = await g.post({ model: "small", prompt: "hi", max_tokens: 2 });
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toBe('Bearer realm="gpufleet"');
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("invalid_api_key");
    const wrong = await g.post({ model: "small", prompt: "hi", max_tokens: 2 }, "sk-acme-but-not");
    expect(wrong.status).toBe(401);
    expect(g.seen).toHaveLength(0);
    expect(g.core.meter.tenantsWithUsage()).toEqual([]);
    const text = await g.metrics();
    expect(text).toContain('gpufleet_gateway_auth_failures_total{reason="missing"} 1');
    expect(text).toContain('gpufleet_gateway_auth_failures_total{reason="invalid"} 1');
    expect(text).not.toContain("sk-acme");
  });

  it("serves a good key, strips it before the engine, sends rate-limit headers and meters the engine's usage", async () => {
    const g = await setup();
    const response = await g.post({ model: "large", prompt: "hello", max_tokens: 5 }, "sk-acme");
    expect(response.status).toBe(200);
    await response.text();
    expect(response.headers.get("x-ratelimit-limit-tokens")).toBe("10000");
    // admitted with a reservation of prompt estimate (2) + max_tokens (5)
    expect(response.headers.get("x-ratelimit-remaining-tokens")).toBe("9993");
    expect(g.seen[0]?.authorization).toBeUndefined();
    const [delta] = await g.settled("tenants/acme");
    expect(delta).toMatchObject({ model: "large", requests: 1, promptTokens: 11, completionTokens: 5 });
    expect(await g.metrics()).toContain('gpufleet_tenant_tokens_total{tenant="tenants/acme",model="large",kind="completion"} 5');
  });

  it("refuses a model the tier does not allow with 403", async () => {
    const g = await setup();
    const response = await g.post({ model: "large", prompt: "hello", max_tokens: 5 }, "sk-hobby");
    expect(response.status).toBe(403);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("model_not_allowed");
    expect(g.seen).toHaveLength(0);
  });

  it("answers over the limit with 429, x-ratelimit-* headers and Retry-After, and settles to what was used", async () => {
    const g = await setup();
    // free: 100 tokens per minute. Reserve 2 + 60; the engine reports 11 + 60 = 71 used.
    const first = await g.post({ model: "small", prompt: "hello", max_tokens: 60 }, "sk-hobby");
    expect(first.status).toBe(200);
    await first.text();
    await g.settled("tenants/hobby");
    const second = await g.post({ model: "small", prompt: "hello", max_tokens: 60 }, "sk-hobby");
    expect(second.status).toBe(429);
    const body = (await second.json()) as { error: { code: string; type: string } };
    expect(body.error).toMatchObject({ code: "rate_limit_exceeded", type: "rate_limit_error" });
    expect(second.headers.get("x-ratelimit-limit-tokens")).toBe("100");
    const remaining = Number(second.headers.get("x-ratelimit-remaining-tokens"));
    expect(remaining).toBeGreaterThanOrEqual(29);
    expect(remaining).toBeLessThan(31);
    // 62 needed, ~29 there: ~33 tokens at 100/min = ~20 s.
    const retryAfter = Number(second.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(19);
    expect(retryAfter).toBeLessThanOrEqual(21);
    expect(second.headers.get("x-ratelimit-reset-tokens")).toMatch(/^\d+s$/);
    expect(g.seen).toHaveLength(1);
  });

  it("refuses a tenant whose tier is missing with 403 and reports why in its Ready condition", async () => {
    const g = await setup();
    const response = await g.post({ model: "small", prompt: "hi" }, "sk-orphan");
    expect(response.status).toBe(403);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("permission_denied");
    expect(g.core.readyCondition("tenants/orphan")).toMatchObject({ status: "False", reason: "TierNotFound" });
    expect(g.core.readyCondition("tenants/keyless")).toMatchObject({ status: "False", reason: "NoUsableKey" });
    expect(g.core.readyCondition("tenants/keyless")?.message).toContain("Secret gone not found");
    expect(g.core.readyCondition("tenants/acme")).toMatchObject({ status: "True", reason: "KeysResolved" });
  });

  it("serves requests without a key on the anonymous tier only when the setting names one", async () => {
    const g = await setup({ anonymousTier: "free" });
    const response = await g.post({ model: "small", prompt: "hi", max_tokens: 1 });
    expect(response.status).toBe(200);
    await response.text();
    expect(response.headers.get("x-ratelimit-limit-tokens")).toBe("100");
    expect((await g.settled("anonymous"))[0]).toMatchObject({ requests: 1, promptTokens: 11 });
    // a wrong key is still a 401, not anonymous
    expect((await g.post({ model: "small", prompt: "hi" }, "sk-nope")).status).toBe(401);
  });

  it("lets a tier that lists only the alias call it, meters the step against its real model, and refuses the step model called directly", async () => {
    const g = await setup();
    const viaAlias = await g.post({ model: "chat", prompt: "hello", max_tokens: 3 }, "sk-teamx");
    expect(viaAlias.status).toBe(200);
    expect(viaAlias.headers.get(HEADER_MODEL)).toBe("small");
    await viaAlias.text();
    const [delta] = await g.settled("tenants/teamx");
    expect(delta).toMatchObject({ model: "small", requests: 1, promptTokens: 11, completionTokens: 3 });
    const direct = await g.post({ model: "small", prompt: "hello", max_tokens: 3 }, "sk-teamx");
    expect(direct.status).toBe(403);
    // A client cannot claim to be the cascade's hop: the alias header without the hop token is ignored.
    const forged = await g.post({ model: "small", prompt: "hello", max_tokens: 3 }, "sk-teamx", { [HEADER_ALIAS]: "chat" });
    expect(forged.status).toBe(403);
    expect(g.seen).toHaveLength(1);
    // A tier that does not list the alias: each step is judged by its own model (free lists `small`).
    const free = await g.post({ model: "chat", prompt: "hello", max_tokens: 3 }, "sk-hobby");
    expect(free.status).toBe(200);
    expect(free.headers.get(HEADER_MODEL)).toBe("small");
    await free.text();
  });

  it("sends a tier in largeForTiers to the large model, learning the tier without admitting or metering the alias request", async () => {
    const g = await setup();
    const gold = await g.post({ model: "chat", prompt: "hello", max_tokens: 4 }, "sk-acme");
    expect(gold.status).toBe(200);
    expect(gold.headers.get(HEADER_MODEL)).toBe("large");
    expect(gold.headers.get(HEADER_CASCADE)).toBe("tier");
    await gold.text();
    // One request metered (the step's), not two: the tier lookup took nothing.
    expect(await g.settled("tenants/acme")).toEqual([
      expect.objectContaining({ model: "large", requests: 1, promptTokens: 11, completionTokens: 4 }),
    ]);
    // One token reservation: 10,000 - (prompt estimate 2 + 4), settled to 15 used.
    const after = await g.post({ model: "large", prompt: "hello", max_tokens: 1 }, "sk-acme");
    expect(Number(after.headers.get("x-ratelimit-remaining-tokens"))).toBeGreaterThanOrEqual(10_000 - 15 - 3);
    await after.text();
    // A wrong key on the alias is a 401 from the step's admission; nothing reaches an engine.
    const before = g.seen.length;
    expect((await g.post({ model: "chat", prompt: "hello", max_tokens: 4 }, "sk-nope")).status).toBe(401);
    expect(g.seen).toHaveLength(before);
  });

  it("keeps a pod's last slot for the top band: a lower band waits in the gateway while gold goes straight to the pod", async () => {
    // One pod, saturated at 2 requests; 1 slot reserved for priority >= 100 (gold).
    const g = await setup({ server: { maxLoadPerEndpoint: 2, slotReserve: { slotsPerPod: 1, minPriority: 100 } }, manualAnswers: true });
    const until = async (what: string, ok: () => boolean) => {
      const deadline = Date.now() + 5_000;
      while (!ok()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${g.seen.length} at the engine, ${g.server.holds.size("small")} held`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    const free1 = g.post({ model: "small", prompt: "a", max_tokens: 4 }, "sk-hobby");
    await until("the first free request at the engine", () => g.seen.length === 1);
    const free2 = g.post({ model: "small", prompt: "b", max_tokens: 4 }, "sk-hobby");
    await until("the second free request held", () => g.server.holds.size("small") === 1);
    expect(g.seen).toHaveLength(1);
    const gold = g.post({ model: "small", prompt: "c", max_tokens: 4 }, "sk-acme");
    await until("gold at the engine", () => g.seen.length === 2);
    expect(g.seen[1]!.body).toContain('"prompt":"c"');
    // The first free answer leaves the pod at 1 (gold): still no slot below the reserve for free.
    g.pendingAnswers.shift()!();
    expect((await free1).status).toBe(200);
    await new Promise((r) => setTimeout(r, 50));
    expect(g.server.holds.size("small")).toBe(1);
    expect(g.seen).toHaveLength(2);
    // Gold's answer empties the pod: the held free request goes.
    g.pendingAnswers.shift()!();
    expect((await gold).status).toBe(200);
    await until("the held free request at the engine", () => g.seen.length === 3);
    g.pendingAnswers.shift()!();
    expect((await free2).status).toBe(200);
  });

  /**
   * Model `cut` on two pods, saturated at 2 requests with 1 slot reserved for priority >= 100: pod a's
   * engine died (it cuts every connection after the request arrives, /health included); pod b answers and
   * already serves one request. a is the less loaded: it is picked first.
   */
  async function cutModel(g: Awaited<ReturnType<typeof setup>>) {
    const cutBodies: string[] = [];
    const cutting = http.createServer((req) => {
      req.on("data", (c: Buffer) => cutBodies.push(c.toString()));
      req.on("end", () => req.socket.destroy());
    });
    await new Promise<void>((resolve) => cutting.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => { cutting.closeAllConnections(); cutting.close(() => resolve()); }));
    cleanups.push(() => g.fleet.stop());
    const cutPod = staticEndpoint("a-cuts", "127.0.0.1", (cutting.address() as AddressInfo).port, "models");
    const busyPod = staticEndpoint("b-busy", "127.0.0.1", g.engineAddress.port, "models");
    busyPod.inFlight = 1;
    g.fleet.set({ model: "cut", namespace: "models", name: "cut", endpoints: [cutPod, busyPod] });
    return { cutBodies, cutPod, busyPod };
  }
  const reserveOneOfTwo = { server: { maxLoadPerEndpoint: 2, slotReserve: { slotsPerPod: 1, minPriority: 100 } } };

  it("resends a gold request its pod cut before answering within gold's band: to the reserved slot of another pod", async () => {
    const g = await setup(reserveOneOfTwo);
    const { cutBodies } = await cutModel(g);
    const gold = await g.post({ model: "cut", prompt: "gold", max_tokens: 2 }, "sk-acme");
    expect(gold.status).toBe(200);
    expect(gold.headers.get("x-gpufleet-endpoint")).toBe("b-busy");
    await gold.text();
    expect(cutBodies.join("")).toContain('"prompt":"gold"');
  });

  it("holds a lower band's request its pod cut before answering when the other pods have only reserved slots, and sends it once one has room", async () => {
    const g = await setup(reserveOneOfTwo);
    const { cutBodies, cutPod, busyPod } = await cutModel(g);
    const freePending = g.post({ model: "cut", prompt: "free", max_tokens: 2 }, "sk-hobby");
    const deadline = Date.now() + 5_000;
    while (g.server.holds.size("cut") === 0) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for the cut request to be held (${cutBodies.length} sends to a)`);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(cutBodies.join("")).toContain('"prompt":"free"');
    // Not in b's reserved slot, and not back to a (suspected: its /health does not answer).
    expect(g.seen.filter((s) => s.body.includes('"prompt":"free"'))).toHaveLength(0);
    expect(cutPod.ready).toBe(false);
    busyPod.inFlight--;
    g.fleet.changed();
    const free = await freePending;
    expect(free.status).toBe(200);
    expect(free.headers.get("x-gpufleet-endpoint")).toBe("b-busy");
    await free.text();
    expect(cutBodies).toHaveLength(1);
  });

  it("without a reserve the same gold request waits behind the held free one", async () => {
    const g = await setup({ server: { maxLoadPerEndpoint: 2 }, manualAnswers: true });
    const free1 = g.post({ model: "small", prompt: "a", max_tokens: 4 }, "sk-hobby");
    const free2 = g.post({ model: "small", prompt: "b", max_tokens: 4 }, "sk-hobby");
    const deadline = Date.now() + 5_000;
    while (g.seen.length < 2) {
      if (Date.now() > deadline) throw new Error(`timed out: ${g.seen.length} at the engine`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const gold = g.post({ model: "small", prompt: "c", max_tokens: 4 }, "sk-acme");
    while (g.server.holds.size("small") < 1) {
      if (Date.now() > deadline) throw new Error("timed out waiting for gold to be held");
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(g.seen).toHaveLength(2);
    g.pendingAnswers.shift()!();
    g.pendingAnswers.shift()!();
    expect((await free1).status).toBe(200);
    expect((await free2).status).toBe(200);
    while (g.seen.length < 3) {
      if (Date.now() > deadline) throw new Error("timed out waiting for gold at the engine");
      await new Promise((r) => setTimeout(r, 5));
    }
    g.pendingAnswers.shift()!();
    expect((await gold).status).toBe(200);
  });

  it("hands the tier's queue wait limit (maxQueueWaitMs) to the hold queue with the band", () => {
    const core = new TenancyCore({ replica: "gw", staleMs: 30_000, pricing: { usdPerGpuHour: {}, defaultUsdPerGpuHour: 1, gramsCO2PerKWh: 400, boardPowerW: () => 100 } });
    core.update({
      tiers: [tier("gold", { priority: 100, maxQueueWaitMs: 1500 }), tier("free", {})],
      tenants: [tenant("acme", "gold", "acme-key"), tenant("hobby", "free", "hobby-key")],
      secrets: [
        { namespace: "tenants", name: "acme-key", data: { key: b64("sk-acme") } },
        { namespace: "tenants", name: "hobby-key", data: { key: b64("sk-hobby") } },
      ],
    });
    expect(core.admit("Bearer sk-acme", "m", 10, 10).context).toMatchObject({ priority: 100, maxWaitMs: 1500 });
    expect(core.admit("Bearer sk-hobby", "m", 10, 10).context.maxWaitMs).toBeUndefined();
  });
});
