/**
 * GPU node pools of the local cluster: parsed from sim/cluster/gpu-pools.yaml, turned into KWOK
 * Node objects labelled like NVIDIA GPU Feature Discovery labels real GPU nodes, and applied.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CoreV1Api, type KubeConfig, type V1Node } from "@kubernetes/client-node";
import { parse as parseYaml } from "yaml";

export const DEFAULT_NODE_POOLS_FILE = join(dirname(fileURLToPath(import.meta.url)), "gpu-pools.yaml");

export interface GpuNodePool {
  name: string;
  /** GFD's product label value, e.g. NVIDIA-H100-80GB-HBM3. */
  gpuProduct: string;
  gpuMemoryMiB: number;
  gpusPerNode: number;
  nodeCount: number;
  region: string;
  zone: string;
  instanceType: string;
  /** Kubernetes quantities, e.g. "208", "1872Gi". */
  cpu: string;
  memory: string;
  pods: number;
}

export interface SystemNodeSpec {
  name: string;
  cpu: string;
  memory: string;
  pods: number;
  region: string;
  zone: string;
}

export interface NodePoolsConfig {
  systemNode: SystemNodeSpec;
  pools: GpuNodePool[];
}

// Label, annotation and taint keys, as NVIDIA GPU Feature Discovery, the device plugin and KWOK use them.
export const GPU_PRODUCT_LABEL = "nvidia.com/gpu.product";
export const GPU_MEMORY_LABEL = "nvidia.com/gpu.memory";
export const GPU_COUNT_LABEL = "nvidia.com/gpu.count";
export const GPU_PRESENT_LABEL = "nvidia.com/gpu.present";
export const GPU_RESOURCE = "nvidia.com/gpu";
export const GPU_TAINT_KEY = "nvidia.com/gpu";
export const GPU_TAINT_VALUE = "present";
export const REGION_LABEL = "topology.kubernetes.io/region";
export const ZONE_LABEL = "topology.kubernetes.io/zone";
export const INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type";
export const POOL_LABEL = "gpufleet.io/pool";
/** KWOK manages only nodes carrying this annotation (see cluster.ts: --manage-nodes-with-annotation-selector). */
export const KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node";
export const KWOK_NODE_ANNOTATION_VALUE = "fake";

