import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { KV_CACHE_DTYPES } from "../api/modeldeployment.js";
import { engineContainerOf, llama8b, modelDeployment, plan } from "./fixtures.js";
import { ManagedEngineFlagError, renderWorkload } from "./index.js";
import { TRTLLM_OPTIONS_PATH, trtllmCommand, trtllmKvCacheDtype, trtllmLlmApiOptions } from "./trtllm.js";

const trtllm = (overrides: Record<string, unknown> = {}) =>
  llama8b({ engine: { kind: "tensorrt-llm" }, ...overrides });
const seventyB = (
  modelOverrides: Record<string, unknown> = {},
  engineOverrides: Record<string, unknown> = {},
) =>
  modelDeployment(
    {
      model: {
        name: "llama-3.1-70b-instruct",
        source: {
          huggingFace: { repo: "nvidia/Llama-3.1-70B-Instruct-FP8", tokenSecretRef: { name: "hf-token" } },
        },
        quantization: "fp8",
        kvCacheDtype: "fp8",
        ...modelOverrides,
      },
      engine: { kind: "tensorrt-llm", ...engineOverrides },
    },
    { name: "llama-3-1-70b" },
  );
const seventyBPlan = plan({
  gpusPerReplica: 4,
  tensorParallelism: 4,
  maxContextLength: 32768,
  modelId: "llama-3.1-70b",
});

function container(md: ReturnType<typeof llama8b>, planOverride = plan()) {
  return engineContainerOf(renderWorkload({ modelDeployment: md, plan: planOverride }).deployment);
}

/** The options file the container's shell wrapper writes, read back from the rendered command. */
function optionsFileOf(command: readonly string[] | undefined): Record<string, unknown> {
  const script = command?.[2] ?? "";
  const body = /<<'GPUFLEET_EOF'\n([\s\S]*?)GPUFLEET_EOF\n/.exec(script)?.[1];
  if (body === undefined) throw new Error(`no options heredoc in ${script}`);
  return parse(body) as Record<string, unknown>;
}

describe("trtllm-serve arguments", () => {
  it("runs trtllm-serve on the model with host, port, PyTorch backend, TP, max_seq_len and KV memory share", () => {
    const engine = container(seventyB(), seventyBPlan);
    expect(engine.args).toEqual([
      "nvidia/Llama-3.1-70B-Instruct-FP8",
      "--host",
      "0.0.0.0",
      "--port",
      "8000",
      "--backend",
      "pytorch",
      "--tp_size",
      "4",
      "--max_seq_len",
      "32768",
      "--kv_cache_free_gpu_memory_fraction",
      "0.9",
      "--extra_llm_api_options",
      TRTLLM_OPTIONS_PATH,
    ]);
  });

  it("passes --revision right after the model when the source pins one", () => {
    const args = container(
      seventyB({ source: { huggingFace: { repo: "nvidia/Llama-3.1-70B-Instruct-FP8", revision: "v1.0" } } }),
      seventyBPlan,
    ).args;
    expect(args?.slice(0, 3)).toEqual(["nvidia/Llama-3.1-70B-Instruct-FP8", "--revision", "v1.0"]);
  });

  it("loads a PVC model from its mount path", () => {
    const md = modelDeployment(
      {
        model: { name: "m", source: { pvc: { claimName: "weights", path: "/llama-70b-fp8/" } } },
        engine: { kind: "tensorrt-llm" },
      },
      { name: "m" },
    );
    expect(container(md).args?.[0]).toBe("/models/llama-70b-fp8");
  });

  it("appends the user's arguments after the operator's", () => {
    const args =
      container(seventyB({}, { args: ["--max_batch_size=64", "--trust_remote_code"] }), seventyBPlan)
        .args ?? [];
    expect(args.slice(-2)).toEqual(["--max_batch_size=64", "--trust_remote_code"]);
  });

  it("refuses object-store sources, which trtllm-serve cannot load, with a typed error", () => {
    const md = modelDeployment(
      { model: { name: "m", source: { uri: "s3://bucket/model" } }, engine: { kind: "tensorrt-llm" } },
      { name: "m" },
    );
    expect(() => renderWorkload({ modelDeployment: md, plan: plan() })).toThrowError(
      expect.objectContaining({ name: "RenderError", reason: "UnsupportedModelSource" }),
    );
  });
});

