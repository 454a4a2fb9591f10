import type { LoraModule } from "./lora.js";
import type {
  V1Affinity,
  V1EnvVar,
  V1LifecycleHandler,
  V1NodeSelectorRequirement,
  V1NodeSelectorTerm,
  V1Toleration,
} from "@kubernetes/client-node";
import { isDeepStrictEqual } from "node:util";
import { managedFlagIn } from "../api/engine-args.js";
import type { ModelDeploymentSpec } from "../api/modeldeployment.js";
import { ManagedEngineFlagError, RenderError } from "./errors.js";
import type { ResolvedPlan } from "./types.js";

/** Pieces shared by both engines' containers, and the pure helpers that merge user placement with the plan. */

export const GPU_RESOURCE = "nvidia.com/gpu";
/** Label GPU Feature Discovery puts on GPU nodes. */
export const GPU_PRODUCT_LABEL = "nvidia.com/gpu.product";

export const ENGINE_CONTAINER_NAME = "engine";
export const HTTP_PORT_NAME = "http";
/** Path both engines answer 200 on once the model is loaded (vLLM and trtllm-serve `/health`). */
export const HEALTH_PATH = "/health";

export const MODELS_MOUNT_PATH = "/models";
/**
 * The engine's home: an emptyDir, writable by the non-root user the pod runs as (the images' own home,
 * /root, is not). HOME points here so the engines' caches (~/.cache/vllm, ~/.triton, …) land in it;
 * the Hugging Face cache lives inside it.
 */
export const ENGINE_HOME = "/home/gpufleet";
export const HF_CACHE_MOUNT_PATH = ENGINE_HOME;
export const HF_HOME = `${ENGINE_HOME}/.cache/huggingface`;
/** Who the engine runs as unless spec.engine.runAsUser says otherwise: any non-root uid works with HOME set. */
export const DEFAULT_ENGINE_UID = 1000;
export const SHM_MOUNT_PATH = "/dev/shm";
export const VOLUME_NAMES = { shm: "dshm", hfCache: "hf-cache", models: "models" } as const;

/** Where the weights come from, resolved from spec.model.source into what an engine passes as its model. */
export type ModelLocation =
  | { kind: "huggingFace"; repo: string; revision?: string; tokenSecret?: { name: string; key: string } }
  | { kind: "pvc"; claimName: string; path: string }
  | { kind: "objectStore"; uri: string };

export function resolveModelLocation(source: ModelDeploymentSpec["model"]["source"]): ModelLocation {
  if (source.huggingFace) {
    const { repo, revision, tokenSecretRef } = source.huggingFace;
    return {
      kind: "huggingFace",
      repo,
      ...(revision ? { revision } : {}),
      ...(tokenSecretRef ? { tokenSecret: { name: tokenSecretRef.name, key: tokenSecretRef.key } } : {}),
    };
  }
  if (source.pvc) {
    // The claim is mounted whole at /models; spec path is absolute inside the volume ("/" = its root).
    const inside = source.pvc.path.replace(/\/+$/, "");
    return { kind: "pvc", claimName: source.pvc.claimName, path: `${MODELS_MOUNT_PATH}${inside}` };
  }
  if (source.uri) return { kind: "objectStore", uri: source.uri };
  throw new RenderError("UnsupportedModelSource", "spec.model.source sets none of huggingFace, pvc or uri");
}

/** What an engine module contributes to the one engine container; the rest is shared (see index.ts). */
export interface EngineContainerParts {
  image: string;
  /** Unset: the image's entrypoint runs (vllm/vllm-openai's is the OpenAI server). */
  command?: string[];
  /** Operator-derived arguments followed by the user's spec.engine.args. */
  args: string[];
  /** Engine-specific variables, set before spec.engine.env. */
  env: V1EnvVar[];
  /** Path of the Prometheus text exposition on the serving port. */
  metricsPath: string;
  /** Gauges whose sum is the requests still in flight (running + queued), polled by the preStop hook. */
  inFlightRequestMetrics: readonly string[];
  /** Value of the Gateway API Inference Extension's `inference.networking.k8s.io/engine-type` pod label. */
  gatewayEngineType: string;
}

export interface EngineRenderContext {
  spec: ModelDeploymentSpec;
  plan: ResolvedPlan;
  model: ModelLocation;
  image: string;
  /** LoRA adapters the engine loads at start (vLLM); default: every adapter in spec.adapters. */
  loraModules?: readonly LoraModule[];
}

/** `--flag=value` → `--flag`; `--flag` → `--flag`; anything not starting with `-` is a value. */
function flagName(argument: string): string | undefined {
  if (!argument.startsWith("-")) return undefined;
  const equals = argument.indexOf("=");
  return equals === -1 ? argument : argument.slice(0, equals);
}

