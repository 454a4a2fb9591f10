/**
 * Region choice wired into the gateway's picking. A model's pods may run on nodes of several regions
 * (node label topology.kubernetes.io/region); before the pod picker runs, the request is narrowed to
 * one region: the lowest grid carbon intensity now among the regions within the request's latency
 * budget that have spare capacity, the next one when it is saturated (gateway/routing/region.ts
 * `pickRegion`). Intensities come from the same source placement reads
 * (infra/carbon/intensity-source.ts), refreshed in the background; a region the source cannot rate
 * ranks after every rated one. With pods in one region only, nothing changes.
 *
 * The latency budget is the request's `x-gpufleet-latency-budget-ms` header (bounded), or the
 * configured default. RTT from the gateway's own region to each region comes from configuration
 * (GPUFLEET_GATEWAY_REGION_RTT_MS), else the shared GCP inter-region table; a region with no figure is
 * treated as out of budget (it still serves when nothing within budget is ready).
 */
import type { V1Node } from "@kubernetes/client-node";
import type { IncomingHttpHeaders } from "node:http";
import { logger } from "../operator/log/logger.js";
import { Informer } from "../operator/runtime/informer.js";
import type { KubeClient, KubeObject } from "../operator/runtime/kube-client.js";
import type { CarbonIntensitySource } from "../infra/carbon/types.js";
import { intensitySnapshot } from "../infra/carbon/intensity-source.js";
import { pickRegion, type RegionPick, type RegionState } from "./routing/region.js";
import { estimatedLoad } from "./routing/scorers.js";
import type { EndpointState, RequestFeatures } from "./routing/types.js";

export const REGION_LABEL = "topology.kubernetes.io/region";
export const LATENCY_BUDGET_HEADER = "x-gpufleet-latency-budget-ms";
const MAX_LATENCY_BUDGET_MS = 60_000;

export interface RegionRoutingConfig {
  /** The region this gateway runs in (its clients' origin). */
  gatewayRegion: string;
  /** Prefix that turns a node's region into the intensity source's region ref (`gcp` -> `gcp:<region>`). */
  cloud: string;
  defaultLatencyBudgetMs: number;
  /** RTT from the gateway's region to each region, ms; the gateway's own region is 0. */
  rttMs: Readonly<Record<string, number>>;
  /** Requests one ready pod carries before its region counts as saturated. */
  capacityPerEndpoint: number;
  /** How often intensities are refreshed from the source. */
  refreshMs: number;
}

/** An endpoint as the router needs it: its state and the node it runs on. */
export interface RoutedEndpoint extends EndpointState {
  target: { nodeName?: string | undefined };
}

export interface RegionDecision extends RegionPick {
  /** Regions and the endpoint count in each, as considered. */
  regions: ReadonlyMap<string, number>;
}

/**
 * Pure: the endpoints of the region the request goes to, or all of them when there is no choice to
 * make (one region, or no region known). `regionOf` maps a node name to its region label.
 */
export function narrowToRegion<E extends RoutedEndpoint>(
  endpoints: readonly E[],
  latencyBudgetMs: number,
  inputs: {
    regionOf: (nodeName: string | undefined) => string | undefined;
    rttMs: (region: string) => number | undefined;
    intensity: (region: string) => number | undefined;
    capacityPerEndpoint: number;
  },
): { endpoints: readonly E[]; decision?: RegionDecision } {
  const byRegion = new Map<string, E[]>();
  for (const endpoint of endpoints) {
    const region = inputs.regionOf(endpoint.target.nodeName) ?? "";
    const list = byRegion.get(region) ?? [];
    list.push(endpoint);
    byRegion.set(region, list);
  }
  if (byRegion.size < 2) return { endpoints };
  const states: RegionState[] = [];
  for (const [region, list] of byRegion) {
    const ready = list.filter((e) => e.ready);
    const rtt = inputs.rttMs(region);
    const gCO2PerKWh = inputs.intensity(region);
    states.push({
      region,
      rttMs: rtt ?? Number.MAX_SAFE_INTEGER,
      ...(gCO2PerKWh !== undefined ? { gCO2PerKWh } : {}),
      load: ready.reduce((sum, e) => sum + estimatedLoad(e), 0),
      capacity: ready.length * inputs.capacityPerEndpoint,
    });
  }
  const pick = pickRegion({ latencyBudgetMs }, states);
  if (pick === undefined) return { endpoints };
  const counts = new Map([...byRegion].map(([region, list]) => [region, list.length]));
  return { endpoints: byRegion.get(pick.region) ?? endpoints, decision: { ...pick, regions: counts } };
}

