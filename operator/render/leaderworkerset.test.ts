import { describe, expect, it } from "vitest";
import { ManagedEngineFlagError, RenderError } from "./errors.js";
import { llama8b } from "./fixtures.js";
import { LWS_LABELS, groupAffinityTerms, isGroupWorkload, renderAnyWorkload, renderGroupWorkload } from "./leaderworkerset.js";
import type { ResolvedPlan } from "./types.js";

const plan = (extra: Partial<ResolvedPlan> = {}): ResolvedPlan => ({
  gpuProduct: "NVIDIA-H100-80GB-HBM3",
  gpusPerReplica: 16,
  tensorParallelism: 8,
  pipelineParallelism: 2,
  maxContextLength: 32768,
  kvCacheTokensPerReplica: 586_256,
  gpuMemoryUtilization: 0.9,
  modelId: "llama-3.1-405b",
  weightsGiBPerReplica: 756,
  groupTopologyKeys: ["gpufleet.io/pool", "topology.kubernetes.io/zone"],
  ...extra,
});

describe("renderGroupWorkload: a replica that spans nodes is a LeaderWorkerSet group", () => {
  it("renders one group of PP pods per replica, restarted together, each a stage of TP GPUs, owned by the ModelDeployment", () => {
    const md = llama8b({ replicas: 3 });
    const { leaderWorkerSet } = renderGroupWorkload({ modelDeployment: md, plan: plan() });
    expect(leaderWorkerSet.apiVersion).toBe("leaderworkerset.x-k8s.io/v1");
    expect(leaderWorkerSet.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: "ModelDeployment", uid: md.metadata.uid, controller: true })]);
    expect(leaderWorkerSet.spec).toMatchObject({ replicas: 3, startupPolicy: "LeaderCreated" });
    expect(leaderWorkerSet.spec.leaderWorkerTemplate).toMatchObject({ size: 2, restartPolicy: "RecreateGroupOnPodRestart" });
    expect(groupAffinityTerms(md, ["gpufleet.io/pool"])).toEqual([
      { labelSelector: { matchLabels: { "gpufleet.io/model-deployment": "llama-3-1-8b" } }, matchLabelKeys: [LWS_LABELS.groupKey], topologyKey: "gpufleet.io/pool" },
    ]);
    for (const template of [leaderWorkerSet.spec.leaderWorkerTemplate.leaderTemplate, leaderWorkerSet.spec.leaderWorkerTemplate.workerTemplate]) {
      const container = template.spec!.containers[0]!;
      expect(container.resources?.limits).toEqual({ "nvidia.com/gpu": "8" });
      expect(template.metadata?.annotations?.["gpufleet.io/pipeline-parallelism"]).toBe("2");
      expect(template.spec?.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution).toEqual(
        groupAffinityTerms(md, ["gpufleet.io/pool", "topology.kubernetes.io/zone"]),
      );
    }
  });

  it("runs vLLM's API server on the leader (rank 0) and headless stages on the workers, addressed through the LWS variables", () => {
    const { leaderWorkerSet } = renderGroupWorkload({ modelDeployment: llama8b(), plan: plan() });
    const leader = leaderWorkerSet.spec.leaderWorkerTemplate.leaderTemplate.spec!.containers[0]!;
    const worker = leaderWorkerSet.spec.leaderWorkerTemplate.workerTemplate.spec!.containers[0]!;
    const tail = (args: string[] | undefined) => (args ?? []).slice((args ?? []).indexOf("--pipeline-parallel-size"));
    expect(tail(leader.args)).toEqual(["--pipeline-parallel-size", "2", "--nnodes", "2", "--node-rank", "0", "--master-addr", "$(LWS_LEADER_ADDRESS)", "--master-port", "29500"]);
    expect(tail(worker.args)).toEqual([
      "--pipeline-parallel-size", "2", "--nnodes", "2", "--node-rank", "$(LWS_WORKER_INDEX)", "--master-addr", "$(LWS_LEADER_ADDRESS)", "--master-port", "29500", "--headless",
    ]);
    expect(leader.ports?.[0]?.name).toBe("http");
    expect(leader.readinessProbe).toBeDefined();
    expect(worker.ports).toBeUndefined();
    expect(worker.readinessProbe).toBeUndefined();
    expect(worker.lifecycle).toBeUndefined();
    // Only leaders carry the engine-type label the scraper and the Inference Extension pick pods by.
    expect(leaderWorkerSet.spec.leaderWorkerTemplate.leaderTemplate.metadata?.labels?.["inference.networking.k8s.io/engine-type"]).toBe("vllm");
    expect(leaderWorkerSet.spec.leaderWorkerTemplate.workerTemplate.metadata?.labels?.["inference.networking.k8s.io/engine-type"]).toBeUndefined();
  });

  it("selects only the leaders in the Service and every pod in the PodDisruptionBudget", () => {
    const { service, podDisruptionBudget } = renderGroupWorkload({ modelDeployment: llama8b(), plan: plan() });
    expect(service.spec?.selector).toEqual({ "gpufleet.io/model-deployment": "llama-3-1-8b", [LWS_LABELS.workerIndex]: "0" });
    expect(podDisruptionBudget.spec?.selector?.matchLabels).toEqual({ "gpufleet.io/model-deployment": "llama-3-1-8b" });
  });

  it("launches SGLang with --pp-size, --nnodes, --node-rank and --dist-init-addr", () => {
    const { leaderWorkerSet } = renderGroupWorkload({ modelDeployment: llama8b({ engine: { kind: "sglang" } }), plan: plan() });
    const worker = leaderWorkerSet.spec.leaderWorkerTemplate.workerTemplate.spec!.containers[0]!;
    expect(worker.args?.slice(-8)).toEqual(["--pp-size", "2", "--nnodes", "2", "--node-rank", "$(LWS_WORKER_INDEX)", "--dist-init-addr", "$(LWS_LEADER_ADDRESS):20000"]);
  });

  it("refuses TensorRT-LLM across nodes, and engine args that set the multi-node flags", () => {
    expect(() => renderGroupWorkload({ modelDeployment: llama8b({ engine: { kind: "tensorrt-llm" } }), plan: plan() })).toThrow(
      expect.objectContaining({ reason: "MultiNodeUnsupported" }) as RenderError,
    );
    expect(() => renderGroupWorkload({ modelDeployment: llama8b({ engine: { args: ["--nnodes=4"] } }), plan: plan() })).toThrow(ManagedEngineFlagError);
    expect(() => renderGroupWorkload({ modelDeployment: llama8b({ engine: { args: ["-pp", "4"] } }), plan: plan() })).toThrow(ManagedEngineFlagError);
  });

  it("renders a Deployment for a plan on one node and a LeaderWorkerSet for one across nodes", () => {
    expect(isGroupWorkload(renderAnyWorkload({ modelDeployment: llama8b(), plan: plan() }))).toBe(true);
    const single = renderAnyWorkload({ modelDeployment: llama8b(), plan: plan({ pipelineParallelism: undefined, gpusPerReplica: 8 }) });
    expect(isGroupWorkload(single)).toBe(false);
    expect("deployment" in single && single.deployment.kind).toBe("Deployment");
  });
});
