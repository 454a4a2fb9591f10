import { readBodyWithin } from "../../operator/runtime/http-body.js";

/** Timeout, retry and backoff settings for one HTTP call to a carbon-intensity API. */
export interface HttpPolicy {
  /** Per attempt. */
  timeoutMs: number;
  /** Extra attempts after the first, for timeouts, network errors, 408, 429 and 5xx. */
  retries: number;
  /** First backoff; doubles each retry up to maxBackoffMs, with up to 50% jitter added. */
  backoffMs: number;
  maxBackoffMs: number;
  /** Largest response body read; a longer one is cut off and the call fails (not retried). */
  maxResponseBytes: number;
  /**
   * Let credentials go over plain http to a loopback address (127.0.0.0/8, ::1, localhost): for tests
   * against a local fake API and a local Carbon Aware SDK only. Never to any other host.
   */
  allowPlainHttpToLoopback: boolean;
}

export const DEFAULT_HTTP_POLICY: HttpPolicy = {
  timeoutMs: 5_000,
  retries: 2,
  backoffMs: 250,
  maxBackoffMs: 4_000,
  maxResponseBytes: 1 << 20,
  allowPlainHttpToLoopback: false,
};

export class HttpRequestError extends Error {
  constructor(
    message: string,
    readonly url: string,
    readonly status: number | undefined,
    readonly retryable: boolean,
    readonly attempts: number,
  ) {
    super(message);
    this.name = "HttpRequestError";
  }
}

export interface GetJsonOptions {
  headers?: Record<string, string>;
  /**
   * The headers carry a secret (API token, password, bearer token): refused unless the URL is https
   * (or loopback with policy.allowPlainHttpToLoopback). Redirects are never followed in any case, so a
   * header cannot travel to another origin.
   */
  credentials?: boolean;
  policy?: Partial<HttpPolicy>;
  /** Injected for tests; defaults to setTimeout. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Backoff before retry number `retry` (0-based): exponential, capped, jittered. */
export function backoffDelayMs(
  policy: HttpPolicy,
  retry: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** retry);
  return base + base * 0.5 * random();
}

function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Throws unless `url` may carry credentials: https, or http to a loopback host when allowed.
 * Called before any request with a secret, and by the live sources' constructors.
 */
export function assertCredentialSafeUrl(url: string, allowPlainHttpToLoopback = false): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new HttpRequestError(`not a URL: ${url}`, url, undefined, false, 0);
  }
  if (parsed.protocol === "https:") return;
  if (parsed.protocol === "http:" && allowPlainHttpToLoopback && isLoopbackHost(parsed.hostname)) return;
  throw new HttpRequestError(
    `refusing to send credentials to ${parsed.protocol}//${parsed.host}: an API key goes over https only`,
    url,
    undefined,
    false,
    0,
  );
}

/** Reads at most `limit` bytes of a body; throws (and cancels the stream) beyond it. */
async function readBounded(response: Response, limit: number, url: string, attempt: number): Promise<string> {
  const declared = Number(response.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > limit) {
    await response.body?.cancel();
    throw new HttpRequestError(
      `response from ${url} is ${declared} bytes, above the ${limit}-byte limit`,
      url,
      response.status,
      false,
      attempt,
    );
  }
  return readBodyWithin(
    response,
    limit,
    () =>
      new HttpRequestError(
        `response from ${url} exceeds the ${limit}-byte limit`,
        url,
        response.status,
        false,
        attempt,
      ),
  );
}

/**
 * GET a URL and parse JSON, retrying transient failures; throws HttpRequestError when it gives up.
 * Redirects are not followed (a 3xx is an error), bodies are bounded by policy.maxResponseBytes.
 */
export async function getJson(url: string, options: GetJsonOptions = {}): Promise<unknown> {
  const policy: HttpPolicy = { ...DEFAULT_HTTP_POLICY, ...options.policy };
  if (options.credentials === true) assertCredentialSafeUrl(url, policy.allowPlainHttpToLoopback);
  const sleep = options.sleep ?? defaultSleep;
  let lastError: HttpRequestError | undefined;
  for (let attempt = 0; attempt <= policy.retries; attempt++) {
    if (attempt > 0) await sleep(backoffDelayMs(policy, attempt - 1, options.random));
    try {
      const response = await fetch(url, {
        headers: { accept: "application/json", ...options.headers },
        signal: AbortSignal.timeout(policy.timeoutMs),
        redirect: "manual",
      });
      if (response.status >= 300 && response.status < 400) {
        await response.body?.cancel();
        throw new HttpRequestError(
          `HTTP ${response.status} redirect from ${url} not followed (credentials never cross a redirect)`,
          url,
          response.status,
          false,
          attempt + 1,
        );
      }
      if (response.ok) {
        const text = await readBounded(response, policy.maxResponseBytes, url, attempt + 1);
        try {
          return JSON.parse(text) as unknown;
        } catch {
          throw new HttpRequestError(`invalid JSON from ${url}`, url, response.status, false, attempt + 1);
        }
      }
      // Read a little of the body for the message; cancel the rest.
      const body = (
        await readBounded(response, policy.maxResponseBytes, url, attempt + 1).catch(() => "")
      ).slice(0, 200);
      lastError = new HttpRequestError(
        `HTTP ${response.status} from ${url}${body ? `: ${body}` : ""}`,
        url,
        response.status,
        isRetryableStatus(response.status),
        attempt + 1,
      );
    } catch (error) {
      if (error instanceof HttpRequestError) throw error;
      const err = error as Error;
      const timedOut = err.name === "TimeoutError" || err.name === "AbortError";
      lastError = new HttpRequestError(
        timedOut
          ? `timed out after ${policy.timeoutMs} ms: ${url}`
          : `request to ${url} failed: ${err.message}`,
        url,
        undefined,
        true,
        attempt + 1,
      );
    }
    if (!lastError.retryable) throw lastError;
  }
  throw lastError ?? new HttpRequestError(`no attempt made for ${url}`, url, undefined, false, 0);
}
