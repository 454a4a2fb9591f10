/**
 * The GPU the cascade benchmark prices on, and its price table. ILLUSTRATIVE on-demand prices
 * ($ per GPU-hour, order of magnitude of public cloud list prices); pass --gpu to price on another.
 */
export const PRICE_GPU = "NVIDIA-H100-80GB-HBM3";
export const GPU_PRICES: Readonly<Record<string, number>> = {
  "NVIDIA-H100-80GB-HBM3": 4.0,
  "NVIDIA-A100-SXM4-80GB": 2.5,
  "NVIDIA-L40S": 1.5,
  "NVIDIA-L4": 0.7,
};
