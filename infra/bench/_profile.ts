import { performance } from "node:perf_hooks";
import { solveLp } from "../placement/highs-solver.js";
import { buildPlacementProblem, writeLp } from "../placement/problem.js";
import { resolvePlacementInputs, objectiveValue, STRATEGY_OBJECTIVES } from "../placement/place.js";
import * as bench from "./fleet-scenario.js";
const input = bench.benchInput(100);
const { resolved } = await resolvePlacementInputs(input);
const problem = buildPlacementProblem(input, resolved);
console.log("slots", problem.slots.length, "routes", problem.routes.length, "demands", problem.demands.length);
for (const [s, [p, q]] of Object.entries(STRATEGY_OBJECTIVES)) {
  let t = performance.now();
  const a = await solveLp(writeLp(problem, p), input.solver);
  const t1 = performance.now() - t;
  const opt = objectiveValue(problem, p, a.values);
  t = performance.now();
  const b = await solveLp(writeLp(problem, q, [{ objective: p, atMost: opt + 1e-7 * Math.max(1, opt) }]), input.solver);
  console.log(s, a.solverStatus, t1.toFixed(0), "ms;", b.solverStatus, (performance.now() - t).toFixed(0), "ms");
}
