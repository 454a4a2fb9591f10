import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { modelFromHfConfig } from "../planner/hf-config.js";
import type { ModelConfigState } from "../hub/resolver.js";
import { resolveArchitecture, sizeOnPool, type ModelConfigLookup } from "./sizing.js";
import { modelDeployment } from "./testing.js";

function fixture(repo: string) {
  const file = new URL(`../planner/testdata/hf-configs/${repo.replace("/", "--")}.json`, import.meta.url);
  return modelFromHfConfig(JSON.parse(readFileSync(file, "utf8")), { repo });
}

const spec = (repo: string, extra: Record<string, unknown> = {}) => ({
  model: { name: "m", source: { huggingFace: { repo } }, ...extra },
  gpu: { products: ["NVIDIA-H100-80GB-HBM3"] },
});

const fixed =
  (state: ModelConfigState): ModelConfigLookup =>
  () =>
    state;

describe("resolveArchitecture: the model's own config first, then inline, then the catalogue", () => {
  it("sizes a model the catalogue never knew from its config.json", () => {
    const md = modelDeployment("oss", spec("openai/gpt-oss-120b"));
    const result = resolveArchitecture(
      md,
      fixed({
        state: "ready",
        model: fixture("openai/gpt-oss-120b"),
        source: "config.json of openai/gpt-oss-120b@main",
      }),
    );
    expect(result).toMatchObject({ known: true, source: "config.json of openai/gpt-oss-120b@main" });
  });

  it("passes repo, revision and the ModelDeployment's key to the lookup", () => {
    const seen: unknown[] = [];
    const md = modelDeployment("oss", spec("openai/gpt-oss-120b"));
    md.spec.model.source.huggingFace!.revision = "abc";
    resolveArchitecture(md, (...args) => {
      seen.push(args);
      return { state: "pending", message: "reading" };
    });
    expect(seen).toEqual([["openai/gpt-oss-120b", "abc", "team-a/oss"]]);
  });

  it("says the config is being read while nothing else knows the model", () => {
    const md = modelDeployment("oss", spec("openai/gpt-oss-120b"));
    expect(
      resolveArchitecture(
        md,
        fixed({ state: "pending", message: "reading config.json of openai/gpt-oss-120b@main from the Hub" }),
      ),
    ).toEqual({
      known: false,
      reason: "ModelConfigPending",
      message: "reading config.json of openai/gpt-oss-120b@main from the Hub",
    });
  });

  it("falls back to the catalogue while the Hub is down, so a known model keeps its plan", () => {
    const md = modelDeployment("llama", spec("meta-llama/Llama-3.1-8B-Instruct"));
    const down = fixed({
      state: "failed",
      reason: "ModelConfigUnavailable",
      message: "HTTP 503; retrying in 5 s (attempt 1)",
    });
    expect(resolveArchitecture(md, down)).toMatchObject({
      known: true,
      source: "catalogue entry llama-3.1-8b",
    });
  });

  it("reports the Hub's failure when nothing else knows the model", () => {
    const md = modelDeployment("oss", spec("openai/gpt-oss-120b"));
    const unauthorized = fixed({
      state: "failed",
      reason: "ModelConfigUnauthorized",
      message: "HTTP 401: the repository is private",
    });
    expect(resolveArchitecture(md, unauthorized)).toMatchObject({
      known: false,
      reason: "ModelConfigUnauthorized",
    });
  });

  it("uses the inline architecture as the last resort", () => {
    const md = modelDeployment(
      "custom",
      spec("acme/secret-model", {
        architecture: {
          parameters: 7,
          layers: 32,
          hiddenSize: 4096,
          attentionHeads: 32,
          kvHeads: 8,
          maxContextLength: 8192,
        },
      }),
    );
    const down = fixed({ state: "failed", reason: "ModelConfigUnavailable", message: "down" });
    expect(resolveArchitecture(md, down)).toMatchObject({ known: true, source: "spec.model.architecture" });
  });
});

describe("sizeOnPool reads the checkpoint's own quantization", () => {
  it("sizes gpt-oss-120b in MXFP4 (its checkpoint) when the spec says none: one H100", () => {
    const md = modelDeployment("oss", spec("openai/gpt-oss-120b", { maxContextLength: 32_768 }));
    const result = sizeOnPool(md, fixture("openai/gpt-oss-120b").model, {
      gpuProduct: "NVIDIA-H100-80GB-HBM3",
      gpusPerNode: 8,
      nodeNames: ["h100-0"],
      totalGpus: 8,
      poolNames: [],
      regions: [],
    });
    expect(result.fits && result.plan.gpusPerReplica).toBe(1);
    expect(result.fits && result.plan.weightsGiBPerReplica).toBeLessThan(62);
  });
});
