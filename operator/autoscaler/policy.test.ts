import { describe, expect, it } from "vitest";
import {
  decideScale,
  initialPolicyState,
  type AutoscalingConfig,
  type MetricsSample,
  type Observation,
  type PodObservation,
  type PolicyState,
} from "./policy.js";
import { SUSTAINED_SATURATION_INTERVALS } from "./policy-signals.js";

const config: AutoscalingConfig = {
  minReplicas: 1,
  maxReplicas: 10,
  kvCacheUtilizationTarget: 0.8,
  queueDepthTargetPerReplica: 5,
  scaleUpStabilizationSeconds: 0,
  scaleDownStabilizationSeconds: 300,
  stableWindowSeconds: 60,
  panicWindowSeconds: 10,
  panicThreshold: 2,
  tolerance: 0.1,
  maxScaleUpRate: 2,
  maxScaleUpStep: 4,
  maxScaleDownStep: 1,
  // Most tests feed a constant replica count and look at one decision; the period has its own test.
  scaleDownPeriodSeconds: 0,
  maxQueueInflation: 2,
  // Hysteresis off by default here; it has its own test.
  scaleDownUtilizationFactor: 1,
  metricStalenessSeconds: 30,
};

function readyPod(name: string, nowMs: number, m: Partial<MetricsSample>): PodObservation {
  return {
    name,
    phase: "ready",
    sinceMs: 0,
    metrics: { kvCacheUtilization: 0.5, requestsWaiting: 0, requestsRunning: 10, scrapedAtMs: nowMs, ...m },
  };
}

function pods(count: number, nowMs: number, m: Partial<MetricsSample>): PodObservation[] {
  return Array.from({ length: count }, (_, i) => readyPod(`pod-${i}`, nowMs, m));
}

function observe(nowMs: number, currentReplicas: number, podList: PodObservation[]): Observation {
  return { nowMs, currentReplicas, pods: podList };
}

/** Feed the same per-pod metrics every 10 s from `fromMs` to `toMs`; return the last decision. */
function run(
  cfg: AutoscalingConfig,
  state: PolicyState,
  fromMs: number,
  toMs: number,
  replicas: number,
  m: Partial<MetricsSample>,
): ReturnType<typeof decideScale> {
  let decision = decideScale(cfg, state, observe(fromMs, replicas, pods(replicas, fromMs, m)));
  for (let t = fromMs + 10_000; t <= toMs; t += 10_000) {
    decision = decideScale(cfg, decision.state, observe(t, replicas, pods(replicas, t, m)));
  }
  return decision;
}

/**
 * 10 pods working at capacity (10,000 tokens/s each, 256 running) with a queue of `waiting(t)` per
 * pod, observed every 10 s from 0 to `toMs`; `extra(t)` adds to each pod's sample. The last decision.
 */
function runBusy(
  cfg: AutoscalingConfig,
  waiting: (t: number) => number,
  toMs: number,
  extra: (t: number) => Partial<MetricsSample> = () => ({}),
): ReturnType<typeof decideScale> {
  const busy = (t: number) =>
    pods(10, t, {
      kvCacheUtilization: 0.2,
      requestsRunning: 256,
      requestsWaiting: waiting(t),
      promptTokensTotal: 10_000 * (t / 1000),
      generationTokensTotal: 0,
      ...extra(t),
    });
  let d = decideScale(cfg, initialPolicyState(), observe(0, 10, busy(0)));
  for (let t = 10_000; t <= toMs; t += 10_000) d = decideScale(cfg, d.state, observe(t, 10, busy(t)));
  return d;
}

