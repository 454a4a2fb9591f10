/**
 * Reads a model's sizing files from a Hugging Face Hub-compatible HTTP API (the thin effectful shell;
 * the mapping is operator/planner/hf-config.ts):
 *
 *   GET {endpoint}/{repo}/resolve/{revision}/config.json
 *   GET {endpoint}/{repo}/resolve/{revision}/model.safetensors.index.json   (404: single-file checkpoint)
 *   GET {endpoint}/{repo}/resolve/{revision}/model.safetensors  Range: bytes=0-7, then the header
 *
 * Every request has a timeout and a size limit; redirects are followed only to https (or the
 * endpoint's own origin), at most 3, and the token is sent only to the endpoint's origin.
 */
import { headerDataBytes, headerLength, indexTotalBytes } from "./safetensors.js";

export interface HubClientOptions {
  /** Base URL of the Hub, e.g. https://huggingface.co (GPUFLEET_HF_ENDPOINT). */
  endpoint: string;
  /** Per-request timeout. */
  timeoutMs?: number;
  /** Largest config.json / index accepted. */
  maxJsonBytes?: number;
  fetch?: typeof fetch;
}

export interface ModelFiles {
  config: unknown;
  /** Total weight bytes from the safetensors index or header, when the repo has either. */
  safetensorsTotalBytes?: number;
}

/** Why reading a repo failed; `retryable` says whether trying again later can help. */
export class HubError extends Error {
  constructor(
    message: string,
    readonly kind: "unauthorized" | "not-found" | "unavailable" | "invalid",
    readonly status?: number,
  ) {
    super(message);
    this.name = "HubError";
  }

