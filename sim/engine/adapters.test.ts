import { afterEach, describe, expect, it } from "vitest";
import type { V1Pod } from "@kubernetes/client-node";
import { parseExposition, samplesNamed } from "../../operator/metrics/exposition.js";
import { renderWorkload } from "../../operator/render/index.js";
import { llama8b, plan } from "../../operator/render/fixtures.js";
import { loraFromPod } from "./fleet.js";
import { type EngineServer, startEngineServer } from "./server.js";
import { SMALL_ENGINE } from "./testing.js";

const servers: EngineServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function engine(runtimeUpdates = true, maxLoras = 1): Promise<EngineServer> {
  const server = await startEngineServer({
    host: "127.0.0.1",
    port: 0,
    engine: "vllm",
    modelName: "base",
    params: SMALL_ENGINE,
    lora: { maxLoras, runtimeUpdates, modules: [{ name: "sql", path: "org/sql-lora" }], swapMs: 5 },
  });
  servers.push(server);
  return server;
}

const post = (server: EngineServer, path: string, body: unknown) =>
  fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

const complete = (server: EngineServer, model: string) =>
  post(server, "/v1/completions", { model, prompt: "hello", max_tokens: 2 });

async function metrics(server: EngineServer) {
  return parseExposition(await (await fetch(`${server.url}/metrics`)).text());
}

describe("simulated vLLM LoRA adapters", () => {
  it("serves start adapters by name, lists them under the base model and answers with the adapter's name", async () => {
    const server = await engine();
    const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string; parent?: string; root?: string }[] };
    expect(models.data.map((m) => [m.id, m.parent, m.root])).toEqual([
      ["base", undefined, undefined],
      ["sql", "base", "org/sql-lora"],
    ]);
    const answer = await complete(server, "sql");
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { model: string }).model).toBe("sql");
    expect((await complete(server, "nope")).status).toBe(404);
  });

  it("loads and unloads at runtime with vLLM's answers, and refuses what it must", async () => {
    const server = await engine();
    expect((await post(server, "/v1/load_lora_adapter", { lora_name: "chat", lora_path: "org/chat" })).status).toBe(200);
    expect((await complete(server, "chat")).status).toBe(200);
    expect((await post(server, "/v1/load_lora_adapter", { lora_name: "chat", lora_path: "org/chat" })).status).toBe(400);
    expect((await post(server, "/v1/load_lora_adapter", { lora_name: "Bad Name\n", lora_path: "x" })).status).toBe(400);
    expect((await post(server, "/v1/unload_lora_adapter", { lora_name: "chat" })).status).toBe(200);
    expect((await complete(server, "chat")).status).toBe(404);
    expect((await post(server, "/v1/unload_lora_adapter", { lora_name: "chat" })).status).toBe(404);
  });

  it("has no runtime routes without VLLM_ALLOW_RUNTIME_LORA_UPDATING", async () => {
    const server = await engine(false);
    expect((await post(server, "/v1/load_lora_adapter", { lora_name: "chat", lora_path: "org/chat" })).status).toBe(404);
  });

  it("exports vllm:lora_requests_info with vLLM's labels, per-adapter counts and slot swaps", async () => {
    const server = await engine(true, 1);
    await post(server, "/v1/load_lora_adapter", { lora_name: "chat", lora_path: "org/chat" });
    const before = await metrics(server);
    const info = samplesNamed(before, "vllm:lora_requests_info")[0];
    expect(info?.labels).toEqual({ max_lora: "1", running_lora_adapters: "", waiting_lora_adapters: "" });
    expect(info?.value).toBeGreaterThan(1.7e9);
    // One slot: alternating adapters swaps every time; the same adapter twice swaps once.
    for (const model of ["sql", "chat", "sql", "sql"]) expect((await complete(server, model)).status).toBe(200);
    expect(samplesNamed(await metrics(server), "gpufleet_sim:lora_swaps_total")[0]?.value).toBe(3);
    // A long request shows up as running for its adapter while it decodes.
    const long = post(server, "/v1/completions", { model: "chat", prompt: "x", max_tokens: 400 });
    let running: string | undefined;
    for (let i = 0; i < 50 && !running; i++) {
      const sample = samplesNamed(await metrics(server), "vllm:lora_requests_info")[0];
      if (sample?.labels.running_lora_adapters) running = sample.labels.running_lora_adapters;
      else await new Promise((r) => setTimeout(r, 10));
    }
    expect(running).toBe("chat");
    const counts = samplesNamed(await metrics(server), "gpufleet_sim:lora_requests");
    expect(counts.find((c) => c.labels.lora_name === "chat" && c.labels.state === "running")?.value).toBe(1);
    expect((await long).status).toBe(200);
  });

  it("reads the LoRA setup from the operator's rendered vLLM pod", () => {
    const md = llama8b({
      adapters: [{ name: "sql", source: { huggingFace: { repo: "org/sql-lora" } }, rank: 16 }],
      lora: { maxLoras: 3, maxRank: 16 },
    });
    const template = renderWorkload({ modelDeployment: md, plan: plan() }).deployment.spec!.template;
    expect(loraFromPod({ spec: template.spec } as V1Pod)).toEqual({
      maxLoras: 3,
      runtimeUpdates: true,
      modules: [{ name: "sql", path: "org/sql-lora" }],
    });
    expect(loraFromPod({ spec: renderWorkload({ modelDeployment: llama8b(), plan: plan() }).deployment.spec!.template.spec } as V1Pod)).toBeUndefined();
  });
});
