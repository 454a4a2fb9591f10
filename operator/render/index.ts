import { createHash } from "node:crypto";
import { SGLANG_DEFAULT_IMAGE, SGLANG_GATEWAY_ENGINE_TYPE, SGLANG_METRICS_PATH, sglangContainerParts } from "./sglang.js";
import type {
  V1Affinity,
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1ObjectMeta,
  V1OwnerReference,
  V1PodDisruptionBudget,
  V1PodSecurityContext,
  V1Probe,
  V1Service,
  V1Toleration,
  V1Volume,
  V1VolumeMount,
} from "@kubernetes/client-node";
import {
  API_GROUP,
  API_VERSION,
  KIND,
  type EngineKind,
  type ModelDeployment,
} from "../api/modeldeployment.js";
import {
  ENGINE_CONTAINER_NAME,
  GPU_RESOURCE,
  HEALTH_PATH,
  DEFAULT_ENGINE_UID,
  ENGINE_HOME,
  HF_CACHE_MOUNT_PATH,
  HF_HOME,
  HTTP_PORT_NAME,
  MODELS_MOUNT_PATH,
  SHM_MOUNT_PATH,
  STARTUP_PROBE_PERIOD_SECONDS,
  VOLUME_NAMES,
  drainPreStopHandler,
  hostResourceRequests,
  mergeEnv,
  mergeGpuAffinity,
  mergeTolerations,
  resolveModelLocation,
  sharedMemorySizeLimit,
  sortedRecord,
  startupAllowanceSeconds,
  startupProbeFailureThreshold,
  type EngineContainerParts,
  type EngineRenderContext,
  type ModelLocation,
} from "./common.js";
import { RenderError } from "./errors.js";
import { urlAdapterPodParts } from "./lora.js";
import {
  TRTLLM_DEFAULT_IMAGE,
  TRTLLM_GATEWAY_ENGINE_TYPE,
  TRTLLM_METRICS_PATH,
  trtllmContainerParts,
} from "./trtllm.js";
import type { EngineImages, RenderedWorkload, RenderInput, ResolvedPlan } from "./types.js";
import {
  VLLM_DEFAULT_IMAGE,
  VLLM_GATEWAY_ENGINE_TYPE,
  VLLM_METRICS_PATH,
  vllmContainerParts,
} from "./vllm.js";

/**
 * Renders a ModelDeployment and its plan into the Deployment, Service and PodDisruptionBudget the
 * reconciler server-side-applies. Pure and deterministic: the same input gives byte-identical JSON
 * (fixed key and argument order, sorted maps), so re-applying an unchanged object is a no-op. Only
 * fields the operator has an opinion on are set: no status, no API-server defaults, no empty objects.
 */

export { ManagedEngineFlagError, RenderError } from "./errors.js";
export type { EngineImages, RenderedWorkload, RenderInput, ResolvedPlan } from "./types.js";

/** Pinned engine images (see vllm.ts and trtllm.ts for the sources of the tags). */
export const DEFAULT_IMAGES: Readonly<Record<EngineKind, string>> = {
  vllm: VLLM_DEFAULT_IMAGE,
  "tensorrt-llm": TRTLLM_DEFAULT_IMAGE,
  sglang: SGLANG_DEFAULT_IMAGE,
};

export const LABELS = {
  name: "app.kubernetes.io/name",
  instance: "app.kubernetes.io/instance",
  component: "app.kubernetes.io/component",
  managedBy: "app.kubernetes.io/managed-by",
  modelDeployment: "gpufleet.io/model-deployment",
  /**
   * Read by the Gateway API Inference Extension's endpoint picker to pick an engine's metric names
   * (DefaultEngineTypeLabelKey; built-in values "vllm", "sglang", "trtllm-serve", "triton-tensorrt-llm"):
   * kubernetes-sigs/gateway-api-inference-extension pkg/epp/framework/plugins/datalayer/extractor/metrics/
   * mapping_registry.go and factories.go at commit 1748e829d1161147aaf35e76699ec86fd88406d2.
   */
  gatewayEngineType: "inference.networking.k8s.io/engine-type",
  /** Only on pods of a spill-over workload: which one (the preferred workload's pods have none). */
  workloadSlot: "gpufleet.io/workload-slot",
} as const;

