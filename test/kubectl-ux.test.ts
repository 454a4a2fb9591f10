import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ensureClusterBinaries } from "../tools/binaries.js";
import type { RunningOperator } from "../operator/operator.js";
import { KubeClient } from "../operator/runtime/kube-client.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { condition, modelDeploymentObject, readModelDeployment, startTestOperator } from "./support/operator.js";

// What a person sees with the real kubectl: printer columns, the scale subresource, and `kubectl explain`.

const run = promisify(execFile);
const kubeConfig = testKubeConfig();
const client = new KubeClient(kubeConfig);
let kubectlPath: string;
let namespace: TestNamespace;
let operator: RunningOperator;

async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await run(kubectlPath, ["--kubeconfig", inject("kubeconfigPath"), "-n", namespace.name, ...args]);
  return stdout;
}

beforeAll(async () => {
  kubectlPath = (await ensureClusterBinaries()).kubectl;
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "kubectl");
  operator = await startTestOperator(kubeConfig, namespace.name);
  await client.apply(
    modelDeploymentObject(namespace.name, "chat", {
      model: { name: "llama-3.1-8b-instruct", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 },
      gpu: { products: ["NVIDIA-L4"] },
    }),
    { fieldManager: "platform-team" },
  );
  await waitFor(async () => condition(await readModelDeployment(client, namespace.name, "chat"), "Ready")?.status === "True", {
    timeoutMs: 60_000,
    description: "chat Ready",
  });
}, 180_000);

afterAll(async () => {
  await operator?.stop();
  await namespace?.delete();
  client.close();
});

describe("kubectl with ModelDeployments", () => {
  it("shows model, engine, GPU, replicas, readiness and status (Ready's reason) as columns, and the plan with -o wide", async () => {
    const lines = (await kubectl("get", "modeldeployments")).trim().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+MODEL\s+ENGINE\s+GPU\s+REPLICAS\s+READY\s+STATUS\s+AGE$/);
    expect(lines[1]).toMatch(/^chat\s+llama-3\.1-8b-instruct\s+vllm\s+NVIDIA-L4\s+1\s+1\s+AllReplicasReady\s+\S+$/);
    const wide = (await kubectl("get", "md", "-o", "wide")).trim().split("\n");
    expect(wide[0]).toMatch(/GPUS\/REPLICA\s+TP\s+NODES\/REPLICA\s+KV-TOKENS\s+REPLICAS\s+READY\s+DESIRED\s+KV-UTIL\s+QUEUE\s+TTFT-OK\s+STATUS/);
    expect(wide[1]).toMatch(/NVIDIA-L4\s+1\s+1\s+(?:1\s+)?\d{4,}\s+1\s+1\s+1\s+.*AllReplicasReady/);
  });

  it("scales through the scale subresource with `kubectl scale`, and the workload follows", async () => {
    expect(await kubectl("scale", "md/chat", "--replicas=3")).toContain("scaled");
    const md = await waitFor(
      async () => {
        const current = await readModelDeployment(client, namespace.name, "chat");
        return current.status?.readyReplicas === 3 ? current : undefined;
      },
      { timeoutMs: 60_000, description: "3 ready replicas after kubectl scale" },
    );
    expect(md.spec.replicas).toBe(3);
    const scale = JSON.parse(await kubectl("get", "--raw", `/apis/gpufleet.io/v1alpha1/namespaces/${namespace.name}/modeldeployments/chat/scale`));
    expect(scale).toMatchObject({ kind: "Scale", spec: { replicas: 3 }, status: { replicas: 3, selector: "gpufleet.io/model-deployment=chat" } });
  });

  it("teaches the API through `kubectl explain`", async () => {
    const text = await kubectl("explain", "modeldeployment.spec.autoscaling");
    expect(text).toContain("Autoscaling on what limits an LLM server: KV-cache pressure and queue depth.");
    expect(text).toMatch(/kvCacheUtilizationTarget\s+<number>/);
    expect(await kubectl("explain", "md.spec.gpu.tensorParallelism")).toContain("power of two");
  });
});
