import { afterEach, describe, expect, it } from "vitest";
import { startEngineServer, tokenLogprobFor } from "../../sim/engine/server.js";
import { SMALL_ENGINE } from "../../sim/engine/testing.js";
import { StaticFleet, staticEndpoint } from "../fleet.js";
import { createGatewayMetrics } from "../metrics.js";
import { GatewayServer } from "../server.js";
import type { CascadeRules } from "./decide.js";
import type { ResolvedCascade } from "./routes.js";
import { CascadeServer, HEADER_CASCADE, HEADER_CONFIDENCE, HEADER_MODEL } from "./serve.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The small engine's confidence table: a prompt draws one of these by its hash. */
const CONFIDENCES = [-2.5, -0.02];
const promptWith = (confidence: number, chat: boolean) => {
  for (let i = 0; ; i++) {
    const text = `question number ${i}`;
    // The engine hashes chat prompts as the flattened messages ("user: ..." lines).
    const seen = chat ? `user: ${text}\n` : text;
    if (tokenLogprobFor(seen, CONFIDENCES) === confidence) return text;
  }
};

const rules: CascadeRules = {
  steps: [{ model: "small-8b", maxPromptTokens: 500 }, { model: "large-70b" }],
  largeForTiers: ["gold"],
  confidence: { firstTokens: 4, metric: "mean", minLogprob: -0.7 },
  streaming: "hold",
};

async function setup(
  resolve: (alias: string) => ResolvedCascade | undefined = (a) =>
    a === "chat" ? { ok: true, alias: a, route: "ns/chat", rules, createdAtSeconds: 1_700_000_000 } : undefined,
  tier?: string,
) {
  const fleet = new StaticFleet();
  for (const [model, confidences] of [
    ["small-8b", CONFIDENCES],
    ["large-70b", undefined],
  ] as const) {
    const engine = await startEngineServer({
      host: "127.0.0.1",
      port: 0,
      engine: "vllm",
      modelName: model,
      params: SMALL_ENGINE,
      timeScale: 50,
      ...(confidences ? { confidences } : {}),
    });
    cleanups.push(() => engine.close());
    fleet.set({
      model,
      namespace: "ns",
      name: model,
      endpoints: [staticEndpoint(`${model}-0`, "127.0.0.1", engine.port, "ns")],
    });
  }
  let port = 0;
  const cascade = new CascadeServer({ resolve, self: () => ({ host: "127.0.0.1", port }) });
  const server = new GatewayServer({
    fleet,
    metrics: createGatewayMetrics(undefined, { processMetrics: false }),
    cascade: {
      serve: (r) => cascade.serve(tier !== undefined ? { ...r, tier } : r),
      aliases: () => (resolve("chat")?.ok ? [{ id: "chat", createdAtSeconds: 1_700_000_000 }] : []),
    },
  });
  port = await server.listen(0, "127.0.0.1");
  cleanups.push(
    () => server.close(),
    () => cascade.close(),
  );
  return `http://127.0.0.1:${port}`;
}

async function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

