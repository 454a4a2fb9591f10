/**
 * The RBAC proof: the real operator (operator/main.ts), authenticated as the chart's ServiceAccount
 * with a TokenRequest token, reconciles a ModelDeployment in a watched namespace without a single
 * "forbidden". If the operator starts needing a verb the chart does not grant, this test names it.
 *
 * The chart is installed with helm into the shared local cluster; its own operator pods are KWOK
 * fakes (they run nothing), so the operator process here is the only one competing for the Lease.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_GROUP, API_VERSION, PLURAL, type ModelDeployment } from "../operator/api/modeldeployment.js";
import { REPO_ROOT } from "../operator/api/generate.js";
import { ensureClusterBinaries } from "../tools/binaries.js";
import { freeLoopbackPort } from "../sim/cluster/cluster.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { serviceAccountKubeconfig } from "./support/serviceaccount-kubeconfig.js";
import { runHelmOk } from "./support/helm.js";
import { stopChildProcess } from "./support/operator.js";

const release = "gpufleet";
const serviceAccountName = "gpufleet"; // release name contains the chart name: fullname = release

let kubeConfig: KubeConfig;
let helmBinary: string;
let helmHome: string;
let releaseNamespace: TestNamespace;
let watchedNamespace: TestNamespace;
let operator: ChildProcess | undefined;
let operatorLog = "";

async function helm(args: string[]): Promise<void> {
  await runHelmOk(helmBinary, args, {
    home: helmHome,
    kubeconfig: process.env.GPUFLEET_TEST_KUBECONFIG ?? "",
    timeoutMs: 180_000,
  });
}

beforeAll(async () => {
  kubeConfig = testKubeConfig();
  helmBinary = (await ensureClusterBinaries({ only: ["helm"] })).helm;
  helmHome = mkdtempSync(join(tmpdir(), "gpufleet-helm-rbac-"));
  releaseNamespace = await uniqueNamespace(kubeConfig, "rbac-release");
  watchedNamespace = await uniqueNamespace(kubeConfig, "rbac-watched");
  await helm([
    "install",
    release,
    join(REPO_ROOT, "charts", "gpufleet"),
    "--namespace",
    releaseNamespace.name,
    "--set",
    `watchNamespaces={${watchedNamespace.name}}`,
    "--wait",
    "--timeout",
    "120s",
  ]);
}, 600_000);

afterAll(async () => {
  await stopChildProcess(operator, 30_000);
  await helm(["uninstall", release, "--namespace", releaseNamespace.name, "--ignore-not-found"]).catch(
    () => undefined,
  );
  await watchedNamespace?.delete();
  await releaseNamespace?.delete();
  if (helmHome) rmSync(helmHome, { recursive: true, force: true });
}, 120_000);

describe("the operator under the chart's RBAC", () => {
  it("takes the Lease, syncs, and reconciles a ModelDeployment into a Deployment with no forbidden request", async () => {
    const serviceAccount = await serviceAccountKubeconfig(
      kubeConfig,
      releaseNamespace.name,
      serviceAccountName,
    );
    const opsPort = await freeLoopbackPort();
    // The environment the chart's Deployment sets (templates/deployment.yaml), pointed at this process.
    operator = spawn(process.execPath, ["--import", "tsx", "operator/main.ts"], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        KUBECONFIG: serviceAccount.path,
        POD_NAME: "rbac-proof",
        POD_NAMESPACE: releaseNamespace.name,
        GPUFLEET_WATCH_NAMESPACES: watchedNamespace.name,
        GPUFLEET_LEADER_ELECT: "true",
        GPUFLEET_LEASE_NAMESPACE: releaseNamespace.name,
        GPUFLEET_LEASE_NAME: "gpufleet-operator",
        GPUFLEET_OPS_HOST: "127.0.0.1",
        GPUFLEET_OPS_PORT: String(opsPort),
        GPUFLEET_LOG_LEVEL: "debug",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    operator.stdout?.on("data", (chunk: Buffer) => (operatorLog += chunk.toString("utf8")));
    operator.stderr?.on("data", (chunk: Buffer) => (operatorLog += chunk.toString("utf8")));
    const opsUrl = `http://127.0.0.1:${opsPort}`;
    const alive = (): void => {
      if (operator?.exitCode !== null)
        throw new Error(`operator exited ${operator?.exitCode}:\n${operatorLog.slice(-3000)}`);
    };

    await waitFor(
      async () => {
        alive();
        const metrics = await (
          await fetch(`${opsUrl}/metrics`, { signal: AbortSignal.timeout(2000) })
        ).text();
        const ready = await fetch(`${opsUrl}/readyz`, { signal: AbortSignal.timeout(2000) });
        return /^gpufleet_leader 1$/m.test(metrics) && ready.status === 200;
      },
      {
        timeoutMs: 90_000,
        intervalMs: 500,
        description: "operator leading (Lease taken) and ready (caches synced)",
      },
    );

    const customObjects = kubeConfig.makeApiClient(CustomObjectsApi);
    const created = (await customObjects.createNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace: watchedNamespace.name,
      plural: PLURAL,
      body: {
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: "ModelDeployment",
        metadata: { name: "rbac-proof" },
        spec: {
          model: {
            name: "llama-3.1-8b",
            source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } },
          },
        },
      },
    })) as ModelDeployment;

    const apps = kubeConfig.makeApiClient(AppsV1Api);
    const deployment = await waitFor(
      async () => {
        alive();
        const list = await apps.listNamespacedDeployment({ namespace: watchedNamespace.name });
        return list.items.find((item) =>
          item.metadata?.ownerReferences?.some((owner) => owner.uid === created.metadata.uid),
        );
      },
      { timeoutMs: 90_000, intervalMs: 500, description: "a Deployment owned by the ModelDeployment" },
    );
    const owner = deployment.metadata?.ownerReferences?.find(
      (reference) => reference.uid === created.metadata.uid,
    );
    expect(owner).toMatchObject({ kind: "ModelDeployment", controller: true });

    const withStatus = await waitFor(
      async () => {
        const current = (await customObjects.getNamespacedCustomObject({
          group: API_GROUP,
          version: API_VERSION,
          namespace: watchedNamespace.name,
          plural: PLURAL,
          name: "rbac-proof",
        })) as ModelDeployment;
        return (current.status?.conditions?.length ?? 0) > 0 ? current : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, description: "the operator to write status conditions" },
    );
    expect(withStatus.status?.conditions?.map((condition) => condition.type)).toContain("Ready");

    const forbidden = operatorLog.split("\n").filter((line) => /forbidden|\b403\b/i.test(line));
    expect(forbidden, "requests the chart's RBAC refused").toEqual([]);
  }, 300_000);
});
