/**
 * A real `pulumi up` / `pulumi destroy` of the GpuFleet component against the shared local GPU
 * cluster, through the Automation API: the Pulumi CLI and the Kubernetes provider are built from Go
 * modules (infra/tools.ts), state lives in a local file backend, no plugin is downloaded. The
 * ModelDeployments the stack creates are reconciled by the operator running in this process.
 */
import { randomBytes } from "node:crypto";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Deployment } from "@kubernetes/client-node";
import * as k8s from "@pulumi/kubernetes";
import { LocalWorkspace, PulumiCommand, type Stack } from "@pulumi/pulumi/automation/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GpuFleet, type FleetModelDeployment } from "../infra/fleet/gpufleet.js";
import { ensurePulumiTools } from "../infra/tools.js";
import type { RunningOperator } from "../operator/operator.js";
import { KubeClient } from "../operator/runtime/kube-client.js";
import { testKubeConfig, waitFor } from "./support/kube.js";
import { condition, readModelDeployment, startTestOperator } from "./support/operator.js";

const H100 = "NVIDIA-H100-80GB-HBM3";
const L4 = "NVIDIA-L4";
const suffix = randomBytes(3).toString("hex");
const operatorNamespace = `pulumi-gf-system-${suffix}`;
const modelNamespace = `pulumi-gf-models-${suffix}`;
const releaseName = `gf-${suffix}`;

const kubeConfig = testKubeConfig();
const client = new KubeClient(kubeConfig);
let operator: RunningOperator | undefined;
let stack: Stack | undefined;
let workDir: string;
/** Everything the CLI prints, kept after the run (outside the removed work folder) for diagnosis. */
const pulumiLogPath = join(tmpdir(), `gpufleet-pulumi-${suffix}.log`);
const logPulumi = (line: string): void => appendFileSync(pulumiLogPath, line);

function deployments(chatReplicas: number): FleetModelDeployment[] {
  return [
    {
      name: "chat",
      spec: {
        model: {
          name: "llama-3.1-8b-instruct",
          source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } },
          maxContextLength: 16384,
        },
        gpu: { products: [L4] },
        replicas: chatReplicas,
      },
    },
    {
      name: "big",
      spec: {
        model: {
          name: "llama-3.1-70b-instruct",
          quantization: "fp8",
          source: { huggingFace: { repo: "meta-llama/Llama-3.1-70B-Instruct" } },
        },
        gpu: { products: [H100] },
        replicas: 1,
      },
    },
  ];
}

/** The inline Pulumi program: the in-cluster layer on the local cluster, via an explicit provider. */
function program(chatReplicas: number) {
  return async () => {
    const kubeconfigPath = process.env.GPUFLEET_TEST_KUBECONFIG ?? "";
    const provider = new k8s.Provider("local-cluster", {
      kubeconfig: readFileSync(kubeconfigPath, "utf8"),
      enableServerSideApply: true,
    });
    const fleet = new GpuFleet(
      "fleet",
      {
        namespace: operatorNamespace,
        modelNamespace,
        operator: { replicas: 1, logLevel: "info" },
        chart: { releaseName, timeoutSeconds: 180 },
        modelDeployments: deployments(chatReplicas),
      },
      { provider },
    );
    return {
      releaseStatus: fleet.releaseStatus,
      modelDeployments: fleet.modelDeploymentNames,
      namespace: fleet.namespace,
    };
  };
}

const readyWith = (name: string, replicas: number) =>
  waitFor(
    async () => {
      const md = await readModelDeployment(client, modelNamespace, name);
      return condition(md, "Ready")?.status === "True" && md.status?.readyReplicas === replicas
        ? md
        : undefined;
    },
    { timeoutMs: 90_000, description: `ModelDeployment ${name} Ready with ${replicas} replicas` },
  );

async function statusCode(path: string): Promise<number> {
  try {
    await client.get(path);
    return 200;
  } catch (error) {
    return (
      (error as { statusCode?: number; code?: number }).statusCode ?? (error as { code?: number }).code ?? 0
    );
  }
}

beforeAll(async () => {
  // Cached after the first build; a cold build of both takes tens of minutes on 2 cores.
  const tools = await ensurePulumiTools();
  workDir = mkdtempSync(join(tmpdir(), "gpufleet-pulumi-"));
  // The file backend refuses a state folder that does not exist.
  mkdirSync(join(workDir, "state"));
  const pulumiCommand = await PulumiCommand.get({ root: tools.root, skipVersionCheck: false });
  if (!process.env.GPUFLEET_TEST_KUBECONFIG)
    throw new Error("GPUFLEET_TEST_KUBECONFIG is not set by the cluster globalSetup");
  process.stderr.write(`[pulumi-gpufleet] CLI output: ${pulumiLogPath}\n`);
  stack = await LocalWorkspace.createOrSelectStack(
    { stackName: `test-${suffix}`, projectName: "gpufleet-local", program: program(2) },
    {
      pulumiCommand,
      pulumiHome: join(workDir, "home"),
      projectSettings: {
        name: "gpufleet-local",
        runtime: "nodejs",
        backend: { url: `file://${join(workDir, "state")}` },
      },
      envVars: {
        PULUMI_CONFIG_PASSPHRASE: "local-test-passphrase",
        PULUMI_BACKEND_URL: `file://${join(workDir, "state")}`,
        // Plugins come from PATH (built from Go modules): never download one.
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
        PULUMI_SKIP_UPDATE_CHECK: "true",
        PULUMI_SKIP_CONFIRMATIONS: "true",
        PATH: `${tools.binDir}:${process.env.PATH ?? ""}`,
        // The provider's embedded Helm: a private home, nothing read from or written to ~/.config/helm.
        HELM_CACHE_HOME: join(workDir, "helm", "cache"),
        HELM_CONFIG_HOME: join(workDir, "helm", "config"),
        HELM_DATA_HOME: join(workDir, "helm", "data"),
      },
    },
  );
}, 90 * 60_000);

