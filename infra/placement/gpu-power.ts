import { findGpu } from "../../operator/planner/index.js";

/** Electrical draw of one GPU, for the emissions model. */
export interface GpuPowerSpec {
  /** Maximum board power (TDP) in watts, drawn at full load. */
  boardPowerW: number;
  /** Draw when a replica is loaded but serving nothing. */
  idlePowerW: number;
}

/**
 * Share of board power a loaded but idle inference GPU draws. An assumption, not a measurement:
 * a model resident in memory keeps HBM refreshed and clocks up between batches, so the GPU sits well
 * above its bare idle; users with measurements should pass their own `gpuPower`.
 */
export const ASSUMED_IDLE_POWER_FRACTION = 0.3;

/**
 * Cloud accelerator names the planner's GPU catalogue does not list as aliases. Other cloud names
 * (`nvidia-l4`, `nvidia-h100-80gb`, `nvidia-a100-80gb`, `nvidia-l40s`, `nvidia-b200`) resolve by
 * dropping the `nvidia-` prefix.
 */
const CLOUD_GPU_ALIASES: Readonly<Record<string, string>> = {
  "nvidia-tesla-a100": "a100-40gb", // GCP name of the A100 40GB
  "nvidia-h100-mega-80gb": "h100", // GCP A3 Mega: H100 SXM
  "nvidia-h200-141gb": "h200",
};

/**
 * Board power of a GPU product from the sizing planner's catalogue (operator/planner, NVIDIA
 * datasheet TDPs), idle power by ASSUMED_IDLE_POWER_FRACTION; `overrides` win.
 */
export function gpuPowerOf(
  product: string,
  overrides?: Readonly<Record<string, GpuPowerSpec>>,
): GpuPowerSpec {
  const override = overrides?.[product];
  if (override !== undefined) return override;
  const gpu = findGpu(CLOUD_GPU_ALIASES[product] ?? product) ?? findGpu(product.replace(/^nvidia-/i, ""));
  if (gpu === undefined) {
    throw new Error(
      `no power figure for GPU product "${product}"; pass gpuPower["${product}"] = {boardPowerW, idlePowerW}`,
    );
  }
  return { boardPowerW: gpu.boardPowerWatts, idlePowerW: gpu.boardPowerWatts * ASSUMED_IDLE_POWER_FRACTION };
}
