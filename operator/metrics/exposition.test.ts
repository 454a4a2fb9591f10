import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  isOpenMetricsContentType,
  ParseError,
  parseExposition,
  samplesNamed,
  serializeExposition,
} from "./exposition.js";

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");

function parseError(text: string): ParseError {
  try {
    parseExposition(text);
  } catch (error) {
    if (error instanceof ParseError) return error;
    throw error;
  }
  throw new Error("expected a ParseError");
}

describe("parseExposition", () => {
  it("reads HELP, TYPE, labels and values of a gauge", () => {
    const [family] = parseExposition(
      '# HELP up Whether the target is up.\n# TYPE up gauge\nup{job="a",instance="b"} 1\n',
    );
    expect(family).toEqual({
      name: "up",
      type: "gauge",
      help: "Whether the target is up.",
      samples: [{ name: "up", labels: { job: "a", instance: "b" }, value: 1 }],
    });
  });

  it("unescapes label values and HELP text", () => {
    const families = parseExposition(
      '# HELP m a \\\\ backslash and a\\nnewline\nm{path="C:\\\\dir",quote="say \\"hi\\"",nl="a\\nb"} 2\n',
    );
    expect(families[0]?.help).toBe("a \\ backslash and a\nnewline");
    expect(families[0]?.samples[0]?.labels).toEqual({ path: "C:\\dir", quote: 'say "hi"', nl: "a\nb" });
  });

  it("reads NaN, signed infinities, exponents and integer-millisecond timestamps", () => {
    const families = parseExposition("a NaN\nb +Inf 1700000000000\nc -Inf\nd 1.5e-3 -5\ne 3.\n");
    const values = families.map((f) => f.samples[0]?.value);
    expect(Number.isNaN(values[0])).toBe(true);
    expect(values.slice(1)).toEqual([Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0.0015, 3]);
    expect(families[1]?.samples[0]?.timestampMs).toBe(1_700_000_000_000);
    expect(families[3]?.samples[0]?.timestampMs).toBe(-5);
  });

  it("groups histogram buckets, sum and count under their family and checks `le`", () => {
    const families = parseExposition(
      [
        "# TYPE ttft histogram",
        'ttft_bucket{le="0.1"} 1',
        'ttft_bucket{le="+Inf"} 3',
        "ttft_sum 0.9",
        "ttft_count 3",
        "",
      ].join("\n"),
    );
    expect(families).toHaveLength(1);
    expect(families[0]?.samples.map((s) => s.name)).toEqual([
      "ttft_bucket",
      "ttft_bucket",
      "ttft_sum",
      "ttft_count",
    ]);
    expect(parseError("# TYPE h histogram\nh_bucket 1\n").message).toMatch(/without an 'le' label/);
  });

  it("groups summary quantiles and requires the quantile label", () => {
    const families = parseExposition('# TYPE s summary\ns{quantile="0.5"} 1\ns_sum 2\ns_count 2\n');
    expect(families[0]?.samples).toHaveLength(3);
    expect(parseError("# TYPE s summary\ns 1\n").message).toMatch(/quantile/);
  });

  it("accepts OpenMetrics: _total counters, float-second timestamps, exemplars and stops at # EOF", () => {
    const families = parseExposition(
      [
        "# TYPE requests counter",
        "# UNIT requests requests",
        'requests_total{code="200"} 10 1700000000.25 # {trace_id="abc"} 1 1700000000.1',
        "requests_created 1700000000",
        "# EOF",
        "garbage after eof is ignored {",
      ].join("\n"),
      { openMetrics: true },
    );
    expect(families).toHaveLength(1);
    const [total, created] = families[0]?.samples ?? [];
    expect(families[0]?.unit).toBe("requests");
    expect(total?.timestampMs).toBe(1_700_000_000_250);
    expect(total?.exemplar).toEqual({
      labels: { trace_id: "abc" },
      value: 1,
      timestampSeconds: 1700000000.1,
    });
    expect(created?.name).toBe("requests_created");
  });

  it("accepts Prometheus 3 quoted UTF-8 metric and label names", () => {
    const families = parseExposition('# TYPE "my.metric" gauge\n{"my.metric", "a.b"="c"} 4\n');
    expect(families[0]?.name).toBe("my.metric");
    expect(families[0]?.samples[0]).toEqual({ name: "my.metric", labels: { "a.b": "c" }, value: 4 });
  });

  it("tolerates CRLF line ends, blank lines, trailing commas and blanks inside braces", () => {
    const families = parseExposition('# TYPE g gauge\r\n\r\ng{ a="1", } 7\r\n');
    expect(families[0]?.samples[0]).toEqual({ name: "g", labels: { a: "1" }, value: 7 });
  });

  it.each([
    ['m{a="1"', /unterminated|expected/],
    ["m{a=1} 2", /expected '"'/],
    ["m 12abc", /invalid sample value/],
    ["m", /expected whitespace/],
    ["m 1 1.5", /invalid timestamp/],
    ["m 1 2 3", /after sample/],
    ['m{a="1",a="2"} 1', /duplicate label/],
    ["# TYPE m gauge\n# TYPE m gauge", /second TYPE/],
    ["# TYPE m sometype", /unknown metric type/],
    ["m 1\n# TYPE m gauge", /after its samples/],
    ["3m 1", /expected a name/],
  ])("rejects %j with a ParseError", (text, message) => {
    const error = parseError(text);
    expect(error).toBeInstanceOf(ParseError);
    expect(error.message).toMatch(message);
    expect(error.line).toBeGreaterThanOrEqual(1);
  });

  it("keeps the first value of a series that appears twice, as the Prometheus server does (not a sum)", () => {
    const families = parseExposition(
      'vllm:num_requests_waiting{model_name="m",engine="0"} 3\n' +
        'vllm:num_requests_waiting{engine="0",model_name="m"} 5\n' +
        'vllm:num_requests_waiting{engine="1",model_name="m"} 2\n',
    );
    expect(samplesNamed(families, "vllm:num_requests_waiting").map((s) => s.value)).toEqual([3, 2]);
  });

  it("reads `# EOF` in the 0.0.4 text format as a comment and goes on to the samples after it", () => {
    const families = parseExposition("a 1\n# EOF\nb 2 1700000000000\n");
    expect(families.map((f) => f.name)).toEqual(["a", "b"]);
    expect(families[1]?.samples[0]?.timestampMs).toBe(1_700_000_000_000);
    // OpenMetrics, chosen by the Content-Type as the Prometheus server does, ends at `# EOF`.
    expect(parseExposition("a 1\n# EOF\nb 2\n", { openMetrics: true }).map((f) => f.name)).toEqual(["a"]);
    expect(isOpenMetricsContentType("application/openmetrics-text; version=1.0.0; charset=utf-8")).toBe(true);
    expect(isOpenMetricsContentType("text/plain; version=0.0.4")).toBe(false);
    expect(isOpenMetricsContentType(null)).toBe(false);
  });

  it("keeps unknown escapes in label values and HELP as written instead of failing the scrape", () => {
    const families = parseExposition('# HELP m tab\\there\nm{path="C:\\temp\\x",a="\\t"} 1\n');
    expect(families[0]?.help).toBe("tab\\there");
    expect(families[0]?.samples[0]?.labels).toEqual({ path: "C:\\temp\\x", a: "\\t" });
    expect(parseExposition(serializeExposition(families))).toEqual(families);
  });

  it("accepts le=\"Inf\" (any spelling Go's ParseFloat reads) as a histogram bound", () => {
    const families = parseExposition('# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="Inf"} 2\n');
    expect(families[0]?.samples).toHaveLength(2);
  });

  it("reports the line and column of the fault", () => {
    const error = parseError("ok 1\nok2 1\nbad{x=} 1\n");
    expect(error.line).toBe(3);
    expect(error.column).toBe(7);
  });
});

