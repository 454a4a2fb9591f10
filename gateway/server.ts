/**
 * The gateway's OpenAI-compatible HTTP front: reads and checks a request, finds the ModelDeployment
 * serving its `model`, picks a pod (gateway/routing), holds the request while there is no ready pod,
 * and passes the engine's answer through as it arrives. Errors take OpenAI's shape (errors.ts).
 *
 * Pass-through: the request body goes to the engine unchanged (except the `priority` member on pods
 * whose vLLM engine schedules by priority: the tenant's band, engine-priority.ts); the answer's bytes come back chunk by
 * chunk (an SSE stream is cut only at event boundaries, sse.ts), with backpressure both ways. A client
 * that goes away aborts the upstream request (the engine sees the connection close and stops). An
 * engine that dies mid-stream ends the client's stream with an error event. Redirects from pods are
 * never followed (502).
 */
import { randomUUID } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { logger } from "../operator/log/logger.js";
import { type GatewayConfig } from "./config.js";
import { GatewayError, errorEvent, echo, sendErrorResponse } from "./errors.js";
import type { FleetView, ModelRoute, Endpoint } from "./fleet.js";
import type { GatewayMetrics } from "./metrics.js";
import { type CompletionRequest, parseCompletionRequest, readBody } from "./request.js";
import type { CascadeRequest } from "./cascade/serve.js";
import { type HeldEntry, HoldQueue } from "./routing/hold-queue.js";
import { DEFAULT_PICK_LIMITS, DEFAULT_PICK_WEIGHTS, pickEndpoint, recordPick } from "./routing/picker.js";
import type { PickResult, RequestFeatures } from "./routing/types.js";
import { SseFramer } from "./sse.js";
import { type TenancyHook, type TenancyTicket, maxTokensOf } from "./tenancy/tenancy.js";
import type { RegionRouter } from "./region-router.js";
import { NO_RESERVE, limitsForBand } from "./tenancy/reserve.js";
import { schedulesByPriority, vllmPriorityForBand, withEnginePriority } from "./engine-priority.js";

export type GatewayServerConfig = Pick<
  GatewayConfig,
  | "maxBodyBytes"
  | "maxPromptChars"
  | "holdMaxPerModel"
  | "holdTimeoutMs"
  | "maxLoadPerEndpoint"
  | "upstreamHeadersTimeoutMs"
  | "upstreamIdleTimeoutMs"
  | "sessionHeader"
  | "debugHeaders"
  | "weights"
  | "slotReserve"
>;

export const DEFAULT_SERVER_CONFIG: GatewayServerConfig = {
  maxBodyBytes: 8 * 1024 * 1024,
  maxPromptChars: 64 * 1024,
  holdMaxPerModel: 256,
  holdTimeoutMs: 120_000,
  maxLoadPerEndpoint: 0,
  upstreamHeadersTimeoutMs: 300_000,
  upstreamIdleTimeoutMs: 60_000,
  sessionHeader: "x-session-id",
  debugHeaders: true,
  weights: DEFAULT_PICK_WEIGHTS,
  slotReserve: NO_RESERVE,
};

/** What the server tells the demand writer (demand.ts). */
export interface DemandSink {
  recordRequest(route: ModelRoute): void;
  heldChanged(route: ModelRoute): void;
}

export interface GatewayServerOptions {
  fleet: FleetView;
  metrics: GatewayMetrics;
  config?: Partial<GatewayServerConfig>;
  demand?: DemandSink;
  /** Tenants and tiers (gateway/tenancy): authenticates and admits each request, settles its tokens. */
  tenancy?: TenancyHook;
  now?: () => number;
  /** Region routing across pods in several regions (gateway/region-router.ts); absent: off. */
  regions?: Pick<RegionRouter, "annotate" | "narrow">;
  /** Model aliases (ModelRoute cascades, gateway/cascade): serves `model` when it is one. */
  cascade?: {
    serve(request: CascadeRequest): boolean;
    /** The alias a request is a step of, when it is the cascade's own hop (tenancy's allowed models). */
    aliasOf?(req: IncomingMessage): string | undefined;
    /** Aliases that serve now, listed in /v1/models beside the models. */
    aliases?(): Array<{ id: string; createdAtSeconds: number }>;
  };
}

