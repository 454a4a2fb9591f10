/**
 * Catalogue of NVIDIA GPUs (and MIG slices) the planner can place models on.
 *
 * Product labels: GPU Feature Discovery sets `nvidia.com/gpu.product` to the NVML device name with
 * spaces replaced by dashes (github.com/NVIDIA/gpu-feature-discovery README, "Generated Labels";
 * e.g. NVML "NVIDIA H100 80GB HBM3" -> `NVIDIA-H100-80GB-HBM3`). With the MIG `single` strategy
 * it appends `-MIG-<profile>` (e.g. `NVIDIA-A100-SXM4-40GB-MIG-1g.5gb`); with `mixed` the full GPU
 * keeps its name and slices are requested as `nvidia.com/mig-<profile>` resources.
 *
 * Memory: `memoryMiB` is the board total as nvidia-smi / GFD `nvidia.com/gpu.memory` report it.
 * `cudaVisibleGiB` is what cudaMemGetInfo reports as total (ECC and driver reservations removed);
 * that is what vLLM multiplies by gpu_memory_utilization ("total_gpu_memory" in its logs). Where a
 * log quoting it was found it is cited; otherwise it is estimated as memory - 0.45 GiB, the gap
 * measured on H100 (81559 MiB = 79.65 GiB vs 79.19-79.22 GiB in vLLM logs).
 *
 * MiB totals not tied to a cited log (H200 143771, B200 183359, L40S 46068, L4 23034) are the
 * nvidia-smi figures as commonly reported for those boards; treat them as +-0.5 % accurate.
 *
 * Throughput figures are dense (no sparsity) BF16 tensor TFLOPS and peak memory bandwidth from
 * NVIDIA datasheets; power is the board TDP/TGP (the carbon placement multiplies it by load).
 */

export type GpuArchitecture = "ampere" | "ada" | "hopper" | "blackwell";

export interface GpuSpec {
  /** Catalogue id, e.g. `h100-sxm-80gb`, `a100-sxm4-40gb-mig-1g.5gb`. */
  readonly id: string;
  /** Exact GFD `nvidia.com/gpu.product` label. */
  readonly productLabel: string;
  /** Other names accepted by findGpu (case-insensitive). */
  readonly aliases: readonly string[];
  readonly architecture: GpuArchitecture;
  /** Board (or slice) memory as nvidia-smi reports it, MiB. */
  readonly memoryMiB: number;
  /** Same in GiB (memoryMiB / 1024). */
  readonly memoryGiB: number;
  /** Total memory visible to CUDA, GiB: the base vLLM applies gpu_memory_utilization to. */
  readonly cudaVisibleGiB: number;
  /** Hardware FP8 tensor cores (Ada, Hopper, Blackwell). */
  readonly supportsFp8: boolean;
  readonly memoryBandwidthGBps: number;
  /** Dense BF16/FP16 tensor TFLOPS. */
  readonly denseBf16Tflops: number;
  /** Typical board power (TDP), watts. For MIG slices: the slice's share of the board. */
  readonly boardPowerWatts: number;
  /** NVLink/NVSwitch between GPUs of one node (SXM/HGX parts); PCIe cards talk over PCIe. */
  readonly nvlink: boolean;
  /** Set for MIG slices: the parent GPU id and the profile name. */
  readonly mig?: { readonly parentId: string; readonly profile: string; readonly computeSlices: number };
}

const MIB_PER_GIB = 1024;
/** Gap between board memory and CUDA-visible memory measured on H100 (see header). */
const DRIVER_RESERVED_GIB = 0.45;

interface FullGpuInput {
  id: string;
  productLabel: string;
  aliases: string[];
  architecture: GpuArchitecture;
  memoryMiB: number;
  cudaVisibleGiB?: number;
  memoryBandwidthGBps: number;
  denseBf16Tflops: number;
  boardPowerWatts: number;
  nvlink: boolean;
}

function fullGpu(input: FullGpuInput): GpuSpec {
  const memoryGiB = input.memoryMiB / MIB_PER_GIB;
  return {
    id: input.id,
    productLabel: input.productLabel,
    aliases: input.aliases,
    architecture: input.architecture,
    memoryMiB: input.memoryMiB,
    memoryGiB,
    cudaVisibleGiB: input.cudaVisibleGiB ?? round2(memoryGiB - DRIVER_RESERVED_GIB),
    supportsFp8: input.architecture !== "ampere",
    memoryBandwidthGBps: input.memoryBandwidthGBps,
    denseBf16Tflops: input.denseBf16Tflops,
    boardPowerWatts: input.boardPowerWatts,
    nvlink: input.nvlink,
  };
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}