/**
 * Refuses user arguments that would override what the operator set, by the rule the CRD applies at
 * admission (operator/api/engine-args.ts: shared managed flags in any spelling, alias or abbreviation;
 * no positional arguments), plus the flags this engine rendered for this spec (`managedFlags`, e.g.
 * `--quantization`), which admission cannot know. The renderer checks again because objects may predate
 * the rule or be created with validation off. `normalize` maps an engine's own aliases first.
 */
export function assertNoManagedFlags(
  userArgs: readonly string[],
  managedFlags: readonly string[],
  normalize: (flag: string) => string = (flag) => flag,
): void {
  for (const argument of userArgs) {
    const name = flagName(argument);
    const aliased = name === undefined ? argument : `${normalize(name)}${argument.slice(name.length)}`;
    const collides = managedFlagIn(aliased, managedFlags) ?? managedFlagIn(argument, managedFlags);
    if (collides !== undefined) throw new ManagedEngineFlagError(argument, collides);
  }
}

/** The flag names (as written) an argument list sets, for deriving the managed set from what was rendered. */
export function flagsIn(args: readonly string[]): string[] {
  return args.map(flagName).filter((name): name is string => name !== undefined);
}

/**
 * Operator variables first, then the user's; a user variable with the same name replaces the operator's
 * (env is a list keyed by name under server-side apply, so a duplicate name would make the apply fail).
 */
export function mergeEnv(operatorEnv: readonly V1EnvVar[], userEnv: readonly V1EnvVar[]): V1EnvVar[] {
  const userNames = new Set(userEnv.map((variable) => variable.name));
  return [
    ...operatorEnv.filter((variable) => !userNames.has(variable.name)),
    ...userEnv.map((variable) => structuredClone(variable)),
  ];
}

/** The HF token as `HF_TOKEN` from its Secret: the pod reads it, the operator never does. */
export function huggingFaceTokenEnv(model: ModelLocation): V1EnvVar[] {
  if (model.kind !== "huggingFace" || !model.tokenSecret) return [];
  return [
    {
      name: "HF_TOKEN",
      valueFrom: { secretKeyRef: { name: model.tokenSecret.name, key: model.tokenSecret.key } },
    },
  ];
}

export const GPU_TOLERATION: V1Toleration = { key: GPU_RESOURCE, operator: "Exists", effect: "NoSchedule" };

/** The GPU toleration, then the user's (without an exact repeat of ours). */
export function mergeTolerations(userTolerations: readonly V1Toleration[] | undefined): V1Toleration[] {
  const extra = (userTolerations ?? []).filter(
    (toleration) => !isDeepStrictEqual(toleration, GPU_TOLERATION),
  );
  return [{ ...GPU_TOLERATION }, ...extra.map((toleration) => structuredClone(toleration))];
}

/**
 * Requires `nvidia.com/gpu.product In [product]` while keeping the user's affinity. Required node
 * selector terms are ORed by Kubernetes, so the requirement is ANDed into every one of them (a term
 * without it would let the scheduler pick another GPU); preferred terms, pod (anti-)affinity stay as given.
 */
export function mergeGpuAffinity(userAffinity: V1Affinity | undefined, gpuProduct: string): V1Affinity {
  const requirement: V1NodeSelectorRequirement = {
    key: GPU_PRODUCT_LABEL,
    operator: "In",
    values: [gpuProduct],
  };
  const affinity = structuredClone(userAffinity ?? {});
  const nodeAffinity = affinity.nodeAffinity ?? {};
  const userTerms = nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  const withRequirement = (term: V1NodeSelectorTerm): V1NodeSelectorTerm => {
    const expressions = term.matchExpressions ?? [];
    if (expressions.some((expression) => isDeepStrictEqual(expression, requirement))) return term;
    return { ...term, matchExpressions: [...expressions, requirement] };
  };
  const terms = userTerms.length > 0 ? userTerms.map(withRequirement) : [{ matchExpressions: [requirement] }];
  return {
    ...affinity,
    nodeAffinity: {
      ...nodeAffinity,
      requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms },
    },
  };
}

/** A copy with keys in code-point order, so equal maps always serialize the same way. */
export function sortedRecord(record: Readonly<Record<string, string>>): Record<string, string> {
  const sorted: Record<string, string> = {};
  for (const key of Object.keys(record).sort()) sorted[key] = record[key] as string;
  return sorted;
}

// --- Startup allowance -------------------------------------------------------------------------------

/** Fixed part of start-up: CUDA/NCCL init, torch.compile and CUDA-graph capture, KV-cache profiling. */
const STARTUP_BASE_SECONDS = 600;
/**
 * Per GiB of weights: ~10 s/GiB is ~107 MB/s, a pessimistic Hugging Face download plus load to GPU, so a
 * 70B model gets over 20 minutes even in FP8 (~66 GiB → 21 min; BF16 ~131 GiB → 32 min).
 */
