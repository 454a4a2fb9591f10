import { CoreV1Api, type V1Node, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ModelDeployment } from "../operator/api/modeldeployment.js";
import type { RunningOperator } from "../operator/operator.js";
import { KubeClient, type KubeObject } from "../operator/runtime/kube-client.js";
import { loadGatewayConfig } from "../gateway/config.js";
import { startGateway, type Gateway } from "../gateway/gateway.js";
import { LWS_LABELS } from "../operator/render/leaderworkerset.js";
import { MANAGED_BY_SELECTOR, SimFleet } from "../sim/engine/fleet.js";
import { engineParamsForNames } from "../sim/engine/model.js";
import { runLoad } from "../sim/loadgen/loadgen.js";
import type { ScheduledRequest } from "../sim/loadgen/trace.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, waitUntil, type TestNamespace } from "./support/kube.js";
import { condition, modelDeploymentObject, modelDeploymentPath, readModelDeployment, startTestOperator } from "./support/operator.js";
import { loopbackGatewayEnv } from "./support/gateway.js";

// A model no node can hold, end to end on the local cluster with the real LeaderWorkerSet controller (started by
// the cluster harness, webhooks on): Llama 3.1 405B bf16 planned as PP 2 x TP 8 on the H100 pool, one
// LeaderWorkerSet group of 2 pods per replica scheduled by the real scheduler; the autoscaler adds a group under
// load and removes one (both pods) after it; a dead worker restarts its whole group; a pool of one node is refused.
// The gateway routes the model's requests to the group leaders (never a worker). A ModelDeployment switched
// between one node and two per replica (spec.gpu.pipelineParallelism) moves from its Deployment to a
// LeaderWorkerSet and back, the previous workload scaled to 0 (same object, not deleted). The cases run
// concurrently: the switch and the refusal happen while the 405B case waits out its scale-down window.

const H100 = "NVIDIA-H100-80GB-HBM3";
const A100 = "NVIDIA-A100-SXM4-80GB";
const SCALE_DOWN_WINDOW_SECONDS = 10;
/** GPUFLEET_AUTOSCALER_WINDOW_SECONDS: the policy's stable/token windows (60 s by default), so the scale-down comes sooner. */
const POLICY_WINDOW_SECONDS = 15;
const kubeConfig = testKubeConfig();
const client = new KubeClient(kubeConfig);
const core = kubeConfig.makeApiClient(CoreV1Api);
let namespace: TestNamespace;
let operator: RunningOperator;
let fleet: SimFleet;
let gateway: Gateway;
/** Two more H100 nodes (the shared pool has 2) so that a second 2-node group has room. */
const extraNodes = ["h100-mn-0", "h100-mn-1"];

const llama405b = (extra: Record<string, unknown> = {}) => ({
  model: { name: "llama-3.1-405b-instruct", source: { huggingFace: { repo: "meta-llama/Llama-3.1-405B-Instruct" } }, maxContextLength: 32_768 },
  engine: { kind: "vllm" },
  ...extra,
});

interface Event {
  reason?: string;
  note?: string;
  type?: string;
  regarding?: { name?: string; kind?: string };
}
async function events(name: string): Promise<Event[]> {
  const list = await client.list<Event>(`/apis/events.k8s.io/v1/namespaces/${namespace.name}/events`);
  return list.items.filter((event) => event.regarding?.name === name);
}