/** The request's latency budget from its header, bounded; the default when absent or malformed. */
export function latencyBudgetFrom(headers: IncomingHttpHeaders, fallbackMs: number): number {
  const raw = headers[LATENCY_BUDGET_HEADER];
  const value = Number(Array.isArray(raw) ? raw[0] : raw);
  return Number.isFinite(value) && value > 0 ? Math.min(value, MAX_LATENCY_BUDGET_MS) : fallbackMs;
}

/** Reads GPUFLEET_GATEWAY_REGION (unset: region routing off) and its companions. */
export function regionRoutingConfigFromEnv(env: NodeJS.ProcessEnv): RegionRoutingConfig | undefined {
  const gatewayRegion = env.GPUFLEET_GATEWAY_REGION?.trim();
  if (!gatewayRegion) return undefined;
  const rttMs: Record<string, number> = { [gatewayRegion]: 0 };
  for (const pair of (env.GPUFLEET_GATEWAY_REGION_RTT_MS ?? "").split(",")) {
    const [region, ms] = pair.split("=").map((s) => s.trim());
    if (!region) continue;
    const value = Number(ms);
    if (!/^[a-z0-9-]{1,63}$/.test(region) || !Number.isFinite(value) || value < 0)
      throw new Error(`GPUFLEET_GATEWAY_REGION_RTT_MS: bad entry ${pair.slice(0, 80)}`);
    rttMs[region] = value;
  }
  const number = (key: string, fallback: number, min: number, max: number): number => {
    const raw = env[key];
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min || value > max) throw new Error(`${key}=${raw.slice(0, 40)} is out of range`);
    return value;
  };
  return {
    gatewayRegion,
    cloud: env.GPUFLEET_GATEWAY_CLOUD?.trim() || "gcp",
    defaultLatencyBudgetMs: number("GPUFLEET_GATEWAY_LATENCY_BUDGET_MS", 100, 1, MAX_LATENCY_BUDGET_MS),
    rttMs,
    capacityPerEndpoint: number("GPUFLEET_GATEWAY_REGION_CAPACITY_PER_POD", 8, 1, 100_000),
    refreshMs: number("GPUFLEET_GATEWAY_INTENSITY_REFRESH_SECONDS", 300, 1, 86_400) * 1000,
  };
}

/**
 * The gateway's region router: a Node informer for region labels, a background refresh of the
 * intensities of the regions its pods run in, and `narrow` for the picker.
 */
export class RegionRouter {
  private readonly nodes: Informer<V1Node & KubeObject>;
  private intensities: Record<string, number> = {};
  private timer: NodeJS.Timeout | undefined;
  private readonly log = logger.child({ component: "region-router" });
  /** Decisions by reason, for metrics and tests. */
  readonly decisions = new Map<string, number>();

  constructor(
    client: KubeClient,
    private readonly config: RegionRoutingConfig,
    private readonly source: CarbonIntensitySource,
    private readonly fallbackRtt?: (from: string, to: string) => number | undefined,
  ) {
    this.nodes = new Informer<V1Node & KubeObject>(client, { apiVersion: "v1", kind: "Node", name: "gateway-nodes" });
  }

