/**
 * Benchmark entry: runs every policy on the default scenarios (or one given on the command line)
 * and prints the comparison table; writes one SVG timeline per scenario and a JSON summary. Then,
 * unless --load-scales is empty, the same scenarios at other loads (the trace's shape, scaled):
 * static, the two oracles and gpufleet, to show the defaults are not tuned to one load.
 *
 *   npx tsx sim/eval/run.ts [--out .cache/eval] [--only azure|mooncake] [--load-scales 0.8,1.2,1.5]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_SCENARIOS, evaluateScenario } from "./evaluate.js";
import { formatLoadScaleTable, formatTable, timelineSvg, type LoadScaleRow } from "./report.js";
import { repoRoot } from "./traces.js";

const { values } = parseArgs({
  options: { out: { type: "string" }, only: { type: "string" }, "load-scales": { type: "string" } },
});
const loadScales = (values["load-scales"] ?? "0.8,1.2,1.5")
  .split(",")
  .filter((x) => x.trim() !== "")
  .map(Number);
if (loadScales.some((x) => !Number.isFinite(x) || x <= 0)) {
  console.error(`--load-scales takes positive numbers separated by commas, got "${values["load-scales"]}"`);
  process.exit(2);
}
const outDir = path.resolve(values.out ?? path.join(repoRoot(), ".cache", "eval"));
mkdirSync(outDir, { recursive: true });

const started = Date.now();
const summary: unknown[] = [];
for (const def of DEFAULT_SCENARIOS.filter((d) => !values.only || d.name.startsWith(values.only))) {
  const t0 = Date.now();
  const outcome = evaluateScenario(def);
  const seconds = (Date.now() - t0) / 1000;
  const trace = outcome.fleet.trace;
  console.log(`\n=== ${def.name} ===`);
  console.log(
    `${trace.requests.length} requests over ${(trace.durationMs / 60_000).toFixed(1)} min; ` +
      `${outcome.gpusPerReplica} GPU(s)/replica; model load ${def.modelLoadSeconds}s; ` +
      `goal ≥${def.goalShare * 100}% of requests with TTFT ≤ ${def.ttftTargetSeconds}s; ` +
      `oracle replicas per ${def.oracleWindowSeconds}s window: ${outcome.oracleSchedule.join(",")}; ` +
      `one window late: ${outcome.laggedOracle.schedule.join(",")} (the most any of the last ` +
      `${outcome.laggedOracle.lagWindows} window(s) needed, +${outcome.laggedOracle.margin})`,
  );
  console.log(formatTable(outcome.results, def.ttftTargetSeconds));
  console.log(`(simulated in ${seconds.toFixed(1)} s of wall time)`);
  const slug = def.trace.replace(/[^a-z0-9]+/gi, "-");
  const svgFile = path.join(outDir, `${slug}-timeline.svg`);
  writeFileSync(svgFile, timelineSvg(def.name, outcome.results));
  console.log(`plot: ${svgFile}`);
  summary.push({
    scenario: def,
    staticReplicas: outcome.staticReplicas,
    oracleSchedule: outcome.oracleSchedule,
    laggedOracleSchedule: outcome.laggedOracle.schedule,
    results: outcome.results.map(({ timeline: _timeline, ...rest }) => rest),
  });
}

const scenarios = DEFAULT_SCENARIOS.filter((d) => !values.only || d.name.startsWith(values.only));
if (loadScales.length > 0) {
  console.log(`\n=== the same scenarios at ${loadScales.map((x) => `${x}×`).join(", ")} load ===`);
  const rows: LoadScaleRow[] = [];
  for (const def of scenarios) {
    for (const loadScale of loadScales) {
      const scaled = { ...def, loadScale: def.loadScale * loadScale, gpufleetVariants: [] };
      const outcome = evaluateScenario(scaled);
      const [staticPeak, oracle, laggedOracle] = outcome.results;
      const gpufleet = outcome.results.find((r) => r.controller === "gpufleet");
      if (!staticPeak || !oracle || !laggedOracle || !gpufleet) throw new Error(`incomplete results for ${def.name}`);
      rows.push({ trace: def.trace, loadScale, goalShare: def.goalShare, staticPeak, oracle, laggedOracle, gpufleet });
      summary.push({
        scenario: scaled,
        results: [staticPeak, oracle, laggedOracle, gpufleet].map(({ timeline: _timeline, ...rest }) => rest),
      });
    }
  }
  console.log(formatLoadScaleTable(rows));
}

writeFileSync(path.join(outDir, "summary.json"), JSON.stringify(summary, null, 2));
console.log(
  `\ntotal wall time ${((Date.now() - started) / 1000).toFixed(1)} s; summary: ${path.join(outDir, "summary.json")}`,
);