export const ANNOTATIONS = {
  /**
   * On the Deployment: hash of its pod template with the start adapters (--lora-modules) left out. Equal
   * hashes mean the only change is the adapter list, which the operator applies to running engines
   * instead of restarting them (operator/controller/reconcile-plan.ts).
   */
  templateWithoutAdapters: "gpufleet.io/template-hash-without-adapters",
  gpuProduct: "gpufleet.io/gpu-product",
  modelId: "gpufleet.io/model-id",
  tensorParallelism: "gpufleet.io/tensor-parallelism",
  kvCacheTokens: "gpufleet.io/kv-cache-tokens",
  maxContextLength: "gpufleet.io/max-context-length",
  servedModelName: "gpufleet.io/served-model-name",
  engine: "gpufleet.io/engine",
  metricsPath: "gpufleet.io/metrics-path",
  /**
   * "priority" on pods of a vLLM engine started with --scheduling-policy priority: the gateway then puts
   * the request's band in its `priority` field (gateway/engine-priority.ts). Per pod, so while a rollout
   * turns the policy on or off each pod gets what its engine accepts.
   */
  schedulingPolicy: "gpufleet.io/scheduling-policy",
} as const;

const GATEWAY_ENGINE_TYPES: Readonly<Record<EngineKind, string>> = {
  vllm: VLLM_GATEWAY_ENGINE_TYPE,
  "tensorrt-llm": TRTLLM_GATEWAY_ENGINE_TYPE,
  sglang: SGLANG_GATEWAY_ENGINE_TYPE,
};

export const METRICS_PATHS: Readonly<Record<EngineKind, string>> = {
  vllm: VLLM_METRICS_PATH,
  "tensorrt-llm": TRTLLM_METRICS_PATH,
  sglang: SGLANG_METRICS_PATH,
};

/** The one label the Deployment, Service and PDB select on. Never changes for an object: selectors are immutable. */
export function selectorLabels(modelDeployment: ModelDeployment): Record<string, string> {
  return { [LABELS.modelDeployment]: modelDeployment.metadata.name };
}

/** Labels of the Deployment, Service and PDB themselves. */
export function objectLabels(modelDeployment: ModelDeployment): Record<string, string> {
  return sortedRecord({
    [LABELS.name]: "gpufleet-engine",
    [LABELS.instance]: modelDeployment.metadata.name,
    [LABELS.component]: "inference-engine",
    [LABELS.managedBy]: "gpufleet",
    ...selectorLabels(modelDeployment),
  });
}

/**
 * Pod labels: the object labels plus the Inference Extension's engine type. That extension reads no
 * model-name label (models are routed by the request body), so none is set; the served model name,
 * which label values could not hold anyway (`/`, `:`, over 63 characters), is a pod annotation.
 */
export function podLabels(modelDeployment: ModelDeployment): Record<string, string> {
  return sortedRecord({
    ...objectLabels(modelDeployment),
    [LABELS.gatewayEngineType]: GATEWAY_ENGINE_TYPES[modelDeployment.spec.engine.kind],
  });
}

/** The plan, on each pod: for people (`kubectl describe`) and for the engine simulator, which sizes itself from it. */
export function podAnnotations(modelDeployment: ModelDeployment, plan: ResolvedPlan): Record<string, string> {
  const engine = modelDeployment.spec.engine.kind;
  return sortedRecord({
    [ANNOTATIONS.gpuProduct]: plan.gpuProduct,
    [ANNOTATIONS.modelId]: plan.modelId,
    [ANNOTATIONS.tensorParallelism]: String(plan.tensorParallelism),
    [ANNOTATIONS.kvCacheTokens]: String(plan.kvCacheTokensPerReplica),
    [ANNOTATIONS.maxContextLength]: String(plan.maxContextLength),
    [ANNOTATIONS.servedModelName]: modelDeployment.spec.model.name,
    [ANNOTATIONS.engine]: engine,
    [ANNOTATIONS.metricsPath]: METRICS_PATHS[engine],
    ...(engine === "vllm" && modelDeployment.spec.engine.schedulingPolicy === "priority"
      ? { [ANNOTATIONS.schedulingPolicy]: "priority" }
      : {}),
  });
}

