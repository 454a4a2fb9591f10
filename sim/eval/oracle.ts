/**
 * Reference points computed with hindsight:
 * - `staticForPeak`: the fewest always-on replicas that keep the share of requests within the TTFT
 *   target at or above the goal over the whole trace (what one provisions without autoscaling);
 * - `oracleSchedule`: replicas per window, switched with perfect foresight (no cold start), sized
 *   JOINTLY so the whole trace meets the goal. It starts from each window's own minimum (the fewest
 *   replicas that keep the goal for that window's requests alone); if carry-over across window edges
 *   makes the replay miss, every window is raised one step at a time; then one greedy pass lowers
 *   each window by one while the whole trace still meets the goal (the goal is a share over the
 *   trace, so a window may miss more where that is cheapest). If the result still costs more than
 *   static, the static schedule is the oracle (it meets the goal by construction). So the oracle is
 *   never above static and always meets the goal: a lower bound for policies that must meet it, up to
 *   the greedy search not being exhaustive.
 * - `laggedOracleSchedule`: what perfect knowledge of the PAST buys. Each window gets the most replicas
 *   any of the previous `lagWindows` windows needed (each window's own minimum, known exactly), plus a
 *   margin, and still switches with no cold start. It is the reference for reactive autoscalers: they
 *   can only learn a burst's size after it arrived. The cheapest lag and margin that meet the goal are
 *   reported (or, if none does, the one that comes closest).
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
  staticReplicas?: number,
): { schedule: number[]; independentSchedule: number[]; result: FleetResult } {
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
  const name = "oracle (hindsight)";
  const replay = (plan: number[]): FleetResult =>
    simulateFleet(scenario, scheduleController(name, windowMs, plan));
  if (staticReplicas === undefined)
    return { schedule, independentSchedule: schedule, result: replay(schedule) };

  let plan = [...schedule];
  let result = replay(plan);
  for (let raise = 0; raise < 3 && result.withinTargetShare < goalShare; raise++) {
    plan = plan.map((n) => Math.min(scenario.maxReplicas, n + 1));
    result = replay(plan);
  }
  if (result.withinTargetShare >= goalShare) {
    // Greedy: try the windows with the most replicas first (largest saving per step).
    const order = plan.map((n, i) => ({ n, i })).sort((a, b) => b.n - a.n || a.i - b.i);
    for (const { i } of order) {
      const current = plan[i] as number;
      if (current <= scenario.minReplicas) continue;
      const lowered = plan.map((n, j) => (j === i ? current - 1 : n));
      const attempt = replay(lowered);
      if (attempt.withinTargetShare >= goalShare && attempt.gpuHours <= result.gpuHours) {
        plan = lowered;
        result = attempt;
      }
    }
  }
  const staticPlan = schedule.map(() => staticReplicas);
  if (result.withinTargetShare < goalShare) {
    plan = staticPlan;
    result = replay(plan);
  } else {
    const staticResult = replay(staticPlan);
    if (result.gpuHours > staticResult.gpuHours) {
      plan = staticPlan;
      result = staticResult;
    }
  }
  return { schedule: plan, independentSchedule: schedule, result };
}

export interface LaggedOracle {
  schedule: number[];
  lagWindows: number;
  margin: number;
  result: FleetResult;
}

/** The reactive reference: see the header. `independentSchedule` is each window's own minimum. */
export function laggedOracleSchedule(
  scenario: FleetScenario,
  goalShare: number,
  windowMs: number,
  independentSchedule: number[],
  options: { maxLagWindows?: number; maxMargin?: number } = {},
): LaggedOracle {
  const maxLag = options.maxLagWindows ?? 3;
  const maxMargin = options.maxMargin ?? 3;
  let best: LaggedOracle | undefined;
  const better = (a: LaggedOracle, b: LaggedOracle | undefined): boolean => {
    if (!b) return true;
    const aMeets = a.result.withinTargetShare >= goalShare;
    const bMeets = b.result.withinTargetShare >= goalShare;
    if (aMeets !== bMeets) return aMeets;
    return aMeets
      ? a.result.gpuHours < b.result.gpuHours
      : a.result.withinTargetShare > b.result.withinTargetShare;
  };
  for (let lagWindows = 1; lagWindows <= maxLag; lagWindows++) {
    for (let margin = 0; margin <= maxMargin; margin++) {
      const schedule = independentSchedule.map((_, w) => {
        // The first window starts from what it needs: a reference with no past to react to (the
        // autoscalers themselves start from minReplicas).
        let needed = w === 0 ? (independentSchedule[0] as number) : scenario.minReplicas;
        for (let back = 1; back <= lagWindows; back++)
          if (w - back >= 0) needed = Math.max(needed, independentSchedule[w - back] as number);
        return Math.min(scenario.maxReplicas, needed + margin);
      });
      const name = `oracle, ${lagWindows} window${lagWindows === 1 ? "" : "s"} late (+${margin})`;
      const result = simulateFleet(scenario, scheduleController(name, windowMs, schedule));
      const candidate = { schedule, lagWindows, margin, result };
      if (better(candidate, best)) best = candidate;
      // A larger margin only costs more once the goal is met.
      if (result.withinTargetShare >= goalShare) break;
    }
  }
  return best as LaggedOracle;
}
