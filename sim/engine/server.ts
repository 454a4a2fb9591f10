/**
 * A simulated inference engine behind a real HTTP server (node:http), indistinguishable from outside
 * for what gpufleet and its load generator use:
 *
 *   POST /v1/completions, /v1/chat/completions   OpenAI-compatible; `stream: true` → SSE `data:` chunks
 *                                                 then `data: [DONE]`; `usage` token counts
 *   GET  /v1/models                               the served model and its LoRA adapters
 *   POST /v1/load_lora_adapter, /v1/unload_lora_adapter   vLLM's runtime LoRA routes (sim/engine/adapters.ts)
 *   GET  /health                                  200 once "loaded" (after `loadDelayMs`), 503 before
 *   GET  /metrics                                 vLLM: Prometheus text (vllm:* names, model_name label)
 *   GET  /prometheus/metrics                      trtllm-serve: Prometheus text (trtllm_* names);
 *                                                 its /metrics is JSON iteration stats, as the real one
 *
 * The engine itself is sim/engine/model.ts's EngineModel, advanced by wall-clock time (scaled by
 * `timeScale`) with one timer armed for the model's next event. Prompt tokens are approximated as
 * ceil(characters / 4), or taken from a non-standard `prompt_token_count` field when present.
 * Prefix caching sees the prompt the way the gateway does: the text (chat messages flattened) hashed
 * in 256-character blocks of ~64 tokens (gateway/routing/prefix.ts), or explicit block ids in the
 * non-standard `prefix_hash_ids` (at most 4096 integers) of `prefix_block_tokens` tokens each (default
 * 512, the Mooncake trace's block), for trace replays that carry no text.
 * vLLM's `priority` request field (lower first, default 0) orders the waiting queue when the engine
 * runs with `schedulingPolicy: "priority"` (`--scheduling-policy priority`); otherwise a non-zero one is
 * refused with 400, as vLLM refuses it ("Got priority … but Priority scheduling is not enabled.").
 * Fault knobs (`setFaults`) make /metrics slow, broken, failing, redirecting or huge, for scraper tests,
 * and can make the engine die in the middle of a streamed answer, for the gateway's.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type MetricFamily, serializeExposition } from "../../operator/metrics/exposition.js";
import {
  DEFAULT_BLOCK_CHARS,
  chainIds,
  flattenChat,
  promptBlockHashes,
} from "../../gateway/routing/prefix.js";
import {
  type EngineEvent,
  EngineModel,
  type EngineParams,
  type EngineSnapshot,
  type PromptPrefix,
  type SchedulingPolicy,
} from "./model.js";
import { AdapterError, type LoraOptions, SimAdapters } from "./adapters.js";

export type SimEngineKind = "vllm" | "tensorrt-llm" | "sglang";

export interface EngineFaults {
  /** Delay every metrics response by this long (longer than a scraper's timeout → timeout). */
  metricsDelayMs?: number;
  /** Serve text that is not the exposition format. */
  garbageMetrics?: boolean;
  /** Answer metrics with this HTTP status instead of 200. */
  metricsStatus?: number;
  /** Answer metrics with a 302 to this URL (a scraper that follows it is steered by the engine image). */
  metricsRedirectTo?: string;
  /** Answer metrics with a valid-looking body of this many bytes (comment lines), streamed. */
  hugeMetricsBytes?: number;
  /**
   * The engine process dies mid-request: once a streamed answer has written this many chunks, every
   * connection is cut and the port stops listening (the pod stays Ready: Kubernetes has not noticed yet).
   */
  dieMidStreamAfterChunks?: number;
}

/** The comment line a huge metrics body repeats (1 KiB). */
const HUGE_METRICS_LINE = `# ${"x".repeat(1021)}\n`;

