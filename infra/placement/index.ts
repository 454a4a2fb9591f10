export {
  placeFleet,
  placeWithStrategy,
  resolvePlacementInputs,
  evaluatePlan,
  STRATEGY_OBJECTIVES,
} from "./place.js";
export { buildPlacementProblem, writeLp, type PlacementProblem, type Objective } from "./problem.js";
export { RttTable, loadGcpRttTable, parseRttMatrix } from "./rtt.js";
export { ASSUMED_IDLE_POWER_FRACTION, gpuPowerOf, type GpuPowerSpec } from "./gpu-power.js";
export { solveLp, type SolverOptions, type MilpSolution } from "./highs-solver.js";
export {
  PlacementInfeasibleError,
  type CandidateRegion,
  type ConstraintFamily,
  type FleetPlacement,
  type GpuOffer,
  type ModelDemand,
  type OriginDemand,
  type PlacementInput,
  type PlacementPlan,
  type PlacementStrategy,
  type ReplicaPlacement,
  type ReplicaShape,
  type RouteAssignment,
} from "./types.js";
export { replicaShapeFromPlanner, type ShapeRequest } from "./planner-shapes.js";
export {
  planHourly,
  planRolling,
  planFromSource,
  hourlyTotals,
  rttStats,
  stateAfter,
  DEFAULT_MOVE_COSTS,
  type FleetState,
  type HourlyPlacementInput,
  type HourlyPlan,
  type HourlyTotals,
  type HourPlan,
  type HourReplica,
  type MoveCosts,
  type RollingOptions,
  type SlotCount,
} from "./hourly.js";
