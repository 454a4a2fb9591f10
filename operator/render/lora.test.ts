import { describe, expect, it } from "vitest";
import { findModel } from "../planner/models.js";
import { loraBufferBytes } from "../planner/lora.js";
import { engineContainerOf, llama8b, plan } from "./fixtures.js";
import { ANNOTATIONS, renderSpillDeployment, renderWorkload, templateHashWithoutAdapters } from "./index.js";
import { ADAPTER_FETCH_CONTAINER, ADAPTER_FETCH_SCRIPT, LORA_RUNTIME_ENV, loraModulesOf, startModulesInArgs } from "./lora.js";

const adapters = [
  { name: "sql", source: { huggingFace: { repo: "org/llama-sql-lora" } }, rank: 16 },
  { name: "chat-de", source: { path: "/models/adapters/de" }, rank: 8 },
];

describe("LoRA adapters in the vLLM pod template", () => {
  it("enables LoRA with the slot limits, lists the adapters to load at start and allows runtime updates", () => {
    const md = llama8b({ adapters, lora: { maxLoras: 2, maxRank: 32 } });
    const container = engineContainerOf(renderWorkload({ modelDeployment: md, plan: plan() }).deployment);
    const args = container.args ?? [];
    expect(args.slice(args.indexOf("--enable-lora"), args.indexOf("--enable-lora") + 8)).toEqual([
      "--enable-lora",
      "--max-loras",
      "2",
      "--max-lora-rank",
      "32",
      "--lora-modules",
      "sql=org/llama-sql-lora",
      "chat-de=/models/adapters/de",
    ]);
    expect(container.env).toContainEqual({ name: LORA_RUNTIME_ENV, value: "True" });
    expect(startModulesInArgs(args)).toEqual([
      { name: "sql", path: "org/llama-sql-lora" },
      { name: "chat-de", path: "/models/adapters/de" },
    ]);
  });

  it("renders no LoRA flag, env or annotation without adapters or a lora block", () => {
    const deployment = renderWorkload({ modelDeployment: llama8b(), plan: plan() }).deployment;
    const container = engineContainerOf(deployment);
    expect(container.args).not.toContain("--enable-lora");
    expect(container.env?.some((e) => e.name === LORA_RUNTIME_ENV) ?? false).toBe(false);
    expect(deployment.metadata?.annotations).toBeUndefined();
  });

  it("keeps LoRA on with a lora block and no adapters, so removing the last adapter does not restart", () => {
    const args = engineContainerOf(renderWorkload({ modelDeployment: llama8b({ lora: { maxLoras: 4, maxRank: 64 } }), plan: plan() }).deployment).args ?? [];
    expect(args).toContain("--enable-lora");
    expect(args).not.toContain("--lora-modules");
  });

  it("gives templates that differ only in their start adapters the same adapter-free hash, and others not", () => {
    const one = renderWorkload({ modelDeployment: llama8b({ adapters }), plan: plan() }).deployment;
    const other = renderWorkload({ modelDeployment: llama8b({ adapters: adapters.slice(0, 1) }), plan: plan() }).deployment;
    const bigger = renderWorkload({ modelDeployment: llama8b({ adapters }), plan: plan({ kvCacheTokensPerReplica: 1 }) }).deployment;
    const hash = (d: typeof one) => d.metadata?.annotations?.[ANNOTATIONS.templateWithoutAdapters];
    expect(hash(one)).toBe(templateHashWithoutAdapters(one.spec?.template));
    expect(hash(one)).toBe(hash(other));
    expect(hash(one)).not.toBe(hash(bigger));
    expect(engineContainerOf(one).args).not.toEqual(engineContainerOf(other).args);
  });

  it("renders the given start adapters instead of the spec's when asked (the running template's list)", () => {
    const args = engineContainerOf(
      renderWorkload({ modelDeployment: llama8b({ adapters }), plan: plan(), loraModules: [{ name: "old", path: "org/old" }] }).deployment,
    ).args;
    expect(startModulesInArgs(args)).toEqual([{ name: "old", path: "org/old" }]);
  });
});

describe("spill-over Deployment", () => {
  it("is named and selected apart, with its own product's plan, and owned by the ModelDeployment's uid", () => {
    const md = llama8b();
    const deployment = renderSpillDeployment({
      modelDeployment: md,
      plan: plan({ gpuProduct: "NVIDIA-A100-SXM4-80GB", kvCacheTokensPerReplica: 300_000 }),
      variant: { name: "llama-3-1-8b-nvidia-a100-sxm4-80gb", slot: "nvidia-a100-sxm4-80gb", replicas: 2 },
    });
    expect(deployment.metadata?.name).toBe("llama-3-1-8b-nvidia-a100-sxm4-80gb");
    expect(deployment.metadata?.ownerReferences?.[0]).toMatchObject({ uid: md.metadata.uid, controller: true });
    expect(deployment.spec?.replicas).toBe(2);
    expect(deployment.spec?.selector.matchLabels).toEqual({
      "gpufleet.io/model-deployment": "llama-3-1-8b",
      "gpufleet.io/workload-slot": "nvidia-a100-sxm4-80gb",
    });
    expect(deployment.spec?.template.metadata?.labels?.["gpufleet.io/workload-slot"]).toBe("nvidia-a100-sxm4-80gb");
    expect(deployment.spec?.template.metadata?.annotations?.["gpufleet.io/kv-cache-tokens"]).toBe("300000");
    const affinity = JSON.stringify(deployment.spec?.template.spec?.affinity);
    expect(affinity).toContain("NVIDIA-A100-SXM4-80GB");
  });
});