export interface EngineServerOptions {
  /** Address to bind: a loopback address such as a KWOK pod IP (127.x.y.z). */
  host: string;
  /** 0 picks a free port. */
  port: number;
  engine: SimEngineKind;
  /** Served model name (OpenAI `model`, metrics `model_name`). */
  modelName: string;
  params: EngineParams;
  /** Simulated model load time before /health turns 200 and requests are served. */
  loadDelayMs?: number;
  /** Simulated milliseconds per real millisecond (default 1). */
  timeScale?: number;
  faults?: EngineFaults;
  /** vLLM with --enable-lora: adapters, slots, runtime updates (sim/engine/adapters.ts). */
  lora?: LoraOptions;
  /** vLLM's --scheduling-policy (default fcfs); the other engines ignore it. */
  schedulingPolicy?: SchedulingPolicy;
  /**
   * Per-request confidences (natural-log probability per token) for answers asked for `logprobs`: a
   * request draws one by a hash of its prompt (the same prompt, the same confidence), and every token of
   * its answer carries it. E.g. a data set's per-prompt confidences (`npm run bench:cascade -- --write-csv`).
   * Unset: every token has logprob DEFAULT_TOKEN_LOGPROB.
   */
  confidences?: readonly number[];
}

/** A token's logprob when the engine has no confidence table (a confident model). */
export const DEFAULT_TOKEN_LOGPROB = -0.05;

/** FNV-1a of the prompt text: which confidence of the table a request draws. */
export function confidenceIndex(promptText: string, tableSize: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < promptText.length; i++) {
    h ^= promptText.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return tableSize > 0 ? h % tableSize : 0;
}

/** The logprob each token of a request's answer carries. */
export function tokenLogprobFor(promptText: string, confidences: readonly number[] | undefined): number {
  if (!confidences || confidences.length === 0) return DEFAULT_TOKEN_LOGPROB;
  const value = confidences[confidenceIndex(promptText, confidences.length)] as number;
  return Number.isFinite(value) ? Math.min(0, value) : DEFAULT_TOKEN_LOGPROB;
}

/** The prompt's text as the engine sees it for confidence draws (chat messages flattened). */
export function promptTextOf(body: Record<string, unknown>, chat: boolean): string {
  if (chat) return Array.isArray(body.messages) ? flattenChat(body.messages as never[], 64 * 1024) : "";
  if (typeof body.prompt === "string") return body.prompt;
  if (Array.isArray(body.prompt) && typeof body.prompt[0] === "string") return body.prompt[0];
  return "";
}

// Bucket bounds of vLLM's vllm:time_to_first_token_seconds (vllm/v1/metrics/loggers.py; TensorRT-LLM's
// MetricsCollector copies them for trtllm_time_to_first_token_seconds).
export const TTFT_BUCKETS_SECONDS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
  80.0, 160.0, 640.0, 2560.0,
];

/** ~4 characters per token: the usual rule of thumb for English text with BPE tokenizers. */
export function approximateTokenCount(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

interface ChatMessage {
  role?: unknown;
  content?: unknown;
}

function messageText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((part) =>
        typeof part === "object" && part !== null && typeof (part as { text?: unknown }).text === "string"
          ? (part as { text: string }).text
          : "",
      )
      .join("");
  }
  return "";
}

/** Prompt tokens of a completions/chat body (per-message overhead of 4 tokens for the chat template). */
export function promptTokensOf(body: Record<string, unknown>, chat: boolean): number {
  const override = body.prompt_token_count;
  if (typeof override === "number" && Number.isInteger(override) && override > 0) return override;
  if (chat) {
    const messages = Array.isArray(body.messages) ? (body.messages as ChatMessage[]) : [];
    let tokens = 0;
    for (const message of messages) tokens += 4 + approximateTokenCount(messageText(message.content));
    return Math.max(1, tokens);
  }
  const prompt = body.prompt;
  if (typeof prompt === "string") return approximateTokenCount(prompt);
  if (Array.isArray(prompt) && prompt.every((t) => typeof t === "number")) return Math.max(1, prompt.length);
  if (Array.isArray(prompt) && typeof prompt[0] === "string") return approximateTokenCount(prompt[0]);
  return 1;
}

const MAX_PREFIX_IDS = 4096;

