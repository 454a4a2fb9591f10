/**
 * The two cheap ends of `npm run bench:gateway`, so that on a small machine the benchmark measures the
 * gateway rather than its own load generator and engines competing with it for the CPU:
 *
 * - `StreamClient`: a minimal HTTP/1.1 client over kept-alive sockets (one request at a time per
 *   socket, a new socket when none is free). A request is a head and a body encoded once by the
 *   caller; the answer is parsed as it arrives (status line, headers, then a chunked or
 *   Content-Length body) and its SSE events are counted by their ending blank line, with no string
 *   made of the body. Compared with node:http's client it spends no stream, no header object and no
 *   per-request parser on an answer.
 * - `startSteppedEngine`: a simulated engine that answers OpenAI streaming completions the way a
 *   continuous-batching engine does: each step emits one token to every stream in the batch at once,
 *   a new request joins at the next step (its first token ends that step), and a step lasts what the
 *   engine model (sim/engine/model.ts) gives a decode step of this batch: max(weight read, compute ×
 *   batch tokens) + KV read of the batch's context + step overhead. Answers are pre-encoded SSE events
 *   (the same shape as the EngineServer's), written to the socket with their chunked framing.
 *
 * Both speak plain HTTP/1.1, so the gateway in between uses its ordinary node:http server and client.
 * Only `bench:gateway` uses them; the engine that the cluster tests and the demo run is EngineServer.
 */
import net from "node:net";
import type { EngineParams } from "../engine/model.js";

const CRLF = Buffer.from("\r\n");
const HEAD_END = Buffer.from("\r\n\r\n");
const LF = 0x0a;
const CR = 0x0d;
/** The longest response head or chunk-size line accepted (the bench's own peers send far less). */
const MAX_LINE_BYTES = 16 * 1024;

/** What one streamed request saw: when its SSE events arrived, measured at each socket read. */
export interface StreamSample {
  ttftMs: number;
  gapsMs: number[];
  ok: boolean;
  status: number;
  events: number;
}

interface Exchange {
  started: number;
  sample: StreamSample;
  last: number;
  /** Body offset of the last LF seen (an LF right after it ends an event), -2 when none. */
  lastLf: number;
  bodyOffset: number;
  done: (sample: StreamSample) => void;
  timer: NodeJS.Timeout;
}

type ParseState = "head" | "size" | "data" | "data-end" | "trailers" | "length";

/** One kept-alive socket and the parse state of the answer it is receiving. */
class Connection {
  readonly socket: net.Socket;
  exchange: Exchange | undefined;
  private state: ParseState = "head";
  private remaining = 0;
  private pending: Buffer | undefined;
  closed = false;

  constructor(
    host: string,
    port: number,
    private readonly onIdle: (connection: Connection) => void,
    private readonly onClosed: (connection: Connection) => void,
  ) {
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.on("data", (data: Buffer) => this.read(data));
    this.socket.on("error", () => undefined);
    this.socket.on("close", () => {
      this.closed = true;
      this.onClosed(this);
      this.fail();
    });
  }

  send(request: Buffer, exchange: Exchange): void {
    this.exchange = exchange;
    this.state = "head";
    this.pending = undefined;
    this.socket.write(request);
  }

  fail(): void {
    const exchange = this.exchange;
    if (!exchange) return;
    this.exchange = undefined;
    clearTimeout(exchange.timer);
    exchange.sample.ok = false;
    exchange.done(exchange.sample);
  }

  private finish(): void {
    const exchange = this.exchange;
    if (!exchange) return;
    this.exchange = undefined;
    clearTimeout(exchange.timer);
    const sample = exchange.sample;
    sample.ok = sample.status === 200 && sample.ttftMs >= 0;
    exchange.done(sample);
    if (!this.closed) this.onIdle(this);
  }

  /**
   * Counts the SSE events ending in body bytes [from, to): an LF right after an LF ends one (the
   * engines write LF line ends, and the gateway passes their bytes through).
   */
  private body(data: Buffer, from: number, to: number, now: number): void {
    const exchange = this.exchange as Exchange;
    let events = 0;
    let i = data.indexOf(LF, from);
    while (i !== -1 && i < to) {
      const offset = exchange.bodyOffset + (i - from);
      if (offset === exchange.lastLf + 1) {
        events++;
        exchange.lastLf = -2;
      } else exchange.lastLf = offset;
      i = data.indexOf(LF, i + 1);
    }
    exchange.bodyOffset += to - from;
    if (events === 0) return;
    const sample = exchange.sample;
    for (let k = 0; k < events; k++) {
      if (sample.ttftMs < 0) sample.ttftMs = now - exchange.started;
      else sample.gapsMs.push(now - exchange.last);
      exchange.last = now;
    }
    sample.events += events;
  }