describe("LoRA slot memory (planner)", () => {
  it("sizes Llama 3.1 8B's slots from its layer widths, linear in slots and rank", () => {
    const model = findModel("llama-3.1-8b")!;
    // 32 layers x (4096+6144 + 4096+4096 + 4096+28672 + 14336+4096) x 64 x 1 x 2 bytes
    expect(loraBufferBytes(model, 1, 64)).toBe(32 * 69632 * 64 * 2);
    expect(loraBufferBytes(model, 4, 64)).toBe(4 * loraBufferBytes(model, 1, 64));
    expect(loraBufferBytes(model, 1, 128)).toBe(2 * loraBufferBytes(model, 1, 64));
  });
});

describe("LoRA slots in the plan", () => {
  it("take their memory from the KV cache of each replica", async () => {
    const { sizeOnPool } = await import("../controller/sizing.js");
    const model = findModel("llama-3.1-8b")!;
    const pool = { gpuProduct: "NVIDIA-H100-80GB-HBM3", gpusPerNode: 8, nodeNames: ["n"], totalGpus: 8, poolNames: [], regions: [] };
    const without = sizeOnPool(llama8b(), model, pool);
    const withSlots = sizeOnPool(llama8b({ lora: { maxLoras: 8, maxRank: 64 } }), model, pool);
    if (!without.fits || !withSlots.fits) throw new Error("expected both to fit");
    const bytesPerToken = 2 * 32 * 8 * 128 * 2; // K and V, 32 layers, 8 KV heads, head dim 128, bf16
    const lost = without.plan.kvCacheTokensPerReplica - withSlots.plan.kvCacheTokensPerReplica;
    const expected = loraBufferBytes(model, 8, 64) / bytesPerToken;
    expect(lost).toBeGreaterThan(expected - 16);
    expect(lost).toBeLessThan(expected + 32);
  });
});

describe("URL adapters: downloaded into the pod before the engine starts", () => {
  const url = (name: string, extra: object = {}) => ({
    name,
    source: { url: { baseUrl: `https://adapters.example.com/llama/${name}`, maxBytes: 1_073_741_824, ...extra } },
    rank: 16,
  });

  it("adds an init container of the engine's image that fetches each URL adapter into a bounded emptyDir the engine mounts read-only", () => {
    const sha256 = "a".repeat(64);
    const md = llama8b({ adapters: [url("sql", { sha256 }), adapters[1]!] });
    const deployment = renderWorkload({ modelDeployment: md, plan: plan() }).deployment;
    const pod = deployment.spec!.template.spec!;
    const engine = engineContainerOf(deployment);
    expect(pod.initContainers).toHaveLength(1);
    const fetcher = pod.initContainers![0]!;
    expect(fetcher).toMatchObject({
      name: ADAPTER_FETCH_CONTAINER,
      image: engine.image,
      securityContext: engine.securityContext,
      volumeMounts: [{ name: "lora-adapters", mountPath: "/adapters" }],
    });
    expect(fetcher.command?.slice(0, 3)).toEqual(["python3", "-c", ADAPTER_FETCH_SCRIPT]);
    expect(JSON.parse(fetcher.command![3]!)).toEqual([{ name: "sql", baseUrl: "https://adapters.example.com/llama/sql", maxBytes: 1_073_741_824, sha256 }]);
    expect(fetcher.command![4]).toBe("/adapters");
    // Sized for the adapter's bound and its config (1 GiB + 1 MiB) plus 16 MiB.
    expect(pod.volumes).toContainEqual({ name: "lora-adapters", emptyDir: { sizeLimit: `${1024 + 1 + 16}Mi` } });
    expect(engine.volumeMounts).toContainEqual({ name: "lora-adapters", mountPath: "/adapters", readOnly: true });
    const args = engine.args ?? [];
    expect(args).toContain("sql=/adapters/sql");
    expect(args).toContain("chat-de=/models/adapters/de");
  });

  it("adds nothing without URL adapters, and restarts the pods when the URL adapters change (the template changes beyond --lora-modules)", () => {
    const hubOnly = renderWorkload({ modelDeployment: llama8b({ adapters }), plan: plan() }).deployment;
    expect(hubOnly.spec?.template.spec?.initContainers).toBeUndefined();
    expect(hubOnly.spec?.template.spec?.volumes?.some((v) => v.name === "lora-adapters")).toBe(false);
    const one = renderWorkload({ modelDeployment: llama8b({ adapters: [url("sql")] }), plan: plan() }).deployment;
    const two = renderWorkload({ modelDeployment: llama8b({ adapters: [url("sql"), url("chat")] }), plan: plan() }).deployment;
    expect(two.metadata?.annotations?.[ANNOTATIONS.templateWithoutAdapters]).not.toBe(one.metadata?.annotations?.[ANNOTATIONS.templateWithoutAdapters]);
    // A Hub adapter added beside a URL adapter changes only --lora-modules: no restart.
    const plusHub = renderWorkload({ modelDeployment: llama8b({ adapters: [url("sql"), adapters[1]!] }), plan: plan() }).deployment;
    expect(plusHub.metadata?.annotations?.[ANNOTATIONS.templateWithoutAdapters]).toBe(one.metadata?.annotations?.[ANNOTATIONS.templateWithoutAdapters]);
  });

  it("marks URL adapters as loaded at start only (the syncer never loads them at runtime)", () => {
    expect(loraModulesOf({ adapters: [url("sql"), adapters[1]!] })).toEqual([
      { name: "sql", path: "/adapters/sql", startOnly: true },
      { name: "chat-de", path: "/models/adapters/de" },
    ]);
  });
});
