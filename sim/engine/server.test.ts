import { afterEach, describe, expect, it } from "vitest";
import { parseExposition, samplesNamed } from "../../operator/metrics/exposition.js";
import { scrapePods, type ScrapeTarget } from "../../operator/metrics/scrape.js";
import { SMALL_ENGINE } from "./testing.js";
import {
  approximateTokenCount,
  type EngineServer,
  type EngineServerOptions,
  promptPrefixOf,
  startEngineServer,
} from "./server.js";

const running: EngineServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

async function start(overrides: Partial<EngineServerOptions> = {}): Promise<EngineServer> {
  const server = await startEngineServer({
    host: "127.0.0.1",
    port: 0,
    engine: "vllm",
    modelName: "sim-llama",
    params: SMALL_ENGINE,
    ...overrides,
  });
  running.push(server);
  return server;
}

async function post(server: EngineServer, path: string, body: unknown): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

function sseEvents(text: string): string[] {
  return text
    .split("\n\n")
    .map((block) => block.trim())
    .filter((block) => block.startsWith("data: "))
    .map((block) => block.slice("data: ".length));
}

const targetOf = (server: EngineServer, engine: ScrapeTarget["engine"] = "vllm"): ScrapeTarget => ({
  namespace: "default",
  podName: "sim-0",
  podIP: server.options.host,
  port: server.port,
  engine,
  modelName: "sim-llama",
  ready: true,
});

describe("engine server: OpenAI API", () => {
  it("answers /health with 503 while loading and 200 once loaded", async () => {
    const server = await start({ loadDelayMs: 1000 });
    expect((await fetch(`${server.url}/health`)).status).toBe(503);
    expect((await post(server, "/v1/completions", { prompt: "hi", max_tokens: 2 })).status).toBe(503);
    let status = 503;
    for (let i = 0; i < 60 && status !== 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      status = (await fetch(`${server.url}/health`)).status;
    }
    expect(status).toBe(200);
    expect(server.isLoaded()).toBe(true);
  });

  it("lists the served model", async () => {
    const server = await start();
    const body = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
    expect(body.data.map((m) => m.id)).toEqual(["sim-llama"]);
  });

  it("completes a prompt with usage counted at ~4 characters per token", async () => {
    const server = await start();
    const prompt = "Where is New York? Please answer briefly.";
    const response = await post(server, "/v1/completions", { model: "sim-llama", prompt, max_tokens: 5 });
    const body = (await response.json()) as {
      object: string;
      choices: { text: string; finish_reason: string }[];
      usage: Record<string, number>;
    };
    expect(response.status).toBe(200);
    expect(body.object).toBe("text_completion");
    expect(body.choices[0]?.finish_reason).toBe("length");
    expect(body.choices[0]?.text.length).toBeGreaterThan(0);
    expect(body.usage).toEqual({
      prompt_tokens: approximateTokenCount(prompt),
      completion_tokens: 5,
      total_tokens: approximateTokenCount(prompt) + 5,
    });
  });

  it("streams a chat completion as SSE chunks ending in [DONE], with a usage chunk on request", async () => {
    const server = await start();
    const response = await post(server, "/v1/chat/completions", {
      model: "sim-llama",
      messages: [{ role: "user", content: "Tell me a joke" }],
      max_tokens: 4,
      stream: true,
      stream_options: { include_usage: true },
      prompt_token_count: 100,
    });
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const events = sseEvents(await response.text());
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map(
      (e) =>
        JSON.parse(e) as {
          object: string;
          choices: { delta?: { role?: string; content?: string }; finish_reason: string | null }[];
          usage?: Record<string, number>;
        },
    );
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    expect(chunks[0]?.choices[0]?.delta?.role).toBe("assistant");
    const contentChunks = chunks.filter((c) => (c.choices[0]?.delta?.content ?? "") !== "");
    expect(contentChunks).toHaveLength(4);
    expect(contentChunks.at(-1)?.choices[0]?.finish_reason).toBe("length");
    expect(chunks.at(-1)?.usage).toEqual({ prompt_tokens: 100, completion_tokens: 4, total_tokens: 104 });
  });

  it("rejects a request longer than the model length with 400 and an unknown model with 404", async () => {
    const server = await start();
    const tooLong = await post(server, "/v1/completions", {
      prompt: "x",
      prompt_token_count: 4000,
      max_tokens: 10,
    });
    expect(tooLong.status).toBe(400);
    expect(((await tooLong.json()) as { message: string }).message).toMatch(/maximum context length/);
    expect((await post(server, "/v1/completions", { model: "other", prompt: "x" })).status).toBe(404);
    expect((await post(server, "/v1/completions", { prompt: "x", max_tokens: -1 })).status).toBe(400);
  });

  it("binds to any loopback address, as KWOK pod IPs are", async () => {
    const server = await start({ host: "127.0.0.2" });
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });
});

