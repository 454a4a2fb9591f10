import { describe, expect, it } from "vitest";
import { FULL_GPUS, GPU_CATALOGUE, MIG_SLICES, findGpu } from "./gpus.js";

describe("GPU catalogue", () => {
  it("carries the exact GPU Feature Discovery product label of every required GPU", () => {
    const labels = GPU_CATALOGUE.map((gpu) => gpu.productLabel);
    for (const label of [
      "NVIDIA-H100-80GB-HBM3",
      "NVIDIA-H100-PCIe",
      "NVIDIA-H200",
      "NVIDIA-B200",
      "NVIDIA-A100-SXM4-40GB",
      "NVIDIA-A100-SXM4-80GB",
      "NVIDIA-A100-PCIE-40GB",
      "NVIDIA-A100-80GB-PCIe",
      "NVIDIA-L40S",
      "NVIDIA-L4",
      "NVIDIA-A10G",
      "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb",
      "NVIDIA-A100-SXM4-40GB-MIG-7g.40gb",
      "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb",
      "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb",
      "NVIDIA-H100-80GB-HBM3-MIG-3g.40gb",
      "NVIDIA-H100-80GB-HBM3-MIG-7g.80gb",
    ]) {
      expect(labels).toContain(label);
    }
  });

  it("never gives two GPUs the same id, label or alias", () => {
    const owner = new Map<string, string>();
    for (const gpu of GPU_CATALOGUE) {
      for (const name of [gpu.id, gpu.productLabel, ...gpu.aliases]) {
        const key = name.toLowerCase().replace(/\s+/g, "-");
        expect(owner.get(key) ?? gpu.id, `${name} names ${owner.get(key)} and ${gpu.id}`).toBe(gpu.id);
        owner.set(key, gpu.id);
      }
    }
    expect(owner.size).toBeGreaterThan(GPU_CATALOGUE.length);
  });

  it("states memory consistently: GiB = MiB / 1024, CUDA sees less than the board has", () => {
    for (const gpu of GPU_CATALOGUE) {
      expect(gpu.memoryGiB, gpu.id).toBeCloseTo(gpu.memoryMiB / 1024, 1);
      expect(gpu.cudaVisibleGiB, gpu.id).toBeLessThan(gpu.memoryGiB);
      expect(gpu.cudaVisibleGiB, gpu.id).toBeGreaterThan(gpu.memoryGiB - 1);
    }
  });

  it("marks FP8 support on Ada, Hopper and Blackwell only", () => {
    expect(findGpu("NVIDIA-H100-80GB-HBM3")?.supportsFp8).toBe(true);
    expect(findGpu("NVIDIA-L40S")?.supportsFp8).toBe(true);
    expect(findGpu("NVIDIA-L4")?.supportsFp8).toBe(true);
    expect(findGpu("NVIDIA-B200")?.supportsFp8).toBe(true);
    expect(findGpu("NVIDIA-A100-SXM4-80GB")?.supportsFp8).toBe(false);
    expect(findGpu("NVIDIA-A10G")?.supportsFp8).toBe(false);
  });

  it("orders datasheet figures as the parts are ranked (B200 > H200 > H100 > A100 > L40S > L4)", () => {
    const bandwidth = (label: string): number => findGpu(label)?.memoryBandwidthGBps ?? 0;
    expect(bandwidth("b200")).toBeGreaterThan(bandwidth("h200"));
    expect(bandwidth("h200")).toBeGreaterThan(bandwidth("h100"));
    expect(bandwidth("h100")).toBeGreaterThan(bandwidth("a100"));
    expect(bandwidth("a100")).toBeGreaterThan(bandwidth("l40s"));
    expect(bandwidth("l40s")).toBeGreaterThan(bandwidth("l4"));
    for (const gpu of FULL_GPUS) {
      expect(gpu.denseBf16Tflops, gpu.id).toBeGreaterThan(0);
      expect(gpu.boardPowerWatts, gpu.id).toBeGreaterThanOrEqual(72);
    }
  });
});

describe("MIG slices", () => {
  it("names each slice after its parent's label plus -MIG-<profile> and gives it a share of the parent", () => {
    expect(MIG_SLICES.length).toBe(6 + 6 + 5);
    for (const slice of MIG_SLICES) {
      const parent = FULL_GPUS.find((gpu) => gpu.id === slice.mig?.parentId);
      expect(parent, slice.id).toBeDefined();
      if (!parent || !slice.mig) continue;
      expect(slice.productLabel).toBe(`${parent.productLabel}-MIG-${slice.mig.profile}`);
      expect(slice.memoryGiB).toBeLessThan(parent.memoryGiB);
      expect(slice.denseBf16Tflops).toBeLessThanOrEqual(parent.denseBf16Tflops);
      expect(slice.boardPowerWatts).toBeLessThanOrEqual(parent.boardPowerWatts);
      expect(slice.supportsFp8).toBe(parent.supportsFp8);
    }
  });

  it("gives the A100 40GB 1g.5gb slice 4.75 GiB (nvidia-smi mig -lgip)", () => {
    const slice = findGpu("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb");
    expect(slice?.memoryGiB).toBe(4.75);
    expect(slice?.memoryMiB).toBe(4864);
    expect(slice?.mig).toEqual({ parentId: "a100-sxm4-40gb", profile: "1g.5gb", computeSlices: 1 });
  });
});

describe("findGpu", () => {
  it.each([
    ["NVIDIA-H100-80GB-HBM3", "h100-sxm-80gb"],
    ["nvidia-h100-80gb-hbm3", "h100-sxm-80gb"],
    ["NVIDIA H100 80GB HBM3", "h100-sxm-80gb"],
    ["h100", "h100-sxm-80gb"],
    ["L4", "l4-24gb"],
    ["NVIDIA A100-SXM4-40GB", "a100-sxm4-40gb"],
    ["a100-80gb", "a100-sxm4-80gb"],
    ["NVIDIA-A100-80GB-PCIe", "a100-pcie-80gb"],
    ["nvidia-h100-80gb-hbm3-mig-3g.40gb", "h100-sxm-80gb-mig-3g.40gb"],
  ])("resolves %s to %s", (name, id) => {
    expect(findGpu(name)?.id).toBe(id);
  });

  it("returns undefined for GPUs it does not know", () => {
    expect(findGpu("Tesla-T4")).toBeUndefined();
    expect(findGpu("")).toBeUndefined();
  });
});
