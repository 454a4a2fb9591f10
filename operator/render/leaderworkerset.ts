/**
 * A replica that spans nodes, rendered as a LeaderWorkerSet (sigs.k8s.io/lws, leaderworkerset.x-k8s.io/v1):
 * one group per replica of `pipelineParallelism` pods, one pipeline stage (tensorParallelism GPUs) each.
 *
 *  - The leader (worker index 0) runs the engine's API server and pipeline stage 0; the workers run the other
 *    stages and join it: vLLM's multi-node launch without Ray (`--nnodes`, `--node-rank`, `--master-addr`,
 *    workers `--headless`), SGLang's `--nnodes` / `--node-rank` / `--dist-init-addr` with `--pp-size`.
 *    The addresses come from the variables the LWS pod webhook injects (LWS_LEADER_ADDRESS,
 *    LWS_WORKER_INDEX), expanded by the kubelet in the arguments: no shell in the image is needed.
 *    trtllm-serve across nodes is launched by MPI over SSH between the pods, which gpufleet does not render:
 *    a TensorRT-LLM plan that spans nodes is refused with MultiNodeUnsupported.
 *  - restartPolicy RecreateGroupOnPodRestart: a stage that dies takes its whole pipeline with it, so the
 *    LWS controller recreates every pod of the group together.
 *  - startupPolicy LeaderCreated: the workers start with the leader (with LeaderReady they would wait for
 *    a leader that cannot become ready without them).
 *  - All pods of a group share the GPU product (node affinity) and, through pod affinity on the group's
 *    `leaderworkerset.sigs.k8s.io/group-key` label (matchLabelKeys), each node label in
 *    plan.groupTopologyKeys: the pool and, where the pool's nodes carry one, the zone.
 *  - The Service selects the leaders only (worker index 0); the PodDisruptionBudget covers every pod.
 *  - A replica is a group: spec.replicas (the autoscaler's output) is the number of groups, and the LWS
 *    controller removes the highest groups, all their pods at once, on scale-down.
 */
import type { V1Affinity, V1Container, V1PodAffinityTerm, V1PodTemplateSpec, V1Toleration } from "@kubernetes/client-node";
import type { ModelDeployment } from "../api/modeldeployment.js";
import { DEFAULT_ENGINE_UID, mergeGpuAffinity, mergeTolerations, sortedRecord } from "./common.js";
import { ManagedEngineFlagError, RenderError } from "./errors.js";
import { urlAdapterPodParts } from "./lora.js";
import {
  CONTAINER_SECURITY_CONTEXT,
  engineContainer,
  engineImage,
  engineParts,
  objectLabels,
  objectMetadata,
  podAnnotations,
  podLabels,
  podSecurityContext,
  renderPodDisruptionBudget,
  renderService,
  renderWorkload,
  selectorLabels,
  validatePlan,
  volumesFor,
  withUrlAdapters,
} from "./index.js";
import { resolveModelLocation } from "./common.js";
import type { RenderInput, RenderedWorkload, ResolvedPlan } from "./types.js";
import type { V1PodDisruptionBudget, V1Service } from "@kubernetes/client-node";

export const LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1";
export const LWS_KIND = "LeaderWorkerSet";
/** Labels the LWS controller and webhook put on every pod of a group. */
export const LWS_LABELS = {
  name: "leaderworkerset.sigs.k8s.io/name",
  groupIndex: "leaderworkerset.sigs.k8s.io/group-index",
  workerIndex: "leaderworkerset.sigs.k8s.io/worker-index",
  groupKey: "leaderworkerset.sigs.k8s.io/group-key",
} as const;
/** Variables the LWS pod webhook injects into every container of a group. */
const LEADER_ADDRESS = "$(LWS_LEADER_ADDRESS)";
const WORKER_INDEX = "$(LWS_WORKER_INDEX)";
/** Rendezvous ports on the leader: torch.distributed for vLLM, SGLang's dist-init. */
export const VLLM_MASTER_PORT = 29500;
export const SGLANG_DIST_INIT_PORT = 20000;
/** Pod annotation with the plan's pipeline degree (the others are in podAnnotations). */
export const PIPELINE_PARALLELISM_ANNOTATION = "gpufleet.io/pipeline-parallelism";

