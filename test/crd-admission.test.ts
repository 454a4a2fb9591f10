/* eslint-disable @typescript-eslint/no-explicit-any -- the cases mutate arbitrary JSON to make malformed objects */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CoreV1Api, CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { API_GROUP, API_VERSION, PLURAL } from "../operator/api/modeldeployment.js";
import { REPO_ROOT } from "../operator/api/generate.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";

// Admission of ModelDeployments by the real kube-apiserver: the generated CRD installs, every sample is
// accepted, and malformed objects are refused by the schema or a CEL rule with a message a person can act on.

const namespace = "crd-admission";
const kubeConfig = new KubeConfig();
let customObjects: CustomObjectsApi;

const valid = {
  model: { name: "llama-3.1-8b", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } } },
};

function withSpec(patch: (spec: Record<string, any>) => void): Record<string, unknown> {
  const spec = structuredClone(valid) as Record<string, any>;
  patch(spec);
  return spec;
}

async function create(name: string, spec: unknown): Promise<{ code: number; message: string }> {
  try {
    await customObjects.createNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace,
      plural: PLURAL,
      fieldValidation: "Strict",
      body: { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: "ModelDeployment", metadata: { name }, spec },
    });
    return { code: 201, message: "" };
  } catch (error) {
    const failure = error as { code?: number; body?: string };
    const body = typeof failure.body === "string" ? JSON.parse(failure.body) : failure.body;
    return { code: failure.code ?? 0, message: String(body?.message ?? error) };
  }
}

beforeAll(async () => {
  kubeConfig.loadFromFile(inject("kubeconfigPath"));
  customObjects = kubeConfig.makeApiClient(CustomObjectsApi);
  await ensureModelDeploymentCrd(kubeConfig);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } }).catch((error: { code?: number }) => {
    if (error.code !== 409) throw error;
  });
}, 120_000);

