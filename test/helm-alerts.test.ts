/**
 * The chart's alerts, evaluated by Prometheus' own rule engine: the PrometheusRule rendered by the
 * real helm is checked with `promtool check rules` and driven with synthetic series by
 * `promtool test rules` (the pinned promtool of tools/prometheus/go.mod, found or built by
 * tools/binaries.ts like the cluster binaries).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { REPO_ROOT } from "../operator/api/generate.js";
import { ensureClusterBinaries, ensurePinnedBinaries, readPinnedTools } from "../tools/binaries.js";

interface Run {
  code: number;
  output: string;
}

function run(binary: string, args: string[], cwd?: string): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(
      binary,
      args,
      { cwd, timeout: 60_000, env: { PATH: process.env.PATH ?? "", HOME: tmpdir() } },
      (error, stdout, stderr) =>
        resolveRun({
          code: error ? (typeof error.code === "number" ? error.code : 1) : 0,
          output: `${stdout}${stderr}`,
        }),
    );
  });
}

const releaseNamespace = "gpufleet-system";
const metricsJob = "gf-gpufleet-metrics";
let workDir: string;
let promtool: string;

beforeAll(async () => {
  const helm = (await ensureClusterBinaries({ only: ["helm"] })).helm;
  promtool = (await ensurePinnedBinaries(["promtool"])).promtool;
  workDir = mkdtempSync(join(tmpdir(), "gpufleet-alerts-"));
  const rendered = await run(helm, [
    "template",
    "gf",
    join(REPO_ROOT, "charts", "gpufleet"),
    "--namespace",
    releaseNamespace,
    "--kube-version",
    readPinnedTools().versions["kube-apiserver"],
    "--set",
    "metrics.prometheusRule.enabled=true",
    "--show-only",
    "templates/prometheusrule.yaml",
  ]);
  expect(rendered.code, rendered.output).toBe(0);
  const rule = parse(rendered.output) as { kind: string; spec: { groups: unknown[] } };
  expect(rule.kind).toBe("PrometheusRule");
  // A PrometheusRule's spec is a Prometheus rule file.
  writeFileSync(join(workDir, "rules.yaml"), stringify({ groups: rule.spec.groups }));
}, 600_000);

afterAll(() => {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

const shortfallAnnotations = (namespace: string, name: string) => ({
  summary: `ModelDeployment ${namespace}/${name} has fewer ready replicas than it needs`,
  description:
    "Desired replicas have exceeded ready replicas (or CapacityShortfall was True) for 15m. Check `kubectl describe modeldeployment` and the GPU node pools' free capacity.",
});
const notReadyAnnotations = (namespace: string, name: string) => ({
  summary: `ModelDeployment ${namespace}/${name} is not Ready`,
  description: "Its Ready condition has not been True for 10m. Its conditions and events say why.",
});
const staleAnnotations = (namespace: string, name: string) => ({
  summary: `Autoscaler of ${namespace}/${name} is holding on stale metrics`,
  description:
    "The autoscaler could not read fresh engine metrics for 10m; replicas are frozen. Check the engine pods' /metrics.",
});
const scrape = `job="${metricsJob}", namespace`;

/** A ModelDeployment's desired and ready replica series, constant for 30 minutes. */
const replicaSeries = (namespace: string, name: string, desired: number, ready: number) =>
  Object.entries({ desired, ready }).map(([state, count]) => ({
    series: `gpufleet_modeldeployment_replicas{${scrape}="${namespace}", name="${name}", state="${state}"}`,
    values: `${count}x30`,
  }));

