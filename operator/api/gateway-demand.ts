/**
 * The demand signal from gateway replicas to the operator (issue 10), carried in annotations on the
 * ModelDeployment. Each gateway replica owns one key, `demand.gpufleet.io/<gateway-pod-name>`, whose
 * value is compact JSON `{"held":<int>,"lastRequestAt":<unix ms>,"updatedAt":<unix ms>}` (plus
 * `"heldTokens":<int>`, the held requests' prompt tokens, approximate, when any are held), and writes
 * it by JSON merge patch of `metadata.annotations` only.
 *
 * Annotations are writable by anyone who may patch the ModelDeployment, so the parser treats them as
 * hostile: malformed, oversized or out-of-range values are ignored, and only a bounded number of
 * entries is considered. Pure: no clock, no I/O.
 */

export const GATEWAY_DEMAND_PREFIX = "demand.gpufleet.io/";
/** Longest value considered; a well-formed one is under 80 characters. */
export const MAX_DEMAND_VALUE_LENGTH = 256;
/** Entries considered per ModelDeployment (the freshest by updatedAt); more gateway replicas than this is not a real fleet. */
export const MAX_DEMAND_ENTRIES = 64;
/** Largest `held` believed from one replica (a gateway's hold queue is bounded far below this). */
export const MAX_HELD_PER_ENTRY = 100_000;
/** Largest `heldTokens` believed from one replica (held requests × the gateway's prompt bound is far below). */
export const MAX_HELD_TOKENS_PER_ENTRY = 1_000_000_000;
/** Entries whose updatedAt is older than this do not count as held demand (the replica may be gone). */
export const DEMAND_FRESH_MS = 30_000;
/** Entries whose updatedAt is older than this are deleted by any gateway replica (dead replicas). */
export const DEMAND_EXPIRE_MS = 10 * 60_000;
/** Timestamps further than this in the future (clock skew allowance) are refused. */
export const MAX_FUTURE_SKEW_MS = 60_000;

/** A pod name as a Kubernetes DNS label: the key suffix must be one (<= 63 characters). */
const REPLICA_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface GatewayDemandValue {
  /** Requests this replica holds for the model right now. */
  held: number;
  /** Prompt tokens (approximate) of those requests; absent from older gateways. */
  heldTokens?: number;
  /** Last request this replica received for the model (unix ms); 0 when it never saw one. */
  lastRequestAt: number;
  /** When this replica last wrote the entry (unix ms). */
  updatedAt: number;
}

export interface GatewayDemandEntry extends GatewayDemandValue {
  /** The gateway pod name (the key's suffix). */
  replica: string;
  /** updatedAt within DEMAND_FRESH_MS of now: its `held` counts. */
  fresh: boolean;
}

export interface GatewayDemand {
  /** Valid entries considered (at most MAX_DEMAND_ENTRIES, freshest first). */
  entries: GatewayDemandEntry[];
  /** Sum of `held` over fresh entries. */
  held: number;
  /** Sum of `heldTokens` over fresh entries (entries without one add 0). */
  heldTokens: number;
  /** Latest lastRequestAt over valid entries; undefined when none reports a request. */
  lastRequestAt: number | undefined;
  /** Replica names whose entries are older than DEMAND_EXPIRE_MS (to delete). */
  expired: string[];
  /** Demand keys ignored as malformed, oversized or beyond the entry cap (count only: never echo their bytes). */
  ignored: number;
}

export function demandAnnotationKey(replica: string): string {
  return GATEWAY_DEMAND_PREFIX + replica;
}

export function isValidReplicaName(name: string): boolean {
  return name.length <= 63 && REPLICA_NAME.test(name);
}

function isTimestamp(value: unknown, nowMs: number): value is number {
  return (
    typeof value === "number" &&
    Number.isSafeInteger(value) &&
    value >= 0 &&
    value <= nowMs + MAX_FUTURE_SKEW_MS
  );
}

