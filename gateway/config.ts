/**
 * The gateway's configuration, read once at start-up from GPUFLEET_GATEWAY_* variables (the Helm chart
 * sets them), like operator/config.ts: a bad value stops the process with a message naming the variable.
 */
import { isValidReplicaName } from "../operator/api/gateway-demand.js";
import { MAX_PRIORITY } from "../operator/api/tenancy.js";
import { ConfigError, boolean, integer } from "../operator/config.js";
import type { PickWeights } from "./routing/types.js";
import { DEFAULT_PICK_WEIGHTS } from "./routing/picker.js";
import type { SlotReserve } from "./tenancy/reserve.js";

export { ConfigError };

export interface GatewayConfig {
  /** Namespaces whose ModelDeployments are served; empty: the whole cluster. */
  watchNamespaces: string[];
  host: string;
  port: number;
  opsHost: string;
  opsPort: number;
  /** This replica's name: the suffix of its demand annotation key (the pod name in a cluster). */
  replicaName: string;
  maxBodyBytes: number;
  /** Prompt characters the picker hashes for prefix affinity. */
  maxPromptChars: number;
  /** Held requests per model; beyond it: 429. */
  holdMaxPerModel: number;
  /** Longest a request is held waiting for a ready pod; then: 503. */
  holdTimeoutMs: number;
  /** Estimated requests (running + waiting + new in flight) at which a pod counts as saturated; 0: never. */
  maxLoadPerEndpoint: number;
  /**
   * Share of what one replica prefills within the model's TTFT objective (plan token capacity ×
   * ttftTargetSeconds) that this gateway lets wait in a pod's prefill backlog; beyond it requests
   * wait at the gateway. Split among the gateway replicas the demand annotations show. 0: no bound.
   */
  prefillBudgetShare: number;
  /** Time to the upstream's response headers; then: 504. */
  upstreamHeadersTimeoutMs: number;
  /** Silence between two upstream chunks after which the request is ended with an error. */
  upstreamIdleTimeoutMs: number;
  scrapeIntervalMs: number;
  scrapeTimeoutMs: number;
  sessionHeader: string;
  debugHeaders: boolean;
  weights: PickWeights;
  /** Write demand annotations (off: the gateway holds requests but never tells the operator). */
  demandWrites: boolean;
  /** Tenants and usage tiers (gateway/tenancy); off: every request is served without a key. */
  tenancy: TenancyConfig;
  /** Slots per pod (of maxLoadPerEndpoint) that only the top priority bands may take (gateway/tenancy/reserve.ts). */
  slotReserve: SlotReserve;
}

export interface TenancyConfig {
  enabled: boolean;
  /** Namespaces of Tenants and their key Secrets (the gateway's Role for Secrets is in these only). */
  namespaces: string[];
  /** UsageTier of requests without an Authorization header; empty: anonymous access is off (401). */
  anonymousTier: string;
  /** How often metered usage is added to Tenant status (and replicas re-count who shares a tenant). */
  reportIntervalMs: number;
  /** How often usage metered since the last write goes to this replica's usage journal (write-ahead). */
  journalIntervalMs: number;
  /** Another replica's usage journal unwritten for this long is folded into Tenant status and deleted. */
  orphanAfterMs: number;
  /** $ per GPU-hour by GPU product (illustrative defaults in the chart). */
  usdPerGpuHour: Record<string, number>;
  defaultUsdPerGpuHour: number;
  /** Grid intensity of where the GPUs run, gCO2/kWh. */
  gramsCO2PerKWh: number;
}

