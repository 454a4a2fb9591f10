import { describe, expect, it } from "vitest";
import {
  KV_CACHE_DTYPES,
  QUANTIZATIONS,
  type KvCacheDtype,
  type Quantization,
} from "../api/modeldeployment.js";
import { argValue, engineContainerOf, llama8b, modelDeployment, plan } from "./fixtures.js";
import { ManagedEngineFlagError, RenderError, renderWorkload } from "./index.js";
import { normalizeVllmFlag, vllmKvCacheDtype, vllmQuantization } from "./vllm.js";

function vllmArgs(md: ReturnType<typeof llama8b>, overrides: Parameters<typeof plan>[0] = {}): string[] {
  return (
    engineContainerOf(renderWorkload({ modelDeployment: md, plan: plan(overrides) }).deployment).args ?? []
  );
}

describe("vLLM arguments", () => {
  it("derives model, name, parallelism, context, memory share, port and host, in a fixed order", () => {
    const md = llama8b({
      model: {
        name: "llama-3.1-8b-instruct",
        source: {
          huggingFace: {
            repo: "meta-llama/Llama-3.1-8B-Instruct",
            revision: "0e9e39f249a16976918f6564b8830bc894c89659",
          },
        },
      },
      serving: { port: 8080 },
    });
    expect(
      vllmArgs(md, {
        tensorParallelism: 2,
        gpusPerReplica: 2,
        maxContextLength: 32768,
        gpuMemoryUtilization: 0.92,
      }),
    ).toEqual([
      "--model",
      "meta-llama/Llama-3.1-8B-Instruct",
      "--revision",
      "0e9e39f249a16976918f6564b8830bc894c89659",
      "--served-model-name",
      "llama-3.1-8b-instruct",
      "--tensor-parallel-size",
      "2",
      "--max-model-len",
      "32768",
      "--gpu-memory-utilization",
      "0.92",
      "--port",
      "8080",
      "--host",
      "0.0.0.0",
    ]);
  });

  it("leaves out --revision when the source names none", () => {
    expect(vllmArgs(llama8b())).not.toContain("--revision");
  });

  it("appends the user's arguments after the operator's", () => {
    const args = vllmArgs(
      llama8b({ engine: { args: ["--enable-prefix-caching", "--max-num-seqs=128"] } }),
    );
    expect(args.slice(-2)).toEqual(["--enable-prefix-caching", "--max-num-seqs=128"]);
    expect(args.indexOf("--enable-prefix-caching")).toBeGreaterThan(args.indexOf("--host"));
  });

  it("runs the image's own entrypoint (the OpenAI server) rather than a command of ours", () => {
    expect(
      engineContainerOf(renderWorkload({ modelDeployment: llama8b(), plan: plan() }).deployment).command,
    ).toBeUndefined();
  });

  it("streams s3:// and gs:// models with the Run:ai streamer", () => {
    for (const uri of ["s3://models-bucket/mistralai/Mixtral-8x7B-Instruct-v0.1-AWQ", "gs://models/llama"]) {
      const md = modelDeployment({ model: { name: "m", source: { uri } } }, { name: "mixtral" });
      const args = vllmArgs(md);
      expect(argValue(args, "--model")).toBe(uri);
      expect(argValue(args, "--load-format")).toBe("runai_streamer");
    }
  });
});

describe("vLLM quantization and KV-cache dtype", () => {
  it("passes --quantization fp8 (online FP8) and leaves checkpoint-described schemes to vLLM's detection", () => {
    const expected: Record<Quantization, string | undefined> = {
      none: undefined,
      fp8: "fp8",
      awq: undefined,
      gptq: undefined,
      int8: undefined,
      int4: undefined,
    };
    for (const quantization of QUANTIZATIONS)
      expect(vllmQuantization(quantization)).toBe(expected[quantization]);
    expect(
      argValue(
        vllmArgs(llama8b({ model: { ...llama8b().spec.model, quantization: "fp8" } })),
        "--quantization",
      ),
    ).toBe("fp8");
    expect(vllmArgs(llama8b({ model: { ...llama8b().spec.model, quantization: "awq" } }))).not.toContain(
      "--quantization",
    );
  });

  it("maps KV-cache dtypes to vLLM's names and omits auto", () => {
    const expected: Record<KvCacheDtype, string | undefined> = {
      auto: undefined,
      fp16: "float16",
      bf16: "bfloat16",
      fp8: "fp8",
      fp8_e4m3: "fp8_e4m3",
      fp8_e5m2: "fp8_e5m2",
    };
    for (const dtype of KV_CACHE_DTYPES) expect(vllmKvCacheDtype(dtype)).toBe(expected[dtype]);
    expect(
      argValue(
        vllmArgs(llama8b({ model: { ...llama8b().spec.model, kvCacheDtype: "bf16" } })),
        "--kv-cache-dtype",
      ),
    ).toBe("bfloat16");
    expect(vllmArgs(llama8b())).not.toContain("--kv-cache-dtype");
  });
});

