/**
 * Direct scraping of engine pods: GET http://<podIP>:<port><path> for each ready pod, with bounded
 * concurrency and a per-scrape deadline that covers connect, headers and body. Each pod yields either
 * a sample or a typed error, so one slow or broken pod never hides the others.
 */
import type { V1Pod } from "@kubernetes/client-node";
import {
  ENGINE_METRICS_PATH,
  EngineMetricsError,
  type EngineKind,
  type EngineMetricsSample,
  engineKindFromLabel,
  normalizeEngineMetrics,
} from "./engines.js";
import { isOpenMetricsContentType, ParseError, parseExposition } from "./exposition.js";
import { readBodyWithin } from "../runtime/http-body.js";

export const MODEL_DEPLOYMENT_LABEL = "gpufleet.io/model-deployment";
export const ENGINE_TYPE_LABEL = "inference.networking.k8s.io/engine-type";
export const ENGINE_PORT_NAME = "http";

export interface ScrapeTarget {
  namespace: string;
  podName: string;
  podIP: string;
  port: number;
  /** Metrics path; defaults to the engine's (see ENGINE_METRICS_PATH). */
  path?: string;
  engine: EngineKind;
  /** Served model name used to filter the `model_name` label. */
  modelName?: string;
  ready: boolean;
  /** The node the pod runs on (the gateway's region routing reads its region label). */
  nodeName?: string;
  /** KV-cache tokens of the pod's plan (its gpufleet.io/kv-cache-tokens annotation): its capacity relative to others. */
  kvCacheTokens?: number;
  /** GPU product and GPUs per replica (TP x PP) of the pod's plan, from its annotations: its token throughput relative to others. */
  compute?: PodCompute;
  /**
   * "priority" when the pod's vLLM engine orders its queue by request priority (its
   * gpufleet.io/scheduling-policy annotation, operator/render/index.ts): the gateway sends the band.
   */
  schedulingPolicy?: "priority";
}

/** What a replica computes on, as its pod's plan annotations say. */
export interface PodCompute {
  gpuProduct: string;
  /** tensorParallelism x pipelineParallelism: the GPUs that work on one replica's batches. */
  gpusPerReplica: number;
}

/**
 * The GPU product and GPUs per replica of the pod's plan, from the annotations the operator puts on its
 * pods (gpufleet.io/gpu-product, gpufleet.io/tensor-parallelism, gpufleet.io/pipeline-parallelism).
 * Bounded: a product name over 128 characters or a degree outside 1..64 reads as unknown.
 */
export function podCompute(pod: V1Pod): PodCompute | undefined {
  const annotations = pod.metadata?.annotations ?? {};
  const gpuProduct = annotations["gpufleet.io/gpu-product"];
  const tp = Number(annotations["gpufleet.io/tensor-parallelism"]);
  const pp = Number(annotations["gpufleet.io/pipeline-parallelism"] ?? 1);
  if (!gpuProduct || gpuProduct.length > 128) return undefined;
  if (!Number.isInteger(tp) || tp < 1 || tp > 64 || !Number.isInteger(pp) || pp < 1 || pp > 64) return undefined;
  return { gpuProduct, gpusPerReplica: tp * pp };
}

export type ScrapeErrorKind =
  "timeout" | "http-status" | "redirect" | "network" | "parse" | "metrics" | "too-large";

/**
 * A failed scrape. `message` is ours alone — the kind, numbers, positions and our own metric names —
 * never bytes from the response (body, headers, label values): the tenant's engine writes those, and
 * the message goes to the ModelDeployment's status, which the tenant reads, and to the operator's log.
 */
export class ScrapeError extends Error {
  override readonly name = "ScrapeError";
  constructor(
    readonly kind: ScrapeErrorKind,
    message: string,
    readonly httpStatus?: number,
    override readonly cause?: unknown,
  ) {
    super(message);
  }
}

export type ScrapeResult =
  | { target: ScrapeTarget; ok: true; sample: EngineMetricsSample }
  | { target: ScrapeTarget; ok: false; error: ScrapeError };

export interface ScrapeOptions {
  /** Scrapes in flight at once for this call (at least 1). */
  concurrency: number;
  /** Deadline for one scrape, from connect to the last body byte. */
  timeoutMs: number;
  /** Responses larger than this are refused (default 8 MiB; a vLLM /metrics is ~100 KiB). */
  maxBodyBytes?: number;
  /** A bound shared by every caller (all ModelDeployments): a scrape waits for a slot before it starts. */
  limiter?: ConcurrencyLimiter;
  /** Clock for scrapedAtMs (tests). */
  now?: () => number;
}

/** A counting semaphore: at most `limit` tasks run at once, the others wait in FIFO order. */
export class ConcurrencyLimiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`limit must be a whole number >= 1, got ${limit}`);
  }

  get inFlight(): number {
    return this.active;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so `active` never dips and lets a newcomer jump the queue.
      if (next) next();
      else this.active--;
    }
  }
}

export function scrapeUrl(target: ScrapeTarget): string {
  const host = target.podIP.includes(":") ? `[${target.podIP}]` : target.podIP;
  return `http://${host}:${target.port}${target.path ?? ENGINE_METRICS_PATH[target.engine]}`;
}

/** Reads the body up to maxBytes; aborting the signal rejects the read. */
function readBody(response: Response, maxBytes: number): Promise<string> {
  return readBodyWithin(
    response,
    maxBytes,
    () => new ScrapeError("too-large", `metrics body exceeds ${maxBytes} bytes`),
  );
}

