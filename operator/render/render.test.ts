import type { V1Affinity } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { argValue, engineContainerOf, llama8b, modelDeployment, plan } from "./fixtures.js";
import { DEFAULT_IMAGES, podLabels, RenderError, renderWorkload, selectorLabels } from "./index.js";

const GPU_TOLERATION = { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" };
const H100_REQUIREMENT = { key: "nvidia.com/gpu.product", operator: "In", values: ["NVIDIA-H100-80GB-HBM3"] };

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

describe("renderWorkload: object identity", () => {
  const workload = renderWorkload({ modelDeployment: llama8b(), plan: plan() });

  it("names every object after the ModelDeployment, in its namespace, with the right apiVersion and kind", () => {
    expect(
      [workload.deployment, workload.service, workload.podDisruptionBudget].map((o) => [
        o.apiVersion,
        o.kind,
      ]),
    ).toEqual([
      ["apps/v1", "Deployment"],
      ["v1", "Service"],
      ["policy/v1", "PodDisruptionBudget"],
    ]);
    for (const object of [workload.deployment, workload.service, workload.podDisruptionBudget]) {
      expect(object.metadata?.name).toBe("llama-3-1-8b");
      expect(object.metadata?.namespace).toBe("team-a");
    }
  });

  it("makes the ModelDeployment the controlling owner of every object so deletion cascades", () => {
    for (const object of [workload.deployment, workload.service, workload.podDisruptionBudget])
      expect(object.metadata?.ownerReferences).toEqual([
        {
          apiVersion: "gpufleet.io/v1alpha1",
          kind: "ModelDeployment",
          name: "llama-3-1-8b",
          uid: "4f2a8c1e-0000-4000-8000-000000000001",
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
  });

  it("labels every object with the standard app.kubernetes.io labels and the selector label", () => {
    const expected = {
      "app.kubernetes.io/component": "inference-engine",
      "app.kubernetes.io/instance": "llama-3-1-8b",
      "app.kubernetes.io/managed-by": "gpufleet",
      "app.kubernetes.io/name": "gpufleet-engine",
      "gpufleet.io/model-deployment": "llama-3-1-8b",
    };
    for (const object of [workload.deployment, workload.service, workload.podDisruptionBudget])
      expect(object.metadata?.labels).toEqual(expected);
  });

  it("selects pods by the model-deployment label alone, the same in Deployment, Service and PDB", () => {
    const selector = { "gpufleet.io/model-deployment": "llama-3-1-8b" };
    expect(selectorLabels(llama8b())).toEqual(selector);
    expect(workload.deployment.spec?.selector.matchLabels).toEqual(selector);
    expect(workload.service.spec?.selector).toEqual(selector);
    expect(workload.podDisruptionBudget.spec?.selector?.matchLabels).toEqual(selector);
  });

  it("gives pods the Gateway API Inference Extension engine-type label on top of the object labels", () => {
    expect(workload.deployment.spec?.template.metadata?.labels).toEqual(podLabels(llama8b()));
    expect(podLabels(llama8b())["inference.networking.k8s.io/engine-type"]).toBe("vllm");
    expect(
      podLabels(llama8b({ engine: { kind: "tensorrt-llm" } }))["inference.networking.k8s.io/engine-type"],
    ).toBe("trtllm-serve");
    expect(podLabels(llama8b())["gpufleet.io/model-deployment"]).toBe("llama-3-1-8b");
  });

  it("refuses a ModelDeployment without a uid, which an owner reference needs", () => {
    const withoutUid = llama8b({}, { uid: undefined });
    expect(() => renderWorkload({ modelDeployment: withoutUid, plan: plan() })).toThrowError(
      expect.objectContaining({ name: "RenderError", reason: "MissingUid" }),
    );
  });

  it("refuses a name that cannot name a Service", () => {
    for (const name of ["3-llama", "llama.v2", "a".repeat(64)])
      expect(() => renderWorkload({ modelDeployment: llama8b({}, { name }), plan: plan() })).toThrowError(
        RenderError,
      );
  });

  it("refuses a plan with a fractional GPU count", () => {
    expect(() =>
      renderWorkload({ modelDeployment: llama8b(), plan: plan({ gpusPerReplica: 1.5 }) }),
    ).toThrowError(expect.objectContaining({ reason: "InvalidPlan" }));
  });
});

describe("renderWorkload: pod template", () => {
  it("carries the plan in pod annotations for observability and the engine simulator", () => {
    const workload = renderWorkload({
      modelDeployment: llama8b(),
      plan: plan({
        tensorParallelism: 2,
        gpusPerReplica: 2,
        kvCacheTokensPerReplica: 123_456,
        maxContextLength: 8192,
      }),
    });
    expect(workload.deployment.spec?.template.metadata?.annotations).toEqual({
      "gpufleet.io/engine": "vllm",
      "gpufleet.io/gpu-product": "NVIDIA-H100-80GB-HBM3",
      "gpufleet.io/kv-cache-tokens": "123456",
      "gpufleet.io/max-context-length": "8192",
      "gpufleet.io/metrics-path": "/metrics",
      "gpufleet.io/model-id": "llama-3.1-8b",
      "gpufleet.io/served-model-name": "llama-3.1-8b-instruct",
      "gpufleet.io/tensor-parallelism": "2",
    });
  });

  it("limits and requests exactly gpusPerReplica GPUs, with CPU and memory requests scaled per GPU", () => {
    const container = engineContainerOf(
      renderWorkload({ modelDeployment: llama8b(), plan: plan({ gpusPerReplica: 4, tensorParallelism: 4 }) })
        .deployment,
    );
    expect(container.resources?.limits).toEqual({ "nvidia.com/gpu": "4" });
    expect(container.resources?.requests).toEqual({ cpu: "16", memory: "64Gi", "nvidia.com/gpu": "4" });
  });

  it("tolerates the GPU taint first, then the user's tolerations, without repeating the GPU one", () => {
    const spot = { key: "cloud.google.com/gke-spot", operator: "Equal", value: "true", effect: "NoSchedule" };
    const md = llama8b({ placement: { tolerations: [spot, GPU_TOLERATION] } });
    const tolerations = renderWorkload({ modelDeployment: md, plan: plan() }).deployment.spec?.template.spec
      ?.tolerations;
    expect(tolerations).toEqual([GPU_TOLERATION, spot]);
  });

  it("requires the planned GPU product when the user gives no affinity", () => {
    const affinity = renderWorkload({ modelDeployment: llama8b(), plan: plan() }).deployment.spec?.template
      .spec?.affinity;
    expect(affinity).toEqual({
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [H100_REQUIREMENT] }],
        },
      },
    });
  });

  it("ANDs the GPU product into every required node selector term and keeps the user's other terms", () => {
    const zoneA = { key: "topology.kubernetes.io/zone", operator: "In", values: ["us-central1-a"] };
    const zoneB = { key: "topology.kubernetes.io/zone", operator: "In", values: ["us-central1-b"] };
    const hostField = { key: "metadata.name", operator: "NotIn", values: ["bad-node"] };
    const preferred = [
      {
        weight: 10,
        preference: { matchExpressions: [{ key: "pool", operator: "In", values: ["reserved"] }] },
      },
    ];
    const podAntiAffinity = {
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 50,
          podAffinityTerm: {
            topologyKey: "kubernetes.io/hostname",
            labelSelector: { matchLabels: { app: "x" } },
          },
        },
      ],
    };
    const userAffinity: V1Affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchExpressions: [zoneA] },
            { matchExpressions: [zoneB], matchFields: [hostField] },
          ],
        },
        preferredDuringSchedulingIgnoredDuringExecution: preferred,
      },
      podAntiAffinity,
    };
    const md = deepFreeze(llama8b({ placement: { affinity: userAffinity } }));
    const affinity = renderWorkload({ modelDeployment: md, plan: plan() }).deployment.spec?.template.spec
      ?.affinity;
    expect(affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms).toEqual(
      [
        { matchExpressions: [zoneA, H100_REQUIREMENT] },
        { matchExpressions: [zoneB, H100_REQUIREMENT], matchFields: [hostField] },
      ],
    );
    expect(affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution).toEqual(preferred);
    expect(affinity?.podAntiAffinity).toEqual(podAntiAffinity);
  });

  it("does not add the GPU product requirement twice when the user's term already has it", () => {
    const md = llama8b({
      placement: {
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [{ matchExpressions: [H100_REQUIREMENT] }],
            },
          },
        },
      },
    });
    const terms = renderWorkload({ modelDeployment: md, plan: plan() }).deployment.spec?.template.spec
      ?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
    expect(terms).toEqual([{ matchExpressions: [H100_REQUIREMENT] }]);
  });

  it("copies the placement node selector, and sets none when there is none", () => {
    const md = llama8b({
      placement: {
        nodeSelector: {
          "topology.kubernetes.io/region": "us-central1",
          "cloud.google.com/gke-nodepool": "gpu",
        },
      },
    });
    expect(
      renderWorkload({ modelDeployment: md, plan: plan() }).deployment.spec?.template.spec?.nodeSelector,
    ).toEqual({
      "cloud.google.com/gke-nodepool": "gpu",
      "topology.kubernetes.io/region": "us-central1",
    });
    expect(
      renderWorkload({ modelDeployment: llama8b(), plan: plan() }).deployment.spec?.template.spec,
    ).not.toHaveProperty("nodeSelector");
  });

  it("probes /health on the http port: a startup probe allowing minutes of loading, then readiness and liveness", () => {
    const container = engineContainerOf(
      renderWorkload({ modelDeployment: llama8b(), plan: plan({ weightsGiBPerReplica: 15 }) }).deployment,
    );
    for (const probe of [container.startupProbe, container.readinessProbe, container.livenessProbe])
      expect(probe?.httpGet).toEqual({ path: "/health", port: "http" });
    const startupSeconds =
      (container.startupProbe?.periodSeconds ?? 0) * (container.startupProbe?.failureThreshold ?? 0);
    expect(startupSeconds).toBeGreaterThanOrEqual(10 * 60);
    expect(container.readinessProbe?.periodSeconds).toBeLessThanOrEqual(10);
    expect(
      (container.livenessProbe?.periodSeconds ?? 0) * (container.livenessProbe?.failureThreshold ?? 0),
    ).toBeGreaterThanOrEqual(60);
  });

  it("gives a 70B model at least 20 minutes to start, in FP8 or BF16, and more than an 8B model", () => {
    const startupSeconds = (weightsGiB: number | undefined, gpus: number) => {
      const probe = engineContainerOf(
        renderWorkload({
          modelDeployment: llama8b(),
          plan: plan({
            gpusPerReplica: gpus,
            tensorParallelism: gpus,
            ...(weightsGiB === undefined ? {} : { weightsGiBPerReplica: weightsGiB }),
          }),
        }).deployment,
      ).startupProbe;
      return (probe?.periodSeconds ?? 0) * (probe?.failureThreshold ?? 0);
    };
    const seventyBFp8 = startupSeconds(66, 1);
    const seventyBBf16 = startupSeconds(131, 2);
    const eightB = startupSeconds(15, 1);
    expect(seventyBFp8).toBeGreaterThanOrEqual(20 * 60);
    expect(seventyBBf16).toBeGreaterThan(seventyBFp8);
    expect(eightB).toBeLessThan(seventyBFp8);
    // Without the planner's weight figure the allowance grows with the GPU count (70B BF16 on 4 GPUs).
    expect(startupSeconds(undefined, 4)).toBeGreaterThanOrEqual(20 * 60);
  });

  it("lets the Deployment's progress deadline outlast the startup allowance", () => {
    const deployment = renderWorkload({
      modelDeployment: llama8b(),
      plan: plan({ weightsGiBPerReplica: 131 }),
    }).deployment;
    const probe = engineContainerOf(deployment).startupProbe;
    expect(deployment.spec?.progressDeadlineSeconds).toBeGreaterThan(
      (probe?.periodSeconds ?? 0) * (probe?.failureThreshold ?? 0),
    );
  });

  it("takes the grace period from spec.serving and drains in-flight requests in a preStop bounded by it", () => {
    const md = llama8b({ serving: { port: 8080, terminationGracePeriodSeconds: 300 } });
    const deployment = renderWorkload({ modelDeployment: md, plan: plan() }).deployment;
    expect(deployment.spec?.template.spec?.terminationGracePeriodSeconds).toBe(300);
    const command = engineContainerOf(deployment).lifecycle?.preStop?.exec?.command ?? [];
    expect(command.slice(0, 2)).toEqual(["python3", "-c"]);
    expect(command[3]).toBe("http://127.0.0.1:8080/metrics");
    expect(command[4]?.split(",")).toContain("vllm:num_requests_running");
    const budgetSeconds = Number(command[5]);
    expect(budgetSeconds).toBeGreaterThan(200);
    expect(budgetSeconds).toBeLessThan(300);
    expect(command).not.toContain("curl");
  });

  it("rolls out one pod at a time without surging onto spare GPUs, at spec.replicas", () => {
    const deployment = renderWorkload({ modelDeployment: llama8b({ replicas: 3 }), plan: plan() }).deployment;
    expect(deployment.spec?.replicas).toBe(3);
    expect(deployment.spec?.strategy).toEqual({
      type: "RollingUpdate",
      rollingUpdate: { maxSurge: 0, maxUnavailable: 1 },
    });
    expect(deployment.spec?.revisionHistoryLimit).toBeLessThanOrEqual(5);
    expect(deployment.spec?.template.spec?.enableServiceLinks).toBe(false);
  });

  it("mounts a memory-backed /dev/shm sized by tensor parallelism and an emptyDir Hugging Face cache", () => {
    const shmLimit = (tensorParallelism: number) => {
      const spec = renderWorkload({
        modelDeployment: llama8b(),
        plan: plan({ tensorParallelism, gpusPerReplica: tensorParallelism }),
      }).deployment.spec?.template.spec;
      const volume = spec?.volumes?.find((candidate) => candidate.name === "dshm");
      expect(volume?.emptyDir?.medium).toBe("Memory");
      return volume?.emptyDir?.sizeLimit;
    };
    expect(shmLimit(1)).toBe("8Gi");
    expect(shmLimit(4)).toBe("32Gi");
    expect(shmLimit(16)).toBe("64Gi");
    const container = engineContainerOf(
      renderWorkload({ modelDeployment: llama8b(), plan: plan() }).deployment,
    );
    expect(container.volumeMounts).toEqual([
      { name: "dshm", mountPath: "/dev/shm" },
      { name: "hf-cache", mountPath: "/home/gpufleet" },
    ]);
  });

  it("mounts a PVC model source read-only at /models and loads the model from its path", () => {
    const md = modelDeployment(
      {
        model: {
          name: "in-house-13b",
          source: { pvc: { claimName: "model-store", path: "/models/in-house-13b" } },
        },
      },
      { name: "in-house-13b" },
    );
    const deployment = renderWorkload({ modelDeployment: md, plan: plan() }).deployment;
    expect(deployment.spec?.template.spec?.volumes).toContainEqual({
      name: "models",
      persistentVolumeClaim: { claimName: "model-store", readOnly: true },
    });
    const container = engineContainerOf(deployment);
    expect(container.volumeMounts).toContainEqual({ name: "models", mountPath: "/models", readOnly: true });
    expect(argValue(container.args, "--model")).toBe("/models/models/in-house-13b");
    expect(container.env).toEqual([
      { name: "HOME", value: "/home/gpufleet" },
      { name: "HF_HOME", value: "/home/gpufleet/.cache/huggingface" },
    ]);
  });

  it("reads the Hugging Face token from its Secret as HF_TOKEN, then appends the user's env", () => {
    const md = llama8b({ engine: { env: [{ name: "VLLM_LOGGING_LEVEL", value: "DEBUG" }] } });
    expect(engineContainerOf(renderWorkload({ modelDeployment: md, plan: plan() }).deployment).env).toEqual([
      { name: "HOME", value: "/home/gpufleet" },
      { name: "HF_HOME", value: "/home/gpufleet/.cache/huggingface" },
      { name: "HF_TOKEN", valueFrom: { secretKeyRef: { name: "hf-token", key: "token" } } },
      { name: "VLLM_LOGGING_LEVEL", value: "DEBUG" },
    ]);
  });

  it("lets a user variable named like an operator one replace it rather than duplicate the name", () => {
    const md = llama8b({
      engine: { env: [{ name: "HF_TOKEN", valueFrom: { secretKeyRef: { name: "other", key: "t" } } }] },
    });
    const env = engineContainerOf(renderWorkload({ modelDeployment: md, plan: plan() }).deployment).env ?? [];
    expect(env.filter((variable) => variable.name === "HF_TOKEN")).toEqual([
      { name: "HF_TOKEN", valueFrom: { secretKeyRef: { name: "other", key: "t" } } },
    ]);
  });

  it("picks the image from spec.engine.image, else the operator default, else the pinned release", () => {
    const image = (md: ReturnType<typeof llama8b>, images?: { vllm?: string; tensorrtLlm?: string }) =>
      engineContainerOf(
        renderWorkload({ modelDeployment: md, plan: plan(), ...(images ? { images } : {}) }).deployment,
      ).image;
    expect(image(llama8b())).toBe(DEFAULT_IMAGES.vllm);
    expect(DEFAULT_IMAGES.vllm).toMatch(/^vllm\/vllm-openai:v\d+\.\d+\.\d+$/);
    expect(image(llama8b(), { vllm: "registry.local/vllm:pinned" })).toBe("registry.local/vllm:pinned");
    expect(
      image(llama8b({ engine: { image: "mine/vllm:dev" } }), { vllm: "registry.local/vllm:pinned" }),
    ).toBe("mine/vllm:dev");
    expect(image(llama8b({ engine: { kind: "tensorrt-llm" } }), { vllm: "registry.local/vllm:pinned" })).toBe(
      DEFAULT_IMAGES["tensorrt-llm"],
    );
    expect(
      image(llama8b({ engine: { kind: "tensorrt-llm" } }), { tensorrtLlm: "registry.local/trt:1" }),
    ).toBe("registry.local/trt:1");
  });
});