  get retryable(): boolean {
    return this.kind === "unavailable";
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_JSON_BYTES = 4 * 1024 * 1024;
const MAX_REDIRECTS = 3;

export class HubClient {
  private readonly endpoint: URL;
  private readonly timeoutMs: number;
  private readonly maxJsonBytes: number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: HubClientOptions) {
    this.endpoint = new URL(options.endpoint.endsWith("/") ? options.endpoint : `${options.endpoint}/`);
    if (this.endpoint.protocol !== "https:" && this.endpoint.protocol !== "http:") {
      throw new Error(`hub endpoint must be http(s): ${options.endpoint}`);
    }
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxJsonBytes = options.maxJsonBytes ?? DEFAULT_MAX_JSON_BYTES;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** config.json plus the checkpoint's total weight bytes, at `revision`. */
  async readModel(repo: string, revision: string, token?: string): Promise<ModelFiles> {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/.test(repo)) {
      throw new HubError(`invalid repository id ${JSON.stringify(repo.slice(0, 100))}`, "invalid");
    }
    const config = await this.json(repo, revision, "config.json", token);
    let safetensorsTotalBytes: number | undefined;
    try {
      safetensorsTotalBytes = indexTotalBytes(
        await this.json(repo, revision, "model.safetensors.index.json", token),
      );
    } catch (error) {
      if (!(error instanceof HubError && error.kind === "not-found")) throw error;
      safetensorsTotalBytes = await this.singleFileBytes(repo, revision, token);
    }
    return { config, ...(safetensorsTotalBytes !== undefined ? { safetensorsTotalBytes } : {}) };
  }

  private url(repo: string, revision: string, file: string): URL {
    return new URL(`${repo}/resolve/${encodeURIComponent(revision)}/${file}`, this.endpoint);
  }

  /** A single-file checkpoint's data size from its header (two ranged reads); undefined if absent. */
  private async singleFileBytes(repo: string, revision: string, token?: string): Promise<number | undefined> {
    const url = this.url(repo, revision, "model.safetensors");
    let first: Uint8Array;
    try {
      first = await this.bytes(url, token, 8, { range: "bytes=0-7" });
    } catch (error) {
      if (error instanceof HubError && error.kind === "not-found") return undefined;
      throw error;
    }
    let length: number;
    try {
      length = headerLength(first);
    } catch (error) {
      throw new HubError(`${repo}: ${(error as Error).message}`, "invalid");
    }
    const header = await this.bytes(url, token, length, { range: `bytes=8-${8 + length - 1}` });
    try {
      return headerDataBytes(JSON.parse(new TextDecoder().decode(header)));
    } catch (error) {
      throw new HubError(`${repo}: model.safetensors header: ${(error as Error).message}`, "invalid");
    }
  }

  private async json(repo: string, revision: string, file: string, token?: string): Promise<unknown> {
    const body = await this.bytes(this.url(repo, revision, file), token, this.maxJsonBytes);
    try {
      return JSON.parse(new TextDecoder().decode(body));
    } catch {
      throw new HubError(`${repo}@${revision}: ${file} is not valid JSON`, "invalid");
    }
  }

  /** GET with timeout, bounded body, checked redirects; maps HTTP failures to HubError kinds. */
  private async bytes(
    url: URL,
    token: string | undefined,
    limit: number,
    extra: { range?: string } = {},
  ): Promise<Uint8Array> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    let current = url;
    for (let hop = 0; ; hop++) {
      const sameOrigin = current.origin === this.endpoint.origin;
      let response: Response;
      try {
        response = await this.fetchImpl(current, {
          redirect: "manual",
          signal,
          headers: {
            ...(token && sameOrigin ? { authorization: `Bearer ${token}` } : {}),
            ...(extra.range ? { range: extra.range } : {}),
            "user-agent": "gpufleet-operator",
          },
        });
      } catch (error) {
        const reason =
          (error as Error).name === "TimeoutError"
            ? `timed out after ${this.timeoutMs} ms`
            : (error as Error).message;
        throw new HubError(`${this.describe(url)}: ${reason}`, "unavailable");
      }
      if (response.status >= 300 && response.status < 400 && response.headers.get("location")) {
        await response.body?.cancel();
        const next = new URL(response.headers.get("location") as string, current);
        if (hop >= MAX_REDIRECTS || (next.protocol !== "https:" && next.origin !== this.endpoint.origin)) {
          throw new HubError(`${this.describe(url)}: refused redirect to ${next.origin}`, "invalid");
        }
        current = next;
        continue;
      }
      if (response.status === 401 || response.status === 403) {
        await response.body?.cancel();
        throw new HubError(
          `${this.describe(url)}: HTTP ${response.status}: the repository is private or gated and ${token ? "the token was refused" : "no token was given"}`,
          "unauthorized",
          response.status,
        );
      }
      if (response.status === 404) {
        await response.body?.cancel();
        throw new HubError(
          `${this.describe(url)}: HTTP 404: no such repository, revision or file`,
          "not-found",
          404,
        );
      }
      if (response.status === 429 || response.status >= 500) {
        await response.body?.cancel();
        throw new HubError(`${this.describe(url)}: HTTP ${response.status}`, "unavailable", response.status);
      }
      if (response.status !== 200 && response.status !== 206) {
        await response.body?.cancel();
        throw new HubError(
          `${this.describe(url)}: unexpected HTTP ${response.status}`,
          "invalid",
          response.status,
        );
      }
      // A server that ignores Range answers 200 with the whole file: keep only the bytes asked for.
      return this.readBounded(response, limit, url, extra.range !== undefined && response.status === 200);
    }
  }

  private async readBounded(
    response: Response,
    limit: number,
    url: URL,
    truncate = false,
  ): Promise<Uint8Array> {
    const declared = Number(response.headers.get("content-length") ?? "NaN");
    if (!truncate && Number.isFinite(declared) && declared > limit) {
      await response.body?.cancel();
      throw new HubError(
        `${this.describe(url)}: ${declared} bytes exceeds the ${limit}-byte limit`,
        "invalid",
      );
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      for await (const chunk of response.body ?? []) {
        size += (chunk as Uint8Array).length;
        if (size > limit && truncate) {
          chunks.push((chunk as Uint8Array).subarray(0, (chunk as Uint8Array).length - (size - limit)));
          size = limit;
          break;
        }
        if (size > limit)
          throw new HubError(`${this.describe(url)}: body exceeds the ${limit}-byte limit`, "invalid");
        chunks.push(chunk as Uint8Array);
      }
    } catch (error) {
      if (error instanceof HubError) throw error;
      const reason =
        (error as Error).name === "TimeoutError"
          ? `timed out after ${this.timeoutMs} ms`
          : (error as Error).message;
      throw new HubError(`${this.describe(url)}: ${reason}`, "unavailable");
    }
    const body = new Uint8Array(size);
    let offset = 0;
    for (const chunk of chunks) {
      body.set(chunk, offset);
      offset += chunk.length;
    }
    return body;
  }

  /** The URL without query string, for messages. */
  private describe(url: URL): string {
    return `${url.origin}${url.pathname}`;
  }
}
