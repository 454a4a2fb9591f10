/**
 * Carbon-aware vs carbon-agnostic placement on the shared public data: real yearly grid intensities
 * (Electricity Maps 2025 / Google Cloud 2024, via StaticCarbonIntensitySource) and real inter-region
 * RTTs (umassos/decarbonization-potential GCP matrix). Prices, quotas and per-replica throughputs are
 * ILLUSTRATIVE (see fleet-scenario.ts), not quotes; the comparison is between strategies solved on
 * the same inputs, so it is the ratios that carry the result.
 *
 * Then the hourly part (hourly-bench.ts): 2023 hour by hour, yearly-static against hourly re-planned
 * placement, with and without the gateway's region routing.
 *
 * Run: npm run bench:placement [-- --hourly-only | --static-only] [--fleet today|zones|both] [--day-step 14] [--target 100] [--block 1]
 *      [--window 1] [--flexible 0.25] [--no-forecast] [--no-oracle] [--moves 0/0,10/1,30/8]   (load minutes / dwell hours)
 *      [--no-replan]   (only the rows that need no per-day MILP: with --day-step 1, the whole year in minutes)
 *      [--days 0-31 --save part.json] … then [--merge part1.json part2.json …]   (a year in day ranges, merged exactly)
 *      [--quantized]   (finer replicas: 70B in FP8 on 2 H100 / AWQ on 4 L4, Mixtral in FP8 on 1 H100)
 */
