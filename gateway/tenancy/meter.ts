/**
 * Metering per tenant x model: requests, prompt and completion tokens, and GPU-seconds attributed by
 * token share of each engine replica's time; priced with the GPU price table and turned into grams of
 * CO2 at the GPU's board power and a grid intensity. What a replica metered since its last report is
 * goes to its usage journal and from there into the Tenant's status (journal.ts, `mergeUsage`, pure).
 * Pure apart from the explicit clock.
 */
import { MAX_STATUS_GATEWAYS, MAX_STATUS_MODELS, type TenantStatus, type UsageEntry } from "../../operator/api/tenancy.js";
import { utcDay } from "./limits.js";

export interface UsageDelta {
  /** UTC day the usage happened on (YYYY-MM-DD). */
  day: string;
  model: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  gpuSeconds: number;
  costUSD: number;
  gramsCO2: number;
}

export interface Pricing {
  /** $ per GPU-hour by GPU product (chart values; the defaults are illustrative). */
  usdPerGpuHour: Readonly<Record<string, number>>;
  /** Price for a product missing from the table. */
  defaultUsdPerGpuHour: number;
  /** Grid intensity, gCO2 per kWh, where no better figure is known (the chart value). */
  gramsCO2PerKWh: number;
  /**
   * Grid intensity (gCO2/kWh) now at the node a pod runs on, from the source placement and the region
   * router read (infra/carbon), by the node's region label; undefined: the chart value applies.
   */
  intensityAtNode?: (nodeName: string | undefined) => number | undefined;
  /** Board power (W) of one GPU of a product. */
  boardPowerW: (product: string) => number;
}

/** $ and grams of CO2 of GPU time on `product`; `gramsCO2PerKWh` defaults to the chart value. */
export function costOf(
  gpuSeconds: number,
  product: string,
  pricing: Pricing,
  gramsCO2PerKWh = pricing.gramsCO2PerKWh,
): { costUSD: number; gramsCO2: number } {
  const hours = gpuSeconds / 3600;
  const price = pricing.usdPerGpuHour[product] ?? pricing.defaultUsdPerGpuHour;
  const kWh = (hours * pricing.boardPowerW(product)) / 1000;
  return { costUSD: hours * price, gramsCO2: kWh * gramsCO2PerKWh };
}

/** The grid intensity for GPU time on `nodeName`: the node's region's figure, else the chart value. Pure. */
export function intensityFor(pricing: Pricing, nodeName: string | undefined): number {
  const regional = pricing.intensityAtNode?.(nodeName);
  return regional !== undefined && Number.isFinite(regional) && regional >= 0 ? regional : pricing.gramsCO2PerKWh;
}

/** Where a request was served: the engine pod and what it runs on. */
export interface ServedBy {
  /** `namespace/pod`. */
  pod: string;
  gpusPerReplica: number;
  gpuProduct: string;
  /** The node the pod runs on (its region's grid intensity prices the CO2). */
  nodeName?: string | undefined;
}

interface PodWindow {
  gpus: number;
  product: string;
  nodeName: string | undefined;
  /** tokens by tenant \u0000 model */
  tokens: Map<string, number>;
}

const SEP = "\u0000";

function emptyDelta(day: string, model: string): UsageDelta {
  return { day, model, requests: 0, promptTokens: 0, completionTokens: 0, gpuSeconds: 0, costUSD: 0, gramsCO2: 0 };
}

/** Accumulates one replica's usage until it is reported. */
export class Meter {
  /** tenant -> day \u0000 model -> delta */
  private readonly pending = new Map<string, Map<string, UsageDelta>>();
  private readonly windows = new Map<string, PodWindow>();
  private windowStart: number;
  /** Engine token counter (prompt + generation) per pod at the window's start. */
  private engineAtStart = new Map<string, number>();

  constructor(
    private readonly pricing: Pricing,
    now: number,
  ) {
    this.windowStart = now;
  }

