import http from "node:http";
import https from "node:https";
import { KubeConfig } from "@kubernetes/client-node";
import {
  API_GROUP,
  API_VERSION,
  KIND as MODEL_DEPLOYMENT_KIND,
  PLURAL as MODEL_DEPLOYMENT_PLURAL,
} from "../api/modeldeployment.js";
import { logger } from "../log/logger.js";

/**
 * A thin REST client for the Kubernetes API. It takes transport and credentials from a `KubeConfig`
 * (@kubernetes/client-node 1.x) and speaks raw HTTP over node:http/node:https, so that the operator
 * controls every request: server-side apply, watch streams, pagination, timeouts and abort.
 */

const log = logger.child({ component: "kube-client" });

/** The one field manager every server-side apply of the operator uses. */
export const FIELD_MANAGER = "gpufleet";

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
}

/** Anything the API server stores. Typed objects (ModelDeployment, ...) are assignable to it. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

export interface ListMeta {
  resourceVersion?: string;
  continue?: string;
  remainingItemCount?: number;
}

export interface KubeList<T> {
  apiVersion?: string;
  kind?: string;
  metadata: ListMeta;
  items: T[];
}

export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

export interface WatchEvent<T = KubeObject> {
  type: WatchEventType;
  /** The object, or a `Status` when `type` is ERROR. */
  object: T;
}

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

/** The `Status` object the API server returns with errors (and in watch ERROR events). */
export interface KubeStatus {
  kind?: "Status";
  apiVersion?: string;
  status?: "Success" | "Failure";
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    uid?: string;
    causes?: StatusCause[];
    retryAfterSeconds?: number;
  };
}

/** An error answer of the API server, parsed from its Status body. */
export class KubeApiError extends Error {
  override readonly name = "KubeApiError";
  readonly statusCode: number;
  /** Machine-readable reason: NotFound, Conflict, AlreadyExists, Expired, Gone, Invalid, ... */
  readonly reason: string;
  readonly details: KubeStatus["details"] | undefined;
  readonly causes: StatusCause[];
  readonly method: string | undefined;
  readonly path: string | undefined;
  /** How long the server asked the client to wait (Retry-After header or details.retryAfterSeconds). */
  retryAfterSeconds: number | undefined;

  constructor(init: {
    statusCode: number;
    reason: string;
    message: string;
    details?: KubeStatus["details"];
    method?: string;
    path?: string;
  }) {
    super(init.message);
    this.retryAfterSeconds = init.details?.retryAfterSeconds;
    this.statusCode = init.statusCode;
    this.reason = init.reason;
    this.details = init.details;
    this.causes = init.details?.causes ?? [];
    this.method = init.method;
    this.path = init.path;
  }

  get isNotFound(): boolean {
    return this.statusCode === 404;
  }
  /** 409: an optimistic-concurrency conflict or an apply conflict (not AlreadyExists). */
  get isConflict(): boolean {
    return this.statusCode === 409 && this.reason !== "AlreadyExists";
  }
  get isAlreadyExists(): boolean {
    return this.statusCode === 409 && this.reason === "AlreadyExists";
  }
  /** 410: the requested resourceVersion was compacted away; the caller must relist. */
  get isGone(): boolean {
    return this.statusCode === 410;
  }
}

export const isNotFound = (err: unknown): boolean => err instanceof KubeApiError && err.isNotFound;
export const isConflict = (err: unknown): boolean => err instanceof KubeApiError && err.isConflict;
export const isAlreadyExists = (err: unknown): boolean => err instanceof KubeApiError && err.isAlreadyExists;
export const isGone = (err: unknown): boolean => err instanceof KubeApiError && err.isGone;

const REASON_BY_STATUS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  406: "NotAcceptable",
  409: "Conflict",
  410: "Gone",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

/** Builds the typed error from an HTTP status and the raw body (a Status object, or anything else). */
export function parseKubeApiError(
  statusCode: number,
  body: string,
  request?: { method?: string; path?: string },
): KubeApiError {
  let status: KubeStatus | undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    if (parsed && typeof parsed === "object" && (parsed as KubeStatus).kind === "Status")
      status = parsed as KubeStatus;
  } catch {
    // Not JSON: proxies and some auth failures answer with plain text.
  }
  const code = status?.code && status.code >= 400 ? status.code : statusCode;
  const text = body.trim().slice(0, 500);
  return new KubeApiError({
    statusCode: code,
    reason: status?.reason || REASON_BY_STATUS[code] || "Unknown",
    message: status?.message || text || `HTTP ${code}`,
    ...(status?.details ? { details: status.details } : {}),
    ...(request?.method ? { method: request.method } : {}),
    ...(request?.path ? { path: request.path } : {}),
  });
}