  private read(chunk: Buffer): void {
    if (!this.exchange) {
      // Bytes nobody asked for: the peer is confused; drop the socket.
      this.socket.destroy();
      return;
    }
    const now = performance.now();
    const data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    let i = 0;
    while (i < data.length && this.exchange) {
      switch (this.state) {
        case "head": {
          const end = data.indexOf(HEAD_END, i);
          if (end === -1) return this.keep(data, i);
          const head = data.toString("latin1", i, end);
          const status = Number(head.slice(9, 12));
          this.exchange.sample.status = status;
          const lower = head.toLowerCase();
          const length = /\r\ncontent-length:\s*(\d+)/.exec(lower);
          i = end + 4;
          if (/\r\ntransfer-encoding:[^\r]*chunked/.test(lower)) this.state = "size";
          else if (length && Number(length[1]) > 0) {
            this.state = "length";
            this.remaining = Number(length[1]);
          } else {
            this.finish();
            return;
          }
          break;
        }
        case "size": {
          const end = data.indexOf(CRLF, i);
          if (end === -1) return this.keep(data, i);
          const size = parseInt(data.toString("latin1", i, end).split(";")[0] as string, 16);
          if (!Number.isFinite(size)) {
            this.socket.destroy();
            return;
          }
          i = end + 2;
          if (size === 0) this.state = "trailers";
          else {
            this.state = "data";
            this.remaining = size;
          }
          break;
        }
        case "data":
        case "length": {
          const n = Math.min(this.remaining, data.length - i);
          this.body(data, i, i + n, now);
          this.remaining -= n;
          i += n;
          if (this.remaining === 0) {
            if (this.state === "length") {
              this.finish();
              return;
            }
            this.state = "data-end";
          }
          break;
        }
        case "data-end": {
          if (data.length - i < 2) return this.keep(data, i);
          i += 2;
          this.state = "size";
          break;
        }
        case "trailers": {
          if (data.length - i < 2) return this.keep(data, i);
          if (data[i] === CR && data[i + 1] === LF) {
            this.finish();
            return;
          }
          const end = data.indexOf(CRLF, i);
          if (end === -1) return this.keep(data, i);
          i = end + 2;
          break;
        }
      }
    }
  }

  private keep(data: Buffer, from: number): void {
    if (data.length - from > MAX_LINE_BYTES) {
      this.socket.destroy();
      return;
    }
    this.pending = Buffer.from(data.subarray(from));
  }
}

/** Kept-alive sockets per target address ("host:port"), reused last-in first-out. */
export class StreamClient {
  private readonly idle = new Map<string, Connection[]>();
  private readonly all = new Set<Connection>();

  constructor(private readonly timeoutMs = 30_000) {}

  /** The request bytes for a POST of `body` to `path` (encode once, send many). */
  static post(path: string, address: string, body: Buffer): Buffer {
    const head = `POST ${path} HTTP/1.1\r\nhost: ${address}\r\ncontent-type: application/json\r\naccept: text/event-stream\r\ncontent-length: ${body.length}\r\n\r\n`;
    return Buffer.concat([Buffer.from(head, "latin1"), body]);
  }

  /** Sends `request` (from `post`) to `address`; resolves when the answer has ended, failed or timed out. */
  send(address: string, request: Buffer): Promise<StreamSample> {
    return new Promise((resolve) => {
      const sample: StreamSample = { ttftMs: -1, gapsMs: [], ok: false, status: 0, events: 0 };
      let connection = this.idle.get(address)?.pop();
      if (!connection) {
        const [host, port] = address.split(":");
        const created: Connection = new Connection(
          host as string,
          Number(port),
          (c) => {
            let list = this.idle.get(address);
            if (!list) this.idle.set(address, (list = []));
            list.push(c);
          },
          (c) => {
            this.all.delete(c);
            const list = this.idle.get(address);
            const at = list?.indexOf(c) ?? -1;
            if (list && at >= 0) list.splice(at, 1);
          },
        );
        this.all.add(created);
        connection = created;
      }
      const used = connection;
      const exchange: Exchange = {
        started: performance.now(),
        sample,
        last: 0,
        lastLf: -2,
        bodyOffset: 0,
        done: resolve,
        // An answer not finished in time counts as failed, and its socket is not reused.
        timer: setTimeout(() => {
          used.fail();
          used.socket.destroy();
        }, this.timeoutMs),
      };
      used.send(request, exchange);
    });
  }

  close(): void {
    for (const connection of this.all) connection.socket.destroy();
    this.all.clear();
    this.idle.clear();
  }
}

export interface SteppedEngineOptions {
  host: string;
  port: number;
  modelName: string;
  params: EngineParams;
}

export interface SteppedEngine {
  port: number;
  close(): Promise<void>;
}

interface ActiveStream {
  socket: net.Socket;
  generated: number;
  maxTokens: number;
  contextTokens: number;
}

const WORDS = [" the", " model", " says", " hello", " to", " a", " simulated", " fleet", " of", " GPUs"];
const STREAM_HEAD = Buffer.from(
  "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n" +
    "connection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n",
  "latin1",
);
const END_OF_BODY = Buffer.from("0\r\n\r\n", "latin1");
/** The most tokens one bench request may ask for (the bench sends a few). */
const MAX_BENCH_TOKENS = 1024;

