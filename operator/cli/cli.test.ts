import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { ModelDeployment } from "../api/modeldeployment.js";
import { EXIT_ERROR, EXIT_OK, EXIT_USAGE } from "./args.js";
import { cliVersion, runCli } from "./main.js";
import { formatStatusTable, summarizeModelDeployment, type ListModelDeployments } from "./status.js";

interface Captured {
  exitCode: number;
  stdout: string;
  stderr: string;
  listedNamespaces: Array<string | undefined>;
}

async function run(argv: string[], items: ModelDeployment[] | Error = []): Promise<Captured> {
  let stdout = "";
  let stderr = "";
  const listedNamespaces: Array<string | undefined> = [];
  const list: ListModelDeployments = async ({ namespace }) => {
    listedNamespaces.push(namespace);
    if (items instanceof Error) throw items;
    return items.filter((item) => namespace === undefined || item.metadata.namespace === namespace);
  };
  const exitCode = await runCli(argv, {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    listerFor: (command) => ({
      target: { namespace: command.allNamespaces ? undefined : (command.namespace ?? "default") },
      list,
    }),
  });
  return { exitCode, stdout, stderr, listedNamespaces };
}

const condition = (
  type: string,
  status: "True" | "False" | "Unknown",
  reason = "Reason",
  message = "message",
) => ({
  type,
  status,
  reason,
  message,
  lastTransitionTime: "2025-01-01T00:00:00Z",
});

function modelDeployment(
  name: string,
  namespace: string,
  status: ModelDeployment["status"],
): ModelDeployment {
  return {
    apiVersion: "gpufleet.io/v1alpha1",
    kind: "ModelDeployment",
    metadata: { name, namespace },
    spec: {
      model: { name: `${name}-model` },
      engine: { kind: "vllm" },
      replicas: 2,
    } as unknown as ModelDeployment["spec"],
    ...(status ? { status } : {}),
  };
}

const serving = modelDeployment("llama-8b", "team-a", {
  replicas: 3,
  readyReplicas: 3,
  desiredReplicas: 3,
  plan: {
    gpuProduct: "NVIDIA-L4",
    gpusPerReplica: 2,
    tensorParallelism: 2,
    kvCacheTokensPerReplica: 158_896,
    maxContextLength: 16_384,
  },
  autoscaler: { kvCacheUtilization: 0.734, queueDepth: 5, ttftWithinTarget: 0.9962, ttftRequests: 5231 },
  conditions: [condition("Ready", "True")],
});
const starved = modelDeployment("llama-70b", "team-a", {
  replicas: 1,
  readyReplicas: 1,
  desiredReplicas: 2,
  plan: {
    gpuProduct: "NVIDIA-H100-80GB-HBM3",
    gpusPerReplica: 4,
    tensorParallelism: 4,
    kvCacheTokensPerReplica: 1_000_000,
    maxContextLength: 131_072,
  },
  conditions: [
    condition("Ready", "True"),
    condition("CapacityShortfall", "True", "NoGpusFree", "2 more H100 needed"),
  ],
});
const fresh = modelDeployment("new", "team-b", undefined);