/** Parses one annotation value; undefined when it is not exactly the documented shape within bounds. */
export function parseDemandValue(raw: string, nowMs: number): GatewayDemandValue | undefined {
  if (raw.length > MAX_DEMAND_VALUE_LENGTH) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return undefined;
  const { held, heldTokens, lastRequestAt, updatedAt } = parsed as Record<string, unknown>;
  if (typeof held !== "number" || !Number.isSafeInteger(held) || held < 0 || held > MAX_HELD_PER_ENTRY)
    return undefined;
  if (
    heldTokens !== undefined &&
    (typeof heldTokens !== "number" ||
      !Number.isSafeInteger(heldTokens) ||
      heldTokens < 0 ||
      heldTokens > MAX_HELD_TOKENS_PER_ENTRY)
  )
    return undefined;
  if (!isTimestamp(lastRequestAt, nowMs) || !isTimestamp(updatedAt, nowMs)) return undefined;
  return heldTokens === undefined ? { held, lastRequestAt, updatedAt } : { held, heldTokens, lastRequestAt, updatedAt };
}

/** Reads every gateway replica's demand entry from a ModelDeployment's annotations. */
export function parseGatewayDemand(
  annotations: Readonly<Record<string, string>> | undefined,
  nowMs: number,
): GatewayDemand {
  const valid: GatewayDemandEntry[] = [];
  let ignored = 0;
  for (const [key, raw] of Object.entries(annotations ?? {})) {
    if (!key.startsWith(GATEWAY_DEMAND_PREFIX)) continue;
    const replica = key.slice(GATEWAY_DEMAND_PREFIX.length);
    const value =
      isValidReplicaName(replica) && typeof raw === "string" ? parseDemandValue(raw, nowMs) : undefined;
    if (!value) {
      ignored++;
      continue;
    }
    valid.push({ replica, ...value, fresh: nowMs - value.updatedAt <= DEMAND_FRESH_MS });
  }
  // Freshest first (ties by name, for determinism); the cap keeps a flood of keys from costing work.
  valid.sort(
    (a, b) => b.updatedAt - a.updatedAt || (a.replica < b.replica ? -1 : a.replica > b.replica ? 1 : 0),
  );
  const expired: string[] = [];
  const entries: GatewayDemandEntry[] = [];
  for (const entry of valid) {
    if (nowMs - entry.updatedAt > DEMAND_EXPIRE_MS) expired.push(entry.replica);
    else if (entries.length < MAX_DEMAND_ENTRIES) entries.push(entry);
    else ignored++;
  }
  let held = 0;
  let heldTokens = 0;
  let lastRequestAt: number | undefined;
  for (const entry of entries) {
    if (entry.fresh) {
      held += entry.held;
      heldTokens += entry.heldTokens ?? 0;
    }
    if (entry.lastRequestAt > 0 && (lastRequestAt === undefined || entry.lastRequestAt > lastRequestAt))
      lastRequestAt = entry.lastRequestAt;
  }
  return { entries, held, heldTokens, lastRequestAt, expired, ignored };
}

export interface GatewayDemandPatch {
  metadata: { annotations: Record<string, string | null> };
}

/**
 * The JSON merge patch (`application/merge-patch+json`) that sets this replica's entry and deletes
 * the entries of replicas listed in `remove` (expired ones). Touches `metadata.annotations` only.
 */
export function gatewayDemandPatch(
  replica: string,
  value: GatewayDemandValue | null,
  remove: readonly string[] = [],
): GatewayDemandPatch {
  if (!isValidReplicaName(replica))
    throw new Error(`gateway replica name is not a DNS label of at most 63 characters`);
  const annotations: Record<string, string | null> = {};
  for (const other of remove)
    if (other !== replica && isValidReplicaName(other)) annotations[demandAnnotationKey(other)] = null;
  annotations[demandAnnotationKey(replica)] =
    value === null
      ? null
      : JSON.stringify({
          held: Math.max(0, Math.min(MAX_HELD_PER_ENTRY, Math.floor(value.held))),
          ...(value.heldTokens !== undefined && value.heldTokens > 0
            ? { heldTokens: Math.max(0, Math.min(MAX_HELD_TOKENS_PER_ENTRY, Math.floor(value.heldTokens))) }
            : {}),
          lastRequestAt: Math.floor(value.lastRequestAt),
          updatedAt: Math.floor(value.updatedAt),
        });
  return { metadata: { annotations } };
}