describe("vLLM managed flags", () => {
  const rendering =
    (args: string[], modelOverrides: Record<string, unknown> = {}) =>
    () =>
      renderWorkload({
        modelDeployment: llama8b({ engine: { args }, model: { ...llama8b().spec.model, ...modelOverrides } }),
        plan: plan(),
      });

  it("refuses user arguments that override a flag the operator derives, in any spelling", () => {
    const cases: [string[], string][] = [
      [["--tensor-parallel-size"], "--tensor-parallel-size"],
      [["--tensor-parallel-size=4"], "--tensor-parallel-size"],
      [["-tp=4"], "--tensor-parallel-size"],
      [["--max_model_len=100000"], "--max-model-len"],
      [["--gpu-memory-utilization=0.99"], "--gpu-memory-utilization"],
      [["--port=9999"], "--port"],
      [["--host=::"], "--host"],
      [["--model=other/model"], "--model"],
      [["--served-model-name=gpt-4"], "--served-model-name"],
    ];
    for (const [args, managedFlag] of cases) {
      const render = rendering(["--enable-prefix-caching", ...args]);
      expect(render).toThrowError(ManagedEngineFlagError);
      expect(render).toThrowError(
        expect.objectContaining({ reason: "ManagedEngineFlag", managedFlag, argument: args[0] }),
      );
    }
  });

  it("refuses overriding a conditional flag only when the operator set it", () => {
    expect(rendering(["--quantization=bitsandbytes"], { quantization: "fp8" })).toThrowError(
      expect.objectContaining({ managedFlag: "--quantization" }),
    );
    expect(rendering(["-q=bitsandbytes"], { quantization: "fp8" })).toThrowError(RenderError);
    expect(rendering(["--quantization=bitsandbytes"], { quantization: "none" })).not.toThrow();
    expect(rendering(["--kv-cache-dtype=fp8"], { kvCacheDtype: "fp8_e5m2" })).toThrowError(
      ManagedEngineFlagError,
    );
  });

  it("does not mistake values or unrelated flags for managed ones", () => {
    expect(rendering(["--port-range-start=9000", "--hostname-override=x"])).not.toThrow();
    expect(
      rendering(["--max-num-seqs=256", "--max-num-batched-tokens=8192", "--enable-chunked-prefill"]),
    ).not.toThrow();
  });

  it("refuses smuggled spellings: underscores, short aliases, prefix abbreviations, --config files, positionals", () => {
    const cases: [string, string][] = [
      ["--tensor_parallel_size=4", "--tensor-parallel-size"],
      ["-tp=4", "--tensor-parallel-size"],
      ["--tensor-parallel=4", "--tensor-parallel-size"],
      ["--tensor=4", "--tensor-parallel-size"],
      ["--served-model=gpt-4", "--served-model-name"],
      ["--max-model=99999", "--max-model-len"],
      ["--gpu_memory=0.99", "--gpu-memory-utilization"],
      ["--config=/tmp/flags.yaml", "--config"],
      ["--pipeline-parallel-size=2", "--pipeline-parallel-size"],
      ["-pp=2", "--pp"],
      ["other/model", "a positional argument (write flags with their value after '=')"],
      ["--", "the end of options ('-' or '--' alone)"],
    ];
    for (const [argument, managedFlag] of cases) {
      expect(rendering(["--enable-prefix-caching", argument]), argument).toThrowError(
        expect.objectContaining({ reason: "ManagedEngineFlag", managedFlag, argument }),
      );
    }
  });

  it("renders --scheduling-policy priority and the pod annotation the gateway reads when spec.engine.schedulingPolicy is priority, neither otherwise", () => {
    const prioritized = llama8b({ engine: { schedulingPolicy: "priority" } });
    const args = vllmArgs(prioritized);
    expect(args.slice(args.indexOf("--scheduling-policy"), args.indexOf("--scheduling-policy") + 2)).toEqual([
      "--scheduling-policy",
      "priority",
    ]);
    expect(args.indexOf("--scheduling-policy")).toBeLessThan(args.indexOf("--host"));
    const annotations = (md: ReturnType<typeof llama8b>) =>
      renderWorkload({ modelDeployment: md, plan: plan() }).deployment.spec?.template.metadata?.annotations ?? {};
    expect(annotations(prioritized)["gpufleet.io/scheduling-policy"]).toBe("priority");
    for (const md of [llama8b(), llama8b({ engine: { schedulingPolicy: "fcfs" } })]) {
      expect(vllmArgs(md)).not.toContain("--scheduling-policy");
      expect(annotations(md)).not.toHaveProperty("gpufleet.io/scheduling-policy");
    }
  });

  it("refuses --scheduling-policy in engine.args in any spelling, with or without the spec field: clients' own priorities would order the queue", () => {
    for (const argument of ["--scheduling-policy=priority", "--scheduling_policy=priority", "--scheduling=priority"])
      for (const md of [llama8b({ engine: { args: [argument] } }), llama8b({ engine: { args: [argument], schedulingPolicy: "priority" } })])
        expect(() => renderWorkload({ modelDeployment: md, plan: plan() }), argument).toThrowError(
          expect.objectContaining({ reason: "ManagedEngineFlag", managedFlag: "--scheduling-policy", argument }),
        );
  });

  it("compares flags in vLLM's canonical spelling", () => {
    expect(normalizeVllmFlag("--max_model_len")).toBe("--max-model-len");
    expect(normalizeVllmFlag("-tp")).toBe("--tensor-parallel-size");
    expect(normalizeVllmFlag("--enable-prefix-caching")).toBe("--enable-prefix-caching");
  });
});

describe("vLLM observability", () => {
  it("labels pods vllm for the inference gateway and drains on vLLM's running and waiting gauges at /metrics", () => {
    const deployment = renderWorkload({ modelDeployment: llama8b(), plan: plan() }).deployment;
    expect(deployment.spec?.template.metadata?.labels?.["inference.networking.k8s.io/engine-type"]).toBe(
      "vllm",
    );
    expect(deployment.spec?.template.metadata?.annotations?.["gpufleet.io/metrics-path"]).toBe("/metrics");
    const command = engineContainerOf(deployment).lifecycle?.preStop?.exec?.command ?? [];
    expect(command[3]).toBe("http://127.0.0.1:8000/metrics");
    expect(command[4]).toBe("vllm:num_requests_running,vllm:num_requests_waiting");
  });
});