// --- Full GPUs -------------------------------------------------------------------------------

const H100_SXM = fullGpu({
  // Datasheet: nvidia.com/en-us/data-center/h100 (SXM5: 3.35 TB/s, 989 TFLOPS BF16 dense
  // [1979 with sparsity], up to 700 W). 79.19 GiB CUDA-visible: vLLM v0.19 logs in
  // github.com/llm-d-incubation/llm-d-planner/blob/main/accuracy/accuracy_report.md.
  id: "h100-sxm-80gb",
  productLabel: "NVIDIA-H100-80GB-HBM3",
  aliases: ["h100", "h100-sxm", "h100-80gb", "h100-sxm5", "NVIDIA H100 80GB HBM3"],
  architecture: "hopper",
  memoryMiB: 81_559,
  cudaVisibleGiB: 79.19,
  memoryBandwidthGBps: 3350,
  denseBf16Tflops: 989,
  boardPowerWatts: 700,
  nvlink: true,
});

const H100_PCIE = fullGpu({
  // Datasheet: H100 PCIe 2.0 TB/s, 756 TFLOPS BF16 dense, 350 W.
  id: "h100-pcie-80gb",
  productLabel: "NVIDIA-H100-PCIe",
  aliases: ["h100-pcie", "NVIDIA H100 PCIe"],
  architecture: "hopper",
  memoryMiB: 81_559,
  memoryBandwidthGBps: 2000,
  denseBf16Tflops: 756,
  boardPowerWatts: 350,
  nvlink: false,
});

const H200 = fullGpu({
  // Datasheet: nvidia.com/en-us/data-center/h200 (141 GB HBM3e, 4.8 TB/s, 989 TFLOPS BF16 dense,
  // up to 700 W). nvidia-smi reports 143771 MiB.
  id: "h200-141gb",
  productLabel: "NVIDIA-H200",
  aliases: ["h200", "h200-sxm", "NVIDIA H200"],
  architecture: "hopper",
  memoryMiB: 143_771,
  memoryBandwidthGBps: 4800,
  denseBf16Tflops: 989,
  boardPowerWatts: 700,
  nvlink: true,
});

const B200 = fullGpu({
  // HGX B200 datasheet: 180 GB HBM3e per GPU, 8 TB/s, 2.25 PFLOPS BF16 dense (4.5 sparse),
  // 1000 W. nvidia-smi reports 183359 MiB.
  id: "b200-180gb",
  productLabel: "NVIDIA-B200",
  aliases: ["b200", "NVIDIA B200"],
  architecture: "blackwell",
  memoryMiB: 183_359,
  memoryBandwidthGBps: 8000,
  denseBf16Tflops: 2250,
  boardPowerWatts: 1000,
  nvlink: true,
});

const A100_SXM_40 = fullGpu({
  // Datasheet: nvidia.com/en-us/data-center/a100 (40GB SXM: 1555 GB/s, 312 TFLOPS BF16 dense,
  // 400 W). 39.38 GiB CUDA-visible: github.com/vllm-project/vllm/issues/16570.
  id: "a100-sxm4-40gb",
  productLabel: "NVIDIA-A100-SXM4-40GB",
  aliases: ["a100-40gb", "a100-sxm4-40gb", "NVIDIA A100-SXM4-40GB"],
  architecture: "ampere",
  memoryMiB: 40_960,
  cudaVisibleGiB: 39.38,
  memoryBandwidthGBps: 1555,
  denseBf16Tflops: 312,
  boardPowerWatts: 400,
  nvlink: true,
});

const A100_SXM_80 = fullGpu({
  // Datasheet: 80GB SXM 2039 GB/s, 312 TFLOPS, 400 W. nvidia-smi "81920MiB" and "400W" cap:
  // github.com/vllm-project/vllm/issues/2069. CUDA-visible 79.15 GiB as in PyTorch OOM reports.
  id: "a100-sxm4-80gb",
  productLabel: "NVIDIA-A100-SXM4-80GB",
  aliases: ["a100", "a100-80gb", "a100-sxm4-80gb", "NVIDIA A100-SXM4-80GB"],
  architecture: "ampere",
  memoryMiB: 81_920,
  cudaVisibleGiB: 79.15,
  memoryBandwidthGBps: 2039,
  denseBf16Tflops: 312,
  boardPowerWatts: 400,
  nvlink: true,
});