  private delta(tenant: string, day: string, model: string): UsageDelta {
    let byModel = this.pending.get(tenant);
    if (!byModel) this.pending.set(tenant, (byModel = new Map()));
    const key = `${day}${SEP}${model}`;
    let delta = byModel.get(key);
    if (!delta) byModel.set(key, (delta = emptyDelta(day, model)));
    return delta;
  }

  /** A completed request. `servedBy` absent: it never reached an engine (nothing to attribute). */
  record(
    tenant: string,
    model: string,
    usage: { promptTokens: number; completionTokens: number },
    servedBy: ServedBy | undefined,
    now: number,
  ): void {
    const delta = this.delta(tenant, utcDay(now), model);
    delta.requests++;
    delta.promptTokens += usage.promptTokens;
    delta.completionTokens += usage.completionTokens;
    if (!servedBy) return;
    let window = this.windows.get(servedBy.pod);
    if (!window)
      this.windows.set(
        servedBy.pod,
        (window = { gpus: servedBy.gpusPerReplica, product: servedBy.gpuProduct, nodeName: servedBy.nodeName, tokens: new Map() }),
      );
    const key = `${tenant}${SEP}${model}`;
    window.tokens.set(key, (window.tokens.get(key) ?? 0) + usage.promptTokens + usage.completionTokens);
  }

  /**
   * Closes the attribution window: each pod's GPU time in it (window length x GPUs per replica) is split
   * by token share. The share's denominator is the tokens the engine itself counted in the window (its
   * prompt + generation counters, scraped: that covers other gateway replicas' requests too), or this
   * replica's own tokens when that is larger or unknown. Returns the GPU-seconds attributed per tenant/model.
   */
  closeWindow(now: number, engineTokensTotal: (pod: string) => number | undefined): void {
    const seconds = Math.max(0, (now - this.windowStart) / 1000);
    const nextStart = new Map<string, number>();
    for (const [pod, window] of this.windows) {
      let own = 0;
      for (const tokens of window.tokens.values()) own += tokens;
      const current = engineTokensTotal(pod);
      const before = this.engineAtStart.get(pod);
      const engineDelta = current !== undefined && before !== undefined && current >= before ? current - before : 0;
      const denominator = Math.max(own, engineDelta);
      if (denominator <= 0) continue;
      const podGpuSeconds = seconds * window.gpus;
      const intensity = intensityFor(this.pricing, window.nodeName);
      for (const [key, tokens] of window.tokens) {
        const [tenant, model] = key.split(SEP) as [string, string];
        const gpuSeconds = (podGpuSeconds * tokens) / denominator;
        const { costUSD, gramsCO2 } = costOf(gpuSeconds, window.product, this.pricing, intensity);
        const delta = this.delta(tenant, utcDay(now), model);
        delta.gpuSeconds += gpuSeconds;
        delta.costUSD += costUSD;
        delta.gramsCO2 += gramsCO2;
      }
    }
    this.windows.clear();
    this.windowStart = now;
    // Every pod known to the caller gets a fresh baseline on first use; keep the ones seen.
    for (const pod of this.engineAtStart.keys()) {
      const value = engineTokensTotal(pod);
      if (value !== undefined) nextStart.set(pod, value);
    }
    this.engineAtStart = nextStart;
  }

  /** Start counting a pod's engine tokens from now (called when a request is sent to it). */
  baseline(pod: string, engineTokensTotal: number | undefined): void {
    if (engineTokensTotal !== undefined && !this.engineAtStart.has(pod)) this.engineAtStart.set(pod, engineTokensTotal);
  }

  tenantsWithUsage(): string[] {
    return [...this.pending.keys()];
  }

  /** Takes what `tenant` used since its last report (to be added to its status). */
  take(tenant: string): UsageDelta[] {
    const byModel = this.pending.get(tenant);
    this.pending.delete(tenant);
    return byModel ? [...byModel.values()] : [];
  }

  /** Puts deltas back after a failed report. */
  restore(tenant: string, deltas: readonly UsageDelta[]): void {
    for (const d of deltas) {
      const into = this.delta(tenant, d.day, d.model);
      into.requests += d.requests;
      into.promptTokens += d.promptTokens;
      into.completionTokens += d.completionTokens;
      into.gpuSeconds += d.gpuSeconds;
      into.costUSD += d.costUSD;
      into.gramsCO2 += d.gramsCO2;
    }
  }
}