export class NodePoolsValidationError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid node pools in ${source}:\n  - ${problems.join("\n  - ")}`);
    this.name = "NodePoolsValidationError";
  }
}

// A DNS-1123 label: node names are built from pool names.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// A Kubernetes quantity (decimal or binary suffix), e.g. "48", "500m", "192Gi".
const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;
// Label values: at most 63 characters of [A-Za-z0-9._-], starting and ending alphanumeric.
const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

type Checker = (value: unknown, path: string) => string | undefined;

const isString: Checker = (value, path) =>
  typeof value === "string" && value !== "" ? undefined : `${path} must be a non-empty string`;
const isLabelValue: Checker = (value, path) =>
  isString(value, path) ??
  (LABEL_VALUE.test(value as string) ? undefined : `${path} "${String(value)}" is not a valid label value`);
const isDnsLabel: Checker = (value, path) =>
  isString(value, path) ??
  (DNS_LABEL.test(value as string) && (value as string).length <= 50
    ? undefined
    : `${path} "${String(value)}" must be a lowercase DNS label (a-z, 0-9, '-') of at most 50 characters`);
const isQuantity: Checker = (value, path) =>
  typeof value === "string" && QUANTITY.test(value)
    ? undefined
    : `${path} must be a Kubernetes quantity string such as "48" or "192Gi"`;
const isPositiveInteger: Checker = (value, path) =>
  typeof value === "number" && Number.isInteger(value) && value > 0
    ? undefined
    : `${path} must be a positive integer`;

function checkFields(
  record: unknown,
  path: string,
  fields: Record<string, Checker>,
  problems: string[],
): Record<string, unknown> | undefined {
  if (typeof record !== "object" || record === null || Array.isArray(record)) {
    problems.push(`${path} must be a mapping`);
    return undefined;
  }
  const entries = record as Record<string, unknown>;
  for (const [field, check] of Object.entries(fields)) {
    const problem = check(entries[field], `${path}.${field}`);
    if (problem) problems.push(problem);
  }
  for (const field of Object.keys(entries)) {
    if (!(field in fields)) problems.push(`${path}.${field} is not a known field`);
  }
  return entries;
}

const POOL_FIELDS: Record<keyof GpuNodePool, Checker> = {
  name: isDnsLabel,
  gpuProduct: isLabelValue,
  gpuMemoryMiB: isPositiveInteger,
  gpusPerNode: isPositiveInteger,
  nodeCount: isPositiveInteger,
  region: isLabelValue,
  zone: isLabelValue,
  instanceType: isLabelValue,
  cpu: isQuantity,
  memory: isQuantity,
  pods: isPositiveInteger,
};

const SYSTEM_NODE_FIELDS: Record<keyof SystemNodeSpec, Checker> = {
  name: isDnsLabel,
  cpu: isQuantity,
  memory: isQuantity,
  pods: isPositiveInteger,
  region: isLabelValue,
  zone: isLabelValue,
};

/** Validates parsed YAML; reports every problem at once. */
export function parseNodePools(document: unknown, source = "node pools"): NodePoolsConfig {
  const problems: string[] = [];
  const root = checkFields(document, "$", { systemNode: () => undefined, pools: () => undefined }, problems);
  if (root) {
    checkFields(root.systemNode, "$.systemNode", SYSTEM_NODE_FIELDS, problems);
    if (!Array.isArray(root.pools) || root.pools.length === 0) {
      problems.push("$.pools must be a non-empty list");
    } else {
      const seen = new Set<string>();
      root.pools.forEach((pool: unknown, index) => {
        const fields = checkFields(pool, `$.pools[${index}]`, POOL_FIELDS, problems);
        const name = fields?.name;
        if (typeof name === "string") {
          if (seen.has(name)) problems.push(`$.pools[${index}].name "${name}" is used by another pool`);
          seen.add(name);
        }
      });
      const systemName = (root.systemNode as { name?: unknown } | undefined)?.name;
      if (typeof systemName === "string" && seen.has(systemName)) {
        problems.push(`$.systemNode.name "${systemName}" is also a pool name`);
      }
    }
  }
  if (problems.length > 0) throw new NodePoolsValidationError(source, problems);
  return root as unknown as NodePoolsConfig;
}

export function loadNodePools(file: string = DEFAULT_NODE_POOLS_FILE): NodePoolsConfig {
  return parseNodePools(parseYaml(readFileSync(file, "utf8")), file);
}

export function poolNodeName(pool: Pick<GpuNodePool, "name">, index: number): string {
  return `${pool.name}-${index}`;
}

/**
 * Node IPs live in 127.0.0.0/8 so nothing ever dials off the host: the system node is
 * 127.0.0.2 (127.0.0.1 is the API server), pool p's node n is 127.0.(p+1).(n+1).
 */
function nodeInternalIp(poolIndex: number | "system", nodeIndex: number): string {
  return poolIndex === "system" ? "127.0.0.2" : `127.0.${poolIndex + 1}.${nodeIndex + 1}`;
}

function kwokNode(
  name: string,
  internalIp: string,
  labels: Record<string, string>,
  capacity: Record<string, string>,
): V1Node {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      annotations: {
        [KWOK_NODE_ANNOTATION]: KWOK_NODE_ANNOTATION_VALUE,
        "node.alpha.kubernetes.io/ttl": "0",
      },
      labels: {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        type: "kwok",
        ...labels,
      },
    },
    spec: {},
    // Node status may be set on create; KWOK's node-initialize stage keeps given addresses and capacity.
    status: {
      addresses: [
        { type: "InternalIP", address: internalIp },
        { type: "Hostname", address: name },
      ],
      capacity,
      allocatable: capacity,
    },
  };
}

/** The Node objects for a pools config: one system node, then every pool's nodes. Pure. */
export function nodeManifests(config: NodePoolsConfig): V1Node[] {
  const system = config.systemNode;
  const nodes: V1Node[] = [
    kwokNode(
      `${system.name}-0`,
      nodeInternalIp("system", 0),
      { [REGION_LABEL]: system.region, [ZONE_LABEL]: system.zone, [POOL_LABEL]: system.name },
      { cpu: system.cpu, memory: system.memory, pods: String(system.pods), "ephemeral-storage": "500Gi" },
    ),
  ];
  config.pools.forEach((pool, poolIndex) => {
    for (let nodeIndex = 0; nodeIndex < pool.nodeCount; nodeIndex++) {
      const node = kwokNode(
        poolNodeName(pool, nodeIndex),
        nodeInternalIp(poolIndex, nodeIndex),
        {
          [GPU_PRESENT_LABEL]: "true",
          [GPU_PRODUCT_LABEL]: pool.gpuProduct,
          [GPU_MEMORY_LABEL]: String(pool.gpuMemoryMiB),
          [GPU_COUNT_LABEL]: String(pool.gpusPerNode),
          [REGION_LABEL]: pool.region,
          [ZONE_LABEL]: pool.zone,
          [INSTANCE_TYPE_LABEL]: pool.instanceType,
          [POOL_LABEL]: pool.name,
        },
        {
          cpu: pool.cpu,
          memory: pool.memory,
          pods: String(pool.pods),
          "ephemeral-storage": "2Ti",
          [GPU_RESOURCE]: String(pool.gpusPerNode),
        },
      );
      node.spec = { taints: [{ key: GPU_TAINT_KEY, value: GPU_TAINT_VALUE, effect: "NoSchedule" }] };
      nodes.push(node);
    }
  });
  return nodes;
}

function isConflict(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === 409;
}

export interface ApplyNodePoolsOptions {
  /** Wait until every node reports Ready (KWOK has picked it up). Default true. */
  waitForReady?: boolean;
  timeoutMs?: number;
}

/**
 * Creates the nodes of every pool (existing nodes of the same name are left as they are) and,
 * by default, waits until KWOK reports them Ready. Returns the node names.
 */
export async function applyNodePools(
  kubeConfig: KubeConfig,
  config: NodePoolsConfig,
  options: ApplyNodePoolsOptions = {},
): Promise<string[]> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const manifests = nodeManifests(config);
  for (const node of manifests) {
    try {
      await core.createNode({ body: node });
    } catch (error) {
      if (!isConflict(error)) throw error;
    }
  }
  const names = manifests.map((node) => node.metadata?.name ?? "");
  if (options.waitForReady ?? true) {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    for (;;) {
      const list = await core.listNode({ labelSelector: "type=kwok" });
      const ready = new Set(
        list.items
          .filter((node) => node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"))
          .map((node) => node.metadata?.name),
      );
      const notReady = names.filter((name) => !ready.has(name));
      if (notReady.length === 0) break;
      if (Date.now() > deadline) {
        throw new Error(
          `KWOK nodes not Ready after ${options.timeoutMs ?? 60_000} ms: ${notReady.join(", ")}`,
        );
      }
      await new Promise((resolveWait) => setTimeout(resolveWait, 250));
    }
  }
  return names;
}