/** Turns the Status object of a watch ERROR event into the typed error. */
export function errorFromWatchStatus(status: KubeStatus): KubeApiError {
  const code = status.code ?? 500;
  return new KubeApiError({
    statusCode: code,
    reason: status.reason || REASON_BY_STATUS[code] || "Unknown",
    message: status.message || `watch error ${code}`,
    ...(status.details ? { details: status.details } : {}),
  });
}

// ---------------------------------------------------------------------------------------------
// Paths

export interface ResourceInfo {
  /** URL segment of the resource, e.g. `deployments`. */
  plural: string;
  namespaced: boolean;
}

/** `apiVersion|kind` → resource. The kinds the operator touches; `registerKind` adds more. */
const RESOURCES = new Map<string, ResourceInfo>([
  [
    `${API_GROUP}/${API_VERSION}|${MODEL_DEPLOYMENT_KIND}`,
    { plural: MODEL_DEPLOYMENT_PLURAL, namespaced: true },
  ],
  ["apps/v1|Deployment", { plural: "deployments", namespaced: true }],
  ["apps/v1|StatefulSet", { plural: "statefulsets", namespaced: true }],
  ["apps/v1|ReplicaSet", { plural: "replicasets", namespaced: true }],
  ["v1|Service", { plural: "services", namespaced: true }],
  ["policy/v1|PodDisruptionBudget", { plural: "poddisruptionbudgets", namespaced: true }],
  ["v1|Pod", { plural: "pods", namespaced: true }],
  ["v1|Node", { plural: "nodes", namespaced: false }],
  ["v1|Namespace", { plural: "namespaces", namespaced: false }],
  ["v1|Event", { plural: "events", namespaced: true }],
  ["events.k8s.io/v1|Event", { plural: "events", namespaced: true }],
  ["coordination.k8s.io/v1|Lease", { plural: "leases", namespaced: true }],
  ["v1|ConfigMap", { plural: "configmaps", namespaced: true }],
  ["v1|Secret", { plural: "secrets", namespaced: true }],
  ["v1|ServiceAccount", { plural: "serviceaccounts", namespaced: true }],
  [
    "apiextensions.k8s.io/v1|CustomResourceDefinition",
    { plural: "customresourcedefinitions", namespaced: false },
  ],
]);

export function registerKind(apiVersion: string, kind: string, info: ResourceInfo): void {
  RESOURCES.set(`${apiVersion}|${kind}`, info);
}

export function resourceInfo(apiVersion: string, kind: string): ResourceInfo {
  const info = RESOURCES.get(`${apiVersion}|${kind}`);
  if (!info) throw new Error(`unknown kind ${kind} (${apiVersion}): registerKind() it first`);
  return info;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  /** Omit for a cluster-scoped kind, or for a list across all namespaces. */
  namespace?: string | undefined;
  /** Omit for the collection path (list, watch, create). */
  name?: string | undefined;
}

/**
 * REST path of an object (or of its collection when `name` is omitted):
 * `/api/v1/namespaces/ns/pods/p`, `/apis/apps/v1/namespaces/ns/deployments`, `/api/v1/nodes`.
 */
export function pathFor(ref: ObjectRef): string {
  const info = resourceInfo(ref.apiVersion, ref.kind);
  const prefix = ref.apiVersion.includes("/") ? `/apis/${ref.apiVersion}` : `/api/${ref.apiVersion}`;
  const scope = info.namespaced && ref.namespace ? `/namespaces/${encodeURIComponent(ref.namespace)}` : "";
  const name = ref.name ? `/${encodeURIComponent(ref.name)}` : "";
  return `${prefix}${scope}/${info.plural}${name}`;
}

function pathOfObject(obj: KubeObject, withName: boolean): string {
  if (!obj.apiVersion || !obj.kind) throw new Error("object needs apiVersion and kind");
  const name = obj.metadata?.name;
  if (withName && !name) throw new Error(`${obj.kind} needs metadata.name`);
  return pathFor({
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    namespace: obj.metadata?.namespace,
    name: withName ? name : undefined,
  });
}