afterAll(async () => {
  if (stack) {
    try {
      await stack.destroy({ onOutput: logPulumi });
    } catch {
      // Already destroyed by the test, or it failed: the namespaces are removed below anyway.
    }
  }
  await operator?.stop();
  for (const namespace of [operatorNamespace, modelNamespace]) {
    if ((await statusCode(`/api/v1/namespaces/${namespace}`)) === 200)
      await client.delete(`/api/v1/namespaces/${namespace}`).catch(() => undefined);
  }
  client.close();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe("pulumi up / destroy of GpuFleet on the local GPU cluster", () => {
  it("up installs the CRD, the gpufleet chart and two ModelDeployments, which the operator places on the L4 and H100 pools", async () => {
    const result = await stack!.up({ onOutput: logPulumi });
    expect(result.summary.result).toBe("succeeded");
    // The operator starts once the CRD exists (as in a cluster where gpufleet was just installed).
    operator = await startTestOperator(kubeConfig, modelNamespace);
    expect(result.outputs.releaseStatus?.value).toBe("deployed");
    expect(result.outputs.modelDeployments?.value).toEqual([
      `${modelNamespace}/chat`,
      `${modelNamespace}/big`,
    ]);
    expect(result.summary.resourceChanges?.create).toBeGreaterThanOrEqual(8);

    // The chart's operator Deployment exists and is available (the Release awaited it).
    const operatorDeployments = await client.list<V1Deployment>(
      `/apis/apps/v1/namespaces/${operatorNamespace}/deployments`,
    );
    // The chart also runs the gateway (<release>-gateway) beside the operator (<release>).
    const operatorDeployment = operatorDeployments.items.find(
      (d) => d.metadata?.name === `${releaseName}-gpufleet`,
    );
    expect(operatorDeployments.items.map((d) => d.metadata?.name).sort()).toEqual([
      `${releaseName}-gpufleet`,
      `${releaseName}-gpufleet-gateway`,
    ]);
    expect(operatorDeployment?.status?.availableReplicas).toBe(1);

    const chat = await readyWith("chat", 2);
    expect(chat.status?.plan).toMatchObject({ gpuProduct: L4, pool: "l4" });
    expect(chat.metadata.labels).toMatchObject({ "app.kubernetes.io/managed-by": "pulumi" });
    const big = await readyWith("big", 1);
    expect(big.status?.plan?.gpuProduct).toBe(H100);
    expect(big.status?.plan?.gpusPerReplica).toBeGreaterThanOrEqual(1);
    const bigWorkload = await client.get<V1Deployment>(
      `/apis/apps/v1/namespaces/${modelNamespace}/deployments/big`,
    );
    expect(bigWorkload.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: "ModelDeployment",
      name: "big",
    });
  }, 600_000);

  it("a second up with a changed spec updates only that ModelDeployment, and the operator scales it", async () => {
    const workspace = stack!.workspace as LocalWorkspace;
    workspace.program = program(3);
    const preview = await stack!.preview({ onOutput: logPulumi });
    expect(preview.changeSummary.update).toBe(1);
    const result = await stack!.up({ onOutput: logPulumi });
    expect(result.summary.resourceChanges).toMatchObject({ update: 1 });
    const chat = await readyWith("chat", 3);
    expect(chat.spec.replicas).toBe(3);
  }, 600_000);

  it("destroy removes the ModelDeployments (and their workloads), the release and the namespaces, and keeps the CRD", async () => {
    const result = await stack!.destroy({ onOutput: logPulumi });
    expect(result.summary.result).toBe("succeeded");
    await waitFor(
      async () =>
        (await statusCode(
          `/apis/gpufleet.io/v1alpha1/namespaces/${modelNamespace}/modeldeployments/chat`,
        )) === 404
          ? true
          : undefined,
      {
        timeoutMs: 60_000,
        description: "ModelDeployment chat deleted",
      },
    );
    for (const namespace of [operatorNamespace, modelNamespace]) {
      await waitFor(
        async () => ((await statusCode(`/api/v1/namespaces/${namespace}`)) === 404 ? true : undefined),
        {
          timeoutMs: 120_000,
          description: `namespace ${namespace} deleted`,
        },
      );
    }
    expect(
      await statusCode(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/modeldeployments.gpufleet.io",
      ),
    ).toBe(200);
    const remaining = await stack!.exportStack();
    expect((remaining.deployment as { resources?: unknown[] }).resources ?? []).toHaveLength(0);
  }, 600_000);
});