describe("decideScale", () => {
  it("scales up when KV-cache utilisation is above target, saying why in plain words", () => {
    const d = decideScale(
      config,
      initialPolicyState(),
      observe(0, 3, pods(3, 0, { kvCacheUtilization: 0.93 })),
    );
    // 3 × 0.93 / 0.8 = 3.49 → 4
    expect(d.desiredReplicas).toBe(4);
    expect(d.reason).toBe("kv-cache 0.93 > target 0.80 across 3 ready pods → 4");
  });

  it("scales up on waiting requests per replica even when KV-cache looks fine", () => {
    const d = decideScale(
      config,
      initialPolicyState(),
      observe(0, 2, pods(2, 0, { kvCacheUtilization: 0.3, requestsWaiting: 15, requestsRunning: 40 })),
    );
    // queue: 30 waiting / 5 = 6 replicas, capped at 2 × 2 ready = 4; kv: 2 × 0.3 × 55/40 / 0.8 ≈ 1.03.
    expect(d.desiredReplicas).toBe(4);
    expect(d.reason).toContain("queue 15.0 waiting/pod > target 5");
  });

  it("counts requests held at the gateway as waiting demand", () => {
    const observation = observe(
      0,
      2,
      pods(2, 0, { kvCacheUtilization: 0.3, requestsWaiting: 0, requestsRunning: 10 }),
    );
    const without = decideScale(config, initialPolicyState(), observation);
    expect(without.desiredReplicas).toBe(2);
    // queue: (0 + 14 held) / 5 = 2.8 → 3 (held requests are not scaled by the share of pods with data).
    const held = decideScale(config, initialPolicyState(), { ...observation, heldRequests: 14 });
    expect(held.signals.requestsWaiting).toBe(14);
    expect(held.signals.queueDemandReplicas).toBeCloseTo(2.8, 3);
    expect(held.desiredReplicas).toBe(3);
  });

  it("takes the MAX over the KV and queue signals", () => {
    const d = decideScale(
      config,
      initialPolicyState(),
      observe(0, 4, pods(4, 0, { kvCacheUtilization: 0.95, requestsWaiting: 1, requestsRunning: 10 })),
    );
    // kv: 4 × 0.95 × 11/10 / 0.8 = 5.2 → 6; queue: 4 / 5 = 0.8.
    expect(d.desiredReplicas).toBe(6);
    expect(d.signals.kvDemandReplicas).toBeCloseTo(5.225, 3);
    expect(d.signals.queueDemandReplicas).toBeCloseTo(0.8, 3);
  });

  it("holds inside the tolerance band", () => {
    const d = decideScale(
      config,
      initialPolicyState(),
      observe(0, 4, pods(4, 0, { kvCacheUtilization: 0.84 })),
    );
    // 4 × 0.84 / 0.8 = 4.2, within ±10% of 4.
    expect(d.desiredReplicas).toBe(4);
    expect(d.reason).toMatch(/^steady at 4/);
  });

  it("bounds one scale-up step by max(rate × current, current + step)", () => {
    const d = decideScale(
      { ...config, maxQueueInflation: 100 },
      initialPolicyState(),
      observe(0, 1, pods(1, 0, { kvCacheUtilization: 1, requestsWaiting: 100, requestsRunning: 10 })),
    );
    expect(d.desiredReplicas).toBe(5); // max(2, 1 + 4)
  });

  it("says so when maxReplicas holds it below the demand, and how to serve it", () => {
    const capped = { ...config, maxReplicas: 3 };
    const hot = pods(3, 0, { kvCacheUtilization: 1, requestsWaiting: 50 });
    const atMax = decideScale(capped, initialPolicyState(), observe(0, 3, hot));
    expect(atMax.desiredReplicas).toBe(3);
    expect(atMax.reason).toMatch(/^at maxReplicas 3: .*raise spec\.autoscaling\.maxReplicas/);
    const upToMax = decideScale(
      capped,
      initialPolicyState(),
      observe(0, 2, pods(2, 0, { kvCacheUtilization: 1, requestsWaiting: 50 })),
    );
    expect(upToMax.desiredReplicas).toBe(3);
    expect(upToMax.reason).toMatch(/→ 3 \(maxReplicas; demand \d+\.\d\)/);
  });

  it("never exceeds maxReplicas nor goes below minReplicas", () => {
    const hot = decideScale(
      { ...config, maxReplicas: 3 },
      initialPolicyState(),
      observe(0, 2, pods(2, 0, { kvCacheUtilization: 1, requestsWaiting: 50 })),
    );
    expect(hot.desiredReplicas).toBe(3);
    const cold = run(
      { ...config, minReplicas: 2, scaleDownStabilizationSeconds: 0 },
      initialPolicyState(),
      0,
      120_000,
      3,
      {
        kvCacheUtilization: 0,
        requestsRunning: 0,
      },
    );
    expect(cold.desiredReplicas).toBe(2);
  });

  it("scales down only after the scale-down stabilization window, by at most the down step", () => {
    // A busy minute, then idle: the 300 s window remembers the busy recommendation.
    let state = run(config, initialPolicyState(), 0, 60_000, 4, { kvCacheUtilization: 0.8 }).state;
    let d = run(config, state, 70_000, 300_000, 4, { kvCacheUtilization: 0.1, requestsRunning: 1 });
    expect(d.desiredReplicas).toBe(4);
    expect(d.reason).toContain("scale-down stabilizing");
    state = d.state;
    d = run(config, state, 310_000, 380_000, 4, { kvCacheUtilization: 0.1, requestsRunning: 1 });
    expect(d.desiredReplicas).toBe(3);
    expect(d.reason).toContain("→ 3");
  });

  it("removes at most the down step per scale-down period, however often it is called", () => {
    const cfg = { ...config, scaleDownStabilizationSeconds: 0, scaleDownPeriodSeconds: 60 };
    const warm = run(cfg, initialPolicyState(), -10_000, 0, 6, { kvCacheUtilization: 0.8 });
    const first = decideScale(
      cfg,
      warm.state,
      observe(10_000, 6, pods(6, 10_000, { kvCacheUtilization: 0.1 })),
    );
    expect(first.desiredReplicas).toBe(5);
    const soon = decideScale(
      cfg,
      first.state,
      observe(20_000, 5, pods(5, 20_000, { kvCacheUtilization: 0.1 })),
    );
    expect(soon.desiredReplicas).toBe(5);
    expect(soon.reason).toContain("last scale-down under 60s ago");
    const later = decideScale(
      cfg,
      soon.state,
      observe(71_000, 5, pods(5, 71_000, { kvCacheUtilization: 0.1 })),
    );
    expect(later.desiredReplicas).toBe(4);
  });

  it("removes a tenth of a large fleet per scale-down period (at least the down step)", () => {
    const cfg = { ...config, maxReplicas: 100, scaleDownStabilizationSeconds: 0, scaleDownPeriodSeconds: 60 };
    const warm = run(cfg, initialPolicyState(), -10_000, 0, 40, { kvCacheUtilization: 0.8 });
    const first = decideScale(
      cfg,
      warm.state,
      observe(10_000, 40, pods(40, 10_000, { kvCacheUtilization: 0.05 })),
    );
    expect(first.desiredReplicas).toBe(36);
    expect(first.reason).toContain("down at most 4");
    const small = run(cfg, initialPolicyState(), -10_000, 0, 12, { kvCacheUtilization: 0.8 });
    const one = decideScale(
      cfg,
      small.state,
      observe(10_000, 12, pods(12, 10_000, { kvCacheUtilization: 0.05 })),
    );
    expect(one.desiredReplicas).toBe(11);
  });

  it("scales down only as far as leaves the remaining pods at the hysteresis fraction of the target", () => {
    const cfg = {
      ...config,
      scaleDownStabilizationSeconds: 0,
      scaleDownUtilizationFactor: 0.5,
      maxScaleDownStep: 10,
    };
    const d = run(cfg, initialPolicyState(), 0, 60_000, 8, { kvCacheUtilization: 0.2 });
    // Demand 8 × 0.2 / 0.8 = 2 replicas at the target; at half the target: 4.
    expect(d.desiredReplicas).toBe(4);
  });

  it("caps how much a queue inflates one pod's KV demand", () => {
    const d = decideScale(
      config,
      initialPolicyState(),
      observe(0, 1, pods(1, 0, { kvCacheUtilization: 1, requestsWaiting: 1000, requestsRunning: 10 })),
    );
    // Without the cap: 1 × 101 / 0.8 = 126 replicas; with it: 1 × 2 / 0.8 = 2.5. The queue signal
    // (1000 / 5 = 200) is capped at 2 × 1 ready pod.
    expect(d.signals.kvDemandReplicas).toBeCloseTo(2.5, 6);
    expect(d.signals.queueDemandReplicas).toBe(2);
    expect(d.desiredReplicas).toBe(3);
  });

  it("uses the highest recommendation in the scale-down window, not the latest", () => {
    const cfg = { ...config, maxScaleDownStep: 10 };
    let d = run(cfg, initialPolicyState(), 0, 300_000, 6, { kvCacheUtilization: 0.8 });
    expect(d.desiredReplicas).toBe(6);
    d = run(cfg, d.state, 310_000, 400_000, 6, { kvCacheUtilization: 0.6 });
    // 6 × 0.6 / 0.8 = 4.5 → recommendation 5, held while the 300 s window still remembers 6.
    expect(d.desiredReplicas).toBe(6);
    d = run(cfg, d.state, 410_000, 680_000, 6, { kvCacheUtilization: 0.1 });
    // Latest demand says 1, but 5 was recommended within the last 300 s.
    expect(d.desiredReplicas).toBe(5);
  });

  it("does not pile on more pods while already-requested pods are still starting", () => {
    const now = 0;
    const podList = [
      ...pods(2, now, { kvCacheUtilization: 0.95 }),
      { name: "new-0", phase: "starting" as const, sinceMs: -60_000 },
      { name: "new-1", phase: "starting" as const, sinceMs: -60_000 },
    ];
    // Demand 2 × 0.95 / 0.8 = 2.4 → 3, but 4 replicas are already requested (2 ready + 2 loading).
    const d = decideScale(config, initialPolicyState(), observe(now, 4, podList));
    expect(d.desiredReplicas).toBe(4);
    expect(d.signals.startingPods).toBe(2);
  });

  it("does not scale down while pods are still starting", () => {
    const podList = [
      ...pods(2, 0, { kvCacheUtilization: 0.05 }),
      { name: "new-0", phase: "starting" as const, sinceMs: 0 },
    ];
    const d = decideScale(
      { ...config, scaleDownStabilizationSeconds: 0 },
      initialPolicyState(),
      observe(0, 3, podList),
    );
    expect(d.desiredReplicas).toBe(3);
    expect(d.reason).toContain("still starting");
  });

  it("still scales up beyond starting pods when the burst exceeds panic threshold × up rate × what is coming", () => {
    const podList = [
      ...pods(2, 0, { kvCacheUtilization: 1, requestsWaiting: 40, requestsRunning: 20 }),
      { name: "new-0", phase: "starting" as const, sinceMs: 0 },
    ];
    // queue demand 80 / 5 = 16 ≥ 2 × 2 × 3 requested (queue cap lifted for this test).
    const d = decideScale(
      { ...config, maxQueueInflation: 100 },
      initialPolicyState(),
      observe(0, 3, podList),
    );
    expect(d.desiredReplicas).toBeGreaterThan(3);
  });

  it("holds while pods start when demand exceeds what is coming by less than the panic threshold", () => {
    const podList = [
      ...pods(2, 0, { kvCacheUtilization: 1, requestsWaiting: 4, requestsRunning: 20 }),
      { name: "new-0", phase: "starting" as const, sinceMs: 0 },
    ];
    // kv demand 2 × 1.2 / 0.8 = 3 … 4 < 2 × 3.
    const d = decideScale(
      { ...config, kvCacheUtilizationTarget: 0.6 },
      initialPolicyState(),
      observe(0, 3, podList),
    );
    expect(d.desiredReplicas).toBe(3);
    expect(d.reason).toContain("1 pod still starting");
  });

  it("never scales down when a ready pod's metrics are stale, and says so", () => {
    const now = 600_000;
    const podList = [
      readyPod("pod-0", now, { kvCacheUtilization: 0.05 }),
      readyPod("pod-1", now, { kvCacheUtilization: 0.05, scrapedAtMs: now - 120_000 }),
      readyPod("pod-2", now, { kvCacheUtilization: 0.05 }),
    ];
    const d = decideScale(
      { ...config, scaleDownStabilizationSeconds: 0 },
      initialPolicyState(),
      observe(now, 3, podList),
    );
    expect(d.desiredReplicas).toBe(3);
    expect(d.reason).toContain("pod-1: metrics 120s old");
    expect(d.reason).toMatch(/^holding at 3/);
  });

  it("never scales down when a scrape failed", () => {
    const podList: PodObservation[] = [
      readyPod("pod-0", 0, { kvCacheUtilization: 0.05 }),
      { name: "pod-1", phase: "ready", sinceMs: 0, metricsError: "connection refused" },
    ];
    const d = decideScale(
      { ...config, scaleDownStabilizationSeconds: 0 },
      initialPolicyState(),
      observe(0, 2, podList),
    );
    expect(d.desiredReplicas).toBe(2);
    expect(d.reason).toContain("pod-1: scrape failed: connection refused");
  });

  it("never scales down on malformed metrics (NaN, out of range)", () => {
    const podList = [
      readyPod("pod-0", 0, { kvCacheUtilization: 0.05 }),
      readyPod("pod-1", 0, { kvCacheUtilization: Number.NaN }),
      readyPod("pod-2", 0, { kvCacheUtilization: 0.05, requestsWaiting: -3 }),
    ];
    const d = decideScale(
      { ...config, scaleDownStabilizationSeconds: 0 },
      initialPolicyState(),
      observe(0, 3, podList),
    );
    expect(d.desiredReplicas).toBe(3);
    expect(d.reason).toContain("pod-1: malformed kv-cache utilization");
    expect(d.reason).toContain("pod-2: malformed waiting count");
  });

  it("does not scale down before it has watched a whole scale-down window (fresh state after a restart)", () => {
    const d = run(config, initialPolicyState(), 0, 290_000, 4, { kvCacheUtilization: 0.05 });
    expect(d.desiredReplicas).toBe(4);
    const later = run(config, d.state, 300_000, 310_000, 4, { kvCacheUtilization: 0.05 });
    expect(later.desiredReplicas).toBe(3);
  });

  it("holds when no pod has usable metrics at all", () => {
    const podList: PodObservation[] = [
      { name: "pod-0", phase: "ready", sinceMs: 0 },
      { name: "pod-1", phase: "ready", sinceMs: 0, metricsError: "timeout" },
    ];
    const d = decideScale(
      { ...config, scaleDownStabilizationSeconds: 0 },
      initialPolicyState(),
      observe(0, 2, podList),
    );
    expect(d.desiredReplicas).toBe(2);
    expect(d.reason).toBe(
      "holding at 2: no usable metrics (pod-0: no metrics yet; pod-1: scrape failed: timeout)",
    );
  });

  it("may still scale up on the healthy pods when another pod's metrics are missing", () => {
    const podList: PodObservation[] = [
      readyPod("pod-0", 0, { kvCacheUtilization: 1, requestsWaiting: 10, requestsRunning: 10 }),
      { name: "pod-1", phase: "ready", sinceMs: 0, metricsError: "timeout" },
    ];
    const d = decideScale(config, initialPolicyState(), observe(0, 2, podList));
    expect(d.desiredReplicas).toBeGreaterThan(2);
    expect(d.reason).toContain("no data from 1 pod(s)");
  });

  it("waits while every pod is still starting", () => {
    const d = decideScale(
      config,
      initialPolicyState(),
      observe(0, 2, [
        { name: "a", phase: "starting", sinceMs: 0 },
        { name: "b", phase: "starting", sinceMs: 0 },
      ]),
    );
    expect(d.desiredReplicas).toBe(2);
    expect(d.reason).toBe("holding at 2: waiting for 2 starting pods");
  });

  it("enters panic on a burst in the short window and does not scale down during it", () => {
    // A calm minute, then a burst: the stable average lags but the panic window sees it.
    const calm = run(config, initialPolicyState(), 0, 50_000, 2, { kvCacheUtilization: 0.4 });
    const burst = decideScale(
      config,
      calm.state,
      observe(
        60_000,
        2,
        pods(2, 60_000, { kvCacheUtilization: 1, requestsWaiting: 30, requestsRunning: 30 }),
      ),
    );
    expect(burst.signals.panicking).toBe(true);
    // kv: 2 × 1 × min(2, 60/30) / 0.8 = 5; queue: min(60 / 5, 2 × 2) = 4.
    expect(burst.desiredReplicas).toBe(5);
    expect(burst.reason).toContain("[panic");
    // Load vanishes right away: still no scale-down while panicking, even with no down window.
    const after = decideScale(
      { ...config, scaleDownStabilizationSeconds: 0 },
      burst.state,
      observe(70_000, 6, pods(6, 70_000, { kvCacheUtilization: 0.05 })),
    );
    expect(after.signals.panicking).toBe(true);
    expect(after.desiredReplicas).toBe(6);
  });

  it("averages over the stable window so one noisy sample does not move it", () => {
    const calm = run(config, initialPolicyState(), 0, 50_000, 4, { kvCacheUtilization: 0.8 });
    const noisy = decideScale(
      { ...config, panicThreshold: 100 },
      calm.state,
      observe(60_000, 4, pods(4, 60_000, { kvCacheUtilization: 1 })),
    );
    // Window mean: (6 × 4.0 + 5.0) / 7 = 4.14 → inside the band.
    expect(noisy.desiredReplicas).toBe(4);
  });

  it("keeps a JSON-serializable state and does not mutate its inputs", () => {
    const state = initialPolicyState();
    const before = JSON.stringify(state);
    const obs = observe(0, 3, pods(3, 0, { kvCacheUtilization: 0.93 }));
    const obsBefore = JSON.stringify(obs);
    const d = decideScale(config, state, obs);
    expect(JSON.stringify(state)).toBe(before);
    expect(JSON.stringify(obs)).toBe(obsBefore);
    expect(JSON.parse(JSON.stringify(d.state))).toEqual(d.state);
    // Round-tripped state gives the same next decision.
    const next = observe(10_000, 4, pods(4, 10_000, { kvCacheUtilization: 0.7 }));
    expect(decideScale(config, JSON.parse(JSON.stringify(d.state)) as PolicyState, next)).toEqual(
      decideScale(config, d.state, next),
    );
  });

  it("forgets samples older than the stable window", () => {
    const d = run(config, initialPolicyState(), 0, 300_000, 2, { kvCacheUtilization: 0.5 });
    expect(d.state.samples.every((s) => s.atMs > 300_000 - 60_000)).toBe(true);
    expect(d.state.samples.length).toBeLessThanOrEqual(6);
  });

  it("smooths scale-up with the lowest recommendation in the scale-up window", () => {
    const cfg = { ...config, scaleUpStabilizationSeconds: 60, panicThreshold: 100 };
    const calm = run(cfg, initialPolicyState(), 0, 50_000, 2, { kvCacheUtilization: 0.8 });
    const spike = decideScale(
      cfg,
      calm.state,
      observe(
        60_000,
        2,
        pods(2, 60_000, { kvCacheUtilization: 1, requestsWaiting: 40, requestsRunning: 10 }),
      ),
    );
    expect(spike.desiredReplicas).toBe(2);
    expect(spike.reason).toContain("scale-up stabilizing");
  });
});

