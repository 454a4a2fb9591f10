import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startEngineServer } from "../sim/engine/server.js";
import { SMALL_ENGINE } from "../sim/engine/testing.js";
import { StaticFleet, staticEndpoint, type ModelRoute } from "./fleet.js";
import { createGatewayMetrics } from "./metrics.js";
import { GatewayServer, type GatewayServerConfig } from "./server.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Started {
  url: string;
  server: GatewayServer;
  fleet: StaticFleet;
  metricsText: () => Promise<string>;
  demand: { requests: string[]; held: number[] };
}

async function gateway(fleet: StaticFleet, config: Partial<GatewayServerConfig> = {}): Promise<Started> {
  const metrics = createGatewayMetrics(undefined, { processMetrics: false });
  const demand = { requests: [] as string[], held: [] as number[] };
  const server: GatewayServer = new GatewayServer({
    fleet,
    metrics,
    config,
    demand: {
      recordRequest: (route) => demand.requests.push(route.model),
      heldChanged: (route) => demand.held.push(server.holds.size(route.model)),
    },
  });
  const port = await server.listen(0, "127.0.0.1");
  cleanups.push(() => server.close());
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    fleet,
    metricsText: () => metrics.registry.metrics(),
    demand,
  };
}

/** A hand-driven upstream: the test writes the answer. */
async function fakeEngine(
  handler: (req: IncomingMessage, res: ServerResponse, body: string) => void,
  host = "127.0.0.1",
): Promise<{ port: number; bodies: string[]; closed: Promise<void>[] }> {
  const bodies: string[] = [];
  const closed: Promise<void>[] = [];
  const server = http.createServer((req, res) => {
    closed.push(new Promise<void>((resolve) => res.on("close", () => resolve())));
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      bodies.push(body);
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as AddressInfo).port, bodies, closed };
}

/**
 * A minimal OpenAI-style engine (the simulated engine lives in sim/, which the gateway's image does not
 * ship; the cluster tests use it): answers with its model name, streams `max_tokens` chunks then [DONE].
 */
async function engine(model: string, host = "127.0.0.1"): Promise<{ port: number }> {
  const upstream = await fakeEngine((req, res, body) => {
    const request = JSON.parse(body) as {
      model?: string;
      max_tokens?: number;
      stream?: boolean;
      messages?: unknown;
    };
    if (request.model !== model) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "error", message: "wrong model" }));
      return;
    }
    const chat = req.url === "/v1/chat/completions";
    const tokens = request.max_tokens ?? 4;
    if (!request.stream) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          model,
          object: chat ? "chat.completion" : "text_completion",
          choices: [{ index: 0, text: "x".repeat(tokens) }],
        }),
      );
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    let sent = 0;
    const timer = setInterval(() => {
      if (sent < tokens)
        res.write(`data: ${JSON.stringify({ model, choices: [{ index: 0, text: "x" }] })}\n\n`);
      else {
        clearInterval(timer);
        res.end("data: [DONE]\n\n");
      }
      sent++;
    }, 2);
    res.on("close", () => clearInterval(timer));
  }, host);
  return upstream;
}

function route(fleet: StaticFleet, model: string, endpoints: ModelRoute["endpoints"]): ModelRoute {
  return fleet.set({ model, namespace: "team-a", name: model.replace(/[^a-z0-9-]/g, "-"), endpoints });
}

const post = (url: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    redirect: "manual",
    ...(signal ? { signal } : {}),
  });

const completion = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  prompt: "hello there",
  max_tokens: 4,
  ...extra,
});

async function readAll(response: Response): Promise<string> {
  return await response.text();
}

