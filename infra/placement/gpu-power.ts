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

function spec(boardPowerW: number): GpuPowerSpec {
  return { boardPowerW, idlePowerW: boardPowerW * ASSUMED_IDLE_POWER_FRACTION };
}

/**
 * Local table of board power by GPU product, from NVIDIA's product datasheets (max TDP):
 * H100 SXM 700 W, H100 PCIe 350 W, H200 SXM 700 W, A100 SXM 400 W, A100 PCIe 300 W, L4 72 W,
 * L40S 350 W, B200 1000 W. Used until the operator's sizing planner (operator/planner) exports its GPU
 * catalogue; product names follow the cloud accelerator names (`nvidia-h100-80gb` on GCP).
 */
export const GPU_POWER: Readonly<Record<string, GpuPowerSpec>> = {
  "nvidia-h100-80gb": spec(700),
  "nvidia-h100-mega-80gb": spec(700),
  "nvidia-h100-pcie-80gb": spec(350),
  "nvidia-h200-141gb": spec(700),
  "nvidia-a100-80gb": spec(400),
  "nvidia-tesla-a100": spec(400),
  "nvidia-a100-pcie-80gb": spec(300),
  "nvidia-l4": spec(72),
  "nvidia-l40s": spec(350),
  "nvidia-b200": spec(1000),
};

export function gpuPowerOf(product: string, overrides?: Readonly<Record<string, GpuPowerSpec>>): GpuPowerSpec {
  const found = overrides?.[product] ?? GPU_POWER[product];
  if (found === undefined) {
    throw new Error(`no power figure for GPU product "${product}"; pass gpuPower["${product}"] = {boardPowerW, idlePowerW}`);
  }
  return found;
}
