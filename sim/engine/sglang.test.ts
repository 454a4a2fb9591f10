import { afterEach, describe, expect, it } from "vitest";
import { normalizeEngineMetrics } from "../../operator/metrics/engines.js";
import { parseExposition } from "../../operator/metrics/exposition.js";
import { startEngineServer, type EngineServer } from "./server.js";
import { SMALL_ENGINE } from "./testing.js";

let server: EngineServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe("the engine simulator speaking SGLang", () => {
  it("serves /health and an SGLang /metrics page the operator's normaliser reads, load included", async () => {
    server = await startEngineServer({
      host: "127.0.0.1",
      port: 0,
      engine: "sglang",
      modelName: "sim-qwen",
      params: SMALL_ENGINE,
    });
    const base = server.url;
    const health = await fetch(`${base}/health`);
    expect([200, 503]).toContain(health.status);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain("sglang:token_usage");
    expect(metrics).not.toContain("vllm:");
    const sample = normalizeEngineMetrics(parseExposition(metrics), {
      engine: "sglang",
      modelName: "sim-qwen",
      scrapedAtMs: 0,
    });
    expect(sample.kvCacheUtilization).toBeGreaterThanOrEqual(0);
    expect(sample.requestsRunning).toBe(0);
    expect(sample.ttftHistogram?.upperBoundsSeconds.at(-1)).toBe(Number.POSITIVE_INFINITY);
    const models = (await (await fetch(`${base}/v1/models`)).json()) as { data: Array<{ owned_by: string }> };
    expect(models.data[0]?.owned_by).toBe("sglang");
  });
});