// ---------------------------------------------------------------------------------------------
// Client

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  /** "" or omitted: a consistent read; "0": any cached state is fine. */
  resourceVersion?: string;
  /** Page size; the client follows `continue` until the list is complete. */
  limit?: number;
  continue?: string;
  /** Aborts the list (an informer stopping while it lists). */
  signal?: AbortSignal;
}

export interface WatchOptions {
  resourceVersion?: string;
  allowWatchBookmarks?: boolean;
  /** The server ends the watch after this long (normal; rewatch from the last resourceVersion). */
  timeoutSeconds?: number;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface ApplyOptions {
  fieldManager?: string;
  /** Take ownership of fields another manager holds (the controller is the authority). Default true. */
  force?: boolean;
  subresource?: "status" | "scale";
  dryRun?: boolean;
}

export interface DeleteOptions {
  propagationPolicy?: "Foreground" | "Background" | "Orphan";
  gracePeriodSeconds?: number;
  /** Only delete this exact object (guards against deleting a re-created namesake). */
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface KubeClientOptions {
  /** Per-request timeout (not for watches). Default 30 s. */
  requestTimeoutMs?: number;
  userAgent?: string;
  /** Told of every answered (or failed) request, not watches: the operator's request counters. */
  onRequest?: (request: CompletedRequest) => void;
}

/** One request as the client saw it, for counters (operator/runtime/metrics.ts). */
export interface CompletedRequest {
  /** The API server's verb names: GET, LIST, POST, PUT, PATCH, APPLY (a server-side apply), DELETE. */
  verb: string;
  path: string;
  /** HTTP status; 0 when no answer came (network error, timeout, abort). */
  status: number;
  seconds: number;
}

/**
 * The verb the API server's apiserver_request_total would count a request under (LIST for a GET of a
 * collection, APPLY for a server-side apply), so the operator's counters read beside the server's. Pure.
 */
export function requestVerb(method: string, path: string, contentType: string | undefined): string {
  if (method === "PATCH" && contentType === "application/apply-patch+yaml") return "APPLY";
  if (method !== "GET") return method;
  const parts = path.split("?")[0]!.split("/").filter(Boolean);
  // /api/v1/<resource>, /api/v1/namespaces/<ns>/<resource>, /apis/<group>/<version>/... (+ /<name>[/<sub>])
  const rest = parts[0] === "api" ? parts.slice(2) : parts.slice(3);
  const afterNamespace = rest[0] === "namespaces" && rest.length >= 3 ? rest.slice(2) : rest;
  return afterNamespace.length <= 1 ? "LIST" : "GET";
}

/** `resource[/subresource]` of an API path (the labels apiserver_request_total uses), or "other". Pure. */
export function requestResource(path: string): string {
  const parts = path.split("?")[0]!.split("/").filter(Boolean);
  let rest: string[];
  if (parts[0] === "api" && parts.length >= 3) rest = parts.slice(2);
  else if (parts[0] === "apis" && parts.length >= 4) rest = parts.slice(3);
  else return "other";
  if (rest[0] === "namespaces" && rest.length >= 3) rest = rest.slice(2);
  const [resource, , subresource] = rest;
  if (!resource) return "other";
  return subresource ? `${resource}/${subresource}` : resource;
}

export type PatchContentType =
  | "application/merge-patch+json"
  | "application/strategic-merge-patch+json"
  | "application/json-patch+json"
  | "application/apply-patch+yaml";

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * Answers that carry Retry-After (429 Too Many Requests, 5xx such as 503 while the server starts) are
 * retried after the delay asked, as client-go's REST client does, at most this many times; then the
 * error (with retryAfterSeconds) goes to the caller's own backoff.
 */
export const MAX_RETRY_AFTER_RETRIES = 5;
/** A Retry-After longer than this is waited out in the caller's backoff, not inside one request. */
export const MAX_RETRY_AFTER_SECONDS = 30;

/** Seconds of a Retry-After header given as delta-seconds (the form the API server sends), else undefined. */
export function parseRetryAfterSeconds(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || !/^\s*\d{1,6}\s*$/.test(value)) return undefined;
  return Number(value);
}

/** Whether a failed answer should be retried inside the request: the server said when. */
export function shouldRetryAfter(error: KubeApiError, attempt: number): boolean {
  return (
    attempt < MAX_RETRY_AFTER_RETRIES &&
    (error.statusCode === 429 || error.statusCode >= 500) &&
    error.retryAfterSeconds !== undefined &&
    error.retryAfterSeconds <= MAX_RETRY_AFTER_SECONDS
  );
}

interface PreparedRequest {
  url: URL;
  options: https.RequestOptions;
  transport: typeof http | typeof https;
}

export class KubeClient {
  readonly kubeConfig: KubeConfig;
  readonly server: URL;
  private readonly requestTimeoutMs: number;
  private readonly userAgent: string;
  private readonly onRequest: ((request: CompletedRequest) => void) | undefined;
  /** One keep-alive agent for all requests (the one KubeConfig builds is per call, without keep-alive). */
  private agent: http.Agent | undefined;

