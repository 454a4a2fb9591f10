import { describe, expect, it } from "vitest";
import { engineKindFromLabel, ENGINE_METRICS_PATH, normalizeEngineMetrics } from "./engines.js";
import { parseExposition } from "./exposition.js";

// An SGLang /metrics page in the shape its collector writes (names and label keys as in
// sgl-project/sglang python/sglang/srt/metrics/collector.py); values made up for the test.
const MODEL = "Qwen/Qwen3-8B";
const page = (rank0: { usage: number; queue: number; running: number }, withRank1 = true) => `
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="${MODEL}",tp_rank="0",pp_rank="0"} ${rank0.usage}
${withRank1 ? `sglang:token_usage{model_name="${MODEL}",tp_rank="1",pp_rank="0"} ${rank0.usage}` : ""}
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="${MODEL}",tp_rank="0",pp_rank="0"} ${rank0.queue}
${withRank1 ? `sglang:num_queue_reqs{model_name="${MODEL}",tp_rank="1",pp_rank="0"} ${rank0.queue}` : ""}
# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="${MODEL}",tp_rank="0",pp_rank="0"} ${rank0.running}
${withRank1 ? `sglang:num_running_reqs{model_name="${MODEL}",tp_rank="1",pp_rank="0"} ${rank0.running}` : ""}
# HELP sglang:prompt_tokens_total Number of prefill tokens processed.
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{model_name="${MODEL}"} 8128902
# HELP sglang:generation_tokens_total Number of generation tokens processed.
# TYPE sglang:generation_tokens_total counter
sglang:generation_tokens_total{model_name="${MODEL}"} 7557572
# HELP sglang:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE sglang:time_to_first_token_seconds histogram
sglang:time_to_first_token_seconds_bucket{le="0.1",model_name="${MODEL}"} 10
sglang:time_to_first_token_seconds_bucket{le="1.0",model_name="${MODEL}"} 40
sglang:time_to_first_token_seconds_bucket{le="+Inf",model_name="${MODEL}"} 42
sglang:time_to_first_token_seconds_sum{model_name="${MODEL}"} 12.5
sglang:time_to_first_token_seconds_count{model_name="${MODEL}"} 42
`;

describe("normalizeEngineMetrics for SGLang", () => {
  it("reads token usage as KV pressure, the waiting queue and running requests, counters and TTFT", () => {
    const sample = normalizeEngineMetrics(parseExposition(page({ usage: 0.28, queue: 3, running: 17 })), {
      engine: "sglang",
      modelName: MODEL,
      scrapedAtMs: 7,
    });
    expect(sample).toEqual({
      kvCacheUtilization: 0.28,
      requestsWaiting: 3,
      requestsRunning: 17,
      promptTokensTotal: 8128902,
      generationTokensTotal: 7557572,
      ttftHistogram: {
        upperBoundsSeconds: [0.1, 1, Number.POSITIVE_INFINITY],
        cumulativeCounts: [10, 40, 42],
      },
      scrapedAtMs: 7,
    });
  });

  it("counts a tensor-parallel group once: rank 1's copy is not added to rank 0's", () => {
    const withCopies = normalizeEngineMetrics(parseExposition(page({ usage: 0.5, queue: 4, running: 8 })), {
      engine: "sglang",
      scrapedAtMs: 0,
    });
    const rankZeroOnly = normalizeEngineMetrics(
      parseExposition(page({ usage: 0.5, queue: 4, running: 8 }, false)),
      { engine: "sglang", scrapedAtMs: 0 },
    );
    expect(withCopies.requestsWaiting).toBe(4);
    expect(withCopies).toEqual(rankZeroOnly);
  });

  it("is found by the gateway's engine-type label and scraped on /metrics", () => {
    expect(engineKindFromLabel("sglang")).toBe("sglang");
    expect(ENGINE_METRICS_PATH.sglang).toBe("/metrics");
  });

  it("refuses a token usage outside 0..1 rather than guessing", () => {
    expect(() =>
      normalizeEngineMetrics(parseExposition(page({ usage: 1.7, queue: 0, running: 0 })), {
        engine: "sglang",
        scrapedAtMs: 0,
      }),
    ).toThrow(/sglang:token_usage = 1.7/);
  });
});
