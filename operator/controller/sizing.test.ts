import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { modelFromHfConfig } from "../planner/hf-config.js";
import type { ModelConfigState } from "../hub/resolver.js";
import { resolveArchitecture, sizeOnPool, type ModelConfigLookup, type TenantValues } from "./sizing.js";
import type { TenantValueState } from "../hub/tenant-objects.js";
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
    expect(seen).toEqual([["openai/gpt-oss-120b", "abc", "team-a/oss", undefined]]);
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

function tenant(values: Record<string, TenantValueState>, readTokens = true, seen: string[] = []): TenantValues {
  return {
    readTokens,
    lookup: (kind, namespace, name, key) => {
      seen.push(`${kind} ${namespace}/${name}/${key}`);
      return values[`${kind} ${namespace}/${name}/${key}`] ?? { state: "failed", problem: "NotFound", message: `${kind} ${namespace}/${name} not found` };
    },
  };
}

const pvcSpec = (configMap?: { name: string; key: string }) => ({
  model: { name: "m", source: { pvc: { claimName: "weights", path: "/models/custom" }, ...(configMap ? { configMap } : {}) } },
  gpu: { products: ["NVIDIA-H100-80GB-HBM3"] },
});

describe("a pvc or uri model's config.json from a ConfigMap", () => {
  const qwen = readFileSync(new URL("../planner/testdata/hf-configs/Qwen--Qwen3-8B.json", import.meta.url), "utf8");
  const ready = (value: string): TenantValueState => ({ state: "ready", value, fingerprint: String(value.length) + value.slice(0, 8) });

  it("sizes the model from the ConfigMap in its own namespace", () => {
    const seen: string[] = [];
    const md = modelDeployment("custom", pvcSpec({ name: "custom-config", key: "config.json" }));
    const result = resolveArchitecture(md, undefined, tenant({ "ConfigMap team-a/custom-config/config.json": ready(qwen) }, false, seen));
    expect(result).toMatchObject({ known: true, source: "config.json from ConfigMap team-a/custom-config key config.json" });
    if (result.known) expect(result.model.layers).toBe(36);
    expect(seen).toEqual(["ConfigMap team-a/custom-config/config.json"]);
  });

  it("says the ConfigMap or its key is missing, naming it", () => {
    const md = modelDeployment("custom", pvcSpec({ name: "nope", key: "config.json" }));
    expect(resolveArchitecture(md, undefined, tenant({}))).toEqual({
      known: false,
      reason: "ModelConfigNotFound",
      message: "ConfigMap team-a/nope not found",
    });
  });

  it("refuses an oversized, non-JSON or unreadable config with ModelConfigInvalid", () => {
    const md = modelDeployment("custom", pvcSpec({ name: "c", key: "config.json" }));
    const tooLarge = tenant({
      "ConfigMap team-a/c/config.json": { state: "failed", problem: "TooLarge", message: "ConfigMap team-a/c key config.json is larger than 262144 bytes" },
    });
    expect(resolveArchitecture(md, undefined, tooLarge)).toMatchObject({ known: false, reason: "ModelConfigInvalid" });
    expect(resolveArchitecture(md, undefined, tenant({ "ConfigMap team-a/c/config.json": ready("{not json") }))).toEqual({
      known: false,
      reason: "ModelConfigInvalid",
      message: "ConfigMap team-a/c key config.json: is not JSON",
    });
    const broken = JSON.stringify({ ...(JSON.parse(qwen) as object), num_hidden_layers: "many" });
    expect(resolveArchitecture(md, undefined, tenant({ "ConfigMap team-a/c/config.json": ready(broken) }))).toMatchObject({
      known: false,
      reason: "ModelConfigInvalid",
      message: expect.stringMatching(/ConfigMap team-a\/c key config.json: .*num_hidden_layers/),
    });
  });

  it("still takes the inline architecture when the ConfigMap cannot be read", () => {
    const md = modelDeployment("custom", {
      ...pvcSpec({ name: "nope", key: "config.json" }),
      model: {
        ...pvcSpec({ name: "nope", key: "config.json" }).model,
        architecture: { parameters: 8, layers: 32, hiddenSize: 4096, attentionHeads: 32, kvHeads: 8, maxContextLength: 8192 },
      },
    });
    expect(resolveArchitecture(md, undefined, tenant({}))).toMatchObject({ known: true, source: "spec.model.architecture" });
  });
});

describe("a tenant's token Secret for a private Hub repo", () => {
  const withToken = () => {
    const md = modelDeployment("private", spec("Qwen/Qwen3-32B"));
    md.spec.model.source.huggingFace!.tokenSecretRef = { name: "hf", key: "token" };
    return md;
  };

  it("is read only when the operator is allowed to, and the Hub lookup carries its fingerprint", () => {
    const lookups: unknown[] = [];
    const hub: ModelConfigLookup = (...args) => {
      lookups.push(args);
      return { state: "pending", message: "reading" };
    };
    const secret: TenantValueState = { state: "ready", value: "hf_abc", fingerprint: "f00d" };
    resolveArchitecture(withToken(), hub, tenant({ "Secret team-a/hf/token": secret }));
    expect(lookups).toEqual([["Qwen/Qwen3-32B", undefined, "team-a/private", { fingerprint: "f00d", token: "hf_abc" }]]);
    const seen: string[] = [];
    resolveArchitecture(withToken(), hub, tenant({ "Secret team-a/hf/token": secret }, false, seen));
    expect(seen).toEqual([]);
    expect(lookups[1]).toEqual(["Qwen/Qwen3-32B", undefined, "team-a/private", undefined]);
  });

  it("says when the Secret cannot be read, without its value, and how to grant it", () => {
    const forbidden = tenant({
      "Secret team-a/hf/token": { state: "failed", problem: "Forbidden", message: "the operator may not read Secret team-a/hf (HTTP 403)" },
    });
    expect(resolveArchitecture(withToken(), fixed({ state: "pending", message: "x" }), forbidden)).toEqual({
      known: false,
      reason: "ModelConfigUnauthorized",
      message:
        "token Secret for Qwen/Qwen3-32B: the operator may not read Secret team-a/hf (HTTP 403); list this namespace in the chart's hub.tenantTokenNamespaces",
    });
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
