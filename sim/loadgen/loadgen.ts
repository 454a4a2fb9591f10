/**
 * Replays a request schedule against OpenAI-compatible endpoints, streaming each completion to
 * measure time to first token (first SSE chunk with text) and end-to-end latency.
 */
import { Balancer, type BalancePolicy, type LatencySummary, summarize } from "./balance.js";
import type { ScheduledRequest } from "./trace.js";

export interface LoadOptions {
  endpoints: readonly string[];
  policy: BalancePolicy;
  /** OpenAI `model`; discovered from the first endpoint's /v1/models when absent. */
  model?: string;
  /** Caps each request's output tokens (trace outputs can be long). */
  maxOutputTokens?: number;
  /** Abort a single request after this long. */
  requestTimeoutMs: number;
  /** Stop sending new requests after this long (real time); in-flight ones still finish. */
  maxDurationMs: number;
  onProgress?: (progress: LoadProgress) => void;
  /**
   * Send a prompt of the trace's length (~4 characters per token, distinct from its first block on)
   * instead of a short one with the simulator's `prompt_token_count` hint: what a gateway in front
   * sees of a real client. Costs the bytes (a 5k-token prompt is ~20 KB).
   */
  fullPrompts?: boolean;
}

export interface LoadProgress {
  total: number;
  sent: number;
  succeeded: number;
  failed: number;
  inFlight: number;
}

export interface RequestOutcome {
  index: number;
  endpoint: string;
  ok: boolean;
  /** 'http-<status>', 'timeout', 'network', 'protocol' on failure. */
  error?: string;
  ttftMs?: number;
  latencyMs?: number;
  outputTokens?: number;
}

export interface LoadReport {
  durationMs: number;
  sent: number;
  succeeded: number;
  failed: number;
  errors: Record<string, number>;
  ttftMs: LatencySummary;
  /** Every successful request's TTFT as the client saw it, ms (for shares within an objective). */
  ttftSamplesMs: number[];
  /** Every request's outcome (by schedule index), for figures per phase of a run. */
  outcomes: readonly RequestOutcome[];
  latencyMs: LatencySummary;
  outputTokensPerSecond: number;
  perEndpoint: Record<string, number>;
}

