import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { gatewayDemandPatch } from "../operator/api/gateway-demand.js";
import type { ModelDeployment } from "../operator/api/modeldeployment.js";
import type { RunningOperator } from "../operator/operator.js";
import { KubeClient } from "../operator/runtime/kube-client.js";
import { ensureClusterBinaries } from "../tools/binaries.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { condition, modelDeploymentObject, modelDeploymentPath, readModelDeployment, startTestOperator } from "./support/operator.js";

// The operator's side of scale from zero and to zero on the real control plane: a ModelDeployment at
// minReplicas 0 sits Idle at zero; a gateway's demand annotation (written here as a gateway replica
// writes it, with the shared codec) wakes it to one replica on the informer event, showing Activating
// until its pod is ready; with no request for scaleToZeroIdleSeconds it goes back to zero and Idle.
// The autoscaler ticks every 20 s here, so a wake within a few seconds is the informer event's doing.

const run = promisify(execFile);
const kubeConfig = testKubeConfig();
const client = new KubeClient(kubeConfig);
const replica = "gw-7f9c-x2v4q";
let kubectlPath: string;
let namespace: TestNamespace;
let operator: RunningOperator;
const readyReasons: string[] = [];
const watchAbort = new AbortController();

const mdPath = () => modelDeploymentPath(namespace.name, "chat");
const kubectl = async (...args: string[]) =>
  (await run(kubectlPath, ["--kubeconfig", inject("kubeconfigPath"), "-n", namespace.name, ...args])).stdout;

beforeAll(async () => {
  kubectlPath = (await ensureClusterBinaries({ only: ["kubectl"] })).kubectl;
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "zero");
  operator = await startTestOperator(kubeConfig, namespace.name, { GPUFLEET_SCRAPE_INTERVAL_SECONDS: "20" });
  await client.apply(
    modelDeploymentObject(namespace.name, "chat", {
      model: { name: "llama-3.1-8b-instruct", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 },
      gpu: { products: ["NVIDIA-L4"] },
      replicas: 0,
      autoscaling: { enabled: true, minReplicas: 0, maxReplicas: 2, scaleToZeroIdleSeconds: 60 },
    }),
    { fieldManager: "platform-team", force: true },
  );
  // Every Ready reason the status goes through, from a watch (polling could miss a short Activating).
  void client
    .watch<ModelDeployment>(
      `/apis/gpufleet.io/v1alpha1/namespaces/${namespace.name}/modeldeployments`,
      { fieldSelector: "metadata.name=chat" },
      (event) => {
        const reason = event.object?.status?.conditions?.find((c) => c.type === "Ready")?.reason;
        if (reason && readyReasons.at(-1) !== reason) readyReasons.push(reason);
      },
      watchAbort.signal,
    )
    .catch(() => undefined);
}, 300_000);

afterAll(async () => {
  watchAbort.abort();
  await operator?.stop();
  await namespace?.delete();
  client.close();
});

describe("scale from zero and to zero (operator side)", () => {
  it("a ModelDeployment at minReplicas 0 without demand is Idle at zero, and kubectl get md says so", async () => {
    await waitFor(async () => condition(await readModelDeployment(client, namespace.name, "chat"), "Ready")?.reason === "Idle", {
      timeoutMs: 60_000,
      description: "chat Idle",
    });
    const md = await readModelDeployment(client, namespace.name, "chat");
    expect(md.spec.replicas).toBe(0);
    expect(md.status?.readyReplicas ?? 0).toBe(0);
    const lines = (await kubectl("get", "md")).trim().split("\n");
    expect(lines[0]).toMatch(/REPLICAS\s+READY\s+STATUS/);
    expect(lines[1]).toMatch(/^chat\s+.*\s0\s+0\s+Idle\s+\S+$/);
  });

  it("a gateway's held request wakes it to one replica at once, Activating until the pod is ready", async () => {
    const wroteAt = Date.now();
    await client.patch(mdPath(), gatewayDemandPatch(replica, { held: 1, lastRequestAt: wroteAt, updatedAt: wroteAt }));
    const woke = await waitFor(async () => ((await readModelDeployment(client, namespace.name, "chat")).spec.replicas === 1 ? Date.now() : undefined), {
      timeoutMs: 30_000,
      intervalMs: 50,
      description: "spec.replicas 1",
    });
    // Far under the 20 s autoscaler interval: the informer event did it.
    expect(woke - wroteAt).toBeLessThan(5_000);
    await waitFor(async () => condition(await readModelDeployment(client, namespace.name, "chat"), "Ready")?.reason === "AllReplicasReady", {
      timeoutMs: 60_000,
      description: "chat AllReplicasReady",
    });
    expect(readyReasons).toEqual(expect.arrayContaining(["Idle", "Activating", "AllReplicasReady"]));
    expect(readyReasons.indexOf("Activating")).toBeGreaterThan(readyReasons.indexOf("Idle"));
    expect(readyReasons.lastIndexOf("AllReplicasReady")).toBeGreaterThan(readyReasons.indexOf("Activating"));
    const events = await kubectl("get", "events.events.k8s.io", "--field-selector", "regarding.name=chat", "-o", "jsonpath={.items[*].note}");
    expect(events).toContain("0 → 1: scaling from zero: 1 request(s) held at the gateway");
  });

  it("with no request for scaleToZeroIdleSeconds it returns to zero and Idle", async () => {
    // The gateway released its request: held 0, last request now.
    const releasedAt = Date.now();
    await client.patch(mdPath(), gatewayDemandPatch(replica, { held: 0, lastRequestAt: releasedAt, updatedAt: releasedAt }));
    const slept = await waitFor(async () => ((await readModelDeployment(client, namespace.name, "chat")).spec.replicas === 0 ? Date.now() : undefined), {
      timeoutMs: 150_000,
      intervalMs: 500,
      description: "spec.replicas 0 after the idle period",
    });
    // Not before 60 s without a request; within one autoscaler interval (20 s) after it, plus slack.
    expect(slept - releasedAt).toBeGreaterThanOrEqual(60_000);
    expect(slept - releasedAt).toBeLessThan(60_000 + 20_000 + 10_000);
    await waitFor(async () => condition(await readModelDeployment(client, namespace.name, "chat"), "Ready")?.reason === "Idle", {
      timeoutMs: 60_000,
      description: "chat Idle again",
    });
    await waitFor(
      async () => (await client.list(`/api/v1/namespaces/${namespace.name}/pods`, { labelSelector: "gpufleet.io/model-deployment=chat" })).items.length === 0,
      { timeoutMs: 60_000, description: "no pods left" },
    );
    expect((await kubectl("get", "md", "chat", "--no-headers")).trim()).toMatch(/\s0\s+0\s+Idle\s+\S+$/);
  }, 300_000);
});
