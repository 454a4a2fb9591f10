/**
 * Per-engine normalization of a scraped exposition into the one sample the autoscaler reads.
 *
 * vLLM (`/metrics`): `vllm:kv_cache_usage_perc` (0.9 and later; `vllm:gpu_cache_usage_perc` before,
 * deprecated in vllm-project/vllm#18354), `vllm:num_requests_waiting`, `vllm:num_requests_running`,
 * each labelled `model_name` (and `engine` per data-parallel engine since V1).
 *
 * TensorRT-LLM (`trtllm-serve`, Prometheus text on `/prometheus/metrics`; its `/metrics` is JSON
 * iteration stats): `trtllm_kv_cache_utilization` (used/max blocks, 0..1), `trtllm_num_requests_waiting`
 * (numQueuedRequests), `trtllm_num_requests_running` (numActiveRequests), labelled `model_name` and
 * `engine_type`. Verified in NVIDIA/TensorRT-LLM tensorrt_llm/metrics/collector.py (MetricsCollector,
 * metric_prefix "trtllm_", log_iteration_stats) at commit 050f80def8df236e326949c8bd9dee10fd896a83.
 * NVIDIA Dynamo re-exports the same gauges with a `trtllm:` prefix, which is accepted too.
 * The KV gauge is only set when the server runs with `enable_iter_perf_stats: true`; without it the
 * sample is reported missing, never as zero.
 *
 * SGLang (`python -m sglang.launch_server --enable-metrics`, Prometheus text on `/metrics`):
 * `sglang:token_usage` (used / total KV-cache tokens, 0..1), `sglang:num_queue_reqs` (waiting queue),
 * `sglang:num_running_reqs`, `sglang:prompt_tokens_total`, `sglang:generation_tokens_total` and the
 * `sglang:time_to_first_token_seconds` histogram, labelled `model_name` (newer releases add
 * `tp_rank` / `dp_rank`). Names checked in sgl-project/sglang python/sglang/srt/metrics/collector.py
 * (SchedulerMetricsCollector, TokenizerMetricsCollector) and docs/references/production_metrics.md.
 * Only rank 0 of a tensor-parallel group is read, so identical per-rank copies are not added up.
 *
 * Token counters (optional; the autoscaler turns them into a throughput rate): vLLM
 * `vllm:prompt_tokens_total` and `vllm:generation_tokens_total`; trtllm-serve `trtllm_prompt_tokens_total`
 * and `trtllm_generation_tokens_total` (same collector.py, counter_prompt_tokens /
 * counter_generation_tokens). Engines that lack them still yield a sample, without the counters.
 * Finished requests (optional; with the token counters it gives the tokens per request, which turns a
 * queue's growth into tokens/s of demand): vLLM `vllm:request_success_total` (one series per
 * `finished_reason`, summed), trtllm-serve `trtllm_num_requests_completed_total` (numCompletedRequests of
 * the iteration stats). SGLang's is not read (none with that meaning is known here): no correction.
 *
 * Time-to-first-token histogram (optional; the autoscaler reports how many requests met the TTFT
 * objective): vLLM `vllm:time_to_first_token_seconds`, trtllm-serve `trtllm_time_to_first_token_seconds`
 * (same collector.py, histogram_time_to_first_token; both default to the same buckets). Buckets are
 * summed over data-parallel engines. A histogram that is absent or inconsistent (counts falling with
 * `le`, no +Inf bucket) is left out of the sample rather than failing it: it only feeds a report.
 */
import { type MetricFamily, parseFloatValue, type Sample, samplesNamed } from "./exposition.js";

export type EngineKind = "vllm" | "trtllm-serve" | "sglang";

export interface EngineMetricsSample {
  /** Fraction of the KV cache in use, 0..1 (the most loaded engine when a pod runs several). */
  kvCacheUtilization: number;
  requestsWaiting: number;
  requestsRunning: number;
  /** Cumulative prompt tokens processed (counter), summed over data-parallel engines; absent if not exported. */
  promptTokensTotal?: number;
  /** Cumulative output tokens produced (counter), summed over data-parallel engines; absent if not exported. */
  generationTokensTotal?: number;
  /** Cumulative finished requests (counter), summed over its series; absent if not exported. */
  requestsFinishedTotal?: number;
  /** Cumulative time-to-first-token histogram; absent if not exported or inconsistent. */
  ttftHistogram?: CumulativeHistogram;
  scrapedAtMs: number;
}

/** A Prometheus histogram's cumulative buckets, ascending `le`, the last one +Inf. */
export interface CumulativeHistogram {
  upperBoundsSeconds: number[];
  cumulativeCounts: number[];
}

export type EngineMetricsErrorKind = "missing-metric" | "invalid-value" | "ambiguous-model";

/** A scrape that parsed but cannot be turned into a sample; never replaced by zeros. */
export class EngineMetricsError extends Error {
  override readonly name = "EngineMetricsError";
  constructor(
    readonly kind: EngineMetricsErrorKind,
    readonly metric: string,
    message: string,
  ) {
    super(message);
  }
}