/** A port nothing listens on at `host` (bound, then released): connecting to it is refused. */
async function unusedPort(host: string): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("routing by model", () => {
  it("sends each request to a pod of the ModelDeployment whose model name it asks for, and lists the models", async () => {
    const fleet = new StaticFleet();
    const a = await engine("model-a", "127.0.0.1");
    const b = await engine("model-b", "127.0.0.2");
    route(fleet, "model-a", [staticEndpoint("a-0", "127.0.0.1", a.port)]);
    route(fleet, "model-b", [staticEndpoint("b-0", "127.0.0.2", b.port)]);
    const gw = await gateway(fleet);
    for (const [model, pod] of [
      ["model-a", "a-0"],
      ["model-b", "b-0"],
    ] as const) {
      const response = await post(`${gw.url}/v1/completions`, completion(model));
      expect(response.status).toBe(200);
      expect(response.headers.get("x-gpufleet-endpoint")).toBe(pod);
      expect(response.headers.get("x-gpufleet-pick-reason")).toBe("only-endpoint");
      const body = (await response.json()) as { model: string; choices: unknown[] };
      expect(body.model).toBe(model);
      expect(body.choices).toHaveLength(1);
    }
    const chat = await post(`${gw.url}/v1/chat/completions`, {
      model: "model-b",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 3,
    });
    expect(chat.status).toBe(200);
    expect(((await chat.json()) as { object: string }).object).toBe("chat.completion");
    const models = (await (await fetch(`${gw.url}/v1/models`)).json()) as {
      data: Array<{ id: string; object: string }>;
    };
    expect(models.data.map((m) => m.id)).toEqual(["model-a", "model-b"]);
    expect(await gw.metricsText()).toMatch(/gpufleet_gateway_picks_total\{reason="only-endpoint"\} 3/);
    expect(gw.demand.requests).toEqual(["model-a", "model-b", "model-b"]);
  });

  it("spreads requests over the pods of one model and counts each pick's reason", async () => {
    const fleet = new StaticFleet();
    const e0 = await engine("m", "127.0.0.1");
    const e1 = await engine("m", "127.0.0.3");
    route(fleet, "m", [
      staticEndpoint("m-0", "127.0.0.1", e0.port),
      staticEndpoint("m-1", "127.0.0.3", e1.port),
    ]);
    const gw = await gateway(fleet);
    const responses = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        post(`${gw.url}/v1/completions`, completion("m", { prompt: `distinct prompt ${i}`, max_tokens: 8 })),
      ),
    );
    const pods = responses.map((r) => r.headers.get("x-gpufleet-endpoint"));
    await Promise.all(responses.map((r) => r.text()));
    expect(new Set(pods)).toEqual(new Set(["m-0", "m-1"]));
    expect(await gw.metricsText()).toMatch(/gpufleet_gateway_picks_total\{reason="least-loaded"\} [1-8]/);
  });
});

describe("prefill backlog for the picker", () => {
  it("counts a request's prompt tokens on its pod until the first response byte, then takes them off", async () => {
    const fleet = new StaticFleet();
    let answer: (() => void) | undefined;
    const upstream = await fakeEngine((_req, res) => {
      answer = () => {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write('data: {"choices":[{"text":"a"}]}\n\n');
        setTimeout(() => res.end("data: [DONE]\n\n"), 50);
      };
    });
    const endpoint = staticEndpoint("m-0", "127.0.0.1", upstream.port);
    route(fleet, "m", [endpoint]);
    const gw = await gateway(fleet);
    const pending = post(
      `${gw.url}/v1/completions`,
      completion("m", { prompt: "x".repeat(4000), stream: true }),
    );
    await vi_waitFor(() => answer !== undefined);
    expect(endpoint.pendingPrefillTokens).toBe(1000);
    (answer as () => void)();
    const response = await pending;
    await vi_waitFor(() => endpoint.pendingPrefillTokens === 0);
    expect(endpoint.inFlight).toBe(1);
    await readAll(response);
    await vi_waitFor(() => endpoint.inFlight === 0);
    expect(endpoint.pendingPrefillTokens).toBe(0);
  });
});

