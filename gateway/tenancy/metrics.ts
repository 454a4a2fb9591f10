import { Counter, Gauge, type Registry } from "prom-client";
import type { UsageDelta } from "./meter.js";

/**
 * Per-tenant Prometheus metrics (on the gateway's /metrics). Labels are bounded: `tenant` is the
 * namespace/name of a Tenant object (or "anonymous"), `model` a routed ModelDeployment's model name;
 * never a key, never a string a client sent.
 */
export interface TenancyMetrics {
  authFailures: Counter<"reason">;
  rejected: Counter<"tenant" | "reason">;
  requests: Counter<"tenant" | "model">;
  tokens: Counter<"tenant" | "model" | "kind">;
  gpuSeconds: Counter<"tenant" | "model">;
  costUSD: Counter<"tenant" | "model">;
  gramsCO2: Counter<"tenant" | "model">;
  reports: Counter<"result">;
  journalWrites: Counter<"result">;
  keys: Gauge<never>;
  observe(tenant: string, model: string, usage: { promptTokens: number; completionTokens: number }): void;
  reported(tenant: string, deltas: readonly UsageDelta[]): void;
}

export function createTenancyMetrics(registry: Registry): TenancyMetrics {
  const registers = [registry];
  const metrics = {
    authFailures: new Counter({
      name: "gpufleet_gateway_auth_failures_total",
      help: "Requests refused with 401: no API key (missing) or a key no Tenant has (invalid).",
      labelNames: ["reason"],
      registers,
    }),
    rejected: new Counter({
      name: "gpufleet_tenant_rejected_requests_total",
      help: "Requests of a tenant refused (or admitted as sheddable), by the limit: concurrency, requests, tokens, tokens-day, model-not-allowed, suspended, admitted-sheddable.",
      labelNames: ["tenant", "reason"],
      registers,
    }),
    requests: new Counter({
      name: "gpufleet_tenant_requests_total",
      help: "Requests of a tenant answered by an engine, by model.",
      labelNames: ["tenant", "model"],
      registers,
    }),
    tokens: new Counter({
      name: "gpufleet_tenant_tokens_total",
      help: "Tokens of a tenant by model and kind (prompt, completion): the engine's usage figures, or the gateway's estimate.",
      labelNames: ["tenant", "model", "kind"],
      registers,
    }),
    gpuSeconds: new Counter({
      name: "gpufleet_tenant_gpu_seconds_total",
      help: "GPU-seconds attributed to a tenant by its token share of each engine replica's time (counted when reported to the Tenant status).",
      labelNames: ["tenant", "model"],
      registers,
    }),
    costUSD: new Counter({
      name: "gpufleet_tenant_cost_usd_total",
      help: "Dollars of GPU time attributed to a tenant, priced with the chart's GPU price table (defaults illustrative).",
      labelNames: ["tenant", "model"],
      registers,
    }),
    gramsCO2: new Counter({
      name: "gpufleet_tenant_co2_grams_total",
      help: "Grams of CO2 of the GPU time attributed to a tenant (board power x the configured grid intensity).",
      labelNames: ["tenant", "model"],
      registers,
    }),
    reports: new Counter({
      name: "gpufleet_tenant_status_reports_total",
      help: "Writes of metered usage to Tenant status, by result (ok, conflict, gone: the Tenant was deleted, error, orphan-folded: a gone replica's journal folded and deleted).",
      labelNames: ["result"],
      registers,
    }),
    journalWrites: new Counter({
      name: "gpufleet_tenant_usage_journal_writes_total",
      help: "Writes of this replica's usage journal (its write-ahead record of usage not yet in Tenant status), by result (ok, conflict, error, deleted: another replica folded and deleted it, full: new usage waits in memory).",
      labelNames: ["result"],
      registers,
    }),
    keys: new Gauge({
      name: "gpufleet_gateway_api_keys",
      help: "API keys the gateway holds (as digests) from Tenants' Secrets.",
      registers,
    }),
  };
  return {
    ...metrics,
    observe(tenant, model, usage) {
      metrics.requests.inc({ tenant, model });
      metrics.tokens.inc({ tenant, model, kind: "prompt" }, usage.promptTokens);
      metrics.tokens.inc({ tenant, model, kind: "completion" }, usage.completionTokens);
    },
    reported(tenant, deltas) {
      for (const d of deltas) {
        if (d.gpuSeconds > 0) metrics.gpuSeconds.inc({ tenant, model: d.model }, d.gpuSeconds);
        if (d.costUSD > 0) metrics.costUSD.inc({ tenant, model: d.model }, d.costUSD);
        if (d.gramsCO2 > 0) metrics.gramsCO2.inc({ tenant, model: d.model }, d.gramsCO2);
      }
    },
  };
}
