import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Deployment } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeClient, type KubeObject } from "../operator/runtime/kube-client.js";
import { ensureClusterBinaries } from "../tools/binaries.js";
import { freeLoopbackPort, startLocalCluster, type LocalCluster } from "../sim/cluster/cluster.js";
import { loadNodePools } from "../sim/cluster/nodepools.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { condition, isLeader, modelDeploymentObject, modelDeploymentPath, readModelDeployment, spawnOperatorProcess, type OperatorProcess } from "./support/operator.js";

// Control-plane outages longer than the operator's 15 s lease, on a cluster of this file's own (the shared
// one stays up for the other files): kube-apiserver SIGKILLed and restarted, etcd SIGKILLed and restarted.
// The operator loses leadership during the outage; afterwards it must campaign again, build fresh
// controllers, and serve ModelDeployments created after the outage, with one replica and with two. A
// ModelDeployment deleted and re-created under the same name while the garbage collector is not running
// gets its objects back: the operator replaces those its dead namesake left.

const OUTAGE_MS = 22_000; // lease 15 s (defaults: lease 15 s, renew deadline 10 s, retry 2 s)
let cluster: LocalCluster;
let client: KubeClient;
let namespace: TestNamespace;
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

async function startOperator(name: string, leaseName: string): Promise<{ operator: OperatorProcess; port: number }> {
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
    },
    join(logDir, `${name}.log`),
  );
  processes.push(operator);
  livePorts.push(port);
  return { operator, port };
}

async function create(name: string, replicas = 1): Promise<void> {
  await waitFor(
    async () => {
      await client.apply(modelDeploymentObject(namespace.name, name, smallModel(replicas)), { fieldManager: "platform-team" });
      return true;
    },
    { timeoutMs: 30_000, description: `apply ${name}` },
  );
}

/** The operator's share: the workload of this generation applied (observedGeneration) and owned by this uid. */
async function waitApplied(name: string, timeoutMs: number): Promise<void> {
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
async function waitServed(name: string, timeoutMs: number, replicas = 1) {
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

const livePorts: number[] = [];

async function sleepUntil(atMs: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, atMs - Date.now())));
}

function report(line: string): void {
  process.stderr.write(`[outage] ${line}\n`);
}

beforeAll(async () => {
  cluster = await startLocalCluster({ binaries: await ensureClusterBinaries(), nodePools: loadNodePools(), log: report });
  client = new KubeClient(cluster.kubeConfig, { requestTimeoutMs: 5_000 });
  await ensureModelDeploymentCrd(cluster.kubeConfig);
  namespace = await uniqueNamespace(cluster.kubeConfig, "outage");
}, 300_000);

afterAll(async () => {
  await Promise.all(processes.map((operator) => operator.kill("SIGKILL")));
  client?.close();
  await cluster?.stop();
});

