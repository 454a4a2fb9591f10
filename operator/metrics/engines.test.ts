import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { EngineMetricsError, engineKindFromLabel, normalizeEngineMetrics } from "./engines.js";
import { parseExposition } from "./exposition.js";

const fixture = (name: string) =>
  parseExposition(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8"));

function engineError(run: () => unknown): EngineMetricsError {
  try {
    run();
  } catch (error) {
    if (error instanceof EngineMetricsError) return error;
    throw error;
  }
  throw new Error("expected an EngineMetricsError");
}

describe("normalizeEngineMetrics for vLLM", () => {
  it("maps the pre-0.9 gpu_cache_usage_perc dump of a real V1 server (production-stack#318)", () => {
    const sample = normalizeEngineMetrics(fixture("vllm-v1-gpu-cache-usage-production-stack-318.prom"), {
      engine: "vllm",
      modelName: "Qwen/Qwen2.5-Coder-32B-Instruct",
      scrapedAtMs: 42,
    });
    expect(sample).toEqual({
      kvCacheUtilization: 0,
      requestsWaiting: 0,
      requestsRunning: 0,
      scrapedAtMs: 42,
    });
  });

  it("maps a real V0 dump that carries extra info gauges (Qwen3-VL#55)", () => {
    const sample = normalizeEngineMetrics(fixture("vllm-v0-cache-config-qwen3-vl-55.prom"), {
      engine: "vllm",
      modelName: "qwenvl",
      scrapedAtMs: 1,
    });
    expect(sample.requestsRunning).toBe(0);
    expect(sample.kvCacheUtilization).toBe(0);
  });

  it("reports a missing request gauge in the real 0.10 excerpt instead of assuming zero (production-stack#617)", () => {
    const error = engineError(() =>
      normalizeEngineMetrics(fixture("vllm-v0.10-kv-cache-usage-production-stack-617.prom"), {
        engine: "vllm",
        modelName: "zai-org/GLM-4.5",
        scrapedAtMs: 1,
      }),
    );
    expect(error.kind).toBe("missing-metric");
    expect(error.metric).toBe("vllm:num_requests_waiting");
  });

  it("prefers kv_cache_usage_perc over the deprecated gauge when both are present", () => {
    const families = parseExposition(
      [
        'vllm:gpu_cache_usage_perc{model_name="m"} 0.1',
        'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.6',
        'vllm:num_requests_waiting{engine="0",model_name="m"} 4.0',
        'vllm:num_requests_running{engine="0",model_name="m"} 9.0',
      ].join("\n"),
    );
    expect(normalizeEngineMetrics(families, { engine: "vllm", modelName: "m", scrapedAtMs: 5 })).toEqual({
      kvCacheUtilization: 0.6,
      requestsWaiting: 4,
      requestsRunning: 9,
      scrapedAtMs: 5,
    });
  });

  it("sums requests and takes the fullest KV cache across data-parallel engines", () => {
    const families = parseExposition(
      [
        'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2',
        'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.7',
        'vllm:num_requests_waiting{engine="0",model_name="m"} 1',
        'vllm:num_requests_waiting{engine="1",model_name="m"} 2',
        'vllm:num_requests_running{engine="0",model_name="m"} 3',
        'vllm:num_requests_running{engine="1",model_name="m"} 4',
      ].join("\n"),
    );
    const sample = normalizeEngineMetrics(families, { engine: "vllm", scrapedAtMs: 0 });
    expect(sample).toMatchObject({ kvCacheUtilization: 0.7, requestsWaiting: 3, requestsRunning: 7 });
  });

  it("filters by model_name and rejects a model the pod does not serve", () => {
    const families = parseExposition('vllm:kv_cache_usage_perc{model_name="a"} 0.5\n');
    const error = engineError(() =>
      normalizeEngineMetrics(families, { engine: "vllm", modelName: "b", scrapedAtMs: 0 }),
    );
    expect(error.kind).toBe("missing-metric");
    expect(error.message).toMatch(/seen: a/);
  });

  it("refuses to guess between several models when none is named", () => {
    const families = parseExposition(
      'vllm:kv_cache_usage_perc{model_name="a"} 0.5\nvllm:kv_cache_usage_perc{model_name="b"} 0.1\n',
    );
    expect(engineError(() => normalizeEngineMetrics(families, { engine: "vllm", scrapedAtMs: 0 })).kind).toBe(
      "ambiguous-model",
    );
  });

  it.each([
    ["NaN", "NaN"],
    ["a percentage instead of a fraction", "42"],
    ["a negative value", "-0.1"],
  ])("rejects a KV utilization that is %s", (_case, value) => {
    const families = parseExposition(
      `vllm:kv_cache_usage_perc{model_name="m"} ${value}\nvllm:num_requests_waiting{model_name="m"} 0\nvllm:num_requests_running{model_name="m"} 0\n`,
    );
    expect(engineError(() => normalizeEngineMetrics(families, { engine: "vllm", scrapedAtMs: 0 })).kind).toBe(
      "invalid-value",
    );
  });
});

describe("token counters", () => {
  const gauges = [
    'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2',
    'vllm:num_requests_waiting{engine="0",model_name="m"} 0',
    'vllm:num_requests_running{engine="0",model_name="m"} 1',
  ];

  it("reads vLLM prompt and generation token counters, summed over data-parallel engines", () => {
    const families = parseExposition(
      [
        ...gauges,
        "# TYPE vllm:prompt_tokens counter",
        'vllm:prompt_tokens_total{engine="0",model_name="m"} 1500',
        'vllm:prompt_tokens_total{engine="1",model_name="m"} 500',
        "# TYPE vllm:generation_tokens counter",
        'vllm:generation_tokens_total{engine="0",model_name="m"} 70',
      ].join("\n"),
    );
    const sample = normalizeEngineMetrics(families, { engine: "vllm", modelName: "m", scrapedAtMs: 3 });
    expect(sample.promptTokensTotal).toBe(2000);
    expect(sample.generationTokensTotal).toBe(70);
  });

  it("leaves the counters out (not zero) when the engine does not export them", () => {
    const sample = normalizeEngineMetrics(parseExposition(gauges.join("\n")), {
      engine: "vllm",
      scrapedAtMs: 0,
    });
    expect("promptTokensTotal" in sample).toBe(false);
    expect("generationTokensTotal" in sample).toBe(false);
  });

  it("rejects a negative token counter instead of reading it as a rate", () => {
    const families = parseExposition(
      [...gauges, 'vllm:prompt_tokens_total{engine="0",model_name="m"} -5'].join("\n"),
    );
    expect(engineError(() => normalizeEngineMetrics(families, { engine: "vllm", scrapedAtMs: 0 })).kind).toBe(
      "invalid-value",
    );
  });

  it("reads trtllm-serve's trtllm_prompt_tokens_total and trtllm_generation_tokens_total", () => {
    const families = parseExposition(
      [
        'trtllm_kv_cache_utilization{engine_type="trtllm",model_name="llama"} 0.5',
        'trtllm_num_requests_running{engine_type="trtllm",model_name="llama"} 2',
        'trtllm_num_requests_waiting{engine_type="trtllm",model_name="llama"} 0',
        'trtllm_prompt_tokens_total{engine_type="trtllm",model_name="llama"} 4096',
        'trtllm_generation_tokens_total{engine_type="trtllm",model_name="llama"} 128',
      ].join("\n"),
    );
    const sample = normalizeEngineMetrics(families, {
      engine: "trtllm-serve",
      modelName: "llama",
      scrapedAtMs: 0,
    });
    expect(sample).toMatchObject({ promptTokensTotal: 4096, generationTokensTotal: 128 });
  });

  it("reads finished requests: vLLM's request_success_total summed over its reasons and engines, trtllm's completed", () => {
    const vllm = parseExposition(
      [
        ...gauges,
        "# TYPE vllm:request_success counter",
        'vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 30',
        'vllm:request_success_total{engine="0",finished_reason="length",model_name="m"} 5',
        'vllm:request_success_total{engine="1",finished_reason="stop",model_name="m"} 7',
      ].join("\n"),
    );
    expect(
      normalizeEngineMetrics(vllm, { engine: "vllm", modelName: "m", scrapedAtMs: 0 }).requestsFinishedTotal,
    ).toBe(42);
    const trtllm = parseExposition(
      [
        'trtllm_kv_cache_utilization{engine_type="trtllm",model_name="llama"} 0.5',
        'trtllm_num_requests_running{engine_type="trtllm",model_name="llama"} 2',
        'trtllm_num_requests_waiting{engine_type="trtllm",model_name="llama"} 0',
        'trtllm_num_requests_completed_total{engine_type="trtllm",model_name="llama"} 12',
      ].join("\n"),
    );
    expect(
      normalizeEngineMetrics(trtllm, { engine: "trtllm-serve", modelName: "llama", scrapedAtMs: 0 })
        .requestsFinishedTotal,
    ).toBe(12);
    const none = normalizeEngineMetrics(parseExposition(gauges.join("\n")), {
      engine: "vllm",
      scrapedAtMs: 0,
    });
    expect("requestsFinishedTotal" in none).toBe(false);
  });
});

describe("time-to-first-token histogram", () => {
  const gauges = (prefix: string, labels: string) => [
    `${prefix}kv_cache_${prefix.startsWith("vllm") ? "usage_perc" : "utilization"}{${labels}} 0.2`,
    `${prefix}num_requests_waiting{${labels}} 0`,
    `${prefix}num_requests_running{${labels}} 1`,
  ];
  const buckets = (name: string, labels: string, counts: Array<[string, number]>) =>
    counts.map(([le, count]) => `${name}_bucket{${labels},le="${le}"} ${count}`);

  it("reads vLLM's buckets in le order, summed over data-parallel engines", () => {
    const name = "vllm:time_to_first_token_seconds";
    const families = parseExposition(
      [
        ...gauges("vllm:", 'engine="0",model_name="m"'),
        `# TYPE ${name} histogram`,
        ...buckets(name, 'engine="0",model_name="m"', [
          ["1.0", 3],
          ["2.5", 8],
          ["+Inf", 9],
        ]),
        ...buckets(name, 'engine="1",model_name="m"', [
          ["+Inf", 1],
          ["1.0", 0],
          ["2.5", 1],
        ]),
        `${name}_sum{engine="0",model_name="m"} 12.5`,
        `${name}_count{engine="0",model_name="m"} 9`,
      ].join("\n"),
    );
    const sample = normalizeEngineMetrics(families, { engine: "vllm", modelName: "m", scrapedAtMs: 0 });
    expect(sample.ttftHistogram).toEqual({
      upperBoundsSeconds: [1, 2.5, Number.POSITIVE_INFINITY],
      cumulativeCounts: [3, 9, 10],
    });
  });

  it("reads trtllm-serve's trtllm_time_to_first_token_seconds", () => {
    const labels = 'engine_type="trtllm",model_name="llama"';
    const families = parseExposition(
      [
        ...gauges("trtllm_", labels),
        ...buckets("trtllm_time_to_first_token_seconds", labels, [
          ["0.5", 4],
          ["+Inf", 6],
        ]),
      ].join("\n"),
    );
    const sample = normalizeEngineMetrics(families, {
      engine: "trtllm-serve",
      modelName: "llama",
      scrapedAtMs: 0,
    });
    expect(sample.ttftHistogram?.cumulativeCounts).toEqual([4, 6]);
  });

  it("leaves out a histogram whose counts fall with le or that lacks +Inf, and keeps the sample", () => {
    const name = "vllm:time_to_first_token_seconds";
    const labels = 'model_name="m"';
    for (const counts of [
      [
        ["1.0", 5],
        ["2.5", 3],
        ["+Inf", 6],
      ],
      [
        ["1.0", 1],
        ["2.5", 3],
      ],
    ] as Array<Array<[string, number]>>) {
      const families = parseExposition(
        [...gauges("vllm:", labels), ...buckets(name, labels, counts)].join("\n"),
      );
      const sample = normalizeEngineMetrics(families, { engine: "vllm", modelName: "m", scrapedAtMs: 0 });
      expect(sample.requestsRunning).toBe(1);
      expect("ttftHistogram" in sample).toBe(false);
    }
  });

  it('reads le="Inf" as the +Inf bucket, as the Prometheus server does', () => {
    const name = "vllm:time_to_first_token_seconds";
    const labels = 'model_name="m"';
    const families = parseExposition(
      [
        ...gauges("vllm:", labels),
        ...buckets(name, labels, [
          ["1.0", 1],
          ["Inf", 2],
        ]),
      ].join("\n"),
    );
    const sample = normalizeEngineMetrics(families, { engine: "vllm", modelName: "m", scrapedAtMs: 0 });
    expect(sample.ttftHistogram).toEqual({
      upperBoundsSeconds: [1, Number.POSITIVE_INFINITY],
      cumulativeCounts: [1, 2],
    });
  });

  it("counts a series listed twice once (the first value), not the sum", () => {
    const families = parseExposition(
      [...gauges("vllm:", 'model_name="m"'), 'vllm:num_requests_waiting{model_name="m"} 7'].join("\n"),
    );
    const sample = normalizeEngineMetrics(families, { engine: "vllm", modelName: "m", scrapedAtMs: 0 });
    expect(sample.requestsWaiting).toBe(0);
  });

  it("reads only the served model's buckets", () => {
    const name = "vllm:time_to_first_token_seconds";
    const families = parseExposition(
      [
        ...gauges("vllm:", 'model_name="m"'),
        ...buckets(name, 'model_name="m"', [
          ["1.0", 1],
          ["+Inf", 2],
        ]),
        ...buckets(name, 'model_name="other"', [
          ["1.0", 50],
          ["+Inf", 90],
        ]),
      ].join("\n"),
    );
    const sample = normalizeEngineMetrics(families, { engine: "vllm", modelName: "m", scrapedAtMs: 0 });
    expect(sample.ttftHistogram?.cumulativeCounts).toEqual([1, 2]);
  });
});

describe("normalizeEngineMetrics for trtllm-serve", () => {
  // Names and labels as created by TensorRT-LLM's MetricsCollector (tensorrt_llm/metrics/collector.py).
  const trtllm = [
    "# HELP trtllm_kv_cache_utilization KV cache utilization",
    "# TYPE trtllm_kv_cache_utilization gauge",
    'trtllm_kv_cache_utilization{engine_type="trtllm",model_name="llama"} 0.375',
    "# TYPE trtllm_num_requests_running gauge",
    'trtllm_num_requests_running{engine_type="trtllm",model_name="llama"} 12.0',
    "# TYPE trtllm_num_requests_waiting gauge",
    'trtllm_num_requests_waiting{engine_type="trtllm",model_name="llama"} 3.0',
  ].join("\n");

  it("maps the trtllm_ gauges", () => {
    expect(
      normalizeEngineMetrics(parseExposition(trtllm), {
        engine: "trtllm-serve",
        modelName: "llama",
        scrapedAtMs: 9,
      }),
    ).toEqual({
      kvCacheUtilization: 0.375,
      requestsWaiting: 3,
      requestsRunning: 12,
      scrapedAtMs: 9,
    });
  });

  it("reports the KV gauge missing when iteration stats are off", () => {
    const withoutKv = trtllm
      .split("\n")
      .filter((line) => !line.includes("kv_cache"))
      .join("\n");
    const error = engineError(() =>
      normalizeEngineMetrics(parseExposition(withoutKv), { engine: "trtllm-serve", scrapedAtMs: 0 }),
    );
    expect(error).toMatchObject({ kind: "missing-metric", metric: "trtllm_kv_cache_utilization" });
  });

  it("does not read vLLM gauges as TensorRT-LLM ones", () => {
    const error = engineError(() =>
      normalizeEngineMetrics(fixture("vllm-v1-gpu-cache-usage-production-stack-318.prom"), {
        engine: "trtllm-serve",
        scrapedAtMs: 0,
      }),
    );
    expect(error.kind).toBe("missing-metric");
  });
});

describe("engineKindFromLabel", () => {
  it("maps the engine-type label values", () => {
    expect([
      engineKindFromLabel("vllm"),
      engineKindFromLabel("trtllm-serve"),
      engineKindFromLabel("tensorrt-llm"),
      engineKindFromLabel("sglang"),
      engineKindFromLabel("tgi"),
    ]).toEqual(["vllm", "trtllm-serve", "trtllm-serve", "sglang", undefined]);
  });
});
