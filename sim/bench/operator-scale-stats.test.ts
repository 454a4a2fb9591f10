import { describe, expect, it } from "vitest";
import { nodeManifests } from "../cluster/nodepools.js";
import {
  apiserverMeanSeconds,
  apiserverRequestDelta,
  BenchArgsError,
  benchNodePools,
  forEachBounded,
  writeCeiling,
  writesIn,
  formatTable,
  operatorMetricsFromExposition,
  parseBenchArgs,
  parseMachineTicks,
  parseProcStatTicks,
  parseVmRssKiB,
  percentile,
  ScaleTimeline,
} from "./operator-scale-stats.js";

describe("parseBenchArgs", () => {
  it("defaults to 1,000 objects at concurrency 16 with enough 8-GPU nodes for every replica", () => {
    expect(parseBenchArgs([])).toEqual({
      count: 1000,
      concurrency: 16,
      operatorConcurrency: 8,
      gpuNodes: 125,
      waitReady: false,
      timeoutSeconds: 900,
      keepDir: false,
      rate: undefined,
      cpuProfile: false,
      replayCount: 1000,
    });
  });

  it("reads space- and equals-separated flags and sizes the pool from --count", () => {
    const args = parseBenchArgs([
      "--count",
      "20",
      "--concurrency=4",
      "--operator-concurrency",
      "8",
      "--wait-ready",
      "--keep-dir",
      "--rate",
      "10",
      "--cpu-prof",
      "--replay-count",
      "0",
    ]);
    expect(args).toMatchObject({
      count: 20,
      concurrency: 4,
      operatorConcurrency: 8,
      gpuNodes: 3,
      waitReady: true,
      keepDir: true,
      rate: 10,
      cpuProfile: true,
      replayCount: 0,
    });
  });

  it("refuses unknown flags and values that are not positive whole numbers", () => {
    expect(() => parseBenchArgs(["--cuont", "5"])).toThrow(BenchArgsError);
    expect(() => parseBenchArgs(["--count", "0"])).toThrow(/--count needs a whole number/);
    expect(() => parseBenchArgs(["--concurrency", "2.5"])).toThrow(BenchArgsError);
    expect(() => parseBenchArgs(["--operator-concurrency", "65"])).toThrow(/from 1 to 64/);
    expect(() => parseBenchArgs(["--count"])).toThrow(/got nothing/);
    expect(() => parseBenchArgs(["--count", "10", "--replay-count", "11"])).toThrow(/from 0 to 10/);
  });
});

describe("benchNodePools", () => {
  it("makes one system node and the requested L4 nodes with 8 GPUs each", () => {
    const nodes = nodeManifests(benchNodePools(3));
    expect(nodes).toHaveLength(4);
    const gpuNodes = nodes.filter(
      (node) => node.metadata?.labels?.["nvidia.com/gpu.product"] === "NVIDIA-L4",
    );
    expect(gpuNodes).toHaveLength(3);
    expect(gpuNodes.every((node) => node.status?.allocatable?.["nvidia.com/gpu"] === "8")).toBe(true);
  });
});

describe("percentile", () => {
  it("takes the nearest rank of the sorted values", () => {
    const values = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
    expect(percentile(values, 50)).toBe(5);
    expect(percentile(values, 99)).toBe(10);
    expect(percentile(values, 10)).toBe(1);
    expect(percentile([42], 99)).toBe(42);
    expect(percentile([], 50)).toBeUndefined();
  });
});

describe("parseProcStatTicks and parseMachineTicks", () => {
  it("sum user, system and waited-for children's ticks after a command name with spaces and parentheses", () => {
    const line = "4242 (kube (api) server) S 1 4242 4242 0 -1 4194560 100 0 0 0 700 300 20 5 20 0 12 0 5000 1000 50";
    expect(parseProcStatTicks(line)).toBe(1025);
    expect(parseProcStatTicks("4242 (x) S 1")).toBeUndefined();
  });

  it("count busy ticks as all but idle and iowait", () => {
    const stat = "cpu  100 50 30 800 20 0 10 5 0 0\ncpu0 50 25 15 400 10 0 5 2 0 0\n";
    expect(parseMachineTicks(stat)).toEqual({ busy: 195, total: 1015 });
    expect(parseMachineTicks("intr 1 2 3")).toBeUndefined();
  });
});

describe("parseVmRssKiB", () => {
  it("reads VmRSS from /proc/<pid>/status", () => {
    const status = "Name:\tnode\nVmPeak:\t 1234 kB\nVmRSS:\t   98765 kB\nRssAnon:\t 5 kB\n";
    expect(parseVmRssKiB(status)).toBe(98765);
    expect(parseVmRssKiB("Name:\tkthreadd\n")).toBeUndefined();
  });
});

