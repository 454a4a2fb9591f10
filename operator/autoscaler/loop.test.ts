import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { V1Pod } from "@kubernetes/client-node";
import { afterEach, describe, expect, it } from "vitest";
import type { ModelDeployment } from "../api/modeldeployment.js";
import { modelDeployment } from "../controller/testing.js";
import type { Informer } from "../runtime/informer.js";
import type { KubeClient, KubeObject } from "../runtime/kube-client.js";
import { AutoscalerLoop, type AutoscalerLoopOptions, engineActivity, policyConfig, replicaTokenCapacity } from "./loop.js";
import { decideScale, initialPolicyState, POLICY_TUNING_DEFAULTS, type AutoscalingConfig, type PodObservation } from "./policy.js";

const spec = {
  model: { name: "llama", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } } },
  autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 8 },
};

const plan = {
  gpuProduct: "NVIDIA-A100-SXM4-80GB",
  gpusPerReplica: 1,
  tensorParallelism: 1,
  kvCacheTokensPerReplica: 400_000,
  maxContextLength: 16_384,
};

describe("policyConfig", () => {
  it("hands the policy the replica token capacity estimated from the sizing plan", () => {
    const md = { ...modelDeployment("code", spec), status: { plan } };
    // Llama 3.1 8B on one A100: 312 TFLOPS × 0.5 / (2 × 8.03e9) ≈ 9,700 tokens/s.
    expect(replicaTokenCapacity(md)).toBeCloseTo(9714, -1);
    expect(policyConfig(md).replicaTokenCapacityPerSecond).toBeCloseTo(9714, -1);
  });

  it("leaves the capacity out until a plan exists, so the policy learns it from saturated pods", () => {
    const md = modelDeployment("code", spec);
    expect(replicaTokenCapacity(md)).toBeUndefined();
    expect("replicaTokenCapacityPerSecond" in policyConfig(md)).toBe(false);
  });

  it("leaves the capacity out for a GPU the catalogue does not know", () => {
    const md = { ...modelDeployment("code", spec), status: { plan: { ...plan, gpuProduct: "Acme-X1" } } };
    expect(replicaTokenCapacity(md)).toBeUndefined();
  });
});

describe("policyConfig policy windows (GPUFLEET_AUTOSCALER_WINDOW_SECONDS)", () => {
  const md = modelDeployment("code", { ...spec, autoscaling: { ...spec.autoscaling, scaleDownStabilizationSeconds: 20 } });

  it("leaves the policy's own windows alone by default, and sets the stable, token and scale-down windows when given", () => {
    const defaults = policyConfig(md);
    expect(defaults.stableWindowSeconds).toBeUndefined();
    expect(defaults.tokenWindowSeconds).toBeUndefined();
    expect(defaults.scaleDownPeriodSeconds).toBeUndefined();
    expect(POLICY_TUNING_DEFAULTS.stableWindowSeconds).toBe(60);
    const short = policyConfig(md, 15);
    expect([short.stableWindowSeconds, short.tokenWindowSeconds, short.scaleDownPeriodSeconds]).toEqual([15, 15, 15]);
  });

  /** Seconds after the load ends until the policy first asks for fewer than 3 replicas (3 pods, one decision a second). */
  function secondsToScaleDown(config: AutoscalingConfig): number {
    const pods = (nowMs: number, kvCacheUtilization: number): PodObservation[] =>
      ["a", "b", "c"].map((name) => ({
        name,
        phase: "ready" as const,
        sinceMs: 0,
        metrics: { kvCacheUtilization, requestsWaiting: 0, requestsRunning: kvCacheUtilization > 0.5 ? 20 : 0, scrapedAtMs: nowMs },
      }));
    let state = initialPolicyState();
    const loadEndsMs = 400_000;
    for (let nowMs = 0; nowMs < 1_000_000; nowMs += 1000) {
      const decision = decideScale(config, state, { nowMs, currentReplicas: 3, pods: pods(nowMs, nowMs < loadEndsMs ? 0.75 : 0.05) });
      state = decision.state;
      if (nowMs >= loadEndsMs && decision.desiredReplicas < 3) return (nowMs - loadEndsMs) / 1000;
    }
    throw new Error("never scaled down");
  }

  it("scales down sooner after the load with shorter windows, still not before the scale-down stabilization", () => {
    const byDefault = secondsToScaleDown(policyConfig(md));
    const short = secondsToScaleDown(policyConfig(md, 15));
    expect(byDefault).toBeGreaterThanOrEqual(60);
    expect(short).toBeGreaterThanOrEqual(20);
    // Measured: 69 s with the 60 s windows, 31 s with 15 s ones (the 20 s scale-down stabilization included).
    expect(short).toBeLessThanOrEqual(byDefault - 30);
  });
});

