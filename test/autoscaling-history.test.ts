import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningOperator } from "../operator/operator.js";
import { historyConfigMapName, HISTORY_KEY } from "../operator/autoscaler/history-store.js";
import type { WorkloadHistory } from "../operator/autoscaler/history.js";
import { KubeClient, isNotFound, type KubeObject } from "../operator/runtime/kube-client.js";
import type { SimFleet } from "../sim/engine/fleet.js";
import { runLoad } from "../sim/loadgen/loadgen.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { modelDeploymentObject, readModelDeployment, startTestOperator } from "./support/operator.js";
import { deployBehindProxy, startSimFleet } from "./support/sim-fleet.js";

// The autoscaler's workload history (demand buckets, learned capacity, readiness times) lives in a
// ConfigMap owned by the ModelDeployment: a restarted operator resumes it instead of starting blind,
// and a ConfigMap of that name the operator does not own is neither read nor overwritten.

const kubeConfig = testKubeConfig();
const client = new KubeClient(kubeConfig);
const OPERATOR_ENV = {
  GPUFLEET_SCRAPE_INTERVAL_SECONDS: "1",
  GPUFLEET_SCRAPE_TIMEOUT_SECONDS: "1",
  GPUFLEET_AUTOSCALER_HISTORY_BUCKET_SECONDS: "2",
  GPUFLEET_AUTOSCALER_HISTORY_SAVE_SECONDS: "1",
};
let namespace: TestNamespace;
let operator: RunningOperator | undefined;
let fleet: SimFleet;
const cleanups: Array<() => unknown> = [];

const spec = {
  model: { name: "llama-3.1-8b-instruct", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 },
  engine: { kind: "vllm" },
  gpu: { products: ["NVIDIA-L4"] },
  replicas: 1,
  autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 2, ttftTargetSeconds: 2, forecast: true },
};

async function readConfigMap(name: string): Promise<(KubeObject & { data?: Record<string, string> }) | undefined> {
  try {
    return await client.get(`/api/v1/namespaces/${namespace.name}/configmaps/${name}`);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

async function readHistory(mdName: string): Promise<{ history: WorkloadHistory; ownerUid: string | undefined } | undefined> {
  const cm = await readConfigMap(historyConfigMapName(mdName));
  const text = cm?.data?.[HISTORY_KEY];
  if (!cm || !text) return undefined;
  return { history: JSON.parse(text) as WorkloadHistory, ownerUid: cm.metadata?.ownerReferences?.find((r) => r.controller)?.uid };
}

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "as-history");
  operator = await startTestOperator(kubeConfig, namespace.name, OPERATOR_ENV);
  fleet = startSimFleet(kubeConfig, namespace.name);
}, 120_000);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await fleet?.stop();
  await operator?.stop();
  await namespace?.delete();
  client.close();
});

describe("autoscaling history in the cluster", () => {
  it("keeps demand, learned capacity and buckets in a ConfigMap owned by the ModelDeployment, and a restarted operator resumes it", async () => {
    const proxy = await deployBehindProxy(client, kubeConfig, namespace.name, "remember", spec, cleanups);
    const md = await readModelDeployment(client, namespace.name, "remember");
    // A little traffic so the engines' token counters move (demand > 0 in some buckets).
    const report = await runLoad(
      Array.from({ length: 16 }, (_, index) => ({ index, offsetMs: index * 500, sendAtMs: index * 500, promptTokens: 1_000, outputTokens: 32 })),
      { endpoints: [proxy.url], policy: "round-robin", model: "llama-3.1-8b-instruct", maxOutputTokens: 32, requestTimeoutMs: 60_000, maxDurationMs: 20_000 },
    );
    expect(report.succeeded).toBeGreaterThan(0);

    const before = await waitFor(
      async () => {
        const h = await readHistory("remember");
        const values = h?.history.tokensPerSecond ?? [];
        return h && values.length >= 3 && values.some((v) => (v ?? 0) > 0) ? h : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, description: "history with demand in the ConfigMap" },
    );
    expect(before.ownerUid).toBe(md.metadata.uid);
    expect(before.history.capacity?.tokensPerSecond ?? 0).toBeGreaterThan(0); // the planner's prior at least

    // Restart the operator: the new one reads the history back and extends it.
    await operator?.stop();
    operator = undefined;
    const frozen = (await readHistory("remember"))!.history;
    operator = await startTestOperator(kubeConfig, namespace.name, OPERATOR_ENV);
    const after = await waitFor(
      async () => {
        const h = await readHistory("remember");
        return h && h.history.tokensPerSecond.length > frozen.tokensPerSecond.length + 1 ? h : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, description: "history extended after the restart" },
    );
    // Same origin, the old buckets kept as they were: resumed, not started anew.
    expect(after.history.startMs).toBe(frozen.startMs);
    expect(after.history.tokensPerSecond.slice(0, frozen.tokensPerSecond.length)).toEqual(frozen.tokensPerSecond);
    expect(after.history.capacity?.observations ?? 0).toBeGreaterThanOrEqual(frozen.capacity?.observations ?? 0);
    process.stderr.write(
      `[autoscaling-history] ${frozen.tokensPerSecond.length} buckets before the restart, ${after.history.tokensPerSecond.length} after; capacity ${Math.round(after.history.capacity?.tokensPerSecond ?? 0)} tokens/s\n`,
    );
  }, 150_000);

  it("neither reads nor overwrites a ConfigMap of that name it does not own, and says so in an Event", async () => {
    const name = historyConfigMapName("squatted");
    const planted = JSON.stringify({ v: 1, bucketSeconds: 2, startMs: 0, tokensPerSecond: [1e9], dispersion: [null], capacity: { tokensPerSecond: 1, observations: 60 }, timeToReadySeconds: [], open: null });
    await client.create({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: namespace.name }, data: { [HISTORY_KEY]: planted } } as KubeObject);
    await client.apply(modelDeploymentObject(namespace.name, "squatted", spec), { fieldManager: "platform-team" });
    await waitFor(
      async () => {
        const events = await client.list<{ reason?: string; regarding?: { name?: string } }>(`/apis/events.k8s.io/v1/namespaces/${namespace.name}/events`);
        return events.items.some((e) => e.regarding?.name === "squatted" && e.reason === "HistoryNotSaved") || undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, description: "HistoryNotSaved event" },
    );
    expect((await readConfigMap(name))?.data?.[HISTORY_KEY]).toBe(planted);
  }, 90_000);
});
