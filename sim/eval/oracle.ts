/**
 * Reference points computed with hindsight:
 * - `staticForPeak`: the fewest always-on replicas that keep the share of requests within the TTFT
 *   target at or above the goal over the whole trace (what one provisions without autoscaling);
 * - `oracleSchedule`: per window, the fewest replicas that keep the goal for that window's requests
 *   alone, switched with perfect foresight (no cold start). It is a near-lower bound on GPU-hours,
 *   not a strict one: windows are sized independently, so load carried across a window edge can
 *   make the replayed schedule miss the goal slightly.
 */
import { scheduleController, staticController } from "./controllers.js";
import { simulateFleet, type FleetResult, type FleetScenario } from "./fleet.js";
import type { Trace } from "./traces.js";

/** Smallest n in [lo, hi] with ok(n), assuming ok is monotonic; hi if none. */
function smallest(lo: number, hi: number, ok: (n: number) => boolean): number {
  let a = lo;
  let b = hi;
  while (a < b) {
    const mid = Math.floor((a + b) / 2);
    if (ok(mid)) b = mid;
    else a = mid + 1;
  }
  return a;
}

export function staticForPeak(
  scenario: FleetScenario,
  goalShare: number,
): { replicas: number; result: FleetResult } {
  const results = new Map<number, FleetResult>();
  const run = (n: number): FleetResult => {
    let r = results.get(n);
    if (!r) {
      r = simulateFleet({ ...scenario, minReplicas: n, maxReplicas: n }, staticController(n));
      results.set(n, r);
    }
    return r;
  };
  const replicas = smallest(1, scenario.maxReplicas, (n) => run(n).withinTargetShare >= goalShare);
  const result = { ...run(replicas), controller: `static-peak (${replicas})` };
  return { replicas, result };
}

export function oracleSchedule(
  scenario: FleetScenario,
  goalShare: number,
  windowMs: number,
): { schedule: number[]; result: FleetResult } {
  const windows = Math.floor(scenario.trace.durationMs / windowMs) + 1;
  const schedule: number[] = [];
  for (let w = 0; w < windows; w++) {
    const from = w * windowMs;
    const requests = scenario.trace.requests
      .filter((r) => r.arrivalMs >= from && r.arrivalMs < from + windowMs)
      .map((r) => ({ ...r, arrivalMs: r.arrivalMs - from }));
    if (requests.length === 0) {
      schedule.push(scenario.minReplicas);
      continue;
    }
    const slice: Trace = { name: `${scenario.trace.name}[${w}]`, requests, durationMs: windowMs };
    const sub: FleetScenario = { ...scenario, trace: slice };
    const n = smallest(scenario.minReplicas, scenario.maxReplicas, (k) => {
      return (
        simulateFleet({ ...sub, minReplicas: k, maxReplicas: k }, staticController(k)).withinTargetShare >=
        goalShare
      );
    });
    schedule.push(n);
  }
  const result = simulateFleet(scenario, scheduleController("oracle (hindsight)", windowMs, schedule));
  return { schedule, result };
}
