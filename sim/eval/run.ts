/**
 * Benchmark entry: runs every policy on the default scenarios (or one given on the command line)
 * at each engine speed (the simulated engine's true speed relative to the planner's prior, which
 * every policy's capacity comes from) and prints the comparison table: each baseline at its
 * defaults and at its best setting found by a hindsight sweep. Writes one SVG timeline per scenario
 * at speed 1 and a JSON summary. Then, unless --load-scales is empty, the same scenarios at other
 * loads (the trace's shape, scaled): static, the two oracles and gpufleet, to show the defaults are
 * not tuned to one load. Every autoscaler starts from minReplicas.
 *
 *   npx tsx sim/eval/run.ts [--out .cache/eval] [--only azure|mooncake] [--speeds 0.7,1,1.3]
 *     [--load-scales 0.8,1.2,1.5]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_SCENARIOS, evaluateScenario } from "./evaluate.js";
import {
  formatLoadScaleTable,
  formatSpeedTable,
  formatTable,
  timelineSvg,
  type LoadScaleRow,
  type SpeedRow,
} from "./report.js";
import { repoRoot } from "./traces.js";

const { values } = parseArgs({
  options: {
    out: { type: "string" },
    only: { type: "string" },
    "load-scales": { type: "string" },
    speeds: { type: "string" },
  },
});
const speeds = (values.speeds ?? "0.7,1,1.3")
  .split(",")
  .filter((x) => x.trim() !== "")
  .map(Number);
if (speeds.length === 0 || speeds.some((x) => !Number.isFinite(x) || x <= 0)) {
  console.error(`--speeds takes positive numbers separated by commas, got "${values.speeds}"`);
  process.exit(2);
}
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
const speedRows: SpeedRow[] = [];
for (const base of DEFAULT_SCENARIOS.filter((d) => !values.only || d.name.startsWith(values.only)))
  for (const engineSpeed of speeds) {
    // The gpufleet variants (trade-off rows) only at the planner's own speed.
    const def = engineSpeed === 1 ? base : { ...base, engineSpeed, gpufleetVariants: [] };
    const t0 = Date.now();
    const outcome = evaluateScenario(def);
    const seconds = (Date.now() - t0) / 1000;
    const trace = outcome.fleet.trace;
    console.log(`\n=== ${def.name} · engine ${engineSpeed}× the planner's speed ===`);
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
    const [staticPeak, oracle] = outcome.results;
    const gpufleet = outcome.results.find((r) => r.controller === "gpufleet");
    if (!staticPeak || !oracle || !gpufleet) throw new Error(`incomplete results for ${def.name}`);
    speedRows.push({
      trace: def.trace,
      engineSpeed,
      goalShare: def.goalShare,
      staticPeak,
      oracle,
      gpufleet,
      baselines: outcome.results.slice(3).filter((r) => !r.controller.startsWith("gpufleet")),
    });
    if (engineSpeed === 1) {
      const slug = def.trace.replace(/[^a-z0-9]+/gi, "-");
      const svgFile = path.join(outDir, `${slug}-timeline.svg`);
      // Defaults only in the plot (the tuned rows would crowd it).
      writeFileSync(
        svgFile,
        timelineSvg(
          def.name,
          outcome.results.filter((r) => !r.controller.includes("tuned")),
        ),
      );
      console.log(`plot: ${svgFile}`);
    }
    summary.push({
      scenario: def,
      staticReplicas: outcome.staticReplicas,
      oracleSchedule: outcome.oracleSchedule,
      laggedOracleSchedule: outcome.laggedOracle.schedule,
      results: outcome.results.map(({ timeline: _timeline, ...rest }) => rest),
    });
  }

console.log(
  `\n=== GPU-hours and share within the goal by engine speed (baselines: defaults and tuned with hindsight) ===`,
);
console.log(formatSpeedTable(speedRows));

const scenarios = DEFAULT_SCENARIOS.filter((d) => !values.only || d.name.startsWith(values.only));
if (loadScales.length > 0) {
  console.log(`\n=== the same scenarios at ${loadScales.map((x) => `${x}×`).join(", ")} load ===`);
  const rows: LoadScaleRow[] = [];
  for (const def of scenarios) {
    for (const loadScale of loadScales) {
      const scaled = {
        ...def,
        loadScale: def.loadScale * loadScale,
        gpufleetVariants: [],
        tuneBaselines: false,
      };
      const outcome = evaluateScenario(scaled);
      const [staticPeak, oracle, laggedOracle] = outcome.results;
      const gpufleet = outcome.results.find((r) => r.controller === "gpufleet");
      if (!staticPeak || !oracle || !laggedOracle || !gpufleet)
        throw new Error(`incomplete results for ${def.name}`);
      rows.push({
        trace: def.trace,
        loadScale,
        goalShare: def.goalShare,
        staticPeak,
        oracle,
        laggedOracle,
        gpufleet,
      });
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