describe("engine server: vLLM priority scheduling", () => {
  /** Waits until the engine holds `count` requests (running or waiting). */
  async function untilInFlight(server: EngineServer, count: number): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (server.model.inFlight() < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(server.model.inFlight()).toBe(count);
  }

  it("with --scheduling-policy priority, a request with a lower priority value answers before earlier ones queued behind the only seat", async () => {
    const server = await start({ params: { ...SMALL_ENGINE, maxNumSeqs: 1 }, schedulingPolicy: "priority" });
    const finished: string[] = [];
    const send = (name: string, priority: number) =>
      post(server, "/v1/completions", { prompt: "x".repeat(40), max_tokens: 5, priority }).then(async (response) => {
        expect(response.status).toBe(200);
        await response.json();
        finished.push(name);
      });
    // The seat is held until every other request is queued, however slow the machine; then freed.
    const holder = new AbortController();
    const first = fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "x", max_tokens: 2000 }),
      signal: holder.signal,
    }).catch(() => undefined);
    await untilInFlight(server, 1);
    const all = [send("low-1", 5)];
    await untilInFlight(server, 2);
    all.push(send("low-2", 5));
    await untilInFlight(server, 3);
    all.push(send("high", -1));
    await untilInFlight(server, 4);
    holder.abort();
    await Promise.all([first, ...all]);
    expect(finished).toEqual(["high", "low-1", "low-2"]);
  });

  it("without it, refuses a non-zero priority with 400 as vLLM does, and takes 0 or none", async () => {
    const server = await start();
    const refused = await post(server, "/v1/completions", { prompt: "x", max_tokens: 2, priority: -5 });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { message: string }).message).toBe(
      "Got priority -5 but Priority scheduling is not enabled.",
    );
    expect((await post(server, "/v1/completions", { prompt: "x", max_tokens: 2, priority: 0 })).status).toBe(200);
    expect((await post(server, "/v1/completions", { prompt: "x", max_tokens: 2, priority: 1.5 })).status).toBe(400);
    const prioritized = await start({ schedulingPolicy: "priority" });
    expect((await post(prioritized, "/v1/completions", { prompt: "x", max_tokens: 2, priority: "high" })).status).toBe(400);
  });
});