export const HEADER_ENDPOINT = "x-gpufleet-endpoint";
export const HEADER_PICK_REASON = "x-gpufleet-pick-reason";
export const HEADER_HELD_MS = "x-gpufleet-held-ms";
/** Seconds a client is told to wait after a 429 (hold queue full). */
export const OVERLOADED_RETRY_AFTER_SECONDS = 2;
/** Seconds a client is told to wait after a 503 (no ready pod within the hold timeout). */
export const NO_CAPACITY_RETRY_AFTER_SECONDS = 10;

const PATHS = new Set(["/v1/chat/completions", "/v1/completions"]);
/** Connect failures that mean the request never reached an engine: safe to send to another pod once. */
const RETRYABLE_CONNECT_ERRORS = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL"]);
/**
 * Sends of one request that may end in a refused connection (answered 502 after the last) or in an engine's
 * 404 for the model (passed on after the last); between them it goes to another pod or back to the hold
 * queue (and never past the hold timeout since it arrived).
 */
const MAX_CONNECT_ATTEMPTS = 6;
/**
 * The connection was cut after the request was sent and before any byte of the answer (the engine died
 * or restarted under it): nothing reached the client, so the request goes to another pod, once (a request
 * that itself kills engines must not take down a second and a third).
 */
const RESET_BEFORE_ANSWER_ERRORS = new Set(["ECONNRESET", "EPIPE"]);

interface Held {
  features: RequestFeatures;
  start: (pick: PickResult) => void;
  fail: (error: GatewayError) => void;
}

interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  requestId: string;
  arrivedAt: number;
  path: string;
  body: Buffer;
  request: CompletionRequest;
  route: ModelRoute;
  heldMs: number;
  attempts: number;
  tried: Set<string>;
  /** Sent to another pod once already after a connection cut before the answer began. */
  resent?: boolean;
  tenancy?: TenancyTicket | undefined;
  /** The body with the band in `priority`, for pods that schedule by priority (made on first use). */
  enginePriorityBody?: Buffer;
}

const log = logger.child({ component: "gateway" });

/** A request's prompt tokens as the gateway counts them (approximate: characters / 4). */
function promptTokensOf(features: RequestFeatures): number {
  return features.promptTokens ?? Math.max(1, Math.ceil(features.prompt.length / 4));
}

/** A metric's labelled child from `children`, made once per key (keys are bounded like the labels). */
function labelledChild<T>(children: Map<string, T>, key: string, make: () => T): T {
  let child = children.get(key);
  if (child === undefined) {
    child = make();
    children.set(key, child);
  }
  return child;
}

/** The headers sent to the engine: the body's type and length, what the client accepts, its credentials, the request id. */
function upstreamHeaders(req: IncomingMessage, exchange: Exchange, body: Buffer): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {
    "content-type": "application/json",
    "content-length": body.length,
    accept: typeof req.headers.accept === "string" ? req.headers.accept : "*/*",
    "x-request-id": exchange.requestId,
  };
  if (typeof req.headers.authorization === "string") headers.authorization = req.headers.authorization;
  return headers;
}

function requestIdOf(req: IncomingMessage): string {
  const given = req.headers["x-request-id"];
  return typeof given === "string" && /^[A-Za-z0-9._-]{1,64}$/.test(given) ? given : randomUUID();
}

export class GatewayServer {
  readonly config: GatewayServerConfig;
  readonly holds: HoldQueue<Held>;
  readonly server: http.Server;
  private readonly agent = new http.Agent({
    keepAlive: true,
    maxFreeSockets: 1024,
    timeout: 4_000,
    scheduling: "lifo",
    // Set once per upstream socket when it is made (net.connect), not per request.
    noDelay: true,
  } as http.AgentOptions);
  /**
   * Labelled metric children, looked up once per label set: prom-client otherwise hashes the label
   * object on every call. Keys are bounded like the labels (routed models, statuses, pick reasons).
   */
  private readonly requestCounters = new Map<string, { inc(): void }>();
  private readonly pickCounters = new Map<string, { inc(): void }>();
  private readonly durationHistograms = new Map<string, { observe(value: number): void }>();
  private readonly firstByteHistograms = new Map<string, { observe(value: number): void }>();
  private readonly now: () => number;
  private holdTimer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;
  private closing = false;
  private active = 0;
  /** Prompt tokens (approximate) of the held requests, per model: the demand writer's heldTokens. */
  private readonly heldTokensByModel = new Map<string, number>();