/** Image precedence: spec.engine.image, then the operator's configured default, then the pinned release. */
export function engineImage(modelDeployment: ModelDeployment, images: EngineImages | undefined): string {
  const engine = modelDeployment.spec.engine.kind;
  const operatorDefault = engine === "vllm" ? images?.vllm : engine === "sglang" ? images?.sglang : images?.tensorrtLlm;
  return modelDeployment.spec.engine.image ?? operatorDefault ?? DEFAULT_IMAGES[engine];
}

export function ownerReference(modelDeployment: ModelDeployment): V1OwnerReference {
  const { name, uid } = modelDeployment.metadata;
  if (!uid)
    throw new RenderError(
      "MissingUid",
      `ModelDeployment ${name} has no metadata.uid: render it as read from the API server`,
    );
  // controller + blockOwnerDeletion: the garbage collector deletes the workload with the ModelDeployment,
  // and foreground deletion of the ModelDeployment waits for it.
  return {
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    kind: KIND,
    name,
    uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function objectMetadata(modelDeployment: ModelDeployment): V1ObjectMeta {
  const { name, namespace } = modelDeployment.metadata;
  return {
    name,
    ...(namespace ? { namespace } : {}),
    labels: objectLabels(modelDeployment),
    ownerReferences: [ownerReference(modelDeployment)],
  };
}

/** Service names are DNS-1035 labels, and the name is also a label value (63 characters at most). */
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** Refuses a name or plan no workload can be rendered from (RenderError). */
export function validatePlan(modelDeployment: ModelDeployment, plan: ResolvedPlan): void {
  const { name } = modelDeployment.metadata;
  if (name.length > 63 || !DNS_1035_LABEL.test(name))
    throw new RenderError(
      "InvalidName",
      `ModelDeployment name "${name}" must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, at most 63 characters) to name its Service`,
    );
  const positiveIntegers: [string, number][] = [
    ["gpusPerReplica", plan.gpusPerReplica],
    ["tensorParallelism", plan.tensorParallelism],
    ["maxContextLength", plan.maxContextLength],
  ];
  for (const [field, value] of positiveIntegers)
    if (!Number.isInteger(value) || value < 1)
      throw new RenderError("InvalidPlan", `plan.${field} must be a positive integer, got ${value}`);
  if (!(plan.gpuMemoryUtilization > 0 && plan.gpuMemoryUtilization <= 1))
    throw new RenderError(
      "InvalidPlan",
      `plan.gpuMemoryUtilization must be in (0, 1], got ${plan.gpuMemoryUtilization}`,
    );
  if (!plan.gpuProduct) throw new RenderError("InvalidPlan", "plan.gpuProduct is empty");
  if ((plan.pipelineParallelism ?? 1) > 1)
    throw new RenderError(
      "MultiNodeNotRendered",
      `the plan spans ${plan.pipelineParallelism} nodes per replica, which a Deployment cannot run: it needs a LeaderWorkerSet (renderGroupWorkload in leaderworkerset.ts)`,
    );
}

export function engineParts(modelDeployment: ModelDeployment, context: EngineRenderContext): EngineContainerParts {
  switch (modelDeployment.spec.engine.kind) {
    case "vllm":
      return vllmContainerParts(context);
    case "tensorrt-llm":
      return trtllmContainerParts(context);
    case "sglang":
      return sglangContainerParts(context);
  }
}

/** What the `restricted` Pod Security Standard asks of every container (runAsNonRoot is set on the pod). */
export const CONTAINER_SECURITY_CONTEXT = { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } };

/** The pod's volumes and the engine's mounts, with the URL adapters' download volume when the spec has URL adapters. */
export function withUrlAdapters(
  spec: ModelDeployment["spec"],
  image: string,
  base: { volumes: V1Volume[]; mounts: V1VolumeMount[] },
): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const fetcher = urlAdapterPodParts(spec, image, CONTAINER_SECURITY_CONTEXT);
  return fetcher ? { volumes: [...base.volumes, fetcher.volume], mounts: [...base.mounts, fetcher.mount] } : base;
}

