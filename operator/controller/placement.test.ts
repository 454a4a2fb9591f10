import { describe, expect, it } from "vitest";
import { choosePlacement, discoverGpuPools, type GpuPool, type SizeResult } from "./placement.js";
import { gpuNode } from "./testing.js";

const H100 = "NVIDIA-H100-80GB-HBM3";
const L4 = "NVIDIA-L4";
const nodes = [
  gpuNode("h100-a", H100, 8, { "gpufleet.io/pool": "h100", "topology.kubernetes.io/region": "us-central1" }),
  gpuNode("h100-b", H100, 8, { "gpufleet.io/pool": "h100", "topology.kubernetes.io/region": "us-central1" }),
  gpuNode("l4-a", L4, 4, { "gpufleet.io/pool": "l4", "topology.kubernetes.io/region": "europe-west4" }),
];

/** A stand-in sizer: a model needing `gpusNeeded` GPUs of 24 GiB or 2 of 80 GiB. */
function sizer(gpusNeededOnL4: number) {
  return (pool: GpuPool): SizeResult<{ gpus: number; product: string }> => {
    const gpus = pool.gpuProduct === L4 ? gpusNeededOnL4 : Math.max(1, Math.ceil(gpusNeededOnL4 / 4));
    return gpus <= pool.gpusPerNode
      ? { fits: true, plan: { gpus, product: pool.gpuProduct } }
      : { fits: false, message: `needs ${gpus} GPUs, nodes have ${pool.gpusPerNode}` };
  };
}
const memory = (plan: { gpus: number; product: string }) => plan.gpus * (plan.product === L4 ? 24 : 80);

describe("discoverGpuPools", () => {
  it("groups ready GPU nodes by product with the per-node GPU ceiling and pool names", () => {
    const pools = discoverGpuPools(nodes);
    expect(pools.map((p) => [p.gpuProduct, p.gpusPerNode, p.totalGpus, p.poolNames])).toEqual([
      [H100, 8, 16, ["h100"]],
      [L4, 4, 4, ["l4"]],
    ]);
  });

  it("leaves out cordoned, not-ready and selector-mismatched nodes", () => {
    const cordoned = { ...gpuNode("c", H100, 8), spec: { unschedulable: true } };
    const notReady = gpuNode("n", H100, 8);
    notReady.status!.conditions = [{ type: "Ready", status: "False" }];
    expect(discoverGpuPools([cordoned, notReady])).toEqual([]);
    expect(discoverGpuPools(nodes, { "topology.kubernetes.io/region": "europe-west4" }).map((p) => p.gpuProduct)).toEqual([L4]);
  });
});

describe("choosePlacement", () => {
  it("takes the first allowed product, in the user's order, that can hold one replica", () => {
    const placement = choosePlacement({ pools: discoverGpuPools(nodes), allowedProducts: [L4, H100], size: sizer(2), gpuMemoryPerReplica: memory });
    expect(placement.placed && placement.pool.gpuProduct).toBe(L4);
  });

  it("passes over a product whose nodes are too small and says why", () => {
    const placement = choosePlacement({ pools: discoverGpuPools(nodes), allowedProducts: [L4, H100], size: sizer(8), gpuMemoryPerReplica: memory });
    expect(placement.placed && placement.pool.gpuProduct).toBe(H100);
    expect(placement.rejected).toEqual([{ gpuProduct: L4, why: "needs 8 GPUs, nodes have 4" }]);
  });

  it("without a product list, prefers the fit with the least GPU memory per replica", () => {
    const placement = choosePlacement({ pools: discoverGpuPools(nodes), size: sizer(2), gpuMemoryPerReplica: memory });
    expect(placement.placed && placement.pool.gpuProduct).toBe(L4); // 2×24 GiB < 1×80 GiB
  });

  it("reports allowed products absent from the cluster as NoAllowedGpu, listing what the cluster has", () => {
    const placement = choosePlacement({ pools: discoverGpuPools(nodes), allowedProducts: ["NVIDIA-B200"], size: sizer(1), gpuMemoryPerReplica: memory });
    expect(placement).toMatchObject({ placed: false, reason: "NoAllowedGpu" });
    expect(!placement.placed && placement.message).toContain(`it has ${H100}, ${L4}`);
  });

  it("reports DoesNotFit with each product's reason when nothing can hold a replica", () => {
    const placement = choosePlacement({ pools: discoverGpuPools(nodes), size: sizer(64), gpuMemoryPerReplica: memory });
    expect(placement).toMatchObject({ placed: false, reason: "DoesNotFit" });
    expect(!placement.placed && placement.message).toContain("NVIDIA-L4: needs 64 GPUs, nodes have 4");
  });

  it("reports NoGpuNodes on a cluster without GPU nodes", () => {
    expect(choosePlacement({ pools: [], size: sizer(1), gpuMemoryPerReplica: memory })).toMatchObject({ placed: false, reason: "NoGpuNodes" });
  });
});
