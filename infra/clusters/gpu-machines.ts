/**
 * GPU products of the placement (named like GCP accelerator types, e.g. `nvidia-h100-80gb`) → the
 * machines that carry them on each cloud, and the label GPU Feature Discovery gives them.
 *
 * Sources (facts only):
 * - GCP accelerator and machine types: cloud.google.com/compute/docs/gpus ("GPU machine types":
 *   G2 = L4, A2 standard = A100 40GB, A2 ultra = A100 80GB, A3 High = H100 80GB, A3 Mega = H100
 *   Mega 80GB, A3 Ultra = H200, A4 = B200).
 * - AWS instance types: docs.aws.amazon.com/ec2/latest/instancetypes/ac.html ("Accelerated
 *   computing"): g6 = L4, g6e = L40S, p4d = A100 40GB, p4de = A100 80GB, p5 = H100, p5e = H200,
 *   p6-b200 = B200.
 * - GFD labels: the operator's catalogue (operator/planner/gpus.ts), which must know every product.
 */
import { findGpu } from "../../operator/planner/index.js";

export type ClusterCloud = "aws" | "gcp";

/** One machine type and the GPUs it carries. */
export interface GpuMachine {
  machineType: string;
  gpusPerMachine: number;
}

export interface GpuProductMachines {
  /** The placement's product name (= GCP accelerator type). */
  product: string;
  /** `nvidia.com/gpu.product` as GFD labels the nodes; the operator matches ModelDeployments on it. */
  gfdProductLabel: string;
  /** Machine types, smallest first; absent when the cloud does not offer the product. */
  gcp?: { acceleratorType: string; machines: GpuMachine[] };
  aws?: { machines: GpuMachine[] };
}

export const GPU_PRODUCT_MACHINES: readonly GpuProductMachines[] = [
  {
    product: "nvidia-l4",
    gfdProductLabel: "NVIDIA-L4",
    gcp: {
      acceleratorType: "nvidia-l4",
      machines: [
        { machineType: "g2-standard-8", gpusPerMachine: 1 },
        { machineType: "g2-standard-24", gpusPerMachine: 2 },
        { machineType: "g2-standard-48", gpusPerMachine: 4 },
        { machineType: "g2-standard-96", gpusPerMachine: 8 },
      ],
    },
    aws: {
      machines: [
        { machineType: "g6.2xlarge", gpusPerMachine: 1 },
        { machineType: "g6.12xlarge", gpusPerMachine: 4 },
        { machineType: "g6.48xlarge", gpusPerMachine: 8 },
      ],
    },
  },
  {
    product: "nvidia-l40s",
    gfdProductLabel: "NVIDIA-L40S",
    aws: {
      machines: [
        { machineType: "g6e.2xlarge", gpusPerMachine: 1 },
        { machineType: "g6e.12xlarge", gpusPerMachine: 4 },
        { machineType: "g6e.48xlarge", gpusPerMachine: 8 },
      ],
    },
  },
  {
    product: "nvidia-tesla-a100",
    gfdProductLabel: "NVIDIA-A100-SXM4-40GB",
    gcp: {
      acceleratorType: "nvidia-tesla-a100",
      machines: [
        { machineType: "a2-highgpu-1g", gpusPerMachine: 1 },
        { machineType: "a2-highgpu-2g", gpusPerMachine: 2 },
        { machineType: "a2-highgpu-4g", gpusPerMachine: 4 },
        { machineType: "a2-highgpu-8g", gpusPerMachine: 8 },
      ],
    },
    aws: { machines: [{ machineType: "p4d.24xlarge", gpusPerMachine: 8 }] },
  },
  {
    product: "nvidia-a100-80gb",
    gfdProductLabel: "NVIDIA-A100-SXM4-80GB",
    gcp: {
      acceleratorType: "nvidia-a100-80gb",
      machines: [
        { machineType: "a2-ultragpu-1g", gpusPerMachine: 1 },
        { machineType: "a2-ultragpu-2g", gpusPerMachine: 2 },
        { machineType: "a2-ultragpu-4g", gpusPerMachine: 4 },
        { machineType: "a2-ultragpu-8g", gpusPerMachine: 8 },
      ],
    },
    aws: { machines: [{ machineType: "p4de.24xlarge", gpusPerMachine: 8 }] },
  },
  {
    product: "nvidia-h100-80gb",
    gfdProductLabel: "NVIDIA-H100-80GB-HBM3",
    gcp: {
      acceleratorType: "nvidia-h100-80gb",
      machines: [
        { machineType: "a3-highgpu-1g", gpusPerMachine: 1 },
        { machineType: "a3-highgpu-2g", gpusPerMachine: 2 },
        { machineType: "a3-highgpu-4g", gpusPerMachine: 4 },
        { machineType: "a3-highgpu-8g", gpusPerMachine: 8 },
      ],
    },
    aws: { machines: [{ machineType: "p5.48xlarge", gpusPerMachine: 8 }] },
  },
  {
    product: "nvidia-h100-mega-80gb",
    gfdProductLabel: "NVIDIA-H100-80GB-HBM3",
    gcp: {
      acceleratorType: "nvidia-h100-mega-80gb",
      machines: [{ machineType: "a3-megagpu-8g", gpusPerMachine: 8 }],
    },
  },
  {
    product: "nvidia-h200-141gb",
    gfdProductLabel: "NVIDIA-H200",
    gcp: {
      acceleratorType: "nvidia-h200-141gb",
      machines: [{ machineType: "a3-ultragpu-8g", gpusPerMachine: 8 }],
    },
    aws: { machines: [{ machineType: "p5e.48xlarge", gpusPerMachine: 8 }] },
  },
  {
    product: "nvidia-b200",
    gfdProductLabel: "NVIDIA-B200",
    gcp: { acceleratorType: "nvidia-b200", machines: [{ machineType: "a4-highgpu-8g", gpusPerMachine: 8 }] },
    aws: { machines: [{ machineType: "p6-b200.48xlarge", gpusPerMachine: 8 }] },
  },
];

export function gpuProductMachines(product: string): GpuProductMachines {
  const found = GPU_PRODUCT_MACHINES.find((entry) => entry.product === product);
  if (!found) {
    throw new Error(
      `unknown GPU product "${product}"; known: ${GPU_PRODUCT_MACHINES.map((entry) => entry.product).join(", ")}`,
    );
  }
  return found;
}

/** The GFD label of a product; throws when the operator's catalogue does not know it. */
export function gfdProductLabel(product: string): string {
  const label = gpuProductMachines(product).gfdProductLabel;
  if (!findGpu(label)) throw new Error(`the operator's GPU catalogue has no ${label} (product ${product})`);
  return label;
}

/**
 * The machine to run replicas of `gpusPerReplica` GPUs on: the smallest machine holding at least
 * one whole replica (a replica's tensor-parallel group must sit on one node). Larger machines pack
 * more replicas per node, but the smallest fit keeps scale-out granular and idle GPUs few.
 */
export function chooseGpuMachine(cloud: ClusterCloud, product: string, gpusPerReplica: number): GpuMachine {
  const offering = gpuProductMachines(product)[cloud];
  if (!offering) throw new Error(`${cloud} offers no machine with ${product}`);
  const machine = offering.machines.find((candidate) => candidate.gpusPerMachine >= gpusPerReplica);
  if (!machine) {
    const largest = offering.machines[offering.machines.length - 1]?.gpusPerMachine ?? 0;
    throw new Error(
      `a replica of ${gpusPerReplica} x ${product} does not fit one ${cloud} machine (largest: ${largest} GPUs)`,
    );
  }
  return machine;
}
