/**
 * What a chaos run checks at the end (pure): given the ModelDeployments that should exist and what the
 * API server holds, count the objects that were lost (a live ModelDeployment without its Deployment,
 * Service or PDB, or missing itself), duplicated (more than one of a kind for one ModelDeployment),
 * orphaned (a gpufleet object whose controller is no live ModelDeployment) and stale (status not
 * current: observedGeneration != generation).
 */

export const OWNED_KINDS = ["Deployment", "Service", "PodDisruptionBudget"] as const;
/**
 * Kinds a ModelDeployment may have (a LeaderWorkerSet when a replica spans nodes, the autoscaler's history
 * ConfigMap once it has samples): at most one each, and none for a deleted ModelDeployment, but not required.
 */
export const OPTIONAL_OWNED_KINDS = ["LeaderWorkerSet", "ConfigMap"] as const;
export type OwnedKind = (typeof OWNED_KINDS)[number] | (typeof OPTIONAL_OWNED_KINDS)[number];

export interface ObservedModelDeployment {
  name: string;
  uid: string;
  generation: number;
  observedGeneration: number | undefined;
  deleting: boolean;
}

export interface ObservedOwnedObject {
  kind: OwnedKind;
  name: string;
  /** Value of the gpufleet.io/model-deployment label. */
  modelDeploymentLabel: string | undefined;
  /** uid of the controller owner reference, if any. */
  controllerUid: string | undefined;
  deleting: boolean;
}

export interface FleetCheck {
  /** ModelDeployments and owned objects looked at. */
  objectsChecked: number;
  lost: number;
  duplicate: number;
  orphaned: number;
  stale: number;
  /** One short line per problem (bounded). */
  problems: string[];
  /** Names of the stale ModelDeployments (bounded), for the report to say what the operator did with them. */
  staleNames?: string[];
}

const MAX_PROBLEM_LINES = 20;

export function checkFleet(
  expectedLive: ReadonlySet<string>,
  modelDeployments: readonly ObservedModelDeployment[],
  owned: readonly ObservedOwnedObject[],
): FleetCheck {
  const result: FleetCheck = {
    objectsChecked: 0,
    lost: 0,
    duplicate: 0,
    orphaned: 0,
    stale: 0,
    problems: [],
  };
  const problem = (line: string) => {
    if (result.problems.length < MAX_PROBLEM_LINES) result.problems.push(line);
  };
  const liveByUid = new Map<string, ObservedModelDeployment>();
  const byName = new Map<string, ObservedModelDeployment>();
  for (const md of modelDeployments) {
    result.objectsChecked++;
    byName.set(md.name, md);
    if (md.deleting) continue;
    liveByUid.set(md.uid, md);
    if (!expectedLive.has(md.name)) {
      result.orphaned++;
      problem(`ModelDeployment ${md.name} exists but was deleted`);
    } else if (md.observedGeneration !== md.generation) {
      result.stale++;
      if ((result.staleNames ??= []).length < MAX_PROBLEM_LINES) result.staleNames.push(md.name);
      problem(
        `ModelDeployment ${md.name}: observedGeneration ${md.observedGeneration ?? "unset"} != generation ${md.generation}`,
      );
    }
  }
  const countByUidKind = new Map<string, number>();
  for (const object of owned) {
    if (object.deleting) continue;
    result.objectsChecked++;
    const owner = object.controllerUid === undefined ? undefined : liveByUid.get(object.controllerUid);
    if (!owner) {
      result.orphaned++;
      problem(`${object.kind} ${object.name} has no live controller (uid ${object.controllerUid ?? "none"})`);
      continue;
    }
    const key = `${owner.uid}/${object.kind}`;
    countByUidKind.set(key, (countByUidKind.get(key) ?? 0) + 1);
  }
  for (const name of expectedLive) {
    const md = byName.get(name);
    if (!md || md.deleting) {
      result.lost++;
      problem(`ModelDeployment ${name} is missing`);
      continue;
    }
    for (const kind of OWNED_KINDS) {
      const count = countByUidKind.get(`${md.uid}/${kind}`) ?? 0;
      if (count === 0) {
        result.lost++;
        problem(`${name}: no ${kind}`);
      } else if (count > 1) {
        result.duplicate += count - 1;
        problem(`${name}: ${count} ${kind}s`);
      }
    }
    for (const kind of OPTIONAL_OWNED_KINDS) {
      const count = countByUidKind.get(`${md.uid}/${kind}`) ?? 0;
      if (count > 1) {
        result.duplicate += count - 1;
        problem(`${name}: ${count} ${kind}s`);
      }
    }
  }
  return result;
}

export const fleetIsClean = (check: FleetCheck): boolean =>
  check.lost === 0 && check.duplicate === 0 && check.orphaned === 0 && check.stale === 0;

/**
 * Retry-After compliance from a request log: for every answer carrying Retry-After, the next request
 * of the same method and path (a watch apart from a list) must come no sooner than the delay asked
 * (less `slackMs`). POSTs are left out: creates of different objects (Events) share one collection
 * path, so the next POST there is usually another request, not a retry. Returns how many follow-ups
 * there were and how many came early.
 */
export interface LoggedRequest {
  atMs: number;
  method: string;
  path: string;
  status: number;
  retryAfterSeconds?: number;
  watch?: boolean;
}

export function retryAfterCompliance(
  log: readonly LoggedRequest[],
  slackMs = 100,
): { followUps: number; early: number } {
  const pendingByKey = new Map<string, number>();
  let followUps = 0;
  let early = 0;
  for (const entry of [...log].sort((a, b) => a.atMs - b.atMs)) {
    if (entry.method === "POST") continue;
    const key = `${entry.watch ? "WATCH" : entry.method} ${entry.path}`;
    const notBefore = pendingByKey.get(key);
    if (notBefore !== undefined) {
      followUps++;
      if (entry.atMs < notBefore - slackMs) early++;
      pendingByKey.delete(key);
    }
    if (entry.retryAfterSeconds !== undefined)
      pendingByKey.set(key, entry.atMs + entry.retryAfterSeconds * 1000);
  }
  return { followUps, early };
}
