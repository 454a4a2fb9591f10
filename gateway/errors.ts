import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
/**
 * Errors in the OpenAI API's shape: `{"error": {"message", "type", "code"}}` with the HTTP status that
 * says what the client should do (fix the request, wait, retry elsewhere). Pure.
 */

export type GatewayErrorCode =
  | "invalid_json"
  | "missing_model"
  | "invalid_request"
  | "model_not_found"
  | "not_found"
  | "method_not_allowed"
  | "request_too_large"
  | "overloaded"
  | "no_capacity"
  | "upstream_unreachable"
  | "upstream_error"
  | "upstream_timeout"
  | "upstream_disconnected"
  // tenancy (gateway/tenancy): authentication and tier limits
  | "invalid_api_key"
  | "permission_denied"
  | "model_not_allowed"
  | "rate_limit_exceeded";

export interface GatewayErrorSpec {
  status: number;
  type: string;
}

/** HTTP status and OpenAI error `type` of each code (types as the OpenAI API names them). */
export const ERROR_SPECS: Readonly<Record<GatewayErrorCode, GatewayErrorSpec>> = {
  invalid_json: { status: 400, type: "invalid_request_error" },
  missing_model: { status: 400, type: "invalid_request_error" },
  invalid_request: { status: 400, type: "invalid_request_error" },
  model_not_found: { status: 404, type: "invalid_request_error" },
  not_found: { status: 404, type: "invalid_request_error" },
  method_not_allowed: { status: 405, type: "invalid_request_error" },
  request_too_large: { status: 413, type: "invalid_request_error" },
  overloaded: { status: 429, type: "rate_limit_error" },
  no_capacity: { status: 503, type: "server_error" },
  upstream_unreachable: { status: 502, type: "server_error" },
  upstream_error: { status: 502, type: "server_error" },
  upstream_timeout: { status: 504, type: "server_error" },
  upstream_disconnected: { status: 502, type: "server_error" },
  invalid_api_key: { status: 401, type: "invalid_request_error" },
  permission_denied: { status: 403, type: "invalid_request_error" },
  model_not_allowed: { status: 403, type: "invalid_request_error" },
  rate_limit_exceeded: { status: 429, type: "rate_limit_error" },
};

export class GatewayError extends Error {
  override readonly name = "GatewayError";
  readonly status: number;
  readonly type: string;
  constructor(
    readonly code: GatewayErrorCode,
    message: string,
    /** Seconds for a Retry-After header (429, 503). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.status = ERROR_SPECS[code].status;
    this.type = ERROR_SPECS[code].type;
  }
}

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: null; code: string };
}

export function errorBody(error: GatewayError): OpenAiErrorBody {
  return { error: { message: error.message, type: error.type, param: null, code: error.code } };
}

/** The error as one SSE event, for a stream that already started (then the stream ends). */
export function errorEvent(error: GatewayError): string {
  return `data: ${JSON.stringify(errorBody(error))}\n\n`;
}

/** Longest piece of a client-sent string echoed back in an error message. */
export const MAX_ECHO_CHARS = 128;

/** A client-sent string shortened for an error message (never for logs or metrics). */
export function echo(value: string): string {
  return value.length <= MAX_ECHO_CHARS ? value : `${value.slice(0, MAX_ECHO_CHARS)}…`;
}

/** Answers `error` in OpenAI's shape (with Retry-After when it has one), or cuts a response already begun. */
export function sendErrorResponse(res: ServerResponse, error: GatewayError): void {
  if (res.headersSent || res.destroyed) {
    if (!res.destroyed) res.destroy();
    return;
  }
  const body = JSON.stringify(errorBody(error));
  const headers: OutgoingHttpHeaders = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  };
  if (error.retryAfterSeconds !== undefined) headers["retry-after"] = String(error.retryAfterSeconds);
  res.writeHead(error.status, headers);
  res.end(body);
}
