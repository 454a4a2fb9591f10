/**
 * Benchmark entry: runs every policy on the default scenarios (or one given on the command line)
 * and prints the comparison table; writes one SVG timeline per scenario and a JSON summary.
 *
 *   npx tsx sim/eval/run.ts [--out .cache/eval] [--only azure|mooncake]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_SCENARIOS, evaluateScenario } from "./evaluate.js";
import { formatTable, timelineSvg } from "./report.js";
import { repoRoot } from "./traces.js";

const { values } = parseArgs({ options: { out: { type: "string" }, only: { type: "string" } } });
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
writeFileSync(path.join(outDir, "summary.json"), JSON.stringify(summary, null, 2));
console.log(
  `\ntotal wall time ${((Date.now() - started) / 1000).toFixed(1)} s; summary: ${path.join(outDir, "summary.json")}`,
);
