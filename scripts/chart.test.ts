/**
 * Checks on the Helm chart (charts/gpufleet), the Dockerfile and .dockerignore that need no helm
 * binary and no cluster. test/helm-chart.test.ts proves the chart with the real helm and API server.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { Registry } from "prom-client";
import { REPO_ROOT } from "../operator/api/generate.js";
import { createOperatorMetrics } from "../operator/runtime/metrics.js";
import { createTenancyMetrics } from "../gateway/tenancy/metrics.js";

const chartDir = join(REPO_ROOT, "charts", "gpufleet");
const read = (relative: string): string => readFileSync(join(REPO_ROOT, relative), "utf8");

/**
 * The operator metrics the chart's alerts and dashboard query (operator/runtime/metrics.ts exports
 * every one of them; the test below checks).
 */
const OPERATOR_METRICS_USED_BY_CHART = [
  "gpufleet_modeldeployment_replicas", // {namespace, name, state="desired"|"ready"|"current"}
  "gpufleet_modeldeployment_condition", // {namespace, name, type, status} = 1 for the current status
  "gpufleet_autoscaler_kv_cache_utilization", // {namespace, name} 0..1
  "gpufleet_autoscaler_queue_depth", // {namespace, name}
  "gpufleet_autoscaler_ttft_within_target_ratio", // {namespace, name} 0..1
  "gpufleet_autoscaler_decisions_total", // {namespace, name, direction}
  "gpufleet_reconcile_total", // {result}
  "gpufleet_workqueue_depth",
] as const;
/** Gateway tenancy metrics (gateway/tenancy/metrics.ts) the dashboard's tenant panels query. */
const GATEWAY_METRICS_USED_BY_CHART = [
  "gpufleet_tenant_requests_total",
  "gpufleet_tenant_tokens_total",
  "gpufleet_tenant_gpu_seconds_total",
  "gpufleet_tenant_cost_usd_total",
  "gpufleet_tenant_co2_grams_total",
  "gpufleet_tenant_rejected_requests_total",
] as const;
/** Engine metrics (scraped from the engine pods, not the operator). */
const ENGINE_METRICS_USED_BY_CHART = ["vllm:time_to_first_token_seconds_bucket"];

/** gpufleet and vLLM metric names in a PromQL expression. */
function metricNames(expression: string): string[] {
  return [...new Set(expression.match(/\b(?:gpufleet_[a-z0-9_]+|vllm:[a-z0-9_:]+)/g) ?? [])];
}

interface RbacRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** The YAML list inside `{{- define "name" -}} ... {{- end }}` of templates/_rbac-rules.tpl. */
function rbacRules(defineName: string, file = "charts/gpufleet/templates/_rbac-rules.tpl"): RbacRule[] {
  const text = read(file);
  const start = text.indexOf(`{{- define "${defineName}" -}}`);
  expect(start, `define ${defineName}`).toBeGreaterThanOrEqual(0);
  const body = text.slice(text.indexOf("\n", start) + 1, text.indexOf("{{- end }}", start));
  return parse(body) as RbacRule[];
}

describe("Chart.yaml", () => {
  it("has version and appVersion equal to package.json's version", () => {
    const chart = parse(read("charts/gpufleet/Chart.yaml")) as {
      version: string;
      appVersion: string;
      apiVersion: string;
    };
    const packageVersion = (JSON.parse(read("package.json")) as { version: string }).version;
    expect(chart.apiVersion).toBe("v2");
    expect(chart.version).toBe(packageVersion);
    expect(chart.appVersion).toBe(packageVersion);
  });
});

describe("CRDs in the chart", () => {
  it("are byte-identical to crds/ (the chart ships the generated CRD, nothing else)", () => {
    const chartCrds = readdirSync(join(chartDir, "crds")).sort();
    expect(chartCrds).toEqual(readdirSync(join(REPO_ROOT, "crds")).sort());
    for (const file of chartCrds) expect(read(`charts/gpufleet/crds/${file}`)).toBe(read(`crds/${file}`));
  });
});

