/**
 * The benchmark fleet: candidate GCP regions, user origins and models. Prices, quotas and per-replica
 * throughputs are ILLUSTRATIVE round figures, not quotes or measurements; the intensities and RTTs
 * the placement uses come from the shared public data.
 */
import type { CarbonIntensitySource } from "../carbon/index.js";
import {
  replicaShapeFromPlanner,
  type CandidateRegion,
  type ModelDemand,
  type PlacementInput,
  type RttTable,
} from "../placement/index.js";

// Illustrative on-demand price per GPU-hour in US regions, in USD, of the order of the cloud list
// prices for the GPU share of an instance in 2024-2025; other regions scale by REGION_PRICE_FACTOR.
export const BASE_PRICE_PER_GPU_HOUR = { "nvidia-l4": 0.75, "nvidia-h100-80gb": 11.0 } as const;

type Product = keyof typeof BASE_PRICE_PER_GPU_HOUR;

/** Illustrative candidate GCP regions: [region, price factor, L4 quota, H100 quota]. */
export const CANDIDATES: ReadonlyArray<readonly [string, number, number, number]> = [
  ["gcp:us-central1", 1.0, 96, 64],
  ["gcp:us-east1", 1.0, 64, 0],
  ["gcp:us-east4", 1.05, 64, 48],
  ["gcp:us-east5", 1.0, 32, 32],
  ["gcp:us-south1", 1.05, 32, 32],
  ["gcp:us-west1", 1.0, 64, 48],
  ["gcp:us-west4", 1.05, 32, 0],
  ["gcp:northamerica-northeast1", 1.1, 32, 16],
  ["gcp:europe-west1", 1.1, 64, 32],
  ["gcp:europe-west2", 1.2, 32, 16],
  ["gcp:europe-west3", 1.2, 32, 16],
  ["gcp:europe-west4", 1.1, 64, 48],
  ["gcp:europe-west6", 1.25, 16, 0],
  ["gcp:europe-west9", 1.2, 32, 16],
  ["gcp:europe-north1", 1.1, 32, 16],
  ["gcp:asia-northeast1", 1.25, 64, 32],
  ["gcp:asia-east1", 1.2, 32, 16],
  ["gcp:asia-southeast1", 1.25, 64, 32],
  ["gcp:asia-south1", 1.2, 32, 16],
  ["gcp:australia-southeast1", 1.3, 16, 0],
];

/**
 * The GCP regions of the RTT matrix whose grid zone is one of the 16 of the shared hourly data
 * (us-west2 = US-CAL-CISO, northamerica-northeast2 = CA-ON, asia-northeast3 = KR, australia-southeast2
 * = AU-VIC, southamerica-east1 = BR-CS, southamerica-west1 = CL-SEN, and those of CANDIDATES; ZA and
 * US-NY-NYIS have no region in the matrix). Quotas and price factors are illustrative, like CANDIDATES';
 * regions in both lists keep CANDIDATES' figures.
 */
export const HOURLY_ZONE_CANDIDATES: ReadonlyArray<readonly [string, number, number, number]> = [
  ["gcp:us-west2", 1.05, 64, 32],
  ["gcp:us-east4", 1.05, 64, 48],
  ["gcp:us-east5", 1.0, 32, 32],
  ["gcp:us-south1", 1.05, 32, 32],
  ["gcp:northamerica-northeast2", 1.1, 64, 32],
  ["gcp:europe-west2", 1.2, 64, 32],
  ["gcp:europe-west3", 1.2, 64, 32],
  ["gcp:asia-northeast1", 1.25, 64, 32],
  ["gcp:asia-northeast3", 1.25, 32, 16],
  ["gcp:asia-southeast1", 1.25, 64, 32],
  ["gcp:asia-south1", 1.2, 32, 16],
  ["gcp:australia-southeast1", 1.3, 16, 0],
  ["gcp:australia-southeast2", 1.3, 16, 0],
  ["gcp:southamerica-east1", 1.3, 32, 16],
  ["gcp:southamerica-west1", 1.3, 32, 16],
];

/** User origins (Electricity Maps zones of the RTT matrix) and their share of each model's demand. */
export const ORIGINS: ReadonlyArray<readonly [string, number]> = [
  // United States 45%
  ["US-MIDA-PJM", 0.18],
  ["US-CAL-CISO", 0.12],
  ["US-TEX-ERCO", 0.08],
  ["US-CENT-SWPP", 0.07],
  // Europe 35%
  ["DE", 0.1],
  ["GB", 0.1],
  ["FR", 0.08],
  ["NL", 0.07],
  // Asia 20%
  ["JP-TK", 0.07],
  ["SG", 0.05],
  ["IN-MH", 0.04],
  ["KR", 0.04],
];

/**
 * Models (sizing-planner catalogue ids) with fleet-wide demand in tokens/s. GPUs per replica come
 * from the planner (`planModel`, 8k context, bf16); tokens/s per replica are illustrative round
 * figures. 70B on 8×L4 is scaled from 4×H100 by aggregate memory bandwidth (decode is bandwidth
 * bound): 5,000 × (8 × 300 GB/s) / (4 × 3,350 GB/s) ≈ 900.
 */
