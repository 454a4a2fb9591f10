/**
 * Token counts of one answer, read from the bytes the gateway passes back to the client. The engine's
 * own `usage` wins whenever the answer carries it: every non-streamed completion, and a stream whose
 * request asked for `stream_options: {include_usage: true}` (vLLM, SGLang and the simulator then send a
 * last chunk with `usage`). Otherwise the documented estimate: prompt tokens = ceil(prompt characters / 4)
 * (the gateway's estimate everywhere), completion tokens = the stream's events that carry choices (vLLM
 * sends one event per decoding step, usually one token) or, for a JSON answer without usage,
 * ceil(answer text characters / 4). Pure apart from the buffering it does.
 */

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  /** "engine": the answer's own usage figures; "estimate": the fallback above. */
  source: "engine" | "estimate";
}

/** Largest non-streamed body kept to read its usage (beyond it: the estimate). */
export const MAX_JSON_BODY_BYTES = 4 * 1024 * 1024;
/** Largest single SSE event parsed for usage. */
export const MAX_EVENT_BYTES = 256 * 1024;

interface UsageFields {
  prompt_tokens?: unknown;
  completion_tokens?: unknown;
}

function usageOf(value: unknown): { prompt: number; completion: number } | undefined {
  if (!value || typeof value !== "object") return undefined;
  const usage = (value as { usage?: UsageFields }).usage;
  if (!usage || typeof usage !== "object") return undefined;
  const prompt = usage.prompt_tokens;
  const completion = usage.completion_tokens;
  const ok = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0 && n < 1e9;
  if (!ok(prompt) || !ok(completion)) return undefined;
  return { prompt, completion };
}

function textCharsOf(value: unknown): number {
  const choices = (value as { choices?: unknown } | undefined)?.choices;
  if (!Array.isArray(choices)) return 0;
  let chars = 0;
  for (const choice of choices.slice(0, 128)) {
    const c = choice as { text?: unknown; message?: { content?: unknown } };
    if (typeof c.text === "string") chars += c.text.length;
    else if (typeof c.message?.content === "string") chars += c.message.content.length;
  }
  return chars;
}

export class UsageTap {
  private engine: { prompt: number; completion: number } | undefined;
  private contentEvents = 0;
  private readonly json: Buffer[] = [];
  private jsonBytes = 0;
  private jsonOverflow = false;
  private partial = "";

  constructor(
    private readonly promptChars: number,
    private readonly sse: boolean,
  ) {}

  /** A piece of the answer as sent to the client (whole SSE events when streaming). */
  observe(chunk: Buffer): void {
    if (!this.sse) {
      if (this.jsonOverflow) return;
      this.jsonBytes += chunk.length;
      if (this.jsonBytes > MAX_JSON_BODY_BYTES) {
        this.jsonOverflow = true;
        this.json.length = 0;
        return;
      }
      this.json.push(chunk);
      return;
    }
    const text = this.partial + chunk.toString("utf8");
    const events = text.split(/\r?\n\r?\n/);
    this.partial = events.pop() ?? "";
    if (this.partial.length > MAX_EVENT_BYTES) this.partial = "";
    for (const event of events) this.event(event);
  }

  private event(event: string): void {
    if (event.length > MAX_EVENT_BYTES) {
      this.contentEvents++;
      return;
    }
    const data = event
      .split(/\r?\n/)
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).trimStart())
      .join("\n");
    if (!data || data === "[DONE]") return;
    if (data.includes('"usage"')) {
      try {
        const parsed: unknown = JSON.parse(data);
        const usage = usageOf(parsed);
        if (usage) this.engine = usage;
        const choices = (parsed as { choices?: unknown }).choices;
        if (Array.isArray(choices) && choices.length > 0) this.contentEvents++;
        return;
      } catch {
        // not JSON: counted as content below
      }
    }
    if (data.includes('"choices"') && !data.includes('"choices":[]')) this.contentEvents++;
  }

  result(): TokenUsage {
    if (!this.sse && !this.jsonOverflow && this.json.length > 0) {
      try {
        const parsed: unknown = JSON.parse(Buffer.concat(this.json).toString("utf8"));
        const usage = usageOf(parsed);
        if (usage) return { promptTokens: usage.prompt, completionTokens: usage.completion, source: "engine" };
        return {
          promptTokens: Math.ceil(this.promptChars / 4),
          completionTokens: Math.ceil(textCharsOf(parsed) / 4),
          source: "estimate",
        };
      } catch {
        // fall through to the estimate
      }
    }
    if (this.partial) {
      this.event(this.partial);
      this.partial = "";
    }
    if (this.engine)
      return { promptTokens: this.engine.prompt, completionTokens: this.engine.completion, source: "engine" };
    return { promptTokens: Math.ceil(this.promptChars / 4), completionTokens: this.contentEvents, source: "estimate" };
  }
}
