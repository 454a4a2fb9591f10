import type { V1Node } from "@kubernetes/client-node";

/** Labels GPU Feature Discovery puts on GPU nodes, and the extended resource of NVIDIA's device plugin. */
export const GPU_PRODUCT_LABEL = "nvidia.com/gpu.product";
export const GPU_MEMORY_LABEL = "nvidia.com/gpu.memory";
export const GPU_RESOURCE = "nvidia.com/gpu";
export const POOL_LABEL = "gpufleet.io/pool";
export const ZONE_LABEL = "topology.kubernetes.io/zone";

/** Nodes with the same GPU product, as the operator sees them: one place replicas can be pinned to. */
export interface GpuPool {
  gpuProduct: string;
  /** The most GPUs any one ready node of the pool offers: the ceiling for one replica's tensor parallelism. */
  gpusPerNode: number;
  nodeNames: string[];
  totalGpus: number;
  poolNames: string[];
  regions: string[];
  /** Zones of the pool's nodes, when every one of them is labelled with one (else absent). */
  zones?: string[];
}

export type SizeResult<Plan> = { fits: true; plan: Plan } | { fits: false; message: string };

export type Placement<Plan> =
  | { placed: true; pool: GpuPool; plan: Plan; rejected: RejectedProduct[] }
  | { placed: false; reason: "NoGpuNodes" | "NoAllowedGpu" | "DoesNotFit"; message: string; rejected: RejectedProduct[] };

export interface RejectedProduct {
  gpuProduct: string;
  why: string;
}

function nodeIsUsable(node: V1Node): boolean {
  if (node.spec?.unschedulable) return false;
  const ready = node.status?.conditions?.find((condition) => condition.type === "Ready");
  return ready?.status === "True";
}

function allocatableGpus(node: V1Node): number {
  const raw = node.status?.allocatable?.[GPU_RESOURCE] ?? node.status?.capacity?.[GPU_RESOURCE];
  const count = Number(raw ?? 0);
  return Number.isFinite(count) ? count : 0;
}

function matchesSelector(node: V1Node, nodeSelector: Record<string, string> | undefined): boolean {
  if (!nodeSelector) return true;
  const labels = node.metadata?.labels ?? {};
  return Object.entries(nodeSelector).every(([key, value]) => labels[key] === value);
}

/** Groups the ready, schedulable GPU nodes that match the user's node selector into pools by GPU product. */
export function discoverGpuPools(nodes: V1Node[], nodeSelector?: Record<string, string>): GpuPool[] {
  const byProduct = new Map<string, GpuPool>();
  for (const node of nodes) {
    const product = node.metadata?.labels?.[GPU_PRODUCT_LABEL];
    const gpus = allocatableGpus(node);
    if (!product || gpus <= 0 || !nodeIsUsable(node) || !matchesSelector(node, nodeSelector)) continue;
    const pool =
      byProduct.get(product) ??
      ({ gpuProduct: product, gpusPerNode: 0, nodeNames: [], totalGpus: 0, poolNames: [], regions: [] } as GpuPool);
    pool.gpusPerNode = Math.max(pool.gpusPerNode, gpus);
    pool.totalGpus += gpus;
    pool.nodeNames.push(node.metadata?.name ?? "");
    const poolName = node.metadata?.labels?.[POOL_LABEL];
    if (poolName && !pool.poolNames.includes(poolName)) pool.poolNames.push(poolName);
    const region = node.metadata?.labels?.["topology.kubernetes.io/region"];
    if (region && !pool.regions.includes(region)) pool.regions.push(region);
    const zone = node.metadata?.labels?.[ZONE_LABEL];
    if (pool.nodeNames.length === 1) pool.zones = zone ? [zone] : undefined;
    else if (pool.zones && zone) {
      if (!pool.zones.includes(zone)) pool.zones.push(zone);
    } else pool.zones = undefined;
    byProduct.set(product, pool);
  }
  return [...byProduct.values()].sort((a, b) => a.gpuProduct.localeCompare(b.gpuProduct));
}

/**
 * Picks where one replica goes. With `allowedProducts`, the first product in the user's order that has a
 * pool whose nodes can hold one replica; without, the fitting product that needs the least GPU memory per
 * replica (`gpuMemoryPerReplica`), a stand-in for the cheapest. Every product passed over is named with why.
 */
export function choosePlacement<Plan>(input: {
  pools: GpuPool[];
  allowedProducts?: string[];
  size: (pool: GpuPool) => SizeResult<Plan>;
  gpuMemoryPerReplica: (plan: Plan, pool: GpuPool) => number;
}): Placement<Plan> {
  const { pools, allowedProducts, size } = input;
  if (pools.length === 0)
    return {
      placed: false,
      reason: "NoGpuNodes",
      message: "no ready GPU node matches (no node with nvidia.com/gpu and nvidia.com/gpu.product that fits the node selector)",
      rejected: [],
    };

  const rejected: RejectedProduct[] = [];
  if (allowedProducts?.length) {
    for (const product of allowedProducts) {
      const pool = pools.find((candidate) => candidate.gpuProduct === product);
      if (!pool) {
        rejected.push({ gpuProduct: product, why: "no ready node in the cluster offers it" });
        continue;
      }
      const sized = size(pool);
      if (sized.fits) return { placed: true, pool, plan: sized.plan, rejected };
      rejected.push({ gpuProduct: product, why: sized.message });
    }
    const anyPresent = allowedProducts.some((product) => pools.some((pool) => pool.gpuProduct === product));
    return {
      placed: false,
      reason: anyPresent ? "DoesNotFit" : "NoAllowedGpu",
      message: anyPresent
        ? `no allowed GPU can hold one replica: ${describeRejections(rejected)}`
        : `none of the allowed GPU products (${allowedProducts.join(", ")}) is in the cluster; it has ${pools
            .map((pool) => pool.gpuProduct)
            .join(", ")}`,
      rejected,
    };
  }

  let best: { pool: GpuPool; plan: Plan; memory: number } | undefined;
  for (const pool of pools) {
    const sized = size(pool);
    if (!sized.fits) {
      rejected.push({ gpuProduct: pool.gpuProduct, why: sized.message });
      continue;
    }
    const memory = input.gpuMemoryPerReplica(sized.plan, pool);
    if (!best || memory < best.memory) best = { pool, plan: sized.plan, memory };
  }
  if (best) return { placed: true, pool: best.pool, plan: best.plan, rejected };
  return {
    placed: false,
    reason: "DoesNotFit",
    message: `no GPU in the cluster can hold one replica: ${describeRejections(rejected)}`,
    rejected,
  };
}

function describeRejections(rejected: RejectedProduct[]): string {
  return rejected.map((entry) => `${entry.gpuProduct}: ${entry.why}`).join("; ");
}