describe("engine server: metrics", () => {
  it("reports running and waiting requests while busy", async () => {
    // A KV cache large enough that the first wave never preempts: more requests than maxNumSeqs (8),
    // each ~6000 steps of ~3 ms, so the first wave is still running when we scrape, even on a loaded
    // machine. The server is closed under them, so their failures are expected and ignored.
    const server = await start({
      params: { ...SMALL_ENGINE, kvCapacityTokens: 65_536, maxModelLenTokens: 8192 },
    });
    const requests = Array.from({ length: 12 }, () =>
      post(server, "/v1/completions", { prompt: "x".repeat(400), max_tokens: 6000 }).catch(() => undefined),
    );
    // A deadline, not a count of 5 ms sleeps: timers fire late on a loaded machine.
    const deadline = Date.now() + 20_000;
    while (server.model.inFlight() < 12 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(server.model.inFlight(), "requests in flight 20 s after sending 12").toBe(12);
    const [busy] = await scrapePods([targetOf(server)], { concurrency: 1, timeoutMs: 2000 });
    expect(busy?.ok && busy.sample).toMatchObject({ requestsRunning: 8, requestsWaiting: 4 });
    expect(busy?.ok && busy.sample.kvCacheUtilization).toBeGreaterThan(0);
    await server.close();
    await Promise.all(requests);
  });

  it("stops generating when the client disconnects: the running count drops at once", async () => {
    const server = await start({
      params: { ...SMALL_ENGINE, kvCapacityTokens: 65_536, maxModelLenTokens: 8192 },
    });
    // ~6000 steps of ~3 ms: far longer than the test, unless the disconnect aborts it.
    const client = new AbortController();
    const response = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ prompt: "x".repeat(400), max_tokens: 6000, stream: true }),
      signal: client.signal,
    });
    const reader = response.body?.getReader();
    await reader?.read(); // tokens are flowing
    const runningNow = async () => {
      const [scrape] = await scrapePods([targetOf(server)], { concurrency: 1, timeoutMs: 2000 });
      return scrape?.ok ? scrape.sample.requestsRunning : -1;
    };
    expect(await runningNow()).toBe(1);
    const generatedBefore = server.pump().generationTokensTotal;
    client.abort();
    let running = 1;
    for (let i = 0; i < 200 && running !== 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      running = await runningNow();
    }
    expect(running).toBe(0);
    const { generationTokensTotal, requestsAbortedTotal, requestsFinishedTotal } = server.pump();
    expect(requestsAbortedTotal).toBe(1);
    expect(requestsFinishedTotal).toBe(0);
    // No token is generated for it after the abort.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.pump().generationTokensTotal).toBe(generationTokensTotal);
    expect(generationTokensTotal).toBeLessThan(6000);
    expect(generationTokensTotal).toBeGreaterThanOrEqual(generatedBefore);
  });

  it("drains like a pod's preStop hook: a stream in flight finishes, a new connection is refused", async () => {
    const server = await start();
    const response = await post(server, "/v1/completions", { prompt: "drain me", max_tokens: 150, stream: true });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    let text = Buffer.from((await reader.read()).value ?? []).toString();
    const drained = server.drain(10_000);
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    expect(sseEvents(text).at(-1)).toBe("[DONE]");
    expect(sseEvents(text).filter((e) => e.includes('"text"')).length).toBeGreaterThanOrEqual(150);
    await drained;
    expect(server.pump().requestsFinishedTotal).toBe(1);
  });

  it("counts tokens and TTFTs in vLLM's counters and histogram", async () => {
    const server = await start();
    await Promise.all(
      Array.from({ length: 6 }, () =>
        post(server, "/v1/completions", { prompt: "x".repeat(400), max_tokens: 30 }).then((r) => r.json()),
      ),
    );
    const families = parseExposition(await (await fetch(`${server.url}/metrics`)).text());
    expect(samplesNamed(families, "vllm:prompt_tokens_total")[0]?.value).toBe(6 * 100);
    expect(samplesNamed(families, "vllm:generation_tokens_total")[0]?.value).toBe(6 * 30);
    expect(samplesNamed(families, "vllm:time_to_first_token_seconds_count")[0]?.value).toBe(6);
    const infBucket = samplesNamed(families, "vllm:time_to_first_token_seconds_bucket").find(
      (s) => s.labels.le === "+Inf",
    );
    expect(infBucket?.value).toBe(6);
    expect(families.find((f) => f.name === "vllm:num_preemptions_total")?.type).toBe("counter");
    const [idle] = await scrapePods([targetOf(server)], { concurrency: 1, timeoutMs: 2000 });
    expect(idle?.ok && idle.sample).toMatchObject({
      requestsRunning: 0,
      requestsWaiting: 0,
      kvCacheUtilization: 0,
    });
  });

  it("serves trtllm-serve's Prometheus text on /prometheus/metrics and JSON stats on /metrics", async () => {
    const server = await start({ engine: "tensorrt-llm" });
    const [result] = await scrapePods([targetOf(server, "trtllm-serve")], {
      concurrency: 1,
      timeoutMs: 2000,
    });
    expect(result?.ok && result.sample).toMatchObject({
      kvCacheUtilization: 0,
      requestsRunning: 0,
      requestsWaiting: 0,
    });
    const stats = (await (await fetch(`${server.url}/metrics`)).json()) as {
      kvCacheStats: { maxNumBlocks: number };
    }[];
    expect(stats[0]?.kvCacheStats.maxNumBlocks).toBe(256);
  });

  it("injects metrics faults: slow, garbage and failing", async () => {
    const server = await start();
    const scrape = async () => (await scrapePods([targetOf(server)], { concurrency: 1, timeoutMs: 150 }))[0];
    server.setFaults({ metricsDelayMs: 1000 });
    expect(await scrape()).toMatchObject({ ok: false, error: { kind: "timeout" } });
    server.setFaults({ garbageMetrics: true });
    expect(await scrape()).toMatchObject({ ok: false, error: { kind: "parse" } });
    server.setFaults({ metricsStatus: 500 });
    expect(await scrape()).toMatchObject({ ok: false, error: { kind: "http-status", httpStatus: 500 } });
    server.setFaults({});
    expect((await scrape())?.ok).toBe(true);
  });

  it("injects metrics faults: a redirect elsewhere and a body larger than any scraper should read", async () => {
    const server = await start();
    server.setFaults({ metricsRedirectTo: "http://127.0.0.2:9/elsewhere" });
    const redirect = await fetch(`${server.url}/metrics`, { redirect: "manual" });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get("location")).toBe("http://127.0.0.2:9/elsewhere");
    server.setFaults({ hugeMetricsBytes: 3 * 1024 * 1024 + 5 });
    expect((await (await fetch(`${server.url}/metrics`)).arrayBuffer()).byteLength).toBe(3 * 1024 * 1024 + 5);
    const bounded = (await scrapePods([targetOf(server)], { concurrency: 1, timeoutMs: 5000, maxBodyBytes: 64 * 1024 }))[0];
    expect(bounded).toMatchObject({ ok: false, error: { kind: "too-large" } });
  });

  it("dies mid-stream on request: the answer is cut after the chunks asked for, and the port stops listening", async () => {
    const server = await start();
    server.setFaults({ dieMidStreamAfterChunks: 3 });
    const response = await post(server, "/v1/completions", { model: "sim-llama", prompt: "hello", max_tokens: 50, stream: true, prompt_token_count: 10 });
    expect(response.status).toBe(200);
    await expect(response.text()).rejects.toThrow();
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
  });
});