export const MODELS: ReadonlyArray<{
  name: string;
  tokensPerSecond: number;
  tokensPerSecondPerReplica: Partial<Record<Product, number>>;
}> = [
  {
    name: "llama-3.1-8b",
    tokensPerSecond: 60_000,
    tokensPerSecondPerReplica: { "nvidia-l4": 1_200, "nvidia-h100-80gb": 9_000 },
  },
  {
    name: "llama-3.1-70b",
    tokensPerSecond: 20_000,
    tokensPerSecondPerReplica: { "nvidia-l4": 900, "nvidia-h100-80gb": 5_000 },
  },
  { name: "mixtral-8x7b", tokensPerSecond: 15_000, tokensPerSecondPerReplica: { "nvidia-h100-80gb": 7_000 } },
  { name: "llama-3.2-3b", tokensPerSecond: 20_000, tokensPerSecondPerReplica: { "nvidia-l4": 2_500 } },
  {
    name: "qwen2.5-7b",
    tokensPerSecond: 30_000,
    tokensPerSecondPerReplica: { "nvidia-l4": 1_300, "nvidia-h100-80gb": 9_500 },
  },
];

export function regions(candidates: typeof CANDIDATES = CANDIDATES): CandidateRegion[] {
  return candidates.map(([region, factor, l4, h100]) => ({
    region,
    offers: (
      [
        ["nvidia-l4", l4],
        ["nvidia-h100-80gb", h100],
      ] as Array<[Product, number]>
    )
      .filter(([, quota]) => quota > 0)
      .map(([gpuProduct, quotaGpus]) => ({
        gpuProduct,
        quotaGpus,
        pricePerGpuHour: BASE_PRICE_PER_GPU_HOUR[gpuProduct] * factor,
      })),
  }));
}

/**
 * Finer replicas from weight quantization the sizing planner knows: llama-3.1-70b in FP8 on 2 H100
 * (bf16: 4) and AWQ 4-bit on 4 L4 (bf16: 8), mixtral-8x7b in FP8 on 1 H100 (bf16: 2). GPU counts come
 * from the planner; throughput is kept at the bf16 shape's tokens/s per GPU (half the GPUs, half the
 * batch room, half the tokens/s), so energy per token at a given load is unchanged and only the size
 * of the serving unit differs. Quantized weights are a quality trade-off an operator must accept.
 */
export const QUANTIZED: Readonly<Record<string, Partial<Record<Product, "fp8" | "awq">>>> = {
  "llama-3.1-70b": { "nvidia-h100-80gb": "fp8", "nvidia-l4": "awq" },
  "mixtral-8x7b": { "nvidia-h100-80gb": "fp8" },
};

/** The models' replica shapes: bf16, or with `quantized` the finer shapes of QUANTIZED where there are some. */
export function models(quantized = false): ModelDemand[] {
  return MODELS.map((m) => ({
    name: m.name,
    replicaShapes: Object.entries(m.tokensPerSecondPerReplica).map(
      ([gpuProduct, tokensPerSecondPerReplica]) => {
        const plan = { maxContextLength: 8192 };
        const { shape, reason } = replicaShapeFromPlanner({ model: m.name, gpuProduct, tokensPerSecondPerReplica, plan });
        if (shape === undefined) throw new Error(`planner cannot size ${m.name} on ${gpuProduct}: ${reason}`);
        const quantization = quantized ? QUANTIZED[m.name]?.[gpuProduct as Product] : undefined;
        if (quantization === undefined) return shape;
        const finer = replicaShapeFromPlanner({
          model: m.name,
          gpuProduct,
          tokensPerSecondPerReplica: 1,
          plan: { ...plan, quantization },
        }).shape;
        if (finer === undefined || finer.gpusPerReplica >= shape.gpusPerReplica)
          throw new Error(`planner gives no smaller ${quantization} replica of ${m.name} on ${gpuProduct}`);
        return {
          ...finer,
          tokensPerSecondPerReplica: (tokensPerSecondPerReplica * finer.gpusPerReplica) / shape.gpusPerReplica,
        };
      },
    ),
    demand: ORIGINS.map(([origin, share]) => ({ origin, tokensPerSecond: m.tokensPerSecond * share })),
  }));
}

/** The placement input at one latency target: 2 regions per model, replicas at most 80% busy. */
export function benchInput(
  latencyTargetMs: number,
  rtt?: RttTable,
  carbonSource?: CarbonIntensitySource,
  candidates: typeof CANDIDATES = CANDIDATES,
  quantized = false,
): PlacementInput {
  return {
    regions: regions(candidates),
    models: models(quantized),
    latencyTargetMs,
    minRegionsPerModel: 2,
    rtt,
    carbonSource,
    maxUtilization: 0.8,
    solver: { timeLimitSeconds: 60, mipRelativeGap: 1e-2 },
  };
}