describe("real vLLM /metrics quoted in public issues", () => {
  it.each([
    "vllm-v1-gpu-cache-usage-production-stack-318.prom",
    "vllm-v0-cache-config-qwen3-vl-55.prom",
    "vllm-v0.10-kv-cache-usage-production-stack-617.prom",
    "vllm-decode-time-histogram-vllm-22227.prom",
  ])("parses %s and round-trips it through the serializer", (name) => {
    const families = parseExposition(fixture(name));
    expect(families.length).toBeGreaterThan(0);
    expect(parseExposition(serializeExposition(families))).toEqual(families);
  });

  it("reads the vLLM 0.10 KV gauge with its engine and model labels", () => {
    const families = parseExposition(fixture("vllm-v0.10-kv-cache-usage-production-stack-617.prom"));
    const [kv] = samplesNamed(families, "vllm:kv_cache_usage_perc");
    expect(kv).toEqual({
      name: "vllm:kv_cache_usage_perc",
      labels: { engine: "0", model_name: "zai-org/GLM-4.5" },
      value: 9.75010481363281e-6,
    });
    // prometheus_client emits `_created` as its own gauge family: it must not be folded into a counter.
    expect(families.find((f) => f.name === "vllm:gpu_prefix_cache_hits_created")?.type).toBe("gauge");
  });

  it("reads all thirteen histogram buckets of the data-parallel engine", () => {
    const buckets = samplesNamed(
      parseExposition(fixture("vllm-decode-time-histogram-vllm-22227.prom")),
      "vllm:request_decode_time_seconds_bucket",
    );
    expect(buckets).toHaveLength(13);
    expect(buckets.at(-1)?.labels).toEqual({ engine: "1", le: "+Inf", model_name: "/home/jovyan/qwen3-8b" });
  });
});