async function pods(name: string): Promise<V1Pod[]> {
  return (await core.listNamespacedPod({ namespace: namespace.name, labelSelector: `gpufleet.io/model-deployment=${name}` })).items.filter(
    (pod) => !pod.metadata?.deletionTimestamp,
  );
}
const runningReady = (pod: V1Pod) =>
  pod.status?.phase === "Running" && !!pod.spec?.nodeName && (pod.status.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
const group = (pod: V1Pod) => pod.metadata?.labels?.[LWS_LABELS.groupIndex];
/** Pods as a timed-out wait shows them: name, uid prefix, phase, Ready, group/worker index. */
const podsSeen = (list: V1Pod[]): string =>
  `${list.length} pods: ${list
    .map((pod) => `${pod.metadata?.name} (uid ${pod.metadata?.uid?.slice(0, 8)}, ${pod.status?.phase}${runningReady(pod) ? ", ready" : ""}, group ${group(pod)}/worker ${pod.metadata?.labels?.[LWS_LABELS.workerIndex]})`)
    .join("; ")}`;
/** A ModelDeployment's scale as a timed-out wait shows it. */
const scaleSeen = (md: ModelDeployment): string =>
  `spec.replicas ${md.spec.replicas}, ready ${md.status?.readyReplicas ?? 0}, Ready: ${condition(md, "Ready")?.message ?? "none"}, autoscaler: ${md.status?.autoscaler?.reason ?? "none"}`;

/** A short burst against the leader's engine: `rate` requests/s of 3,000 prompt and 32 output tokens for `seconds`. */
function overload(rate: number, seconds: number): ScheduledRequest[] {
  return Array.from({ length: rate * seconds }, (_, index) => ({
    index,
    offsetMs: (index * 1000) / rate,
    sendAtMs: (index * 1000) / rate,
    promptTokens: 3000,
    outputTokens: 32,
  }));
}

/** What a person would look at when a step times out: conditions, the LeaderWorkerSet, pods, events. */
async function diagnose(name: string): Promise<string> {
  const md = await readModelDeployment(client, namespace.name, name).catch(() => undefined);
  const lws = await client.get<KubeObject & { status?: unknown }>(`/apis/leaderworkerset.x-k8s.io/v1/namespaces/${namespace.name}/leaderworkersets/${name}`).catch((e: Error) => ({ error: e.message }));
  const list = await pods(name).catch(() => []);
  return JSON.stringify(
    {
      conditions: md?.status?.conditions?.map((c) => `${c.type}=${c.status} ${c.reason}: ${c.message}`),
      replicas: [md?.spec.replicas, md?.status?.replicas, md?.status?.readyReplicas],
      autoscaler: md?.status?.autoscaler,
      lws: "status" in lws ? lws.status : lws,
      pods: list.map((pod) => ({ name: pod.metadata?.name, phase: pod.status?.phase, node: pod.spec?.nodeName, labels: pod.metadata?.labels, conditions: pod.status?.conditions?.map((c) => `${c.type}=${c.status} ${c.reason ?? ""} ${c.message ?? ""}`) })),
      events: (await events(name)).map((e) => `${e.type} ${e.reason}: ${(e.note ?? "").slice(0, 300)}`),
    },
    null,
    1,
  );
}

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "multinode");
  // Copies of an H100 node of the shared pool (same labels, taint, capacity), on their own loopback IPs.
  const template = await core.readNode({ name: "h100-0" });
  for (const [index, name] of extraNodes.entries()) {
    const node: V1Node = {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name, annotations: template.metadata?.annotations ?? {}, labels: { ...(template.metadata?.labels ?? {}), "kubernetes.io/hostname": name } },
      spec: { taints: template.spec?.taints ?? [] },
      status: {
        addresses: [
          { type: "InternalIP", address: `127.0.1.${20 + index}` },
          { type: "Hostname", address: name },
        ],
        capacity: template.status?.capacity ?? {},
        allocatable: template.status?.allocatable ?? {},
      },
    };
    await core.createNode({ body: node });
  }
  await waitFor(
    async () => {
      const nodes = await Promise.all(extraNodes.map((name) => core.readNode({ name })));
      return nodes.every((node) => node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"));
    },
    { timeoutMs: 30_000, description: "extra H100 nodes Ready" },
  );
  operator = await startTestOperator(kubeConfig, namespace.name, {
    GPUFLEET_SCRAPE_INTERVAL_SECONDS: "1",
    GPUFLEET_SCRAPE_TIMEOUT_SECONDS: "1",
    GPUFLEET_AUTOSCALER_WINDOW_SECONDS: String(POLICY_WINDOW_SECONDS),
  });
  fleet = new SimFleet({
    listPods: async () => (await core.listNamespacedPod({ namespace: namespace.name, labelSelector: MANAGED_BY_SELECTOR })).items,
    // The leader's API server, simulated with a small replica so a short load saturates it (the simulator
    // sizes single-node replicas only).
    paramsFor: () => engineParamsForNames("llama-3.1-8b", "NVIDIA-L4"),
    pollIntervalMs: 250,
    loadDelayMs: 300,
  });
  fleet.start();
  gateway = await startGateway(
    new KubeClient(kubeConfig, { userAgent: "gpufleet-gateway" }),
    loadGatewayConfig(loopbackGatewayEnv(namespace.name, "gateway-multinode", { GPUFLEET_GATEWAY_DEMAND_WRITES: "false" })),
  );
}, 120_000);