interface EngineMetricNames {
  /** Candidates in order of preference; the first present one is used. */
  kvCacheUtilization: readonly string[];
  requestsWaiting: readonly string[];
  requestsRunning: readonly string[];
  promptTokensTotal: readonly string[];
  generationTokensTotal: readonly string[];
  requestsFinishedTotal: readonly string[];
  /** Histogram base names (the samples are `<name>_bucket{le=...}`). */
  ttftHistogram: readonly string[];
}

export const ENGINE_METRIC_NAMES: Readonly<Record<EngineKind, EngineMetricNames>> = {
  vllm: {
    kvCacheUtilization: ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
    requestsWaiting: ["vllm:num_requests_waiting"],
    requestsRunning: ["vllm:num_requests_running"],
    promptTokensTotal: ["vllm:prompt_tokens_total"],
    generationTokensTotal: ["vllm:generation_tokens_total"],
    requestsFinishedTotal: ["vllm:request_success_total"],
    ttftHistogram: ["vllm:time_to_first_token_seconds"],
  },
  "trtllm-serve": {
    kvCacheUtilization: ["trtllm_kv_cache_utilization", "trtllm:kv_cache_utilization"],
    requestsWaiting: ["trtllm_num_requests_waiting", "trtllm:num_requests_waiting"],
    requestsRunning: ["trtllm_num_requests_running", "trtllm:num_requests_running"],
    promptTokensTotal: ["trtllm_prompt_tokens_total", "trtllm:prompt_tokens_total"],
    generationTokensTotal: ["trtllm_generation_tokens_total", "trtllm:generation_tokens_total"],
    requestsFinishedTotal: ["trtllm_num_requests_completed_total", "trtllm:num_requests_completed_total"],
    ttftHistogram: ["trtllm_time_to_first_token_seconds", "trtllm:time_to_first_token_seconds"],
  },
  sglang: {
    kvCacheUtilization: ["sglang:token_usage"],
    requestsWaiting: ["sglang:num_queue_reqs"],
    requestsRunning: ["sglang:num_running_reqs"],
    promptTokensTotal: ["sglang:prompt_tokens_total"],
    generationTokensTotal: ["sglang:generation_tokens_total"],
    requestsFinishedTotal: [],
    ttftHistogram: ["sglang:time_to_first_token_seconds"],
  },
};

/** Where each engine serves Prometheus text. */
export const ENGINE_METRICS_PATH: Readonly<Record<EngineKind, string>> = {
  vllm: "/metrics",
  "trtllm-serve": "/prometheus/metrics",
  sglang: "/metrics",
};

/** Maps the pod label `inference.networking.k8s.io/engine-type` (and a few spellings) to an engine. */
export function engineKindFromLabel(value: string | undefined): EngineKind | undefined {
  switch (value?.toLowerCase()) {
    case "vllm":
      return "vllm";
    case "sglang":
      return "sglang";
    case "trtllm-serve":
    case "trtllm":
    case "tensorrt-llm":
      return "trtllm-serve";
    default:
      return undefined;
  }
}

export interface NormalizeOptions {
  engine: EngineKind;
  /** Keep only series whose `model_name` label equals this (the served model name). */
  modelName?: string;
  scrapedAtMs: number;
}

// Float gauges may overshoot 1 by rounding (used/total computed in float); anything beyond is a bug upstream.
const UTILIZATION_TOLERANCE = 1e-6;

function selectSeries(
  families: readonly MetricFamily[],
  candidates: readonly string[],
  modelName?: string,
): {
  metric: string;
  samples: Sample[];
} {
  const [first] = candidates;
  if (first === undefined) throw new EngineMetricsError("missing-metric", "", "no metric names configured");
  for (const metric of candidates) {
    const all = samplesNamed(families, metric).filter(firstTensorParallelRank);
    if (all.length === 0) continue;
    const matching = modelName === undefined ? all : all.filter((s) => s.labels.model_name === modelName);
    if (matching.length === 0) {
      const seen = [...new Set(all.map((s) => s.labels.model_name ?? "<none>"))].join(", ");
      throw new EngineMetricsError(
        "missing-metric",
        metric,
        `${metric} has no series with model_name="${modelName ?? ""}" (seen: ${seen})`,
      );
    }
    const models = new Set(matching.map((s) => s.labels.model_name));
    if (models.size > 1) {
      throw new EngineMetricsError(
        "ambiguous-model",
        metric,
        `${metric} reports several models (${[...models].join(", ")}); set modelName to pick one`,
      );
    }
    return { metric, samples: matching };
  }
  throw new EngineMetricsError("missing-metric", first, `none of ${candidates.join(", ")} in the exposition`);
}

/** SGLang labels each tensor-parallel rank's copy with `tp_rank`: only rank 0 counts. */
function firstTensorParallelRank(sample: Sample): boolean {
  const rank = sample.labels.tp_rank;
  return rank === undefined || rank === "0";
}

