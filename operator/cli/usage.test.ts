import { describe, expect, it } from "vitest";
import type { Tenant } from "../api/tenancy.js";
import { parseCommandLine } from "./args.js";
import { runCli } from "./main.js";
import { formatUsageTable, summarizeUsage } from "./usage.js";

const entry = (model: string, prompt: number, completion: number, gpuSeconds: number, costUSD: number, gramsCO2: number) => ({
  model, requests: 2, promptTokens: prompt, completionTokens: completion, gpuSeconds, costUSD, gramsCO2,
});

const tenants: Tenant[] = [
  {
    metadata: { namespace: "tenants", name: "acme" },
    spec: { tier: "gold", suspended: false, apiKeys: [{ name: "k", format: "Plain", secretRef: { name: "s", key: "key" } }] },
    status: {
      today: { date: "2026-11-30", models: [entry("small", 600_000, 400_000, 3600, 0.7, 36), entry("large", 100_000, 100_000, 7200, 8, 720)] },
      thisMonth: { month: "2026-11", models: [entry("small", 6_000_000, 4_000_000, 36_000, 7, 360)] },
    },
  },
  {
    metadata: { namespace: "tenants", name: "hobby" },
    spec: { tier: "free", suspended: false, apiKeys: [{ name: "k", format: "Plain", secretRef: { name: "s2", key: "key" } }] },
  },
];

describe("gpufleet usage", () => {
  it("sums per tenant and model, with $ and gCO2 per million tokens", () => {
    const report = summarizeUsage(tenants, "today");
    expect(report.periodLabel).toBe("2026-11-30");
    expect(report.rows.map((r) => `${r.tenant}/${r.model}`)).toEqual(["acme/large", "acme/small", "acme/*"]);
    const small = report.rows[1]!;
    expect(small).toMatchObject({ gpuHours: 1, costUSD: 0.7, usdPerMillionTokens: 0.7, gramsCO2PerMillionTokens: 36 });
    const total = report.rows[2]!;
    expect(total).toMatchObject({ requests: 4, promptTokens: 700_000, completionTokens: 500_000, gpuHours: 3 });
    expect(total.usdPerMillionTokens).toBeCloseTo(8.7 / 1.2);
  });

  it("reads this month when asked, and prints a table with totals", () => {
    const report = summarizeUsage(tenants, "month");
    expect(report.rows.at(-1)).toMatchObject({ model: "*", gpuHours: 10, costUSD: 7 });
    const table = formatUsageTable(report, false);
    expect(table.split("\n")[0]).toMatch(/^TENANT\s+TIER\s+MODEL\s+REQUESTS\s+PROMPT-TOKENS/);
    expect(table).toContain("(total)");
    expect(table).toContain("Period: UTC month 2026-11");
    expect(formatUsageTable(summarizeUsage([], "today"), false)).toBe("No tenant usage today.\n");
  });

  it("parses its command line", () => {
    expect(parseCommandLine(["usage", "-n", "tenants", "--period", "month", "-o", "json"])).toEqual({
      command: "usage", output: "json", namespace: "tenants", allNamespaces: false, period: "month",
    });
    expect(parseCommandLine(["usage", "--period", "year"])).toMatchObject({ command: "usage-error", message: '--period must be today or month, got "year"' });
    expect(parseCommandLine(["usage", "--tenant", "Acme!"])).toMatchObject({ command: "usage-error" });
  });

  it("prints JSON and YAML through the CLI, as kubectl gpufleet usage would", async () => {
    const out: string[] = [];
    const code = await runCli(["usage", "-n", "tenants", "--tenant", "acme", "-o", "json"], {
      stdout: (t) => out.push(t),
      stderr: (t) => out.push(t),
      tenantListerFor: () => ({ target: { namespace: "tenants" }, list: async () => tenants }),
    });
    expect(code).toBe(0);
    const parsed = JSON.parse(out.join("")) as { period: string; rows: Array<{ model: string }> };
    expect(parsed.period).toBe("today");
    expect(parsed.rows).toHaveLength(3);
    const yaml: string[] = [];
    await runCli(["usage", "-o", "yaml"], { stdout: (t) => yaml.push(t), stderr: (t) => yaml.push(t), tenantListerFor: () => ({ target: { namespace: "tenants" }, list: async () => tenants }) });
    expect(yaml.join("")).toContain("periodLabel: 2026-11-30");
    const missing: string[] = [];
    expect(await runCli(["usage", "--tenant", "nobody"], { stdout: (t) => missing.push(t), stderr: (t) => missing.push(t), tenantListerFor: () => ({ target: { namespace: "tenants" }, list: async () => tenants }) })).toBe(1);
    expect(missing.join("")).toContain("no Tenant named nobody");
  });
});
