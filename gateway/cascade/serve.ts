/**
 * Serving a cascade alias (a ModelRoute) in the gateway. The gateway calls `serve` for a `model` that no
 * ModelDeployment serves; the request then goes through the gateway itself once per step it tries (a
 * loopback hop to its own port, marked with HEADER_HOP), so each step's request is picked, held, limited
 * and metered exactly like a direct request for that model.
 *
 * What a client sees:
 * - Always the answering model's own response: its `model` field names the ModelDeployment's model, and
 *   the header `x-gpufleet-model` says the same; `x-gpufleet-cascade` gives the reason (first, tier,
 *   prompt-length, stream-first, stream-last, confident, low-confidence) and, when the gate ran,
 *   `x-gpufleet-confidence` the measured confidence.
 * - Non-streaming, gated: the small model answers in full (with logprobs); the gate reads its first N
 *   tokens; a confident answer is returned (logprobs removed unless the client asked for them), a
 *   low-confidence one is discarded and the request goes to the next step.
 * - Streaming, gated, `streaming: hold`: the small model streams; the gateway holds its events until N
 *   tokens have come (the client sees no bytes, not even headers, until then); confident: the held
 *   events are sent and the rest streams through; low confidence: the small stream is cut (the engine
 *   stops) and the client gets only the next step's stream, from its first token. Time to first token
 *   is therefore the small model's time to N tokens (plus the large model's TTFT on escalation).
 *   `streaming: first` / `last` skip the gate for streaming requests.
 */
import { randomUUID } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { logger } from "../../operator/log/logger.js";
import { GatewayError, sendErrorResponse } from "../errors.js";
import { flattenChat } from "../routing/prefix.js";
import { SseFramer } from "../sse.js";
import {
  type CascadeRules,
  type PromptFeatures,
  classifierScore,
  confidenceOf,
  estimateTokens,
  keepAnswer,
  keepThreshold,
  promptWords,
  startStep,
} from "./decide.js";
import type { ResolvedCascade } from "./routes.js";

export const HEADER_MODEL = "x-gpufleet-model";
export const HEADER_CASCADE = "x-gpufleet-cascade";
export const HEADER_CONFIDENCE = "x-gpufleet-confidence";
/** Marks the gateway's own hop to a step: never resolved as an alias again (no loops). */
export const HEADER_HOP = "x-gpufleet-cascade-hop";
/** On the gateway's own hop: the alias the step serves (tenancy lets a tier allowed the alias call it). */
export const HEADER_ALIAS = "x-gpufleet-cascade-alias";
/** Largest non-streaming answer the gate reads. */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "date"]);

const log = logger.child({ component: "gateway-cascade" });

export interface CascadeRequest {
  req: IncomingMessage;
  res: ServerResponse;
  path: string;
  body: Buffer;
  model: string;
  /** The caller's usage tier, when tenancy knows it. */
  tier?: string;
}

export interface CascadeServerOptions {
  resolve(alias: string): ResolvedCascade | undefined;
  /** Where the gateway itself listens (the loopback hop). */
  self(): { host: string; port: number };
  /** The caller's usage tier (tenancy), for `largeForTiers`; without it that rule never applies. */
  tierOf?(req: IncomingMessage): string | undefined;
}

type Json = Record<string, unknown>;

/** The prompt's text (chat: the flattened messages), as the picker and the prompt classifier read it. */
function promptTextOf(parsed: Json, chat: boolean): string {
  if (chat)
    return Array.isArray(parsed.messages) ? flattenChat(parsed.messages as never[], 16 * 1024 * 1024) : "";
  if (typeof parsed.prompt === "string") return parsed.prompt;
  if (Array.isArray(parsed.prompt) && typeof parsed.prompt[0] === "string") return parsed.prompt[0];
  return "";
}

/** The token logprobs of one choice (chat: logprobs.content[].logprob; completions: token_logprobs). */
export function choiceLogprobs(choice: unknown): number[] {
  const lp = (choice as { logprobs?: unknown } | undefined)?.logprobs as
    { content?: Array<{ logprob?: unknown }>; token_logprobs?: unknown[] } | null | undefined;
  if (!lp) return [];
  const raw = Array.isArray(lp.content)
    ? lp.content.map((t) => t?.logprob)
    : Array.isArray(lp.token_logprobs)
      ? lp.token_logprobs
      : [];
  return raw.filter((x): x is number => typeof x === "number");
}

function stripLogprobs(payload: Json): Json {
  if (!Array.isArray(payload.choices)) return payload;
  return {
    ...payload,
    choices: payload.choices.map((c) =>
      c && typeof c === "object" ? { ...(c as Json), logprobs: null } : c,
    ),
  };
}

export class CascadeServer {
  private readonly agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
  /** The hop header's value: only this process's own hops carry it. */
  private readonly hopToken = randomUUID();

  constructor(private readonly options: CascadeServerOptions) {}

  close(): void {
    this.agent.destroy();
  }