export function volumesFor(
  model: ModelLocation,
  plan: ResolvedPlan,
): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const volumes: V1Volume[] = [
    {
      name: VOLUME_NAMES.shm,
      emptyDir: { medium: "Memory", sizeLimit: sharedMemorySizeLimit(plan.tensorParallelism) },
    },
    // Downloads from the Hub (weights, tokenizer, config) land on node disk, not in the container layer.
    { name: VOLUME_NAMES.hfCache, emptyDir: {} },
  ];
  const mounts: V1VolumeMount[] = [
    { name: VOLUME_NAMES.shm, mountPath: SHM_MOUNT_PATH },
    { name: VOLUME_NAMES.hfCache, mountPath: HF_CACHE_MOUNT_PATH },
  ];
  if (model.kind === "pvc") {
    volumes.push({
      name: VOLUME_NAMES.models,
      persistentVolumeClaim: { claimName: model.claimName, readOnly: true },
    });
    mounts.push({ name: VOLUME_NAMES.models, mountPath: MODELS_MOUNT_PATH, readOnly: true });
  }
  return { volumes, mounts };
}

function healthProbe(
  timing: Pick<V1Probe, "periodSeconds" | "timeoutSeconds" | "failureThreshold">,
): V1Probe {
  return { httpGet: { path: HEALTH_PATH, port: HTTP_PORT_NAME }, ...timing };
}

export function engineContainer(
  modelDeployment: ModelDeployment,
  plan: ResolvedPlan,
  parts: EngineContainerParts,
  mounts: V1VolumeMount[],
): V1Container {
  const { spec } = modelDeployment;
  const gpus = String(plan.gpusPerReplica);
  // spec.engine.env is validated by the CRD as core/v1 EnvVars (valueFrom kept opaque).
  const homeEnv: V1EnvVar[] = [
    { name: "HOME", value: ENGINE_HOME },
    { name: "HF_HOME", value: HF_HOME },
  ];
  const env = mergeEnv([...homeEnv, ...parts.env], (spec.engine.env ?? []) as V1EnvVar[]);
  return {
    name: ENGINE_CONTAINER_NAME,
    image: parts.image,
    ...(parts.command ? { command: parts.command } : {}),
    args: parts.args,
    ...(env.length ? { env } : {}),
    // protocol is written out: it is a key of the ports list for server-side apply, and API servers
    // before 1.21 rejected an applied port without it (kubernetes-sigs/structured-merge-diff#130).
    ports: [{ name: HTTP_PORT_NAME, containerPort: spec.serving.port, protocol: "TCP" }],
    resources: {
      limits: { [GPU_RESOURCE]: gpus },
      requests: { ...hostResourceRequests(plan.gpusPerReplica), [GPU_RESOURCE]: gpus },
    },
    // Model loading takes minutes (download, load, CUDA graphs): liveness and readiness only start once
    // this has passed, so a slow load is not killed and a loaded model is not restarted for a slow probe.
    startupProbe: healthProbe({
      periodSeconds: STARTUP_PROBE_PERIOD_SECONDS,
      timeoutSeconds: 5,
      failureThreshold: startupProbeFailureThreshold(plan),
    }),
    readinessProbe: healthProbe({ periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 3 }),
    // A restart reloads the whole model, so liveness needs a minute of consecutive failures.
    livenessProbe: healthProbe({ periodSeconds: 15, timeoutSeconds: 10, failureThreshold: 4 }),
    lifecycle: {
      preStop: drainPreStopHandler(
        spec.serving.port,
        parts.metricsPath,
        parts.inFlightRequestMetrics,
        spec.serving.terminationGracePeriodSeconds,
      ),
    },
    volumeMounts: mounts,
    // What the `restricted` Pod Security Standard asks of a container (runAsNonRoot is set on the pod).
    securityContext: CONTAINER_SECURITY_CONTEXT,
  };
}

