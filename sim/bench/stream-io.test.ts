import http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { engineParamsForNames } from "../engine/model.js";
import { StreamClient, decodeStepMs, startSteppedEngine } from "./stream-io.js";

const params = engineParamsForNames("llama-3.1-8b", "NVIDIA-H100-80GB-HBM3");
const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const completion = (tokens: number, model = "m") =>
  Buffer.from(JSON.stringify({ model, prompt: "Say hello.", max_tokens: tokens, stream: true }));

async function engine() {
  const e = await startSteppedEngine({ host: "127.0.0.1", port: 0, modelName: "m", params });
  closers.push(() => e.close());
  return `127.0.0.1:${e.port}`;
}

/** A server that writes `response` one byte per write (every parse state split across reads). */
async function byteByByteServer(response: string): Promise<string> {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.once("data", async () => {
      for (const byte of Buffer.from(response)) {
        socket.write(Buffer.from([byte]));
        await new Promise((r) => setImmediate(r));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  closers.push(() => new Promise((r) => server.close(r)));
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

describe("stepped engine and stream client", () => {
  it("streams one event per token plus [DONE], with the engine model's step cadence", async () => {
    const address = await engine();
    const client = new StreamClient();
    closers.push(() => client.close());
    const sample = await client.send(address, StreamClient.post("/v1/completions", address, completion(8)));
    expect(sample).toMatchObject({ ok: true, status: 200, events: 9 });
    // 8 tokens: 7 gaps of one decode step each, then [DONE] written with the last token (gap ~0).
    expect(sample.gapsMs).toHaveLength(8);
    const step = decodeStepMs(params, 1, 0);
    expect(step).toBeGreaterThan(7);
    const median = [...sample.gapsMs].sort((a, b) => a - b)[4] as number;
    expect(median).toBeGreaterThan(step * 0.8);
  });

  it("reuses a kept-alive socket for the next request and answers node:http's client the same", async () => {
    const address = await engine();
    const client = new StreamClient();
    closers.push(() => client.close());
    const request = StreamClient.post("/v1/completions", address, completion(3));
    const first = await client.send(address, request);
    const second = await client.send(address, request);
    expect([first.events, second.events]).toEqual([4, 4]);
    expect((client as unknown as { all: Set<unknown> }).all.size).toBe(1);
    // node:http's strict parser accepts the engine's framing.
    const [host, port] = address.split(":");
    const text = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host, port: Number(port), method: "POST", path: "/v1/completions" }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve(body));
      });
      req.on("error", reject);
      req.end(completion(2));
    });
    expect(text.match(/^data: /gm)).toHaveLength(3);
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
  });

  it("refuses what it does not serve, and the client reports the status", async () => {
    const address = await engine();
    const client = new StreamClient();
    closers.push(() => client.close());
    const wrong = await client.send(address, StreamClient.post("/v1/completions", address, completion(2, "other")));
    expect(wrong).toMatchObject({ ok: false, status: 404, events: 0 });
    const bad = await client.send(address, StreamClient.post("/v1/completions", address, Buffer.from("{")));
    expect(bad).toMatchObject({ ok: false, status: 400 });
  });

  it("parses a chunked answer split at every byte, chunk extensions and trailers included", async () => {
    const events = "data: a\n\ndata: b\n\n";
    const address = await byteByByteServer(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
        `${(9).toString(16)};ext=1\r\n${events.slice(0, 9)}\r\n` +
        `${(events.length - 9).toString(16)}\r\n${events.slice(9)}\r\n` +
        "0\r\nx-trailer: 1\r\n\r\n",
    );
    const client = new StreamClient();
    closers.push(() => client.close());
    const sample = await client.send(address, StreamClient.post("/", address, Buffer.from("{}")));
    expect(sample).toMatchObject({ ok: true, status: 200, events: 2 });
  });

  it("counts a failed answer (the peer closes mid-stream) as not ok", async () => {
    const server = net.createServer((socket) =>
      socket.once("data", () => socket.end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: a\n\n\r\n")),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    closers.push(() => new Promise((r) => server.close(r)));
    const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const client = new StreamClient();
    closers.push(() => client.close());
    const sample = await client.send(address, StreamClient.post("/", address, Buffer.from("{}")));
    expect(sample).toMatchObject({ ok: false, events: 1 });
  });
});