/** The prompt's block identities for prefix caching (see the file header), or undefined. */
export function promptPrefixOf(body: Record<string, unknown>, chat: boolean): PromptPrefix | undefined {
  const ids = body.prefix_hash_ids;
  if (Array.isArray(ids)) {
    if (ids.length > MAX_PREFIX_IDS || !ids.every((x) => typeof x === "number" && Number.isSafeInteger(x)))
      throw new HttpError(400, `prefix_hash_ids must be at most ${MAX_PREFIX_IDS} integers`);
    const rawTokens = body.prefix_block_tokens ?? 512;
    if (typeof rawTokens !== "number" || !Number.isInteger(rawTokens) || rawTokens < 1 || rawTokens > 65536)
      throw new HttpError(400, "prefix_block_tokens must be an integer in 1..65536");
    return { blockHashes: chainIds(ids as number[]), blockTokens: rawTokens };
  }
  let text: string | undefined;
  if (chat && Array.isArray(body.messages)) text = flattenChat(body.messages as ChatMessage[]);
  else if (typeof body.prompt === "string") text = body.prompt;
  else if (Array.isArray(body.prompt) && typeof body.prompt[0] === "string") text = body.prompt[0];
  if (text === undefined) return undefined;
  // ~4 characters per token, as approximateTokenCount.
  return { blockHashes: promptBlockHashes(text), blockTokens: DEFAULT_BLOCK_CHARS / 4 };
}

const WORDS = [" the", " model", " says", " hello", " to", " a", " simulated", " fleet", " of", " GPUs"];
const tokenText = (index: number) => WORDS[index % WORDS.length] as string;

interface PendingRequest {
  onEvent: (event: EngineEvent) => void;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = "BadRequestError",
  ) {
    super(message);
  }
}

/** A builder of one-sample metric families of one type, all with the same labels. */
function singleSample(type: "gauge" | "counter", labels: Record<string, string>) {
  return (name: string, help: string, value: number): MetricFamily => ({
    name,
    type,
    help,
    samples: [{ name, labels, value }],
  });
}

export class EngineServer {
  readonly model: EngineModel;
  private readonly server: Server;
  private readonly startedAt = performance.now();
  private readonly timeScale: number;
  private readonly pending = new Map<string, PendingRequest>();
  private timer: NodeJS.Timeout | undefined;
  private faults: EngineFaults;
  private readonly ttftBucketCounts = new Array<number>(TTFT_BUCKETS_SECONDS.length + 1).fill(0);
  private closed = false;
  private boundPort = 0;
  readonly adapters: SimAdapters | undefined;

  constructor(readonly options: EngineServerOptions) {
    this.model = new EngineModel(options.params, {
      schedulingPolicy: options.engine === "vllm" ? (options.schedulingPolicy ?? "fcfs") : "fcfs",
    });
    this.timeScale = options.timeScale ?? 1;
    this.faults = { ...options.faults };
    this.adapters = options.lora && options.engine === "vllm" ? new SimAdapters(options.lora) : undefined;
    this.server = createServer((req, res) => {
      this.route(req, res).catch((error: unknown) => this.sendError(res, error));
    });
    this.server.keepAliveTimeout = 5_000;
  }

  get url(): string {
    return `http://${this.options.host}:${this.boundPort}`;
  }

