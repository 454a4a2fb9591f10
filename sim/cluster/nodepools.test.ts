import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  GPU_RESOURCE,
  NodePoolsValidationError,
  loadNodePools,
  nodeManifests,
  parseNodePools,
  type NodePoolsConfig,
} from "./nodepools.js";

const validConfig = (): NodePoolsConfig => ({
  systemNode: {
    name: "system",
    cpu: "8",
    memory: "32Gi",
    pods: 110,
    region: "us-central1",
    zone: "us-central1-a",
  },
  pools: [
    {
      name: "h100",
      gpuProduct: "NVIDIA-H100-80GB-HBM3",
      gpuMemoryMiB: 81559,
      gpusPerNode: 8,
      nodeCount: 2,
      region: "us-central1",
      zone: "us-central1-a",
      instanceType: "a3-highgpu-8g",
      cpu: "208",
      memory: "1872Gi",
      pods: 110,
    },
  ],
});

function problemsOf(document: unknown): string[] {
  try {
    parseNodePools(document);
  } catch (error) {
    if (error instanceof NodePoolsValidationError) return error.problems;
    throw error;
  }
  return [];
}

describe("loadNodePools", () => {
  it("reads the shipped gpu-pools.yaml with the h100, l4 and a100 pools", () => {
    const config = loadNodePools();
    const byName = new Map(config.pools.map((pool) => [pool.name, pool]));
    expect(byName.get("h100")).toMatchObject({
      gpuProduct: "NVIDIA-H100-80GB-HBM3",
      gpusPerNode: 8,
      nodeCount: 2,
      region: "us-central1",
      zone: "us-central1-a",
    });
    expect(byName.get("l4")).toMatchObject({
      gpuProduct: "NVIDIA-L4",
      gpusPerNode: 4,
      nodeCount: 3,
      region: "europe-west4",
      zone: "europe-west4-a",
    });
    expect(byName.get("a100")).toMatchObject({
      gpuProduct: "NVIDIA-A100-SXM4-80GB",
      gpusPerNode: 8,
      nodeCount: 1,
    });
  });

  it("names the file in the error when a pool is invalid", () => {
    const dir = mkdtempSync(join(tmpdir(), "pools-"));
    try {
      const file = join(dir, "pools.yaml");
      writeFileSync(
        file,
        "systemNode: {name: system, cpu: '1', memory: 1Gi, pods: 10, region: r, zone: z}\npools: []\n",
      );
      expect(() => loadNodePools(file)).toThrow(file);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("parseNodePools", () => {
  it("accepts a valid config unchanged", () => {
    expect(parseNodePools(validConfig())).toEqual(validConfig());
  });

  it("reports every problem at once", () => {
    const config = validConfig() as unknown as { pools: Record<string, unknown>[] };
    config.pools[0] = { ...config.pools[0], gpusPerNode: 0, cpu: "lots", gpuProduct: "NVIDIA H100" };
    const problems = problemsOf(config);
    expect(problems).toContain("$.pools[0].gpusPerNode must be a positive integer");
    expect(problems.some((problem) => problem.startsWith("$.pools[0].cpu"))).toBe(true);
    expect(problems.some((problem) => problem.startsWith("$.pools[0].gpuProduct"))).toBe(true);
    expect(problems).toHaveLength(3);
  });

  it("rejects duplicate pool names and unknown fields", () => {
    const config = validConfig();
    const pool = config.pools[0]!;
    const problems = problemsOf({ ...config, pools: [pool, { ...pool, gpuCount: 2 }] });
    expect(problems).toContain('$.pools[1].name "h100" is used by another pool');
    expect(problems).toContain("$.pools[1].gpuCount is not a known field");
  });

  it("rejects pool names that cannot form node names", () => {
    const config = validConfig();
    const problems = problemsOf({ ...config, pools: [{ ...config.pools[0], name: "H100_pool" }] });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^\$\.pools\[0\]\.name "H100_pool" must be a lowercase DNS label/);
  });

  it("rejects a missing system node and an empty pool list", () => {
    expect(problemsOf({ pools: [] })).toEqual([
      "$.systemNode must be a mapping",
      "$.pools must be a non-empty list",
    ]);
  });
});

describe("nodeManifests", () => {
  const nodes = nodeManifests(validConfig());

  it("makes one untainted system node plus nodeCount nodes per pool", () => {
    expect(nodes.map((node) => node.metadata?.name)).toEqual(["system-0", "h100-0", "h100-1"]);
    expect(nodes[0]?.spec?.taints ?? []).toEqual([]);
    expect(nodes[0]?.status?.capacity?.[GPU_RESOURCE]).toBeUndefined();
  });

  it("labels GPU nodes as GPU Feature Discovery does and taints them", () => {
    const gpuNode = nodes[1]!;
    expect(gpuNode.metadata?.labels).toMatchObject({
      "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
      "nvidia.com/gpu.memory": "81559",
      "nvidia.com/gpu.count": "8",
      "nvidia.com/gpu.present": "true",
      "topology.kubernetes.io/region": "us-central1",
      "topology.kubernetes.io/zone": "us-central1-a",
      "node.kubernetes.io/instance-type": "a3-highgpu-8g",
      "gpufleet.io/pool": "h100",
      type: "kwok",
    });
    expect(gpuNode.metadata?.annotations?.["kwok.x-k8s.io/node"]).toBe("fake");
    expect(gpuNode.spec?.taints).toEqual([{ key: "nvidia.com/gpu", value: "present", effect: "NoSchedule" }]);
    expect(gpuNode.status?.capacity).toMatchObject({
      [GPU_RESOURCE]: "8",
      cpu: "208",
      memory: "1872Gi",
      pods: "110",
    });
    expect(gpuNode.status?.allocatable).toEqual(gpuNode.status?.capacity);
  });

  it("gives every node a distinct loopback InternalIP", () => {
    const ips = nodes.map(
      (node) => node.status?.addresses?.find((address) => address.type === "InternalIP")?.address,
    );
    expect(new Set(ips).size).toBe(nodes.length);
    for (const ip of ips) expect(ip).toMatch(/^127\.\d+\.\d+\.\d+$/);
  });
});
