/**
 * The gateway's configuration, read once at start-up from GPUFLEET_GATEWAY_* variables (the Helm chart
 * sets them), like operator/config.ts: a bad value stops the process with a message naming the variable.
 */
import { isValidReplicaName } from "../operator/api/gateway-demand.js";
import { ConfigError, boolean, integer } from "../operator/config.js";
import type { PickWeights } from "./routing/types.js";
import { DEFAULT_PICK_WEIGHTS } from "./routing/picker.js";

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
  };
}
