import { describe, expect, it } from "vitest";
import { chooseGpuMachine, gfdProductLabel, GPU_PRODUCT_MACHINES } from "./gpu-machines.js";
import { planGpuNodePool } from "./node-pools.js";
import { subnetCidr } from "./eks.js";
import { gkeKubeconfig } from "./gke.js";

describe("chooseGpuMachine", () => {
  it("takes the smallest machine that holds one whole replica", () => {
    expect(chooseGpuMachine("gcp", "nvidia-l4", 1)).toEqual({
      machineType: "g2-standard-8",
      gpusPerMachine: 1,
    });
    expect(chooseGpuMachine("gcp", "nvidia-l4", 3)).toEqual({
      machineType: "g2-standard-48",
      gpusPerMachine: 4,
    });
    expect(chooseGpuMachine("gcp", "nvidia-h100-80gb", 2)).toEqual({
      machineType: "a3-highgpu-2g",
      gpusPerMachine: 2,
    });
    expect(chooseGpuMachine("aws", "nvidia-h100-80gb", 2)).toEqual({
      machineType: "p5.48xlarge",
      gpusPerMachine: 8,
    });
  });

  it("refuses products a cloud lacks and replicas larger than any machine", () => {
    expect(() => chooseGpuMachine("gcp", "nvidia-l40s", 1)).toThrow("gcp offers no machine with nvidia-l40s");
    expect(() => chooseGpuMachine("aws", "nvidia-l4", 16)).toThrow("largest: 8 GPUs");
    expect(() => chooseGpuMachine("aws", "nvidia-v100", 1)).toThrow('unknown GPU product "nvidia-v100"');
  });
});

describe("gfdProductLabel", () => {
  it("maps every cloud product to a GPU the operator's catalogue knows", () => {
    for (const entry of GPU_PRODUCT_MACHINES)
      expect(gfdProductLabel(entry.product)).toBe(entry.gfdProductLabel);
    expect(gfdProductLabel("nvidia-h100-80gb")).toBe("NVIDIA-H100-80GB-HBM3");
  });
});

describe("planGpuNodePool", () => {
  it("labels the pool, taints it for GPUs only, and sizes nodes to whole replicas", () => {
    const pool = planGpuNodePool("aws", { name: "l4", gpuProduct: "nvidia-l4", gpusPerReplica: 4, gpus: 12 });
    expect(pool.machine).toEqual({ machineType: "g6.12xlarge", gpusPerMachine: 4 });
    expect(pool).toMatchObject({ desiredNodes: 3, minNodes: 3, maxNodes: 5, gfdProductLabel: "NVIDIA-L4" });
    expect(pool.labels).toEqual({ "gpufleet.io/pool": "l4", "gpufleet.io/gpu-product": "nvidia-l4" });
    expect(pool.taints).toEqual([{ key: "nvidia.com/gpu", value: "present", effect: "NoSchedule" }]);
  });

  it("packs several replicas on one large machine", () => {
    // 3 replicas of 2 H100s on 8-GPU p5 machines: 4 replicas fit one node, so 1 node.
    const pool = planGpuNodePool("aws", {
      name: "h100",
      gpuProduct: "nvidia-h100-80gb",
      gpusPerReplica: 2,
      gpus: 6,
    });
    expect(pool.desiredNodes).toBe(1);
    expect(pool.maxNodes).toBe(2);
  });

  it("rejects a fractional replica size", () => {
    expect(() =>
      planGpuNodePool("gcp", { name: "x", gpuProduct: "nvidia-l4", gpusPerReplica: 0.5, gpus: 1 }),
    ).toThrow("positive integer");
  });
});

describe("subnetCidr", () => {
  it("splits a /16 into /20 subnets", () => {
    expect(subnetCidr("100.64.0.0/16", 0)).toBe("100.64.0.0/20");
    expect(subnetCidr("100.64.0.0/16", 9)).toBe("100.64.144.0/20");
    expect(() => subnetCidr("100.64.0.0/24", 0)).toThrow("must be a /16");
  });
});

describe("gkeKubeconfig", () => {
  it("points at the cluster endpoint and authenticates with gke-gcloud-auth-plugin", () => {
    const kubeconfig = JSON.parse(gkeKubeconfig("fleet", "gke.example.invalid", "Q0E="));
    expect(kubeconfig.clusters[0].cluster).toEqual({
      server: "https://gke.example.invalid",
      "certificate-authority-data": "Q0E=",
    });
    expect(kubeconfig.users[0].user.exec.command).toBe("gke-gcloud-auth-plugin");
    expect(kubeconfig["current-context"]).toBe("gke_fleet");
  });
});
