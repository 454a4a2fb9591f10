import { describe, expect, it } from "vitest";
import { argValue, engineContainerOf, llama8b, modelDeployment, plan } from "./fixtures.js";
import { ManagedEngineFlagError, RenderError, renderWorkload } from "./index.js";
import { SGLANG_DEFAULT_IMAGE, sglangKvCacheDtype } from "./sglang.js";

const sglang = (overrides: Record<string, unknown> = {}) =>
  llama8b({ engine: { kind: "sglang" }, ...overrides });

describe("SGLang rendering", () => {
  it("runs python -m sglang.launch_server with the plan's TP, context length and static memory fraction", () => {
    const deployment = renderWorkload({
      modelDeployment: sglang(),
      plan: plan({
        tensorParallelism: 2,
        gpusPerReplica: 2,
        maxContextLength: 32768,
        gpuMemoryUtilization: 0.88,
      }),
    }).deployment;
    const container = engineContainerOf(deployment);
    expect(container.image).toBe(SGLANG_DEFAULT_IMAGE);
    expect(container.command).toEqual(["python3", "-m", "sglang.launch_server"]);
    const args = container.args ?? [];
    expect(argValue(args, "--model-path")).toBe("meta-llama/Llama-3.1-8B-Instruct");
    expect(argValue(args, "--served-model-name")).toBe("llama-3.1-8b-instruct");
    expect(argValue(args, "--tp-size")).toBe("2");
    expect(argValue(args, "--context-length")).toBe("32768");
    expect(argValue(args, "--mem-fraction-static")).toBe("0.88");
    expect(argValue(args, "--port")).toBe("8000");
    expect(args).toContain("--enable-metrics");
    expect(container.resources?.limits?.["nvidia.com/gpu"]).toBe("2");
    // The gated model's token reaches the server as HF_TOKEN, from the tenant's Secret.
    expect(
      container.env?.some((e) => e.name === "HF_TOKEN" && e.valueFrom?.secretKeyRef?.name === "hf-token"),
    ).toBe(true);
  });

  it("probes /health and drains on SGLang's running and queued gauges at /metrics", () => {
    const deployment = renderWorkload({ modelDeployment: sglang(), plan: plan() }).deployment;
    const container = engineContainerOf(deployment);
    expect(container.readinessProbe?.httpGet?.path).toBe("/health");
    expect(deployment.spec?.template.metadata?.labels?.["inference.networking.k8s.io/engine-type"]).toBe(
      "sglang",
    );
    expect(deployment.spec?.template.metadata?.annotations?.["gpufleet.io/engine"]).toBe("sglang");
    const command = container.lifecycle?.preStop?.exec?.command ?? [];
    expect(command[3]).toBe("http://127.0.0.1:8000/metrics");
    expect(command[4]).toBe("sglang:num_running_reqs,sglang:num_queue_reqs");
  });

  it("passes online FP8, the FP8 KV cache and the revision in SGLang's spellings", () => {
    const md = sglang({
      model: {
        name: "qwen",
        source: { huggingFace: { repo: "Qwen/Qwen3-8B", revision: "abc123" } },
        quantization: "fp8",
        kvCacheDtype: "fp8",
      },
    });
    const args =
      engineContainerOf(renderWorkload({ modelDeployment: md, plan: plan() }).deployment).args ?? [];
    expect(argValue(args, "--revision")).toBe("abc123");
    expect(argValue(args, "--quantization")).toBe("fp8");
    expect(argValue(args, "--kv-cache-dtype")).toBe("fp8_e4m3");
    expect(sglangKvCacheDtype("bf16")).toBeUndefined();
  });

  it("refuses engine args that would override a managed flag, in any spelling", () => {
    for (const flag of ["--tp", "--tp_size", "--mem-fraction-static=0.95", "--context_length"]) {
      expect(() =>
        renderWorkload({
          modelDeployment: sglang({ engine: { kind: "sglang", args: [flag, "4"] } }),
          plan: plan(),
        }),
      ).toThrow(ManagedEngineFlagError);
    }
    expect(() =>
      renderWorkload({
        modelDeployment: sglang({ engine: { kind: "sglang", args: ["--enable-torch-compile"] } }),
        plan: plan(),
      }),
    ).not.toThrow();
  });

  it("refuses an object-store source (SGLang does not stream from s3/gs)", () => {
    const md = modelDeployment({
      model: { name: "m", source: { uri: "s3://bucket/model" } },
      engine: { kind: "sglang" },
    });
    expect(() => renderWorkload({ modelDeployment: md, plan: plan() })).toThrow(RenderError);
  });
});
