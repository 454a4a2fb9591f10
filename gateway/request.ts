/**
 * Reading and checking a client's request: the body bounded in bytes (413), JSON (400), a `model`
 * string (400), and the features the endpoint picker uses. The body's bytes are forwarded to the
 * engine unchanged; the gateway only reads from them.
 */
import type { IncomingMessage } from "node:http";
import { flattenChat } from "./routing/prefix.js";
import type { RequestFeatures } from "./routing/types.js";
import { GatewayError, echo } from "./errors.js";

/** Longest `model` accepted (Kubernetes names are shorter; this only bounds what is looked up). */
export const MAX_MODEL_CHARS = 256;

/**
 * Reads the request body, refusing more than `maxBytes` (by Content-Length at once, else while reading).
 * Event-driven rather than an async iterator: one promise per request, not one per chunk.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(new GatewayError("request_too_large", `request body exceeds ${maxBytes} bytes`));
  }
  return new Promise((resolve, reject) => {
    let first: Buffer | undefined;
    let chunks: Buffer[] | undefined;
    let size = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (buffer: Buffer) => {
      size += buffer.length;
      if (size > maxBytes) {
        cleanup();
        // The rest is not read (the connection is closed after the answer).
        req.pause();
        reject(new GatewayError("request_too_large", `request body exceeds ${maxBytes} bytes`));
        return;
      }
      if (first === undefined) first = buffer;
      else (chunks ??= [first]).push(buffer);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks ? Buffer.concat(chunks, size) : (first ?? Buffer.alloc(0)));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    // The client went away before its body was complete.
    const onClose = () => {
      if (req.complete) return;
      cleanup();
      reject(new Error("the client closed the connection before sending the whole body"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

export interface CompletionRequest {
  model: string;
  stream: boolean;
  features: RequestFeatures;
  /** The body has a top-level `priority` member (vLLM's; the gateway replaces it where it sets its own). */
  setsPriority: boolean;
}

export interface ParseOptions {
  /** Prompt characters the picker looks at (the prefix index only needs the start of a prompt). */
  maxPromptChars: number;
  /** Session key from the configured header, if sent. */
  sessionKey?: string | undefined;
}

/** Parses a /v1/completions or /v1/chat/completions body. Throws GatewayError (400) on bad input. */
export function parseCompletionRequest(
  body: Buffer,
  chat: boolean,
  options: ParseOptions,
): CompletionRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    throw new GatewayError("invalid_json", "We could not parse the JSON body of your request.");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new GatewayError("invalid_json", "The request body must be a JSON object.");
  const fields = parsed as Record<string, unknown>;
  const model = fields.model;
  if (typeof model !== "string" || model.length === 0)
    throw new GatewayError("missing_model", "You must provide a model parameter.");
  if (model.length > MAX_MODEL_CHARS)
    throw new GatewayError("model_not_found", `The model \`${echo(model)}\` does not exist.`);
  let prompt = "";
  if (chat) {
    if (!Array.isArray(fields.messages))
      throw new GatewayError("invalid_request", "messages must be an array of chat messages.");
    prompt = flattenChat(fields.messages as never[], options.maxPromptChars);
  } else if (typeof fields.prompt === "string") {
    prompt = fields.prompt;
  } else if (Array.isArray(fields.prompt) && typeof fields.prompt[0] === "string") {
    prompt = fields.prompt[0];
  }
  if (prompt.length > options.maxPromptChars) prompt = prompt.slice(0, options.maxPromptChars);
  const features: RequestFeatures = { model, prompt };
  if (options.sessionKey !== undefined) features.sessionKey = options.sessionKey;
  return { model, stream: fields.stream === true, features, setsPriority: Object.hasOwn(fields, "priority") };
}