  constructor(private readonly options: GatewayServerOptions) {
    this.config = { ...DEFAULT_SERVER_CONFIG, ...options.config };
    this.now = options.now ?? Date.now;
    this.holds = new HoldQueue<Held>({
      maxPerModel: this.config.holdMaxPerModel,
      maxWaitMs: this.config.holdTimeoutMs,
      maxModels: 1024,
    });
    this.server = http.createServer({ noDelay: true }, (req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 60_000;
    this.server.headersTimeout = 65_000;
    this.unsubscribe = options.fleet.subscribe(() => this.drainAll());
  }

  async listen(port: number, host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    return (this.server.address() as AddressInfo).port;
  }

  /** Prompt tokens (approximate) of the requests held for `model`. */
  heldTokens(model: string): number {
    return this.heldTokensByModel.get(model) ?? 0;
  }

  private addHeldTokens(model: string, tokens: number): void {
    const next = (this.heldTokensByModel.get(model) ?? 0) + tokens;
    if (next > 0.5) this.heldTokensByModel.set(model, next);
    else this.heldTokensByModel.delete(model);
  }

  /** Requests being served or held now. */
  get activeRequests(): number {
    return this.active;
  }

  /**
   * Stops accepting; held requests get 503; requests in flight may finish within `graceMs`, then are cut.
   */
  async close(graceMs = 0): Promise<void> {
    this.closing = true;
    this.unsubscribe();
    clearTimeout(this.holdTimer);
    for (const model of this.holds.models())
      for (const entry of this.holds.release(model))
        entry.item.fail(new GatewayError("no_capacity", "The gateway is shutting down; retry.", 1));
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const deadline = Date.now() + graceMs;
    while (this.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    this.server.closeAllConnections();
    await closed;
    this.agent.destroy();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const method = req.method ?? "GET";
    if (path === "/v1/models") {
      if (method !== "GET")
        return this.sendError(res, new GatewayError("method_not_allowed", "Use GET for /v1/models."));
      return this.sendModels(res);
    }
    if (!PATHS.has(path))
      return this.sendError(res, new GatewayError("not_found", `No route for ${method} ${echo(path)}.`));
    if (method !== "POST")
      return this.sendError(res, new GatewayError("method_not_allowed", `Use POST for ${path}.`));
    this.active++;
    res.once("close", () => this.active--);
    this.serveCompletion(req, res, path).catch((error: unknown) => {
      if (error instanceof GatewayError) {
        // A refused body: stop reading it (the connection is closed after the answer).
        if (error.code === "request_too_large") res.setHeader("connection", "close");
        this.sendError(res, error);
        this.count(undefined, error.status);
        return;
      }
      log.error({ err: error }, "request failed");
      this.sendError(res, new GatewayError("upstream_error", "The gateway failed to handle the request."));
    });
  }

  private sendModels(res: ServerResponse): void {
    const data = this.options.fleet
      .routes()
      .map((r) => ({ id: r.model, object: "model", created: r.createdAtSeconds, owned_by: "gpufleet" }));
    const ids = new Set(data.map((m) => m.id));
    for (const alias of this.options.cascade?.aliases?.() ?? [])
      if (!ids.has(alias.id))
        data.push({ id: alias.id, object: "model", created: alias.createdAtSeconds, owned_by: "gpufleet" });
    data.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const body = JSON.stringify({ object: "list", data });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  }

  private sendError(res: ServerResponse, error: GatewayError): void {
    sendErrorResponse(res, error);
  }

  private count(route: ModelRoute | undefined, status: number): void {
    const model = route?.model ?? "";
    labelledChild(this.requestCounters, `${model}\u0000${status}`, () =>
      this.options.metrics.requests.labels({ model, code: String(status) }),
    ).inc();
  }

  private countPick(reason: string): void {
    labelledChild(this.pickCounters, reason, () => this.options.metrics.picks.labels({ reason })).inc();
  }

  private observeDuration(model: string, stream: boolean, seconds: number): void {
    labelledChild(this.durationHistograms, `${model}\u0000${stream}`, () =>
      this.options.metrics.duration.labels({ model, stream: String(stream) }),
    ).observe(seconds);
  }

  private observeFirstByte(model: string, seconds: number): void {
    labelledChild(this.firstByteHistograms, model, () =>
      this.options.metrics.timeToFirstByte.labels({ model }),
    ).observe(seconds);
  }

  private async serveCompletion(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const arrivedAt = performance.now();
    const requestId = requestIdOf(req);
    const body = await readBody(req, this.config.maxBodyBytes);
    const sessionHeader = req.headers[this.config.sessionHeader];
    const sessionKey =
      typeof sessionHeader === "string" && sessionHeader.length > 0 ? sessionHeader.slice(0, 256) : undefined;
    const request = parseCompletionRequest(body, path === "/v1/chat/completions", {
      maxPromptChars: this.config.maxPromptChars,
      sessionKey,
    });
    // A model alias (ModelRoute): the cascade sends each step it tries through this gateway again.
    if (
      !this.options.fleet.route(request.model) &&
      this.options.cascade?.serve({ req, res, path, body, model: request.model })
    )
      return;
    // Tenancy: 401/403/429 here; the ticket settles the tokens when the exchange ends.
    const tenancy = this.options.tenancy?.admit(
      req,
      res,
      body,
      request,
      this.options.cascade?.aliasOf?.(req),
    );
    this.options.regions?.annotate(request.features, req.headers);
    const route = this.options.fleet.route(request.model);
    if (!route)
      throw new GatewayError("model_not_found", `The model \`${echo(request.model)}\` does not exist.`);
    if (this.closing) throw new GatewayError("no_capacity", "The gateway is shutting down; retry.", 1);
    this.options.demand?.recordRequest(route);
    const exchange: Exchange = {
      req,
      res,
      requestId,
      arrivedAt,
      path,
      body,
      request,
      route,
      heldMs: 0,
      attempts: 0,
      tried: new Set(),
      tenancy,
    };
    // Arrival order: while others are held for this model, a new request queues behind them.
    const pick =
      this.holds.size(route.model) === 0
        ? this.pick(route, request.features, undefined, this.bandOf(exchange))
        : undefined;
    if (pick) this.forward(exchange, pick);
    else this.hold(exchange);
  }

  /** A request's priority band (its tier's UsageTier.priority; 0 without tenancy). */
  private bandOf(exchange: Exchange): number {
    return exchange.tenancy?.context.priority ?? 0;
  }

  /**
   * The body sent to `endpoint`: the client's, or, on a pod whose vLLM engine schedules by priority, with
   * the request's band as vLLM's `priority` (replacing the client's): the engine's own queue then keeps
   * the order the hold queue releases in (engine-priority.ts).
   */
  private bodyFor(exchange: Exchange, endpoint: Endpoint): Buffer {
    if (!schedulesByPriority(endpoint.target)) return exchange.body;
    exchange.enginePriorityBody ??= withEnginePriority(
      exchange.body,
      vllmPriorityForBand(this.bandOf(exchange)),
      exchange.request.setsPriority,
    );
    return exchange.enginePriorityBody;
  }

  /**
   * A request that did not reach an engine, or was cut before its answer began, goes to another pod it has
   * not tried, picked for its band (the slot reserve applies), or else back to the hold queue.
   */
  private sendElsewhere(exchange: Exchange, pickNow: boolean): void {
    const { route, request, res } = exchange;
    const next = pickNow ? this.pick(route, request.features, exchange.tried, this.bandOf(exchange)) : undefined;
    if (next) {
      this.forward(exchange, next);
      return;
    }
    try {
      this.hold(exchange);
    } catch (error) {
      const refusedHold =
        error instanceof GatewayError
          ? error
          : new GatewayError("upstream_unreachable", "The engine pod could not be reached.");
      this.sendError(res, refusedHold);
      this.count(route, refusedHold.status);
    }
  }

  private pick(
    route: ModelRoute,
    features: RequestFeatures,
    exclude?: ReadonlySet<string>,
    priority = 0,
  ): PickResult | undefined {
    const endpoints = exclude?.size
      ? route.endpoints.filter((e) => !exclude.has(e.address))
      : route.endpoints;
    const inRegion = this.options.regions ? this.options.regions.narrow(endpoints, features) : endpoints;
    const limits =
      this.config.maxLoadPerEndpoint > 0 || route.prefillBudgetTokens !== undefined
        ? {
            ...DEFAULT_PICK_LIMITS,
            ...(this.config.maxLoadPerEndpoint > 0
              ? { maxLoadPerEndpoint: this.config.maxLoadPerEndpoint }
              : {}),
            ...(route.prefillBudgetTokens !== undefined
              ? { maxPendingPrefillTokens: route.prefillBudgetTokens }
              : {}),
          }
        : DEFAULT_PICK_LIMITS;
    // Lower bands may not take a pod's last slots (config.slotReserve, issue 14 §2).
    const bandLimits = limitsForBand(limits, priority, this.config.slotReserve);
    return pickEndpoint(features, inRegion, route.routing, this.config.weights, this.now(), bandLimits);
  }

  private hold(exchange: Exchange): void {
    const { route, res } = exchange;
    const heldAt = performance.now();
    const tokens = promptTokensOf(exchange.request.features);
    let settled = false;
    const outcome = this.holds.hold(
      route.model,
      {
        features: exchange.request.features,
        start: (pick) => {
          settled = true;
          this.addHeldTokens(route.model, -tokens);
          exchange.heldMs += performance.now() - heldAt;
          this.options.metrics.holdOutcomes.inc({ outcome: "released" });
          this.forward(exchange, pick);
        },
        fail: (error) => {
          settled = true;
          this.addHeldTokens(route.model, -tokens);
          this.options.metrics.holdOutcomes.inc({
            outcome: error.code === "overloaded" ? "shed" : "timeout",
          });
          this.sendError(res, error);
          this.count(route, error.status);
        },
      },
      this.now(),
      // Band and fair share (issue 14): the tenant's priority band; its tokens (prompt + max output) as cost.
      {
        priority: this.bandOf(exchange),
        fairnessKey: exchange.tenancy?.context.fairnessKey ?? "",
        cost: tokens + (maxTokensOf(exchange.body) ?? 0),
        // The tier's own wait limit (UsageTier.maxQueueWaitMs), e.g. from its TTFT target.
        ...(exchange.tenancy?.context.maxWaitMs !== undefined
          ? { maxWaitMs: exchange.tenancy.context.maxWaitMs }
          : {}),
      },
    );
    if (outcome.shed?.length) this.shed(outcome.shed);
    if (!outcome.held) {
      this.options.metrics.holdOutcomes.inc({ outcome: "refused" });
      throw new GatewayError(
        "overloaded",
        `Too many requests are waiting for model \`${route.model}\`; retry later.`,
        OVERLOADED_RETRY_AFTER_SECONDS,
      );
    }
    this.addHeldTokens(route.model, tokens);
    res.once("close", () => {
      if (settled) return;
      if (this.holds.cancel(route.model, outcome.ticket)) {
        this.addHeldTokens(route.model, -tokens);
        this.options.metrics.holdOutcomes.inc({ outcome: "cancelled" });
        this.heldChanged(route);
      }
    });
    this.heldChanged(route);
    this.armHoldTimer();
    // A pod may have become ready between the pick and now.
    this.drain(route.model);
  }

  /** Held requests pushed out by higher bands (their wait would exceed their band's limit): 429. */
  private shed(entries: ReadonlyArray<HeldEntry<Held>>): void {
    for (const entry of entries)
      entry.item.fail(
        new GatewayError(
          "overloaded",
          `Model \`${entry.model}\` is overloaded; requests of higher priority go first. Retry later.`,
          OVERLOADED_RETRY_AFTER_SECONDS,
        ),
      );
  }

  private heldChanged(route: ModelRoute): void {
    this.options.metrics.held.set({ model: route.model }, this.holds.size(route.model));
    this.options.demand?.heldChanged(route);
  }

  private armHoldTimer(): void {
    clearTimeout(this.holdTimer);
    const next = this.holds.nextDeadlineMs();
    if (next === undefined) return;
    this.holdTimer = setTimeout(() => this.expireHeld(), Math.max(0, next - this.now()));
  }

  private expireHeld(): void {
    const expired = this.holds.expire(this.now());
    const models = new Set<string>();
    for (const entry of expired) {
      models.add(entry.model);
      entry.item.fail(
        new GatewayError(
          "no_capacity",
          `No pod of model \`${entry.model}\` became ready within ${Math.round(this.config.holdTimeoutMs / 1000)} s.`,
          NO_CAPACITY_RETRY_AFTER_SECONDS,
        ),
      );
    }
    for (const model of models) {
      const route = this.options.fleet.route(model);
      if (route) this.heldChanged(route);
    }
    this.armHoldTimer();
  }

  private drainAll(): void {
    for (const model of this.holds.models()) this.drain(model);
  }

  /** Releases held requests of `model`, oldest first, while a pod can take them. */
  private drain(model: string): void {
    if (this.holds.size(model) === 0) return;
    const route = this.options.fleet.route(model);
    if (!route) {
      for (const entry of this.holds.release(model))
        entry.item.fail(new GatewayError("model_not_found", `The model \`${model}\` does not exist.`));
      this.options.metrics.held.set({ model }, 0);
      return;
    }
    let released = 0;
    while (this.holds.size(model) > 0) {
      // Whether any pod can take the next request depends only on its band (the slot reserve): probe with
      // the band of the entry released next, then release it.
      const priority = this.holds.peek(model)?.priority ?? 0;
      if (!this.pick(route, { model, prompt: "", blockHashes: [] }, undefined, priority)) break;
      const [entry] = this.holds.release(model, 1, this.now());
      if (!entry) break;
      const pick = this.pick(route, entry.item.features, undefined, entry.priority);
      if (!pick) break; // cannot happen (probed), but never drop a request
      entry.item.start(pick);
      released++;
    }
    if (released > 0) {
      this.heldChanged(route);
      this.armHoldTimer();
    }
  }

  private forward(exchange: Exchange, pick: PickResult): void {
    const { req, res, route, request } = exchange;
    const metrics = this.options.metrics;
    const endpoint = pick.endpoint as Endpoint;
    exchange.attempts++;
    exchange.tried.add(endpoint.address);
    if (res.destroyed || (req.destroyed && !req.complete)) return;
    endpoint.inFlight++;
    metrics.inFlight.inc();
    this.countPick(pick.reason);
    recordPick(route.routing, request.features, pick, this.now());
    this.options.fleet.picked?.(route, endpoint.address);
    // Prefill backlog for the picker's prefill scorer and budget: this prompt counts until its first
    // byte comes back; then the pod may take a held request.
    const promptTokens = promptTokensOf(request.features);
    endpoint.pendingPrefillTokens = (endpoint.pendingPrefillTokens ?? 0) + promptTokens;
    let prefillPending = true;
    let prefillTimer: NodeJS.Timeout | undefined;
    const prefillDone = (release = true) => {
      if (!prefillPending) return;
      prefillPending = false;
      endpoint.pendingPrefillTokens = Math.max(0, (endpoint.pendingPrefillTokens ?? 0) - promptTokens);
      clearTimeout(prefillTimer);
      if (release && route.prefillBudgetTokens !== undefined) this.drain(route.model);
    };
    // A non-streamed answer's first byte is its end: its prompt leaves the backlog when the pod has
    // probably prefilled it (the backlog ahead of it and itself, at the plan's prefill rate) instead.
    if (!request.stream && route.prefillTokensPerSecond)
      prefillTimer = setTimeout(
        () => prefillDone(),
        Math.ceil((1000 * (endpoint.pendingPrefillTokens ?? promptTokens)) / route.prefillTokensPerSecond),
      );

    let finished = false;
    let responseStarted = false;
    let firstByte = true;
    let idleTimer: NodeJS.Timeout | undefined;
    const finish = (status: number) => {
      if (finished) return;
      finished = true;
      clearTimeout(headersTimer);
      clearTimeout(idleTimer);
      prefillDone(false);
      endpoint.inFlight--;
      metrics.inFlight.dec();
      exchange.tenancy?.settle(status, route, endpoint);
      this.count(route, status);
      this.observeDuration(route.model, request.stream, (performance.now() - exchange.arrivedAt) / 1000);
      if (this.config.maxLoadPerEndpoint > 0 || route.prefillBudgetTokens !== undefined)
        this.drain(route.model);
    };
    /** This send is over without an answer to the client: the request goes to another pod or is held. */
    const sendOn = (pickNow: boolean) => {
      if (finished) return;
      finished = true;
      prefillDone(false);
      endpoint.inFlight--;
      metrics.inFlight.dec();
      this.sendElsewhere(exchange, pickNow);
    };

    const target = endpoint.target;
    const body = this.bodyFor(exchange, endpoint);
    const upstream = http.request({
      host: target.podIP,
      port: target.port,
      method: "POST",
      path: exchange.path,
      agent: this.agent,
      headers: upstreamHeaders(req, exchange, body),
    });
    const headersTimer = setTimeout(() => {
      metrics.upstreamErrors.inc({ kind: "timeout" });
      upstream.destroy();
      this.sendError(
        res,
        new GatewayError(
          "upstream_timeout",
          `The engine pod did not answer within ${Math.round(this.config.upstreamHeadersTimeoutMs / 1000)} s.`,
        ),
      );
      finish(504);
    }, this.config.upstreamHeadersTimeoutMs);

    /** The engine went away (or went silent) after the answer began. */
    const failMidResponse = (kind: "disconnected" | "idle-timeout", sse: boolean) => {
      if (finished) return;
      metrics.upstreamErrors.inc({ kind });
      log.warn({ requestId: exchange.requestId, pod: endpoint.podName, kind }, "engine answer ended early");
      upstream.destroy();
      if (sse && !res.destroyed) {
        const error =
          kind === "idle-timeout"
            ? new GatewayError(
                "upstream_timeout",
                `The engine pod sent nothing for ${Math.round(this.config.upstreamIdleTimeoutMs / 1000)} s.`,
              )
            : new GatewayError(
                "upstream_disconnected",
                "The engine pod closed the stream before it was complete.",
              );
        res.end(errorEvent(error));
      } else {
        res.destroy();
      }
      finish(kind === "idle-timeout" ? 504 : 502);
    };

    upstream.on("response", (up) => {
      clearTimeout(headersTimer);
      responseStarted = true;
      up.on("error", () => undefined); // reported through "close" with up.complete false
      const status = up.statusCode ?? 502;
      if (status >= 300 && status < 400) {
        up.resume();
        upstream.destroy();
        metrics.upstreamErrors.inc({ kind: "redirect" });
        this.sendError(
          res,
          new GatewayError(
            "upstream_error",
            "The engine pod answered with a redirect; the gateway does not follow redirects.",
          ),
        );
        finish(502);
        return;
      }
      if (
        status === 404 &&
        !res.destroyed &&
        exchange.attempts < MAX_CONNECT_ATTEMPTS &&
        performance.now() - exchange.arrivedAt < this.config.holdTimeoutMs
      ) {
        // The engine does not serve the model this route sent it: the pod's address now belongs to another
        // model's engine (a pod IP reused before the watch caught up) or the engine lost the name. The
        // endpoint leaves the route until its /v1/models lists the model; the request, admitted and sent,
        // goes to another pod or waits in the hold queue. The answer's body is discarded unread.
        up.resume();
        upstream.destroy();
        metrics.upstreamErrors.inc({ kind: "wrong_model" });
        log.warn({ requestId: exchange.requestId, pod: endpoint.podName }, "engine pod does not serve the model; sending elsewhere");
        this.options.fleet.suspect?.(route, endpoint, "wrong-model");
        sendOn(true);
        return;
      }
      if (res.destroyed) {
        upstream.destroy();
        finish(499);
        return;
      }
      const contentType =
        typeof up.headers["content-type"] === "string" ? up.headers["content-type"] : "application/json";
      const sse = contentType.startsWith("text/event-stream");
      const headers: http.OutgoingHttpHeaders = { "content-type": contentType };
      if (sse) {
        headers["cache-control"] = "no-cache";
        headers["x-accel-buffering"] = "no";
      } else if (typeof up.headers["content-length"] === "string")
        headers["content-length"] = up.headers["content-length"];
      headers["x-request-id"] = exchange.requestId;
      if (this.config.debugHeaders) {
        headers[HEADER_ENDPOINT] = endpoint.podName;
        headers[HEADER_PICK_REASON] = pick.reason;
        if (exchange.heldMs > 0) headers[HEADER_HELD_MS] = String(Math.round(exchange.heldMs));
      }
      res.writeHead(status, headers);
      const framer = sse ? new SseFramer() : undefined;
      // One idle timer per answer, pushed back on every chunk (refresh: no new timer per chunk).
      idleTimer = setTimeout(() => failMidResponse("idle-timeout", sse), this.config.upstreamIdleTimeoutMs);
      up.on("data", (chunk: Buffer) => {
        if (finished) return;
        idleTimer?.refresh();
        let out: Buffer;
        try {
          out = framer ? framer.push(chunk) : chunk;
        } catch {
          failMidResponse("disconnected", sse);
          return;
        }
        if (out.length === 0) return;
        exchange.tenancy?.observe(out, sse);
        if (firstByte) {
          firstByte = false;
          prefillDone();
          this.observeFirstByte(route.model, (performance.now() - exchange.arrivedAt) / 1000);
        }
        if (!res.write(out)) {
          up.pause();
          res.once("drain", () => up.resume());
        }
      });
      up.on("end", () => {
        if (finished) return;
        const rest = framer?.flush();
        res.end(rest && rest.length ? rest : undefined);
        finish(status);
      });
      up.on("close", () => {
        if (!finished && !up.complete) failMidResponse("disconnected", sse);
      });
    });

    upstream.on("error", (err: NodeJS.ErrnoException) => {
      if (finished) return;
      if (responseStarted) {
        failMidResponse("disconnected", false);
        return;
      }
      clearTimeout(headersTimer);
      metrics.upstreamErrors.inc({ kind: "connect" });
      log.warn(
        { requestId: exchange.requestId, pod: endpoint.podName, code: err.code },
        "engine pod unreachable",
      );
      const refused = RETRYABLE_CONNECT_ERRORS.has(err.code ?? "");
      if (refused) {
        // Never reached the engine (restarting, or still binding its port): the pod is not routable
        // until its /health answers again; the request goes to another pod or back to the hold queue.
        this.options.fleet.suspect?.(route, endpoint);
        if (
          exchange.attempts < MAX_CONNECT_ATTEMPTS &&
          performance.now() - exchange.arrivedAt < this.config.holdTimeoutMs
        ) {
          // Arrival order: behind the requests already held for this model.
          sendOn(this.holds.size(route.model) === 0);
          return;
        }
      }
      if (!refused && RESET_BEFORE_ANSWER_ERRORS.has(err.code ?? "") && !exchange.resent) {
        // The pod takes nothing more until its /health answers: should this request wait in the hold queue,
        // it is not released to the engine that just died under it.
        this.options.fleet.suspect?.(route, endpoint);
        if (route.endpoints.some((e) => e.ready && !exchange.tried.has(e.address))) {
          exchange.resent = true;
          // It was admitted and sent already: it need not queue behind the held requests, but it keeps its
          // band, so a lower band's resend does not take a slot reserved for the top tiers (it waits in
          // the hold queue while the other pods have only such slots free).
          sendOn(true);
          return;
        }
      }
      this.sendError(res, new GatewayError("upstream_unreachable", "The engine pod could not be reached."));
      finish(502);
    });

    // The client went away: abort the upstream request so the engine stops generating.
    res.once("close", () => {
      if (finished) return;
      if (!res.writableFinished) {
        upstream.destroy();
        finish(499);
      }
    });
    upstream.end(body);
  }
}