/** Scrapes one target. Never throws: every failure is returned as a ScrapeError. */
export async function scrapeTarget(
  target: ScrapeTarget,
  options: Omit<ScrapeOptions, "concurrency" | "limiter">,
): Promise<ScrapeResult> {
  const now = options.now ?? Date.now;
  const url = scrapeUrl(target);
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, options.timeoutMs);
  try {
    const response = await fetch(url, {
      signal: controller.signal,
      // A redirect would let the engine image point the operator at any address it can reach.
      redirect: "manual",
      headers: { accept: "text/plain;version=0.0.4;q=0.9,*/*;q=0.1" },
    });
    if (response.type === "opaqueredirect" || (response.status >= 300 && response.status < 400)) {
      await response.body?.cancel().catch(() => undefined);
      throw new ScrapeError(
        "redirect",
        `HTTP ${response.status}; redirects are not followed`,
        response.status,
      );
    }
    if (!response.ok) {
      await response.body?.cancel().catch(() => undefined);
      throw new ScrapeError("http-status", `HTTP ${response.status}`, response.status);
    }
    const text = await readBody(response, options.maxBodyBytes ?? 8 * 1024 * 1024);
    const scrapedAtMs = now();
    const families = parseExposition(text, {
      openMetrics: isOpenMetricsContentType(response.headers.get("content-type")),
    });
    const sample = normalizeEngineMetrics(families, {
      engine: target.engine,
      scrapedAtMs,
      ...(target.modelName === undefined ? {} : { modelName: target.modelName }),
    });
    return { target, ok: true, sample };
  } catch (error) {
    return { target, ok: false, error: classify(error, timedOut, options.timeoutMs) };
  } finally {
    clearTimeout(timer);
  }
}

/** Maps any failure to a kind and a message built only from our own words and numbers. */
function classify(error: unknown, timedOut: boolean, timeoutMs: number): ScrapeError {
  if (timedOut)
    return new ScrapeError("timeout", `no complete response within ${timeoutMs} ms`, undefined, error);
  if (error instanceof ScrapeError) return error;
  if (error instanceof ParseError)
    // The position only: the parser's own message quotes the offending text.
    return new ScrapeError(
      "parse",
      `not Prometheus text at line ${error.line}, column ${error.column}`,
      undefined,
      error,
    );
  if (error instanceof EngineMetricsError)
    // `metric` is one of our configured names (ENGINE_METRIC_NAMES); the message may quote label values.
    return new ScrapeError("metrics", `${error.kind} ${error.metric}`.trim(), undefined, error);
  return new ScrapeError("network", networkCode(error), undefined, error);
}

/** The system error code (ECONNREFUSED, EHOSTUNREACH, ...) of a failed fetch, or a fixed phrase. */
function networkCode(error: unknown): string {
  for (
    let cause: unknown = error, depth = 0;
    cause instanceof Error && depth < 4;
    cause = cause.cause, depth++
  ) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string" && /^[A-Z][A-Z0-9_]{1,39}$/.test(code)) return code;
  }
  return "connection failed";
}

/**
 * Scrapes every ready target (not-ready ones are skipped: they are loading or draining) with at
 * most `concurrency` requests in flight. Results come back in the order of the ready targets.
 */
export async function scrapePods(
  targets: readonly ScrapeTarget[],
  options: ScrapeOptions,
): Promise<ScrapeResult[]> {
  const ready = targets.filter((t) => t.ready);
  const results: ScrapeResult[] = new Array<ScrapeResult>(ready.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const index = next++;
      const target = ready[index];
      if (target === undefined) return;
      results[index] = options.limiter
        ? await options.limiter.run(() => scrapeTarget(target, options))
        : await scrapeTarget(target, options);
    }
  };
  const workers = Math.max(1, Math.min(Math.floor(options.concurrency), ready.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return results;
}

/**
 * Builds a scrape target from an engine pod the operator created: engine from the engine-type
 * label, port from the container port named `http`, readiness from the Ready condition.
 * Returns undefined for pods that are not engine pods or have no IP yet.
 */
function kvCacheTokensOf(pod: V1Pod): number | undefined {
  const value = Number(pod.metadata?.annotations?.["gpufleet.io/kv-cache-tokens"]);
  return Number.isInteger(value) && value > 0 ? value : undefined;
}

export function scrapeTargetFromPod(pod: V1Pod, modelName?: string): ScrapeTarget | undefined {
  const labels = pod.metadata?.labels ?? {};
  const engine = engineKindFromLabel(labels[ENGINE_TYPE_LABEL]);
  const podIP = pod.status?.podIP;
  const podName = pod.metadata?.name;
  if (!engine || !podIP || !podName) return undefined;
  let port: number | undefined;
  for (const container of pod.spec?.containers ?? []) {
    const found = container.ports?.find((p) => p.name === ENGINE_PORT_NAME);
    if (found) {
      port = found.containerPort;
      break;
    }
  }
  if (port === undefined) return undefined;
  const ready =
    pod.status?.phase === "Running" &&
    (pod.status.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
  return {
    namespace: pod.metadata?.namespace ?? "default",
    podName,
    podIP,
    port,
    engine,
    ready,
    ...(modelName === undefined ? {} : { modelName }),
    ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
    ...(kvCacheTokensOf(pod) ? { kvCacheTokens: kvCacheTokensOf(pod) } : {}),
    ...(podCompute(pod) ? { compute: podCompute(pod) } : {}),
    ...(engine === "vllm" && pod.metadata?.annotations?.["gpufleet.io/scheduling-policy"] === "priority"
      ? { schedulingPolicy: "priority" as const }
      : {}),
  };
}