describe("decideScale: token throughput signal", () => {
  // Compute-bound pods: KV-cache low, no queue, prefill is the bottleneck.
  const idleLooking = { kvCacheUtilization: 0.2, requestsWaiting: 0, requestsRunning: 8 };
  const withCapacity: AutoscalingConfig = {
    ...config,
    replicaTokenCapacityPerSecond: 10_000,
    tokenUtilizationTarget: 0.5,
    tokenDemandQuantile: 1,
    tokenWindowSeconds: 60,
  };

  /** Pods whose token counters have each processed `tokensPerSecond` since t = 0. */
  function busyPods(
    count: number,
    nowMs: number,
    tokensPerSecond: number,
    extra: Partial<MetricsSample> = {},
  ): PodObservation[] {
    return pods(count, nowMs, {
      ...idleLooking,
      promptTokensTotal: (tokensPerSecond * nowMs) / 1000,
      generationTokensTotal: 0,
      ...extra,
    });
  }

  /** Feeds pods at a steady per-pod token rate every 10 s from `fromMs` to `toMs`. */
  function runTokens(
    cfg: AutoscalingConfig,
    state: PolicyState,
    fromMs: number,
    toMs: number,
    replicas: number,
    tokensPerSecond: number,
  ) {
    let decision = decideScale(
      cfg,
      state,
      observe(fromMs, replicas, busyPods(replicas, fromMs, tokensPerSecond)),
    );
    for (let t = fromMs + 10_000; t <= toMs; t += 10_000)
      decision = decideScale(
        cfg,
        decision.state,
        observe(t, replicas, busyPods(replicas, t, tokensPerSecond)),
      );
    return decision;
  }

  it("scales up on token throughput while KV-cache and queue look idle", () => {
    const first = decideScale(withCapacity, initialPolicyState(), observe(0, 3, busyPods(3, 0, 7_000)));
    expect(first.desiredReplicas).toBe(3); // one reading is no rate yet
    expect(first.signals.tokensPerSecond).toBeNull();
    const d = decideScale(withCapacity, first.state, observe(10_000, 3, busyPods(3, 10_000, 7_000)));
    // 3 × 7,000 tokens/s / (10,000 × 0.5) = 4.2 → 5
    expect(d.signals.tokensPerSecond).toBeCloseTo(21_000, 6);
    expect(d.signals.tokenDemandReplicas).toBeCloseTo(4.2, 6);
    expect(d.desiredReplicas).toBe(5);
    expect(d.reason).toMatch(
      /^token throughput 21000\/s \(peak 4\.2 replicas at 50% of 10000\/s each over 60s\) across 3 ready pods → 5/,
    );
  });

  it("adds prompt and generation tokens", () => {
    const at = (t: number) =>
      pods(2, t, { ...idleLooking, promptTokensTotal: 6 * t, generationTokensTotal: 2 * t });
    const first = decideScale(withCapacity, initialPolicyState(), observe(0, 2, at(0)));
    const d = decideScale(withCapacity, first.state, observe(10_000, 2, at(10_000)));
    expect(d.signals.tokensPerSecond).toBeCloseTo(16_000, 6);
  });

  it("keeps the fleet sized for the peak of the token window, not its mean", () => {
    const calm = runTokens(withCapacity, initialPolicyState(), 0, 30_000, 4, 2_000);
    // One 10 s burst at 9,000 tokens/s per pod, then calm again at 2,000.
    const burstPods = pods(4, 40_000, {
      ...idleLooking,
      promptTokensTotal: 2_000 * 30 + 9_000 * 10,
      generationTokensTotal: 0,
    });
    const burst = decideScale(withCapacity, calm.state, observe(40_000, 4, burstPods));
    // 4 × 9,000 / 5,000 = 7.2 → 8; the window mean would say (4 × 1.6 + 7.2) / 5 ≈ 2.7.
    expect(burst.signals.tokenPeakDemandReplicas).toBeCloseTo(7.2, 6);
    expect(burst.desiredReplicas).toBe(8);
    const afterPods = (t: number) =>
      pods(8, t, {
        ...idleLooking,
        promptTokensTotal: 150_000 + (2_000 * (t - 40_000)) / 1000,
        generationTokensTotal: 0,
      });
    let d = burst;
    for (let t = 50_000; t <= 90_000; t += 10_000)
      d = decideScale(withCapacity, d.state, observe(t, 8, afterPods(t)));
    expect(d.signals.tokenPeakDemandReplicas).toBeCloseTo(7.2, 6); // 50 s later: still in the window
    for (let t = 100_000; t <= 120_000; t += 10_000)
      d = decideScale(withCapacity, d.state, observe(t, 8, afterPods(t)));
    // The burst left the 60 s window: 4 old pods' share is now spread over 8 (their counters grow at
    // the same per-pod rate here), so demand is 8 × 2,000 / 5,000 = 3.2.
    expect(d.signals.tokenPeakDemandReplicas).toBeCloseTo(3.2, 6);
  });

  it("scales down to the token demand without the KV hysteresis margin", () => {
    const cfg = {
      ...withCapacity,
      scaleDownStabilizationSeconds: 0,
      scaleDownUtilizationFactor: 0.3,
      maxScaleDownStep: 10,
    };
    const d = runTokens(cfg, initialPolicyState(), 0, 60_000, 8, 2_000);
    // Token demand 8 × 2,000 / 5,000 = 3.2 → 4; KV 8 × 0.2 / 0.8 = 2, at the hysteresis 0.3: 6.7 → 7.
    expect(d.desiredReplicas).toBe(7);
    const lowKv = runTokens(
      { ...cfg, kvCacheUtilizationTarget: 1 },
      initialPolicyState(),
      0,
      60_000,
      8,
      2_000,
    );
    // KV 8 × 0.2 / 1 / 0.3 = 5.3 → 6; the token peak asks for 4: hysteresis applies to KV only.
    expect(lowKv.desiredReplicas).toBe(6);
    const tokensOnly = runTokens(
      { ...cfg, kvCacheUtilizationTarget: 1, scaleDownUtilizationFactor: 1 },
      initialPolicyState(),
      0,
      60_000,
      8,
      2_000,
    );
    expect(tokensOnly.desiredReplicas).toBe(4);
  });

  it("adds pods beyond those still starting when token demand exceeds everything requested", () => {
    const first = decideScale(
      withCapacity,
      initialPolicyState(),
      observe(0, 3, [...busyPods(2, 0, 9_000), { name: "new-0", phase: "starting", sinceMs: 0 }]),
    );
    const d = decideScale(
      withCapacity,
      first.state,
      observe(10_000, 3, [...busyPods(2, 10_000, 9_000), { name: "new-0", phase: "starting", sinceMs: 0 }]),
    );
    // 2 × 9,000 / 5,000 = 3.6 → 4 > 3 requested (2 ready + 1 starting).
    expect(d.desiredReplicas).toBe(4);
  });

  it("does not extrapolate the rate of measured pods onto pods too new to have a rate", () => {
    const first = decideScale(withCapacity, initialPolicyState(), observe(0, 2, busyPods(2, 0, 4_000)));
    const fresh: PodObservation = readyPod("fresh", 10_000, {
      ...idleLooking,
      promptTokensTotal: 0,
      generationTokensTotal: 0,
    });
    const d = decideScale(
      withCapacity,
      first.state,
      observe(10_000, 3, [...busyPods(2, 10_000, 4_000), fresh]),
    );
    expect(d.signals.tokensPerSecond).toBeCloseTo(8_000, 6);
  });

  it("re-baselines a counter that went down (engine restart) instead of reading a negative rate", () => {
    const first = decideScale(
      withCapacity,
      initialPolicyState(),
      observe(10_000, 1, busyPods(1, 10_000, 5_000)),
    );
    const restarted = decideScale(
      withCapacity,
      first.state,
      observe(
        20_000,
        1,
        pods(1, 20_000, { ...idleLooking, promptTokensTotal: 100, generationTokensTotal: 0 }),
      ),
    );
    expect(restarted.signals.tokensPerSecond).toBeNull();
    const next = decideScale(
      withCapacity,
      restarted.state,
      observe(
        30_000,
        1,
        pods(1, 30_000, { ...idleLooking, promptTokensTotal: 20_100, generationTokensTotal: 0 }),
      ),
    );
    expect(next.signals.tokensPerSecond).toBeCloseTo(2_000, 6);
  });

  it("does not turn readings less than 5 s apart into a rate; it keeps the last one", () => {
    const first = decideScale(withCapacity, initialPolicyState(), observe(0, 1, busyPods(1, 0, 3_000)));
    const second = decideScale(withCapacity, first.state, observe(10_000, 1, busyPods(1, 10_000, 3_000)));
    // A retry 1 s later shows a jump that, as a rate, would read 50,000 tokens/s.
    const retry = pods(1, 11_000, {
      ...idleLooking,
      promptTokensTotal: 30_000 + 50_000,
      generationTokensTotal: 0,
    });
    const third = decideScale(withCapacity, second.state, observe(11_000, 1, retry));
    expect(third.signals.tokensPerSecond).toBeCloseTo(3_000, 6);
  });

  it("learns the replica capacity from pods seen saturated over a whole interval when none is configured", () => {
    const unconfigured: AutoscalingConfig = { ...withCapacity };
    delete unconfigured.replicaTokenCapacityPerSecond;
    const calm = runTokens(unconfigured, initialPolicyState(), 0, 20_000, 2, 3_000);
    expect(calm.signals.replicaTokenCapacityPerSecond).toBeNull(); // never saturated: signal off
    expect(calm.signals.tokenDemandReplicas).toBeNull();
    const saturated = (t: number) =>
      pods(2, t, {
        ...idleLooking,
        requestsWaiting: 6,
        promptTokensTotal: 60_000 + (8_000 * (t - 20_000)) / 1000,
        generationTokensTotal: 0,
      });
    // A queue seen only at the end of an interval may be a burst that just arrived: not yet saturated.
    const first = decideScale(unconfigured, calm.state, observe(30_000, 2, saturated(30_000)));
    expect(first.signals.replicaTokenCapacityPerSecond).toBeNull();
    const d = decideScale(unconfigured, first.state, observe(40_000, 2, saturated(40_000)));
    expect(d.signals.replicaTokenCapacityPerSecond).toBeCloseTo(8_000, 6);
    // 2 × 8,000 / (8,000 × 0.5) = 4
    expect(d.signals.tokenDemandReplicas).toBeCloseTo(4, 6);
  });

  it("leaves the decision to KV and queue when engines export no token counters", () => {
    const d = run(withCapacity, initialPolicyState(), 0, 30_000, 3, { kvCacheUtilization: 0.93 });
    expect(d.signals.tokensPerSecond).toBeNull();
    expect(d.signals.tokenPeakDemandReplicas).toBeNull();
    expect(d.desiredReplicas).toBe(4);
  });

  it("accepts a state saved before the token signal existed", () => {
    const legacy = { ...initialPolicyState() } as Partial<PolicyState>;
    delete legacy.podTokenCounters;
    delete legacy.learnedTokenCapacityPerSecond;
    const d = decideScale(withCapacity, legacy as PolicyState, observe(0, 2, busyPods(2, 0, 1_000)));
    expect(d.state.podTokenCounters?.["pod-0"]?.tokensTotal).toBe(0);
  });
});