describe("alerting rules of the chart", () => {
  it("are valid Prometheus rules (promtool check rules)", async () => {
    const result = await run(promtool, ["check", "rules", join(workDir, "rules.yaml")]);
    expect(result.output).toContain("SUCCESS: 4 rules found");
    expect(result.code).toBe(0);
  });

  it("fire on shortfall, not-ready, stale metrics and operator down, and stay quiet on healthy fleets (promtool test rules)", async () => {
    const tests = {
      rule_files: ["rules.yaml"],
      evaluation_interval: "1m",
      tests: [
        {
          name: "capacity shortfall: desired > ready for 15m fires; a healthy model does not",
          interval: "1m",
          input_series: [
            ...replicaSeries("team-a", "starved", 3, 1),
            ...replicaSeries("team-a", "healthy", 2, 2),
            { series: `up{${scrape}="${releaseNamespace}"}`, values: "1x30" },
          ],
          alert_rule_test: [
            { eval_time: "10m", alertname: "GpufleetCapacityShortfall", exp_alerts: [] },
            {
              eval_time: "20m",
              alertname: "GpufleetCapacityShortfall",
              exp_alerts: [
                {
                  exp_labels: { severity: "warning", namespace: "team-a", name: "starved" },
                  exp_annotations: shortfallAnnotations("team-a", "starved"),
                },
              ],
            },
            { eval_time: "20m", alertname: "GpufleetOperatorDown", exp_alerts: [] },
          ],
        },
        {
          name: "capacity shortfall from the CapacityShortfall condition even when replicas look fine",
          interval: "1m",
          input_series: [
            {
              series: `gpufleet_modeldeployment_condition{${scrape}="team-b", name="pending", type="CapacityShortfall", status="True"}`,
              values: "1x30",
            },
          ],
          alert_rule_test: [
            {
              eval_time: "20m",
              alertname: "GpufleetCapacityShortfall",
              exp_alerts: [
                {
                  exp_labels: { severity: "warning", namespace: "team-b", name: "pending" },
                  exp_annotations: shortfallAnnotations("team-b", "pending"),
                },
              ],
            },
          ],
        },
        {
          name: "not ready: Ready condition False, or no ready replica while some are desired",
          interval: "1m",
          input_series: [
            {
              series: `gpufleet_modeldeployment_condition{${scrape}="team-a", name="broken", type="Ready", status="False"}`,
              values: "1x30",
            },
            ...replicaSeries("team-a", "down", 1, 0),
            ...replicaSeries("team-a", "scaled-to-zero", 0, 0),
          ],
          alert_rule_test: [
            {
              eval_time: "15m",
              alertname: "GpufleetModelDeploymentNotReady",
              exp_alerts: [
                {
                  exp_labels: { severity: "warning", namespace: "team-a", name: "broken" },
                  exp_annotations: notReadyAnnotations("team-a", "broken"),
                },
                {
                  exp_labels: { severity: "warning", namespace: "team-a", name: "down" },
                  exp_annotations: notReadyAnnotations("team-a", "down"),
                },
              ],
            },
          ],
        },
        {
          name: "stale metrics: holding while the KV-cache figure is frozen fires; holding on live figures does not",
          interval: "1m",
          input_series: [
            {
              series: `gpufleet_autoscaler_decisions_total{${scrape}="team-a", name="blind", direction="hold"}`,
              values: "0+1x40",
            },
            {
              series: `gpufleet_autoscaler_kv_cache_utilization{${scrape}="team-a", name="blind"}`,
              values: "0.71x40",
            },
            {
              series: `gpufleet_autoscaler_decisions_total{${scrape}="team-a", name="steady", direction="hold"}`,
              values: "0+1x40",
            },
            // Live KV-cache use under steady load: it moves every scrape.
            {
              series: `gpufleet_autoscaler_kv_cache_utilization{${scrape}="team-a", name="steady"}`,
              values:
                "0.70 0.72 0.69 0.71 0.73 0.70 0.68 0.71 0.72 0.70 0.69 0.71 0.73 0.70 0.72 0.69 0.71 0.70 0.72 0.71 0.69 0.70 0.72 0.71 0.73 0.70 0.69 0.71 0.72 0.70 0.71 0.69 0.70 0.72 0.71 0.70 0.73 0.69 0.71 0.70 0.72",
            },
            {
              series: `gpufleet_autoscaler_decisions_total{${scrape}="team-a", name="idle", direction="hold"}`,
              values: "0+1x40",
            },
            {
              series: `gpufleet_autoscaler_kv_cache_utilization{${scrape}="team-a", name="idle"}`,
              values: "0x40",
            },
          ],
          alert_rule_test: [
            // Pending while the figure has been frozen for less than 10m.
            { eval_time: "8m", alertname: "GpufleetAutoscalerStaleMetrics", exp_alerts: [] },
            {
              eval_time: "25m",
              alertname: "GpufleetAutoscalerStaleMetrics",
              exp_alerts: [
                {
                  exp_labels: { severity: "warning", namespace: "team-a", name: "blind" },
                  exp_annotations: staleAnnotations("team-a", "blind"),
                },
              ],
            },
          ],
        },
        {
          name: "operator down: every scrape of the metrics Service failing for 5m",
          interval: "1m",
          input_series: [
            { series: `up{${scrape}="${releaseNamespace}"}`, values: "1 1 1 0 0 0 0 0 0 0 0 0" },
          ],
          alert_rule_test: [
            { eval_time: "5m", alertname: "GpufleetOperatorDown", exp_alerts: [] },
            {
              eval_time: "10m",
              alertname: "GpufleetOperatorDown",
              exp_alerts: [
                {
                  exp_labels: { severity: "critical", job: metricsJob, namespace: releaseNamespace },
                  exp_annotations: {
                    summary: "No gpufleet operator pod is being scraped",
                    description:
                      "ModelDeployments are neither reconciled nor autoscaled while the operator is down.",
                  },
                },
              ],
            },
          ],
        },
        {
          name: "operator down: no operator target at all (e.g. the Deployment scaled to 0)",
          interval: "1m",
          input_series: [
            { series: `up{job="something-else", namespace="${releaseNamespace}"}`, values: "1x12" },
          ],
          alert_rule_test: [
            {
              eval_time: "10m",
              alertname: "GpufleetOperatorDown",
              exp_alerts: [
                {
                  exp_labels: { severity: "critical", job: metricsJob, namespace: releaseNamespace },
                  exp_annotations: {
                    summary: "No gpufleet operator pod is being scraped",
                    description:
                      "ModelDeployments are neither reconciled nor autoscaled while the operator is down.",
                  },
                },
              ],
            },
          ],
        },
      ],
    };
    writeFileSync(join(workDir, "rules.test.yaml"), stringify(tests));
    const result = await run(promtool, ["test", "rules", "rules.test.yaml"], workDir);
    expect(result.output).toContain("SUCCESS");
    expect(result.code, result.output).toBe(0);
  });
});
