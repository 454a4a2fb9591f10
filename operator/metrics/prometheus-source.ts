/**
 * Optional metrics source: a Prometheus server that already scrapes the engines. One instant query
 * (`GET /api/v1/query`) per signal per deployment, grouped by pod, yields the same
 * EngineMetricsSample per pod as scraping directly.
 *
 * The series selector is configurable because it depends on the scrape config's relabeling; the
 * default expects the pod label `gpufleet.io/model-deployment` relabeled to `model_deployment`
 * plus the usual `namespace` and `pod` target labels (what kubernetes_sd + labelmap produce).
 */
import { ENGINE_METRIC_NAMES, type EngineKind, type EngineMetricsSample } from "./engines.js";
import { ScrapeError } from "./scrape.js";

export interface DeploymentQuery {
  namespace: string;
  /** ModelDeployment name. */
  name: string;
  engine: EngineKind;
  modelName?: string;
}

export interface PrometheusSourceOptions {
  /** e.g. http://127.0.0.1:9090 */
  baseUrl: string;
  timeoutMs: number;
  /** Label matchers (without braces) selecting one deployment's series. */
  selectorFor?: (deployment: DeploymentQuery) => string;
  /** Label identifying one engine pod in query results (default `pod`). */
  instanceLabel?: string;
}

export type PodSampleResult =
  { pod: string; ok: true; sample: EngineMetricsSample } | { pod: string; ok: false; error: ScrapeError };

/** PromQL string literal, escaped for the double-quoted form. */
export function promqlString(value: string): string {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

export function defaultSelector(deployment: DeploymentQuery): string {
  const matchers = [
    `namespace=${promqlString(deployment.namespace)}`,
    `model_deployment=${promqlString(deployment.name)}`,
  ];
  if (deployment.modelName !== undefined) matchers.push(`model_name=${promqlString(deployment.modelName)}`);
  return matchers.join(",");
}

/** The three instant queries for one deployment; `or` falls back to older metric names per pod. */
export function queriesFor(
  deployment: DeploymentQuery,
  selector: string,
  instanceLabel: string,
): Record<"kvCacheUtilization" | "requestsWaiting" | "requestsRunning", string> {
  const names = ENGINE_METRIC_NAMES[deployment.engine];
  const alternatives = (metrics: readonly string[], aggregate: string) =>
    metrics
      .map((metric) => `${aggregate} by (${instanceLabel}) ({__name__=${promqlString(metric)},${selector}})`)
      .join(" or ");
  return {
    // max across data-parallel engines, sum for request counts: as in normalizeEngineMetrics.
    kvCacheUtilization: alternatives(names.kvCacheUtilization, "max"),
    requestsWaiting: alternatives(names.requestsWaiting, "sum"),
    requestsRunning: alternatives(names.requestsRunning, "sum"),
  };
}

interface VectorResult {
  metric: Record<string, string>;
  value: [number, string];
}

function isVectorResult(item: unknown): item is VectorResult {
  if (typeof item !== "object" || item === null) return false;
  const { metric, value } = item as { metric?: unknown; value?: unknown };
  return (
    typeof metric === "object" &&
    metric !== null &&
    Array.isArray(value) &&
    value.length === 2 &&
    typeof value[0] === "number" &&
    typeof value[1] === "string"
  );
}

/** Runs one instant query and returns value and evaluation time per instance. */
export async function instantQuery(
  options: PrometheusSourceOptions,
  promql: string,
  instanceLabel: string,
): Promise<Map<string, { value: number; atMs: number }>> {
  const url = new URL("/api/v1/query", options.baseUrl);
  url.searchParams.set("query", promql);
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, options.timeoutMs);
  try {
    const response = await fetch(url, { signal: controller.signal });
    const body = (await response.json().catch(() => undefined)) as
      { status?: string; error?: string; data?: { resultType?: string; result?: unknown } } | undefined;
    if (!response.ok || body?.status !== "success") {
      throw new ScrapeError(
        "http-status",
        `Prometheus query failed (HTTP ${response.status}): ${body?.error ?? "no error text"}`,
        response.status,
      );
    }
    if (body.data?.resultType !== "vector" || !Array.isArray(body.data.result)) {
      throw new ScrapeError(
        "parse",
        `Prometheus returned ${String(body.data?.resultType)} instead of a vector`,
      );
    }
    const out = new Map<string, { value: number; atMs: number }>();
    for (const item of body.data.result) {
      if (!isVectorResult(item))
        throw new ScrapeError("parse", "malformed vector element in Prometheus response");
      const pod = item.metric[instanceLabel];
      if (pod === undefined) continue;
      out.set(pod, { value: Number(item.value[1]), atMs: Math.round(item.value[0] * 1000) });
    }
    return out;
  } catch (error) {
    if (timedOut)
      throw new ScrapeError(
        "timeout",
        `Prometheus query did not answer within ${options.timeoutMs} ms`,
        undefined,
        error,
      );
    if (error instanceof ScrapeError) throw error;
    throw new ScrapeError(
      "network",
      `Prometheus query: ${error instanceof Error ? error.message : String(error)}`,
      undefined,
      error,
    );
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Samples of every pod of one deployment as Prometheus last saw them. Throws ScrapeError when
 * Prometheus itself fails; a pod lacking one of the three signals gets a per-pod "metrics" error.
 */
export async function queryDeploymentSamples(
  options: PrometheusSourceOptions,
  deployment: DeploymentQuery,
): Promise<PodSampleResult[]> {
  const instanceLabel = options.instanceLabel ?? "pod";
  const selector = (options.selectorFor ?? defaultSelector)(deployment);
  const queries = queriesFor(deployment, selector, instanceLabel);
  const [kv, waiting, running] = await Promise.all([
    instantQuery(options, queries.kvCacheUtilization, instanceLabel),
    instantQuery(options, queries.requestsWaiting, instanceLabel),
    instantQuery(options, queries.requestsRunning, instanceLabel),
  ]);
  const pods = [...new Set([...kv.keys(), ...waiting.keys(), ...running.keys()])].sort();
  return pods.map((pod): PodSampleResult => {
    const k = kv.get(pod);
    const w = waiting.get(pod);
    const r = running.get(pod);
    if (!k || !w || !r) {
      const missing = [!k && "kvCacheUtilization", !w && "requestsWaiting", !r && "requestsRunning"]
        .filter(Boolean)
        .join(", ");
      return {
        pod,
        ok: false,
        error: new ScrapeError("metrics", `Prometheus has no ${missing} for pod ${pod}`),
      };
    }
    if (
      !Number.isFinite(k.value) ||
      k.value < 0 ||
      k.value > 1 + 1e-6 ||
      !(w.value >= 0) ||
      !(r.value >= 0)
    ) {
      return {
        pod,
        ok: false,
        error: new ScrapeError(
          "metrics",
          `out-of-range values for pod ${pod}: kv=${k.value} waiting=${w.value} running=${r.value}`,
        ),
      };
    }
    return {
      pod,
      ok: true,
      sample: {
        kvCacheUtilization: Math.min(1, k.value),
        requestsWaiting: Math.round(w.value),
        requestsRunning: Math.round(r.value),
        scrapedAtMs: Math.min(k.atMs, w.atMs, r.atMs),
      },
    };
  });
}