async function prefixCounters(server: EngineServer): Promise<{ queries: number; hits: number }> {
  const families = parseExposition(await (await fetch(`${server.url}/metrics`)).text());
  const value = (name: string) => samplesNamed(families, name)[0]?.value ?? Number.NaN;
  return { queries: value("vllm:prefix_cache_queries_total"), hits: value("vllm:prefix_cache_hits_total") };
}

describe("engine server: prefix caching", () => {
  it("a chat that repeats an earlier conversation's messages hits the cache; /metrics counts it in tokens", async () => {
    const server = await start({ timeScale: 20 });
    const system = { role: "system", content: "You are a careful assistant. ".repeat(80) };
    const ask = (question: string) =>
      post(server, "/v1/chat/completions", {
        model: "sim-llama",
        messages: [system, { role: "user", content: question }],
        max_tokens: 2,
      });
    expect((await ask("What is a KV cache?")).status).toBe(200);
    const afterFirst = await prefixCounters(server);
    expect(afterFirst.hits).toBe(0);
    expect(afterFirst.queries).toBeGreaterThan(500);
    expect((await ask("And a prefix cache?")).status).toBe(200);
    const afterSecond = await prefixCounters(server);
    // The system prompt is ~2,300 characters: 9 full 256-character blocks of 64 tokens.
    expect(afterSecond.hits).toBe(9 * 64);
    expect(afterSecond.queries).toBeGreaterThan(2 * afterFirst.queries - 20);
  });

  it("explicit trace block ids are accepted, bounded and chained", () => {
    const p = promptPrefixOf({ prefix_hash_ids: [1, 2, 3] }, false);
    expect(p?.blockTokens).toBe(512);
    expect(p?.blockHashes).toHaveLength(3);
    expect(promptPrefixOf({ prefix_hash_ids: [1, 2], prefix_block_tokens: 16 }, false)?.blockTokens).toBe(16);
    expect(() => promptPrefixOf({ prefix_hash_ids: new Array(5000).fill(1) }, false)).toThrow(/at most/);
    expect(() => promptPrefixOf({ prefix_hash_ids: ["x"] }, false)).toThrow();
    expect(promptPrefixOf({ prompt: [1, 2, 3] }, false)).toBeUndefined();
  });
});
