import { afterEach, describe, expect, it } from "vitest";
import { parseExposition, samplesNamed } from "../../operator/metrics/exposition.js";
import { type EngineServer, promptPrefixOf, startEngineServer } from "./server.js";
import { SMALL_ENGINE } from "./testing.js";

const running: EngineServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

const post = (server: EngineServer, path: string, body: unknown): Promise<Response> =>
  fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

async function prefixCounters(server: EngineServer): Promise<{ queries: number; hits: number }> {
  const families = parseExposition(await (await fetch(`${server.url}/metrics`)).text());
  const value = (name: string) => samplesNamed(families, name)[0]?.value ?? Number.NaN;
  return { queries: value("vllm:prefix_cache_queries_total"), hits: value("vllm:prefix_cache_hits_total") };
}

describe("engine server: prefix caching", () => {
  it("a chat that repeats an earlier conversation's messages hits the cache; /metrics counts it in tokens", async () => {
    const server = await startEngineServer({
      host: "127.0.0.1",
      port: 0,
      engine: "vllm",
      modelName: "sim-llama",
      params: SMALL_ENGINE,
      timeScale: 20,
    });
    running.push(server);
    const system = { role: "system", content: "You are a careful assistant. ".repeat(80) };
    const first = await post(server, "/v1/chat/completions", {
      model: "sim-llama",
      messages: [system, { role: "user", content: "What is a KV cache?" }],
      max_tokens: 2,
    });
    expect(first.status).toBe(200);
    const afterFirst = await prefixCounters(server);
    expect(afterFirst.hits).toBe(0);
    expect(afterFirst.queries).toBeGreaterThan(500);
    const second = await post(server, "/v1/chat/completions", {
      model: "sim-llama",
      messages: [system, { role: "user", content: "And a prefix cache?" }],
      max_tokens: 2,
    });
    expect(second.status).toBe(200);
    const afterSecond = await prefixCounters(server);
    // The system prompt is ~2,300 characters: 9 full 256-character blocks of 64 tokens.
    expect(afterSecond.hits).toBe(9 * 64);
    expect(afterSecond.queries).toBeGreaterThan(2 * afterFirst.queries - 20);
  });

  it("explicit trace block ids are accepted, bounded and chained", async () => {
    const p = promptPrefixOf({ prefix_hash_ids: [1, 2, 3] }, false);
    expect(p?.blockTokens).toBe(512);
    expect(p?.blockHashes).toHaveLength(3);
    expect(promptPrefixOf({ prefix_hash_ids: [1, 2], prefix_block_tokens: 16 }, false)?.blockTokens).toBe(16);
    expect(() => promptPrefixOf({ prefix_hash_ids: new Array(5000).fill(1) }, false)).toThrow(/at most/);
    expect(() => promptPrefixOf({ prefix_hash_ids: ["x"] }, false)).toThrow();
    expect(promptPrefixOf({ prompt: [1, 2, 3] }, false)).toBeUndefined();
  });
});