  /**
   * The alias a request is a step of, when it is this process's own hop (the hop token proves it; a
   * client cannot forge it), else undefined.
   */
  aliasOf(req: IncomingMessage): string | undefined {
    if (req.headers[HEADER_HOP] !== this.hopToken) return undefined;
    const alias = req.headers[HEADER_ALIAS];
    return typeof alias === "string" && alias.length > 0 && alias.length <= 253 ? alias : undefined;
  }

  /** Serves `model` as a cascade alias; false when it is not one (the caller answers 404). */
  serve(request: CascadeRequest): boolean {
    if (request.req.headers[HEADER_HOP] === this.hopToken) return false;
    const resolved = this.options.resolve(request.model);
    if (!resolved) return false;
    if (!resolved.ok) {
      this.sendError(request.res, new GatewayError("no_capacity", resolved.message, 10));
      return true;
    }
    let parsed: Json;
    try {
      parsed = JSON.parse(request.body.toString("utf8")) as Json;
    } catch {
      this.sendError(
        request.res,
        new GatewayError("invalid_json", "We could not parse the JSON body of your request."),
      );
      return true;
    }
    const chat = request.path === "/v1/chat/completions";
    const stream = parsed.stream === true;
    const tier = request.tier ?? this.options.tierOf?.(request.req);
    const text = promptTextOf(parsed, chat);
    const promptTokens = estimateTokens(text.length);
    const classifier = resolved.rules.promptClassifier;
    const features: PromptFeatures = {
      promptTokens,
      stream,
      ...(tier !== undefined ? { tier } : {}),
      ...(classifier ? { classifierScore: classifierScore(promptWords(text), promptTokens, classifier) } : {}),
    };
    const start = startStep(features, resolved.rules);
    const reason =
      start.reason === "first" && stream && !start.gated && resolved.rules.confidence
        ? "stream-first"
        : start.reason;
    this.attempt(request, resolved.rules, parsed, chat, stream, start.step, start.gated, reason, undefined, keepThreshold(resolved.rules, features));
    return true;
  }

  private attempt(
    request: CascadeRequest,
    rules: CascadeRules,
    parsed: Json,
    chat: boolean,
    stream: boolean,
    step: number,
    gated: boolean,
    reason: string,
    confidence?: number,
    /** The confidence an answer needs (the gate's minLogprob, moved by the prompt classifier). */
    threshold = rules.confidence?.minLogprob ?? 0,
  ): void {
    const model = (rules.steps[step] as { model: string }).model;
    const last = step >= rules.steps.length - 1;
    const extra: Record<string, string> = { [HEADER_MODEL]: model, [HEADER_CASCADE]: reason };
    if (confidence !== undefined) extra[HEADER_CONFIDENCE] = confidence.toFixed(4);
    if (!gated || last || !rules.confidence) {
      this.passThrough(request, { ...parsed, model }, extra);
      return;
    }
    const gate = rules.confidence;
    const clientWantsLogprobs = chat ? parsed.logprobs === true : typeof parsed.logprobs === "number";
    const body: Json = {
      ...parsed,
      model,
      logprobs: chat ? true : Math.max(0, Number(parsed.logprobs) || 0),
    };
    const escalate = (c: number | undefined) =>
      this.attempt(request, rules, parsed, chat, stream, step + 1, true, "low-confidence", c, threshold);
    const upstream = this.hop(request, body, (up) => {
      const status = up.statusCode ?? 502;
      if (status !== 200) {
        // The step refused (limits, no capacity): its answer goes to the client as it is.
        this.relay(request.res, up, extra);
        return;
      }
      if (!stream) {
        this.readAll(up, (text) => {
          let payload: Json;
          try {
            payload = JSON.parse(text) as Json;
          } catch {
            this.sendError(
              request.res,
              new GatewayError("upstream_error", "The engine's answer was not JSON."),
            );
            return;
          }
          const c = confidenceOf(
            choiceLogprobs((payload.choices as unknown[] | undefined)?.[0]),
            gate.metric,
            gate.firstTokens,
          );
          if (!keepAnswer(c, threshold)) return escalate(c);
          const out = JSON.stringify(clientWantsLogprobs ? payload : stripLogprobs(payload));
          this.writeHead(
            request.res,
            200,
            up,
            {
              ...extra,
              [HEADER_CASCADE]: "confident",
              ...(c !== undefined ? { [HEADER_CONFIDENCE]: c.toFixed(4) } : {}),
            },
            Buffer.byteLength(out),
          );
          request.res.end(out);
        });
        return;
      }
      this.holdStream(request, up, gate, threshold, clientWantsLogprobs, extra, escalate);
    });
    request.res.once("close", () => {
      if (!request.res.writableFinished) upstream.destroy();
    });
  }

