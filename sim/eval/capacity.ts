/**
 * How many GPUs of which kind does this trace need for this model under this latency target?
 *
 *   npx tsx sim/eval/capacity.ts --trace azure-code --model llama-3.1-8b \
 *     --gpu NVIDIA-H100-80GB-HBM3 --ttft-p99 2s [--model-load 60s] [--load-scale 1] [--max-context 32768]
 *
 * `--trace` takes `azure-code`, `mooncake` or a path to a trace file (.csv Azure format, .jsonl
 * Mooncake format). Answers with the replica plan (from the planner), the static minimum (always-on
 * replicas that keep p99 TTFT within the target), and GPU-hours autoscaled with gpufleet's policy and
 * with hindsight (oracle), all simulated on the trace.
 */
import { parseArgs } from "node:util";
import { gpufleetController } from "./controllers.js";
import { buildFleetScenario, type ScenarioDefinition } from "./evaluate.js";
import { simulateFleet, type FleetResult } from "./fleet.js";
import { oracleSchedule, staticForPeak } from "./oracle.js";

/** "2s", "1.5s", "500ms", "2m" or a bare number of seconds → seconds. */
export function parseDurationSeconds(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/.exec(text.trim());
  if (!match) throw new Error(`cannot read duration ${JSON.stringify(text)} (use e.g. 2s, 500ms, 2m)`);
  const value = Number(match[1]);
  const unit = match[2] ?? "s";
  return unit === "ms" ? value / 1000 : unit === "m" ? value * 60 : value;
}

function describe(result: FleetResult, gpusPerReplica: number, hours: number): string {
  return (
    `${result.gpuHours.toFixed(1)} GPU-h (${(result.gpuHours / hours).toFixed(1)} GPUs on average, ` +
    `peak ${result.peakReplicas * gpusPerReplica}); p99 TTFT ${result.ttftP99.toFixed(2)} s, ` +
    `${(result.withinTargetShare * 100).toFixed(2)}% within target`
  );
}

function main(): void {
  const { values } = parseArgs({
    options: {
      trace: { type: "string", default: "azure-code" },
      model: { type: "string", default: "llama-3.1-8b" },
      gpu: { type: "string", default: "NVIDIA-H100-80GB-HBM3" },
      "ttft-p99": { type: "string", default: "2s" },
      "model-load": { type: "string", default: "60s" },
      "load-scale": { type: "string", default: "1" },
      "max-context": { type: "string" },
      "max-replicas": { type: "string", default: "64" },
    },
  });
  const def: ScenarioDefinition = {
    name: `${values.trace} · ${values.model} · ${values.gpu}`,
    trace: values.trace,
    loadScale: Number(values["load-scale"]),
    model: values.model,
    gpu: values.gpu,
    maxContextLength: values["max-context"] ? Number(values["max-context"]) : 131072,
    ttftTargetSeconds: parseDurationSeconds(values["ttft-p99"]),
    goalShare: 0.99,
    modelLoadSeconds: parseDurationSeconds(values["model-load"]),
    scrapeIntervalSeconds: 10,
    maxReplicas: Number(values["max-replicas"]),
    oracleWindowSeconds: 300,
  };
  const { fleet, gpusPerReplica, gpufleetOverrides } = buildFleetScenario(def);
  const hours = fleet.trace.durationMs / 3600_000;
  console.log(
    `${def.name}: ${fleet.trace.requests.length} requests over ${(hours * 60).toFixed(1)} min; target p99 TTFT ≤ ${def.ttftTargetSeconds} s`,
  );
  console.log(
    `replica: ${gpusPerReplica} × ${def.gpu} (tensor parallel ${gpusPerReplica}), ` +
      `${fleet.params.kvCapacityTokens.toLocaleString("en-US")} KV-cache tokens, max ${fleet.params.maxNumSeqs} sequences`,
  );
  const staticPeak = staticForPeak(fleet, def.goalShare);
  if (staticPeak.result.withinTargetShare < def.goalShare) {
    console.log(
      `no fleet up to ${def.maxReplicas} replicas meets the target: best p99 TTFT ${staticPeak.result.ttftP99.toFixed(2)} s ` +
        `(${(staticPeak.result.withinTargetShare * 100).toFixed(2)}% within). Try a faster GPU or a looser target.`,
    );
    process.exitCode = 2;
    return;
  }
  console.log(
    `static minimum: ${staticPeak.replicas} replicas = ${staticPeak.replicas * gpusPerReplica} GPUs; ${describe(staticPeak.result, gpusPerReplica, hours)}`,
  );
  const oracle = oracleSchedule(fleet, def.goalShare, def.oracleWindowSeconds * 1000, staticPeak.replicas);
  const autoscaled = simulateFleet(
    fleet,
    gpufleetController(
      {
        minReplicas: 1,
        maxReplicas: def.maxReplicas,
        initialReplicas: 1,
      },
      gpufleetOverrides,
    ),
  );
  console.log(
    `autoscaled (gpufleet policy, ${def.modelLoadSeconds} s model load): ${describe(autoscaled, gpusPerReplica, hours)}`,
  );
  console.log(
    `hindsight lower bound (oracle, no cold start): ${describe(oracle.result, gpusPerReplica, hours)}`,
  );
  const meets = autoscaled.withinTargetShare >= def.goalShare;
  console.log(
    meets
      ? `→ autoscaling meets the target with ${(100 * (1 - autoscaled.gpuHours / staticPeak.result.gpuHours)).toFixed(0)}% fewer GPU-hours than static.`
      : `→ autoscaling misses the target on this trace (bursts faster than a ${def.modelLoadSeconds} s cold start); provision ${staticPeak.replicas * gpusPerReplica} GPUs statically or raise minReplicas.`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) main();