/**
 * The pod's security context: non-root (spec.engine.runAsUser, default 1000; 0 runs the image as root,
 * which a namespace enforcing `restricted` refuses, shown in the Ready condition) and the runtime's
 * default seccomp profile. fsGroup makes the emptyDirs writable; OnRootMismatch spares a large model
 * volume a recursive chown at every start.
 */
export function podSecurityContext(runAsUser: number): V1PodSecurityContext {
  return {
    ...(runAsUser === 0 ? {} : { runAsNonRoot: true }),
    runAsUser,
    runAsGroup: runAsUser,
    fsGroup: runAsUser,
    fsGroupChangePolicy: "OnRootMismatch",
    seccompProfile: { type: "RuntimeDefault" },
  };
}

/** The pod template with the `--lora-modules` values taken out of the engine's args, hashed. */
export function templateHashWithoutAdapters(template: unknown): string {
  const copy = JSON.parse(JSON.stringify(template)) as { spec?: { containers?: { args?: string[] }[] } };
  for (const container of copy.spec?.containers ?? []) {
    const args = container.args ?? [];
    const at = args.indexOf("--lora-modules");
    if (at === -1) continue;
    let end = at + 1;
    while (end < args.length && !(args[end] ?? "").startsWith("-")) end++;
    container.args = [...args.slice(0, at), ...args.slice(end)];
  }
  return createHash("sha256").update(JSON.stringify(copy)).digest("hex").slice(0, 32);
}

/** A second workload of the same ModelDeployment on another GPU product (spill-over; operator/controller/spill.ts). */
export interface WorkloadVariant {
  /** Deployment name. */
  name: string;
  /** Label value that tells this workload's pods apart (its selector adds it). */
  slot: string;
  replicas: number;
}

function renderDeployment(
  modelDeployment: ModelDeployment,
  plan: ResolvedPlan,
  parts: EngineContainerParts,
  model: ModelLocation,
  variant?: WorkloadVariant,
  replicas?: number,
): V1Deployment {
  const { spec } = modelDeployment;
  const { volumes, mounts } = withUrlAdapters(spec, parts.image, volumesFor(model, plan));
  const nodeSelector = spec.placement.nodeSelector ?? {};
  const slotLabels: Record<string, string> = variant ? { [LABELS.workloadSlot]: variant.slot } : {};
  const fetcher = urlAdapterPodParts(spec, parts.image, CONTAINER_SECURITY_CONTEXT);
  const template = {
        metadata: { labels: sortedRecord({ ...podLabels(modelDeployment), ...slotLabels }), annotations: podAnnotations(modelDeployment, plan) },
        spec: {
          // Engines don't read service env vars; in busy namespaces they only bloat the environment.
          enableServiceLinks: false,
          // The engine never talks to the API server: no token in the pod for a compromised engine to use.
          automountServiceAccountToken: false,
          securityContext: podSecurityContext(spec.engine.runAsUser ?? DEFAULT_ENGINE_UID),
          terminationGracePeriodSeconds: spec.serving.terminationGracePeriodSeconds,
          ...(Object.keys(nodeSelector).length ? { nodeSelector: sortedRecord(nodeSelector) } : {}),
          affinity: mergeGpuAffinity(spec.placement.affinity as V1Affinity | undefined, plan.gpuProduct),
          tolerations: mergeTolerations(spec.placement.tolerations as V1Toleration[] | undefined),
          ...(fetcher ? { initContainers: [fetcher.initContainer] } : {}),
          containers: [engineContainer(modelDeployment, plan, parts, mounts)],
          volumes,
        },
      };
  const metadata = objectMetadata(modelDeployment);
  const lora = parts.args.includes("--enable-lora");
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      ...metadata,
      ...(variant ? { name: variant.name, labels: sortedRecord({ ...metadata.labels, ...slotLabels }) } : {}),
      ...(lora ? { annotations: { [ANNOTATIONS.templateWithoutAdapters]: templateHashWithoutAdapters(template) } } : {}),
    },
    spec: {
      replicas: variant ? variant.replicas : (replicas ?? spec.replicas),
      selector: { matchLabels: { ...selectorLabels(modelDeployment), ...slotLabels } },
      // Replace one pod at a time without a surge: a surge pod needs a whole extra set of GPUs (up to 8
      // H100s) that is rarely free, so it would sit Pending and stall the rollout. The price is one
      // replica less during a rollout (a single-replica deployment is briefly down).
      strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } },
      revisionHistoryLimit: 3,
      // The default 600 s would mark every cold start of a large model as a failed rollout.
      progressDeadlineSeconds: startupAllowanceSeconds(plan) + 600,
      template,
    },
  };
}