  get port(): number {
    return this.boundPort;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.boundPort = (this.server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /**
   * A pod's preStop drain (operator/render/common.ts): stops taking connections, lets the requests in
   * flight finish (at most `maxMs`), then closes. The port is free again at once.
   */
  async drain(maxMs: number): Promise<void> {
    this.server.close();
    this.server.closeIdleConnections();
    const deadline = performance.now() + maxMs;
    while (this.pending.size > 0 && !this.closed && performance.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100));
    if (!this.closed) await this.close();
  }

  setFaults(faults: EngineFaults): void {
    this.faults = { ...faults };
  }

  isLoaded(): boolean {
    return performance.now() - this.startedAt >= (this.options.loadDelayMs ?? 0);
  }

  /** Current simulated time, ms. */
  nowMs(): number {
    return (performance.now() - this.startedAt) * this.timeScale;
  }

  /** Advances the model to now, dispatches its events and re-arms the timer. */
  pump(): EngineSnapshot {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const events = this.model.advanceTo(this.nowMs());
    for (const event of events) this.pending.get(event.requestId)?.onEvent(event);
    this.drainSamples();
    const next = this.model.nextEventAtMs();
    if (next !== null && !this.closed) {
      const delay = Math.max(0, (next - this.nowMs()) / this.timeScale);
      this.timer = setTimeout(() => this.pump(), Math.ceil(delay));
    }
    return this.model.snapshot(this.nowMs());
  }

  private drainSamples(): void {
    for (const ttft of this.model.takeSamples().ttftSeconds) {
      let bucket = TTFT_BUCKETS_SECONDS.findIndex((bound) => ttft <= bound);
      if (bucket === -1) bucket = TTFT_BUCKETS_SECONDS.length;
      this.ttftBucketCounts[bucket] = (this.ttftBucketCounts[bucket] ?? 0) + 1;
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const method = req.method ?? "GET";
    const trtllm = this.options.engine === "tensorrt-llm";
    if (method === "GET" && path === "/health") {
      res.statusCode = this.isLoaded() ? 200 : 503;
      res.end();
      return;
    }
    if (
      method === "GET" &&
      ((path === "/metrics" && !trtllm) || (path === "/prometheus/metrics" && trtllm))
    ) {
      await this.serveMetrics(res);
      return;
    }
    if (method === "GET" && path === "/metrics" && trtllm) {
      this.sendJson(res, 200, [this.iterationStats()]);
      return;
    }
    if (method === "GET" && path === "/v1/models") {
      this.sendJson(res, 200, {
        object: "list",
        data: [
          {
            id: this.options.modelName,
            object: "model",
            created: Math.floor(Date.now() / 1000),
            owned_by: trtllm ? "tensorrt_llm" : this.options.engine === "sglang" ? "sglang" : "vllm",
            max_model_len: this.options.params.maxModelLenTokens,
          },
          ...(this.adapters?.list() ?? []).map((adapter) => ({
            id: adapter.name,
            object: "model",
            created: Math.floor(Date.now() / 1000),
            owned_by: "vllm",
            root: adapter.path,
            parent: this.options.modelName,
          })),
        ],
      });
      return;
    }
    if (
      method === "POST" &&
      (path === "/v1/load_lora_adapter" || path === "/v1/unload_lora_adapter") &&
      this.adapters?.options.runtimeUpdates
    ) {
      const body = await readJson(req, 64 * 1024);
      try {
        if (path === "/v1/load_lora_adapter") this.adapters.load(body.lora_name, body.lora_path);
        else this.adapters.unload(body.lora_name);
      } catch (error) {
        if (error instanceof AdapterError) throw new HttpError(error.status, error.message, error.type);
        throw error;
      }
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(
        `Success: LoRA adapter '${String(body.lora_name)}' ${path === "/v1/load_lora_adapter" ? "added" : "removed"} successfully.`,
      );
      return;
    }
    if (method === "POST" && (path === "/v1/completions" || path === "/v1/chat/completions")) {
      await this.serveCompletion(req, res, path === "/v1/chat/completions");
      return;
    }
    throw new HttpError(404, `no route for ${method} ${path}`, "NotFoundError");
  }

  private async serveCompletion(req: IncomingMessage, res: ServerResponse, chat: boolean): Promise<void> {
    if (!this.isLoaded()) throw new HttpError(503, "model is still loading", "ServiceUnavailableError");
    const body = await readJson(req);
    const adapter =
      typeof body.model === "string" &&
      body.model !== this.options.modelName &&
      this.adapters?.has(body.model)
        ? body.model
        : undefined;
    if (typeof body.model === "string" && body.model !== this.options.modelName && !adapter) {
      throw new HttpError(404, `The model \`${body.model.slice(0, 256)}\` does not exist.`, "NotFoundError");
    }
    const responseModel = adapter ?? this.options.modelName;
    if (chat && !Array.isArray(body.messages)) throw new HttpError(400, "messages must be an array");
    if (!chat && body.prompt === undefined) throw new HttpError(400, "prompt is required");
    const rawMax = body.max_completion_tokens ?? body.max_tokens ?? 16;
    if (typeof rawMax !== "number" || !Number.isInteger(rawMax) || rawMax < 1)
      throw new HttpError(400, "max_tokens must be a positive integer");
    const priority = this.options.engine === "vllm" ? requestPriorityOf(body, this.model.schedulingPolicy) : 0;
    const promptTokens = promptTokensOf(body, chat);
    const prefix = promptPrefixOf(body, chat);
    const stream = body.stream === true;
    const includeUsage =
      stream &&
      typeof body.stream_options === "object" &&
      body.stream_options !== null &&
      (body.stream_options as { include_usage?: unknown }).include_usage === true;
    // OpenAI/vLLM: chat asks with `logprobs: true`, completions with `logprobs: <n>` (0 included).
    const wantLogprobs = chat
      ? body.logprobs === true
      : typeof body.logprobs === "number" && body.logprobs >= 0;
    const tokenLogprob = wantLogprobs
      ? tokenLogprobFor(promptTextOf(body, chat), this.options.confidences)
      : 0;
    const logprobsOf = (tokens: readonly string[]) => {
      if (!wantLogprobs) return null;
      return chat
        ? {
            content: tokens.map((token) => ({
              token,
              logprob: tokenLogprob,
              bytes: [...Buffer.from(token)],
              top_logprobs: [],
            })),
          }
        : {
            tokens: [...tokens],
            token_logprobs: tokens.map(() => tokenLogprob),
            top_logprobs: null,
            text_offset: [],
          };
    };
    const id = `${chat ? "chatcmpl" : "cmpl"}-${randomUUID().replace(/-/g, "")}`;
    const created = Math.floor(Date.now() / 1000);
    const object = chat ? "chat.completion" : "text_completion";
    const usage = (completion: number) => ({
      prompt_tokens: promptTokens,
      completion_tokens: completion,
      total_tokens: promptTokens + completion,
    });

    let text = "";
    let finished = false;
    let rejection: HttpError | undefined;
    const chunk = (choice: Record<string, unknown>) =>
      `data: ${JSON.stringify({ id, object: chat ? "chat.completion.chunk" : "text_completion", created, model: responseModel, choices: [choice] })}\n\n`;
    const piece = (tokenIndex: number, finishReason: string | null) =>
      chat
        ? {
            index: 0,
            delta: { content: tokenText(tokenIndex) },
            logprobs: logprobsOf([tokenText(tokenIndex)]),
            finish_reason: finishReason,
          }
        : {
            index: 0,
            text: tokenText(tokenIndex),
            logprobs: logprobsOf([tokenText(tokenIndex)]),
            finish_reason: finishReason,
            stop_reason: null,
          };
    let chunksWritten = 0;
    const write = (data: string) => {
      if (res.destroyed) return;
      this.ensureStreamHeaders(res);
      const dieAfter = this.faults.dieMidStreamAfterChunks;
      // Dies once this chunk has left (so the client has seen part of the answer).
      if (dieAfter !== undefined && ++chunksWritten >= dieAfter) res.write(data, () => setTimeout(() => void this.close(), 20));
      else res.write(data);
    };

    let adapterRunning = false;
    let adapterSettled = !adapter;
    const settleAdapter = () => {
      if (adapterSettled || !adapter) return;
      adapterSettled = true;
      this.adapters?.finished(adapter, adapterRunning);
    };
    // An adapter outside the GPU slots is swapped in first (the cost adapter affinity avoids).
    if (adapter && this.adapters?.admit(adapter))
      await new Promise((resolve) => setTimeout(resolve, this.adapters!.swapMs / this.timeScale));
    let settle = () => {};
    const done = new Promise<void>((resolve) => {
      settle = resolve;
      this.pending.set(id, {
        onEvent: (event) => {
          if (event.kind === "rejected") {
            rejection = new HttpError(
              400,
              `This model's maximum context length is ${this.options.params.maxModelLenTokens} tokens; the request needs ${promptTokens + rawMax}.`,
            );
            resolve();
            return;
          }
          if (event.kind === "first-token" && adapter && !adapterRunning) {
            adapterRunning = true;
            this.adapters?.started(adapter);
          }
          if (event.kind === "first-token" || event.kind === "token") {
            text += tokenText(event.tokenIndex);
            if (!stream) return;
            if (event.kind === "first-token" && chat)
              write(
                chunk({
                  index: 0,
                  delta: { role: "assistant", content: "" },
                  logprobs: null,
                  finish_reason: null,
                }),
              );
            // The last token's chunk carries finish_reason; it is written when `finished` arrives.
            if (event.tokenIndex < rawMax - 1) write(chunk(piece(event.tokenIndex, null)));
            return;
          }
          finished = true;
          if (stream) {
            write(chunk(piece(rawMax - 1, "length")));
            if (includeUsage) {
              write(
                `data: ${JSON.stringify({ id, object: chat ? "chat.completion.chunk" : "text_completion", created, model: responseModel, choices: [], usage: usage(event.tokenIndex) })}\n\n`,
              );
            }
            write("data: [DONE]\n\n");
          }
          resolve();
        },
      });
    });
    // A client that goes away: the engine stops working on the request (vLLM aborts it), so its
    // batch slot and KV blocks go to the others at once.
    res.on("close", () => {
      if (finished) return;
      settleAdapter();
      this.pending.delete(id);
      this.pump();
      if (this.model.abort(id)) this.pump();
      settle();
    });

    this.pump();
    this.model.enqueue({
      id,
      promptTokens,
      maxOutputTokens: rawMax,
      arrivalMs: this.nowMs(),
      ...(prefix === undefined ? {} : { prefix }),
      ...(priority === 0 ? {} : { priority }),
    });
    // Rejections are emitted synchronously by enqueue; this pump delivers them and arms the timer.
    this.pump();
    if (stream && rejection === undefined) this.ensureStreamHeaders(res);
    await done;
    settleAdapter();
    this.pending.delete(id);
    if (rejection) throw rejection;
    if (!finished) return; // client went away

    if (stream) {
      res.end();
      return;
    }
    const completion = rawMax;
    const tokens = Array.from({ length: rawMax }, (_, i) => tokenText(i));
    const choice = chat
      ? {
          index: 0,
          message: { role: "assistant", content: text },
          logprobs: logprobsOf(tokens),
          finish_reason: "length",
        }
      : { index: 0, text, logprobs: logprobsOf(tokens), finish_reason: "length", stop_reason: null };
    this.sendJson(res, 200, {
      id,
      object,
      created,
      model: responseModel,
      choices: [choice],
      usage: usage(completion),
    });
  }

  /** Writes SSE headers lazily: only a request that gets tokens becomes a stream. */
  private ensureStreamHeaders(res: ServerResponse): void {
    if (!res.headersSent)
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  }

  private async serveMetrics(res: ServerResponse): Promise<void> {
    const faults = this.faults;
    if (faults.metricsDelayMs) await new Promise((resolve) => setTimeout(resolve, faults.metricsDelayMs));
    if (res.destroyed) return;
    if (faults.metricsRedirectTo) {
      res.writeHead(302, { location: faults.metricsRedirectTo });
      res.end();
      return;
    }
    if (faults.hugeMetricsBytes) {
      res.setHeader("content-type", "text/plain; version=0.0.4; charset=utf-8");
      const block = HUGE_METRICS_LINE.repeat(64);
      let left = faults.hugeMetricsBytes;
      // Written with backpressure until done or the client gives up (a bounded reader closes the socket).
      while (left > 0 && !res.destroyed) {
        const piece = left >= block.length ? block : block.slice(0, left);
        left -= piece.length;
        if (!res.write(piece))
          await new Promise<void>((resolve) => {
            const go = () => {
              res.off("drain", go);
              res.off("close", go);
              resolve();
            };
            res.on("drain", go);
            res.on("close", go);
          });
      }
      res.end();
      return;
    }
    if (faults.metricsStatus !== undefined && faults.metricsStatus !== 200) {
      res.statusCode = faults.metricsStatus;
      res.end("simulated metrics failure\n");
      return;
    }
    res.setHeader("content-type", "text/plain; version=0.0.4; charset=utf-8");
    if (faults.garbageMetrics) {
      res.end('<html><body>{"not": "metrics"} vllm:num_requests_running{model_name= 1 2 3</body></html>\n');
      return;
    }
    const snapshot = this.pump();
    res.end(
      serializeExposition(
        this.options.engine === "vllm"
          ? this.vllmFamilies(snapshot)
          : this.options.engine === "sglang"
            ? this.sglangFamilies(snapshot)
            : this.trtllmFamilies(snapshot),
      ),
    );
  }

  private histogram(
    name: string,
    help: string,
    labels: Record<string, string>,
    sum: number,
    count: number,
  ): MetricFamily {
    let cumulative = 0;
    const samples = TTFT_BUCKETS_SECONDS.map((bound, i) => {
      cumulative += this.ttftBucketCounts[i] ?? 0;
      return { name: `${name}_bucket`, labels: { ...labels, le: String(bound) }, value: cumulative };
    });
    samples.push({ name: `${name}_bucket`, labels: { ...labels, le: "+Inf" }, value: count });
    return {
      name,
      type: "histogram",
      help,
      samples: [
        ...samples,
        { name: `${name}_sum`, labels, value: sum },
        { name: `${name}_count`, labels, value: count },
      ],
    };
  }

  private vllmFamilies(s: EngineSnapshot): MetricFamily[] {
    // vLLM V1 labels every series with model_name and engine (the data-parallel rank).
    const labels = { engine: "0", model_name: this.options.modelName };
    const gauge = singleSample("gauge", labels);
    const counter = singleSample("counter", labels);
    return [
      gauge("vllm:num_requests_running", "Number of requests in model execution batches.", s.requestsRunning),
      gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", s.requestsWaiting),
      gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", s.kvCacheUtilization),
      counter(
        "vllm:num_preemptions_total",
        "Cumulative number of preemption from the engine.",
        s.requestsPreemptedTotal,
      ),
      counter("vllm:prompt_tokens_total", "Number of prefill tokens processed.", s.promptTokensTotal),
      // vLLM v1 declares these Counters as vllm:prefix_cache_queries / _hits; prometheus_client
      // exposes a Counter with the _total suffix.
      counter(
        "vllm:prefix_cache_queries_total",
        "Prefix cache queries, in terms of number of queried tokens.",
        s.prefixCacheQueriesTotal,
      ),
      counter(
        "vllm:prefix_cache_hits_total",
        "Prefix cache hits, in terms of number of cached tokens.",
        s.prefixCacheHitsTotal,
      ),
      counter(
        "vllm:generation_tokens_total",
        "Number of generation tokens processed.",
        s.generationTokensTotal,
      ),
      {
        name: "vllm:request_success_total",
        type: "counter",
        help: "Count of successfully processed requests.",
        samples: [
          {
            name: "vllm:request_success_total",
            labels: { ...labels, finished_reason: "length" },
            value: s.requestsFinishedTotal,
          },
        ],
      },
      this.histogram(
        "vllm:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        labels,
        s.ttftSecondsSum,
        s.ttftSecondsCount,
      ),
      ...(this.adapters?.families(Date.now() / 1000) ?? []),
    ];
  }

  /** SGLang's SchedulerMetricsCollector / TokenizerMetricsCollector names (python/sglang/srt/metrics/collector.py). */
  private sglangFamilies(s: EngineSnapshot): MetricFamily[] {
    const labels = { model_name: this.options.modelName, tp_rank: "0", pp_rank: "0" };
    const gauge = singleSample("gauge", labels);
    const counter = singleSample("counter", { model_name: this.options.modelName });
    return [
      gauge("sglang:num_running_reqs", "The number of running requests.", s.requestsRunning),
      gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue.", s.requestsWaiting),
      gauge("sglang:token_usage", "The token usage.", s.kvCacheUtilization),
      counter("sglang:prompt_tokens_total", "Number of prefill tokens processed.", s.promptTokensTotal),
      counter(
        "sglang:generation_tokens_total",
        "Number of generation tokens processed.",
        s.generationTokensTotal,
      ),
      this.histogram(
        "sglang:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        { model_name: this.options.modelName },
        s.ttftSecondsSum,
        s.ttftSecondsCount,
      ),
    ];
  }

  private trtllmFamilies(s: EngineSnapshot): MetricFamily[] {
    // Names and labels of TensorRT-LLM's MetricsCollector (tensorrt_llm/metrics/collector.py).
    const labels = { engine_type: "trtllm", model_name: this.options.modelName };
    const gauge = singleSample("gauge", labels);
    const counter = singleSample("counter", labels);
    return [
      gauge("trtllm_kv_cache_utilization", "KV cache utilization", s.kvCacheUtilization),
      gauge("trtllm_num_requests_running", "Number of active requests", s.requestsRunning),
      gauge("trtllm_num_requests_waiting", "Number of queued requests", s.requestsWaiting),
      counter(
        "trtllm_prompt_tokens_total",
        "Cumulative number of prompt (input) tokens processed.",
        s.promptTokensTotal,
      ),
      counter(
        "trtllm_generation_tokens_total",
        "Cumulative number of generation (output) tokens produced.",
        s.generationTokensTotal,
      ),
      counter(
        "trtllm_num_requests_completed_total",
        "Total number of completed requests across iterations",
        s.requestsFinishedTotal,
      ),
      this.histogram(
        "trtllm_time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        labels,
        s.ttftSecondsSum,
        s.ttftSecondsCount,
      ),
    ];
  }

  /** trtllm-serve's JSON /metrics (iteration stats), in the field names its collector reads. */
  private iterationStats(): Record<string, unknown> {
    const s = this.pump();
    const blockSize = this.options.params.blockSizeTokens;
    const maxNumBlocks = Math.floor(this.options.params.kvCapacityTokens / blockSize);
    const usedNumBlocks = Math.round(s.kvCacheUtilization * maxNumBlocks);
    return {
      iter: Math.floor(s.clockMs),
      numActiveRequests: s.requestsRunning,
      numQueuedRequests: s.requestsWaiting,
      kvCacheStats: {
        maxNumBlocks,
        usedNumBlocks,
        freeNumBlocks: maxNumBlocks - usedNumBlocks,
        tokensPerBlock: blockSize,
      },
    };
  }

  private sendJson(res: ServerResponse, status: number, body: unknown): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  }

  private sendError(res: ServerResponse, error: unknown): void {
    const status = error instanceof HttpError ? error.status : 500;
    const type = error instanceof HttpError ? error.type : "InternalServerError";
    const message = error instanceof Error ? error.message : String(error);
    if (res.headersSent) {
      // Mid-stream failure: the OpenAI convention is an error event, then close.
      if (!res.destroyed)
        res.end(`data: ${JSON.stringify({ object: "error", message, type, code: status })}\n\n`);
      return;
    }
    this.sendJson(res, status, { object: "error", message, type, param: null, code: status });
  }
}

/**
 * vLLM's `priority` field of a completions/chat request: an integer (vLLM's pydantic field, int64), 0 when
 * absent; a non-zero one is refused unless the engine runs priority scheduling (vLLM's input processor).
 */
export function requestPriorityOf(body: Record<string, unknown>, policy: SchedulingPolicy): number {
  const raw = body.priority;
  if (raw === undefined || raw === null) return 0;
  if (typeof raw !== "number" || !Number.isInteger(raw) || Math.abs(raw) > 2 ** 63)
    throw new HttpError(400, "priority must be an integer");
  if (raw !== 0 && policy !== "priority")
    throw new HttpError(400, `Got priority ${raw} but Priority scheduling is not enabled.`);
  return raw;
}

async function readJson(req: IncomingMessage, maxBytes = 16 * 1024 * 1024): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > maxBytes) throw new HttpError(413, "request body too large");
    chunks.push(buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "request body is not valid JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new HttpError(400, "request body must be a JSON object");
  return body as Record<string, unknown>;
}

/** Creates and starts an engine server. */
export async function startEngineServer(options: EngineServerOptions): Promise<EngineServer> {
  return new EngineServer(options).listen();
}