const round = (value: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
};

function addInto(list: UsageEntry[], d: UsageDelta): UsageEntry[] {
  const out = list.map((e) => ({ ...e }));
  let entry = out.find((e) => e.model === d.model);
  if (!entry && out.length >= MAX_STATUS_MODELS) entry = out.find((e) => e.model === "other");
  if (!entry) {
    entry = {
      model: out.length >= MAX_STATUS_MODELS ? "other" : d.model,
      requests: 0,
      promptTokens: 0,
      completionTokens: 0,
      gpuSeconds: 0,
      costUSD: 0,
      gramsCO2: 0,
    };
    out.push(entry);
  }
  entry.requests += d.requests;
  entry.promptTokens += d.promptTokens;
  entry.completionTokens += d.completionTokens;
  entry.gpuSeconds = round(entry.gpuSeconds + d.gpuSeconds, 3);
  entry.costUSD = round(entry.costUSD + d.costUSD, 6);
  entry.gramsCO2 = round(entry.gramsCO2 + d.gramsCO2, 3);
  return out;
}

/**
 * How long a replica's entry (and its last report id, the mark of what of its journal the status
 * holds) stays in `gateways` after its last report. Longer than the share's staleness on purpose: a
 * journal whose prune waited an hour of API trouble is still folded once.
 */
export const REPORT_ID_RETENTION_MS = 3_600_000;

/**
 * The status after this replica adds `deltas` as report `reportId`: today's and this month's totals (a
 * new UTC day or month starts from zero; usage of an earlier day still counts in its month), and this
 * replica's report time and id. Other replicas' entries older than max(`staleMs`,
 * REPORT_ID_RETENTION_MS) are dropped from `gateways` (only those within `staleMs` share the limits). Pure.
 */
export function mergeUsage(
  status: TenantStatus | undefined,
  deltas: readonly UsageDelta[],
  replica: string,
  now: number,
  staleMs: number,
  reportId?: string,
  /** The replica's report time in `gateways` (default `now`; a survivor folding a gone replica's journal keeps its last write time). */
  reportTime = now,
): TenantStatus {
  const day = utcDay(now);
  const month = day.slice(0, 7);
  let today = status?.today?.date === day ? status.today.models : [];
  let thisMonth = status?.thisMonth?.month === month ? status.thisMonth.models : [];
  for (const d of deltas) {
    if (d.day === day) today = addInto(today, d);
    if (d.day.slice(0, 7) === month) thisMonth = addInto(thisMonth, d);
  }
  const retention = Math.max(staleMs, REPORT_ID_RETENTION_MS);
  // Without a new id the replica's last one stays (it marks what of its journal the status holds).
  const id = reportId ?? status?.gateways?.find((g) => g.replica === replica)?.lastReportId;
  const gateways = (status?.gateways ?? [])
    .filter((g) => g.replica !== replica && now - Date.parse(g.lastReportTime) <= retention)
    .concat([{ replica, lastReportTime: new Date(reportTime).toISOString(), ...(id ? { lastReportId: id } : {}) }])
    .slice(-MAX_STATUS_GATEWAYS);
  return {
    ...status,
    today: { date: day, models: today },
    thisMonth: { month, models: thisMonth },
    gateways,
  };
}

/** Gateway replicas that reported within `staleMs` (this one counted even if it has not yet). */
export function replicasSharing(status: TenantStatus | undefined, replica: string, now: number, staleMs: number): number {
  const others = (status?.gateways ?? []).filter(
    (g) => g.replica !== replica && now - Date.parse(g.lastReportTime) <= staleMs,
  );
  return others.length + 1;
}

/** Tokens used on `day` according to the status. */
export function dayTokens(status: TenantStatus | undefined, day: string): number {
  if (status?.today?.date !== day) return 0;
  return status.today.models.reduce((sum, m) => sum + m.promptTokens + m.completionTokens, 0);
}