describe("policyConfig token headroom", () => {
  const withAutoscaling = (autoscaling: Record<string, unknown>) =>
    modelDeployment("code", { ...spec, autoscaling: { ...spec.autoscaling, ...autoscaling } });

  it("hands the TTFT objective to the policy, which derives the headroom from it and the measured bursts", () => {
    const config = policyConfig(withAutoscaling({ ttftTargetSeconds: 5 }));
    expect(config.ttftTargetSeconds).toBe(5);
    expect("tokenUtilizationTarget" in config).toBe(false);
    expect(config.forecast).toBeUndefined();
    expect(policyConfig(withAutoscaling({ forecast: true })).forecast).toBe(true);
  });

  it("lets an explicit target override the one derived from the objective", () => {
    const md = withAutoscaling({ ttftTargetSeconds: 5, tokenThroughputUtilizationTarget: 0.4 });
    expect(policyConfig(md).tokenUtilizationTarget).toBe(0.4);
  });

  it("derives the headroom for a 2 s objective when none is declared", () => {
    expect(policyConfig(withAutoscaling({})).ttftTargetSeconds).toBe(2);
  });
});

describe("AutoscalerLoop target selection", () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => { s.closeAllConnections(); s.close(() => resolve()); })));
  });
  async function engine(waiting: number, hits: { count: number }): Promise<number> {
    const server = createServer((_req, res) => {
      hits.count++;
      res.end(`vllm:kv_cache_usage_perc{model_name="llama"} 0.1\nvllm:num_requests_waiting{model_name="llama"} ${waiting}\nvllm:num_requests_running{model_name="llama"} 1\n`);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return (server.address() as AddressInfo).port;
  }
  const informer = <T extends KubeObject>(items: T[]) => ({ list: (filter?: (item: T) => boolean) => (filter ? items.filter(filter) : items), addHandlers: () => undefined }) as unknown as Informer<T>;
  const enginePod = (name: string, port: number, controller?: { kind: string; uid: string }): V1Pod & KubeObject => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: "team-a",
      uid: `${name}-uid`,
      creationTimestamp: "1970-01-01T00:00:00Z" as unknown as Date & string,
      labels: { "gpufleet.io/model-deployment": "llama", "inference.networking.k8s.io/engine-type": "vllm" },
      ...(controller ? { ownerReferences: [{ apiVersion: "apps/v1", kind: controller.kind, name: "x", uid: controller.uid, controller: true }] } : {}),
    },
    spec: { containers: [{ name: "engine", image: "vllm", ports: [{ name: "http", containerPort: port }] }] },
    status: { phase: "Running", podIP: "127.0.0.1", conditions: [{ type: "Ready", status: "True", lastTransitionTime: new Date(0) }] },
  });

  it("scrapes only pods owned through ReplicaSet -> Deployment -> the ModelDeployment's uid, not a tenant's labelled pod", async () => {
    const ownHits = { count: 0 };
    const tenantHits = { count: 0 };
    const md = { ...modelDeployment("llama", { ...spec, replicas: 1 }), status: { plan } } as ModelDeployment & KubeObject;
    const deployment = { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "llama", namespace: "team-a", uid: "deploy-uid", ownerReferences: [{ apiVersion: "gpufleet.io/v1alpha1", kind: "ModelDeployment", name: "llama", uid: md.metadata.uid as string, controller: true }] } };
    const replicaSet = { apiVersion: "apps/v1", kind: "ReplicaSet", metadata: { name: "llama-abc", namespace: "team-a", uid: "rs-uid", ownerReferences: [{ apiVersion: "apps/v1", kind: "Deployment", name: "llama", uid: "deploy-uid", controller: true }] } };
    const pods = [
      enginePod("llama-abc-1", await engine(0, ownHits), { kind: "ReplicaSet", uid: "rs-uid" }),
      // The tenant's own pod, labelled like the workload's, reporting a huge queue from an address of its choosing.
      enginePod("tenant", await engine(10_000, tenantHits)),
    ];
    const patches: unknown[] = [];
    const loop = new AutoscalerLoop({
      client: { patch: async (...args: unknown[]) => void patches.push(args) } as unknown as KubeClient,
      modelDeployments: informer([md]),
      pods: informer(pods),
      replicaSets: informer([replicaSet as KubeObject]),
      deployments: informer([deployment as KubeObject]),
      intervalMs: 1000,
      scrapeTimeoutMs: 2000,
    } as AutoscalerLoopOptions);
    const decision = await loop.evaluate(md, "team-a/llama");
    expect(ownHits.count).toBe(1);
    expect(tenantHits.count).toBe(0);
    expect(decision.signals.requestsWaiting).toBe(0);
    expect(patches).toEqual([]);
  });

  it("adds requests held at the gateways (their demand annotations, every band) to the engines' waiting requests: one queue signal", async () => {
    const now = Date.now();
    const held = (n: number) => JSON.stringify({ held: n, heldTokens: 100 * n, lastRequestAt: now - 100, updatedAt: now - 100 });
    const md = {
      ...modelDeployment("llama", { ...spec, replicas: 1 }, { annotations: { "demand.gpufleet.io/gw-a": held(4), "demand.gpufleet.io/gw-b": held(2) } }),
      status: { plan },
    } as ModelDeployment & KubeObject;
    const deployment = { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "llama", namespace: "team-a", uid: "deploy-uid", ownerReferences: [{ apiVersion: "gpufleet.io/v1alpha1", kind: "ModelDeployment", name: "llama", uid: md.metadata.uid as string, controller: true }] } };
    const replicaSet = { apiVersion: "apps/v1", kind: "ReplicaSet", metadata: { name: "llama-abc", namespace: "team-a", uid: "rs-uid", ownerReferences: [{ apiVersion: "apps/v1", kind: "Deployment", name: "llama", uid: "deploy-uid", controller: true }] } };
    const loop = new AutoscalerLoop({
      client: { patch: async () => ({}) } as unknown as KubeClient,
      modelDeployments: informer([md]),
      pods: informer([enginePod("llama-abc-1", await engine(3, { count: 0 }), { kind: "ReplicaSet", uid: "rs-uid" })]),
      replicaSets: informer([replicaSet as KubeObject]),
      deployments: informer([deployment as KubeObject]),
      intervalMs: 1000,
      scrapeTimeoutMs: 2000,
    } as AutoscalerLoopOptions);
    const decision = await loop.evaluate(md, "team-a/llama");
    // 3 waiting in the engine + 4 + 2 held by two gateway replicas.
    expect(decision.signals.requestsWaiting).toBe(9);
    expect(loop.view("team-a/llama")?.queueDepth).toBe(9);
  });

  /** One ModelDeployment with its Deployment and ReplicaSet, `pods` as they are now, a clock, and what was published. */
  function viewHarness(pods: Array<V1Pod & KubeObject>) {
    const md = { ...modelDeployment("llama", { ...spec, replicas: 1 }), status: { plan } } as ModelDeployment & KubeObject;
    const deployment = { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "llama", namespace: "team-a", uid: "deploy-uid", ownerReferences: [{ apiVersion: "gpufleet.io/v1alpha1", kind: "ModelDeployment", name: "llama", uid: md.metadata.uid as string, controller: true }] } };
    const replicaSet = { apiVersion: "apps/v1", kind: "ReplicaSet", metadata: { name: "llama-abc", namespace: "team-a", uid: "rs-uid", ownerReferences: [{ apiVersion: "apps/v1", kind: "Deployment", name: "llama", uid: "deploy-uid", controller: true }] } };
    const clock = { nowMs: Date.parse("2026-06-01T12:00:00Z") };
    const published: string[] = [];
    const loop = new AutoscalerLoop({
      client: { patch: async () => ({}) } as unknown as KubeClient,
      modelDeployments: informer([md]),
      pods: informer(pods),
      replicaSets: informer([replicaSet as KubeObject]),
      deployments: informer([deployment as KubeObject]),
      intervalMs: 5000,
      scrapeTimeoutMs: 2000,
      now: () => clock.nowMs,
      onViewChanged: (key) => published.push(key),
    } as AutoscalerLoopOptions);
    return { clock, published, view: () => loop.view("team-a/llama"), evaluate: () => loop.evaluate(md, "team-a/llama") };
  }

  it("keeps the view the status shows until it publishes a new one, so a reconcile in between writes no status", async () => {
    const { clock, published, view, evaluate } = viewHarness([enginePod("llama-abc-1", await engine(0, { count: 0 }), { kind: "ReplicaSet", uid: "rs-uid" })]);
    await evaluate();
    const first = view();
    expect(published).toEqual(["team-a/llama"]);
    expect(first?.lastObservationTime).toBe("2026-06-01T12:00:00Z");
    // Ticks with the same picture: nothing published, and the view a reconcile merges into the status is
    // the published one (a newer lastObservationTime there would make every reconcile write the status).
    for (const seconds of [5, 10, 25]) {
      clock.nowMs = Date.parse("2026-06-01T12:00:00Z") + seconds * 1000;
      await evaluate();
      expect(published).toHaveLength(1);
      expect(view()).toEqual(first);
    }
    // Every 30 s the view is refreshed and published.
    clock.nowMs = Date.parse("2026-06-01T12:00:30Z");
    await evaluate();
    expect(published).toHaveLength(2);
    expect(view()?.lastObservationTime).toBe("2026-06-01T12:00:30Z");
  });

  it("publishes at once when the kind of reason changes, even with the same figures (no pods yet → no usable metrics)", async () => {
    const pods: Array<V1Pod & KubeObject> = [];
    const { clock, published, view, evaluate } = viewHarness(pods);
    await evaluate();
    expect(view()?.reason).toBe("holding at 1: no pods yet");
    // A ready pod whose /metrics fails: still nothing scraped, still holding at 1, but the status must say why.
    const refusing = createServer();
    await new Promise<void>((resolve) => refusing.listen(0, "127.0.0.1", resolve));
    const port = (refusing.address() as AddressInfo).port;
    await new Promise<void>((resolve) => refusing.close(() => resolve()));
    pods.push(enginePod("llama-abc-1", port, { kind: "ReplicaSet", uid: "rs-uid" }));
    clock.nowMs += 5000;
    await evaluate();
    expect(published).toHaveLength(2);
    expect(view()?.scrapedReplicas).toBe(0);
    expect(view()?.reason).toMatch(/^holding at 1: no usable metrics \(/);
  });
});

