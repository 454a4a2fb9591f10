/**
 * One day's hour-by-hour plan of the benchmark fleet, and what moving bought: the rolling hourly plan
 * against the best fixed placement for the same day (same hourly intensities and demand, replicas
 * held all day).
 *
 * Run: npx tsx infra/bench/hourly-day.ts [--date 2023-06-15] [--target 100] [--fleet today|zones] [--block 1]
 *      [--source static|electricitymaps|watttime|carbon-aware-sdk]   (live: today, keys from the environment)
 */
import { performance } from "node:perf_hooks";
import { intensitySourceFromConfig, type CarbonSourceConfig } from "../carbon/index.js";
import { loadGcpRttTable, planFromSource, planHourly, type HourlyPlan } from "../placement/index.js";
import { benchInput, CANDIDATES, HOURLY_ZONE_CANDIDATES, ORIGINS } from "./fleet-scenario.js";
import { dailyShapes } from "./demand-shape.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}

const HOUR_MS = 3_600_000;

async function main(): Promise<void> {
  const provider = (arg("source") ?? "static") as CarbonSourceConfig["provider"];
  const startMs =
    provider === "static"
      ? Date.parse(`${arg("date") ?? "2023-06-15"}T00:00:00Z`)
      : Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  if (!Number.isFinite(startMs)) throw new Error("--date must be YYYY-MM-DD");
  const target = Number(arg("target") ?? 100);
  const blockHours = Number(arg("block") ?? 1);
  const candidates = arg("fleet") === "zones" ? HOURLY_ZONE_CANDIDATES : CANDIDATES;
  const rtt = loadGcpRttTable();
  const source = intensitySourceFromConfig({ provider });
  const shapes = dailyShapes(ORIGINS.map(([o]) => o));
  const utcHour = new Date(startMs).getUTCHours();
  const demandShape = Object.fromEntries(
    Object.entries(shapes).map(([o, s]) => [
      o,
      Array.from({ length: 24 }, (_, h) => s[(utcHour + h) % 24] ?? 1),
    ]),
  );
  const input = {
    ...benchInput(target, rtt, undefined, candidates),
    hours: 24,
    demandShape,
    blockHours,
    moves: { loadMinutes: 10, minDwellHours: 4 },
    solver: { timeLimitSeconds: 30, mipRelativeGap: 1e-2 },
  };
  const cpu = process.cpuUsage();
  const started = performance.now();
  const plan = await planFromSource(input, source, startMs, "carbon-aware", {
    windowHours: blockHours,
    commitHours: blockHours,
  });
  const wall = (performance.now() - started) / 1000;
  const cpuSeconds = process.cpuUsage(cpu).user / 1e6;
  const regions = input.regions.map((r) => r.region);
  const { intensity } = await source.seriesFor(regions, startMs, 24);
  const fixed = await planHourly({ ...input, intensity, startMs, blockHours: 24 });

  console.log(
    `Hour-by-hour carbon-aware plan, ${new Date(startMs).toISOString().slice(0, 13)}h UTC + 24 h, ${target} ms, source ${source.name}`,
  );
  console.log("hour  starts  g/h      replicas per region (gCO2/kWh of that hour)");
  for (const h of plan.hours) {
    const perRegion = new Map<string, number>();
    for (const r of h.replicas) perRegion.set(r.region, (perRegion.get(r.region) ?? 0) + r.replicas);
    const cells = [...perRegion]
      .sort((a, b) => b[1] - a[1])
      .map(([region, n]) => `${region.replace("gcp:", "")}×${n} (${(h.intensity[region] ?? 0).toFixed(0)})`);
    console.log(
      `${String(h.hour).padStart(4)}  ${String(h.starts).padStart(6)}  ${h.emissionsGrams.toFixed(0).padStart(6)}   ${cells.join(", ")}`,
    );
  }
  const line = (name: string, p: HourlyPlan): string =>
    `${name.padEnd(34)} ${p.totals.gCO2PerMillionTokens.toFixed(2).padStart(6)} gCO2/Mtok  $${(p.totals.cost / 24).toFixed(0)}/h  ` +
    `${p.totals.starts} starts (${((p.totals.moveEmissionsGrams / p.totals.emissionsGrams) * 100).toFixed(1)}% of its carbon)  mean RTT ${p.totals.meanRttMs.toFixed(1)} ms`;
  console.log(
    `\n${line("re-planned hourly (moves allowed)", plan)}\n${line("fixed placement (replicas, split held)", fixed)}`,
  );
  console.log(
    `re-planning (re-sizing and moving) bought ${(((fixed.totals.emissionsGrams - plan.totals.emissionsGrams) / fixed.totals.emissionsGrams) * 100).toFixed(1)}% less carbon; ` +
      `planning took ${wall.toFixed(1)} s wall, ${cpuSeconds.toFixed(1)} s CPU (${24 / blockHours} MILPs of ${plan.size.integers} integers)`,
  );
  const fallbacks = plan.hours.flatMap((h) =>
    Object.values(h.intensitySource ?? {}).filter((s) => s.fallbackReason),
  );
  if (fallbacks.length > 0)
    console.log(`${fallbacks.length} region-hours from fallback: ${fallbacks[0]?.fallbackReason}`);
}

await main();