async function discoverModel(endpoint: string, timeoutMs: number): Promise<string | undefined> {
  try {
    const response = await fetch(`${endpoint}/v1/models`, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await response.json()) as { data?: { id?: unknown }[] };
    const id = body.data?.[0]?.id;
    return typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}

const FILLER = " lorem ipsum dolor sit amet";

/** A prompt of about `tokens` tokens (4 characters each) that no other request shares a block of. */
export function fullPrompt(index: number, tokens: number): string {
  const head = `trace request ${index}:`;
  const chars = Math.max(head.length, Math.max(1, tokens) * 4);
  return (head + FILLER.repeat(Math.ceil((chars - head.length) / FILLER.length) + 1)).slice(0, chars);
}

/** Sends one streamed completion and times it. Never throws. */
export async function sendRequest(
  endpoint: string,
  request: ScheduledRequest,
  options: Pick<LoadOptions, "model" | "maxOutputTokens" | "requestTimeoutMs" | "fullPrompts">,
): Promise<RequestOutcome> {
  const maxTokens = Math.max(
    1,
    Math.min(request.outputTokens, options.maxOutputTokens ?? Number.MAX_SAFE_INTEGER),
  );
  const body = {
    ...(options.model === undefined ? {} : { model: options.model }),
    // A short prompt plus the token count the trace gives: the simulator honours prompt_token_count.
    prompt: options.fullPrompts
      ? fullPrompt(request.index, request.promptTokens)
      : `trace request ${request.index}`,
    prompt_token_count: Math.max(1, request.promptTokens),
    max_tokens: maxTokens,
    stream: true,
    stream_options: { include_usage: true },
  };
  const started = performance.now();
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.requestTimeoutMs);
  const base: RequestOutcome = { index: request.index, endpoint, ok: false };
  try {
    const response = await fetch(`${endpoint}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!response.ok || !response.body) {
      await response.body?.cancel().catch(() => undefined);
      return { ...base, error: `http-${response.status}` };
    }
    let ttftMs: number | undefined;
    let buffer = "";
    let done = false;
    let outputTokens = 0;
    const decoder = new TextDecoder();
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let boundary: number;
      while ((boundary = buffer.indexOf("\n\n")) !== -1) {
        const event = buffer.slice(0, boundary).trim();
        buffer = buffer.slice(boundary + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") {
          done = true;
          continue;
        }
        const parsed = JSON.parse(data) as {
          choices?: { text?: string }[];
          usage?: { completion_tokens?: number };
        };
        if (ttftMs === undefined && (parsed.choices?.[0]?.text ?? "") !== "")
          ttftMs = performance.now() - started;
        if (typeof parsed.usage?.completion_tokens === "number")
          outputTokens = parsed.usage.completion_tokens;
      }
    }
    if (!done || ttftMs === undefined) return { ...base, error: "protocol" };
    return { ...base, ok: true, ttftMs, latencyMs: performance.now() - started, outputTokens };
  } catch (error) {
    if (controller.signal.aborted) return { ...base, error: "timeout" };
    return { ...base, error: error instanceof SyntaxError ? "protocol" : "network" };
  } finally {
    clearTimeout(timer);
  }
}

/** Replays `schedule` in real time and reports TTFT/latency percentiles. */
export async function runLoad(
  schedule: readonly ScheduledRequest[],
  options: LoadOptions,
): Promise<LoadReport> {
  const balancer = new Balancer(options.endpoints, options.policy);
  const model =
    options.model ??
    (options.endpoints[0] === undefined
      ? undefined
      : await discoverModel(options.endpoints[0], options.requestTimeoutMs));
  const progress: LoadProgress = { total: schedule.length, sent: 0, succeeded: 0, failed: 0, inFlight: 0 };
  const outcomes: RequestOutcome[] = [];
  const inFlight: Promise<void>[] = [];
  const start = performance.now();

  for (const request of schedule) {
    const elapsed = performance.now() - start;
    if (elapsed > options.maxDurationMs) break;
    const wait = request.sendAtMs - elapsed;
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const endpointIndex = balancer.acquire();
    const endpoint = options.endpoints[endpointIndex] as string;
    progress.sent++;
    progress.inFlight++;
    options.onProgress?.(progress);
    inFlight.push(
      sendRequest(endpoint, request, {
        ...(model === undefined ? {} : { model }),
        ...(options.maxOutputTokens === undefined ? {} : { maxOutputTokens: options.maxOutputTokens }),
        requestTimeoutMs: options.requestTimeoutMs,
        ...(options.fullPrompts ? { fullPrompts: true } : {}),
      }).then((outcome) => {
        balancer.release(endpointIndex);
        outcomes.push(outcome);
        progress.inFlight--;
        if (outcome.ok) progress.succeeded++;
        else progress.failed++;
        options.onProgress?.(progress);
      }),
    );
  }
  await Promise.all(inFlight);
  const durationMs = performance.now() - start;
  return reportOf(outcomes, durationMs);
}

export function reportOf(outcomes: readonly RequestOutcome[], durationMs: number): LoadReport {
  const ok = outcomes.filter((o) => o.ok);
  const errors: Record<string, number> = {};
  const perEndpoint: Record<string, number> = {};
  for (const o of outcomes) {
    perEndpoint[o.endpoint] = (perEndpoint[o.endpoint] ?? 0) + 1;
    if (!o.ok) errors[o.error ?? "unknown"] = (errors[o.error ?? "unknown"] ?? 0) + 1;
  }
  const outputTokens = ok.reduce((sum, o) => sum + (o.outputTokens ?? 0), 0);
  return {
    durationMs,
    sent: outcomes.length,
    succeeded: ok.length,
    failed: outcomes.length - ok.length,
    errors,
    ttftMs: summarize(ok.map((o) => o.ttftMs ?? 0)),
    ttftSamplesMs: ok.map((o) => o.ttftMs ?? 0),
    outcomes,
    latencyMs: summarize(ok.map((o) => o.latencyMs ?? 0)),
    outputTokensPerSecond: durationMs > 0 ? outputTokens / (durationMs / 1000) : 0,
    perEndpoint,
  };
}

/** A one-line progress bar on a stream (redrawn in place on a TTY, every 10% otherwise). */
export function progressBar(stream: NodeJS.WriteStream, width = 30): (p: LoadProgress) => void {
  let lastDraw = 0;
  let lastDecile = -1;
  return (p) => {
    const done = p.succeeded + p.failed;
    const fraction = p.total === 0 ? 1 : done / p.total;
    const line = `[${"#".repeat(Math.round(fraction * width)).padEnd(width, ".")}] ${done}/${p.total} ok ${p.succeeded} err ${p.failed} in-flight ${p.inFlight}`;
    if (stream.isTTY) {
      const now = performance.now();
      if (now - lastDraw < 100 && done !== p.total) return;
      lastDraw = now;
      stream.write(`\r${line}${done === p.total ? "\n" : ""}`);
    } else {
      const decile = Math.floor(fraction * 10);
      if (decile === lastDecile) return;
      lastDecile = decile;
      stream.write(`${line}\n`);
    }
  };
}
