import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Deployment } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeClient, type KubeObject } from "../operator/runtime/kube-client.js";
import { ensureClusterBinaries } from "../tools/binaries.js";
import { freeLoopbackPort, startLocalCluster, type LocalCluster } from "../sim/cluster/cluster.js";
import { loadNodePools } from "../sim/cluster/nodepools.js";
import { SHORT_LEASE_ENV } from "../sim/chaos/scenarios.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { condition, isLeader, modelDeploymentObject, modelDeploymentPath, readModelDeployment, spawnOperatorProcess, type OperatorProcess } from "./support/operator.js";

// Control-plane outages longer than the operator's lease, on a cluster of this file's own (the shared
// one stays up for the other files): kube-apiserver SIGKILLed and restarted, etcd SIGKILLed and restarted.
// The operator loses leadership during the outage; afterwards it must campaign again, build fresh
// controllers, and serve ModelDeployments created after the outage, with one replica and with two. A
// ModelDeployment deleted and re-created under the same name while the garbage collector is not running
// gets its objects back: the operator replaces those its dead namesake left.
//
// Wall time: the operators run with a 6 s lease (renew deadline 4 s, retry 1 s; SHORT_LEASE_ENV) instead of
// client-go's 15/10/2 s, so an outage of 9 s is longer than the lease, and one outage serves all three
// proofs at once: the single replica watches one namespace, the pair another, each with its own Lease.

const LEASE_SECONDS = Number(SHORT_LEASE_ENV.GPUFLEET_LEASE_DURATION_SECONDS);
const OUTAGE_MS = 9_000; // longer than the lease
let cluster: LocalCluster;
let client: KubeClient;
/** The single replica's namespace, and the pair's. */
let solo: TestNamespace;
let pair: TestNamespace;
const logDir = mkdtempSync(join(tmpdir(), "gpufleet-outage-logs-"));
const processes: OperatorProcess[] = [];

const smallModel = (replicas = 1) => ({
  model: { name: "llama-3.2-1b", source: { huggingFace: { repo: "meta-llama/Llama-3.2-1B-Instruct" } }, maxContextLength: 8192 },
  gpu: { products: ["NVIDIA-L4"] },
  replicas,
});

