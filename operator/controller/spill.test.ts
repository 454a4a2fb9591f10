import { describe, expect, it } from "vitest";
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { freeGpusByProduct, planSpill, type ProductOption, type WorkloadObservation } from "./spill.js";

const H100 = "NVIDIA-H100-80GB-HBM3";
const A100 = "NVIDIA-A100-SXM4-80GB";
const L4 = "NVIDIA-L4";

const option = (gpuProduct: string, freeGpus: number, gpusPerReplica = 1): ProductOption => ({
  gpuProduct,
  gpusPerReplica,
  freeGpus,
  freeGpusOnBestNode: freeGpus,
});
const seen = (gpuProduct: string, replicas: number, over: Partial<WorkloadObservation> = {}): WorkloadObservation => ({
  gpuProduct,
  replicas,
  pods: replicas,
  scheduled: replicas,
  ready: replicas,
  unschedulable: 0,
  ...over,
});
const split = (d: ReturnType<typeof planSpill>) => Object.fromEntries(d.replicas.map((r) => [r.gpuProduct, r.replicas]));

describe("planSpill", () => {
  it("starts everything on the preferred product when it has room", () => {
    const d = planSpill({ wanted: 3, options: [option(H100, 8), option(A100, 8)], observed: [], settled: true });
    expect(split(d)).toEqual({ [H100]: 3, [A100]: 0 });
  });

  it("starts what does not fit on the preferred product on the next one with room", () => {
    const d = planSpill({ wanted: 3, options: [option(H100, 1), option(A100, 8)], observed: [], settled: true });
    expect(split(d)).toEqual({ [H100]: 1, [A100]: 2 });
    expect(d.moves[0]?.reason).toBe("SpilledOver");
  });

  it("moves unschedulable replicas of the full preferred pool to the next product with room, skipping full ones", () => {
    const d = planSpill({
      wanted: 4,
      options: [option(H100, 0), option(A100, 0), option(L4, 4)],
      observed: [seen(H100, 4, { scheduled: 2, ready: 2, unschedulable: 2 })],
      settled: true,
    });
    expect(split(d)).toEqual({ [H100]: 2, [A100]: 0, [L4]: 2 });
    expect(d.moves).toEqual([expect.objectContaining({ from: H100, to: L4, count: 2, reason: "SpilledOver" })]);
  });

  it("keeps replicas pending where they are when no product has room (CapacityShortfall says so)", () => {
    const d = planSpill({
      wanted: 2,
      options: [option(H100, 0), option(A100, 0)],
      observed: [seen(H100, 2, { scheduled: 1, ready: 1, unschedulable: 1 })],
      settled: true,
    });
    expect(split(d)).toEqual({ [H100]: 2, [A100]: 0 });
    expect(d.moves).toEqual([]);
  });

  it("believes the scheduler over its estimate: a product whose pods are unschedulable has no room", () => {
    const d = planSpill({
      wanted: 3,
      options: [option(H100, 0), option(A100, 8)],
      observed: [seen(H100, 2, { scheduled: 1, ready: 1, unschedulable: 1 }), seen(A100, 1, { scheduled: 0, ready: 0, unschedulable: 1 })],
      settled: true,
    });
    expect(split(d)).toEqual({ [H100]: 2, [A100]: 1 });
  });

  it("does nothing while the observed workloads are not the last written", () => {
    const d = planSpill({
      wanted: 2,
      options: [option(H100, 0), option(A100, 8)],
      observed: [seen(H100, 2, { scheduled: 1, ready: 1, unschedulable: 1 })],
      settled: false,
    });
    expect(split(d)).toEqual({ [H100]: 2, [A100]: 0 });
  });

  it("scales up on the first product with room and down on spilled replicas first", () => {
    const up = planSpill({ wanted: 4, options: [option(H100, 0), option(A100, 4)], observed: [seen(H100, 2), seen(A100, 1)], settled: true });
    expect(split(up)).toEqual({ [H100]: 2, [A100]: 2 });
    const down = planSpill({ wanted: 2, options: [option(H100, 0), option(A100, 4)], observed: [seen(H100, 2), seen(A100, 2)], settled: true });
    expect(split(down)).toEqual({ [H100]: 2, [A100]: 0 });
    const downMore = planSpill({ wanted: 1, options: [option(H100, 0), option(A100, 4)], observed: [seen(H100, 2)], settled: true });
    expect(split(downMore)).toEqual({ [H100]: 1, [A100]: 0 });
  });

  it("brings a spilled replica back make-before-break once the preferred pool has room", () => {
    const options = [option(H100, 1), option(A100, 6)];
    // 1. Room on H100: one more replica is started there; the A100 ones stay.
    const start = planSpill({ wanted: 3, options, observed: [seen(H100, 1), seen(A100, 2)], settled: true });
    expect(split(start)).toEqual({ [H100]: 2, [A100]: 2 });
    expect(start.moves[0]).toMatchObject({ from: A100, to: H100, reason: "SpillReturning" });
    // 2. Not ready yet: nothing is removed.
    const waiting = planSpill({ wanted: 3, options: [option(H100, 0), option(A100, 6)], observed: [seen(H100, 2, { ready: 1 }), seen(A100, 2)], settled: true });
    expect(split(waiting)).toEqual({ [H100]: 2, [A100]: 2 });
    // 3. Ready: one A100 replica goes.
    const done = planSpill({ wanted: 3, options: [option(H100, 0), option(A100, 6)], observed: [seen(H100, 2), seen(A100, 2)], settled: true });
    expect(split(done)).toEqual({ [H100]: 2, [A100]: 1 });
    expect(done.moves[0]).toMatchObject({ from: A100, reason: "SpillReturned" });
  });

  it("gives up a return whose new replica turns out unschedulable (other work the operator cannot see)", () => {
    const d = planSpill({
      wanted: 3,
      options: [option(H100, 1), option(A100, 6)],
      observed: [seen(H100, 2, { scheduled: 1, ready: 1, unschedulable: 1 }), seen(A100, 2)],
      settled: true,
    });
    expect(split(d)).toEqual({ [H100]: 1, [A100]: 2 });
  });

  it("empties workloads on products no longer allowed and re-adds their replicas where there is room", () => {
    const d = planSpill({ wanted: 2, options: [option(H100, 4)], observed: [seen(H100, 1), seen(L4, 1)], settled: true });
    expect(split(d)).toEqual({ [H100]: 2, [L4]: 0 });
  });

  it("steps through the whole scenario: fill H100, spill to A100, free H100, come back", () => {
    type State = Map<string, WorkloadObservation>;
    let state: State = new Map();
    // A fake cluster: H100 has `h100Free` GPUs; pods bind if room, else pend Unschedulable; bound pods are ready.
    let h100Free = 2;
    let a100Free = 8;
    const step = (wanted: number) => {
      const options = [option(H100, h100Free), option(A100, a100Free)];
      const d = planSpill({ wanted, options, observed: [...state.values()], settled: true });
      const next: State = new Map();
      for (const { gpuProduct, replicas } of d.replicas) {
        const before = state.get(gpuProduct)?.scheduled ?? 0;
        let scheduled = Math.min(before, replicas);
        if (gpuProduct === H100) h100Free += before - scheduled;
        else a100Free += before - scheduled;
        while (scheduled < replicas && (gpuProduct === H100 ? h100Free : a100Free) > 0) {
          scheduled++;
          if (gpuProduct === H100) h100Free--;
          else a100Free--;
        }
        next.set(gpuProduct, seen(gpuProduct, replicas, { scheduled, ready: scheduled, unschedulable: replicas - scheduled }));
      }
      state = next;
      return Object.fromEntries([...state].map(([k, v]) => [k, v.replicas]));
    };
    expect(step(4)).toEqual({ [H100]: 2, [A100]: 2 });
    for (let i = 0; i < 3; i++) step(4);
    expect(state.get(H100)?.replicas).toBe(2);
    expect(state.get(A100)?.replicas).toBe(2);
    // The other work on H100 ends: 2 GPUs free up.
    h100Free += 2;
    const seenSplits: string[] = [];
    for (let i = 0; i < 8; i++) seenSplits.push(JSON.stringify(step(4)));
    expect(state.get(H100)?.replicas).toBe(4);
    expect(state.get(A100)?.replicas ?? 0).toBe(0);
    // Never fewer than 4 replicas asked during the return (make before break).
    for (const s of seenSplits) expect(Object.values(JSON.parse(s) as Record<string, number>).reduce((x, y) => x + y, 0)).toBeGreaterThanOrEqual(4);
  });
});