describe("values.yaml and values.schema.json", () => {
  const values = parse(read("charts/gpufleet/values.yaml")) as Record<string, unknown>;
  const schema = JSON.parse(read("charts/gpufleet/values.schema.json")) as {
    properties: Record<string, { description?: string }>;
    additionalProperties: boolean;
    required: string[];
  };

  it("describe the same top-level fields, and the schema refuses unknown ones", () => {
    const schemaKeys = Object.keys(schema.properties).filter((key) => key !== "global");
    expect(Object.keys(values).sort()).toEqual(schemaKeys.sort());
    expect(schema.additionalProperties).toBe(false);
    for (const key of schema.required) expect(values, key).toHaveProperty(key);
  });

  it("gives every schema property a description", () => {
    const undescribed: string[] = [];
    const walk = (node: Record<string, unknown>, path: string): void => {
      const properties = node.properties as Record<string, Record<string, unknown>> | undefined;
      for (const [name, child] of Object.entries(properties ?? {})) {
        if (typeof child.description !== "string") undescribed.push(`${path}.${name}`);
        walk(child, `${path}.${name}`);
      }
    };
    walk(schema as unknown as Record<string, unknown>, "");
    expect(undescribed).toEqual([]);
  });

  it("document every top-level field with a comment in values.yaml", () => {
    const lines = read("charts/gpufleet/values.yaml").split("\n");
    const undocumented = lines.flatMap((line, index) => {
      const key = /^([A-Za-z]\w*):/.exec(line)?.[1];
      if (!key) return [];
      // A comment directly above the key, or on the first line of its block.
      const documented = lines[index - 1]?.startsWith("#") || lines[index + 1]?.trimStart().startsWith("#");
      return documented ? [] : [key];
    });
    expect(undocumented).toEqual([]);
  });

  it("default to a hardened pod: non-root 65532, read-only root FS, no privilege escalation, no capabilities, RuntimeDefault seccomp", () => {
    expect(values.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(values.podSecurityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      seccompProfile: { type: "RuntimeDefault" },
    });
  });

  it("default to two replicas with leader election", () => {
    expect(values.replicaCount).toBe(2);
    expect(values.leaderElection).toMatchObject({ enabled: true });
  });
});

