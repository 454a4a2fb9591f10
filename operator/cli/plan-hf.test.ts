import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimHub, type SimHub } from "../../sim/hub/server.js";
import { runCli } from "./main.js";

let hub: SimHub;
beforeAll(async () => {
  hub = await startSimHub({
    indexTotals: new Map([["openai/gpt-oss-120b", 65_248_815_744]]),
    privateRepos: new Map([["Qwen/Qwen3-32B", "hf_test_token"]]),
  });
});
afterAll(async () => hub.close());

async function plan(argv: string[], env: NodeJS.ProcessEnv = { GPUFLEET_HF_ENDPOINT: hub.url }) {
  let stdout = "";
  let stderr = "";
  const exitCode = await runCli(["plan", ...argv], {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    env,
  });
  return { exitCode, stdout, stderr };
}

/** A constructed config (not a published file): DeepSeek-V3's plus a sparse-attention indexer field. */
function dsaConfigFile(): string {
  const dir = mkdtempSync(join(tmpdir(), "gpufleet-dsa-"));
  const base = JSON.parse(readFileSync(fixture("deepseek-ai--DeepSeek-V3"), "utf8")) as Record<string, unknown>;
  const file = join(dir, "config.json");
  writeFileSync(file, JSON.stringify({ ...base, index_topk: 2048 }));
  return file;
}

const fixture = (name: string) =>
  fileURLToPath(new URL(`../planner/testdata/hf-configs/${name}.json`, import.meta.url));

describe("gpufleet plan for any Hugging Face repo", () => {
  it("reads a repo the catalogue never knew from the Hub and sizes it at its own quantization", async () => {
    const result = await plan(["--model", "openai/gpt-oss-120b", "--gpu", "h100", "--max-context", "32768"]);
    expect(result.stderr).toBe("");
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain(`source: config.json of openai/gpt-oss-120b@main (${hub.url})`);
    expect(result.stdout).toMatch(/quantization\s+mxfp4/);
    expect(result.stdout).toMatch(/tensor parallelism\s+1/);
    // 65,248,815,744 bytes from the index: 60.77 GiB.
    expect(result.stdout).toContain("60.77 GiB total");
  });

  it("sizes offline from a local config.json with --config", async () => {
    const result = await plan(
      ["--model", "nvidia/Qwen3-30B-A3B-NVFP4", "--config", fixture("nvidia--Qwen3-30B-A3B-NVFP4"), "--gpu", "l40s"],
      {},
    );
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain(`source: ${fixture("nvidia--Qwen3-30B-A3B-NVFP4")}`);
    expect(result.stdout).toMatch(/quantization\s+nvfp4/);
    expect(hub.requests.some((r) => r.includes("Qwen3-30B-A3B-NVFP4"))).toBe(false);
  });

  it("names the field of a config it cannot read", async () => {
    const result = await plan(
      ["--model", "example/dsa-indexer", "--config", dsaConfigFile(), "--gpu", "h200"],
      {},
    );
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/config.json field index_topk/);
  });

  it("uses HF_TOKEN for a private repo and says what is wrong without it", async () => {
    const denied = await plan(["--model", "Qwen/Qwen3-32B", "--gpu", "h100"]);
    expect(denied.exitCode).toBe(1);
    expect(denied.stderr).toMatch(/HTTP 401: the repository is private or gated and no token was given/);
    const allowed = await plan(["--model", "Qwen/Qwen3-32B", "--gpu", "h100"], {
      GPUFLEET_HF_ENDPOINT: hub.url,
      HF_TOKEN: "hf_test_token",
    });
    expect(allowed.exitCode).toBe(0);
  });

  it("keeps answering catalogue models without the Hub", async () => {
    const result = await plan(["--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "h100"], {
      GPUFLEET_HF_ENDPOINT: "http://127.0.0.1:9",
    });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).not.toContain("source:");
  });
});