  /** Streams the small model's events, held until the gate has its tokens; then keep or escalate. */
  private holdStream(
    request: CascadeRequest,
    up: IncomingMessage,
    gate: NonNullable<CascadeRules["confidence"]>,
    threshold: number,
    clientWantsLogprobs: boolean,
    extra: Record<string, string>,
    escalate: (c: number | undefined) => void,
  ): void {
    const { res } = request;
    const framer = new SseFramer();
    const held: string[] = [];
    const logprobs: number[] = [];
    let decided = false;
    let kept = false;
    const rewrite = (event: string): string => {
      if (clientWantsLogprobs) return event;
      const m = /^data: (.*)$/m.exec(event);
      if (!m || m[1] === "[DONE]") return event;
      try {
        return `data: ${JSON.stringify(stripLogprobs(JSON.parse(m[1] as string) as Json))}\n\n`;
      } catch {
        return event;
      }
    };
    const decide = () => {
      if (decided) return;
      decided = true;
      const c = confidenceOf(logprobs, gate.metric, gate.firstTokens);
      if (!keepAnswer(c, threshold)) {
        up.destroy();
        escalate(c);
        return;
      }
      kept = true;
      this.writeHead(res, 200, up, {
        ...extra,
        [HEADER_CASCADE]: "confident",
        ...(c !== undefined ? { [HEADER_CONFIDENCE]: c.toFixed(4) } : {}),
      });
      for (const event of held) res.write(rewrite(event));
      held.length = 0;
    };
    const onEvents = (bytes: Buffer) => {
      if (bytes.length === 0) return;
      const events = bytes.toString("utf8").split(/(?<=\n\n)/);
      for (const event of events) {
        if (event.trim() === "") continue;
        if (kept) {
          if (!res.write(rewrite(event))) {
            up.pause();
            res.once("drain", () => up.resume());
          }
          continue;
        }
        held.push(event);
        const m = /^data: (.*)$/m.exec(event);
        if (m && m[1] !== "[DONE]") {
          try {
            const payload = JSON.parse(m[1] as string) as Json;
            logprobs.push(...choiceLogprobs((payload.choices as unknown[] | undefined)?.[0]));
          } catch {
            // not JSON: held and passed on as it is
          }
        }
        if (logprobs.length >= gate.firstTokens) decide();
        if (decided && !kept) return;
      }
    };
    up.on("data", (chunk: Buffer) => {
      try {
        onEvents(framer.push(chunk));
      } catch {
        up.destroy();
        if (!res.headersSent)
          this.sendError(res, new GatewayError("upstream_error", "The engine's stream was malformed."));
        else res.destroy();
      }
    });
    up.on("end", () => {
      if (decided && !kept) return;
      onEvents(framer.flush());
      decide(); // a short answer: decided on the tokens there are
      if (kept) res.end();
    });
    up.on("error", () => undefined);
    up.on("close", () => {
      if (!up.complete && kept && !res.writableFinished) res.destroy();
    });
  }

  /** Sends the request for one step through the gateway and relays the answer as it comes. */
  private passThrough(request: CascadeRequest, body: Json, extra: Record<string, string>): void {
    const upstream = this.hop(request, body, (up) => this.relay(request.res, up, extra));
    request.res.once("close", () => {
      if (!request.res.writableFinished) upstream.destroy();
    });
  }

  private relay(res: ServerResponse, up: IncomingMessage, extra: Record<string, string>): void {
    const length =
      typeof up.headers["content-length"] === "string" ? Number(up.headers["content-length"]) : undefined;
    this.writeHead(res, up.statusCode ?? 502, up, extra, length);
    up.pipe(res);
    up.on("error", () => undefined);
    up.on("close", () => {
      if (!up.complete && !res.writableFinished) res.destroy();
    });
  }

  private writeHead(
    res: ServerResponse,
    status: number,
    up: IncomingMessage,
    extra: Record<string, string>,
    contentLength?: number,
  ): void {
    if (res.headersSent || res.destroyed) return;
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(up.headers))
      if (!HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value;
    Object.assign(headers, extra);
    if (contentLength !== undefined && Number.isFinite(contentLength))
      headers["content-length"] = contentLength;
    res.writeHead(status, headers);
  }

  private readAll(up: IncomingMessage, done: (text: string) => void): void {
    const chunks: Buffer[] = [];
    let size = 0;
    up.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) {
        up.destroy();
        return;
      }
      chunks.push(chunk);
    });
    up.on("error", () => undefined);
    up.on("end", () => done(Buffer.concat(chunks).toString("utf8")));
  }

  private hop(
    request: CascadeRequest,
    body: Json,
    onResponse: (up: IncomingMessage) => void,
  ): http.ClientRequest {
    const { host, port } = this.options.self();
    const payload = Buffer.from(JSON.stringify(body));
    const headers: http.OutgoingHttpHeaders = {
      "content-type": "application/json",
      "content-length": payload.length,
      [HEADER_HOP]: this.hopToken,
      [HEADER_ALIAS]: request.model,
    };
    for (const name of ["accept", "authorization", "x-request-id", "x-session-id"])
      if (typeof request.req.headers[name] === "string") headers[name] = request.req.headers[name];
    const upstream = http.request(
      { host, port, method: "POST", path: request.path, agent: this.agent, headers },
      onResponse,
    );
    upstream.on("error", (err) => {
      log.warn({ err: err.message }, "cascade hop failed");
      this.sendError(
        request.res,
        new GatewayError("upstream_error", "The gateway could not reach the cascade's model."),
      );
    });
    upstream.end(payload);
    return upstream;
  }

  private sendError(res: ServerResponse, error: GatewayError): void {
    sendErrorResponse(res, error);
  }
}
