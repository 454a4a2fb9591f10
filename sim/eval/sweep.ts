/**
 * Tuning curves for gpufleet's policy on the evaluation scenarios: GPU-hours against the share of
 * requests within the TTFT target, for
 *  - the token-throughput signal at several target utilisations and burst quantiles (the headroom),
 *  - the KV + queue signals alone with a replica floor (minReplicas), the classic fallback,
 * next to static and the hindsight oracle. Prints one table per scenario and the cheapest
 * configuration that reaches the goal.
 *
 *   npx tsx sim/eval/sweep.ts [--only azure|mooncake]
 */
import { parseArgs } from "node:util";
import type { AutoscalingConfig } from "../../operator/autoscaler/policy.js";
import { gpufleetController } from "./controllers.js";
import { buildFleetScenario, DEFAULT_SCENARIOS } from "./evaluate.js";
import { simulateFleet, type FleetResult } from "./fleet.js";
import { oracleSchedule, staticForPeak } from "./oracle.js";

interface Variant {
  label: string;
  minReplicas: number;
  overrides: Partial<AutoscalingConfig>;
}

// A utilisation target so high the token signal never asks for anything: KV + queue alone.
const TOKEN_SIGNAL_OFF: Partial<AutoscalingConfig> = { tokenUtilizationTarget: 1e9 };

function variants(): Variant[] {
  const out: Variant[] = [];
  // Headroom: the token signal's target utilisation of the 60 s peak (the default is 0.5).
  for (const utilization of [0.45, 0.5, 0.55, 0.6, 0.7])
    out.push({
      label: `tokens: target ${utilization} of peak`,
      minReplicas: 1,
      overrides: { tokenUtilizationTarget: utilization },
    });
  // Burst-awareness: sizing for a lower quantile over a longer window instead of the peak.
  for (const quantile of [0.95, 0.9])
    out.push({
      label: `tokens: target 0.5 of p${quantile * 100} over 300 s`,
      minReplicas: 1,
      overrides: { tokenDemandQuantile: quantile, tokenWindowSeconds: 300 },
    });
  // Asymmetric down: faster scale-down steps.
  out.push({
    label: "tokens: target 0.5, down 2 per 60 s",
    minReplicas: 1,
    overrides: { maxScaleDownStep: 2 },
  });
  for (const floor of [3, 4, 5, 6, 7, 8])
    out.push({
      label: `kv+queue only, minReplicas ${floor}`,
      minReplicas: floor,
      overrides: TOKEN_SIGNAL_OFF,
    });
  return out;
}

const { values } = parseArgs({ options: { only: { type: "string" } } });
for (const def of DEFAULT_SCENARIOS.filter((d) => !values.only || d.name.startsWith(values.only))) {
  const { fleet, gpufleetOverrides } = buildFleetScenario(def);
  const staticPeak = staticForPeak(fleet, def.goalShare);
  const oracle = oracleSchedule(fleet, def.goalShare, def.oracleWindowSeconds * 1000, staticPeak.replicas);
  const rows: Array<{ label: string; result: FleetResult }> = [
    { label: staticPeak.result.controller, result: staticPeak.result },
    { label: "oracle (hindsight, jointly sized)", result: oracle.result },
  ];
  for (const v of variants()) {
    const controller = gpufleetController(
      {
        minReplicas: v.minReplicas,
        maxReplicas: def.maxReplicas,
        initialReplicas: v.minReplicas,
      },
      { ...gpufleetOverrides, ...v.overrides },
    );
    rows.push({ label: v.label, result: simulateFleet(fleet, controller) });
  }
  console.log(`\n=== ${def.name}: goal ≥${def.goalShare * 100}% within ${def.ttftTargetSeconds}s ===`);
  const width = Math.max(...rows.map((r) => r.label.length));
  console.log(`${"configuration".padEnd(width)}  GPU-h  within   vs static  peak`);
  for (const { label, result } of rows) {
    const meets = result.withinTargetShare >= def.goalShare ? "✓" : " ";
    console.log(
      `${label.padEnd(width)}  ${result.gpuHours.toFixed(2).padStart(5)}  ${(result.withinTargetShare * 100).toFixed(2).padStart(6)}%${meets}  ${((result.gpuHours / staticPeak.result.gpuHours) * 100).toFixed(0).padStart(7)}%  ${String(result.peakReplicas).padStart(4)}`,
    );
  }
  const cheapest = rows
    .slice(2)
    .filter((r) => r.result.withinTargetShare >= def.goalShare)
    .sort((a, b) => a.result.gpuHours - b.result.gpuHours)[0];
  console.log(
    cheapest
      ? `cheapest policy configuration reaching the goal: ${cheapest.label} (${cheapest.result.gpuHours.toFixed(2)} GPU-h)`
      : "no policy configuration in this sweep reaches the goal",
  );
}