describe("decideScale: learned capacity, derived headroom, forecast", () => {
  const base: AutoscalingConfig = {
    ...config,
    replicaTokenCapacityPerSecond: 10_000,
    tokenWindowSeconds: 60,
  };
  const counters = (
    n: number,
    t: number,
    perPodRate: (s: number) => number,
    extra: Partial<MetricsSample> = {},
  ) => {
    // cumulative tokens: integrate the rate in 10 s steps
    let total = 0;
    for (let s = 0; s < t; s += 10_000) total += perPodRate(s) * 10;
    return pods(n, t, {
      kvCacheUtilization: 0.2,
      requestsWaiting: 0,
      requestsRunning: 8,
      promptTokensTotal: total,
      generationTokensTotal: 0,
      ...extra,
    });
  };

  it("moves the planner's capacity toward what pods saturated over whole intervals processed", () => {
    let state = initialPolicyState();
    let d = decideScale(
      base,
      state,
      observe(
        0,
        2,
        counters(2, 0, () => 6_000, { requestsWaiting: 3 }),
      ),
    );
    for (let t = 10_000; t <= 600_000; t += 10_000) {
      d = decideScale(
        base,
        d.state,
        observe(
          t,
          2,
          counters(2, t, () => 6_000, { requestsWaiting: 3 }),
        ),
      );
    }
    state = d.state;
    expect(d.signals.replicaTokenCapacityPerSecond as number).toBeLessThan(7_000);
    expect(state.history?.capacity?.tokensPerSecond).toBe(d.signals.replicaTokenCapacityPerSecond);
  });

  it("does not take a queue that lasts less than a minute for the capacity (bursts queue briefly)", () => {
    // Queues at 5 readings in a row, then none, then 5 again: never SUSTAINED_SATURATION_INTERVALS.
    const queued = (t: number) => (Math.floor(t / 10_000) % 7 < 5 ? 3 : 0);
    let d = decideScale(
      base,
      initialPolicyState(),
      observe(
        0,
        2,
        counters(2, 0, () => 6_000, { requestsWaiting: 3 }),
      ),
    );
    for (let t = 10_000; t <= 600_000; t += 10_000)
      d = decideScale(
        base,
        d.state,
        observe(
          t,
          2,
          counters(2, t, () => 6_000, { requestsWaiting: queued(t) }),
        ),
      );
    expect(d.signals.replicaTokenCapacityPerSecond).toBe(10_000);
    expect(SUSTAINED_SATURATION_INTERVALS).toBe(6);
  });

  it("derives the token target from the TTFT objective and measured bursts: bursty traffic keeps more margin", () => {
    const derived: AutoscalingConfig = { ...base, ttftTargetSeconds: 2, timeToReadySeconds: 60 };
    delete derived.tokenUtilizationTarget;
    const run = (rate: (s: number) => number) => {
      let d = decideScale(derived, initialPolicyState(), observe(0, 4, counters(4, 0, rate)));
      for (let t = 10_000; t <= 600_000; t += 10_000)
        d = decideScale(derived, d.state, observe(t, 4, counters(4, t, rate)));
      return d;
    };
    const smooth = run(() => 2_000);
    const bursty = run((s) => (s % 60_000 === 0 ? 8_000 : 800));
    expect(smooth.signals.tokenDispersion as number).toBeLessThan(10);
    expect(bursty.signals.tokenDispersion as number).toBeGreaterThan(10_000);
    expect(smooth.signals.tokenUtilizationTarget as number).toBeGreaterThan(
      bursty.signals.tokenUtilizationTarget as number,
    );
    expect(bursty.reason).toMatch(/headroom from bursts of dispersion \d+ tokens and 70s to ready/);
  });

  it("records the time pods took to become ready, once per pod, and uses it as the horizon", () => {
    const ready: PodObservation = { ...readyPod("p", 100_000, {}), sinceMs: 95_000, createdAtMs: 5_000 };
    const d1 = decideScale(base, initialPolicyState(), observe(100_000, 1, [ready]));
    const d2 = decideScale(
      base,
      d1.state,
      observe(110_000, 1, [{ ...ready, metrics: { ...ready.metrics!, scrapedAtMs: 110_000 } }]),
    );
    expect(d2.state.history?.timeToReadySeconds).toEqual([90]);
    expect(d2.signals.horizonSeconds).toBe(100);
  });

  it("with forecast on and two days of cyclic history, scales ahead of the ramp and says so; never below the reactive answer", () => {
    const day = 86_400_000;
    const bucket = 300_000;
    // Per-pod rate follows a daily cycle (peak at noon): 5,000 + 4,500 × sin.
    const rate = (t: number) => 5_000 + 4_500 * Math.sin(((t % day) / day) * 2 * Math.PI - Math.PI / 2);
    const cfg: AutoscalingConfig = {
      ...base,
      tokenUtilizationTarget: 0.5,
      forecast: true,
      timeToReadySeconds: 1_800,
      maxReplicas: 50,
    };
    // Two days and a morning of history, fed once a minute (enough for 5-minute buckets).
    let state = initialPolicyState();
    let total = 0;
    let d = decideScale(
      cfg,
      state,
      observe(
        0,
        2,
        pods(2, 0, {
          kvCacheUtilization: 0.2,
          requestsRunning: 8,
          promptTokensTotal: 0,
          generationTokensTotal: 0,
        }),
      ),
    );
    for (let t = 60_000; t <= 2 * day + 7 * 3_600_000; t += 60_000) {
      total += rate(t - 60_000) * 60;
      d = decideScale(
        cfg,
        d.state,
        observe(
          t,
          2,
          pods(2, t, {
            kvCacheUtilization: 0.2,
            requestsRunning: 8,
            promptTokensTotal: total,
            generationTokensTotal: 0,
          }),
        ),
      );
    }
    state = d.state;
    expect(state.history?.tokensPerSecond.length).toBeGreaterThan((2 * day) / bucket);
    expect(d.signals.forecastDemandReplicas).not.toBeNull();
    expect(d.signals.forecastDemandReplicas as number).toBeGreaterThan(
      d.signals.tokenPeakDemandReplicas as number,
    );
    expect(d.reason).toMatch(/^forecast demand .* in \d+s \(seasonal-ratio/);
    // The same without forecast: the reactive answer, never more than with it.
    const off = { ...cfg, forecast: false };
    const reactive = decideScale(
      off,
      { ...state, forecastCache: undefined } as PolicyState,
      observe(
        d.state.history!.open!.startMs + 70_000,
        2,
        pods(2, d.state.history!.open!.startMs + 70_000, {
          kvCacheUtilization: 0.2,
          requestsRunning: 8,
          promptTokensTotal: total + rate(0) * 10,
          generationTokensTotal: 0,
        }),
      ),
    );
    expect(reactive.signals.forecastDemandReplicas).toBeNull();
    expect(reactive.desiredReplicas).toBeLessThanOrEqual(d.desiredReplicas);
  });

  it("changes nothing with forecast on but no history", () => {
    const cfg: AutoscalingConfig = { ...base, tokenUtilizationTarget: 0.5 };
    const a = decideScale(
      cfg,
      initialPolicyState(),
      observe(
        0,
        2,
        counters(2, 0, () => 3_000),
      ),
    );
    const b = decideScale(
      { ...cfg, forecast: true },
      initialPolicyState(),
      observe(
        0,
        2,
        counters(2, 0, () => 3_000),
      ),
    );
    const a2 = decideScale(
      cfg,
      a.state,
      observe(
        10_000,
        2,
        counters(2, 10_000, () => 3_000),
      ),
    );
    const b2 = decideScale(
      { ...cfg, forecast: true },
      b.state,
      observe(
        10_000,
        2,
        counters(2, 10_000, () => 3_000),
      ),
    );
    expect(b2.desiredReplicas).toBe(a2.desiredReplicas);
    expect(b2.reason).toBe(a2.reason);
    expect(b2.signals.forecastDemandReplicas).toBeNull();
  });
});

describe("decideScale: derived headroom at a burst's onset", () => {
  it("never sizes below the latest token rate, so it does not scale down while a burst begins", () => {
    const cfg: AutoscalingConfig = {
      ...config,
      replicaTokenCapacityPerSecond: 4_000,
      ttftTargetSeconds: 2,
      scaleDownStabilizationSeconds: 0,
      maxScaleDownStep: 4,
    };
    delete cfg.tokenUtilizationTarget;
    // Five calm samples at 300 tokens/s per pod on 4 pods, then 2,700 tokens/s per pod.
    let total = 0;
    const at = (t: number, rate: number) => {
      total += rate * 10;
      return pods(4, t, {
        kvCacheUtilization: 0.1,
        requestsWaiting: 0,
        requestsRunning: 2,
        promptTokensTotal: total,
        generationTokensTotal: 0,
      });
    };
    let d = decideScale(
      cfg,
      initialPolicyState(),
      observe(
        0,
        4,
        pods(4, 0, {
          kvCacheUtilization: 0.1,
          requestsRunning: 2,
          promptTokensTotal: 0,
          generationTokensTotal: 0,
        }),
      ),
    );
    for (let t = 10_000; t <= 50_000; t += 10_000) d = decideScale(cfg, d.state, observe(t, 4, at(t, 300)));
    d = decideScale(cfg, d.state, observe(60_000, 4, at(60_000, 2_700)));
    // 4 × 2,700 = 10,800 tokens/s now: the window mean alone is ~0.9 replicas at this capacity.
    expect(d.signals.tokensPerSecond).toBeCloseTo(10_800, 6);
    // Floor: the latest rate at the highest target (0.75) of 4,000/s = 3.6 replicas.
    expect(d.signals.tokenPeakDemandReplicas as number).toBeCloseTo(10_800 / (4_000 * 0.75), 6);
    expect(d.desiredReplicas).toBeGreaterThanOrEqual(4);
  });
});

describe("decideScale: a draining backlog", () => {
  const cfg: AutoscalingConfig = {
    ...config,
    maxReplicas: 40,
    replicaTokenCapacityPerSecond: 10_000,
    tokenUtilizationTarget: 0.5,
    tokenWindowSeconds: 60,
    timeToReadySeconds: 110,
  };
  const runQueue = (waiting: (t: number) => number) => runBusy(cfg, waiting, 60_000);

  it("asks for nothing more while the queue drains fast enough to be gone when new pods would be ready", () => {
    // 400 → 100 per pod over a minute: gone in 20 s, long before a pod ordered now is ready.
    const d = runQueue((t) => 400 - t / 200);
    expect(d.signals.tokenDemandReplicas).toBeCloseTo(20, 6); // capacity read as demand…
    expect(d.desiredReplicas).toBe(10); // …but not acted on while the backlog drains
  });

  it("still scales up on a queue that grows, and on one that drains too slowly", () => {
    expect(runQueue((t) => 100 + t / 200).desiredReplicas).toBeGreaterThan(10);
    // 1,000 per pod draining by 1 per pod a second: 890 still waiting after the 110 s to ready.
    expect(runQueue((t) => 1_000 - t / 1000).desiredReplicas).toBeGreaterThan(10);
  });
});

describe("decideScale: token demand from what was served and how the queue moved", () => {
  const cfg: AutoscalingConfig = {
    ...config,
    maxReplicas: 60,
    replicaTokenCapacityPerSecond: 10_000,
    tokenUtilizationTarget: 0.5,
    tokenWindowSeconds: 10,
    stableWindowSeconds: 10,
  };
  // 1,000 tokens per request: 10 requests/s finish on each pod.
  const runQueue = (waiting: (t: number) => number, finished = true) =>
    runBusy(cfg, waiting, 30_000, (t) => (finished ? { requestsFinishedTotal: 10 * (t / 1000) } : {}));

  it("adds the queue's growth to the served rate: a fleet at capacity with a growing queue is short", () => {
    // The queue grows by 5 requests/s per pod: 50/s × 1,000 tokens on top of the 100,000 served.
    const d = runQueue((t) => 100 + (5 * t) / 1000);
    expect(d.signals.tokensPerSecond).toBeCloseTo(150_000, 3);
    expect(d.signals.tokenDemandReplicas).toBeCloseTo(30, 6); // the served rate alone said 20
  });

  it("takes the drain out while a backlog is worked off", () => {
    // 500 → 350 per pod in 30 s: 50 requests/s of the served 100 were the backlog.
    const d = runQueue((t) => 500 - (5 * t) / 1000);
    expect(d.signals.tokensPerSecond).toBeCloseTo(50_000, 3);
    expect(d.signals.tokenDemandReplicas).toBeCloseTo(10, 6);
  });

  it("reads the served rate as it is without a backlog, or without a finished-requests counter", () => {
    expect(runQueue(() => 0).signals.tokensPerSecond).toBeCloseTo(100_000, 3);
    expect(runQueue((t) => 100 + (5 * t) / 1000, false).signals.tokensPerSecond).toBeCloseTo(100_000, 3);
  });
});
