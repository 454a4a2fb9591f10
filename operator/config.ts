/**
 * The operator's configuration, read once at start-up from the environment (the Helm chart sets these).
 * A bad value stops the process with a message that names the variable, rather than running half-configured.
 */
import { ORPHAN_SWEEP_DEFAULT_SECONDS } from "./controller/orphans.js";

export interface OperatorConfig {
  /** Namespaces to watch; empty means the whole cluster. */
  watchNamespaces: string[];
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName: string;
  /** Leader election timings (client-go's defaults: 15, 10, 2 s); renew deadline < lease, retry < renew deadline. */
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
  identity: string;
  opsHost: string;
  opsPort: number;
  /** /metrics only for callers the API server authenticates (TokenReview) and authorizes (SubjectAccessReview). */
  metricsAuth: boolean;
  scrapeIntervalSeconds: number;
  scrapeTimeoutSeconds: number;
  /** Engine scrapes in flight at once across all ModelDeployments. */
  scrapeConcurrency: number;
  /** Autoscaler history: bucket length (s) and shortest time between writes (s). */
  historyBucketSeconds: number;
  historySaveSeconds: number;
  /**
   * GPUFLEET_AUTOSCALER_WINDOW_SECONDS: the autoscaler policy's stable window, token window and
   * scale-down period, in seconds (unset: the policy defaults, 60 s each). Shorter windows react
   * sooner to noise; the tests shorten them so scale-downs happen within their run time.
   */
  autoscalerWindowSeconds?: number;
  concurrency: number;
  /** How often to look again whether the InferencePool CRD is served (it may be installed later). */
  inferencePoolRecheckSeconds: number;
  /** After a spill-over return fails (the preferred pool had no room after all), wait this long before trying that product again; doubles per failure up to 16x. */
  spillReturnBackoffSeconds: number;
  /**
   * How often the garbage collector's backstop looks for objects of deleted ModelDeployments
   * (controller/orphans.ts); an orphan is deleted once two sweeps in a row saw it.
   */
  orphanSweepSeconds: number;
  images: { vllm?: string; tensorrtLlm?: string; sglang?: string };
  /**
   * Where models' config.json is read (GPUFLEET_HF_ENDPOINT, e.g. https://huggingface.co); unset: the
   * operator sizes from its catalogue and inline architectures only, and makes no outbound request.
   */
  hub?: { endpoint: string; timeoutMs: number; tokenFile?: string };
  /**
   * Read a ModelDeployment's tokenSecretRef Secret to fetch its config.json (GPUFLEET_TENANT_TOKENS);
   * the chart sets it when it grants `get` on Secrets in hub.tenantTokenNamespaces. Off by default.
   */
  tenantTokens: boolean;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

export function integer(env: NodeJS.ProcessEnv, key: string, fallback: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new ConfigError(`${key}=${raw} is not a whole number from ${min} to ${max}`);
  return value;
}

export function boolean(env: NodeJS.ProcessEnv, key: string, fallback: boolean): boolean {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  if (/^(true|1|yes)$/i.test(raw)) return true;
  if (/^(false|0|no)$/i.test(raw)) return false;
  throw new ConfigError(`${key}=${raw} is not true or false`);
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): OperatorConfig {
  const podNamespace = env.POD_NAMESPACE || "gpufleet-system";
  const watchNamespaces = (env.GPUFLEET_WATCH_NAMESPACES ?? "")
    .split(",")
    .map((namespace) => namespace.trim())
    .filter(Boolean);
  for (const namespace of watchNamespaces)
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(namespace))
      throw new ConfigError(`GPUFLEET_WATCH_NAMESPACES has an invalid namespace name: ${namespace}`);
  const scrapeIntervalSeconds = integer(env, "GPUFLEET_SCRAPE_INTERVAL_SECONDS", 5, 1, 300);
  const leaseDurationSeconds = integer(env, "GPUFLEET_LEASE_DURATION_SECONDS", 15, 2, 600);
  const renewDeadlineSeconds = integer(env, "GPUFLEET_RENEW_DEADLINE_SECONDS", Math.min(10, leaseDurationSeconds - 1), 1, 599);
  const retryPeriodSeconds = integer(env, "GPUFLEET_RETRY_PERIOD_SECONDS", Math.min(2, Math.max(1, renewDeadlineSeconds - 1)), 1, 598);
  if (renewDeadlineSeconds >= leaseDurationSeconds)
    throw new ConfigError(`GPUFLEET_RENEW_DEADLINE_SECONDS=${renewDeadlineSeconds} must be shorter than GPUFLEET_LEASE_DURATION_SECONDS=${leaseDurationSeconds}`);
  if (retryPeriodSeconds >= renewDeadlineSeconds)
    throw new ConfigError(`GPUFLEET_RETRY_PERIOD_SECONDS=${retryPeriodSeconds} must be shorter than GPUFLEET_RENEW_DEADLINE_SECONDS=${renewDeadlineSeconds}`);
  const hubEndpoint = env.GPUFLEET_HF_ENDPOINT?.trim();
  if (hubEndpoint) {
    let url: URL;
    try {
      url = new URL(hubEndpoint);
    } catch {
      throw new ConfigError(`GPUFLEET_HF_ENDPOINT=${hubEndpoint} is not a URL`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:")
      throw new ConfigError(`GPUFLEET_HF_ENDPOINT=${hubEndpoint} is not an http(s) URL`);
  }
  const windowRaw = env.GPUFLEET_AUTOSCALER_WINDOW_SECONDS;
  // At least the panic window (15 s): the stable window is the slower of the two.
  const autoscalerWindowSeconds =
    windowRaw === undefined || windowRaw === "" ? undefined : integer(env, "GPUFLEET_AUTOSCALER_WINDOW_SECONDS", 60, 15, 3600);
  return {
    ...(autoscalerWindowSeconds === undefined ? {} : { autoscalerWindowSeconds }),
    ...(hubEndpoint
      ? {
          hub: {
            endpoint: hubEndpoint,
            timeoutMs: integer(env, "GPUFLEET_HF_TIMEOUT_SECONDS", 10, 1, 120) * 1000,
            ...(env.GPUFLEET_HF_TOKEN_FILE ? { tokenFile: env.GPUFLEET_HF_TOKEN_FILE } : {}),
          },
        }
      : {}),
    tenantTokens: boolean(env, "GPUFLEET_TENANT_TOKENS", false),
    watchNamespaces,
    leaderElect: boolean(env, "GPUFLEET_LEADER_ELECT", true),
    leaseNamespace: env.GPUFLEET_LEASE_NAMESPACE || podNamespace,
    leaseName: env.GPUFLEET_LEASE_NAME || "gpufleet-operator",
    leaseDurationSeconds,
    renewDeadlineSeconds,
    retryPeriodSeconds,
    identity: env.POD_NAME || `${env.HOSTNAME ?? "gpufleet"}-${process.pid}`,
    opsHost: env.GPUFLEET_OPS_HOST || "0.0.0.0",
    opsPort: integer(env, "GPUFLEET_OPS_PORT", 8081, 0, 65535),
    metricsAuth: boolean(env, "GPUFLEET_METRICS_AUTH", false),
    scrapeIntervalSeconds,
    scrapeTimeoutSeconds: integer(env, "GPUFLEET_SCRAPE_TIMEOUT_SECONDS", Math.min(3, scrapeIntervalSeconds), 1, 60),
    scrapeConcurrency: integer(env, "GPUFLEET_SCRAPE_CONCURRENCY", 32, 1, 1024),
    // The autoscaler's workload history (ConfigMap <name>-autoscaling-history): bucket length and
    // the shortest time between two writes. Defaults suit production; tests shorten them.
    historyBucketSeconds: integer(env, "GPUFLEET_AUTOSCALER_HISTORY_BUCKET_SECONDS", 300, 1, 3600),
    historySaveSeconds: integer(env, "GPUFLEET_AUTOSCALER_HISTORY_SAVE_SECONDS", 60, 1, 3600),
    // Reconciles are bound by API round trips, not CPU (sim/bench/operator-scale.ts): 8 in flight by default.
    concurrency: integer(env, "GPUFLEET_CONCURRENCY", 8, 1, 64),
    inferencePoolRecheckSeconds: integer(env, "GPUFLEET_INFERENCE_POOL_RECHECK_SECONDS", 300, 1, 86_400),
    spillReturnBackoffSeconds: integer(env, "GPUFLEET_SPILL_RETURN_BACKOFF_SECONDS", 60, 1, 3_600),
    orphanSweepSeconds: integer(env, "GPUFLEET_ORPHAN_SWEEP_SECONDS", ORPHAN_SWEEP_DEFAULT_SECONDS, 1, 3600),
    images: {
      ...(env.GPUFLEET_VLLM_IMAGE ? { vllm: env.GPUFLEET_VLLM_IMAGE } : {}),
      ...(env.GPUFLEET_TRTLLM_IMAGE ? { tensorrtLlm: env.GPUFLEET_TRTLLM_IMAGE } : {}),
      ...(env.GPUFLEET_SGLANG_IMAGE ? { sglang: env.GPUFLEET_SGLANG_IMAGE } : {}),
    },
  };
}