describe("renderWorkload: Service and PodDisruptionBudget", () => {
  it("exposes the OpenAI-compatible port as a Service port named http targeting the container's http port", () => {
    const md = llama8b({ serving: { port: 9000 } });
    const workload = renderWorkload({ modelDeployment: md, plan: plan() });
    expect(workload.service.spec?.ports).toEqual([
      { name: "http", port: 9000, targetPort: "http", protocol: "TCP" },
    ]);
    expect(engineContainerOf(workload.deployment).ports).toEqual([
      { name: "http", containerPort: 9000, protocol: "TCP" },
    ]);
  });

  it("allows one voluntary disruption at a time whatever the replica count, and evicts never-ready pods", () => {
    for (const replicas of [1, 3]) {
      const pdb = renderWorkload({
        modelDeployment: llama8b({ replicas }),
        plan: plan(),
      }).podDisruptionBudget;
      expect(pdb.spec?.maxUnavailable).toBe(1);
      expect(pdb.spec?.minAvailable).toBeUndefined();
      expect(pdb.spec?.unhealthyPodEvictionPolicy).toBe("AlwaysAllow");
    }
  });
});

describe("renderWorkload: server-side apply hygiene", () => {
  const richSpec = {
    engine: { args: ["--enable-prefix-caching"], env: [{ name: "A", value: "1" }] },
    placement: {
      nodeSelector: { b: "2", a: "1" },
      tolerations: [{ key: "dedicated", operator: "Equal", value: "llm", effect: "NoSchedule" }],
    },
  };

  it("renders byte-identical output twice from the same input", () => {
    const input = { modelDeployment: llama8b(richSpec), plan: plan() };
    expect(JSON.stringify(renderWorkload(input))).toBe(JSON.stringify(renderWorkload(input)));
  });

  it("renders the same bytes whatever order the user's maps were written in", () => {
    const reordered = llama8b({
      ...richSpec,
      placement: { ...richSpec.placement, nodeSelector: { a: "1", b: "2" } },
    });
    expect(JSON.stringify(renderWorkload({ modelDeployment: reordered, plan: plan() }))).toBe(
      JSON.stringify(renderWorkload({ modelDeployment: llama8b(richSpec), plan: plan() })),
    );
  });

  it("does not modify its input", () => {
    const md = deepFreeze(llama8b(richSpec));
    const frozenPlan = deepFreeze(plan());
    expect(() => renderWorkload({ modelDeployment: md, plan: frozenPlan })).not.toThrow();
  });

  it("sets no status, no undefined values and no empty objects or lists except emptyDir volumes", () => {
    const workload = renderWorkload({ modelDeployment: llama8b(), plan: plan() });
    const problems: string[] = [];
    const walk = (value: unknown, path: string): void => {
      if (value === undefined || value === null) problems.push(`${path} is ${String(value)}`);
      else if (Array.isArray(value)) {
        if (value.length === 0) problems.push(`${path} is []`);
        value.forEach((item, index) => walk(item, `${path}[${index}]`));
      } else if (typeof value === "object") {
        const entries = Object.entries(value);
        if (entries.length === 0 && !path.endsWith(".emptyDir")) problems.push(`${path} is {}`);
        for (const [key, child] of entries) {
          if (key === "status") problems.push(`${path}.status is set`);
          walk(child, `${path}.${key}`);
        }
      }
    };
    walk(workload, "workload");
    expect(problems).toEqual([]);
  });
});

describe("engine pod powers", () => {
  it("runs the engine as the restricted Pod Security Standard asks: non-root, no escalation, no capabilities, RuntimeDefault seccomp, no API token", () => {
    for (const engine of ["vllm", "tensorrt-llm"] as const) {
      const deployment = renderWorkload({ modelDeployment: llama8b({ engine: { kind: engine } }), plan: plan() }).deployment;
      const pod = deployment.spec?.template.spec;
      expect(pod?.automountServiceAccountToken).toBe(false);
      expect(pod?.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } });
      expect(pod?.hostNetwork ?? false).toBe(false);
      expect(engineContainerOf(deployment).securityContext).toEqual({ allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } });
      expect(pod?.volumes?.every((volume) => volume.emptyDir ?? volume.persistentVolumeClaim)).toBe(true);
    }
  });

  it("runs as root only when spec.engine.runAsUser is 0, and then does not claim runAsNonRoot", () => {
    const pod = renderWorkload({ modelDeployment: llama8b({ engine: { runAsUser: 0 } }), plan: plan() }).deployment.spec?.template.spec;
    expect(pod?.securityContext?.runAsUser).toBe(0);
    expect(pod?.securityContext?.runAsNonRoot).toBeUndefined();
  });
});