function checkedValue(metric: string, sample: Sample, min: number, max: number): number {
  const { value } = sample;
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new EngineMetricsError("invalid-value", metric, `${metric} = ${value} is outside [${min}, ${max}]`);
  }
  return value;
}

function requestCount(
  families: readonly MetricFamily[],
  candidates: readonly string[],
  modelName?: string,
): number {
  const { metric, samples } = selectSeries(families, candidates, modelName);
  // One series per data-parallel engine (label `engine`): requests add up across them.
  let total = 0;
  for (const sample of samples) total += checkedValue(metric, sample, 0, Number.MAX_SAFE_INTEGER);
  return Math.round(total);
}

/**
 * A cumulative counter (tokens, finished requests) summed over its series (data-parallel engines, a
 * finished request's reason), or undefined when the engine does not export it. A counter that is present but broken (negative, not finite, other model) still throws.
 */
function optionalTokenCounter(
  families: readonly MetricFamily[],
  candidates: readonly string[],
  modelName?: string,
): number | undefined {
  if (!candidates.some((name) => samplesNamed(families, name).length > 0)) return undefined;
  const { metric, samples } = selectSeries(families, candidates, modelName);
  let total = 0;
  for (const sample of samples) total += checkedValue(metric, sample, 0, Number.MAX_VALUE);
  return total;
}

/**
 * The cumulative buckets of a histogram summed over data-parallel engines, or undefined when the
 * engine does not export it for this model or its buckets are inconsistent.
 */
function optionalHistogram(
  families: readonly MetricFamily[],
  candidates: readonly string[],
  modelName?: string,
): CumulativeHistogram | undefined {
  for (const name of candidates) {
    const buckets = samplesNamed(families, `${name}_bucket`).filter(
      (s) => firstTensorParallelRank(s) && (modelName === undefined || s.labels.model_name === modelName),
    );
    if (buckets.length === 0) continue;
    if (new Set(buckets.map((s) => s.labels.model_name)).size > 1) return undefined;
    const countByBound = new Map<number, number>();
    for (const sample of buckets) {
      const le = sample.labels.le;
      // The Prometheus server reads `le` as a Go float: "+Inf", "Inf", "inf" and "1e0" are all bounds.
      const bound = le === undefined ? Number.NaN : (parseFloatValue(le) ?? Number.NaN);
      if (Number.isNaN(bound) || !Number.isFinite(sample.value) || sample.value < 0) return undefined;
      countByBound.set(bound, (countByBound.get(bound) ?? 0) + sample.value);
    }
    const upperBoundsSeconds = [...countByBound.keys()].sort((a, b) => a - b);
    const cumulativeCounts = upperBoundsSeconds.map((bound) => countByBound.get(bound) as number);
    if (upperBoundsSeconds.at(-1) !== Number.POSITIVE_INFINITY) return undefined;
    for (let i = 1; i < cumulativeCounts.length; i++)
      if ((cumulativeCounts[i] as number) < (cumulativeCounts[i - 1] as number)) return undefined;
    return { upperBoundsSeconds, cumulativeCounts };
  }
  return undefined;
}

/** Turns one engine's parsed exposition into an EngineMetricsSample, or throws EngineMetricsError. */
export function normalizeEngineMetrics(
  families: readonly MetricFamily[],
  options: NormalizeOptions,
): EngineMetricsSample {
  const names = ENGINE_METRIC_NAMES[options.engine];
  const kv = selectSeries(families, names.kvCacheUtilization, options.modelName);
  // Several data-parallel engines: the fullest one is what rejects (preempts) requests first.
  let kvCacheUtilization = 0;
  for (const sample of kv.samples) {
    kvCacheUtilization = Math.max(
      kvCacheUtilization,
      checkedValue(kv.metric, sample, 0, 1 + UTILIZATION_TOLERANCE),
    );
  }
  const promptTokensTotal = optionalTokenCounter(families, names.promptTokensTotal, options.modelName);
  const generationTokensTotal = optionalTokenCounter(
    families,
    names.generationTokensTotal,
    options.modelName,
  );
  const requestsFinishedTotal =
    names.requestsFinishedTotal.length === 0
      ? undefined
      : optionalTokenCounter(families, names.requestsFinishedTotal, options.modelName);
  const ttftHistogram = optionalHistogram(families, names.ttftHistogram, options.modelName);
  return {
    kvCacheUtilization: Math.min(1, kvCacheUtilization),
    requestsWaiting: requestCount(families, names.requestsWaiting, options.modelName),
    requestsRunning: requestCount(families, names.requestsRunning, options.modelName),
    ...(promptTokensTotal === undefined ? {} : { promptTokensTotal }),
    ...(generationTokensTotal === undefined ? {} : { generationTokensTotal }),
    ...(requestsFinishedTotal === undefined ? {} : { requestsFinishedTotal }),
    ...(ttftHistogram === undefined ? {} : { ttftHistogram }),
    scrapedAtMs: options.scrapedAtMs,
  };
}
