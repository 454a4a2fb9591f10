import { createServer } from "node:net";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { KubeClient, type KubeObject } from "../operator/runtime/kube-client.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { condition, isLeader, modelDeploymentObject, readModelDeployment, spawnOperatorProcess, type OperatorProcess } from "./support/operator.js";

// The operator as real processes: killed in the middle of reconciling it converges on restart without
// duplicates; two replicas elect one leader on a Lease and the standby takes over when the leader dies.

const kubeConfig = testKubeConfig();
const client = new KubeClient(kubeConfig);
const logDir = mkdtempSync(join(tmpdir(), "gpufleet-operator-logs-"));
let namespace: TestNamespace;
const processes: OperatorProcess[] = [];

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

function start(name: string, env: Record<string, string>): OperatorProcess {
  const operator = spawnOperatorProcess(inject("kubeconfigPath"), {
    GPUFLEET_WATCH_NAMESPACES: namespace.name,
    GPUFLEET_LEASE_NAMESPACE: namespace.name,
    POD_NAME: name,
    ...env,
  }, join(logDir, `${name}.log`));
  processes.push(operator);
  return operator;
}

const smallModel = (replicas: number) => ({
  model: { name: "llama-3.2-1b", source: { huggingFace: { repo: "meta-llama/Llama-3.2-1B-Instruct" } }, maxContextLength: 8192 },
  gpu: { products: ["NVIDIA-L4"] },
  replicas,
});

async function countOwned(kind: "deployments" | "services" | "poddisruptionbudgets" | "replicasets", name: string): Promise<number> {
  const group = kind === "services" ? "/api/v1" : kind === "poddisruptionbudgets" ? "/apis/policy/v1" : "/apis/apps/v1";
  const list = await client.list<KubeObject>(`${group}/namespaces/${namespace.name}/${kind}`, { labelSelector: `gpufleet.io/model-deployment=${name}` });
  return list.items.length;
}

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "failover");
}, 60_000);

afterAll(async () => {
  await Promise.all(processes.map((operator) => operator.kill("SIGKILL")));
  await namespace?.delete();
  client.close();
});

describe("operator processes", () => {
  it("converges without duplicates after being killed in the middle of reconciling", async () => {
    const first = start("crash-a", { GPUFLEET_LEADER_ELECT: "false", GPUFLEET_OPS_PORT: String(await freePort()) });
    const names = Array.from({ length: 8 }, (_, i) => `crash-${i}`);
    for (const name of names) await client.apply(modelDeploymentObject(namespace.name, name, smallModel(1)), { fieldManager: "platform-team" });
    // Kill it as soon as it has written something, so some ModelDeployments are half done.
    await waitFor(async () => (await countOwned("deployments", "crash-0")) + (await countOwned("deployments", "crash-7")) > 0, {
      timeoutMs: 60_000,
      intervalMs: 20,
      description: "the first operator to create a Deployment",
    });
    await first.kill("SIGKILL");
    const notReadyAtKill = (
      await Promise.all(names.map(async (name) => condition(await readModelDeployment(client, namespace.name, name), "Ready")?.status !== "True"))
    ).filter(Boolean).length;

    const second = start("crash-b", { GPUFLEET_LEADER_ELECT: "false", GPUFLEET_OPS_PORT: String(await freePort()) });
    for (const name of names)
      await waitFor(async () => condition(await readModelDeployment(client, namespace.name, name), "Ready")?.status === "True", {
        timeoutMs: 90_000,
        description: `${name} Ready after restart`,
      });
    for (const name of names) {
      expect(await countOwned("deployments", name)).toBe(1);
      expect(await countOwned("services", name)).toBe(1);
      expect(await countOwned("poddisruptionbudgets", name)).toBe(1);
      expect(await countOwned("replicasets", name)).toBe(1);
      const pods = await client.list<V1Pod>(`/api/v1/namespaces/${namespace.name}/pods`, { labelSelector: `gpufleet.io/model-deployment=${name}` });
      expect(pods.items.filter((pod) => !pod.metadata?.deletionTimestamp)).toHaveLength(1);
    }
    expect(notReadyAtKill).toBeGreaterThan(0); // the kill really interrupted work
    await second.kill("SIGTERM");
  });

  it("runs one leader among two replicas and fails over within the lease duration when the leader dies", async () => {
    const ports = [await freePort(), await freePort()];
    const replicas = ports.map((port, i) => start(`replica-${i}`, { GPUFLEET_LEADER_ELECT: "true", GPUFLEET_OPS_PORT: String(port) }));
    const leaderIndex = await waitFor(
      async () => {
        const leading = await Promise.all(ports.map(isLeader));
        return leading.filter(Boolean).length === 1 ? leading.indexOf(true) : undefined;
      },
      { timeoutMs: 30_000, description: "exactly one leader" },
    );
    // The standby stays a standby while the leader renews.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(await Promise.all(ports.map(isLeader))).toEqual(ports.map((_, i) => i === leaderIndex));

    await client.apply(modelDeploymentObject(namespace.name, "led-1", smallModel(1)), { fieldManager: "platform-team" });
    await waitFor(async () => condition(await readModelDeployment(client, namespace.name, "led-1"), "Ready")?.status === "True", {
      timeoutMs: 60_000,
      description: "led-1 Ready under the first leader",
    });

    const killedAt = Date.now();
    await replicas[leaderIndex]!.kill("SIGKILL");
    const standbyPort = ports[1 - leaderIndex]!;
    await waitFor(() => isLeader(standbyPort), { timeoutMs: 30_000, intervalMs: 250, description: "the standby to lead" });
    const failoverSeconds = (Date.now() - killedAt) / 1000;
    // Lease 15 s: the standby may take it once the last renewal is 15 s old.
    expect(failoverSeconds).toBeLessThan(15 + 5);

    await client.apply(modelDeploymentObject(namespace.name, "led-2", smallModel(1)), { fieldManager: "platform-team" });
    await waitFor(async () => condition(await readModelDeployment(client, namespace.name, "led-2"), "Ready")?.status === "True", {
      timeoutMs: 60_000,
      description: "led-2 Ready under the new leader",
    });
    process.stderr.write(`[failover] standby took over ${failoverSeconds.toFixed(1)}s after the leader was killed\n`);
  });

  it("hands the lease over at once when the leader shuts down gracefully (SIGTERM)", async () => {
    const ports = [await freePort(), await freePort()];
    const replicas = ports.map((port, i) => start(`graceful-${i}`, { GPUFLEET_LEADER_ELECT: "true", GPUFLEET_OPS_PORT: String(port), GPUFLEET_LEASE_NAME: "graceful" }));
    const leaderIndex = await waitFor(
      async () => {
        const leading = await Promise.all(ports.map(isLeader));
        return leading.filter(Boolean).length === 1 ? leading.indexOf(true) : undefined;
      },
      { timeoutMs: 30_000, description: "exactly one leader" },
    );
    const stoppedAt = Date.now();
    expect(await replicas[leaderIndex]!.kill("SIGTERM")).toBe(0);
    await waitFor(() => isLeader(ports[1 - leaderIndex]!), { timeoutMs: 15_000, intervalMs: 100, description: "the standby to lead" });
    // Released, not expired: well under the 15 s lease.
    expect((Date.now() - stoppedAt) / 1000).toBeLessThan(8);
  });
});