describe("trtllm-serve managed flags", () => {
  it("refuses user arguments that override the operator's flags, including click's second spellings", () => {
    const cases: [string, string][] = [
      ["--tp_size=2", "--tp_size"],
      ["--tensor_parallel_size", "--tp_size"],
      ["--max_seq_len", "--max_seq_len"],
      ["--free_gpu_memory_fraction", "--kv_cache_free_gpu_memory_fraction"],
      ["--kv_cache_free_gpu_memory_fraction=0.5", "--kv_cache_free_gpu_memory_fraction"],
      ["--config", "--extra_llm_api_options"],
      ["--extra_llm_api_options", "--extra_llm_api_options"],
      ["--backend", "--backend"],
      ["--port", "--port"],
      ["--tp=2", "--tp_size"],
      ["--extra-llm", "--extra_llm_api_options"],
      ["/models/other", "a positional argument (write flags with their value after '=')"],
    ];
    for (const [argument, managedFlag] of cases) {
      const render = () =>
        renderWorkload({ modelDeployment: seventyB({}, { args: [argument] }), plan: seventyBPlan });
      expect(render).toThrowError(ManagedEngineFlagError);
      expect(render).toThrowError(expect.objectContaining({ managedFlag, argument }));
    }
  });
});

describe("trtllm-serve metrics and KV cache through the options file", () => {
  it("enables the Prometheus endpoint and iteration stats, and carries the KV fraction and FP8 dtype", () => {
    expect(optionsFileOf(container(seventyB(), seventyBPlan).command)).toEqual({
      return_perf_metrics: true,
      enable_iter_perf_stats: true,
      kv_cache_config: { free_gpu_memory_fraction: 0.9, dtype: "fp8" },
    });
  });

  it("leaves the KV dtype to the model for auto and 16-bit, maps E4M3 to fp8 and refuses E5M2", () => {
    const dtypes = KV_CACHE_DTYPES.filter((dtype) => dtype !== "fp8_e5m2").map((dtype) => [
      dtype,
      trtllmKvCacheDtype(dtype),
    ]);
    expect(dtypes).toEqual([
      ["auto", undefined],
      ["fp16", undefined],
      ["bf16", undefined],
      ["fp8", "fp8"],
      ["fp8_e4m3", "fp8"],
    ]);
    expect(optionsFileOf(container(trtllm()).command)).toEqual({
      return_perf_metrics: true,
      enable_iter_perf_stats: true,
      kv_cache_config: { free_gpu_memory_fraction: 0.9 },
    });
    expect(() =>
      renderWorkload({ modelDeployment: seventyB({ kvCacheDtype: "fp8_e5m2" }), plan: seventyBPlan }),
    ).toThrowError(expect.objectContaining({ reason: "UnsupportedKvCacheDtype" }));
  });

  it("labels pods trtllm-serve for the inference gateway and drains on trtllm's gauges at /prometheus/metrics", () => {
    const deployment = renderWorkload({ modelDeployment: seventyB(), plan: seventyBPlan }).deployment;
    expect(deployment.spec?.template.metadata?.labels?.["inference.networking.k8s.io/engine-type"]).toBe(
      "trtllm-serve",
    );
    expect(deployment.spec?.template.metadata?.annotations?.["gpufleet.io/metrics-path"]).toBe(
      "/prometheus/metrics",
    );
    expect(deployment.spec?.template.metadata?.annotations?.["gpufleet.io/engine"]).toBe("tensorrt-llm");
    const preStop = engineContainerOf(deployment).lifecycle?.preStop?.exec?.command ?? [];
    expect(preStop[3]).toBe("http://127.0.0.1:8000/prometheus/metrics");
    expect(preStop[4]).toBe("trtllm_num_requests_running,trtllm_num_requests_waiting");
  });

  it("pins NVIDIA's TensorRT-LLM release image", () => {
    expect(container(trtllm()).image).toMatch(/^nvcr\.io\/nvidia\/tensorrt-llm\/release:\d+\.\d+\.\d+$/);
  });
});

describe("trtllm-serve shell wrapper", () => {
  const scratch = mkdtempSync(join(tmpdir(), "gpufleet-trtllm-"));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it("writes the options file and execs trtllm-serve with the container args unchanged", () => {
    // A stand-in trtllm-serve on PATH prints its arguments, one per line.
    const fakeServe = join(scratch, "trtllm-serve");
    writeFileSync(fakeServe, '#!/bin/sh\nfor argument in "$@"; do echo "$argument"; done\n');
    chmodSync(fakeServe, 0o755);
    const optionsPath = join(scratch, "config", "options.yaml");
    const options = trtllmLlmApiOptions(0.85, "fp8");
    const [shell, flag, script, zeroth] = trtllmCommand(options, optionsPath);
    const args = ["model with space", "--port", "8000", "$HOME", "--x=a b"];
    const output = execFileSync(shell ?? "", [flag ?? "", script ?? "", zeroth ?? "", ...args], {
      env: { PATH: `${scratch}:/usr/bin:/bin` },
      encoding: "utf8",
    });
    expect(output.split("\n").slice(0, -1)).toEqual(args);
    expect(readFileSync(optionsPath, "utf8")).toBe(options);
    expect(parse(options)).toEqual({
      return_perf_metrics: true,
      enable_iter_perf_stats: true,
      kv_cache_config: { free_gpu_memory_fraction: 0.85, dtype: "fp8" },
    });
  });
});