describe("operator RBAC rules (templates/_rbac-rules.tpl)", () => {
  const allRules = [
    ...rbacRules("gpufleet.rbac.workloadRules"),
    ...rbacRules("gpufleet.rbac.clusterRules"),
    ...rbacRules("gpufleet.rbac.leaderElectionRules"),
    ...rbacRules("gpufleet.rbac.metricsAuthRules"),
  ];

  it("use no wildcards, never touch Secrets, and delete only what the garbage-collector backstop removes", () => {
    expect(allRules.length).toBeGreaterThanOrEqual(10);
    for (const rule of allRules) {
      for (const field of [rule.apiGroups, rule.resources, rule.verbs]) expect(field).not.toContain("*");
      expect(rule.resources).not.toContain("secrets");
      if (rule.verbs.includes("delete")) expect(rule.resources).toEqual([expect.stringMatching(/^(deployments|services|poddisruptionbudgets|configmaps|leaderworkersets)$/)]);
      expect(rule.verbs).not.toContain("deletecollection");
    }
  });

  it("grant exactly what the operator's contract lists", () => {
    const grants = (rules: RbacRule[]): string[] =>
      rules
        .flatMap((rule) =>
          rule.resources.map(
            (resource) => `${rule.apiGroups.join(",")}/${resource}: ${rule.verbs.join(",")}`,
          ),
        )
        .sort();
    expect(grants(rbacRules("gpufleet.rbac.workloadRules"))).toEqual(
      [
        "gpufleet.io/modeldeployments: get,list,watch",
        "gpufleet.io/modeldeployments/status: patch",
        "gpufleet.io/modeldeployments/scale: patch",
        "gpufleet.io/modeldeployments/finalizers: update",
        "gpufleet.io/modelroutes: list,watch",
        "gpufleet.io/modelroutes/status: patch",
        "apps/deployments: get,list,watch,create,patch,delete",
        "/services: get,list,create,patch,delete",
        "policy/poddisruptionbudgets: get,list,create,patch,delete",
        "/pods: list,watch",
        "/configmaps: get,list,create,patch,delete",
        "apps/replicasets: list,watch",
        "apps/statefulsets: list,watch",
        "leaderworkerset.x-k8s.io/leaderworkersets: get,list,create,patch,delete",
        "events.k8s.io/events: create,patch",
        "inference.networking.k8s.io/inferencepools: create,patch",
      ].sort(),
    );
    expect(grants(rbacRules("gpufleet.rbac.clusterRules"))).toEqual(["/nodes: list,watch"]);
    expect(grants(rbacRules("gpufleet.rbac.metricsAuthRules"))).toEqual([
      "authentication.k8s.io/tokenreviews: create",
      "authorization.k8s.io/subjectaccessreviews: create",
    ]);
    expect(grants(rbacRules("gpufleet.rbac.leaderElectionRules"))).toEqual([
      "coordination.k8s.io/leases: get,create,update",
    ]);
  });

  it("explain every rule with a comment above it", () => {
    const text = read("charts/gpufleet/templates/_rbac-rules.tpl").split("\n");
    const ruleLines = text.flatMap((line, index) => (line.startsWith("- apiGroups:") ? [index] : []));
    expect(ruleLines.length).toBe(allRules.length);
    for (const index of ruleLines) expect(text[index - 1], `line ${index + 1}`).toMatch(/^# \S/);
  });
});

describe("gateway RBAC rules (templates/_gateway.tpl)", () => {
  const file = "charts/gpufleet/templates/_gateway.tpl";
  const rules = rbacRules("gpufleet.rbac.gatewayRules", file);

  it("read ModelDeployments, ModelRoutes and the pod owner chain (Deployments and LeaderWorkerSets), and patch ModelDeployments (demand annotation): nothing else", () => {
    const grants = rules
      .flatMap((rule) =>
        rule.resources.map((resource) => `${rule.apiGroups.join(",")}/${resource}: ${rule.verbs.join(",")}`),
      )
      .sort();
    expect(grants).toEqual(
      [
        "gpufleet.io/modeldeployments: list,watch,patch",
        "gpufleet.io/modelroutes: list,watch",
        "/pods: list,watch",
        "apps/deployments: list,watch",
        "apps/replicasets: list,watch",
        "apps/statefulsets: list,watch",
        "leaderworkerset.x-k8s.io/leaderworkersets: list,watch",
      ].sort(),
    );
    for (const rule of rules) {
      for (const field of [rule.apiGroups, rule.resources, rule.verbs]) expect(field).not.toContain("*");
      for (const verb of ["create", "update", "delete", "deletecollection"])
        expect(rule.verbs).not.toContain(verb);
    }
  });

  it("explain every rule with a comment above it", () => {
    const text = read(file).split("\n");
    const ruleLines = text.flatMap((line, index) => (line.startsWith("- apiGroups:") ? [index] : []));
    expect(ruleLines.length).toBe(rules.length);
    for (const index of ruleLines) expect(text[index - 1], `line ${index + 1}`).toMatch(/^# \S/);
  });

  it("run the gateway pod with the operator's hardened pod and container security contexts and its own ServiceAccount", () => {
    const deployment = read("charts/gpufleet/templates/gateway-deployment.yaml");
    expect(deployment).toContain("{{- toYaml .Values.podSecurityContext | nindent 8 }}");
    expect(deployment).toContain("{{- toYaml .Values.securityContext | nindent 12 }}");
    expect(deployment).toContain('serviceAccountName: {{ include "gpufleet.gateway.serviceAccountName" . }}');
    expect(deployment).toContain('args: ["dist/gateway/main.js"]');
  });
});

describe("monitoring templates", () => {
  it("query operator metrics that operator/runtime/metrics.ts really registers", async () => {
    const registered = createOperatorMetrics(new Registry(), { processMetrics: false })
      .registry.getMetricsAsArray()
      .map((metric) => metric.name);
    const missing = OPERATOR_METRICS_USED_BY_CHART.filter((name) => !registered.includes(name));
    expect(missing).toEqual([]);
  });

  it("query gateway tenancy metrics that gateway/tenancy/metrics.ts really registers", () => {
    const registry = new Registry();
    createTenancyMetrics(registry);
    const registered = registry.getMetricsAsArray().map((metric) => metric.name);
    expect(GATEWAY_METRICS_USED_BY_CHART.filter((name) => !registered.includes(name))).toEqual([]);
  });

  const known = new Set<string>([
    ...OPERATOR_METRICS_USED_BY_CHART,
    ...GATEWAY_METRICS_USED_BY_CHART,
    ...ENGINE_METRICS_USED_BY_CHART,
  ]);

  it("the Grafana dashboard is valid JSON with the four required panels, querying only known metrics", () => {
    const dashboard = JSON.parse(read("charts/gpufleet/dashboards/gpufleet.json")) as {
      uid: string;
      panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
    };
    expect(dashboard.uid).toBe("gpufleet-overview");
    const byTitle = new Map(
      dashboard.panels.map((panel) => [panel.title, panel.targets.map((target) => target.expr).join(" ")]),
    );
    expect(byTitle.get("KV-cache utilization")).toContain("gpufleet_autoscaler_kv_cache_utilization");
    expect(byTitle.get("Queue depth")).toContain("gpufleet_autoscaler_queue_depth");
    expect(byTitle.get("Replicas: desired vs ready")).toMatch(/state="desired".*state="ready"/s);
    expect(byTitle.get("Time to first token (vLLM)")).toContain("histogram_quantile(0.95");
    expect(byTitle.get("Time to first token (vLLM)")).toContain("vllm:time_to_first_token_seconds_bucket");
    const unknown = [...byTitle.values()].flatMap(metricNames).filter((name) => !known.has(name));
    expect(unknown).toEqual([]);
  });

  it("the alert rules query only known metrics and cover shortfall, not-ready and stale-metric holds", () => {
    const rules = read("charts/gpufleet/templates/prometheusrule.yaml");
    const expressions = [...rules.matchAll(/expr: \|\n((?: {12}.*\n)+)/g)].map((match) => match[1] ?? "");
    expect(expressions.length).toBe(4);
    const unknown = expressions.flatMap(metricNames).filter((name) => !known.has(name));
    expect(unknown).toEqual([]);
    expect(rules).toContain('gpufleet_modeldeployment_condition{type="CapacityShortfall", status="True"}');
    expect(rules).toContain('gpufleet_autoscaler_decisions_total{direction="hold"}');
    expect(rules).toContain("changes(gpufleet_autoscaler_kv_cache_utilization[10m]) == 0");
    expect(rules).toMatch(/alert: GpufleetModelDeploymentNotReady/);
  });
});

describe("Dockerfile", () => {
  const dockerfile = read("Dockerfile");

  it("builds with npm ci + tsc, installs production dependencies only, and runs node dist/operator/main.js as UID 65532", () => {
    expect(dockerfile).toMatch(/RUN npm ci --ignore-scripts/);
    expect(dockerfile).toMatch(/RUN npm run build:image/);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    expect(dockerfile).toMatch(/^USER 65532:65532$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["\/nodejs\/bin\/node"\]$/m);
    expect(dockerfile).toMatch(/^CMD \["dist\/operator\/main\.js"\]$/m);
    expect(dockerfile.match(/^FROM /gm)?.length).toBe(3);
  });

  it("gets a build context of exactly the files it copies (.dockerignore allow-list)", () => {
    const patterns = read(".dockerignore")
      .split("\n")
      .filter((line) => line !== "" && !line.startsWith("#"));
    expect(patterns).toEqual([
      "*",
      "!package.json",
      "!package-lock.json",
      "!tsconfig.json",
      "!tsconfig.build.json",
      "!operator/",
      "!gateway/",
      "!infra/carbon/",
      "!infra/placement/",
    ]);
    const normalize = (path: string): string => path.replace(/^\.\//, "").replace(/\/$/, "");
    const allowed = patterns
      .filter((pattern) => pattern.startsWith("!"))
      .map((pattern) => normalize(pattern.slice(1)));
    const copied = [...dockerfile.matchAll(/^COPY (?!--from)(?:--\S+ )*(.+) \S+$/gm)].flatMap((match) =>
      (match[1] ?? "").split(" "),
    );
    expect([...new Set(copied.map(normalize))].sort()).toEqual([...allowed].sort());
  });
});