const A100_PCIE_40 = fullGpu({
  // Datasheet: 40GB PCIe 1555 GB/s, 312 TFLOPS, 250 W. NVML name "NVIDIA A100-PCIE-40GB".
  id: "a100-pcie-40gb",
  productLabel: "NVIDIA-A100-PCIE-40GB",
  aliases: ["a100-pcie-40gb", "NVIDIA A100-PCIE-40GB"],
  architecture: "ampere",
  memoryMiB: 40_960,
  cudaVisibleGiB: 39.38,
  memoryBandwidthGBps: 1555,
  denseBf16Tflops: 312,
  boardPowerWatts: 250,
  nvlink: false,
});

const A100_PCIE_80 = fullGpu({
  // Datasheet: 80GB PCIe 1935 GB/s, 312 TFLOPS, 300 W. NVML name "NVIDIA A100 80GB PCIe".
  id: "a100-pcie-80gb",
  productLabel: "NVIDIA-A100-80GB-PCIe",
  aliases: ["a100-pcie-80gb", "NVIDIA A100 80GB PCIe"],
  architecture: "ampere",
  memoryMiB: 81_920,
  cudaVisibleGiB: 79.15,
  memoryBandwidthGBps: 1935,
  denseBf16Tflops: 312,
  boardPowerWatts: 300,
  nvlink: false,
});

const L40S = fullGpu({
  // Datasheet: nvidia.com/en-us/data-center/l40s (48 GB GDDR6, 864 GB/s, 362 TFLOPS BF16 dense
  // [733 sparse], 350 W). nvidia-smi reports 46068 MiB.
  id: "l40s-48gb",
  productLabel: "NVIDIA-L40S",
  aliases: ["l40s", "NVIDIA L40S"],
  architecture: "ada",
  memoryMiB: 46_068,
  memoryBandwidthGBps: 864,
  denseBf16Tflops: 362,
  boardPowerWatts: 350,
  nvlink: false,
});

const L4 = fullGpu({
  // Datasheet: nvidia.com/en-us/data-center/l4 (24 GB GDDR6, 300 GB/s, 121 TFLOPS BF16 dense
  // [242 sparse], 72 W). nvidia-smi reports 23034 MiB.
  id: "l4-24gb",
  productLabel: "NVIDIA-L4",
  aliases: ["l4", "NVIDIA L4"],
  architecture: "ada",
  memoryMiB: 23_034,
  memoryBandwidthGBps: 300,
  denseBf16Tflops: 121,
  boardPowerWatts: 72,
  nvlink: false,
});

const A10G = fullGpu({
  // AWS-only variant of the A10 (no public datasheet). 600 GB/s and 24 GB GDDR6 as the A10;
  // nvidia-smi shows "23028MiB" and a 300 W cap (github.com/huggingface/local-gemma/issues/20).
  // 70 TFLOPS BF16 dense is the commonly quoted A10G figure (A10: 125), an estimate.
  id: "a10g-24gb",
  productLabel: "NVIDIA-A10G",
  aliases: ["a10g", "NVIDIA A10G"],
  architecture: "ampere",
  memoryMiB: 23_028,
  memoryBandwidthGBps: 600,
  denseBf16Tflops: 70,
  boardPowerWatts: 300,
  nvlink: false,
});

// --- MIG slices ------------------------------------------------------------------------------

/**
 * MIG profiles: memory in GiB as `nvidia-smi mig -lgip` prints it (H100 80GB: 1g.10gb 9.75,
 * 1g.20gb/2g.20gb 19.62; A100 80GB: 1g.10gb 9.50, 1g.20gb/2g.20gb 19.50; A100 40GB: 1g.5gb 4.75).
 * Larger profiles follow the memory-slice arithmetic of the MIG user guide
 * (docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html): 3g/4g get 4 of 8
 * memory slices, 7g all 8. Bandwidth and FLOPS scale with the slice's share; power likewise.
 */
interface MigProfileInput {
  profile: string;
  computeSlices: number;
  memoryGiB: number;
  memorySlices: number;
}