describe("freeGpusByProduct", () => {
  const node = (name: string, product: string, gpus: number, ready = true): V1Node => ({
    metadata: { name, labels: { "nvidia.com/gpu.product": product } },
    status: { allocatable: { "nvidia.com/gpu": String(gpus) }, conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
  });
  const pod = (nodeName: string | undefined, gpus: number, phase = "Running"): V1Pod => ({
    spec: { ...(nodeName ? { nodeName } : {}), containers: [{ name: "engine", resources: { requests: { "nvidia.com/gpu": String(gpus) } } }] },
    status: { phase },
  });
  it("subtracts bound, unfinished pods' GPU requests per node and skips nodes that are not ready", () => {
    const free = freeGpusByProduct(
      [node("h1", H100, 8), node("h2", H100, 8), node("a1", A100, 4, false)],
      [pod("h1", 8), pod("h2", 2), pod("h2", 4, "Succeeded"), pod(undefined, 4)],
    );
    expect(free.get(H100)).toEqual({ free: 6, bestNode: 6, total: 16 });
    expect(free.has(A100)).toBe(false);
  });
});

describe("planSpill after a failed return", () => {
  it("names the failure and does not start another return to a product that is held", () => {
    const failed = planSpill({
      wanted: 3,
      options: [option(H100, 1), option(A100, 6)],
      observed: [seen(H100, 2, { scheduled: 1, ready: 1, unschedulable: 1 }), seen(A100, 2)],
      settled: true,
    });
    expect(failed.moves[0]).toMatchObject({ from: H100, reason: "SpillReturnFailed" });
    const held = planSpill({ wanted: 3, options: [option(H100, 1), option(A100, 6)], observed: [seen(H100, 1), seen(A100, 2)], settled: true, holdReturns: [H100] });
    expect(split(held)).toEqual({ [H100]: 1, [A100]: 2 });
    const free = planSpill({ wanted: 3, options: [option(H100, 1), option(A100, 6)], observed: [seen(H100, 1), seen(A100, 2)], settled: true });
    expect(split(free)).toEqual({ [H100]: 2, [A100]: 2 });
  });
});