const STARTUP_SECONDS_PER_WEIGHT_GIB = 10;
/** Without the planner's weight figure, assume weights fill about half of an 80 GB GPU per GPU used. */
const ASSUMED_WEIGHT_GIB_PER_GPU = 40;
const STARTUP_MAX_SECONDS = 2 * 3600;
export const STARTUP_PROBE_PERIOD_SECONDS = 10;

/** How long a replica may take from container start to its first healthy `/health`. */
export function startupAllowanceSeconds(plan: ResolvedPlan): number {
  const weightsGiB = plan.weightsGiBPerReplica ?? plan.gpusPerReplica * ASSUMED_WEIGHT_GIB_PER_GPU;
  return Math.min(
    STARTUP_MAX_SECONDS,
    Math.ceil(STARTUP_BASE_SECONDS + weightsGiB * STARTUP_SECONDS_PER_WEIGHT_GIB),
  );
}

export function startupProbeFailureThreshold(plan: ResolvedPlan): number {
  return Math.ceil(startupAllowanceSeconds(plan) / STARTUP_PROBE_PERIOD_SECONDS);
}

// --- Resources ---------------------------------------------------------------------------------------

/**
 * Host resources per GPU: tokenization, detokenization and the API server are CPU-bound, and loading
 * stages weights through host memory. 4 cores and 16 GiB per GPU fit the smallest common GPU VMs
 * (e.g. 1×L4 with 8 vCPU / 32 GB) and scale to 8-GPU hosts. Requests only: no CPU limit (throttling
 * hurts latency) and no memory limit (an OOM kill mid-load costs minutes of GPU time).
 */
export function hostResourceRequests(gpus: number): { cpu: string; memory: string } {
  return { cpu: String(4 * gpus), memory: `${16 * gpus}Gi` };
}

/**
 * /dev/shm for NCCL between tensor-parallel ranks and for the engines' worker IPC; the container default
 * (64 MiB) makes multi-GPU engines fail. Memory-backed, so it counts against the node's RAM: 8 GiB per
 * GPU, capped at 64 GiB.
 */
export function sharedMemorySizeLimit(tensorParallelism: number): string {
  return `${Math.min(64, 8 * Math.max(1, tensorParallelism))}Gi`;
}

// --- Draining on shutdown ----------------------------------------------------------------------------

export interface DrainTiming {
  /** Seconds the preStop hook may spend in total. */
  budgetSeconds: number;
  /** Seconds it first waits so Service endpoints and gateways stop routing new requests here. */
  settleSeconds: number;
}

/**
 * Splits terminationGracePeriodSeconds: the preStop hook and the engine's own shutdown after SIGTERM
 * share it, so the hook leaves 10% (1 to 15 s) for the engine to exit before the kubelet's SIGKILL.
 */
export function drainTiming(terminationGracePeriodSeconds: number): DrainTiming {
  const exitMargin = Math.min(15, Math.max(1, Math.floor(terminationGracePeriodSeconds * 0.1)));
  const budgetSeconds = Math.max(1, terminationGracePeriodSeconds - exitMargin);
  const settleSeconds = Math.min(10, Math.max(1, Math.floor(budgetSeconds / 4)));
  return { budgetSeconds, settleSeconds };
}

/**
 * Waits until the engine reports no request in flight, or the budget runs out. Runs inside the engine
 * container with the python3 both images ship (no curl in them is assumed). Arguments: metrics URL,
 * comma-separated gauge names to sum, budget seconds, settle seconds. An unreachable endpoint ends the
 * wait (the engine is gone); a gauge absent from the exposition counts as zero (trtllm-serve only
 * publishes its gauges after the first iteration, i.e. none was ever running).
 */
export const PRESTOP_DRAIN_SCRIPT = `import sys, time, urllib.request
url, names, budget, settle = sys.argv[1], set(sys.argv[2].split(",")), float(sys.argv[3]), float(sys.argv[4])
deadline = time.monotonic() + budget
time.sleep(max(0.0, min(settle, budget)))
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode("utf-8", "replace")
    except Exception:
        break
    in_flight = 0.0
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        brace = line.find("{")
        if brace >= 0:
            name, rest = line[:brace], line[line.rfind("}") + 1:]
        else:
            name, _, rest = line.partition(" ")
        if name.strip() in names:
            try:
                in_flight += float(rest.split()[0])
            except (IndexError, ValueError):
                pass
    if in_flight <= 0:
        break
    time.sleep(1)
`;

export function drainPreStopHandler(
  port: number,
  metricsPath: string,
  inFlightMetrics: readonly string[],
  terminationGracePeriodSeconds: number,
): V1LifecycleHandler {
  const { budgetSeconds, settleSeconds } = drainTiming(terminationGracePeriodSeconds);
  return {
    exec: {
      command: [
        "python3",
        "-c",
        PRESTOP_DRAIN_SCRIPT,
        `http://127.0.0.1:${port}${metricsPath}`,
        inFlightMetrics.join(","),
        String(budgetSeconds),
        String(settleSeconds),
      ],
    },
  };
}
