import type { Condition } from "../api/modeldeployment.js";

export const CONDITION_TYPES = ["Ready", "Progressing", "Degraded", "CapacityShortfall", "SpilledOver", "AdaptersReady"] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

export interface DesiredCondition {
  type: ConditionType;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

/**
 * Merges freshly computed conditions into the previous ones. `lastTransitionTime` moves only when the
 * status flips, as metav1.Condition requires, so watchers can tell how long a state has held.
 */
export function mergeConditions(
  previous: Condition[] | undefined,
  desired: DesiredCondition[],
  observedGeneration: number,
  now: Date,
): Condition[] {
  const before = new Map((previous ?? []).map((condition) => [condition.type, condition]));
  return desired.map((condition) => {
    const old = before.get(condition.type);
    const lastTransitionTime =
      old && old.status === condition.status ? old.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, "Z");
    return { ...condition, observedGeneration, lastTransitionTime };
  });
}

export function findCondition(conditions: Condition[] | undefined, type: ConditionType): Condition | undefined {
  return conditions?.find((condition) => condition.type === type);
}