  constructor(kubeConfig: KubeConfig, options: KubeClientOptions = {}) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig has no current cluster");
    this.kubeConfig = kubeConfig;
    this.server = new URL(cluster.server);
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.userAgent = options.userAgent ?? "gpufleet-operator";
    this.onRequest = options.onRequest;
  }

  /** From a kubeconfig file, or (no path) the in-cluster service account / $KUBECONFIG / ~/.kube/config. */
  static fromKubeconfig(path?: string, options?: KubeClientOptions): KubeClient {
    const kc = new KubeConfig();
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
    return new KubeClient(kc, options);
  }

  /** Closes idle keep-alive connections (tests, shutdown). */
  close(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }

  private async prepare(
    method: string,
    path: string,
    query: RequestOptions["query"],
    headers: Record<string, string>,
  ): Promise<PreparedRequest> {
    // Credentials may rotate (exec plugins, projected tokens): ask the KubeConfig on every request.
    const opts: https.RequestOptions = {};
    await this.kubeConfig.applyToHTTPSOptions(opts);
    const isHttps = this.server.protocol === "https:";
    if (!this.agent) {
      const tls = {
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        pfx: opts.pfx,
        passphrase: opts.passphrase,
        servername: opts.servername,
        ...(opts.rejectUnauthorized !== undefined ? { rejectUnauthorized: opts.rejectUnauthorized } : {}),
      };
      this.agent = isHttps
        ? new https.Agent({ ...tls, keepAlive: true })
        : new http.Agent({ keepAlive: true });
    }
    const basePath = this.server.pathname.replace(/\/$/, "");
    const url = new URL(`${basePath}${path}`, this.server);
    for (const [k, v] of Object.entries(query ?? {}))
      if (v !== undefined && v !== "") url.searchParams.set(k, String(v));
    const authHeaders: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) authHeaders[k] = String(v);
    if (opts.auth) authHeaders["Authorization"] = `Basic ${Buffer.from(opts.auth).toString("base64")}`;
    return {
      url,
      transport: isHttps ? https : http,
      options: {
        method,
        agent: this.agent,
        headers: { Accept: "application/json", "User-Agent": this.userAgent, ...authHeaders, ...headers },
      },
    };
  }

  /**
   * One request; resolves with the parsed JSON body, rejects with `KubeApiError` on a non-2xx answer.
   * An answer with Retry-After is retried after that delay (see {@link shouldRetryAfter}).
   */
  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.requestOnce<T>(method, path, options);
      } catch (error) {
        if (!(error instanceof KubeApiError) || !shouldRetryAfter(error, attempt)) throw error;
        const delayMs = (error.retryAfterSeconds ?? 0) * 1000;
        log.debug(
          { method, path, status: error.statusCode, delayMs, attempt },
          "server asked to retry after a delay",
        );
        await new Promise<void>((resolve, reject) => {
          if (options.signal?.aborted) return reject(new Error(`${method} ${path}: aborted`));
          const onAbort = () => {
            clearTimeout(timer);
            reject(new Error(`${method} ${path}: aborted`));
          };
          const timer = setTimeout(() => {
            options.signal?.removeEventListener("abort", onAbort);
            resolve();
          }, delayMs);
          options.signal?.addEventListener("abort", onAbort, { once: true });
        });
      }
    }
  }

  private async requestOnce<T>(method: string, path: string, options: RequestOptions): Promise<T> {
    const headers: Record<string, string> = {};
    let payload: string | undefined;
    if (options.body !== undefined) {
      payload = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
      headers["Content-Type"] = options.contentType ?? "application/json";
      headers["Content-Length"] = String(Buffer.byteLength(payload));
    }
    const prepared = await this.prepare(method, path, options.query, headers);
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    const startedAt = this.onRequest ? performance.now() : 0;
    let answeredStatus = 0;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | undefined, value?: T) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.onRequest?.({
          verb: requestVerb(method, path, options.contentType),
          path,
          status: answeredStatus,
          seconds: (performance.now() - startedAt) / 1000,
        });
        options.signal?.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve(value as T);
      };
      const req = prepared.transport.request(prepared.url, prepared.options, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (e) => finish(e));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          const status = res.statusCode ?? 0;
          answeredStatus = status;
          if (status < 200 || status >= 300) {
            const error = parseKubeApiError(status, body, { method, path });
            error.retryAfterSeconds =
              parseRetryAfterSeconds(res.headers["retry-after"]) ?? error.retryAfterSeconds;
            finish(error);
            return;
          }
          if (!body) return finish(undefined, undefined as T);
          try {
            finish(undefined, JSON.parse(body) as T);
          } catch (e) {
            finish(new Error(`${method} ${path}: invalid JSON in answer: ${(e as Error).message}`));
          }
        });
      });
      const timer = setTimeout(() => {
        req.destroy();
        finish(
          new KubeApiError({
            statusCode: 504,
            reason: "Timeout",
            message: `${method} ${path}: no answer within ${timeoutMs} ms`,
            method,
            path,
          }),
        );
      }, timeoutMs);
      const onAbort = () => {
        req.destroy();
        finish(new Error(`${method} ${path}: aborted`));
      };
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener("abort", onAbort, { once: true });
      req.on("error", (e) => finish(e));
      req.end(payload);
    });
  }

  get<T = KubeObject>(path: string, options?: { signal?: AbortSignal }): Promise<T> {
    return this.request<T>("GET", path, options);
  }

  /** Lists a collection, following `continue` tokens until the whole list is read. */
  async list<T = KubeObject>(path: string, options: ListOptions = {}): Promise<KubeList<T>> {
    const items: T[] = [];
    let continueToken = options.continue;
    let first: KubeList<T> | undefined;
    for (;;) {
      let page: KubeList<T>;
      try {
        page = await this.request<KubeList<T>>("GET", path, {
          query: {
            labelSelector: options.labelSelector,
            fieldSelector: options.fieldSelector,
            // The server rejects resourceVersion together with continue.
            resourceVersion: continueToken ? undefined : options.resourceVersion,
            limit: options.limit,
            continue: continueToken,
          },
          ...(options.signal ? { signal: options.signal } : {}),
        });
      } catch (err) {
        // A continue token expires with compaction (410): start over with one unpaginated consistent list.
        if (isGone(err) && continueToken && !options.continue) {
          log.info({ path }, "list continue token expired; relisting without pagination");
          return this.list<T>(path, { ...options, limit: undefined, resourceVersion: undefined });
        }
        throw err;
      }
      first ??= page;
      items.push(...(page.items ?? []));
      continueToken = page.metadata?.continue;
      if (!continueToken) {
        return {
          apiVersion: first.apiVersion,
          kind: first.kind,
          // All pages of one list share the first page's snapshot resourceVersion.
          metadata: { resourceVersion: first.metadata?.resourceVersion ?? page.metadata?.resourceVersion },
          items,
        };
      }
    }
  }

  /**
   * Watches a collection and calls `onEvent` for every event (ERROR events included: their object is a
   * Status). Resolves when the server ends the stream (e.g. at `timeoutSeconds`) or `signal` aborts;
   * rejects with `KubeApiError` when the server refuses the watch (410 when the resourceVersion is too old)
   * or with the network error when the connection breaks.
   */
  async watch<T = KubeObject>(
    path: string,
    options: WatchOptions,
    onEvent: (event: WatchEvent<T>) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const prepared = await this.prepare(
      "GET",
      path,
      {
        watch: "true",
        resourceVersion: options.resourceVersion,
        allowWatchBookmarks: options.allowWatchBookmarks ? "true" : undefined,
        timeoutSeconds: options.timeoutSeconds,
        labelSelector: options.labelSelector,
        fieldSelector: options.fieldSelector,
      },
      {},
    );
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: Error) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve();
      };
      const req = prepared.transport.request(prepared.url, prepared.options, (res) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const error = parseKubeApiError(status, Buffer.concat(chunks).toString("utf8"), {
              method: "WATCH",
              path,
            });
            error.retryAfterSeconds =
              parseRetryAfterSeconds(res.headers["retry-after"]) ?? error.retryAfterSeconds;
            finish(error);
          });
          res.on("error", (e) => finish(e));
          return;
        }
        let buffered = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffered += chunk;
          let newline: number;
          while ((newline = buffered.indexOf("\n")) >= 0) {
            const line = buffered.slice(0, newline).trim();
            buffered = buffered.slice(newline + 1);
            if (!line) continue;
            let event: WatchEvent<T>;
            try {
              event = JSON.parse(line) as WatchEvent<T>;
            } catch {
              log.warn({ path, line: line.slice(0, 200) }, "watch: skipping a line that is not JSON");
              continue;
            }
            if (settled) return;
            onEvent(event);
          }
        });
        res.on("end", () => finish());
        res.on("aborted", () =>
          finish(signal?.aborted ? undefined : new Error(`watch ${path}: connection aborted`)),
        );
        res.on("error", (e) => finish(signal?.aborted ? undefined : e));
        res.on("close", () =>
          finish(res.complete || signal?.aborted ? undefined : new Error(`watch ${path}: connection closed`)),
        );
      });
      const onAbort = () => {
        finish();
        req.destroy();
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      req.on("error", (e) => finish(signal?.aborted ? undefined : e));
      req.end();
    });
  }

  /** Server-side apply of `obj` (or of its status/scale subresource), owned by `fieldManager`. */
  apply<T extends KubeObject>(obj: T, options: ApplyOptions = {}): Promise<T> {
    const path = pathOfObject(obj, true) + (options.subresource ? `/${options.subresource}` : "");
    return this.request<T>("PATCH", path, {
      query: {
        fieldManager: options.fieldManager ?? FIELD_MANAGER,
        force: options.force ?? true,
        dryRun: options.dryRun ? "All" : undefined,
      },
      // JSON is YAML: the apply content type takes a JSON body as is.
      body: obj,
      contentType: "application/apply-patch+yaml",
    });
  }

  patch<T = KubeObject>(
    path: string,
    body: unknown,
    contentType: PatchContentType = "application/merge-patch+json",
    options: { fieldManager?: string } = {},
  ): Promise<T> {
    return this.request<T>("PATCH", path, {
      body,
      contentType,
      query: {
        fieldManager:
          options.fieldManager ??
          (contentType === "application/apply-patch+yaml" ? FIELD_MANAGER : undefined),
      },
    });
  }

  /** POST to the object's collection (or to `path` when given). */
  create<T extends KubeObject>(obj: T, options: { path?: string; fieldManager?: string } = {}): Promise<T> {
    return this.request<T>("POST", options.path ?? pathOfObject(obj, false), {
      body: obj,
      query: { fieldManager: options.fieldManager ?? FIELD_MANAGER },
    });
  }

  /** PUT the whole object; with `metadata.resourceVersion` set this is an optimistic-concurrency update (409 when stale). */
  replace<T extends KubeObject>(obj: T, options: { path?: string; fieldManager?: string } = {}): Promise<T> {
    return this.request<T>("PUT", options.path ?? pathOfObject(obj, true), {
      body: obj,
      query: { fieldManager: options.fieldManager ?? FIELD_MANAGER },
    });
  }

  delete<T = KubeStatus>(path: string, options: DeleteOptions = {}): Promise<T> {
    const hasBody =
      options.propagationPolicy || options.gracePeriodSeconds !== undefined || options.preconditions;
    return this.request<T>("DELETE", path, {
      ...(hasBody
        ? {
            body: {
              apiVersion: "v1",
              kind: "DeleteOptions",
              ...(options.propagationPolicy ? { propagationPolicy: options.propagationPolicy } : {}),
              ...(options.gracePeriodSeconds !== undefined
                ? { gracePeriodSeconds: options.gracePeriodSeconds }
                : {}),
              ...(options.preconditions ? { preconditions: options.preconditions } : {}),
            },
          }
        : {}),
    });
  }
}

/** `namespace/name` (or `name` for cluster-scoped objects): the key informers and the work queue use. */
export function objectKey(obj: KubeObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? "";
  return ns ? `${ns}/${name}` : name;
}

/** Splits a key made by `objectKey`. */
export function splitObjectKey(key: string): { namespace: string | undefined; name: string } {
  const slash = key.indexOf("/");
  return slash < 0
    ? { namespace: undefined, name: key }
    : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** Kubernetes MicroTime (RFC 3339 with exactly 6 fractional digits; the server refuses 3). */
export function microTime(date: Date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}