/** The LeaderWorkerSet object (the fields gpufleet sets). */
export interface LeaderWorkerSet {
  apiVersion: typeof LWS_API_VERSION;
  kind: typeof LWS_KIND;
  metadata: ReturnType<typeof objectMetadata>;
  spec: {
    replicas: number;
    startupPolicy: "LeaderCreated" | "LeaderReady";
    rolloutStrategy: { type: "RollingUpdate"; rollingUpdateConfiguration: { maxUnavailable: number; maxSurge: number } };
    networkConfig: { subdomainPolicy: "Shared" | "UniquePerReplica" };
    leaderWorkerTemplate: {
      size: number;
      restartPolicy: "RecreateGroupOnPodRestart" | "None";
      leaderTemplate: V1PodTemplateSpec;
      workerTemplate: V1PodTemplateSpec;
    };
  };
  status?: { replicas?: number; readyReplicas?: number; updatedReplicas?: number; conditions?: Array<{ type: string; status: string; reason?: string; message?: string }> };
}

/** The objects of a multi-node replica set: what the reconciler server-side-applies instead of a Deployment. */
export interface RenderedGroupWorkload {
  service: V1Service;
  podDisruptionBudget: V1PodDisruptionBudget;
  leaderWorkerSet: LeaderWorkerSet;
}

export type AnyRenderedWorkload = RenderedWorkload | RenderedGroupWorkload;

export function isGroupWorkload(workload: AnyRenderedWorkload): workload is RenderedGroupWorkload {
  return "leaderWorkerSet" in workload;
}

/** Flags the multi-node launch sets, per engine; spec.engine.args may not set them. */
const MULTI_NODE_FLAGS: Record<"vllm" | "sglang", readonly string[]> = {
  vllm: ["--pipeline-parallel-size", "--nnodes", "--node-rank", "--master-addr", "--master-port", "--headless", "--distributed-executor-backend"],
  sglang: ["--pp-size", "--nnodes", "--node-rank", "--dist-init-addr"],
};

function canonical(flag: string): string {
  const name = flag.split("=")[0] ?? flag;
  const spelled = name.startsWith("--") ? `--${name.slice(2).replaceAll("_", "-")}` : name;
  return spelled === "-pp" ? "--pipeline-parallel-size" : spelled;
}

/** The arguments that make one pod a stage of the group, appended last so they are the ones the parser keeps. */
export function multiNodeArgs(engine: "vllm" | "sglang", stages: number, role: "leader" | "worker"): string[] {
  const rank = role === "leader" ? "0" : WORKER_INDEX;
  if (engine === "vllm")
    return [
      "--pipeline-parallel-size",
      String(stages),
      "--nnodes",
      String(stages),
      "--node-rank",
      rank,
      "--master-addr",
      LEADER_ADDRESS,
      "--master-port",
      String(VLLM_MASTER_PORT),
      ...(role === "worker" ? ["--headless"] : []),
    ];
  return [
    "--pp-size",
    String(stages),
    "--nnodes",
    String(stages),
    "--node-rank",
    rank,
    "--dist-init-addr",
    `${LEADER_ADDRESS}:${SGLANG_DIST_INIT_PORT}`,
  ];
}

/**
 * Pod affinity that keeps every pod of a group in one domain of each topology key: this ModelDeployment's
 * pods (labelSelector) with the incoming pod's group key (matchLabelKeys; a key may not be in both).
 */
export function groupAffinityTerms(modelDeployment: ModelDeployment, topologyKeys: readonly string[]): V1PodAffinityTerm[] {
  return topologyKeys.map((topologyKey) => ({
    labelSelector: { matchLabels: selectorLabels(modelDeployment) },
    matchLabelKeys: [LWS_LABELS.groupKey],
    topologyKey,
  }));
}

function groupAffinity(modelDeployment: ModelDeployment, plan: ResolvedPlan): V1Affinity {
  const affinity = mergeGpuAffinity(modelDeployment.spec.placement.affinity as V1Affinity | undefined, plan.gpuProduct);
  const terms = groupAffinityTerms(modelDeployment, plan.groupTopologyKeys ?? []);
  if (terms.length === 0) return affinity;
  const podAffinity = affinity.podAffinity ?? {};
  return {
    ...affinity,
    podAffinity: {
      ...podAffinity,
      requiredDuringSchedulingIgnoredDuringExecution: [...(podAffinity.requiredDuringSchedulingIgnoredDuringExecution ?? []), ...terms],
    },
  };
}