describe("the operator after a control-plane outage longer than its lease", () => {
  it("one replica: campaigns again after kube-apiserver was down 22 s and after etcd was down 25 s, and serves new and changed ModelDeployments", async () => {
    const { operator, port } = await startOperator("solo", "solo");
    await waitFor(() => isLeader(port), { timeoutMs: 30_000, description: "the operator to lead" });
    for (const name of ["before-0", "before-1", "before-2"]) await create(name);
    for (const name of ["before-0", "before-1", "before-2"]) await waitServed(name, 90_000);

    const apiKilledAt = Date.now();
    await cluster.killComponent("kube-apiserver");
    await waitFor(async () => !(await isLeader(port)), { timeoutMs: 20_000, description: "leadership lost during the outage" });
    await sleepUntil(apiKilledAt + OUTAGE_MS);
    await cluster.startComponent("kube-apiserver");
    const apiBack = Date.now();
    expect(await healthz(port)).toBe(200); // alive: campaigning, not stuck
    await create("after-apiserver");
    await client.patch(`${modelDeploymentPath(namespace.name, "before-0")}/scale`, { spec: { replicas: 2 } });
    await waitApplied("after-apiserver", 60_000);
    const apiApplied = (Date.now() - apiBack) / 1000;
    await waitServed("after-apiserver", 120_000);
    await waitServed("before-0", 120_000, 2);
    const apiConverge = (Date.now() - apiBack) / 1000;
    expect(await isLeader(port)).toBe(true);

    const etcdKilledAt = Date.now();
    await cluster.killComponent("etcd");
    await waitFor(async () => !(await isLeader(port)), { timeoutMs: 25_000, description: "leadership lost while etcd is down" });
    await sleepUntil(etcdKilledAt + 25_000);
    await cluster.startComponent("etcd");
    const etcdBack = Date.now();
    await create("after-etcd");
    await waitApplied("after-etcd", 60_000);
    const etcdApplied = (Date.now() - etcdBack) / 1000;
    await waitServed("after-etcd", 120_000);
    const etcdConverge = (Date.now() - etcdBack) / 1000;
    expect(await healthz(port)).toBe(200);
    expect(readFileSync(operator.logFile, "utf8")).toMatch(/campaigning again/);
    report(
      `one replica: kube-apiserver down ${OUTAGE_MS / 1000}s -> a new ModelDeployment applied ${apiApplied.toFixed(1)}s and served (pods Ready) ${apiConverge.toFixed(1)}s after the API was back; ` +
        `etcd down 25s -> applied ${etcdApplied.toFixed(1)}s, served ${etcdConverge.toFixed(1)}s`,
    );
    await operator.kill("SIGTERM");
  }, 420_000);

  it("two replicas: after kube-apiserver was down 22 s one of them leads and serves, and when that one dies the other takes over", async () => {
    const replicas = await Promise.all(["pair-0", "pair-1"].map((name) => startOperator(name, "pair")));
    const oneLeader = () =>
      waitFor(
        async () => {
          const leading = await Promise.all(replicas.map(({ port }) => isLeader(port)));
          return leading.filter(Boolean).length === 1 ? leading.indexOf(true) : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 250, description: "exactly one leader" },
      );
    const first = await oneLeader();
    await create("pair-before");
    await waitServed("pair-before", 90_000);

    await cluster.restartComponent("kube-apiserver", OUTAGE_MS);
    const apiBack = Date.now();
    await create("pair-after");
    await waitApplied("pair-after", 60_000);
    const applied = (Date.now() - apiBack) / 1000;
    await waitServed("pair-after", 120_000);
    const converge = (Date.now() - apiBack) / 1000;
    const second = await oneLeader();

    // Whichever leads now, the other must still be campaigning: kill the leader, the other takes over.
    await replicas[second]!.operator.kill("SIGKILL");
    const killedAt = Date.now();
    await waitFor(() => isLeader(replicas[1 - second]!.port), { timeoutMs: 40_000, intervalMs: 250, description: "the other replica to lead" });
    const failover = (Date.now() - killedAt) / 1000;
    await create("pair-failover");
    await waitServed("pair-failover", 90_000);
    report(`two replicas: leader ${first} before, ${second} after a ${OUTAGE_MS / 1000}s kube-apiserver outage; new ModelDeployment applied ${applied.toFixed(1)}s, served ${converge.toFixed(1)}s after the API was back; failover afterwards ${failover.toFixed(1)}s`);
  }, 420_000);

  it("a ModelDeployment deleted and re-created under its name right after the outage, while nothing collects garbage, gets its objects back", async () => {
    // The surviving replica of the previous test leads.
    const { port } = await startOperator("recreate", "pair");
    await waitFor(async () => (await Promise.all(livePorts.map(isLeader))).some(Boolean), { timeoutMs: 40_000, description: "a leader" });
    expect(port).toBeGreaterThan(0);
    await create("again");
    const old = await waitServed("again", 90_000);
    const oldDeploymentUid = (await client.get<KubeObject>(`/apis/apps/v1/namespaces/${namespace.name}/deployments/again`)).metadata?.uid;

    await cluster.restartComponent("kube-apiserver", OUTAGE_MS);
    // The garbage collector (kube-controller-manager) is not running, as if it had not caught up: the old
    // Deployment, Service and PDB stay behind, owned by a uid that no longer exists.
    await cluster.killComponent("kube-controller-manager");
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    await client.delete(modelDeploymentPath(namespace.name, "again"));
    await create("again");
    const recreatedAt = Date.now();
    const fresh = await readModelDeployment(client, namespace.name, "again");
    expect(fresh.metadata.uid).not.toBe(old.metadata.uid);
    const ownerOf = async (path: string) => (await client.get<KubeObject>(path)).metadata?.ownerReferences?.[0]?.uid;
    const paths = [
      `/apis/apps/v1/namespaces/${namespace.name}/deployments/again`,
      `/api/v1/namespaces/${namespace.name}/services/again`,
      `/apis/policy/v1/namespaces/${namespace.name}/poddisruptionbudgets/again`,
    ];
    await waitFor(async () => (await Promise.all(paths.map(ownerOf))).every((uid) => uid === fresh.metadata.uid), {
      timeoutMs: 60_000,
      intervalMs: 250,
      description: "Deployment, Service and PDB taken over by the new uid",
    });
    const replaced = (Date.now() - recreatedAt) / 1000;
    // Taken over, not re-created: the Deployment (and its running pods) is the one the dead namesake had.
    expect((await client.get<KubeObject>(paths[0]!)).metadata?.uid).toBe(oldDeploymentUid);
    const current = await readModelDeployment(client, namespace.name, "again");
    expect(condition(current, "Ready")?.reason).not.toBe("NameConflict");

    await cluster.startComponent("kube-controller-manager");
    await waitServed("again", 120_000);
    report(`re-created after the outage: objects of the dead uid taken over ${replaced.toFixed(1)}s after the re-create`);
  }, 300_000);
});