  async start(syncTimeoutMs = 30_000): Promise<void> {
    this.nodes.start();
    await this.nodes.waitForSync(syncTimeoutMs);
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.config.refreshMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.nodes.stop();
  }

  private regions(): string[] {
    const set = new Set<string>();
    for (const node of this.nodes.list()) {
      const region = node.metadata?.labels?.[REGION_LABEL];
      if (region) set.add(region);
    }
    return [...set];
  }

  /** Re-reads intensities; a failing source keeps the last figures (and the region keeps serving). */
  async refresh(): Promise<void> {
    const regions = this.regions();
    try {
      const snapshot = await intensitySnapshot(
        this.source,
        regions.map((r) => `${this.config.cloud}:${r}`),
      );
      const next: Record<string, number> = { ...this.intensities };
      for (const region of regions) {
        const value = snapshot[`${this.config.cloud}:${region}`];
        if (value !== undefined) next[region] = value;
      }
      this.intensities = next;
    } catch (error) {
      this.log.warn({ err: String(error) }, "carbon intensity refresh failed; keeping the last figures");
    }
  }

  /**
   * The grid intensity now (gCO2/kWh, as last refreshed) of the region of `nodeName`; undefined when
   * the node has no region label or the source cannot rate its region. Tenancy prices CO2 with it.
   */
  intensityAtNode(nodeName: string | undefined): number | undefined {
    if (!nodeName) return undefined;
    const region = this.nodes.get(undefined, nodeName)?.metadata?.labels?.[REGION_LABEL];
    return region ? this.intensities[region] : undefined;
  }

  /** The request's latency budget, kept on its features for `narrow`. */
  annotate(features: RequestFeatures, headers: IncomingHttpHeaders): void {
    features.latencyBudgetMs = latencyBudgetFrom(headers, this.config.defaultLatencyBudgetMs);
  }

  narrow<E extends RoutedEndpoint>(endpoints: readonly E[], features: RequestFeatures): readonly E[] {
    const byName = new Map<string, string>();
    for (const node of this.nodes.list()) {
      const region = node.metadata?.labels?.[REGION_LABEL];
      if (node.metadata?.name && region) byName.set(node.metadata.name, region);
    }
    const result = narrowToRegion(endpoints, features.latencyBudgetMs ?? this.config.defaultLatencyBudgetMs, {
      regionOf: (nodeName) => (nodeName ? byName.get(nodeName) : undefined),
      rttMs: (region) =>
        this.config.rttMs[region] ?? this.fallbackRtt?.(this.config.gatewayRegion, region),
      intensity: (region) => this.intensities[region],
      capacityPerEndpoint: this.config.capacityPerEndpoint,
    });
    if (result.decision) {
      const key = `${result.decision.region}|${result.decision.reason}`;
      this.decisions.set(key, (this.decisions.get(key) ?? 0) + 1);
    }
    return result.endpoints;
  }
}

/** How to give the gateway the data region routing needs, for error messages. */
const DATA_HINT =
  "give the gateway a region data file: `npx tsx infra/carbon/region-data.ts --regions <the fleet's regions> --from <this region> > carbon.json`, " +
  "then `helm upgrade ... --set-file gateway.regionRouting.carbonData=carbon.json` (or GPUFLEET_GATEWAY_CARBON_DATA=<file>)";

/**
 * Starts region routing when GPUFLEET_GATEWAY_REGION is set: the intensity source placement uses
 * (GPUFLEET_GATEWAY_CARBON_PROVIDER: static (default), electricitymaps, watttime or carbon-aware-sdk;
 * keys from the environment as for placement) over the carbon data of GPUFLEET_GATEWAY_CARBON_DATA (a
 * region data bundle, infra/carbon/region-data.ts; the chart mounts it from a ConfigMap) or else the
 * shared data folder, and RTTs from the configuration, the bundle, else the shared GCP table. Without
 * intensity data, or without any RTT beyond its own region, the gateway refuses to start and says which
 * data is missing: routing blind to carbon would defeat the setting.
 */
