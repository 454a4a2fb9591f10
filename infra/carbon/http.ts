/** Timeout, retry and backoff settings for one HTTP call to a carbon-intensity API. */
export interface HttpPolicy {
  /** Per attempt. */
  timeoutMs: number;
  /** Extra attempts after the first, for timeouts, network errors, 408, 429 and 5xx. */
  retries: number;
  /** First backoff; doubles each retry up to maxBackoffMs, with up to 50% jitter added. */
  backoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_HTTP_POLICY: HttpPolicy = {
  timeoutMs: 5_000,
  retries: 2,
  backoffMs: 250,
  maxBackoffMs: 4_000,
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

/** GET a URL and parse JSON, retrying transient failures; throws HttpRequestError when it gives up. */
export async function getJson(url: string, options: GetJsonOptions = {}): Promise<unknown> {
  const policy: HttpPolicy = { ...DEFAULT_HTTP_POLICY, ...options.policy };
  const sleep = options.sleep ?? defaultSleep;
  let lastError: HttpRequestError | undefined;
  for (let attempt = 0; attempt <= policy.retries; attempt++) {
    if (attempt > 0) await sleep(backoffDelayMs(policy, attempt - 1, options.random));
    try {
      const response = await fetch(url, {
        headers: { accept: "application/json", ...options.headers },
        signal: AbortSignal.timeout(policy.timeoutMs),
      });
      if (response.ok) {
        const text = await response.text();
        try {
          return JSON.parse(text) as unknown;
        } catch {
          throw new HttpRequestError(`invalid JSON from ${url}`, url, response.status, false, attempt + 1);
        }
      }
      // Drain the body so the connection can be reused.
      const body = (await response.text()).slice(0, 200);
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
