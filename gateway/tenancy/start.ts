import type { Registry } from "prom-client";
import type { ModelDeployment } from "../../operator/api/modeldeployment.js";
import type { KubeClient } from "../../operator/runtime/kube-client.js";
import { gpuPowerOf } from "../../infra/placement/gpu-power.js";
import type { GatewayConfig } from "../config.js";
import type { Fleet } from "../fleet.js";
import { TenancyCore } from "./core.js";
import { createTenancyMetrics } from "./metrics.js";
import { Tenancy } from "./tenancy.js";

/** Board power when the product is unknown to the planner's catalogue (W; an H100-class figure, labelled). */
export const UNKNOWN_GPU_BOARD_POWER_W = 700;

/**
 * The gateway's tenancy, wired to the fleet (plans, engine token counters) and the gateway's registry.
 * `intensityAtNode`: the grid intensity at a pod's node from the region router (the source placement
 * uses), when region routing is on; otherwise, and for a node it cannot rate, the chart value.
 */
export function startTenancy(
  client: KubeClient,
  config: GatewayConfig,
  fleet: Fleet,
  registry: Registry,
  intensityAtNode?: (nodeName: string | undefined) => number | undefined,
): Tenancy {
  const tenancy = config.tenancy;
  const metrics = createTenancyMetrics(registry);
  const staleMs = 3 * tenancy.reportIntervalMs;
  const core = new TenancyCore({
    anonymousTier: tenancy.anonymousTier || undefined,
    replica: config.replicaName,
    staleMs,
    metrics,
    pricing: {
      usdPerGpuHour: tenancy.usdPerGpuHour,
      defaultUsdPerGpuHour: tenancy.defaultUsdPerGpuHour,
      gramsCO2PerKWh: tenancy.gramsCO2PerKWh,
      ...(intensityAtNode ? { intensityAtNode } : {}),
      boardPowerW: (product) => {
        try {
          return gpuPowerOf(product).boardPowerW;
        } catch {
          return UNKNOWN_GPU_BOARD_POWER_W;
        }
      },
    },
  });
  return new Tenancy({
    client,
    core,
    metrics,
    namespaces: tenancy.namespaces,
    reportIntervalMs: tenancy.reportIntervalMs,
    journalIntervalMs: tenancy.journalIntervalMs,
    orphanAfterMs: tenancy.orphanAfterMs,
    replica: config.replicaName,
    staleMs,
    planOf: (namespace, name) => {
      const md = fleet.informers.modelDeployments.get(namespace, name) as ModelDeployment | undefined;
      const plan = md?.status?.plan;
      return plan ? { gpuProduct: plan.gpuProduct, gpusPerReplica: plan.gpusPerReplica } : undefined;
    },
    engineTokens: (pod) => {
      const [namespace, podName] = pod.split("/");
      for (const route of fleet.routes())
        if (route.namespace === namespace)
          for (const endpoint of route.endpoints) if (endpoint.podName === podName) return endpoint.engineTokensTotal;
      return undefined;
    },
  });
}