async function healthz(port: number): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/healthz`)).status;
  } catch {
    return 0;
  }
}

async function startOperator(name: string, namespace: TestNamespace, leaseName: string): Promise<{ operator: OperatorProcess; port: number }> {
  const port = await freeLoopbackPort();
  const operator = spawnOperatorProcess(
    cluster.kubeconfigPath,
    {
      GPUFLEET_WATCH_NAMESPACES: namespace.name,
      GPUFLEET_LEASE_NAMESPACE: namespace.name,
      GPUFLEET_LEASE_NAME: leaseName,
      GPUFLEET_LEADER_ELECT: "true",
      GPUFLEET_OPS_PORT: String(port),
      POD_NAME: name,
      ...SHORT_LEASE_ENV,
    },
    join(logDir, `${name}.log`),
  );
  processes.push(operator);
  return { operator, port };
}

async function create(namespace: TestNamespace, name: string, replicas = 1): Promise<void> {
  await waitFor(
    async () => {
      await client.apply(modelDeploymentObject(namespace.name, name, smallModel(replicas)), { fieldManager: "platform-team" });
      return true;
    },
    { timeoutMs: 30_000, description: `apply ${name}` },
  );
}

/** The operator's share: the workload of this generation applied (observedGeneration) and owned by this uid. */
async function waitApplied(namespace: TestNamespace, name: string, timeoutMs: number): Promise<void> {
  await waitFor(
    async () => {
      const md = await readModelDeployment(client, namespace.name, name);
      if (md.status?.observedGeneration !== md.metadata.generation) return false;
      const deployment = await client.get<V1Deployment>(`/apis/apps/v1/namespaces/${namespace.name}/deployments/${name}`);
      return deployment.metadata?.ownerReferences?.[0]?.uid === md.metadata.uid;
    },
    { timeoutMs, intervalMs: 250, description: `${name} applied by the operator` },
  );
}

/** Served: the Deployment is this ModelDeployment's, its generation observed, all replicas Ready. */
async function waitServed(namespace: TestNamespace, name: string, timeoutMs: number, replicas = 1) {
  return waitFor(
    async () => {
      const md = await readModelDeployment(client, namespace.name, name);
      if (md.status?.observedGeneration !== md.metadata.generation) return undefined;
      if (condition(md, "Ready")?.status !== "True" || md.status?.readyReplicas !== replicas) return undefined;
      const deployment = await client.get<V1Deployment>(`/apis/apps/v1/namespaces/${namespace.name}/deployments/${name}`);
      return deployment.metadata?.ownerReferences?.[0]?.uid === md.metadata.uid ? md : undefined;
    },
    { timeoutMs, intervalMs: 250, description: `${name} served (${replicas} ready, generation observed)` },
  );
}

async function sleepUntil(atMs: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, atMs - Date.now())));
}

function report(line: string): void {
  process.stderr.write(`[outage] ${line}\n`);
}

const seconds = (fromMs: number) => ((Date.now() - fromMs) / 1000).toFixed(1);

beforeAll(async () => {
  cluster = await startLocalCluster({ binaries: await ensureClusterBinaries(), nodePools: loadNodePools(), log: report });
  client = new KubeClient(cluster.kubeConfig, { requestTimeoutMs: 5_000 });
  await ensureModelDeploymentCrd(cluster.kubeConfig);
  [solo, pair] = await Promise.all([uniqueNamespace(cluster.kubeConfig, "outage-solo"), uniqueNamespace(cluster.kubeConfig, "outage-pair")]);
}, 300_000);

afterAll(async () => {
  await Promise.all(processes.map((operator) => operator.kill("SIGKILL")));
  client?.close();
  await cluster?.stop();
});

describe("the operator after a control-plane outage longer than its lease", () => {
  let single: { operator: OperatorProcess; port: number };
  let replicas: Array<{ operator: OperatorProcess; port: number }>;
  const oneLeader = () =>
    waitFor(
      async () => {
        const leading = await Promise.all(replicas.map(({ port }) => isLeader(port)));
        return leading.filter(Boolean).length === 1 ? leading.indexOf(true) : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250, description: "exactly one leader of the pair" },
    );

  it(`kube-apiserver down ${OUTAGE_MS / 1000} s (lease ${LEASE_SECONDS} s): one replica and a pair campaign again and serve new and changed ModelDeployments; a namesake re-created right after, while nothing collects garbage, takes its objects back`, async () => {
    single = await startOperator("solo", solo, "solo");
    replicas = await Promise.all(["pair-0", "pair-1"].map((name) => startOperator(name, pair, "pair")));
    await waitFor(() => isLeader(single.port), { timeoutMs: 60_000, description: "the single replica to lead" });
    const firstLeader = await oneLeader();
    for (const name of ["before-0", "before-1", "before-2"]) await create(solo, name);
    for (const name of ["pair-before", "again"]) await create(pair, name);
    await Promise.all([
      ...["before-0", "before-1", "before-2"].map((name) => waitServed(solo, name, 90_000)),
      waitServed(pair, "pair-before", 90_000),
    ]);
    const old = await waitServed(pair, "again", 90_000);
    const oldDeploymentUid = (await client.get<KubeObject>(`/apis/apps/v1/namespaces/${pair.name}/deployments/again`)).metadata?.uid;

    const apiKilledAt = Date.now();
    await cluster.killComponent("kube-apiserver");
    await Promise.all(
      [single, ...replicas].map(({ port }) =>
        waitFor(async () => !(await isLeader(port)), { timeoutMs: 20_000, description: "leadership lost during the outage" }),
      ),
    );
    const lostAfter = seconds(apiKilledAt);
    await sleepUntil(apiKilledAt + OUTAGE_MS);
    await cluster.startComponent("kube-apiserver");
    const apiBack = Date.now();
    expect(await healthz(single.port)).toBe(200); // alive: campaigning, not stuck
    // The garbage collector (kube-controller-manager) is not running, as if it had not caught up: the old
    // Deployment, Service and PDB of "again" stay behind, owned by a uid that no longer exists.
    await cluster.killComponent("kube-controller-manager");
    await create(solo, "after-apiserver");
    await client.patch(`${modelDeploymentPath(solo.name, "before-0")}/scale`, { spec: { replicas: 2 } });
    await create(pair, "pair-after");
    // Deleted and re-created a few seconds after the API came back (the chaos probe's finding).
    await sleepUntil(apiBack + 3_000);
    await client.delete(modelDeploymentPath(pair.name, "again"));
    await create(pair, "again");
    const recreatedAt = Date.now();
    const fresh = await readModelDeployment(client, pair.name, "again");
    expect(fresh.metadata.uid).not.toBe(old.metadata.uid);
    const ownerOf = async (path: string) => (await client.get<KubeObject>(path)).metadata?.ownerReferences?.[0]?.uid;
    const paths = [
      `/apis/apps/v1/namespaces/${pair.name}/deployments/again`,
      `/api/v1/namespaces/${pair.name}/services/again`,
      `/apis/policy/v1/namespaces/${pair.name}/poddisruptionbudgets/again`,
    ];
    await waitFor(async () => (await Promise.all(paths.map(ownerOf))).every((uid) => uid === fresh.metadata.uid), {
      timeoutMs: 60_000,
      intervalMs: 250,
      description: "Deployment, Service and PDB taken over by the new uid",
    });
    const replaced = seconds(recreatedAt);
    // Taken over, not re-created: the Deployment (and its running pods) is the one the dead namesake had.
    expect((await client.get<KubeObject>(paths[0]!)).metadata?.uid).toBe(oldDeploymentUid);
    expect(condition(await readModelDeployment(client, pair.name, "again"), "Ready")?.reason).not.toBe("NameConflict");
    await Promise.all([waitApplied(solo, "after-apiserver", 60_000), waitApplied(pair, "pair-after", 60_000)]);
    const applied = seconds(apiBack);
    await cluster.startComponent("kube-controller-manager");
    await Promise.all([
      waitServed(solo, "after-apiserver", 120_000),
      waitServed(solo, "before-0", 120_000, 2),
      waitServed(pair, "pair-after", 120_000),
      waitServed(pair, "again", 120_000),
    ]);
    const served = seconds(apiBack);
    expect(await isLeader(single.port)).toBe(true);
    const secondLeader = await oneLeader();
    report(
      `kube-apiserver down ${OUTAGE_MS / 1000}s (lease ${LEASE_SECONDS}s; leadership lost by all three ${lostAfter}s after the kill): ` +
        `new ModelDeployments applied ${applied}s and served (pods Ready, kube-controller-manager stopped meanwhile) ${served}s after the API was back; ` +
        `pair leader ${firstLeader} before, ${secondLeader} after; objects of the dead uid taken over ${replaced}s after the re-create`,
    );
  }, 300_000);

  it(`etcd down ${OUTAGE_MS / 1000} s: the single replica campaigns again and serves a new ModelDeployment`, async () => {
    const { operator, port } = single;
    const etcdKilledAt = Date.now();
    await cluster.killComponent("etcd");
    await waitFor(async () => !(await isLeader(port)), { timeoutMs: 25_000, description: "leadership lost while etcd is down" });
    await sleepUntil(etcdKilledAt + OUTAGE_MS);
    await cluster.startComponent("etcd");
    const etcdBack = Date.now();
    await create(solo, "after-etcd");
    await waitApplied(solo, "after-etcd", 60_000);
    const applied = seconds(etcdBack);
    await waitServed(solo, "after-etcd", 120_000);
    expect(await healthz(port)).toBe(200);
    expect(readFileSync(operator.logFile, "utf8")).toMatch(/campaigning again/);
    report(`etcd down ${OUTAGE_MS / 1000}s: a new ModelDeployment applied ${applied}s, served ${seconds(etcdBack)}s after etcd was back`);
  }, 300_000);

  it("the pair after both outages: one leads, and when it dies the other takes over and serves", async () => {
    // Whichever leads now, the other must still be campaigning: kill the leader, the other takes over.
    const leader = await oneLeader();
    await replicas[leader]!.operator.kill("SIGKILL");
    const killedAt = Date.now();
    await waitFor(() => isLeader(replicas[1 - leader]!.port), { timeoutMs: 40_000, intervalMs: 250, description: "the other replica to lead" });
    const failover = seconds(killedAt);
    await create(pair, "pair-failover");
    await waitServed(pair, "pair-failover", 90_000);
    report(`pair: leader ${leader} SIGKILLed, the other led ${failover}s later (lease ${LEASE_SECONDS}s) and served a new ModelDeployment`);
  }, 180_000);
});