describe("cascade through the gateway", () => {
  it("answers a confident prompt from the small model and strips the logprobs the client did not ask for", async () => {
    const url = await setup();
    const r = await post(`${url}/v1/chat/completions`, {
      model: "chat",
      max_tokens: 6,
      messages: [{ role: "user", content: promptWith(-0.02, true) }],
    });
    expect(r.status).toBe(200);
    expect(r.headers.get(HEADER_MODEL)).toBe("small-8b");
    expect(r.headers.get(HEADER_CASCADE)).toBe("confident");
    expect(Number(r.headers.get(HEADER_CONFIDENCE))).toBeCloseTo(-0.02, 3);
    const body = (await r.json()) as { model: string; choices: Array<{ logprobs: unknown }> };
    expect(body.model).toBe("small-8b");
    expect(body.choices[0]?.logprobs).toBeNull();
  });

  it("escalates a low-confidence answer to the large model (non-streaming)", async () => {
    const url = await setup();
    const r = await post(`${url}/v1/completions`, {
      model: "chat",
      max_tokens: 5,
      prompt: promptWith(-2.5, false),
    });
    expect(r.status).toBe(200);
    expect(r.headers.get(HEADER_MODEL)).toBe("large-70b");
    expect(r.headers.get(HEADER_CASCADE)).toBe("low-confidence");
    expect(Number(r.headers.get(HEADER_CONFIDENCE))).toBeCloseTo(-2.5, 3);
    expect(((await r.json()) as { model: string }).model).toBe("large-70b");
  });

  it("streaming, hold: a low-confidence stream is cut and the client sees only the large model's stream", async () => {
    const url = await setup();
    const r = await post(`${url}/v1/chat/completions`, {
      model: "chat",
      stream: true,
      max_tokens: 8,
      messages: [{ role: "user", content: promptWith(-2.5, true) }],
    });
    expect(r.headers.get(HEADER_MODEL)).toBe("large-70b");
    const text = await r.text();
    const models = [...text.matchAll(/"model":"([^"]+)"/g)].map((m) => m[1]);
    expect(models.length).toBeGreaterThan(8);
    expect(new Set(models)).toEqual(new Set(["large-70b"]));
    expect(text.trim().endsWith("data: [DONE]")).toBe(true);
  });

  it("streaming, hold: a confident stream arrives whole from the small model, logprobs kept when asked", async () => {
    const url = await setup();
    const r = await post(`${url}/v1/chat/completions`, {
      model: "chat",
      stream: true,
      logprobs: true,
      max_tokens: 8,
      messages: [{ role: "user", content: promptWith(-0.02, true) }],
    });
    expect(r.headers.get(HEADER_MODEL)).toBe("small-8b");
    const events = (await r.text()).split("\n\n").filter((e) => e.startsWith("data: {"));
    const tokens = events.flatMap((e) => {
      const lp = (JSON.parse(e.slice(6)) as { choices: Array<{ logprobs: { content: unknown[] } | null }> })
        .choices[0]?.logprobs;
      return lp?.content ?? [];
    });
    expect(tokens).toHaveLength(8);
  });

  it("sends a long prompt, and a tier listed in largeForTiers, straight to the large model", async () => {
    const url = await setup();
    const long = await post(`${url}/v1/completions`, {
      model: "chat",
      max_tokens: 2,
      prompt: "x".repeat(4 * 600),
    });
    expect(long.headers.get(HEADER_MODEL)).toBe("large-70b");
    expect(long.headers.get(HEADER_CASCADE)).toBe("prompt-length");
    const goldUrl = await setup(undefined, "gold");
    const gold = await post(`${goldUrl}/v1/completions`, {
      model: "chat",
      max_tokens: 2,
      prompt: promptWith(-0.02, false),
    });
    expect(gold.headers.get(HEADER_MODEL)).toBe("large-70b");
    expect(gold.headers.get(HEADER_CASCADE)).toBe("tier");
  });

  it("an alias whose ModelDeployment is missing answers 503 with what to fix; unknown models stay 404", async () => {
    const url = await setup((a) =>
      a === "broken"
        ? {
            ok: false,
            alias: a,
            route: "ns/broken",
            message: "ModelRoute ns/broken names ModelDeployment gone",
          }
        : undefined,
    );
    const broken = await post(`${url}/v1/completions`, { model: "broken", prompt: "hi" });
    expect(broken.status).toBe(503);
    expect(((await broken.json()) as { error: { message: string } }).error.message).toContain(
      "names ModelDeployment gone",
    );
    expect((await post(`${url}/v1/completions`, { model: "nope", prompt: "hi" })).status).toBe(404);
  });

  it("lists a serving alias in /v1/models beside the models it fronts", async () => {
    const url = await setup();
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string; created: number }> };
    expect(models.data.map((m) => m.id)).toEqual(["chat", "large-70b", "small-8b"]);
    expect(models.data[0]?.created).toBe(1_700_000_000);
  });

  it("a prompt classifier sends a prompt with its words straight to the large model (x-gpufleet-cascade: classifier), others through the gate", async () => {
    const classified: CascadeRules = {
      ...rules,
      largeForTiers: [],
      promptClassifier: { weights: new Map([["theorem", 3]]), bias: -1, perPromptTokenDoubling: 0, escalateAbove: 0 },
    };
    const url = await setup((a) =>
      a === "chat" ? { ok: true, alias: a, route: "ns/chat", rules: classified, createdAtSeconds: 1 } : undefined,
    );
    const hard = await post(`${url}/v1/completions`, { model: "chat", max_tokens: 4, prompt: `Prove the Theorem: ${promptWith(-0.02, false)}` });
    expect(hard.status).toBe(200);
    expect(hard.headers.get(HEADER_MODEL)).toBe("large-70b");
    expect(hard.headers.get(HEADER_CASCADE)).toBe("classifier");
    await hard.text();
    const easy = await post(`${url}/v1/completions`, { model: "chat", max_tokens: 4, prompt: promptWith(-0.02, false) });
    expect(easy.headers.get(HEADER_MODEL)).toBe("small-8b");
    expect(easy.headers.get(HEADER_CASCADE)).toBe("confident");
    await easy.text();
  });
});