/** Illustrative on-demand prices, $ per GPU-hour (order of magnitude of public cloud list prices, 2024-25); set your own. */
export const ILLUSTRATIVE_GPU_PRICES: Readonly<Record<string, number>> = {
  "NVIDIA-H100-80GB-HBM3": 4.0,
  "NVIDIA-A100-SXM4-80GB": 2.5,
  "NVIDIA-L40S": 1.5,
  "NVIDIA-L4": 0.7,
};

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function tenancyConfig(env: NodeJS.ProcessEnv): TenancyConfig {
  const enabled = boolean(env, "GPUFLEET_GATEWAY_TENANCY", false);
  const namespaces = (env.GPUFLEET_GATEWAY_TENANT_NAMESPACES ?? "")
    .split(",")
    .map((n) => n.trim())
    .filter(Boolean);
  for (const namespace of namespaces)
    if (!DNS_LABEL.test(namespace))
      throw new ConfigError(`GPUFLEET_GATEWAY_TENANT_NAMESPACES has an invalid namespace name: ${namespace}`);
  if (enabled && namespaces.length === 0)
    throw new ConfigError(
      "GPUFLEET_GATEWAY_TENANT_NAMESPACES must list the namespaces of Tenants and their key Secrets when GPUFLEET_GATEWAY_TENANCY is on",
    );
  const anonymousTier = env.GPUFLEET_GATEWAY_ANONYMOUS_TIER ?? "";
  if (anonymousTier && !DNS_LABEL.test(anonymousTier))
    throw new ConfigError(`GPUFLEET_GATEWAY_ANONYMOUS_TIER=${anonymousTier} is not a UsageTier name`);
  let usdPerGpuHour: Record<string, number> = { ...ILLUSTRATIVE_GPU_PRICES };
  const prices = env.GPUFLEET_GATEWAY_GPU_PRICES;
  if (prices) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(prices);
    } catch {
      throw new ConfigError("GPUFLEET_GATEWAY_GPU_PRICES is not JSON (an object of GPU product -> $ per GPU-hour)");
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed))
      throw new ConfigError("GPUFLEET_GATEWAY_GPU_PRICES must be an object of GPU product -> $ per GPU-hour");
    usdPerGpuHour = {};
    for (const [product, price] of Object.entries(parsed as Record<string, unknown>).slice(0, 256)) {
      if (typeof price !== "number" || !Number.isFinite(price) || price < 0 || price > 10_000)
        throw new ConfigError(`GPUFLEET_GATEWAY_GPU_PRICES: the price of ${product.slice(0, 64)} is not a number from 0 to 10000`);
      usdPerGpuHour[product.slice(0, 128)] = price;
    }
  }
  const reportIntervalMs = integer(env, "GPUFLEET_GATEWAY_USAGE_REPORT_INTERVAL_MS", 10_000, 100, 600_000);
  const journalIntervalMs = integer(env, "GPUFLEET_GATEWAY_USAGE_JOURNAL_INTERVAL_MS", 1_000, 50, 60_000);
  const orphanAfterMs = integer(env, "GPUFLEET_GATEWAY_USAGE_JOURNAL_ORPHAN_AFTER_MS", 10 * reportIntervalMs, 500, 86_400_000);
  // A live replica rewrites a journal holding batches every orphanAfter/3: its journal interval must fit.
  if (orphanAfterMs < 4 * journalIntervalMs)
    throw new ConfigError("GPUFLEET_GATEWAY_USAGE_JOURNAL_ORPHAN_AFTER_MS must be at least 4 x GPUFLEET_GATEWAY_USAGE_JOURNAL_INTERVAL_MS");
  return {
    enabled,
    namespaces,
    anonymousTier,
    reportIntervalMs,
    journalIntervalMs,
    orphanAfterMs,
    usdPerGpuHour,
    defaultUsdPerGpuHour: decimal(env, "GPUFLEET_GATEWAY_DEFAULT_GPU_PRICE", 2.0, 0, 10_000),
    gramsCO2PerKWh: decimal(env, "GPUFLEET_GATEWAY_GRID_GCO2_PER_KWH", 480, 0, 2_000),
  };
}

function decimal(env: NodeJS.ProcessEnv, key: string, fallback: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max)
    throw new ConfigError(`${key}=${raw} is not a number from ${min} to ${max}`);
  return value;
}