describe("scale from zero on the ModelDeployment informer event", () => {
  type Handlers = { onAdd?: (md: ModelDeployment & KubeObject) => void; onUpdate?: (a: ModelDeployment & KubeObject, b: ModelDeployment & KubeObject) => void };
  const zeroSpec = { ...spec, replicas: 0, autoscaling: { enabled: true, minReplicas: 0, maxReplicas: 4, scaleToZeroIdleSeconds: 120 } };
  const nowMs = Date.parse("2026-06-01T12:00:00Z");
  const demand = (held: number) => ({
    "demand.gpufleet.io/gw-a": JSON.stringify({ held, lastRequestAt: nowMs - 100, updatedAt: nowMs - 100 }),
  });

  function harness() {
    let handlers: Handlers = {};
    const patches: Array<{ path: string; body: unknown }> = [];
    const informer = {
      addHandlers(h: Handlers) {
        handlers = h;
        return informer;
      },
      list: () => [],
    };
    const client = {
      patch: async (path: string, body: unknown) => {
        patches.push({ path, body });
        return {};
      },
    };
    const changed: string[] = [];
    const loop = new AutoscalerLoop({
      client: client as unknown as KubeClient,
      modelDeployments: informer as unknown as Informer<ModelDeployment & KubeObject>,
      pods: { list: () => [] } as unknown as AutoscalerLoopOptions["pods"],
      replicaSets: { list: () => [] } as unknown as AutoscalerLoopOptions["replicaSets"],
      deployments: { list: () => [] } as unknown as AutoscalerLoopOptions["deployments"],
      intervalMs: 3_600_000,
      scrapeTimeoutMs: 1_000,
      now: () => nowMs,
      onViewChanged: (key) => changed.push(key),
    });
    return { loop, patches, changed, event: (md: ModelDeployment) => handlers.onUpdate?.(md as never, md as never) };
  }

  const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

  it("writes replicas 1 through the scale subresource as soon as a gateway holds a request", async () => {
    const { loop, patches, changed, event } = harness();
    loop.start();
    try {
      event(modelDeployment("code", zeroSpec, { annotations: demand(1) }));
      await settle();
      expect(patches).toEqual([{ path: "/apis/gpufleet.io/v1alpha1/namespaces/team-a/modeldeployments/code/scale", body: { spec: { replicas: 1 } } }]);
      expect(changed).toEqual(["team-a/code"]);
      // The events that follow (status writes, the cache still at 0) do not wake again.
      event(modelDeployment("code", zeroSpec, { annotations: demand(2) }));
      await settle();
      expect(patches).toHaveLength(1);
    } finally {
      await loop.stop();
    }
  });

  it("leaves a model alone when nothing is held, when it runs, and before the loop starts", async () => {
    const { loop, patches, event } = harness();
    event(modelDeployment("code", zeroSpec, { annotations: demand(1) }));
    loop.start();
    try {
      event(modelDeployment("code", zeroSpec, { annotations: demand(0) }));
      event(modelDeployment("code", { ...zeroSpec, replicas: 2 }, { annotations: demand(3) }));
      event(modelDeployment("code", { ...spec, replicas: 0 }, { annotations: demand(3) }));
      await settle();
      expect(patches).toEqual([]);
    } finally {
      await loop.stop();
    }
  });
});

describe("engineActivity", () => {
  const pod = (name: string) => ({ metadata: { name } }) as V1Pod;
  const target = (podName: string) => ({ namespace: "team-a", podName, podIP: "127.1.0.5", port: 8000, engine: "vllm" as const, ready: true });

  it("sums first tokens and token counters per scraped pod, and marks unscraped pods as having no counter", () => {
    const activity = engineActivity(
      [pod("a"), pod("b"), pod("c")],
      [
        {
          target: target("a"),
          ok: true,
          sample: {
            kvCacheUtilization: 0.1,
            requestsWaiting: 1,
            requestsRunning: 2,
            promptTokensTotal: 100,
            generationTokensTotal: 20,
            ttftHistogram: { upperBoundsSeconds: [1, Infinity], cumulativeCounts: [3, 4] },
            scrapedAtMs: 0,
          },
        },
        { target: target("b"), ok: true, sample: { kvCacheUtilization: 0, requestsWaiting: 0, requestsRunning: 0, scrapedAtMs: 0 } },
      ],
    );
    expect(activity).toEqual([
      { name: "a", inFlight: 3, counter: 124 },
      { name: "b", inFlight: 0, counter: null },
      { name: "c", inFlight: 0, counter: null },
    ]);
  });
});