/** One completion through the gateway: its status and the pod it went to (the gateway's debug header). */
async function throughGateway(model: string): Promise<{ status: number; pod: string | null }> {
  const response = await fetch(`http://127.0.0.1:${gateway.port}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, prompt: "hello", max_tokens: 2 }),
  });
  await response.body?.cancel().catch(() => undefined);
  return { status: response.status, pod: response.headers.get("x-gpufleet-endpoint") };
}

/** Polls until a request through the gateway is answered 200 by a pod `accept` takes. */
async function gatewayReaches(model: string, accept: (pod: string) => boolean, description: string): Promise<string> {
  const answer = await waitUntil(() => throughGateway(model), (a) => a.status === 200 && a.pod !== null && accept(a.pod), {
    timeoutMs: 20_000,
    intervalMs: 200,
    description,
    show: (a) => `HTTP ${a.status} from ${a.pod ?? "no pod"}`,
  });
  return answer.pod!;
}

afterAll(async () => {
  await gateway?.stop(500);
  await fleet?.stop();
  await operator?.stop();
  await namespace?.delete();
  for (const name of extraNodes) await core.deleteNode({ name }).catch(() => undefined);
  client.close();
});

describe.concurrent("a model bigger than one node, as LeaderWorkerSet groups", () => {
  it("refuses a pool of one node with a condition and an Event that name the nodes it needs", async () => {
    await client.apply(modelDeploymentObject(namespace.name, "one-node", llama405b({ gpu: { products: [A100] } })), { fieldManager: "platform-team" });
    const md = await waitFor(
      async () => {
        const read = await readModelDeployment(client, namespace.name, "one-node");
        return condition(read, "Ready")?.reason === "DoesNotFit" ? read : undefined;
      },
      { timeoutMs: 30_000, description: "one-node refused" },
    );
    expect(condition(md, "Ready")?.message).toMatch(/needs 2 nodes per replica \(PP 2 x TP 8 = 16 x NVIDIA-A100-SXM4-80GB\) but the NVIDIA-A100-SXM4-80GB pool has 1 ready node/);
    expect(condition(md, "Degraded")).toMatchObject({ status: "True", reason: "DoesNotFit" });
    const warnings = await waitFor(async () => ((await events("one-node")).some((e) => e.reason === "DoesNotFit") ? events("one-node") : undefined), {
      timeoutMs: 15_000,
      description: "DoesNotFit event",
    });
    expect(warnings.find((e) => e.reason === "DoesNotFit")?.type).toBe("Warning");
    expect(await client.get<KubeObject>(`/apis/leaderworkerset.x-k8s.io/v1/namespaces/${namespace.name}/leaderworkersets/one-node`).catch(() => undefined)).toBeUndefined();
  });

  it("serves 405B as a 2-node group, scales by groups through the autoscaler, drains a group whole and restarts a group whose worker died", async () => {
    const name = "big";
    // Seconds from the apply to each milestone, printed at the end (the figures the README quotes).
    const startedAt = Date.now();
    const marks: string[] = [];
    const mark = (what: string) => marks.push(`${what} ${((Date.now() - startedAt) / 1000).toFixed(1)}s`);
    await client.apply(
      modelDeploymentObject(
        namespace.name,
        name,
        llama405b({
          gpu: { products: [H100] },
          replicas: 1,
          autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 2, scaleDownStabilizationSeconds: SCALE_DOWN_WINDOW_SECONDS },
        }),
      ),
      { fieldManager: "platform-team" },
    );
    // Ready: one group (leader + worker) scheduled by the scheduler on two H100 nodes of one pool and zone.
    const ready = await waitFor(
      async () => {
        const md = await readModelDeployment(client, namespace.name, name);
        return condition(md, "Ready")?.status === "True" ? md : undefined;
      },
      { timeoutMs: 60_000, description: "405B Ready" },
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await diagnose(name)}`);
    });
    mark("Ready (1 group of 2 pods)");
    expect(ready.status?.plan).toMatchObject({ gpuProduct: H100, tensorParallelism: 8, pipelineParallelism: 2, nodesPerReplica: 2, gpusPerReplica: 16 });
    expect(ready.status?.plan?.stages).toMatch(/stage 0: layers 0-62 \+ embedding.*stage 1: layers 63-125 \+ LM head/);
    const lws = await client.get<KubeObject & { spec: { leaderWorkerTemplate: { size: number; restartPolicy: string } } }>(
      `/apis/leaderworkerset.x-k8s.io/v1/namespaces/${namespace.name}/leaderworkersets/${name}`,
    );
    expect(lws.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: "ModelDeployment", uid: ready.metadata.uid, controller: true })]);
    expect(lws.spec.leaderWorkerTemplate).toMatchObject({ size: 2, restartPolicy: "RecreateGroupOnPodRestart" });
    const first = await pods(name);
    expect(first).toHaveLength(2);
    expect(first.every(runningReady)).toBe(true);
    const nodesOf = async (list: V1Pod[]) => Promise.all(list.map((pod) => core.readNode({ name: pod.spec!.nodeName! })));
    const firstNodes = await nodesOf(first);
    expect(new Set(firstNodes.map((node) => node.metadata?.name)).size).toBe(2);
    expect(new Set(firstNodes.map((node) => node.metadata?.labels?.["topology.kubernetes.io/zone"])).size).toBe(1);
    expect(firstNodes.every((node) => node.metadata?.labels?.["nvidia.com/gpu.product"] === H100)).toBe(true);
    const leader = first.find((pod) => pod.metadata?.labels?.[LWS_LABELS.workerIndex] === "0")!;
    const worker = first.find((pod) => pod.metadata?.labels?.[LWS_LABELS.workerIndex] === "1")!;
    expect(leader.spec?.containers[0]?.args).toEqual(expect.arrayContaining(["--pipeline-parallel-size", "2", "--nnodes", "--master-addr"]));
    expect(leader.spec?.containers[0]?.env).toEqual(expect.arrayContaining([expect.objectContaining({ name: "LWS_LEADER_ADDRESS" })]));
    expect(worker.spec?.containers[0]?.args).toEqual(expect.arrayContaining(["--headless", "$(LWS_WORKER_INDEX)"]));
    expect(worker.spec?.containers[0]?.ports).toBeUndefined();
    expect((await events(name)).map((e) => e.note ?? "").join("\n")).toMatch(/LeaderWorkerSet group of 2 pods \(PP 2 x TP 8\)/);

    // Through the gateway: the model's requests go to the group leader, whose owner chain is
    // Pod -> StatefulSet -> LeaderWorkerSet -> ModelDeployment (the worker serves no API).
    const leaderName = leader.metadata!.name!;
    expect(await gatewayReaches("llama-3.1-405b-instruct", (pod) => pod === leaderName, "a request through the gateway answered by the leader")).toBe(leaderName);
    mark("served through the gateway by the leader");

    // Scale up by a group under load on the leader's API server.
    await waitFor(async () => (await fetch(`http://${leader.status!.podIP}:8000/health`)).status === 200, { timeoutMs: 20_000, description: "leader engine up" });
    mark("load starts");
    const load = runLoad(overload(4, 4), {
      endpoints: [`http://${leader.status!.podIP}:8000`],
      policy: "round-robin",
      model: "llama-3.1-405b-instruct",
      maxOutputTokens: 32,
      requestTimeoutMs: 60_000,
      maxDurationMs: 10_000,
    });
    await waitUntil(() => readModelDeployment(client, namespace.name, name), (md) => md.spec.replicas === 2, {
      timeoutMs: 30_000,
      intervalMs: 250,
      description: "autoscaler adds a group",
      show: scaleSeen,
    });
    // Watched from now on: with 15 s policy windows the load may be out of the window by the time the second
    // group is up, and the step back down can follow its readiness within seconds.
    const twoReady = waitUntil(() => readModelDeployment(client, namespace.name, name), (md) => condition(md, "Ready")?.message === "2/2 replicas ready", {
      timeoutMs: 60_000,
      intervalMs: 200,
      description: "2/2 ready",
      show: scaleSeen,
    });
    twoReady.catch(() => undefined); // awaited below; not an unhandled rejection if an earlier step fails first
    const two = await waitUntil(() => pods(name), (list) => list.length === 4 && list.every(runningReady), {
      timeoutMs: 40_000,
      description: "second group running (4 pods, all ready)",
      show: podsSeen,
    });
    mark("second group running");
    expect(new Set(two.map((pod) => pod.spec?.nodeName)).size).toBe(4);
    expect(two.filter((pod) => group(pod) === "1")).toHaveLength(2);
    await twoReady;
    await load;

    // Load gone: after the stabilization window the autoscaler steps down; the LWS controller deletes group 1 whole.
    const groupZero = new Map(two.filter((pod) => group(pod) === "0").map((pod) => [pod.metadata!.name!, pod.metadata!.uid!]));
    await waitUntil(() => readModelDeployment(client, namespace.name, name), (md) => md.spec.replicas === 1, {
      show: scaleSeen,
      // The throughput signal keeps the load's peak for its window, then the stabilization window runs.
      timeoutMs: (POLICY_WINDOW_SECONDS + SCALE_DOWN_WINDOW_SECONDS + 60) * 1000,
      intervalMs: 500,
      description: "autoscaler removes a group",
    }).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await diagnose(name)}`);
    });
    const after = await waitUntil(() => pods(name), (list) => list.length === 2, {
      timeoutMs: 30_000,
      description: "group 1 drained (2 pods left)",
      show: podsSeen,
    });
    mark("group 1 drained");
    expect(after.every((pod) => group(pod) === "0")).toBe(true);
    expect(new Map(after.map((pod) => [pod.metadata!.name!, pod.metadata!.uid!]))).toEqual(groupZero);
    const reasons = (await events(name)).map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(["ScaledUp", "ScaledDown"]));

    // A worker dies: the whole group is recreated (its leader too), then serves again.
    const leaderUid = after.find((pod) => pod.metadata?.labels?.[LWS_LABELS.workerIndex] === "0")!.metadata!.uid!;
    const deadWorker = after.find((pod) => pod.metadata?.labels?.[LWS_LABELS.workerIndex] === "1")!;
    // An ordinary delete (not forced): the LWS controller sees the terminating worker and deletes the leader.
    await core.deleteNamespacedPod({ name: deadWorker.metadata!.name!, namespace: namespace.name, gracePeriodSeconds: 1 });
    mark("worker deleted");
    const restarted = await waitUntil(
      () => pods(name),
      (list) => {
        const newLeader = list.find((pod) => pod.metadata?.labels?.[LWS_LABELS.workerIndex] === "0");
        return list.length === 2 && newLeader !== undefined && newLeader.metadata?.uid !== leaderUid && list.every(runningReady);
      },
      { timeoutMs: 40_000, description: `group recreated after its worker died (a leader other than uid ${leaderUid.slice(0, 8)})`, show: podsSeen },
    );
    mark("group recreated (new leader and worker running)");
    expect(restarted.every((pod) => pod.metadata?.uid !== deadWorker.metadata?.uid)).toBe(true);
    await waitUntil(() => readModelDeployment(client, namespace.name, name), (md) => condition(md, "Ready")?.status === "True", {
      timeoutMs: 30_000,
      description: "Ready after the group restart",
      show: scaleSeen,
    });
    mark("Ready again after the group restart");
    // The recreated leader (same name, new pod and address) is routed to again. The LWS controller may
    // recreate the group more than once while the dead worker terminates, so any leader other than the
    // dead group's counts; the answer must come from a pod that exists now, ready.
    await waitFor(
      async () => {
        const answer = await throughGateway("llama-3.1-405b-instruct");
        const current = (await pods(name)).find((pod) => pod.metadata?.name === answer.pod);
        if (answer.status === 200 && current !== undefined && current.metadata?.uid !== leaderUid && runningReady(current)) return true;
        throw new Error(`HTTP ${answer.status} from ${answer.pod ?? "no pod"} (uid ${current?.metadata?.uid ?? "none"}, dead leader ${leaderUid})`);
      },
      { timeoutMs: 20_000, intervalMs: 200, description: "the recreated leader answers through the gateway" },
    );
    mark("recreated leader serves through the gateway");
    process.stdout.write(`[multinode] ${marks.join("; ")}\n`);
  }, 280_000);

  it("moves a ModelDeployment from its Deployment to a LeaderWorkerSet and back when its plan changes between one node and two per replica", async () => {
    const name = "switch";
    const model = "llama-3.1-8b-switch";
    const spec = (pipelineParallelism: number) => ({
      model: { name: model, source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 },
      engine: { kind: "vllm" },
      gpu: { products: ["NVIDIA-L4"], pipelineParallelism },
      replicas: 1,
    });
    const deploymentPath = `/apis/apps/v1/namespaces/${namespace.name}/deployments/${name}`;
    const lwsPath = `/apis/leaderworkerset.x-k8s.io/v1/namespaces/${namespace.name}/leaderworkersets/${name}`;
    type Scaled = KubeObject & { spec: { replicas: number } };
    const readyWith = (nodes: number) =>
      waitFor(
        async () => {
          const md = await readModelDeployment(client, namespace.name, name);
          return condition(md, "Ready")?.reason === "AllReplicasReady" && (md.status?.plan?.nodesPerReplica ?? 1) === nodes && md.status?.observedGeneration === md.metadata.generation
            ? md
            : undefined;
        },
        { timeoutMs: 40_000, intervalMs: 250, description: `switch Ready with ${nodes} node(s) per replica` },
      ).catch(async (error: Error) => {
        throw new Error(`${error.message}\n${await diagnose(name)}`);
      });

    await client.apply(modelDeploymentObject(namespace.name, name, spec(1)), { fieldManager: "platform-team" });
    await readyWith(1);
    const deployment = await client.get<Scaled>(deploymentPath);
    expect(deployment.spec.replicas).toBe(1);
    const single = await gatewayReaches(model, (pod) => pod.startsWith(`${name}-`), "the single-node pod serves through the gateway");
    expect((await pods(name)).find((pod) => pod.metadata?.name === single)?.metadata?.ownerReferences?.[0]?.kind).toBe("ReplicaSet");

    // One node -> two per replica: a LeaderWorkerSet group serves; the Deployment is scaled to 0, not deleted.
    await client.patch(modelDeploymentPath(namespace.name, name), { spec: { gpu: { pipelineParallelism: 2 } } }, "application/merge-patch+json", { fieldManager: "platform-team" });
    await readyWith(2);
    const lws = await client.get<Scaled>(lwsPath);
    expect(lws.spec.replicas).toBe(1);
    expect(lws.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: "ModelDeployment", controller: true })]);
    const retired = await waitFor(async () => {
      const read = await client.get<Scaled>(deploymentPath);
      return read.spec.replicas === 0 ? read : undefined;
    }, { timeoutMs: 10_000, description: "Deployment scaled to 0" });
    expect(retired.metadata?.uid).toBe(deployment.metadata?.uid);
    const leaderName = await gatewayReaches(model, (pod) => pod === `${name}-0`, "the group leader serves through the gateway");
    expect(leaderName).toBe(`${name}-0`);
    await waitFor(async () => ((await pods(name)).every((pod) => pod.metadata?.labels?.[LWS_LABELS.name] === name) ? true : undefined), {
      timeoutMs: 20_000,
      description: "the Deployment's pods gone",
    });

    // And back: the same Deployment serves again; the LeaderWorkerSet is scaled to 0, not deleted.
    await client.patch(modelDeploymentPath(namespace.name, name), { spec: { gpu: { pipelineParallelism: 1 } } }, "application/merge-patch+json", { fieldManager: "platform-team" });
    await readyWith(1);
    const back = await client.get<Scaled>(deploymentPath);
    expect([back.metadata?.uid, back.spec.replicas]).toEqual([deployment.metadata?.uid, 1]);
    const emptied = await waitFor(async () => {
      const read = await client.get<Scaled>(lwsPath);
      return read.spec.replicas === 0 ? read : undefined;
    }, { timeoutMs: 10_000, description: "LeaderWorkerSet scaled to 0" });
    expect(emptied.metadata?.uid).toBe(lws.metadata?.uid);
    await gatewayReaches(model, (pod) => pod.startsWith(`${name}-`) && pod !== `${name}-0`, "a Deployment pod serves through the gateway again");
    await waitFor(async () => ((await pods(name)).every((pod) => !pod.metadata?.labels?.[LWS_LABELS.name]) ? true : undefined), {
      timeoutMs: 20_000,
      description: "the group's pods gone",
    });
  }, 120_000);
});

export type { ModelDeployment };