function migSlice(parent: GpuSpec, input: MigProfileInput): GpuSpec {
  const computeShare = input.computeSlices / 7;
  const memoryShare = input.memorySlices / 8;
  const memoryMiB = Math.round(input.memoryGiB * MIB_PER_GIB);
  return {
    id: `${parent.id}-mig-${input.profile}`,
    productLabel: `${parent.productLabel}-MIG-${input.profile}`,
    aliases: [],
    architecture: parent.architecture,
    memoryMiB,
    memoryGiB: input.memoryGiB,
    // A MIG instance exposes its whole slice to CUDA; keep a small context reserve.
    cudaVisibleGiB: round2(input.memoryGiB - 0.25),
    supportsFp8: parent.supportsFp8,
    memoryBandwidthGBps: Math.round(parent.memoryBandwidthGBps * memoryShare),
    denseBf16Tflops: Math.round(parent.denseBf16Tflops * computeShare),
    boardPowerWatts: Math.round(parent.boardPowerWatts * computeShare),
    nvlink: false,
    mig: { parentId: parent.id, profile: input.profile, computeSlices: input.computeSlices },
  };
}

const H100_MIG: MigProfileInput[] = [
  { profile: "1g.10gb", computeSlices: 1, memoryGiB: 9.75, memorySlices: 1 },
  { profile: "1g.20gb", computeSlices: 1, memoryGiB: 19.62, memorySlices: 2 },
  { profile: "2g.20gb", computeSlices: 2, memoryGiB: 19.62, memorySlices: 2 },
  { profile: "3g.40gb", computeSlices: 3, memoryGiB: 39.5, memorySlices: 4 },
  { profile: "4g.40gb", computeSlices: 4, memoryGiB: 39.5, memorySlices: 4 },
  { profile: "7g.80gb", computeSlices: 7, memoryGiB: 79.25, memorySlices: 8 },
];

const A100_80_MIG: MigProfileInput[] = [
  { profile: "1g.10gb", computeSlices: 1, memoryGiB: 9.5, memorySlices: 1 },
  { profile: "1g.20gb", computeSlices: 1, memoryGiB: 19.5, memorySlices: 2 },
  { profile: "2g.20gb", computeSlices: 2, memoryGiB: 19.5, memorySlices: 2 },
  { profile: "3g.40gb", computeSlices: 3, memoryGiB: 39.25, memorySlices: 4 },
  { profile: "4g.40gb", computeSlices: 4, memoryGiB: 39.25, memorySlices: 4 },
  { profile: "7g.80gb", computeSlices: 7, memoryGiB: 78.75, memorySlices: 8 },
];

const A100_40_MIG: MigProfileInput[] = [
  { profile: "1g.5gb", computeSlices: 1, memoryGiB: 4.75, memorySlices: 1 },
  { profile: "2g.10gb", computeSlices: 2, memoryGiB: 9.75, memorySlices: 2 },
  { profile: "3g.20gb", computeSlices: 3, memoryGiB: 19.62, memorySlices: 4 },
  { profile: "4g.20gb", computeSlices: 4, memoryGiB: 19.62, memorySlices: 4 },
  { profile: "7g.40gb", computeSlices: 7, memoryGiB: 39.38, memorySlices: 8 },
];

export const FULL_GPUS: readonly GpuSpec[] = [
  H100_SXM,
  H100_PCIE,
  H200,
  B200,
  A100_SXM_40,
  A100_SXM_80,
  A100_PCIE_40,
  A100_PCIE_80,
  L40S,
  L4,
  A10G,
];

export const MIG_SLICES: readonly GpuSpec[] = [
  ...H100_MIG.map((profile) => migSlice(H100_SXM, profile)),
  ...A100_80_MIG.map((profile) => migSlice(A100_SXM_80, profile)),
  ...A100_40_MIG.map((profile) => migSlice(A100_SXM_40, profile)),
];

export const GPU_CATALOGUE: readonly GpuSpec[] = [...FULL_GPUS, ...MIG_SLICES];

function normalizeGpuName(name: string): string {
  return name
    .trim()
    .toLowerCase()
    .replace(/[\s_]+/g, "-");
}

const gpuIndex: ReadonlyMap<string, GpuSpec> = (() => {
  const index = new Map<string, GpuSpec>();
  for (const gpu of GPU_CATALOGUE) {
    for (const name of [gpu.id, gpu.productLabel, ...gpu.aliases]) index.set(normalizeGpuName(name), gpu);
  }
  return index;
})();

/** Finds a GPU by GFD product label, NVML name, catalogue id or alias (case-insensitive). */
export function findGpu(productLabelOrAlias: string): GpuSpec | undefined {
  return gpuIndex.get(normalizeGpuName(productLabelOrAlias));
}

/** Bytes CUDA exposes on this GPU (the base of vLLM's gpu_memory_utilization). */
export function cudaVisibleBytes(gpu: GpuSpec): number {
  return gpu.cudaVisibleGiB * 1024 ** 3;
}