describe("gpufleet plan", () => {
  it("prints the planner's table for a model that fits and exits 0", async () => {
    const result = await run(["plan", "--model", "llama-3.1-8b", "--gpu", "h100"]);
    expect(result.exitCode).toBe(EXIT_OK);
    expect(result.stdout).toMatch(/^model\s+llama-3\.1-8b$/m);
    expect(result.stdout).toMatch(/^gpus per replica\s+1$/m);
    expect(result.stderr).toBe("");
  });

  it("prints the plan as JSON with -o json", async () => {
    const result = await run(["plan", "llama-3.1-8b", "NVIDIA-L4", "-o", "json"]);
    const plan = JSON.parse(result.stdout) as {
      ok: boolean;
      modelId: string;
      gpuProductLabel: string;
      tensorParallelism: number;
    };
    expect(result.exitCode).toBe(EXIT_OK);
    expect(plan).toMatchObject({ ok: true, modelId: "llama-3.1-8b", gpuProductLabel: "NVIDIA-L4" });
    expect(plan.tensorParallelism).toBeGreaterThanOrEqual(1);
  });

  it("prints the plan as YAML with -o yaml", async () => {
    const result = await run(["plan", "llama-3.1-8b", "h100", "-o", "yaml"]);
    expect(parse(result.stdout)).toMatchObject({ ok: true, modelId: "llama-3.1-8b", gpusPerReplica: 1 });
  });

  it("exits 1 with the planner's reason when the model does not fit", async () => {
    const result = await run(["plan", "llama-3.1-70b", "l4", "--gpus-per-node", "1"]);
    expect(result.exitCode).toBe(EXIT_ERROR);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/^error: llama-3\.1-70b .*does not fit/);
  });

  it("splits a model no node holds across --nodes as pipeline stages and prints what each stage holds", async () => {
    const result = await run(["plan", "meta-llama/Llama-3.1-405B-Instruct", "h100", "--nodes", "2"]);
    expect(result.exitCode).toBe(EXIT_OK);
    expect(result.stdout).toMatch(/pipeline parallelism 2 x TP 8: 2 pods \(nodes\) per replica/);
    expect(result.stdout).toMatch(/stage 0: layers 0-62 \+ embedding; per GPU 47\.25 GiB weights/);
    const oneNode = await run(["plan", "meta-llama/Llama-3.1-405B-Instruct", "h100"]);
    expect(oneNode.exitCode).toBe(EXIT_ERROR);
    expect(oneNode.stderr).toMatch(/needs 2 nodes per replica \(PP 2 x TP 8 = 16 x NVIDIA-H100-80GB-HBM3\)/);
  });

  it("keeps the structured error on stdout with -o json when the model does not fit", async () => {
    const result = await run(["plan", "llama-3.1-70b", "l4", "--gpus-per-node", "1", "-o", "json"]);
    expect(result.exitCode).toBe(EXIT_ERROR);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, code: "does-not-fit" });
  });

  it("exits 2 naming the known models for an unknown model, and the known GPUs for an unknown GPU", async () => {
    const unknownModel = await run(["plan", "gpt-17", "h100"]);
    expect(unknownModel.exitCode).toBe(EXIT_USAGE);
    expect(unknownModel.stderr).toContain('unknown model "gpt-17"; known models: ');
    expect(unknownModel.stderr).toContain("llama-3.1-8b");
    const unknownGpu = await run(["plan", "llama-3.1-8b", "tpu-v5"]);
    expect(unknownGpu.exitCode).toBe(EXIT_USAGE);
    expect(unknownGpu.stderr).toContain('unknown GPU "tpu-v5"; known GPUs: ');
  });

  it("exits 2 when the planner refuses an input value", async () => {
    const result = await run(["plan", "llama-3.1-8b", "h100", "-q", "int3"]);
    expect(result.exitCode).toBe(EXIT_USAGE);
    expect(result.stderr).toContain('unknown quantization "int3"');
  });
});