/** Renders a plan whose replica spans nodes; plans that fit one node go to renderWorkload. */
export function renderGroupWorkload(input: RenderInput): RenderedGroupWorkload {
  const { modelDeployment, plan } = input;
  const stages = plan.pipelineParallelism ?? 1;
  if (!Number.isInteger(stages) || stages < 2 || stages > 8)
    throw new RenderError("InvalidPlan", `plan.pipelineParallelism must be an integer from 2 to 8 for a group, got ${stages}`);
  validatePlan(modelDeployment, { ...plan, pipelineParallelism: 1 });
  const engine = modelDeployment.spec.engine.kind;
  if (engine === "tensorrt-llm")
    throw new RenderError(
      "MultiNodeUnsupported",
      `the plan spans ${stages} nodes per replica (PP ${stages} x TP ${plan.tensorParallelism}); trtllm-serve across nodes is launched by MPI over SSH between the pods, which gpufleet does not render: use engine vllm or sglang, or a quantization or GPU that fits one node`,
    );
  for (const argument of modelDeployment.spec.engine.args ?? []) {
    const flag = canonical(argument);
    if (MULTI_NODE_FLAGS[engine].includes(flag)) throw new ManagedEngineFlagError(argument, flag);
  }
  // Each pod is one stage: TP GPUs.
  const podPlan: ResolvedPlan = { ...plan, gpusPerReplica: plan.tensorParallelism };
  const model = resolveModelLocation(modelDeployment.spec.model.source);
  const parts = engineParts(modelDeployment, {
    spec: modelDeployment.spec,
    plan: podPlan,
    model,
    image: engineImage(modelDeployment, input.images),
    ...(input.loraModules ? { loraModules: input.loraModules } : {}),
  });
  // URL adapters are downloaded on every pod of the group (each stage loads its share of the adapter).
  const { volumes, mounts } = withUrlAdapters(modelDeployment.spec, parts.image, volumesFor(model, podPlan));
  const fetcher = urlAdapterPodParts(modelDeployment.spec, parts.image, CONTAINER_SECURITY_CONTEXT);
  const { spec } = modelDeployment;
  const nodeSelector = spec.placement.nodeSelector ?? {};
  const annotations = sortedRecord({ ...podAnnotations(modelDeployment, plan), [PIPELINE_PARALLELISM_ANNOTATION]: String(stages) });
  const podSpec = (container: V1Container) => ({
    enableServiceLinks: false,
    automountServiceAccountToken: false,
    securityContext: podSecurityContext(spec.engine.runAsUser ?? DEFAULT_ENGINE_UID),
    terminationGracePeriodSeconds: spec.serving.terminationGracePeriodSeconds,
    ...(Object.keys(nodeSelector).length ? { nodeSelector: sortedRecord(nodeSelector) } : {}),
    affinity: groupAffinity(modelDeployment, plan),
    tolerations: mergeTolerations(spec.placement.tolerations as V1Toleration[] | undefined),
    ...(fetcher ? { initContainers: [fetcher.initContainer] } : {}),
    containers: [container],
    volumes,
  });
  const leader = engineContainer(modelDeployment, podPlan, { ...parts, args: [...parts.args, ...multiNodeArgs(engine, stages, "leader")] }, mounts);
  // Workers serve no HTTP (vLLM --headless, SGLang ranks > 0): no port, probes or drain hook; they are ready
  // once running, and the group is ready when the leader answers /health.
  const { ports: _ports, startupProbe: _startup, readinessProbe: _readiness, livenessProbe: _liveness, lifecycle: _lifecycle, ...workerBase } =
    engineContainer(modelDeployment, podPlan, { ...parts, args: [...parts.args, ...multiNodeArgs(engine, stages, "worker")] }, mounts);
  const leaderWorkerSet: LeaderWorkerSet = {
    apiVersion: LWS_API_VERSION,
    kind: LWS_KIND,
    metadata: objectMetadata(modelDeployment),
    spec: {
      replicas: spec.replicas,
      startupPolicy: "LeaderCreated",
      // One group at a time and no surge group: a surge group needs a whole extra set of nodes.
      rolloutStrategy: { type: "RollingUpdate", rollingUpdateConfiguration: { maxUnavailable: 1, maxSurge: 0 } },
      networkConfig: { subdomainPolicy: "Shared" },
      leaderWorkerTemplate: {
        size: stages,
        restartPolicy: "RecreateGroupOnPodRestart",
        leaderTemplate: { metadata: { labels: podLabels(modelDeployment), annotations }, spec: podSpec(leader) },
        workerTemplate: { metadata: { labels: objectLabels(modelDeployment), annotations }, spec: podSpec(workerBase) },
      },
    },
  };
  const service = renderService(modelDeployment);
  return {
    // Only leaders serve the API.
    service: { ...service, spec: { ...service.spec, selector: { ...selectorLabels(modelDeployment), [LWS_LABELS.workerIndex]: "0" } } },
    podDisruptionBudget: renderPodDisruptionBudget(modelDeployment),
    leaderWorkerSet,
  };
}

/** A Deployment for a plan that fits one node, a LeaderWorkerSet for one that spans nodes. */
export function renderAnyWorkload(input: RenderInput): AnyRenderedWorkload {
  return (input.plan.pipelineParallelism ?? 1) > 1 ? renderGroupWorkload(input) : renderWorkload(input);
}