describe("operatorMetricsFromExposition", () => {
  it("sums reconciles by result, the duration histogram, retries and CPU time", () => {
    const text = [
      "# TYPE process_cpu_seconds_total counter",
      "process_cpu_seconds_total 12.5",
      "# TYPE gpufleet_reconcile_total counter",
      'gpufleet_reconcile_total{result="success"} 1500',
      'gpufleet_reconcile_total{result="error"} 3',
      "# TYPE gpufleet_reconcile_duration_seconds histogram",
      'gpufleet_reconcile_duration_seconds_bucket{result="success",le="+Inf"} 1500',
      'gpufleet_reconcile_duration_seconds_sum{result="success"} 30',
      'gpufleet_reconcile_duration_seconds_count{result="success"} 1500',
      'gpufleet_reconcile_duration_seconds_bucket{result="error",le="+Inf"} 3',
      'gpufleet_reconcile_duration_seconds_sum{result="error"} 0.3',
      'gpufleet_reconcile_duration_seconds_count{result="error"} 3',
      "# TYPE gpufleet_workqueue_retries_total counter",
      "gpufleet_workqueue_retries_total 3",
      "# TYPE gpufleet_workqueue_wait_seconds histogram",
      'gpufleet_workqueue_wait_seconds_bucket{le="+Inf"} 1503',
      "gpufleet_workqueue_wait_seconds_sum 751.5",
      "gpufleet_workqueue_wait_seconds_count 1503",
      "# TYPE gpufleet_kube_requests_total counter",
      'gpufleet_kube_requests_total{verb="APPLY",resource="deployments",code="201"} 900',
      'gpufleet_kube_requests_total{verb="APPLY",resource="deployments",code="409"} 100',
      'gpufleet_kube_requests_total{verb="GET",resource="services",code="404"} 1000',
      "# TYPE gpufleet_kube_request_duration_seconds histogram",
      'gpufleet_kube_request_duration_seconds_sum{verb="APPLY"} 50',
      'gpufleet_kube_request_duration_seconds_count{verb="APPLY"} 1000',
      'gpufleet_kube_request_duration_seconds_sum{verb="GET"} 10',
      'gpufleet_kube_request_duration_seconds_count{verb="GET"} 1000',
      "",
    ].join("\n");
    const snapshot = operatorMetricsFromExposition(text);
    expect(snapshot.reconcilesByResult).toEqual({ success: 1500, error: 3 });
    expect(snapshot.reconcileCount).toBe(1503);
    expect(snapshot.reconcileSecondsSum).toBeCloseTo(30.3, 6);
    expect(snapshot.workqueueRetries).toBe(3);
    expect(snapshot.queueWaitSecondsSum / snapshot.queueWaitCount).toBeCloseTo(0.5, 9);
    expect(snapshot.cpuSeconds).toBe(12.5);
    expect([...snapshot.requests]).toEqual([
      ["APPLY deployments", 1000],
      ["GET services", 1000],
    ]);
    expect(writesIn(snapshot.requests)).toBe(1000);
    expect(snapshot.meanRequestSecondsByVerb.get("APPLY")).toBeCloseTo(0.05, 9);
    expect(snapshot.meanRequestSecondsByVerb.get("GET")).toBeCloseTo(0.01, 9);
  });
});

describe("apiserverRequestDelta", () => {
  const exposition = (patchDeployments: number, postEvents: number, getPods: number) =>
    [
      "# TYPE apiserver_request_total counter",
      `apiserver_request_total{code="200",resource="deployments",subresource="",verb="APPLY"} ${patchDeployments}`,
      `apiserver_request_total{code="201",resource="events",subresource="",verb="POST"} ${postEvents}`,
      `apiserver_request_total{code="200",resource="modeldeployments",subresource="status",verb="APPLY"} ${postEvents * 2}`,
      `apiserver_request_total{code="200",resource="configmaps",subresource="",verb="POST"} 999`,
      `apiserver_request_total{code="200",resource="pods",subresource="",verb="GET"} ${getPods}`,
      "",
    ].join("\n");

  it("counts the growth per verb and resource, only for the resources asked about, largest first", () => {
    const delta = apiserverRequestDelta(
      exposition(10, 5, 7),
      exposition(1010, 2005, 7),
      new Set(["deployments", "events", "modeldeployments", "pods"]),
    );
    expect([...delta]).toEqual([
      ["APPLY modeldeployments/status", 4000],
      ["POST events", 2000],
      ["APPLY deployments", 1000],
    ]);
  });
});