describe("errors in OpenAI's shape", () => {
  it.each([
    ["unknown model", "/v1/completions", JSON.stringify(completion("nope")), 404, "model_not_found"],
    ["bad JSON", "/v1/completions", "{not json", 400, "invalid_json"],
    ["a JSON array", "/v1/completions", "[1]", 400, "invalid_json"],
    ["no model", "/v1/completions", JSON.stringify({ prompt: "x" }), 400, "missing_model"],
    ["chat without messages", "/v1/chat/completions", JSON.stringify({ model: "m" }), 400, "invalid_request"],
    ["an unknown path", "/v1/embeddings", "{}", 404, "not_found"],
  ])("%s", async (_label, path, body, status, code) => {
    const fleet = new StaticFleet();
    route(fleet, "m", []);
    const gw = await gateway(fleet);
    const response = await post(`${gw.url}${path}`, body);
    expect(response.status).toBe(status);
    expect(response.headers.get("content-type")).toBe("application/json");
    const parsed = (await response.json()) as { error: { message: string; type: string; code: string } };
    expect(parsed.error.code).toBe(code);
    expect(typeof parsed.error.message).toBe("string");
    expect(parsed.error.type).toBe(status >= 500 ? "server_error" : "invalid_request_error");
  });

  it("echoes at most 128 characters of an unknown model's name", async () => {
    const gw = await gateway(new StaticFleet());
    const response = await post(`${gw.url}/v1/completions`, completion("x".repeat(5000)));
    expect(response.status).toBe(404);
    const { error } = (await response.json()) as { error: { message: string } };
    expect(error.message.length).toBeLessThan(200);
  });

  it("refuses a body over the bound with 413, by Content-Length and while streaming it", async () => {
    const fleet = new StaticFleet();
    const upstream = await fakeEngine((_req, res) => res.end("{}"));
    route(fleet, "m", [staticEndpoint("m-0", "127.0.0.1", upstream.port)]);
    const gw = await gateway(fleet, { maxBodyBytes: 1024 });
    const big = JSON.stringify(completion("m", { prompt: "y".repeat(2000) }));
    const declared = await post(`${gw.url}/v1/completions`, big);
    expect(declared.status).toBe(413);
    expect(((await declared.json()) as { error: { code: string } }).error.code).toBe("request_too_large");
    // chunked: no Content-Length, the bound applies while reading
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        `${gw.url}/v1/completions`,
        { method: "POST", headers: { "content-type": "application/json" } },
        (res) => {
          let body = "";
          res.on("data", (c: Buffer) => (body += c.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      req.write(big.slice(0, 1000));
      req.end(big.slice(1000));
    });
    expect(chunked.status).toBe(413);
    expect(upstream.bodies).toEqual([]);
  });

  it("answers 502 when the pod drops the connection, 503 when it refuses connections past the hold timeout, and does not follow a pod's redirect", async () => {
    const fleet = new StaticFleet();
    cleanups.push(() => fleet.stop());
    const deadPort = await unusedPort("127.0.0.1");
    route(fleet, "dead", [staticEndpoint("dead-0", "127.0.0.1", deadPort)]);
    const dropping = await fakeEngine((req) => req.socket.destroy());
    route(fleet, "drop", [staticEndpoint("drop-0", "127.0.0.1", dropping.port)]);
    let followed = false;
    const elsewhere = await fakeEngine((_req, res) => {
      followed = true;
      res.end("{}");
    });
    const redirecting = await fakeEngine((_req, res) => {
      res.writeHead(307, { location: `http://127.0.0.1:${elsewhere.port}/v1/completions` });
      res.end();
    });
    route(fleet, "redirect", [staticEndpoint("r-0", "127.0.0.1", redirecting.port)]);
    const gw = await gateway(fleet, { holdTimeoutMs: 400 });
    const dropped = await post(`${gw.url}/v1/completions`, completion("drop"));
    expect(dropped.status).toBe(502);
    expect(((await dropped.json()) as { error: { code: string } }).error.code).toBe("upstream_unreachable");
    const dead = await post(`${gw.url}/v1/completions`, completion("dead"));
    expect(dead.status).toBe(503);
    expect(((await dead.json()) as { error: { code: string } }).error.code).toBe("no_capacity");
    expect(fleet.route("dead")?.endpoints[0]?.ready).toBe(false);
    const redirect = await post(`${gw.url}/v1/completions`, completion("redirect"));
    expect(redirect.status).toBe(502);
    expect(redirect.headers.get("location")).toBeNull();
    expect(((await redirect.json()) as { error: { code: string } }).error.code).toBe("upstream_error");
    expect(followed).toBe(false);
  });

  it("sends a request whose pod refuses the connection to another pod once", async () => {
    const fleet = new StaticFleet();
    const live = await engine("m");
    const deadPort = await unusedPort("127.0.0.4");
    // The dead pod sorts first and is equally loaded: it is picked first.
    route(fleet, "m", [
      staticEndpoint("a-dead", "127.0.0.4", deadPort),
      staticEndpoint("b-live", "127.0.0.1", live.port),
    ]);
    const gw = await gateway(fleet);
    const response = await post(`${gw.url}/v1/completions`, completion("m"));
    expect(response.status).toBe(200);
    expect(response.headers.get("x-gpufleet-endpoint")).toBe("b-live");
    await response.text();
  });

  it("sends a request whose pod answers 404 for the model (its address now another model's engine) elsewhere, and routes to the pod again once its /v1/models lists the model", async () => {
    const fleet = new StaticFleet();
    cleanups.push(() => fleet.stop());
    let served = "other-model";
    const reused = await fakeEngine((req, res, body) => {
      if (req.url === "/health") {
        res.writeHead(200);
        res.end();
      } else if (req.url === "/v1/models") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ object: "list", data: [{ id: served, object: "model" }] }));
      } else if ((JSON.parse(body) as { model?: string }).model === served) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ model: served, served_by: "reused" }));
      } else {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ object: "error", message: "The model `m` does not exist.", type: "NotFoundError" }));
      }
    });
    const live = await engine("m");
    // The reused address sorts first and is equally loaded: it is picked first.
    const r = route(fleet, "m", [staticEndpoint("a-reused", "127.0.0.1", reused.port), staticEndpoint("b-live", "127.0.0.1", live.port)]);
    const gw = await gateway(fleet);
    const response = await post(`${gw.url}/v1/completions`, completion("m"));
    expect(response.status).toBe(200);
    expect(response.headers.get("x-gpufleet-endpoint")).toBe("b-live");
    await response.text();
    expect(r.endpoints[0]?.ready).toBe(false);
    expect(await gw.metricsText()).toMatch(/gpufleet_gateway_upstream_errors_total\{kind="wrong_model"\} 1/);
    // /health alone (200 all along) does not bring it back while /v1/models lists another model.
    await sleep(300);
    expect(r.endpoints[0]?.ready).toBe(false);
    const next = await post(`${gw.url}/v1/completions`, completion("m"));
    expect(next.headers.get("x-gpufleet-endpoint")).toBe("b-live");
    await next.text();
    served = "m";
    await vi_waitFor(() => r.endpoints[0]?.ready === true);
    expect(reused.bodies.filter((b) => b !== "")).toHaveLength(1);
  });

  it("holds a request whose only pod answers 404 for the model, sends it there once the engine lists the model, and answers 503 past the hold timeout when it never does", async () => {
    const fleet = new StaticFleet();
    cleanups.push(() => fleet.stop());
    let served = "other-model";
    const pod = await fakeEngine((req, res, body) => {
      if (req.url === "/health" || req.url === "/v1/models") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(req.url === "/health" ? "" : JSON.stringify({ data: [{ id: served }] }));
      } else if ((JSON.parse(body) as { model?: string }).model === served) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ model: served }));
      } else {
        res.writeHead(404, { "content-type": "application/json" });
        res.end('{"error":"not here"}');
      }
    });
    const r = route(fleet, "m", [staticEndpoint("m-0", "127.0.0.1", pod.port)]);
    route(fleet, "never", [staticEndpoint("never-0", "127.0.0.1", pod.port)]);
    const gw = await gateway(fleet, { holdTimeoutMs: 1_500 });
    const pending = post(`${gw.url}/v1/completions`, completion("m"));
    await vi_waitFor(() => gw.server.holds.size("m") === 1);
    expect(r.endpoints[0]?.ready).toBe(false);
    served = "m";
    const response = await pending;
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ model: "m" });
    // An engine that never lists the model: the request is not answered with the engine's 404 body.
    const never = await post(`${gw.url}/v1/completions`, completion("never"));
    expect(never.status).toBe(503);
    expect(((await never.json()) as { error: { code: string } }).error.code).toBe("no_capacity");
  });

  it("sends a request whose connection the pod cut before answering (the engine died under it) to another pod, once", async () => {
    const fleet = new StaticFleet();
    cleanups.push(() => fleet.stop());
    const live = await engine("m");
    const dying = await fakeEngine((req) => req.socket.destroy());
    // The cutting pod sorts first and is equally loaded: it is picked first.
    route(fleet, "m", [staticEndpoint("a-cuts", "127.0.0.1", dying.port), staticEndpoint("b-live", "127.0.0.1", live.port)]);
    const both = [await fakeEngine((req) => req.socket.destroy()), await fakeEngine((req) => req.socket.destroy())];
    route(fleet, "n", [staticEndpoint("n-0", "127.0.0.1", both[0]!.port), staticEndpoint("n-1", "127.0.0.1", both[1]!.port)]);
    const gw = await gateway(fleet);
    const response = await post(`${gw.url}/v1/completions`, completion("m"));
    expect(response.status).toBe(200);
    expect(response.headers.get("x-gpufleet-endpoint")).toBe("b-live");
    await response.text();
    // Once (the pod's /health probes, which it cuts too, have no body).
    expect(dying.bodies.filter((b) => b !== "")).toHaveLength(1);
    expect(fleet.route("m")?.endpoints[0]?.ready).toBe(false);
    // Every pod cuts it: sent twice in all (no third pod, no loop), then 502.
    const cut = await post(`${gw.url}/v1/completions`, completion("n"));
    expect(cut.status).toBe(502);
    expect(((await cut.json()) as { error: { code: string } }).error.code).toBe("upstream_unreachable");
    expect([...both[0]!.bodies, ...both[1]!.bodies].filter((b) => b !== "")).toHaveLength(2);
  });

  it("re-holds a request whose pod refuses the connection (engine still starting) and sends it once the pod's /health answers", async () => {
    const fleet = new StaticFleet();
    cleanups.push(() => fleet.stop());
    const port = await unusedPort("127.0.0.5");
    // Ready as far as the fleet knows, but nothing listens yet: the engine is still coming up.
    const r = route(fleet, "m", [staticEndpoint("m-0", "127.0.0.5", port)]);
    const gw = await gateway(fleet);
    const pending = post(`${gw.url}/v1/completions`, completion("m"));
    await vi_waitFor(() => gw.server.holds.size("m") === 1);
    expect(r.endpoints[0]?.ready).toBe(false);
    expect(gw.demand.held.at(-1)).toBe(1);
    const health: string[] = [];
    const late = http.createServer((req, res) => {
      if (req.url === "/health") {
        health.push(req.url);
        res.writeHead(200);
        res.end();
        return;
      }
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end('{"ok":true}');
      });
    });
    await new Promise<void>((resolve) => late.listen(port, "127.0.0.5", resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          late.closeAllConnections();
          late.close(() => resolve());
        }),
    );
    const response = await pending;
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ ok: true });
    expect(health.length).toBeGreaterThan(0);
    expect(r.endpoints[0]?.ready).toBe(true);
    expect(gw.server.holds.size("m")).toBe(0);
    expect(r.endpoints[0]?.inFlight).toBe(0);
  });

  it("answers 504 when the pod sends no response headers in time", async () => {
    const fleet = new StaticFleet();
    const silent = await fakeEngine(() => undefined);
    route(fleet, "m", [staticEndpoint("m-0", "127.0.0.1", silent.port)]);
    const gw = await gateway(fleet, { upstreamHeadersTimeoutMs: 200 });
    const response = await post(`${gw.url}/v1/completions`, completion("m"));
    expect(response.status).toBe(504);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("upstream_timeout");
    await silent.closed[0]; // the upstream request was aborted
  });
});