export function loadGatewayConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const watchNamespaces = (env.GPUFLEET_GATEWAY_WATCH_NAMESPACES ?? "")
    .split(",")
    .map((namespace) => namespace.trim())
    .filter(Boolean);
  for (const namespace of watchNamespaces)
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace))
      throw new ConfigError(`GPUFLEET_GATEWAY_WATCH_NAMESPACES has an invalid namespace name: ${namespace}`);
  const replicaName = (env.POD_NAME || `gateway-${(env.HOSTNAME ?? "local").toLowerCase()}`)
    .slice(0, 63)
    .replace(/-+$/, "");
  if (!isValidReplicaName(replicaName))
    throw new ConfigError(
      `POD_NAME=${replicaName} is not a DNS label (it names this replica's demand annotation)`,
    );
  const sessionHeader = (env.GPUFLEET_GATEWAY_SESSION_HEADER || "x-session-id").toLowerCase();
  if (!/^[a-z0-9-]{1,64}$/.test(sessionHeader))
    throw new ConfigError(`GPUFLEET_GATEWAY_SESSION_HEADER=${sessionHeader} is not a header name`);
  const scrapeIntervalMs = integer(env, "GPUFLEET_GATEWAY_SCRAPE_INTERVAL_MS", 1500, 200, 60_000);
  return {
    watchNamespaces,
    host: env.GPUFLEET_GATEWAY_HOST || "0.0.0.0",
    port: integer(env, "GPUFLEET_GATEWAY_PORT", 8080, 0, 65535),
    opsHost: env.GPUFLEET_GATEWAY_OPS_HOST || "0.0.0.0",
    opsPort: integer(env, "GPUFLEET_GATEWAY_OPS_PORT", 8082, 0, 65535),
    replicaName,
    maxBodyBytes: integer(env, "GPUFLEET_GATEWAY_MAX_BODY_BYTES", 8 * 1024 * 1024, 1024, 256 * 1024 * 1024),
    maxPromptChars: integer(env, "GPUFLEET_GATEWAY_MAX_PROMPT_CHARS", 64 * 1024, 0, 16 * 1024 * 1024),
    holdMaxPerModel: integer(env, "GPUFLEET_GATEWAY_HOLD_MAX_PER_MODEL", 256, 1, 100_000),
    holdTimeoutMs: integer(env, "GPUFLEET_GATEWAY_HOLD_TIMEOUT_SECONDS", 120, 0, 3600) * 1000,
    maxLoadPerEndpoint: integer(env, "GPUFLEET_GATEWAY_MAX_LOAD_PER_ENDPOINT", 0, 0, 1_000_000),
    prefillBudgetShare: decimal(env, "GPUFLEET_GATEWAY_PREFILL_BUDGET_SHARE", 0.5, 0, 10),
    upstreamHeadersTimeoutMs:
      integer(env, "GPUFLEET_GATEWAY_UPSTREAM_HEADERS_TIMEOUT_SECONDS", 300, 1, 3600) * 1000,
    upstreamIdleTimeoutMs: integer(env, "GPUFLEET_GATEWAY_UPSTREAM_IDLE_TIMEOUT_SECONDS", 60, 1, 3600) * 1000,
    scrapeIntervalMs,
    scrapeTimeoutMs: integer(
      env,
      "GPUFLEET_GATEWAY_SCRAPE_TIMEOUT_MS",
      Math.min(1000, scrapeIntervalMs),
      100,
      60_000,
    ),
    sessionHeader,
    debugHeaders: boolean(env, "GPUFLEET_GATEWAY_DEBUG_HEADERS", true),
    weights: {
      prefix: decimal(env, "GPUFLEET_GATEWAY_WEIGHT_PREFIX", DEFAULT_PICK_WEIGHTS.prefix, 0, 100),
      queue: decimal(env, "GPUFLEET_GATEWAY_WEIGHT_QUEUE", DEFAULT_PICK_WEIGHTS.queue, 0, 100),
      kvCache: decimal(env, "GPUFLEET_GATEWAY_WEIGHT_KV_CACHE", DEFAULT_PICK_WEIGHTS.kvCache, 0, 100),
      session: decimal(env, "GPUFLEET_GATEWAY_WEIGHT_SESSION", DEFAULT_PICK_WEIGHTS.session, 0, 100),
      prefill: decimal(env, "GPUFLEET_GATEWAY_WEIGHT_PREFILL", DEFAULT_PICK_WEIGHTS.prefill, 0, 100),
    },
    demandWrites: boolean(env, "GPUFLEET_GATEWAY_DEMAND_WRITES", true),
    tenancy: tenancyConfig(env),
    slotReserve: slotReserve(env),
  };
}

function slotReserve(env: NodeJS.ProcessEnv): SlotReserve {
  const slotsPerPod = integer(env, "GPUFLEET_GATEWAY_RESERVED_SLOTS", 0, 0, 1_000_000);
  const minPriority = integer(env, "GPUFLEET_GATEWAY_RESERVED_MIN_PRIORITY", 0, 0, MAX_PRIORITY);
  const maxLoad = integer(env, "GPUFLEET_GATEWAY_MAX_LOAD_PER_ENDPOINT", 0, 0, 1_000_000);
  if (slotsPerPod > 0 && !(maxLoad > slotsPerPod))
    throw new ConfigError(
      `GPUFLEET_GATEWAY_RESERVED_SLOTS=${slotsPerPod} needs GPUFLEET_GATEWAY_MAX_LOAD_PER_ENDPOINT above it (the slots are reserved out of that load limit; it is ${maxLoad})`,
    );
  if (slotsPerPod > 0 && minPriority === 0)
    throw new ConfigError(
      "GPUFLEET_GATEWAY_RESERVED_MIN_PRIORITY must name the lowest UsageTier priority (> 0) that may use GPUFLEET_GATEWAY_RESERVED_SLOTS",
    );
  return { slotsPerPod, minPriority };
}
