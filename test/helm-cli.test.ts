/**
 * The CLI as users run it: `kubectl gpufleet ...` through kubectl's plugin mechanism (an executable
 * named kubectl-gpufleet on PATH), and `gpufleet status` against the real API server.
 */
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_GROUP, API_VERSION, PLURAL } from "../operator/api/modeldeployment.js";
import { REPO_ROOT } from "../operator/api/generate.js";
import { ensureClusterBinaries } from "../tools/binaries.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, type TestNamespace } from "./support/kube.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(binary: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(binary, args, { env, timeout: 60_000 }, (error, stdout, stderr) =>
      resolveRun({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

let kubeConfig: KubeConfig;
let kubectl: string;
let pluginDir: string;
let kubeconfigPath: string;
let namespace: TestNamespace;

beforeAll(async () => {
  kubeConfig = testKubeConfig();
  kubectl = (await ensureClusterBinaries({ only: ["kubectl"] })).kubectl;
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "cli");
  pluginDir = mkdtempSync(join(tmpdir(), "gpufleet-kubectl-plugin-"));
  kubeconfigPath = join(pluginDir, "kubeconfig");
  writeFileSync(kubeconfigPath, kubeConfig.exportConfig(), { mode: 0o600 });
  // What `npm install -g` makes of the package.json bin entry, pointed at the sources.
  const shim = join(pluginDir, "kubectl-gpufleet");
  writeFileSync(
    shim,
    `#!/bin/sh\nexec "${process.execPath}" --import tsx "${join(REPO_ROOT, "operator", "cli", "gpufleet.ts")}" "$@"\n`,
  );
  chmodSync(shim, 0o755);
}, 600_000);

afterAll(async () => {
  await namespace?.delete();
  if (pluginDir) rmSync(pluginDir, { recursive: true, force: true });
});

const pluginEnv = (): NodeJS.ProcessEnv => ({
  PATH: `${pluginDir}${delimiter}${process.env.PATH ?? ""}`,
  HOME: pluginDir,
  KUBECONFIG: kubeconfigPath,
  // tsx resolves from the repository.
  NODE_PATH: join(REPO_ROOT, "node_modules"),
});

describe("kubectl gpufleet (kubectl plugin)", () => {
  it("is found by kubectl plugin list and runs `plan` with exit code 0", async () => {
    const list = await run(kubectl, ["plugin", "list"], pluginEnv());
    expect(list.stdout).toContain(join(pluginDir, "kubectl-gpufleet"));
    const plan = await run(
      kubectl,
      ["gpufleet", "plan", "--model", "llama-3.1-8b", "--gpu", "NVIDIA-L4", "-o", "json"],
      pluginEnv(),
    );
    expect(plan.stderr).toBe("");
    expect(plan.code).toBe(0);
    expect(JSON.parse(plan.stdout)).toMatchObject({
      ok: true,
      modelId: "llama-3.1-8b",
      gpuProductLabel: "NVIDIA-L4",
    });
  });

  it("passes the exit code through: 2 for a usage error", async () => {
    const result = await run(kubectl, ["gpufleet", "plan", "--frobnicate"], pluginEnv());
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("Unknown option '--frobnicate'");
  });

  it("summarizes the ModelDeployments of a namespace from the real API server", async () => {
    await kubeConfig.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace: namespace.name,
      plural: PLURAL,
      body: {
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: "ModelDeployment",
        metadata: { name: "status-cli" },
        spec: {
          model: {
            name: "llama-3.1-8b",
            source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } },
          },
          replicas: 2,
        },
      },
    });
    const json = await run(
      kubectl,
      ["gpufleet", "status", "-n", namespace.name, "--kubeconfig", kubeconfigPath, "-o", "json"],
      pluginEnv(),
    );
    expect(json.code).toBe(0);
    const output = JSON.parse(json.stdout) as {
      items: Array<{ namespace: string; name: string; desiredReplicas: number; engine: string }>;
    };
    // No operator runs here, so status is empty: desired comes from spec.replicas, engine from the CRD default.
    expect(output.items).toEqual([
      expect.objectContaining({
        namespace: namespace.name,
        name: "status-cli",
        desiredReplicas: 2,
        engine: "vllm",
      }),
    ]);
    const table = await run(kubectl, ["gpufleet", "status", "-n", namespace.name], pluginEnv());
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^NAME\s+MODEL\s+ENGINE\s+GPU\s+READY/);
    expect(table.stdout).toMatch(/^status-cli\s+llama-3\.1-8b\s+vllm\s+-\s+0\/2\s+-\s+-\s+-\s+-\s+Unknown$/m);
  });

  it("exits 1 with a message when the API server refuses the user", async () => {
    const anonymous = join(pluginDir, "anonymous.kubeconfig");
    const cluster = kubeConfig.getCurrentCluster()!;
    writeFileSync(
      anonymous,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "local", cluster: { server: cluster.server, "insecure-skip-tls-verify": true } }],
        users: [{ name: "nobody", user: { token: "not-a-valid-token" } }],
        contexts: [{ name: "nobody", context: { cluster: "local", user: "nobody" } }],
        "current-context": "nobody",
      }),
      { mode: 0o600 },
    );
    const result = await run(
      kubectl,
      ["gpufleet", "status", "-n", namespace.name, "--kubeconfig", anonymous],
      pluginEnv(),
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(
      /^error: unauthorized: the API server refused the kubeconfig's credentials/,
    );
  });
});