describe("streaming pass-through", () => {
  it("streams the engine's SSE answer through token by token, ending with [DONE]", async () => {
    const fleet = new StaticFleet();
    const e = await engine("m");
    route(fleet, "m", [staticEndpoint("m-0", "127.0.0.1", e.port)]);
    const gw = await gateway(fleet);
    const response = await post(`${gw.url}/v1/chat/completions`, {
      model: "m",
      messages: [{ role: "user", content: "count" }],
      max_tokens: 6,
      stream: true,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const text = await readAll(response);
    const events = text.split("\n\n").filter(Boolean);
    expect(events.at(-1)).toBe("data: [DONE]");
    expect(events.length).toBe(6 + 1); // 6 tokens, [DONE]
  });

  it("forwards each event as soon as it is complete (no buffering), never part of one", async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const fleet = new StaticFleet();
    const upstream = await fakeEngine((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write('data: {"n":1}\n\ndata: {"n"');
      void gate.then(() => {
        res.write(":2}\n\n");
        res.end("data: [DONE]\n\n");
      });
    });
    route(fleet, "m", [staticEndpoint("m-0", "127.0.0.1", upstream.port)]);
    const gw = await gateway(fleet);
    const response = await post(`${gw.url}/v1/completions`, completion("m", { stream: true }));
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    // The first event arrived while the engine has not sent the rest: it was not buffered, and the
    // half of the second event already sent was held back.
    expect(Buffer.from(first.value as Uint8Array).toString()).toBe('data: {"n":1}\n\n');
    const next = reader.read();
    const early = await Promise.race([next.then(() => "data"), sleep(100).then(() => "nothing")]);
    expect(early).toBe("nothing");
    release();
    const second = await next;
    let rest = second.done ? "" : Buffer.from(second.value).toString();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += Buffer.from(value).toString();
    }
    expect(rest).toBe('data: {"n":2}\n\ndata: [DONE]\n\n');
  });

  it("ends the stream with an error event when the pod dies mid-stream (no hang, no half event)", async () => {
    const fleet = new StaticFleet();
    const upstream = await fakeEngine((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write('data: {"n":1}\n\ndata: {"partial');
      setTimeout(() => res.socket?.destroy(), 50);
    });
    route(fleet, "m", [staticEndpoint("m-0", "127.0.0.1", upstream.port)]);
    const gw = await gateway(fleet);
    const started = Date.now();
    const response = await post(`${gw.url}/v1/completions`, completion("m", { stream: true }));
    const text = await readAll(response);
    expect(Date.now() - started).toBeLessThan(5_000);
    const events = text.split("\n\n").filter(Boolean);
    expect(events[0]).toBe('data: {"n":1}');
    expect(text).not.toContain("partial");
    expect(events).toHaveLength(2);
    const error = JSON.parse((events[1] as string).slice("data: ".length)) as {
      error: { code: string; type: string };
    };
    expect(error.error).toMatchObject({ code: "upstream_disconnected", type: "server_error" });
    expect(await gw.metricsText()).toMatch(/gpufleet_gateway_upstream_errors_total\{kind="disconnected"\} 1/);
  });

  it("ends a stream whose pod goes silent with an error event after the idle timeout", async () => {
    const fleet = new StaticFleet();
    const upstream = await fakeEngine((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write('data: {"n":1}\n\n');
    });
    route(fleet, "m", [staticEndpoint("m-0", "127.0.0.1", upstream.port)]);
    const gw = await gateway(fleet, { upstreamIdleTimeoutMs: 200 });
    const text = await readAll(await post(`${gw.url}/v1/completions`, completion("m", { stream: true })));
    expect(text).toMatch(/^data: \{"n":1\}\n\ndata: \{"error":\{.*"code":"upstream_timeout"\}\}\n\n$/);
    await upstream.closed[0];
  });

  it("aborts the upstream request when the client goes away, and the engine stops streaming to it", async () => {
    const fleet = new StaticFleet();
    let writes = 0;
    const upstream = await fakeEngine((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const timer = setInterval(() => {
        writes++;
        res.write(`data: {"n":${writes}}\n\n`);
      }, 20);
      res.on("close", () => clearInterval(timer));
    });
    route(fleet, "m", [staticEndpoint("m-0", "127.0.0.1", upstream.port)]);
    const gw = await gateway(fleet);
    const abort = new AbortController();
    const response = await post(
      `${gw.url}/v1/completions`,
      completion("m", { stream: true }),
      {},
      abort.signal,
    );
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    abort.abort();
    await upstream.closed[0];
    const after = writes;
    await sleep(100);
    expect(writes).toBe(after);
    expect(gw.server.activeRequests).toBe(0);
    expect(fleet.route("m")?.endpoints[0]?.inFlight).toBe(0);
  });

  it("a client that goes away through the gateway stops the simulated engine's generation", async () => {
    const sim = await startEngineServer({
      host: "127.0.0.1",
      port: 0,
      engine: "vllm",
      modelName: "m",
      params: { ...SMALL_ENGINE, kvCapacityTokens: 65_536, maxModelLenTokens: 8192 },
    });
    cleanups.push(() => sim.close());
    const fleet = new StaticFleet();
    route(fleet, "m", [staticEndpoint("m-0", "127.0.0.1", sim.port)]);
    const gw = await gateway(fleet);
    const abort = new AbortController();
    const response = await post(
      `${gw.url}/v1/completions`,
      completion("m", { stream: true, max_tokens: 6000, prompt: "x".repeat(400) }),
      {},
      abort.signal,
    );
    await (response.body as ReadableStream<Uint8Array>).getReader().read();
    expect(sim.pump().requestsRunning).toBe(1);
    abort.abort();
    await vi_waitFor(() => sim.pump().requestsRunning === 0);
    const { requestsAbortedTotal, requestsFinishedTotal, generationTokensTotal } = sim.pump();
    expect({ requestsAbortedTotal, requestsFinishedTotal }).toEqual({ requestsAbortedTotal: 1, requestsFinishedTotal: 0 });
    expect(generationTokensTotal).toBeLessThan(6000);
  });
});