describe("gpufleet usage, help and version", () => {
  it("exits 2 on a usage error, printing the error and the help on stderr only", async () => {
    const result = await run(["status", "--bogus"]);
    expect(result.exitCode).toBe(EXIT_USAGE);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/^error: Unknown option '--bogus'/);
    expect(result.stderr).toContain("Usage:\n  gpufleet status [flags]");
  });

  it("prints help on stdout and exits 0", async () => {
    const result = await run(["--help"]);
    expect(result.exitCode).toBe(EXIT_OK);
    expect(result.stdout).toContain("kubectl gpufleet <command>");
  });

  it("reports package.json's version", async () => {
    const result = await run(["version"]);
    expect(result.stdout).toBe(`gpufleet ${cliVersion()}\n`);
    expect(cliVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe("gpufleet status", () => {
  it("summarizes replicas, GPUs held, KV-cache utilization, queue depth and state", () => {
    expect(summarizeModelDeployment(serving)).toEqual({
      namespace: "team-a",
      name: "llama-8b",
      model: "llama-8b-model",
      engine: "vllm",
      gpuProduct: "NVIDIA-L4",
      desiredReplicas: 3,
      replicas: 3,
      readyReplicas: 3,
      gpusPerReplica: 2,
      gpusInUse: 6,
      kvCacheUtilization: 0.734,
      queueDepth: 5,
      ttftWithinTarget: 0.9962,
      state: "Ready",
      reason: null,
    });
  });

  it("reports CapacityShortfall with its reason even while Ready is True", () => {
    expect(summarizeModelDeployment(starved)).toMatchObject({
      state: "CapacityShortfall",
      reason: "NoGpusFree: 2 more H100 needed",
      gpusInUse: 4,
    });
  });

  it("shows a ModelDeployment the operator has not reconciled yet as Unknown with spec replicas desired", () => {
    expect(summarizeModelDeployment(fresh)).toMatchObject({
      state: "Unknown",
      desiredReplicas: 2,
      gpusInUse: 0,
      gpuProduct: null,
      kvCacheUtilization: null,
    });
  });

  it("renders a kubectl-style table with totals and the reasons of what is not ready", () => {
    const table = formatStatusTable(
      [summarizeModelDeployment(serving), summarizeModelDeployment(starved)],
      false,
    );
    const lines = table.split("\n");
    expect(lines[0]).toMatch(
      /^NAME\s+MODEL\s+ENGINE\s+GPU\s+READY\s+GPUS\s+KV-CACHE\s+QUEUE\s+TTFT-OK\s+STATE$/,
    );
    expect(lines[1]).toMatch(
      /^llama-8b\s+llama-8b-model\s+vllm\s+NVIDIA-L4\s+3\/3\s+6 \(2\/replica\)\s+73%\s+5\s+99\.6%\s+Ready$/,
    );
    expect(lines[2]).toMatch(/^llama-70b\s+.*\s+1\/2\s+4 \(4\/replica\)\s+-\s+-\s+-\s+CapacityShortfall$/);
    expect(table).toContain("2 ModelDeployment(s), 10 GPU(s) in use, 1 not ready");
    expect(table).toContain("  team-a/llama-70b: NoGpusFree: 2 more H100 needed");
  });

  it("lists the given namespace, or every namespace with -A (adding a NAMESPACE column)", async () => {
    const inTeamA = await run(["status", "-n", "team-a"], [serving, starved, fresh]);
    expect(inTeamA.exitCode).toBe(EXIT_OK);
    expect(inTeamA.listedNamespaces).toEqual(["team-a"]);
    expect(inTeamA.stdout).not.toContain("NAMESPACE");
    expect(inTeamA.stdout).not.toContain("new-model");
    const everywhere = await run(["status", "-A"], [serving, starved, fresh]);
    expect(everywhere.listedNamespaces).toEqual([undefined]);
    expect(everywhere.stdout.split("\n")[0]).toMatch(/^NAMESPACE\s+NAME/);
    expect(everywhere.stdout).toContain("team-b");
  });

  it("prints {items: [...summaries]} with -o json, sorted by namespace and name", async () => {
    const result = await run(["status", "-A", "-o", "json"], [fresh, serving, starved]);
    const output = JSON.parse(result.stdout) as { items: Array<{ namespace: string; name: string }> };
    expect(output.items.map((item) => `${item.namespace}/${item.name}`)).toEqual([
      "team-a/llama-70b",
      "team-a/llama-8b",
      "team-b/new",
    ]);
  });

  it("says so when there is nothing to show", async () => {
    const result = await run(["status", "-n", "empty"], [serving]);
    expect(result.stdout).toBe("No ModelDeployments found.\n");
  });

  it("exits 1 with an actionable message when the CRD is missing or access is forbidden", async () => {
    const missing = await run(["status"], Object.assign(new Error("HTTP 404"), { code: 404 }));
    expect(missing.exitCode).toBe(EXIT_ERROR);
    expect(missing.stderr).toContain("the ModelDeployment CRD is not installed");
    const forbidden = await run(["status"], Object.assign(new Error("HTTP 403"), { code: 403 }));
    expect(forbidden.stderr).toContain("forbidden: your user may not list modeldeployments.gpufleet.io");
    const unauthorized = await run(["status"], Object.assign(new Error("HTTP 401"), { code: 401 }));
    expect(unauthorized.stderr).toContain(
      "unauthorized: the API server refused the kubeconfig's credentials",
    );
  });
});
