import { describe, expect, it } from "vitest";
import type { PlacementPlan } from "../placement/index.js";
import {
  clusterName,
  placedSpec,
  placementReport,
  planFleetClusters,
  poolName,
  type FleetModel,
} from "./fleet-plan.js";

const model = (name: string, shapes: FleetModel["replicaShapes"], autoscaling = false): FleetModel => ({
  name,
  replicaShapes: shapes,
  deployment: {
    model: {
      name: "llama-3.1-8b-instruct",
      source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } },
    },
    ...(autoscaling ? { autoscaling: { enabled: true, maxReplicas: 2 } } : {}),
  },
});

const plan = (replicas: PlacementPlan["replicas"]): PlacementPlan => ({
  strategy: "carbon-aware",
  replicas,
  routes: [],
  regionsPerModel: {},
  totalGpus: replicas.reduce((sum, r) => sum + r.gpus, 0),
  demandTokensPerSecond: 1000,
  emissionsGramsPerHour: 1234.56,
  tCO2PerYear: 10.8149,
  gCO2PerMillionTokens: 0.3429,
  costPerHour: 12.345,
  meanRttMs: 21.04,
  maxRttMs: 33,
  solverStatus: "Optimal",
});

describe("names", () => {
  it("derives DNS-safe cluster and pool names", () => {
    expect(clusterName("gcp", "europe-north1")).toBe("gcp-europe-north1");
    expect(poolName("nvidia-h100-80gb")).toBe("h100-80gb");
    expect(poolName("nvidia-tesla-a100")).toBe("a100");
  });
});

describe("placedSpec", () => {
  it("pins the placed GPU and sets fixed replicas when autoscaling is off", () => {
    const spec = placedSpec(
      { model: { name: "m" }, gpu: { products: ["NVIDIA-L4", "NVIDIA-H100-80GB-HBM3"] } },
      "nvidia-h100-80gb",
      3,
    );
    expect(spec.gpu?.products).toEqual(["NVIDIA-H100-80GB-HBM3"]);
    expect(spec.replicas).toBe(3);
  });

  it("makes the placed replicas the autoscaler's floor, raising the ceiling when it is lower", () => {
    const spec = placedSpec(
      { model: { name: "m" }, autoscaling: { enabled: true, maxReplicas: 2 } },
      "nvidia-l4",
      4,
    );
    expect(spec.autoscaling).toEqual({ enabled: true, minReplicas: 4, maxReplicas: 4 });
    expect(spec.replicas).toBeUndefined();
  });
});

describe("planFleetClusters", () => {
  it("groups replicas by region into clusters, one pool per GPU product, sized for the largest replica", () => {
    const clusters = planFleetClusters(
      plan([
        { model: "small", region: "gcp:europe-west4", gpuProduct: "nvidia-h100-80gb", replicas: 2, gpus: 2 },
        { model: "large", region: "gcp:europe-west4", gpuProduct: "nvidia-h100-80gb", replicas: 1, gpus: 4 },
        { model: "small", region: "aws:eu-north-1", gpuProduct: "nvidia-l4", replicas: 3, gpus: 3 },
        { model: "large", region: "aws:eu-north-1", gpuProduct: "nvidia-l4", replicas: 0, gpus: 0 },
      ]),
      [
        model("small", [
          { gpuProduct: "nvidia-h100-80gb", gpusPerReplica: 1, tokensPerSecondPerReplica: 9000 },
          { gpuProduct: "nvidia-l4", gpusPerReplica: 1, tokensPerSecondPerReplica: 1000 },
        ]),
        model(
          "large",
          [{ gpuProduct: "nvidia-h100-80gb", gpusPerReplica: 4, tokensPerSecondPerReplica: 5000 }],
          true,
        ),
      ],
    );
    expect(clusters.map((cluster) => cluster.name)).toEqual(["aws-eu-north-1", "gcp-europe-west4"]);
    const [aws, gcp] = clusters;
    expect(aws!.gpuPools.map((pool) => [pool.name, pool.machine.machineType, pool.desiredNodes])).toEqual([
      ["l4", "g6.2xlarge", 3],
    ]);
    expect(aws!.modelDeployments.map((md) => md.name)).toEqual(["small"]);
    // 6 GPUs on 4-GPU machines (the 4-GPU replica sets the machine size): 2 nodes.
    expect(gcp!.gpuPools.map((pool) => [pool.name, pool.machine.machineType, pool.desiredNodes])).toEqual([
      ["h100-80gb", "a3-highgpu-4g", 2],
    ]);
    expect(
      gcp!.modelDeployments.map((md) => [
        md.name,
        md.spec.gpu?.products,
        md.spec.replicas ?? md.spec.autoscaling?.minReplicas,
      ]),
    ).toEqual([
      ["large", ["NVIDIA-H100-80GB-HBM3"], 1],
      ["small", ["NVIDIA-H100-80GB-HBM3"], 2],
    ]);
  });

  it("refuses regions of clouds it cannot provision and models it does not know", () => {
    expect(() =>
      planFleetClusters(
        plan([{ model: "m", region: "azure:westeurope", gpuProduct: "nvidia-l4", replicas: 1, gpus: 1 }]),
        [model("m", [])],
      ),
    ).toThrow("aws and gcp only");
    expect(() =>
      planFleetClusters(
        plan([{ model: "x", region: "gcp:us-east1", gpuProduct: "nvidia-l4", replicas: 1, gpus: 1 }]),
        [],
      ),
    ).toThrow("unknown model x");
  });
});

describe("placementReport", () => {
  it("rounds the figures and lists the replicas", () => {
    const report = placementReport(
      plan([{ model: "m", region: "gcp:us-east1", gpuProduct: "nvidia-l4", replicas: 1, gpus: 1 }]),
    );
    expect(report).toMatchObject({
      strategy: "carbon-aware",
      totalGpus: 1,
      costPerHour: 12.35,
      emissionsGramsPerHour: 1235,
      tCO2PerYear: 10.81,
      meanRttMs: 21,
    });
    expect(report.replicas).toEqual([
      { model: "m", region: "gcp:us-east1", gpuProduct: "nvidia-l4", replicas: 1, gpus: 1 },
    ]);
  });
});