describe("holding requests while a model has no ready pod", () => {
  it("holds requests, tells the demand writer, and releases them in arrival order to the first ready pod", async () => {
    const fleet = new StaticFleet();
    const upstream = await fakeEngine((_req, res, body) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ echo: (JSON.parse(body) as { prompt: string }).prompt }));
    });
    const pod = staticEndpoint("m-0", "127.0.0.1", upstream.port);
    pod.ready = false;
    const r = route(fleet, "m", [pod]);
    const gw = await gateway(fleet);
    const pending: Promise<Response>[] = [];
    for (let i = 0; i < 3; i++) {
      pending.push(post(`${gw.url}/v1/completions`, completion("m", { prompt: `request ${i}` })));
      // sent one after another so that arrival order is defined
      await vi_waitFor(() => gw.server.holds.size("m") === i + 1);
    }
    expect(gw.demand.held).toEqual([1, 2, 3]);
    expect(upstream.bodies).toEqual([]);
    pod.ready = true;
    fleet.changed();
    const responses = await Promise.all(pending);
    for (const response of responses) {
      expect(response.status).toBe(200);
      expect(Number(response.headers.get("x-gpufleet-held-ms"))).toBeGreaterThan(0);
      await response.text();
    }
    expect(upstream.bodies.map((b) => (JSON.parse(b) as { prompt: string }).prompt)).toEqual([
      "request 0",
      "request 1",
      "request 2",
    ]);
    expect(gw.demand.held.at(-1)).toBe(0);
    expect(r.endpoints[0]?.inFlight).toBe(0);
    expect(await gw.metricsText()).toMatch(/gpufleet_gateway_hold_outcomes_total\{outcome="released"\} 3/);
  });

  it("holds requests beyond a pod's prefill budget and releases each when the pod's backlog streams its first byte", async () => {
    const fleet = new StaticFleet();
    const answers: ServerResponse[] = [];
    const upstream = await fakeEngine((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      answers.push(res);
    });
    const r = route(fleet, "m", [staticEndpoint("m-0", "127.0.0.1", upstream.port)]);
    r.prefillBudgetTokens = 30;
    r.prefillTokensPerSecond = 1_000_000;
    const gw = await gateway(fleet);
    const long = (i: number) => completion("m", { stream: true, prompt: `${i} ${"x".repeat(200)}` }); // ~51 tokens
    const first = post(`${gw.url}/v1/completions`, long(0));
    await vi_waitFor(() => upstream.bodies.length === 1);
    // The pod has ~51 prompt tokens to prefill for this gateway: over the budget, so the next waits here.
    const second = post(`${gw.url}/v1/completions`, long(1));
    await vi_waitFor(() => gw.server.holds.size("m") === 1);
    expect(gw.server.heldTokens("m")).toBeGreaterThan(40);
    expect(gw.demand.held.at(-1)).toBe(1);
    await sleep(50);
    expect(upstream.bodies).toHaveLength(1);
    answers[0]?.write('data: {"n":0}\n\n'); // first token of the first request
    await vi_waitFor(() => upstream.bodies.length === 2);
    expect(gw.server.holds.size("m")).toBe(0);
    expect(gw.server.heldTokens("m")).toBe(0);
    for (const answer of answers) answer.end("data: [DONE]\n\n");
    for (const response of await Promise.all([first, second])) {
      expect(response.status).toBe(200);
      await response.text();
    }
    expect(r.endpoints[0]?.pendingPrefillTokens).toBe(0);
  });

  it("answers 429 with Retry-After when the model's hold queue is full, and 503 when no pod is ready in time", async () => {
    const fleet = new StaticFleet();
    route(fleet, "m", []);
    const gw = await gateway(fleet, { holdMaxPerModel: 1, holdTimeoutMs: 300 });
    const first = post(`${gw.url}/v1/completions`, completion("m"));
    await vi_waitFor(() => gw.server.holds.size("m") === 1);
    const second = await post(`${gw.url}/v1/completions`, completion("m"));
    expect(second.status).toBe(429);
    expect(second.headers.get("retry-after")).toBe("2");
    expect(((await second.json()) as { error: { code: string; type: string } }).error).toMatchObject({
      code: "overloaded",
      type: "rate_limit_error",
    });
    const timedOut = await first;
    expect(timedOut.status).toBe(503);
    expect(timedOut.headers.get("retry-after")).toBe("10");
    expect(((await timedOut.json()) as { error: { code: string } }).error.code).toBe("no_capacity");
    expect(gw.server.holds.size("m")).toBe(0);
  });

  it("forgets a held request whose client went away", async () => {
    const fleet = new StaticFleet();
    route(fleet, "m", []);
    const gw = await gateway(fleet);
    const abort = new AbortController();
    const request = post(`${gw.url}/v1/completions`, completion("m"), {}, abort.signal).catch(
      () => "aborted",
    );
    await vi_waitFor(() => gw.server.holds.size("m") === 1);
    abort.abort();
    expect(await request).toBe("aborted");
    await vi_waitFor(() => gw.server.holds.size("m") === 0);
    expect(gw.demand.held.at(-1)).toBe(0);
  });
});

async function vi_waitFor(predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(5);
  }
}