export function renderService(modelDeployment: ModelDeployment): V1Service {
  const { spec } = modelDeployment;
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: objectMetadata(modelDeployment),
    spec: {
      selector: selectorLabels(modelDeployment),
      ports: [{ name: HTTP_PORT_NAME, port: spec.serving.port, targetPort: HTTP_PORT_NAME, protocol: "TCP" }],
    },
  };
}

/**
 * maxUnavailable 1 for every replica count. With one replica a minAvailable-style budget would block
 * every node drain (cluster upgrades, autoscaler scale-down) forever; one replica promises no availability
 * through a drain anyway, and with more replicas one at a time keeps the rest serving. AlwaysAllow lets a
 * drain evict pods that never became ready (still loading, crash-looping) instead of waiting on them.
 */
export function renderPodDisruptionBudget(modelDeployment: ModelDeployment): V1PodDisruptionBudget {
  return {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: objectMetadata(modelDeployment),
    spec: {
      maxUnavailable: 1,
      selector: { matchLabels: selectorLabels(modelDeployment) },
      unhealthyPodEvictionPolicy: "AlwaysAllow",
    },
  };
}

/** Renders the workload; throws RenderError (or its ManagedEngineFlagError) for specs it must refuse. */
export function renderWorkload(input: RenderInput): RenderedWorkload {
  const { modelDeployment, plan } = input;
  const { model, parts } = validatedEngine(input);
  return {
    deployment: renderDeployment(modelDeployment, plan, parts, model, undefined, input.replicas),
    service: renderService(modelDeployment),
    podDisruptionBudget: renderPodDisruptionBudget(modelDeployment),
  };
}

/**
 * The Deployment of a spill-over workload: the same model on another GPU product with that product's
 * plan, named and labelled apart from the preferred one. The Service and PodDisruptionBudget of the
 * preferred workload select its pods too (they select on the ModelDeployment label only).
 */
export function renderSpillDeployment(input: RenderInput & { variant: WorkloadVariant }): V1Deployment {
  const { model, parts } = validatedEngine(input);
  return renderDeployment(input.modelDeployment, input.plan, parts, model, input.variant);
}

/** Checks the input and renders the engine container's parts (shared by both workloads). */
function validatedEngine(input: RenderInput): { model: ModelLocation; parts: EngineContainerParts } {
  const { modelDeployment, plan } = input;
  validatePlan(modelDeployment, plan);
  const model = resolveModelLocation(modelDeployment.spec.model.source);
  const parts = engineParts(modelDeployment, {
    spec: modelDeployment.spec,
    plan,
    model,
    image: engineImage(modelDeployment, input.images),
    ...(input.loraModules ? { loraModules: input.loraModules } : {}),
  });
  return { model, parts };
}
