/**
 * Carbon-aware vs carbon-agnostic placement on the shared public data: real yearly grid intensities
 * (Electricity Maps 2025 / Google Cloud 2024, via StaticCarbonIntensitySource) and real inter-region
 * RTTs (umassos/decarbonization-potential GCP matrix). Prices, quotas and per-replica throughputs are
 * ILLUSTRATIVE (see fleet-scenario.ts), not quotes; the comparison is between strategies solved on
 * the same inputs, so it is the ratios that carry the result.
 *
 * Run: npx tsx infra/bench/placement-bench.ts
 */
import { performance } from "node:perf_hooks";
import { StaticCarbonIntensitySource, attributionText } from "../carbon/index.js";
import { loadGcpRttTable, placeFleet, type FleetPlacement, type PlacementPlan } from "../placement/index.js";
import { CANDIDATES, MODELS, ORIGINS, benchInput } from "./fleet-scenario.js";

function row(cells: Array<string | number>, widths: number[]): string {
  return cells.map((c, i) => String(c).padStart(widths[i] ?? 10)).join("  ");
}

const fmt = (value: number, digits = 1): string => value.toFixed(digits);

function planRow(target: number, plan: PlacementPlan, baseline: PlacementPlan): Array<string | number> {
  const regionCount = new Set(plan.replicas.map((r) => r.region)).size;
  return [
    `${target} ms`,
    plan.strategy,
    fmt(plan.tCO2PerYear, 1),
    fmt(plan.gCO2PerMillionTokens, 2),
    fmt(plan.emissionsGramsPerHour / baseline.emissionsGramsPerHour, 3),
    fmt(plan.costPerHour, 0),
    fmt(plan.meanRttMs, 1),
    fmt(plan.maxRttMs, 0),
    plan.totalGpus,
    regionCount,
  ];
}

async function main(): Promise<void> {
  const loadStart = performance.now();
  const carbonSource = StaticCarbonIntensitySource.fromSharedData();
  const rtt = loadGcpRttTable();
  const loadMs = performance.now() - loadStart;
  const widths = [7, 13, 9, 10, 9, 8, 9, 8, 6, 8];
  const header = row(
    ["target", "strategy", "tCO2/yr", "gCO2/Mtok", "vs cheap", "$/h", "meanRTT", "maxRTT", "GPUs", "regions"],
    widths,
  );
  const results: Array<{ target: number; result: FleetPlacement; solveMs: number }> = [];

  for (const target of [50, 100, 150]) {
    const input = benchInput(target, rtt, carbonSource);
    const start = performance.now();
    const result = await placeFleet(input);
    results.push({ target, result, solveMs: performance.now() - start });
  }

  const totalDemand = MODELS.reduce((s, m) => s + m.tokensPerSecond, 0);
  console.log(
    `gpufleet placement benchmark: ${MODELS.length} models, ${totalDemand.toLocaleString("en-US")} tokens/s over ${ORIGINS.length} origins,`,
  );
  console.log(
    `${CANDIDATES.length} candidate GCP regions, 2 regions per model, replicas at most 80% busy, PUE 1.1, MILP gap ≤ 1%.`,
  );
  console.log(
    `Intensities: yearly averages (freshest of Electricity Maps 2025 / GCP 2024); RTTs: GCP inter-region matrix.`,
  );
  console.log(
    `Prices, quotas, throughputs: illustrative. "vs cheap" = emissions / emissions of the cheapest plan at the same target.\n`,
  );
  console.log(header);
  console.log("-".repeat(header.length));
  for (const { target, result } of results) {
    for (const plan of [result.carbonAware, result.cheapest, result.nearest])
      console.log(row(planRow(target, plan, result.cheapest), widths));
    console.log("");
  }

  console.log("What carbon-aware placement buys and costs, at the same latency target:");
  for (const { target, result, solveMs } of results) {
    const c = result.comparison;
    console.log(
      `  ${target} ms: ${fmt(c.emissionsReductionVsCheapestPct)}% less CO2 than cheapest, ${fmt(c.emissionsReductionVsNearestPct)}% less than nearest; ` +
        `+$${fmt(c.extraCostPerHourVsCheapest, 0)}/h (${fmt((c.extraCostPerHourVsCheapest / result.cheapest.costPerHour) * 100)}%) vs cheapest; ` +
        `+${fmt(c.extraMeanRttMsVsNearest)} ms mean RTT vs nearest; 3 strategies solved in ${fmt(solveMs / 1000, 2)} s`,
    );
  }

  const last = results.at(-1);
  if (last !== undefined) {
    console.log(`\nCarbon-aware placement at ${last.target} ms (replicas per region):`);
    const byRegion = new Map<string, string[]>();
    for (const p of last.result.carbonAware.replicas) {
      byRegion.set(p.region, [
        ...(byRegion.get(p.region) ?? []),
        `${p.model}×${p.replicas} (${p.gpus} ${p.gpuProduct})`,
      ]);
    }
    for (const [region, entries] of [...byRegion].sort()) {
      const intensity = last.result.intensities[region];
      console.log(
        `  ${region.padEnd(28)} ${fmt(intensity?.gCO2PerKWh ?? 0, 0).padStart(4)} g/kWh [${intensity?.source}]  ${entries.join(", ")}`,
      );
    }
  }
  console.log(`\nData load ${fmt(loadMs, 0)} ms. Sources:\n${attributionText()}`);
}

await main();