import { readFileSync, writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { StaticCarbonIntensitySource, attributionText } from "../carbon/index.js";
import { loadGcpRttTable, placeFleet, type FleetPlacement, type PlacementPlan } from "../placement/index.js";
import { CANDIDATES, HOURLY_ZONE_CANDIDATES, MODELS, ORIGINS, benchInput } from "./fleet-scenario.js";
import { dailyShapes } from "./demand-shape.js";
import {
  DEFAULT_HOURLY_BENCH,
  mergeHourlyResults,
  runHourlyBench,
  type HourlyBenchResult,
  zoneGains,
  type HourlyBenchOptions,
  type StrategyResult,
} from "./hourly-bench.js";

function flag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

function numberFlag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} needs a positive number`);
  return value;
}

function row(cells: Array<string | number>, widths: number[]): string {
  return cells.map((c, i) => String(c).padStart(widths[i] ?? 10)).join("  ");
}

const fmt = (value: number, digits = 1): string => value.toFixed(digits);

/** `--moves 0/0,10/1,30/8`: extra hourly rows at these load minutes / dwell hours. */
function movesFlag(): Array<{ loadMinutes: number; minDwellHours: number }> {
  const i = process.argv.indexOf("--moves");
  if (i < 0) return [];
  return (process.argv[i + 1] ?? "").split(",").map((pair) => {
    const [load, dwell] = pair.split("/").map(Number);
    if (!(load !== undefined && load >= 0 && dwell !== undefined && dwell >= 0 && Number.isInteger(dwell)))
      throw new Error(`--moves takes load-minutes/dwell-hours pairs, e.g. 0/0,10/1; got ${pair}`);
    return { loadMinutes: load, minDwellHours: dwell };
  });
}

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

/** `--days 0-91`: plan only these days of 2023 (0 = 1 January, end excluded). */
function daysFlag(): { firstDay?: number; lastDay?: number } {
  const i = process.argv.indexOf("--days");
  if (i < 0) return {};
  const match = /^(\d+)-(\d+)$/.exec(process.argv[i + 1] ?? "");
  const first = Number(match?.[1]);
  const last = Number(match?.[2]);
  if (!match || !(first < last) || last > 365) throw new Error("--days takes first-last day indices of 2023, e.g. 0-31");
  return { firstDay: first, lastDay: last };
}

function stringFlag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}

async function main(): Promise<void> {
  const mergeAt = process.argv.indexOf("--merge");
  if (mergeAt >= 0) {
    // --merge a.json b.json …: the saved day ranges of one run, printed as one.
    const files = process.argv.slice(mergeAt + 1).filter((f) => !f.startsWith("--"));
    const parts = files.map((f) => JSON.parse(readFileSync(f, "utf8")) as HourlyBenchResult);
    const merged = mergeHourlyResults(parts);
    const zones = merged.options.candidates.length === HOURLY_ZONE_CANDIDATES.length;
    printHourly(merged, zones ? "the GCP regions in the 16 hourly zones (15 regions)" : "the fleet above (20 candidate regions)");
    return;
  }
  if (!flag("hourly-only")) await staticBench();
  if (flag("static-only")) return;
  const fleet = process.argv[process.argv.indexOf("--fleet") + 1];
  const which = process.argv.includes("--fleet") ? fleet : "both";
  if (which === "today" || which === "both")
    await hourlyBench(CANDIDATES, "the fleet above (20 candidate regions)");
  if (which === "zones" || which === "both")
    await hourlyBench(HOURLY_ZONE_CANDIDATES, "the GCP regions in the 16 hourly zones (15 regions)");
}

async function staticBench(): Promise<void> {
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

async function hourlyBench(candidates: typeof CANDIDATES, label: string): Promise<void> {
  const options: HourlyBenchOptions = {
    ...DEFAULT_HOURLY_BENCH,
    candidates,
    latencyTargetMs: numberFlag("target", DEFAULT_HOURLY_BENCH.latencyTargetMs),
    dayStep: numberFlag("day-step", DEFAULT_HOURLY_BENCH.dayStep),
    blockHours: numberFlag("block", DEFAULT_HOURLY_BENCH.blockHours),
    flexibleShare: process.argv.includes("--flexible")
      ? Number(process.argv[process.argv.indexOf("--flexible") + 1])
      : DEFAULT_HOURLY_BENCH.flexibleShare,
    forecast: !flag("no-forecast"),
    windowHours: numberFlag("window", numberFlag("block", DEFAULT_HOURLY_BENCH.blockHours)),
    oracle: !flag("no-oracle"),
    moveVariants: movesFlag(),
    replan: !flag("no-replan"),
    quantized: flag("quantized"),
    ...daysFlag(),
  };
  if (!(options.flexibleShare >= 0 && options.flexibleShare < 1)) throw new Error("--flexible takes a share in [0, 1)");
  const rtt = loadGcpRttTable();
  const carbonSource = StaticCarbonIntensitySource.fromSharedData();
  const result = await runHourlyBench(rtt, carbonSource, options, undefined, (line) =>
    console.error(`  … ${line}`),
  );
  const save = stringFlag("save");
  if (save !== undefined) {
    writeFileSync(save, JSON.stringify(result));
    console.error(`  … saved days ${result.dayIndices[0] ?? "-"}..${result.dayIndices.at(-1) ?? "-"} to ${save}`);
  }
  printHourly(result, label);
}

function printHourly(result: HourlyBenchResult, label: string): void {
  const candidates = result.options.candidates;
  const o = result.options;
  console.log(
    `\nHourly, ${label}: 2023, ${result.days} days (every ${o.dayStep} days from 1 Jan${o.firstDay !== undefined || o.lastDay !== undefined ? `, days ${result.dayIndices[0] ?? "-"}-${result.dayIndices.at(-1) ?? "-"}` : ""}), latency target ${o.latencyTargetMs} ms, ` +
      `demand shaped per origin by local hour (ServeGen profile, mean = the demand above, peak ×${peakFactor().toFixed(2)}).`,
  );
  console.log(
    `Hourly intensity (Electricity Maps lca) for ${result.hourlyRegions.length} of ${candidates.length} regions: ` +
      result.hourlyRegions
        .map((h) => `${h.region.replace("gcp:", "")}=${h.zone} (${h.mean2023.toFixed(0)})`)
        .join(", ") +
      `; the others keep their yearly figure. Yearly-static plans on 2023 means of the same data.`,
  );
  console.log(
    `Re-planning: blocks of ${o.blockHours} h, rolling (each solve looks ${Math.max(o.windowHours ?? o.blockHours, o.blockHours)} h ahead); a start costs ${o.loadMinutes} min of idle load time, a started replica stays ≥ ${o.minDwellHours} h. ` +
      `Every plan is charged each hour's real intensity.` +
      (o.quantized ? ` Finer replicas: 70B in FP8 on 2 H100 / AWQ on 4 L4, Mixtral in FP8 on 1 H100 (tokens/s per GPU as bf16).` : "") +
      `\n`,
  );
  const widths = [26, 10, 8, 8, 9, 8, 10, 9];
  const header = row(
    ["strategy", "gCO2/Mtok", "vs today", "$/h", "$/Mtok", "meanRTT", "p95RTT", "starts/d"],
    widths,
  );
  console.log(header);
  console.log("-".repeat(header.length));
  const today = result.strategies[0];
  for (const s of result.strategies) {
    console.log(
      row(
        [
          s.name,
          fmt(s.gCO2PerMTok, 2),
          today ? `${fmt(((s.gCO2PerMTok - today.gCO2PerMTok) / today.gCO2PerMTok) * 100, 1)}%` : "",
          fmt(s.dollarsPerHour, 0),
          fmt(s.dollarsPerMTok, 3),
          fmt(s.meanRttMs, 1),
          fmt(s.p95RttMs, 0),
          fmt(s.startsPerDay, 1),
        ],
        widths,
      ),
    );
  }
  const routed = result.strategies.find((s) => s.name === "hourly + routing");
  if (routed)
    console.log(
      `(routing: ${fmt(routed.overCapacityPct, 2)}% of tokens sent above a region's planned capacity)`,
    );
  if (result.forecastMape !== undefined)
    console.log(
      `(day-ahead forecast = the same hour the day before: mean absolute error ${fmt(result.forecastMape * 100, 1)}% over the hourly regions)`,
    );
  const hourly = result.strategies.find((s) => s.name === "hourly re-planned");
  const resized = result.strategies.find((s) => s.name === "yearly, re-sized hourly");
  const freeMoves = result.strategies.find((s) => s.name === "ceiling: free moves");
  const freeCapacity = result.strategies.find((s) => s.name === "  + free capacity");
  const noRedundancy = result.strategies.find((s) => s.name === "  + one region per model");
  const floor = result.strategies.find((s) => s.name === "floor: cleanest reachable");
  if (today && resized && hourly && freeMoves && freeCapacity && noRedundancy && floor) {
    const pts = (a: StrategyResult, b: StrategyResult): string =>
      fmt(((a.gCO2PerMTok - b.gCO2PerMTok) / today.gCO2PerMTok) * 100, 1);
    console.log(
      `\nDecomposition (points of today's carbon, at the same ${o.latencyTargetMs} ms bound): ` +
        `following demand ${pts(today, resized)}, following hourly intensity ${pts(resized, hourly)} ` +
        `(= hourly re-planned ${pts(today, hourly)}); free moves would add ${pts(hourly, freeMoves)}, ` +
        `free capacity ${pts(freeMoves, freeCapacity)}, one region per model ${pts(freeCapacity, noRedundancy)}, ` +
        `fractional replicas ${pts(noRedundancy, floor)}: ` +
        `the floor is ${pts(today, floor)} below today.`,
    );
    for (const [label, row] of [
      ["free capacity", freeCapacity],
      ["the floor", floor],
    ] as const) {
      console.log(`Where ${label} serves its tokens vs yearly-static:`);
      for (const z of zoneGains(today, row).filter((z) => Math.max(z.fromShare, z.toShare) >= 0.01))
        console.log(
          `  ${z.zone.padEnd(40)} ${fmt(z.fromShare * 100, 1).padStart(5)}% @ ${fmt(z.fromIntensity, 0).padStart(4)} g/kWh -> ${fmt(z.toShare * 100, 1).padStart(5)}% @ ${fmt(z.toIntensity, 0).padStart(4)} g/kWh`,
        );
    }
  }
  const flexible = result.strategies.find((s) => s.name.includes("flexible load"));
  if (today && flexible) {
    console.log(`\nWhere ${flexible.name} serves its tokens vs yearly-static:`);
    for (const z of zoneGains(today, flexible).filter((z) => Math.max(z.fromShare, z.toShare) >= 0.01)) {
      console.log(
        `  ${z.zone.padEnd(40)} ${fmt(z.fromShare * 100, 1).padStart(5)}% @ ${fmt(z.fromIntensity, 0).padStart(4)} g/kWh -> ${fmt(z.toShare * 100, 1).padStart(5)}% @ ${fmt(z.toIntensity, 0).padStart(4)} g/kWh`,
      );
    }
  }
  if (today && hourly) {
    console.log(
      `\nWhere the hourly plan serves its tokens vs yearly-static (share of tokens, mean intensity of the hours served):`,
    );
    for (const z of zoneGains(today, hourly).filter((z) => Math.max(z.fromShare, z.toShare) >= 0.01)) {
      console.log(
        `  ${z.zone.padEnd(40)} ${fmt(z.fromShare * 100, 1).padStart(5)}% @ ${fmt(z.fromIntensity, 0).padStart(4)} g/kWh -> ${fmt(z.toShare * 100, 1).padStart(5)}% @ ${fmt(z.toIntensity, 0).padStart(4)} g/kWh`,
      );
    }
  }
  const per = [...result.solveSeconds.perDayHourly].sort((a, b) => a - b);
  console.log(
    `\nSolve: one day of hourly re-planning (${24 / o.blockHours} MILPs of ${result.size.integers} integer and ${result.size.continuous - result.size.integers} continuous variables, ` +
      `${result.size.rows} rows) took median ${fmt(per[Math.floor(per.length / 2)] ?? 0, 2)} s, max ${fmt(per.at(-1) ?? 0, 2)} s wall; ` +
      `whole hourly part ${fmt(result.solveSeconds.total, 0)} s (shared 2-core machine).`,
  );
}

/** Highest hour of the local-time demand profile relative to its mean. */
function peakFactor(): number {
  const shapes = dailyShapes(ORIGINS.map(([o]) => o));
  return Math.max(...Object.values(shapes).flat());
}

await main();