function chunked(payload: string): Buffer {
  const bytes = Buffer.from(payload);
  return Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`, "latin1"), bytes, CRLF]);
}

function plainResponse(status: number, reason: string, body: string): Buffer {
  return Buffer.from(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** Duration of one decode step of `batch` streams holding `contextTokens`, by the engine model's formula. */
export function decodeStepMs(params: EngineParams, batch: number, contextTokens: number): number {
  return (
    Math.max(params.weightReadMs, params.computeMsPerToken * batch) +
    params.kvReadMsPerToken * contextTokens +
    params.stepOverheadMs
  );
}

/** Starts a stepped engine (see the file header) on `host:port`. */
export async function startSteppedEngine(options: SteppedEngineOptions): Promise<SteppedEngine> {
  const { params, modelName } = options;
  // Pre-encoded events, chunk framing included: a token's event, and the last token's with the end.
  const tokenEvents = WORDS.map((word) =>
    chunked(
      `data: ${JSON.stringify({ id: "cmpl-bench", object: "text_completion", created: 0, model: modelName, choices: [{ index: 0, text: word, logprobs: null, finish_reason: null, stop_reason: null }] })}\n\n`,
    ),
  );
  const lastEvents = WORDS.map((word) =>
    Buffer.concat([
      chunked(
        `data: ${JSON.stringify({ id: "cmpl-bench", object: "text_completion", created: 0, model: modelName, choices: [{ index: 0, text: word, logprobs: null, finish_reason: "length", stop_reason: null }] })}\n\n`,
      ),
      chunked("data: [DONE]\n\n"),
      END_OF_BODY,
    ]),
  );
  const batch = new Set<ActiveStream>();
  const joining: ActiveStream[] = [];
  let timer: NodeJS.Timeout | undefined;
  const sockets = new Set<net.Socket>();

  const step = () => {
    timer = undefined;
    for (const stream of joining) batch.add(stream);
    joining.length = 0;
    let context = 0;
    for (const stream of batch) {
      if (stream.socket.destroyed) {
        batch.delete(stream);
        continue;
      }
      const index = stream.generated % WORDS.length;
      stream.generated++;
      stream.contextTokens++;
      if (stream.generated >= stream.maxTokens) {
        stream.socket.write(lastEvents[index] as Buffer);
        batch.delete(stream);
      } else {
        stream.socket.write(tokenEvents[index] as Buffer);
        context += stream.contextTokens;
      }
    }
    if (batch.size > 0) timer = setTimeout(step, decodeStepMs(params, batch.size, context));
  };
  const join = (stream: ActiveStream) => {
    joining.push(stream);
    // An idle engine starts a step at once; a busy one takes the request into its next step.
    if (timer === undefined) timer = setTimeout(step, decodeStepMs(params, batch.size + joining.length, 0));
  };

  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    let pending: Buffer | undefined;
    socket.on("data", (chunk: Buffer) => {
      let data = pending ? Buffer.concat([pending, chunk]) : chunk;
      pending = undefined;
      // Requests one at a time: a client sends the next only after this answer has ended.
      for (;;) {
        const end = data.indexOf(HEAD_END);
        if (end === -1) {
          if (data.length > MAX_LINE_BYTES) socket.destroy();
          else pending = data;
          return;
        }
        const head = data.toString("latin1", 0, end).toLowerCase();
        const length = Number(/\r\ncontent-length:\s*(\d+)/.exec(head)?.[1] ?? 0);
        if (data.length < end + 4 + length) {
          if (length > 1 << 20) socket.destroy();
          else pending = data;
          return;
        }
        const body = data.subarray(end + 4, end + 4 + length);
        data = data.subarray(end + 4 + length);
        let parsed: { model?: unknown; max_tokens?: unknown; stream?: unknown; prompt?: unknown };
        try {
          parsed = JSON.parse(body.toString("utf8")) as typeof parsed;
        } catch {
          socket.write(plainResponse(400, "Bad Request", '{"error":{"message":"bad JSON"}}'));
          continue;
        }
        if (!head.startsWith("post /v1/completions ") || parsed.stream !== true || parsed.model !== modelName) {
          socket.write(
            plainResponse(404, "Not Found", '{"error":{"message":"the stepped engine serves streamed completions of its model only"}}'),
          );
          continue;
        }
        const maxTokens = Math.max(1, Math.min(MAX_BENCH_TOKENS, Number(parsed.max_tokens) || 16));
        const promptTokens = Math.max(1, Math.ceil((typeof parsed.prompt === "string" ? parsed.prompt.length : 4) / 4));
        socket.write(STREAM_HEAD);
        join({ socket, generated: 0, maxTokens, contextTokens: promptTokens });
        if (data.length === 0) return;
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        clearTimeout(timer);
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
