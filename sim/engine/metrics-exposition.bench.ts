/**
 * Parser throughput benchmark: `npx tsx sim/engine/metrics-exposition.bench.ts`.
 *
 * Input: a vLLM-sized exposition (~14 histograms × 4 engines, the size of a real data-parallel
 * vLLM /metrics). Baselines, measured in the same run: a bare line scan that only extracts the
 * three autoscaling gauges with a regex (the least work any scraper must do), and JSON.parse of
 * the same samples as JSON (what a JSON metrics API would cost).
 */
import {
  type MetricFamily,
  parseExposition,
  serializeExposition,
} from "../../operator/metrics/exposition.js";

const BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640,
  2560,
];

function vllmLikeExposition(engines: number, histograms: number): MetricFamily[] {
  const families: MetricFamily[] = [];
  for (const gauge of [
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
  ]) {
    families.push({
      name: gauge,
      type: "gauge",
      help: "gauge",
      samples: Array.from({ length: engines }, (_, e) => ({
        name: gauge,
        labels: { engine: String(e), model_name: "meta-llama/Llama-3.1-8B-Instruct" },
        value: Math.random(),
      })),
    });
  }
  for (let h = 0; h < histograms; h++) {
    const name = `vllm:histogram_${h}_seconds`;
    const samples: MetricFamily["samples"] = [];
    for (let e = 0; e < engines; e++) {
      const labels = { engine: String(e), model_name: "meta-llama/Llama-3.1-8B-Instruct" };
      BUCKETS.forEach((le, i) =>
        samples.push({ name: `${name}_bucket`, labels: { ...labels, le: String(le) }, value: i * 3 }),
      );
      samples.push(
        { name: `${name}_bucket`, labels: { ...labels, le: "+Inf" }, value: 100 },
        { name: `${name}_sum`, labels, value: 12.5 },
        { name: `${name}_count`, labels, value: 100 },
      );
    }
    families.push({ name, type: "histogram", help: "histogram", samples });
  }
  return families;
}

function timeIt(iterations: number, run: () => unknown): number {
  for (let i = 0; i < Math.min(20, iterations); i++) run(); // warm-up
  const start = performance.now();
  for (let i = 0; i < iterations; i++) run();
  const perCallMs = (performance.now() - start) / iterations;
  return perCallMs;
}

const families = vllmLikeExposition(4, 14);
const text = serializeExposition(families);
const json = JSON.stringify(families);
const GAUGE_LINE = /^vllm:(num_requests_running|num_requests_waiting|kv_cache_usage_perc)\{[^}]*\} (\S+)$/;
const iterations = 300;

const regexMs = timeIt(iterations, () => {
  let found = 0;
  for (const line of text.split("\n")) if (GAUGE_LINE.test(line)) found++;
  return found;
});
const jsonMs = timeIt(iterations, () => JSON.parse(json) as unknown);
const parseMs = timeIt(iterations, () => parseExposition(text));

const lines = text.split("\n").length;
console.log(`input: ${(text.length / 1024).toFixed(0)} KiB, ${lines} lines`);
console.log(`regex gauge scan : ${regexMs.toFixed(3)} ms/exposition (baseline)`);
console.log(`JSON.parse       : ${jsonMs.toFixed(3)} ms (${(jsonMs / regexMs).toFixed(1)}× baseline)`);
console.log(
  `parseExposition  : ${parseMs.toFixed(3)} ms (${(parseMs / regexMs).toFixed(1)}× baseline, ${(parseMs / jsonMs).toFixed(1)}× JSON.parse)`,
);
console.log(`=> ${(1000 / parseMs).toFixed(0)} pod scrapes/s of parsing on one core`);
