import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { installRecordingMocks, quiesced, valueOf } from "../testing/pulumi-mocks.js";

const mocks = installRecordingMocks({
  outputs: ({ type, name }) => {
    if (type === "eks:index:Cluster") return { kubeconfigJson: "{}" };
    if (type === "gcp:container/cluster:Cluster")
      return { name, endpoint: "gke.example.invalid", masterAuth: { clusterCaCertificate: "Q0E=" } };
    if (type === "kubernetes:helm.sh/v3:Release") return { status: { status: "deployed" } };
    return {};
  },
  invokes: { "aws:index/getAvailabilityZones:getAvailabilityZones": () => ({ names: ["a", "b", "c"] }) },
});

// The example stack file, loaded as `pulumi up` would: every `fleet:*` key, objects as JSON strings.
const exampleStack = parse(readFileSync(join(import.meta.dirname, "Pulumi.example.yaml"), "utf8")) as {
  config: Record<string, unknown>;
};
pulumi.runtime.setAllConfig(
  Object.fromEntries(
    Object.entries(exampleStack.config).map(([key, value]) => [
      key,
      typeof value === "string" ? value : JSON.stringify(value),
    ]),
  ),
);
const { readFleetConfig, default: stackProgram } = await import("./index.js");
const { validateFleetConfig } = await import("./program.js");

describe("the example fleet stack (Pulumi.example.yaml under mocks)", () => {
  it("reads a valid config from the stack file", () => {
    const config = readFleetConfig();
    expect(validateFleetConfig(config)).toEqual([]);
    expect(config.regions).toHaveLength(5);
    expect(config.models.map((model) => model.name)).toEqual(["llama-3-1-8b", "llama-3-1-70b"]);
    expect(config.gpuOperator).toMatchObject({ enabled: true, driver: "preinstalled" });
  });

  it("runs end to end: placement report, clusters with GPU pools, gpufleet with the GPU operator", async () => {
    const outputs = await stackProgram();
    await valueOf(outputs.kubeconfigs);
    await quiesced(mocks);
    expect(outputs.placement).toMatchObject({ strategy: "carbon-aware" });
    expect(outputs.placement.totalGpus).toBeGreaterThan(0);
    expect(Object.keys(outputs.comparison)).toContain("emissionsReductionVsCheapestPct");
    const clusterNames = Object.keys(outputs.clusters);
    expect(clusterNames.length).toBeGreaterThan(0);
    // Every cluster gets gpufleet and NVIDIA's GPU operator without a driver (preinstalled by the node images).
    const releases = mocks.ofType("kubernetes:helm.sh/v3:Release");
    for (const name of clusterNames) {
      expect(releases.map((release) => release.name)).toEqual(
        expect.arrayContaining([`${name}-gpufleet-operator`, `${name}-gpufleet-gpu-operator`]),
      );
      const gpuOperator = releases.find((release) => release.name === `${name}-gpufleet-gpu-operator`)!;
      expect(gpuOperator.inputs).toMatchObject({
        version: "v25.3.0",
        values: { driver: { enabled: false } },
      });
      const operator = releases.find((release) => release.name === `${name}-gpufleet-operator`)!;
      expect(operator.inputs.values).toMatchObject({
        replicaCount: 2,
        leaderElection: { enabled: true },
        image: { tag: "0.1.0" },
      });
    }
    // Every GPU pool of every cluster carries the pool label and the GPU taint.
    const gpuPools = [
      ...mocks
        .ofType("gcp:container/nodePool:NodePool")
        .filter((pool) => !pool.name.endsWith("-system"))
        .map((pool) => pool.inputs.nodeConfig),
      ...mocks
        .ofType("eks:index:ManagedNodeGroup")
        .filter((group) => !group.name.endsWith("-system"))
        .map((group) => group.inputs),
    ];
    expect(gpuPools.length).toBeGreaterThan(0);
    for (const pool of gpuPools) {
      expect(pool.labels["gpufleet.io/pool"]).toMatch(/^[a-z0-9-]+$/);
      expect(pool.taints).toEqual([{ key: "nvidia.com/gpu", value: "present", effect: "NO_SCHEDULE" }]);
    }
  }, 60_000);
});
