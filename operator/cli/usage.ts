/**
 * `gpufleet usage` (also `kubectl gpufleet usage`): what each tenant used per model, today or this
 * month, from the usage the gateway replicas wrote into Tenant status: requests, tokens, GPU-hours, $
 * (the gateway's GPU price table) and grams of CO2, and $ and gCO2 per million tokens. Pure summarizing
 * and formatting here; the API call is the thin lister shell, injected so tests need no cluster.
 */
import { TENANT_PLURAL, type Tenant, type UsageEntry } from "../api/tenancy.js";
import { EXIT_ERROR, EXIT_OK, type UsageCommand } from "./args.js";
import type { CommandOutcome } from "./plan.js";
import { renderStructured, renderTable } from "./output.js";
import { customObjectLister, type StatusTarget } from "./status.js";

export interface UsageRow {
  namespace: string;
  tenant: string;
  tier: string;
  /** A model, or "*" for the tenant's total. */
  model: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  gpuHours: number;
  costUSD: number;
  gramsCO2: number;
  /** $ per million tokens (prompt + completion); null without tokens. */
  usdPerMillionTokens: number | null;
  gramsCO2PerMillionTokens: number | null;
}

export interface UsageReport {
  period: "today" | "month";
  /** The UTC day or month the figures are of (per tenant they may differ if a report is late; the newest). */
  periodLabel: string;
  rows: UsageRow[];
}

const perMillion = (value: number, tokens: number): number | null => (tokens > 0 ? (value * 1e6) / tokens : null);

function row(namespace: string, tenant: string, tier: string, model: string, entries: readonly UsageEntry[]): UsageRow {
  const sum = (pick: (e: UsageEntry) => number) => entries.reduce((s, e) => s + pick(e), 0);
  const promptTokens = sum((e) => e.promptTokens);
  const completionTokens = sum((e) => e.completionTokens);
  const costUSD = sum((e) => e.costUSD);
  const gramsCO2 = sum((e) => e.gramsCO2);
  return {
    namespace,
    tenant,
    tier,
    model,
    requests: sum((e) => e.requests),
    promptTokens,
    completionTokens,
    gpuHours: sum((e) => e.gpuSeconds) / 3600,
    costUSD,
    gramsCO2,
    usdPerMillionTokens: perMillion(costUSD, promptTokens + completionTokens),
    gramsCO2PerMillionTokens: perMillion(gramsCO2, promptTokens + completionTokens),
  };
}

/** Rows per tenant x model and a total per tenant, for the period; tenants without usage get none. */
export function summarizeUsage(tenants: readonly Tenant[], period: "today" | "month", tenantName?: string): UsageReport {
  const rows: UsageRow[] = [];
  let label = "";
  const sorted = [...tenants]
    .filter((t) => tenantName === undefined || t.metadata?.name === tenantName)
    .sort((a, b) =>
      `${a.metadata?.namespace}/${a.metadata?.name}`.localeCompare(`${b.metadata?.namespace}/${b.metadata?.name}`),
    );
  for (const tenant of sorted) {
    const usage = period === "today" ? tenant.status?.today : tenant.status?.thisMonth;
    if (!usage || usage.models.length === 0) continue;
    const at = "date" in usage ? usage.date : usage.month;
    if (at > label) label = at;
    const ns = tenant.metadata?.namespace ?? "";
    const name = tenant.metadata?.name ?? "";
    const models = [...usage.models].sort((a, b) => a.model.localeCompare(b.model));
    for (const entry of models) rows.push(row(ns, name, tenant.spec.tier, entry.model, [entry]));
    rows.push(row(ns, name, tenant.spec.tier, "*", models));
  }
  return { period, periodLabel: label, rows };
}

const fixed = (value: number | null, digits: number) => (value === null ? "-" : value.toFixed(digits));

export function formatUsageTable(report: UsageReport, showNamespace: boolean): string {
  if (report.rows.length === 0) return `No tenant usage ${report.period === "today" ? "today" : "this month"}.\n`;
  const header = [
    ...(showNamespace ? ["NAMESPACE"] : []),
    "TENANT",
    "TIER",
    "MODEL",
    "REQUESTS",
    "PROMPT-TOKENS",
    "COMPLETION-TOKENS",
    "GPU-HOURS",
    "COST-$",
    "CO2-G",
    "$/MTOK",
    "GCO2/MTOK",
  ];
  const rows = report.rows.map((r) => [
    ...(showNamespace ? [r.namespace] : []),
    r.tenant,
    r.tier,
    r.model === "*" ? "(total)" : r.model,
    String(r.requests),
    String(r.promptTokens),
    String(r.completionTokens),
    r.gpuHours.toFixed(4),
    r.costUSD.toFixed(4),
    r.gramsCO2.toFixed(1),
    fixed(r.usdPerMillionTokens, 2),
    fixed(r.gramsCO2PerMillionTokens, 0),
  ]);
  const note =
    "$ from the gateway's GPU price table (chart gateway.tenancy.gpuPricesUSDPerHour; its defaults are illustrative).";
  return `${renderTable(header, rows)}\nPeriod: ${report.period === "today" ? "UTC day" : "UTC month"} ${report.periodLabel}. ${note}\n`;
}

export type UsageTarget = StatusTarget;

export type ListTenants = (target: UsageTarget) => Promise<Tenant[]>;

export function kubernetesTenantLister(command: UsageCommand): { target: UsageTarget; list: ListTenants } {
  return customObjectLister<Tenant>(command, TENANT_PLURAL);
}

function describeApiError(error: unknown): string {
  const code = (error as { code?: number }).code;
  if (code === 404) return "the Tenant CRD is not installed (install the gpufleet chart or `kubectl apply -f crds/`)";
  if (code === 401) return "unauthorized: the API server refused the kubeconfig's credentials (expired token?)";
  if (code === 403) return "forbidden: your user may not list tenants.gpufleet.io here";
  return error instanceof Error ? error.message : String(error);
}

export async function runUsage(command: UsageCommand, target: UsageTarget, list: ListTenants): Promise<CommandOutcome> {
  let tenants: Tenant[];
  try {
    tenants = await list(target);
  } catch (error) {
    return { exitCode: EXIT_ERROR, stdout: "", stderr: `error: ${describeApiError(error)}\n` };
  }
  const report = summarizeUsage(tenants, command.period, command.tenant);
  if (command.tenant !== undefined && !tenants.some((t) => t.metadata?.name === command.tenant))
    return { exitCode: EXIT_ERROR, stdout: "", stderr: `error: no Tenant named ${command.tenant} here\n` };
  if (command.output !== "table") return { exitCode: EXIT_OK, stdout: renderStructured(report, command.output), stderr: "" };
  return { exitCode: EXIT_OK, stdout: formatUsageTable(report, target.namespace === undefined), stderr: "" };
}
