/**
 * GPU node pools as the operator expects them (pure): tainted `nvidia.com/gpu=present:NoSchedule`
 * so only GPU workloads (which the operator gives the matching toleration) land there, and labelled
 * `gpufleet.io/pool=<name>`. The GPU product labels (`nvidia.com/gpu.product`, ...) are NOT set here:
 * GPU Feature Discovery writes them from the hardware, which cannot drift from the truth.
 */
import { POOL_LABEL, GPU_RESOURCE } from "../../operator/controller/placement.js";
import { chooseGpuMachine, gfdProductLabel, type ClusterCloud, type GpuMachine } from "./gpu-machines.js";

export const GPU_TAINT = { key: GPU_RESOURCE, value: "present", effect: "NoSchedule" } as const;
/** Informational: the placement's product name, for humans and cost reports (not used for scheduling). */
export const POOL_PRODUCT_LABEL = "gpufleet.io/gpu-product";

export interface GpuNodePoolRequest {
  /** Pool name: becomes the `gpufleet.io/pool` label and the cloud node group name. */
  name: string;
  /** Placement product name, e.g. `nvidia-h100-80gb`. */
  gpuProduct: string;
  /** GPUs one replica needs (its tensor × pipeline parallelism): decides the machine size. */
  gpusPerReplica: number;
  /** GPUs the placement puts on this pool: decides the node count. */
  gpus: number;
  /** Autoscaling head-room over the placed GPUs, as a factor (default 1.5: the autoscaler's burst room). */
  maxScaleFactor?: number;
  /** Keep at least this many nodes (default 0 above the placed count: scale to what is placed). */
  minNodes?: number;
}

export interface GpuNodePoolSpec {
  name: string;
  gpuProduct: string;
  gfdProductLabel: string;
  machine: GpuMachine;
  minNodes: number;
  desiredNodes: number;
  maxNodes: number;
  labels: Record<string, string>;
  taints: Array<{ key: string; value: string; effect: "NoSchedule" }>;
}

/** Sizes one pool: whole replicas per machine, enough machines for the placed GPUs. */
export function planGpuNodePool(cloud: ClusterCloud, request: GpuNodePoolRequest): GpuNodePoolSpec {
  if (!Number.isInteger(request.gpusPerReplica) || request.gpusPerReplica < 1) {
    throw new Error(`pool ${request.name}: gpusPerReplica must be a positive integer`);
  }
  const machine = chooseGpuMachine(cloud, request.gpuProduct, request.gpusPerReplica);
  const replicasPerMachine = Math.floor(machine.gpusPerMachine / request.gpusPerReplica);
  const replicas = Math.ceil(request.gpus / request.gpusPerReplica);
  const desiredNodes = Math.ceil(replicas / replicasPerMachine);
  const maxNodes = Math.max(desiredNodes, Math.ceil(desiredNodes * (request.maxScaleFactor ?? 1.5)), 1);
  const minNodes = Math.min(request.minNodes ?? desiredNodes, maxNodes);
  return {
    name: request.name,
    gpuProduct: request.gpuProduct,
    gfdProductLabel: gfdProductLabel(request.gpuProduct),
    machine,
    minNodes,
    desiredNodes: Math.max(desiredNodes, minNodes),
    maxNodes,
    labels: { [POOL_LABEL]: request.name, [POOL_PRODUCT_LABEL]: request.gpuProduct },
    taints: [{ ...GPU_TAINT }],
  };
}

/** `NoSchedule` → `NO_SCHEDULE`: the spelling of both the EKS and the GKE APIs. */
export function cloudTaintEffect(effect: "NoSchedule"): "NO_SCHEDULE" {
  return effect === "NoSchedule" ? "NO_SCHEDULE" : effect;
}