export async function startRegionRouting(
  client: KubeClient,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RegionRouter | undefined> {
  const config = regionRoutingConfigFromEnv(env);
  if (!config) return undefined;
  const { source, fallbackRtt, dataFile } = await regionRoutingData(config, env);
  const router = new RegionRouter(client, config, source, fallbackRtt);
  await router.start();
  logger.child({ component: "region-router" }).info(
    { region: config.gatewayRegion, budgetMs: config.defaultLatencyBudgetMs, carbonData: dataFile ?? "shared data", source: source.name },
    "region routing on",
  );
  return router;
}

/** The intensity source and RTT fallback region routing runs on; throws naming the data that is missing. */
export async function regionRoutingData(
  config: RegionRoutingConfig,
  env: NodeJS.ProcessEnv,
): Promise<{
  source: CarbonIntensitySource;
  fallbackRtt?: (from: string, to: string) => number | undefined;
  dataFile?: string;
}> {
  const log = logger.child({ component: "region-router" });
  const { intensitySourceFromConfig } = await import("../infra/carbon/intensity-source.js");
  const { loadRegionCarbonBundle } = await import("../infra/carbon/region-data.js");
  const setting = `region routing (GPUFLEET_GATEWAY_REGION=${config.gatewayRegion})`;
  const dataFile = env.GPUFLEET_GATEWAY_CARBON_DATA?.trim();
  let data: ReturnType<typeof loadRegionCarbonBundle> | undefined;
  if (dataFile) {
    try {
      data = loadRegionCarbonBundle(dataFile);
    } catch (error) {
      throw new Error(`${setting}: GPUFLEET_GATEWAY_CARBON_DATA=${dataFile.slice(0, 200)} is unusable: ${(error as Error).message}`);
    }
  }
  let source: CarbonIntensitySource;
  try {
    const provider = (env.GPUFLEET_GATEWAY_CARBON_PROVIDER || "static") as "static";
    source = intensitySourceFromConfig(
      {
        provider,
        ...(env.GPUFLEET_GATEWAY_CARBON_BASE_URL ? { baseUrl: env.GPUFLEET_GATEWAY_CARBON_BASE_URL } : {}),
        ...(data && !data.hourly ? { hourlyHistory: false } : {}),
      },
      { env, ...(data ? { staticSource: data.staticSource, ...(data.hourly ? { hourly: data.hourly } : {}) } : {}) },
    );
  } catch (error) {
    throw new Error(`${setting} has no carbon intensity source: ${(error as Error).message}; ${DATA_HINT}`);
  }
  let fallbackRtt: ((from: string, to: string) => number | undefined) | undefined;
  if (data?.rttMs !== undefined && data.rttMs.from === config.gatewayRegion) {
    const to = data.rttMs.to;
    fallbackRtt = (_from, region) => to.get(region);
  } else {
    try {
      const { loadGcpRttTable } = await import("../infra/placement/rtt.js");
      const table = loadGcpRttTable();
      fallbackRtt = (from, to) => table.rttMs(`${config.cloud}:${from}`, `${config.cloud}:${to}`);
    } catch (error) {
      if (Object.keys(config.rttMs).length < 2)
        throw new Error(
          `${setting} has no RTT beyond its own region (${(error as Error).message}): set GPUFLEET_GATEWAY_REGION_RTT_MS (chart: gateway.regionRouting.rttMs) or ${DATA_HINT} with --from ${config.gatewayRegion}`,
        );
      log.warn({ err: String(error) }, "no RTT table; only GPUFLEET_GATEWAY_REGION_RTT_MS regions are within budget");
    }
  }
  return { source, ...(fallbackRtt ? { fallbackRtt } : {}), ...(dataFile ? { dataFile } : {}) };
}