afterAll(async () => {
  await kubeConfig.makeApiClient(CoreV1Api).deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe("ModelDeployment admission by the real API server", () => {
  const samples = readdirSync(join(REPO_ROOT, "examples"))
    .filter((file) => file.endsWith(".yaml"))
    .flatMap((file) =>
      parseAllDocuments(readFileSync(join(REPO_ROOT, "examples", file), "utf8"))
        .map((doc) => doc.toJS() as { kind?: string; metadata: { name: string }; spec: unknown })
        .filter((doc) => doc?.kind === "ModelDeployment")
        .map((doc) => [file, doc] as const),
    );

  it("has samples to check", () => {
    expect(samples.length).toBeGreaterThanOrEqual(4);
  });

  it.each(samples)("accepts the sample %s", async (_file, doc) => {
    expect(await create(`sample-${doc.metadata.name}`, doc.spec)).toEqual({ code: 201, message: "" });
  });

  it("fills the schema's defaults in at admission", async () => {
    await create("defaults", valid);
    const stored = (await customObjects.getNamespacedCustomObject({
      group: API_GROUP, version: API_VERSION, namespace, plural: PLURAL, name: "defaults",
    })) as { spec: Record<string, any> };
    expect(stored.spec.engine).toEqual({ kind: "vllm" });
    expect(stored.spec.gpu).toEqual({ tensorParallelism: "auto", pipelineParallelism: "auto", memoryUtilization: 0.9 });
    expect(stored.spec.replicas).toBe(1);
    expect(stored.spec.autoscaling.scaleDownStabilizationSeconds).toBe(300);
    expect(stored.spec.serving).toEqual({ port: 8000, terminationGracePeriodSeconds: 120 });
    expect(stored.spec.model.quantization).toBe("none");
  });

  // [case, spec, message the API server must give, HTTP status (422 Invalid unless said: strict field validation answers 400)]
  const malformed: Array<[string, unknown, string, number?]> = [
    ["no model source", withSpec((s) => (s.model.source = {})), "set exactly one model source: huggingFace, pvc or uri"],
    ["two model sources", withSpec((s) => (s.model.source.uri = "s3://bucket/model")), "set exactly one model source"],
    ["minReplicas above maxReplicas", withSpec((s) => (s.autoscaling = { enabled: true, minReplicas: 5, maxReplicas: 2 })), "autoscaling.minReplicas must not exceed maxReplicas"],
    ["tensor parallelism not a power of two", withSpec((s) => (s.gpu = { tensorParallelism: 3 })), "tensorParallelism must be 'auto' or a power of two from 1 to 64"],
    ["tensor parallelism an unknown word", withSpec((s) => (s.gpu = { tensorParallelism: "max" })), "tensorParallelism must be 'auto' or a power of two"],
    ["memory utilization above 1", withSpec((s) => (s.gpu = { memoryUtilization: 1.5 })), "spec.gpu.memoryUtilization: Invalid value: 1.5: spec.gpu.memoryUtilization in body should be less than or equal to 1"],
    ["memory utilization of 0", withSpec((s) => (s.gpu = { memoryUtilization: 0 })), "spec.gpu.memoryUtilization in body should be greater than 0"],
    ["KV-cache target of 0", withSpec((s) => (s.autoscaling = { kvCacheUtilizationTarget: 0 })), "spec.autoscaling.kvCacheUtilizationTarget in body should be greater than 0"],
    ["TTFT objective of 0 s", withSpec((s) => (s.autoscaling = { ttftTargetSeconds: 0 })), "spec.autoscaling.ttftTargetSeconds in body should be greater than 0"],
    ["token throughput target above 1", withSpec((s) => (s.autoscaling = { tokenThroughputUtilizationTarget: 1.2 })), "spec.autoscaling.tokenThroughputUtilizationTarget in body should be less than or equal to 1"],
    ["unknown quantization", withSpec((s) => (s.model.quantization = "fp4")), 'spec.model.quantization: Unsupported value: "fp4"'],
    ["unknown engine", withSpec((s) => (s.engine = { kind: "tgi" })), 'spec.engine.kind: Unsupported value: "tgi"'],
    ["engine args overriding a managed flag", withSpec((s) => (s.engine = { args: ["--tensor-parallel-size=4"] })), "engine.args must not set flags the operator manages"],
    ["Hugging Face repo without organization", withSpec((s) => (s.model.source.huggingFace.repo = "llama")), "spec.model.source.huggingFace.repo in body should match"],
    ["uri with an unsupported scheme", withSpec((s) => (s.model.source = { uri: "http://example.invalid/model" })), "spec.model.source.uri in body should match"],
    ["relative PVC path", withSpec((s) => (s.model.source = { pvc: { claimName: "models", path: "llama" } })), "spec.model.source.pvc.path in body should match '^/'"],
    ["architecture with more KV heads than attention heads", withSpec((s) => (s.model.architecture = { parameters: 7, layers: 32, hiddenSize: 4096, attentionHeads: 32, kvHeads: 64, maxContextLength: 8192 })), "kvHeads cannot exceed attentionHeads"],
    ["attention heads not a multiple of KV heads", withSpec((s) => (s.model.architecture = { parameters: 7, layers: 32, hiddenSize: 4096, attentionHeads: 32, kvHeads: 6, maxContextLength: 8192 })), "attentionHeads must be a multiple of kvHeads"],
    ["scale to zero without an idle time", withSpec((s) => (s.autoscaling = { minReplicas: 0 })), "autoscaling.minReplicas 0 needs scaleToZeroIdleSeconds"],
    ["AWQ on TensorRT-LLM", withSpec((s) => { s.model.quantization = "awq"; s.engine = { kind: "tensorrt-llm" }; }), "tensorrt-llm takes fp8, int8 or int4 quantization"],
    ["privileged serving port", withSpec((s) => (s.serving = { port: 80 })), "spec.serving.port in body should be greater than or equal to 1024"],
    ["context longer than the architecture supports", withSpec((s) => { s.model.architecture = { parameters: 7, layers: 32, hiddenSize: 4096, attentionHeads: 32, kvHeads: 8, maxContextLength: 8192 }; s.model.maxContextLength = 32768; }), "model.maxContextLength exceeds the context the architecture supports"],
    ["missing served model name", withSpec((s) => delete s.model.name), "spec.model.name: Required value"],
    ["unknown field (a typo)", withSpec((s) => (s.gpu = { tensorParalelism: 2 })), 'unknown field "spec.gpu.tensorParalelism"', 400],
    ["negative replicas", withSpec((s) => (s.replicas = -1)), "spec.replicas in body should be greater than or equal to 0"],
    // LoRA adapters: names and sources are tenant input (operator/api/modeldeployment.ts).
    ["an adapter name with a newline", withSpec((s) => (s.adapters = [{ name: "sql\nx", source: { huggingFace: { repo: "org/sql" } } }])), "spec.adapters[0].name in body should match"],
    ["an adapter with two sources", withSpec((s) => (s.adapters = [{ name: "sql", source: { huggingFace: { repo: "org/sql" }, path: "/models/sql" } }])), "set exactly one adapter source: huggingFace, path or url"],
    // URL adapters: https only, a plain host and path, bounded.
    ["an adapter URL over plain http", withSpec((s) => (s.adapters = [{ name: "sql", source: { url: { baseUrl: "http://adapters.example.com/sql" } } }])), "spec.adapters[0].source.url.baseUrl in body should match"],
    ["an adapter URL with a query", withSpec((s) => (s.adapters = [{ name: "sql", source: { url: { baseUrl: "https://adapters.example.com/sql?x=$(id)" } } }])), "spec.adapters[0].source.url.baseUrl in body should match"],
    ["an adapter URL with user info", withSpec((s) => (s.adapters = [{ name: "sql", source: { url: { baseUrl: "https://user:pw@adapters.example.com/sql" } } }])), "spec.adapters[0].source.url.baseUrl in body should match"],
    ["an adapter URL climbing out", withSpec((s) => (s.adapters = [{ name: "sql", source: { url: { baseUrl: "https://adapters.example.com/a/../b" } } }])), "adapter url must not contain '..'"],
    ["an adapter URL bound above 16 GiB", withSpec((s) => (s.adapters = [{ name: "sql", source: { url: { baseUrl: "https://adapters.example.com/sql", maxBytes: 17179869185 } } }])), "spec.adapters[0].source.url.maxBytes: Invalid value"],
    ["an adapter sha256 that is not hex", withSpec((s) => (s.adapters = [{ name: "sql", source: { url: { baseUrl: "https://adapters.example.com/sql", sha256: "xyz" } } }])), "spec.adapters[0].source.url.sha256 in body should match"],
    ["an adapter with a URL and a path", withSpec((s) => (s.adapters = [{ name: "sql", source: { url: { baseUrl: "https://adapters.example.com/sql" }, path: "/models/sql" } }])), "set exactly one adapter source: huggingFace, path or url"],
    ["an adapter path climbing out", withSpec((s) => (s.adapters = [{ name: "sql", source: { path: "/models/../etc" } }])), "adapter path must not contain '..'"],
    ["an adapter rank above lora.maxRank", withSpec((s) => { s.lora = { maxRank: 16 }; s.adapters = [{ name: "sql", source: { huggingFace: { repo: "org/sql" } }, rank: 32 }]; }), "an adapter's rank exceeds lora.maxRank"],
    ["an adapter named like the model", withSpec((s) => (s.adapters = [{ name: s.model.name, source: { huggingFace: { repo: "org/sql" } } }])), "an adapter cannot take the model's own name"],
    ["adapters on TensorRT-LLM", withSpec((s) => { s.engine = { kind: "tensorrt-llm" }; s.adapters = [{ name: "sql", source: { huggingFace: { repo: "org/sql" } } }]; }), "LoRA adapters are served by engine vllm only"],
    ["a max-lora-rank vLLM does not take", withSpec((s) => (s.lora = { maxRank: 48 })), 'spec.lora.maxRank: Unsupported value: 48'],
    ["LoRA flags in engine args", withSpec((s) => (s.engine = { args: ["--max-loras=64"] })), "engine.args must not set flags the operator manages"],
    // Managed engine flags smuggled in other spellings (operator/api/engine-args.ts; render refuses the same).
    ["engine args with an underscore spelling", withSpec((s) => (s.engine = { args: ["--tensor_parallel_size=4"] })), "engine.args must not set flags the operator manages"],
    ["engine args with the -tp alias", withSpec((s) => (s.engine = { args: ["-tp=4"] })), "engine.args must not set flags the operator manages"],
    ["engine args with a prefix abbreviation", withSpec((s) => (s.engine = { args: ["--tensor-parallel=4"] })), "engine.args must not set flags the operator manages"],
    ["engine args with a --config file", withSpec((s) => (s.engine = { args: ["--config=/etc/flags.yaml"] })), "engine.args must not set flags the operator manages"],
    ["engine args with a bare positional model", withSpec((s) => (s.engine = { args: ["--enforce-eager", "evil/model"] })), "never a positional argument"],
    ["engine args with a mixed spelling", withSpec((s) => (s.engine = { args: ["--max_model-len=1"] })), "engine.args must not set flags the operator manages"],
    ["priority scheduling on SGLang", withSpec((s) => (s.engine = { kind: "sglang", schedulingPolicy: "priority" })), "priority scheduling (engine.schedulingPolicy: priority) is served by engine vllm only"],
    ["an unknown scheduling policy", withSpec((s) => (s.engine = { schedulingPolicy: "lifo" })), 'spec.engine.schedulingPolicy: Unsupported value: "lifo"'],
    // Every string, list and map is bounded.
    ["a token Secret key over 253 characters", withSpec((s) => (s.model.source.huggingFace.tokenSecretRef = { name: "hf", key: "k".repeat(254) })), "spec.model.source.huggingFace.tokenSecretRef.key: Too long"],
    ["a ConfigMap config beside a huggingFace source", withSpec((s) => (s.model.source.configMap = { name: "cfg" })), "source.configMap is for pvc and uri sources"],
    ["a token Secret name that is no DNS name", withSpec((s) => (s.model.source.huggingFace.tokenSecretRef = { name: "HF_Token" })), "spec.model.source.huggingFace.tokenSecretRef.name in body should match"],
    ["an env name over 256 characters", withSpec((s) => (s.engine = { env: [{ name: "A".repeat(257), value: "1" }] })), "spec.engine.env[0].name: Too long"],
    ["an env value over 32 KiB", withSpec((s) => (s.engine = { env: [{ name: "A", value: "x".repeat(32769) }] })), "spec.engine.env[0].value: Too long"],
    ["an env valueFrom with two sources", withSpec((s) => (s.engine = { env: [{ name: "A", valueFrom: { fieldRef: { fieldPath: "metadata.name" }, secretKeyRef: { name: "s", key: "k" } } }] })), "valueFrom takes exactly one of"],
    ["an env valueFrom with an unknown source", withSpec((s) => (s.engine = { env: [{ name: "A", valueFrom: { fileKeyRef: { path: "/etc/passwd" } } }] })), 'unknown field "spec.engine.env[0].valueFrom.fileKeyRef"', 400],
    ["more than 65 env variables", withSpec((s) => (s.engine = { env: Array.from({ length: 65 }, (_, i) => ({ name: `V${i}`, value: "1" })) })), "spec.engine.env: Too many"],
    ["a toleration key over 316 characters", withSpec((s) => (s.placement = { tolerations: [{ key: "k".repeat(317), operator: "Exists" }] })), "spec.placement.tolerations[0].key: Too long"],
    ["a toleration value over 63 characters", withSpec((s) => (s.placement = { tolerations: [{ key: "k", value: "v".repeat(64) }] })), "spec.placement.tolerations[0].value: Too long"],
    ["negative tolerationSeconds", withSpec((s) => (s.placement = { tolerations: [{ key: "k", effect: "NoExecute", tolerationSeconds: -1 }] })), "spec.placement.tolerations[0].tolerationSeconds in body should be greater than or equal to 0"],
    ["more than 32 nodeSelector labels", withSpec((s) => (s.placement = { nodeSelector: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"])) })), "spec.placement.nodeSelector: Too many"],
    ["a nodeSelector key over 316 characters", withSpec((s) => (s.placement = { nodeSelector: { ["k".repeat(317)]: "v" } })), "nodeSelector keys are label keys, at most 316 characters"],
    ["a nodeSelector value over 63 characters", withSpec((s) => (s.placement = { nodeSelector: { zone: "v".repeat(64) } })), "Too long"],
    ["an affinity with 9 node selector terms", withSpec((s) => (s.placement = { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: Array.from({ length: 9 }, () => ({ matchExpressions: [{ key: "a", operator: "Exists" }] })) } } } })), "nodeSelectorTerms: Too many"],
    ["an affinity with an unknown field", withSpec((s) => (s.placement = { affinity: { nodeAffinity: {}, blob: "x".repeat(1000) } })), 'unknown field "spec.placement.affinity.blob"', 400],
  ];

  it.each([
    ["a name longer than a Service name (64 characters)", `m${"a".repeat(63)}`],
    ["a name with a dot, which a Service name cannot have", "llama-3.1-8b"],
    ["a name starting with a digit", "8b-llama"],
  ])("refuses %s at admission, not at render time", async (_title, name) => {
    const result = await create(name, valid);
    expect(result.code).toBe(422);
    expect(result.message).toContain("metadata.name must be a DNS-1035 label");
  });

  it("accepts an https adapter URL with a port, a bound and a sha256", async () => {
    const adapters = [{ name: "sql", source: { url: { baseUrl: "https://adapters.example.com:8443/llama/sql-v2", maxBytes: 2147483648, sha256: "a".repeat(64) } } }];
    expect(await create("url-adapter", withSpec((s) => (s.adapters = adapters)))).toEqual({ code: 201, message: "" });
  });

  it("accepts engine args written as flags with their values after '='", async () => {
    expect(await create("good-args", withSpec((s) => (s.engine = { args: ["--enable-prefix-caching", "--max-num-seqs=128", "--port-range-start=9000"] })))).toEqual({ code: 201, message: "" });
  });

  it("accepts priority scheduling on vLLM", async () => {
    expect(await create("priority-scheduling", withSpec((s) => (s.engine = { kind: "vllm", schedulingPolicy: "priority" })))).toEqual({ code: 201, message: "" });
  });

  it.each(malformed)("refuses %s", async (title, spec, expected, status = 422) => {
    const result = await create(`bad-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-").slice(0, 40).replace(/-$/, "")}`, spec);
    expect(result.code).toBe(status);
    expect(result.message).toContain(expected);
  });
});