describe("apiserverMeanSeconds", () => {
  const exposition = (count: number, sum: number) =>
    [
      "# TYPE apiserver_request_duration_seconds histogram",
      `apiserver_request_duration_seconds_sum{resource="deployments",scope="resource",subresource="",verb="APPLY",version="v1"} ${sum}`,
      `apiserver_request_duration_seconds_count{resource="deployments",scope="resource",subresource="",verb="APPLY",version="v1"} ${count}`,
      `apiserver_request_duration_seconds_sum{resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"} ${sum}`,
      `apiserver_request_duration_seconds_count{resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"} ${count}`,
      "",
    ].join("\n");
  it("divides the growth of the duration sum by the growth of the count, per verb and resource asked about", () => {
    const means = apiserverMeanSeconds(exposition(10, 1), exposition(110, 21), new Set(["deployments"]));
    expect([...means.keys()]).toEqual(["APPLY deployments"]);
    expect(means.get("APPLY deployments")).toBeCloseTo(0.2, 9);
  });
});

describe("ScaleTimeline", () => {
  const observation = (generation: number, observedGeneration: number | undefined, ready = false) => ({
    generation,
    observedGeneration,
    ready,
  });

  it("times apply → Deployment and converges only when the status observed the generation and the Deployment exists", () => {
    const timeline = new ScaleTimeline(new Set(["a", "b"]));
    timeline.applied("a", 100);
    timeline.applied("b", 110);
    timeline.modelDeploymentSeen("a", observation(1, undefined), 120);
    timeline.deploymentSeen("a", 150);
    expect(timeline.converged).toBe(0);
    timeline.modelDeploymentSeen("a", observation(1, 1), 160);
    expect(timeline.converged).toBe(1);
    // Status first, Deployment event later (separate watch streams): converged when the second arrives.
    timeline.modelDeploymentSeen("b", observation(1, 1), 170);
    expect(timeline.converged).toBe(1);
    timeline.deploymentSeen("b", 180);
    expect(timeline.converged).toBe(2);
    expect(timeline.applyToDeploymentMs().sort((x, y) => x - y)).toEqual([50, 70]);
    expect(timeline.lastOf("convergedAtMs")).toBe(180);
    expect(timeline.lastOf("readyAtMs")).toBeUndefined();
  });

  it("keeps the first time each milestone held and ignores objects it was not told about", () => {
    const timeline = new ScaleTimeline(new Set(["a"]));
    timeline.applied("a", 0);
    timeline.deploymentSeen("a", 10);
    timeline.deploymentSeen("a", 99);
    timeline.modelDeploymentSeen("a", observation(1, 1, true), 20);
    timeline.modelDeploymentSeen("a", observation(2, 1, true), 30);
    timeline.modelDeploymentSeen("a", observation(2, 2, true), 40);
    timeline.deploymentSeen("stranger", 5);
    expect(timeline.deploymentsSeen).toBe(1);
    expect(timeline.lastOf("deploymentSeenAtMs")).toBe(10);
    expect(timeline.lastOf("convergedAtMs")).toBe(20);
    expect(timeline.lastOf("readyAtMs")).toBe(20);
    expect(timeline.ready).toBe(1);
  });
});

describe("forEachBounded", () => {
  it("never runs more than the limit at once and visits every item", async () => {
    let running = 0;
    let peak = 0;
    const seen: number[] = [];
    await forEachBounded([1, 2, 3, 4, 5, 6, 7], 3, async (item) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, 1));
      seen.push(item);
      running--;
    });
    expect(peak).toBe(3);
    expect(seen.sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it("starts no new item once told to stop", async () => {
    const seen: number[] = [];
    await forEachBounded(
      [1, 2, 3, 4],
      1,
      async (item) => void seen.push(item),
      () => seen.length >= 2,
    );
    expect(seen).toEqual([1, 2]);
  });
});

describe("formatTable", () => {
  it("aligns labels left and figures right", () => {
    expect(
      formatTable([
        ["N", "1000"],
        ["ratio", "0.25"],
      ]).split("\n"),
    ).toEqual(["+-------+------+", "| N     | 1000 |", "| ratio | 0.25 |", "+-------+------+"]);
  });
});

describe("writeCeiling", () => {
  it("counts every verb but GET, LIST and WATCH as a write and divides by the create rate", () => {
    const requests = new Map([
      ["APPLY deployments", 100],
      ["APPLY modeldeployments/status", 100],
      ["POST events", 220],
      ["LIST pods", 5],
      ["WATCH deployments", 3],
      ["GET deployments", 300],
    ]);
    const { writesPerObject, ceilingSeconds } = writeCeiling(requests, 100, 200);
    expect(writesPerObject).toBeCloseTo(4.2);
    expect(ceilingSeconds).toBeCloseTo(2.1);
  });
});
