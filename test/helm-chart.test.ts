/**
 * The Helm chart proven with the real `helm` (built from tools/helm/go.mod) and the real API server
 * of the shared local cluster: lint, render over a matrix of values, schema refusals, CRDs,
 * install/upgrade/uninstall, and the operator's RBAC checked as the chart's ServiceAccount itself.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ApiextensionsV1Api,
  AppsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  CoordinationV1Api,
  PolicyV1Api,
  RbacAuthorizationV1Api,
  type KubeConfig,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { REPO_ROOT } from "../operator/api/generate.js";
import { loadHourlyCarbonData } from "../infra/carbon/hourly-data.js";
import { buildRegionCarbonBundle, parseRegionCarbonBundle } from "../infra/carbon/region-data.js";
import { loadStaticCarbonTables } from "../infra/carbon/static-data.js";
import { ensureClusterBinaries, readPinnedTools } from "../tools/binaries.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { runHelm, runHelmOk, type HelmResult } from "./support/helm.js";
import { serviceAccountKubeconfig } from "./support/serviceaccount-kubeconfig.js";

const chartPath = join(REPO_ROOT, "charts", "gpufleet");
/** Render for the Kubernetes version the local cluster runs (helm built without ldflags defaults to 1.20). */
const kubeVersion = readPinnedTools().versions["kube-apiserver"];

let helmBinary: string;
let helmHome: string;
let kubeConfig: KubeConfig;
let kubeconfigPath: string;

function helm(args: string[], timeoutMs?: number): Promise<HelmResult> {
  return runHelm(helmBinary, args, {
    home: helmHome,
    kubeconfig: kubeconfigPath,
    ...(timeoutMs ? { timeoutMs } : {}),
  });
}

function helmOk(args: string[], timeoutMs?: number): Promise<string> {
  return runHelmOk(helmBinary, args, {
    home: helmHome,
    kubeconfig: kubeconfigPath,
    ...(timeoutMs ? { timeoutMs } : {}),
  });
}

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

interface RbacRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
}

function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((document) => document.toJS() as K8sObject | null)
    .filter((object): object is K8sObject => object !== null);
}

async function render(setArgs: string[], namespace = "gpufleet-system"): Promise<K8sObject[]> {
  return parseManifests(
    await helmOk([
      "template",
      "gf",
      chartPath,
      "--namespace",
      namespace,
      "--kube-version",
      kubeVersion,
      ...setArgs,
    ]),
  );
}

function only(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const matches = objects.filter(
    (object) => object.kind === kind && (name === undefined || object.metadata.name === name),
  );
  expect(matches, `${kind} ${name ?? ""}`).toHaveLength(1);
  return matches[0]!;
}

interface OperatorContainer {
  env: Array<{ name: string; value?: string }>;
  securityContext: Record<string, unknown>;
  startupProbe: { httpGet: { path: string; port: string } };
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  ports: Array<{ name: string; containerPort: number }>;
}

function operatorContainer(objects: K8sObject[]): OperatorContainer {
  const deployment = only(objects, "Deployment", "gf-gpufleet") as unknown as {
    spec: { template: { spec: { containers: OperatorContainer[] } } };
  };
  return deployment.spec.template.spec.containers[0]!;
}

function envOf(container: OperatorContainer): Record<string, string | undefined> {
  return Object.fromEntries(container.env.map((variable) => [variable.name, variable.value]));
}

/** `can(verb, group, resource, namespace?, subresource?)`: a SelfSubjectAccessReview as `identity`. */
function accessReviewer(identity: KubeConfig) {
  const authorization = identity.makeApiClient(AuthorizationV1Api);
  return async (
    verb: string,
    group: string,
    resource: string,
    namespace?: string,
    subresource?: string,
  ): Promise<boolean> => {
    const review = await authorization.createSelfSubjectAccessReview({
      body: {
        spec: {
          resourceAttributes: {
            verb,
            group,
            resource,
            ...(namespace ? { namespace } : {}),
            ...(subresource ? { subresource } : {}),
          },
        },
      },
    });
    return review.status?.allowed === true;
  };
}

const VALUE_MATRIX: Record<string, string[]> = {
  defaults: [],
  watchNamespaces: ["--set", "watchNamespaces={team-a,team-b}"],
  monitoring: [
    "--set",
    "metrics.serviceMonitor.enabled=true,metrics.prometheusRule.enabled=true,metrics.enginePodMonitor.enabled=true,grafanaDashboard.enabled=true",
  ],
  singleReplicaNoLeaderElection: ["--set", "replicaCount=1,leaderElection.enabled=false"],
};

beforeAll(async () => {
  helmBinary = (await ensureClusterBinaries({ only: ["helm"] })).helm;
  helmHome = mkdtempSync(join(tmpdir(), "gpufleet-helm-home-"));
  kubeConfig = testKubeConfig();
  kubeconfigPath = join(helmHome, "admin.kubeconfig");
  // helm reads the admin kubeconfig from a file of its own (0600), not the shared one.
  writeFileSync(kubeconfigPath, kubeConfig.exportConfig(), { mode: 0o600 });
}, 600_000);

afterAll(() => {
  if (helmHome) rmSync(helmHome, { recursive: true, force: true });
});

describe("helm lint and template", () => {
  it.each(Object.entries(VALUE_MATRIX))("lints --strict with %s values", async (_name, setArgs) => {
    const result = await helm(["lint", "--strict", chartPath, "--kube-version", kubeVersion, ...setArgs]);
    expect(result.stderr + result.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("1 chart(s) linted, 0 chart(s) failed");
  });

  it("renders defaults: 2 leader-elected replicas, hardened pod, probes on the ops port, cluster-wide workload RBAC, a PDB", async () => {
    const objects = await render([]);
    const deployment = only(objects, "Deployment", "gf-gpufleet") as unknown as {
      spec: {
        replicas: number;
        template: {
          spec: {
            securityContext: Record<string, unknown>;
            topologySpreadConstraints: Array<{ topologyKey: string }>;
          };
        };
      };
    };
    expect(deployment.spec.replicas).toBe(2);
    const container = operatorContainer(objects);
    expect(envOf(container)).toMatchObject({
      GPUFLEET_LEADER_ELECT: "true",
      GPUFLEET_LEASE_NAMESPACE: "gpufleet-system",
      GPUFLEET_LEASE_NAME: "gpufleet-operator",
      // Cluster-wide is an explicit choice (watchAllNamespaces): by default, the release namespace.
      GPUFLEET_WATCH_NAMESPACES: "gpufleet-system",
      GPUFLEET_METRICS_AUTH: "true",
      GPUFLEET_OPS_PORT: "8081",
    });
    expect(container.env.map((variable) => variable.name)).toEqual(
      expect.arrayContaining(["POD_NAME", "POD_NAMESPACE"]),
    );
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(container.ports).toEqual([{ name: "http-ops", containerPort: 8081, protocol: "TCP" }]);
    expect(container.startupProbe.httpGet).toEqual({ path: "/healthz", port: "http-ops" });
    expect(container.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "http-ops" });
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "http-ops" });
    expect(
      deployment.spec.template.spec.topologySpreadConstraints.map((constraint) => constraint.topologyKey),
    ).toEqual(["kubernetes.io/hostname", "topology.kubernetes.io/zone"]);
    expect(objects.some((object) => object.kind === "ClusterRoleBinding" && object.metadata.name === "gf-gpufleet-workloads")).toBe(false);
    expect(only(objects, "Role", "gf-gpufleet-workloads").metadata.namespace).toBe("gpufleet-system");
    expect(only(objects, "NetworkPolicy")).toMatchObject({ spec: { policyTypes: ["Ingress"], ingress: [{ ports: [{ port: "http-ops" }] }] } });
    expect(only(objects, "ClusterRole", "gf-gpufleet-metrics-reader")).toMatchObject({ rules: [{ nonResourceURLs: ["/metrics"], verbs: ["get"] }] });
    expect(only(objects, "Role", "gf-gpufleet-leader-election").metadata.namespace).toBe("gpufleet-system");
    expect(only(objects, "PodDisruptionBudget", "gf-gpufleet")).toMatchObject({ spec: { minAvailable: 1 } });
    expect(only(objects, "Service", "gf-gpufleet-metrics")).toMatchObject({
      spec: { ports: [{ name: "http-ops", port: 8081, targetPort: "http-ops" }] },
    });
    expect(objects.some((object) => object.apiVersion.startsWith("monitoring.coreos.com"))).toBe(false);
  });

  it("grants the namespaced rules cluster-wide only with watchAllNamespaces=true", async () => {
    const objects = await render(["--set", "watchAllNamespaces=true"]);
    expect(envOf(operatorContainer(objects)).GPUFLEET_WATCH_NAMESPACES).toBe("");
    expect(only(objects, "ClusterRoleBinding", "gf-gpufleet-workloads")).toBeDefined();
  });

  it("renders watchNamespaces as Roles in each watched namespace and binds only the Nodes ClusterRole cluster-wide", async () => {
    const objects = await render(VALUE_MATRIX.watchNamespaces!);
    expect(envOf(operatorContainer(objects)).GPUFLEET_WATCH_NAMESPACES).toBe("team-a,team-b");
    const workloadRoles = objects.filter(
      (object) => object.kind === "Role" && object.metadata.name === "gf-gpufleet-workloads",
    );
    expect(workloadRoles.map((role) => role.metadata.namespace).sort()).toEqual(["team-a", "team-b"]);
    const roleBindings = objects.filter(
      (object) => object.kind === "RoleBinding" && object.metadata.name === "gf-gpufleet-workloads",
    );
    expect(roleBindings.map((binding) => binding.metadata.namespace).sort()).toEqual(["team-a", "team-b"]);
    const clusterBindings = objects.filter((object) => object.kind === "ClusterRoleBinding");
    expect(
      clusterBindings.map((binding) => (binding as unknown as { roleRef: { name: string } }).roleRef.name).sort(),
    ).toEqual(["gf-gpufleet-metrics-auth", "gf-gpufleet-nodes"]); // TokenReview/SubjectAccessReview are cluster-scoped
    const nodesRole = only(objects, "ClusterRole", "gf-gpufleet-nodes") as unknown as { rules: RbacRule[] };
    expect(nodesRole.rules).toEqual([
      { apiGroups: [""], resources: ["nodes"], verbs: ["list", "watch"] },
    ]);
  });

  it("renders monitoring: ServiceMonitor on the ops port, PodMonitor, PrometheusRule with 4 alerts, and a JSON dashboard ConfigMap", async () => {
    const objects = await render(VALUE_MATRIX.monitoring!);
    expect(only(objects, "ServiceMonitor")).toMatchObject({
      spec: { endpoints: [{ port: "http-ops", path: "/metrics", honorLabels: true }] },
    });
    expect(only(objects, "PodMonitor")).toMatchObject({ spec: { namespaceSelector: { matchNames: ["gpufleet-system"] } } });
    const rule = only(objects, "PrometheusRule") as unknown as {
      spec: { groups: Array<{ rules: Array<{ alert: string; for: string }> }> };
    };
    expect(rule.spec.groups[0]!.rules.map((alert) => `${alert.alert} ${alert.for}`)).toEqual([
      "GpufleetCapacityShortfall 15m",
      "GpufleetModelDeploymentNotReady 10m",
      "GpufleetAutoscalerStaleMetrics 10m",
      "GpufleetOperatorDown 5m",
    ]);
    const dashboard = only(objects, "ConfigMap", "gf-gpufleet-dashboard") as unknown as {
      metadata: { labels: Record<string, string> };
      data: Record<string, string>;
    };
    expect(dashboard.metadata.labels.grafana_dashboard).toBe("1");
    expect(JSON.parse(dashboard.data["gpufleet.json"]!)).toMatchObject({ uid: "gpufleet-overview" });
  });

  it("renders one replica without leader election: no Lease Role, no PDB", async () => {
    const objects = await render(VALUE_MATRIX.singleReplicaNoLeaderElection!);
    expect(
      (only(objects, "Deployment", "gf-gpufleet") as unknown as { spec: { replicas: number } }).spec.replicas,
    ).toBe(1);
    expect(envOf(operatorContainer(objects)).GPUFLEET_LEADER_ELECT).toBe("false");
    expect(objects.filter((object) => object.metadata.name.endsWith("-leader-election"))).toEqual([]);
    expect(
      objects.filter((object) => object.kind === "PodDisruptionBudget").map((pdb) => pdb.metadata.name),
    ).toEqual(["gf-gpufleet-gateway"]);
  });

  it("renders the gateway: 2 hardened replicas with their own ServiceAccount, a Service, a PDB, read-mostly RBAC, no HPA", async () => {
    const objects = await render(["--set", "watchAllNamespaces=true"]) // cluster-wide: ClusterRole + binding;
    const deployment = only(objects, "Deployment", "gf-gpufleet-gateway") as unknown as {
      spec: {
        replicas: number;
        template: {
          metadata: { labels: Record<string, string> };
          spec: {
            serviceAccountName: string;
            securityContext: Record<string, unknown>;
            containers: Array<OperatorContainer & { args: string[]; image: string }>;
          };
        };
      };
    };
    expect(deployment.spec.replicas).toBe(2);
    const pod = deployment.spec.template.spec;
    expect(pod.serviceAccountName).toBe("gf-gpufleet-gateway");
    expect(deployment.spec.template.metadata.labels["app.kubernetes.io/component"]).toBe("gateway");
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      seccompProfile: { type: "RuntimeDefault" },
    });
    const container = pod.containers[0]!;
    expect(container.args).toEqual(["dist/gateway/main.js"]);
    // The same image as the operator (it holds both programs).
    const operator = only(objects, "Deployment", "gf-gpufleet") as unknown as {
      spec: { template: { spec: { containers: Array<{ image: string }> } } };
    };
    expect(container.image).toBe(operator.spec.template.spec.containers[0]!.image);
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(container.ports.map((port) => `${port.name}:${port.containerPort}`)).toEqual([
      "http:8080",
      "http-ops:8082",
    ]);
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "http-ops" });
    expect(envOf(container)).toMatchObject({
      GPUFLEET_GATEWAY_PORT: "8080",
      GPUFLEET_GATEWAY_OPS_PORT: "8082",
      GPUFLEET_GATEWAY_WATCH_NAMESPACES: "",
      GPUFLEET_GATEWAY_HOLD_TIMEOUT_SECONDS: "120",
      GPUFLEET_GATEWAY_MAX_BODY_BYTES: "8388608",
      GPUFLEET_GATEWAY_PREFILL_BUDGET_SHARE: "0.5",
    });
    expect(container.env.map((variable) => variable.name)).toContain("POD_NAME");
    expect(only(objects, "ServiceAccount", "gf-gpufleet-gateway")).toBeDefined();
    expect(only(objects, "Service", "gf-gpufleet-gateway")).toMatchObject({
      spec: {
        selector: { "app.kubernetes.io/component": "gateway" },
        ports: [
          { name: "http", port: 80, targetPort: "http" },
          { name: "http-ops", port: 8082, targetPort: "http-ops" },
        ],
      },
    });
    expect(only(objects, "PodDisruptionBudget", "gf-gpufleet-gateway")).toMatchObject({
      spec: { minAvailable: 1 },
    });
    const role = only(objects, "ClusterRole", "gf-gpufleet-gateway") as unknown as { rules: RbacRule[] };
    expect(role.rules).toEqual([
      {
        apiGroups: ["gpufleet.io"],
        resources: ["modeldeployments"],
        verbs: ["list", "watch", "patch"],
      },
      { apiGroups: ["gpufleet.io"], resources: ["modelroutes"], verbs: ["list", "watch"] },
      { apiGroups: [""], resources: ["pods"], verbs: ["list", "watch"] },
      { apiGroups: ["apps"], resources: ["deployments", "replicasets"], verbs: ["list", "watch"] },
      { apiGroups: ["apps"], resources: ["statefulsets"], verbs: ["list", "watch"] },
      { apiGroups: ["leaderworkerset.x-k8s.io"], resources: ["leaderworkersets"], verbs: ["list", "watch"] },
    ]);
    expect(only(objects, "ClusterRoleBinding", "gf-gpufleet-gateway")).toMatchObject({
      subjects: [{ kind: "ServiceAccount", name: "gf-gpufleet-gateway", namespace: "gpufleet-system" }],
    });
    expect(objects.filter((object) => object.kind === "HorizontalPodAutoscaler")).toEqual([]);
  });

  it("renders the gateway's HPA on CPU instead of a fixed replica count, Roles per watched namespace, or nothing when disabled", async () => {
    const scaled = await render([
      "--set",
      "gateway.autoscaling.enabled=true,gateway.autoscaling.maxReplicas=6",
    ]);
    expect(
      (only(scaled, "Deployment", "gf-gpufleet-gateway") as unknown as { spec: { replicas?: number } }).spec
        .replicas,
    ).toBeUndefined();
    expect(only(scaled, "HorizontalPodAutoscaler", "gf-gpufleet-gateway")).toMatchObject({
      spec: {
        scaleTargetRef: { kind: "Deployment", name: "gf-gpufleet-gateway" },
        minReplicas: 2,
        maxReplicas: 6,
        metrics: [
          {
            type: "Resource",
            resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 70 } },
          },
        ],
      },
    });
    const namespaced = await render(VALUE_MATRIX.watchNamespaces!);
    expect(
      namespaced
        .filter((o) => o.kind === "Role" && o.metadata.name === "gf-gpufleet-gateway")
        .map((o) => o.metadata.namespace),
    ).toEqual(["team-a", "team-b"]);
    expect(
      namespaced.filter((o) => o.kind === "ClusterRole" && o.metadata.name === "gf-gpufleet-gateway"),
    ).toEqual([]);
    const disabled = await render(["--set", "gateway.enabled=false"]);
    expect(disabled.filter((o) => o.metadata.name.startsWith("gf-gpufleet-gateway"))).toEqual([]);
  });

  it("mounts region routing's carbon data from a ConfigMap (the image holds no shared data), bounded by the schema", async () => {
    const dir = mkdtempSync(join(tmpdir(), "helm-carbon-"));
    const file = join(dir, "carbon.json");
    const bundle = buildRegionCarbonBundle({
      cloud: "gcp",
      regions: ["europe-north1", "us-east4"],
      from: "us-east4",
      tables: loadStaticCarbonTables(),
      hourly: loadHourlyCarbonData(),
      rttMs: (_a, b) => ({ "europe-north1": 103, "us-east4": 0 })[b],
    });
    writeFileSync(file, JSON.stringify(bundle));
    const on = ["--set", "gateway.regionRouting.region=us-east4"];
    const objects = await render([...on, "--set-file", `gateway.regionRouting.carbonData=${file}`]);
    const configMap = only(objects, "ConfigMap", "gf-gpufleet-gateway-carbon") as unknown as { data: Record<string, string> };
    // What the gateway reads back is the bundle, whole, and it parses.
    expect(JSON.parse(configMap.data["carbon.json"] ?? "")).toEqual(bundle);
    expect(parseRegionCarbonBundle(configMap.data["carbon.json"] ?? "").hourly?.zones()).toEqual(["US-MIDA-PJM"]);
    const pod = (only(objects, "Deployment", "gf-gpufleet-gateway") as unknown as {
      spec: { template: { spec: { containers: Array<{ env: Array<{ name: string; value?: string }>; volumeMounts?: unknown[] }>; volumes?: unknown[] } } };
    }).spec.template.spec;
    expect(pod.containers[0]?.env.find((e) => e.name === "GPUFLEET_GATEWAY_CARBON_DATA")?.value).toBe("/etc/gpufleet/carbon/carbon.json");
    expect(pod.containers[0]?.volumeMounts).toEqual([{ name: "carbon-data", mountPath: "/etc/gpufleet/carbon", readOnly: true }]);
    expect(pod.volumes).toEqual([{ name: "carbon-data", configMap: { name: "gf-gpufleet-gateway-carbon" } }]);
    // Without the data: no ConfigMap and no variable (the gateway then refuses to start, naming it).
    const without = await render(on);
    expect(without.filter((o) => o.kind === "ConfigMap" && o.metadata.name.endsWith("-carbon"))).toEqual([]);
    expect(JSON.stringify(without)).not.toContain("GPUFLEET_GATEWAY_CARBON_DATA");
    writeFileSync(file, "x".repeat(1_000_001));
    const tooBig = await helm(["template", "gf", chartPath, "--kube-version", kubeVersion, ...on, "--set-file", `gateway.regionRouting.carbonData=${file}`]);
    expect(tooBig.code).not.toBe(0);
    expect(tooBig.stderr).toContain("at '/gateway/regionRouting/carbonData': maxLength");
  });

  it("grants no wildcard and no Secrets in any role of any value combination", async () => {
    for (const [name, setArgs] of Object.entries(VALUE_MATRIX)) {
      const roles = (await render(setArgs)).filter(
        (object) => object.kind === "Role" || object.kind === "ClusterRole",
      );
      expect(roles.length, name).toBeGreaterThanOrEqual(2);
      for (const role of roles) {
        for (const rule of (role as unknown as { rules: RbacRule[] }).rules) {
          const fields = [...(rule.apiGroups ?? []), ...(rule.resources ?? []), ...rule.verbs];
          expect(fields, `${name}: ${role.kind} ${role.metadata.name}`).not.toContain("*");
          expect(rule.resources ?? [], `${name}: ${role.kind} ${role.metadata.name}`).not.toContain(
            "secrets",
          );
        }
      }
    }
  });

  it("grants Secrets only as `get` in the namespaces listed in hub.tenantTokenNamespaces, and says so to the operator", async () => {
    const objects = await render(["--set", "hub.endpoint=https://huggingface.co,hub.tenantTokenNamespaces={team-a}"]);
    const withSecrets = objects
      .filter((object) => object.kind === "Role" || object.kind === "ClusterRole")
      .filter((role) =>
        (role as unknown as { rules: RbacRule[] }).rules.some((rule) => (rule.resources ?? []).includes("secrets")),
      );
    expect(withSecrets.map((role) => `${role.kind} ${role.metadata.namespace}`)).toEqual(["Role team-a"]);
    expect((withSecrets[0] as unknown as { rules: RbacRule[] }).rules).toEqual([
      { apiGroups: [""], resources: ["secrets"], verbs: ["get"] },
    ]);
    const operator = objects.find((object) => object.kind === "Deployment" && !object.metadata.name.endsWith("-gateway"));
    const env = (operator as unknown as { spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } } })
      .spec.template.spec.containers[0]?.env;
    expect(env).toEqual(
      expect.arrayContaining([
        { name: "GPUFLEET_TENANT_TOKENS", value: "true" },
        { name: "GPUFLEET_HF_ENDPOINT", value: "https://huggingface.co" },
      ]),
    );
  });

  it("ships exactly the generated CRDs (helm show crds equals crds/)", async () => {
    const byName = (a: { metadata: { name: string } }, b: { metadata: { name: string } }) =>
      a.metadata.name.localeCompare(b.metadata.name);
    const shown = parseManifests(await helmOk(["show", "crds", chartPath])).sort(byName);
    const generated = readdirSync(join(REPO_ROOT, "crds"))
      .filter((file) => file.endsWith(".yaml"))
      .flatMap((file) => parseManifests(readFileSync(join(REPO_ROOT, "crds", file), "utf8")))
      .sort(byName);
    expect(generated.length).toBeGreaterThanOrEqual(2);
    expect(shown).toEqual(generated);
  });
});

describe("values.schema.json refuses bad values at install time", () => {
  it.each([
    ["replicaCount=2,leaderElection.enabled=false", "at '/leaderElection/enabled': value must be true"],
    ["replicaCount=0", "at '/replicaCount': minimum: got 0, want 1"],
    ["replicaCount=two", "at '/replicaCount': got string, want integer"],
    [
      "operator.logLevel=loud",
      "at '/operator/logLevel': value must be one of 'fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'",
    ],
    ["operator.concurrency=100", "at '/operator/concurrency': maximum: got 100, want 64"],
    [
      "image.pullPolicy=Sometimes",
      "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
    ],
    ["watchNamespaces={Team_A}", "at '/watchNamespaces/0': 'Team_A' does not match pattern"],
    ["serviceAccount.create=false", "at '/serviceAccount/name': minLength: got 0, want 1"],
    [
      "metrics.prometheusRule.capacityShortfallFor=soon",
      "at '/metrics/prometheusRule/capacityShortfallFor': 'soon' does not match pattern",
    ],
    ["replicas=3", "additional properties 'replicas' not allowed"],
    ["gateway.replicaCount=0", "at '/gateway/replicaCount': minimum: got 0, want 1"],
    ["gateway.hold.timeoutSeconds=-1", "at '/gateway/hold/timeoutSeconds': minimum: got -1, want 0"],
    ["gateway.maxBodyBytes=10", "at '/gateway/maxBodyBytes': minimum: got 10, want 1,024"],
  ])("--set %s", async (setValue, message) => {
    const result = await helm([
      "template",
      "gf",
      chartPath,
      "--kube-version",
      kubeVersion,
      "--set",
      setValue,
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("values don't meet the specifications of the schema(s)");
    expect(result.stderr).toContain(message);
  });
});

describe("helm install, upgrade and uninstall against the real API server", () => {
  let releaseNamespace: TestNamespace;
  let watchedNamespace: TestNamespace;
  let unwatchedNamespace: TestNamespace;
  const release = "gpufleet";
  const fullname = "gpufleet"; // the release name contains the chart name

  beforeAll(async () => {
    releaseNamespace = await uniqueNamespace(kubeConfig, "helm-release");
    watchedNamespace = await uniqueNamespace(kubeConfig, "helm-watched");
    unwatchedNamespace = await uniqueNamespace(kubeConfig, "helm-unwatched");
  }, 120_000);

  afterAll(async () => {
    await helm(["uninstall", release, "--namespace", releaseNamespace.name, "--ignore-not-found"]);
    for (const namespace of [releaseNamespace, watchedNamespace, unwatchedNamespace])
      await namespace?.delete();
  });

  it("installs: every rendered object is accepted and the operator pods come up on the system node", async () => {
    await helmOk(
      [
        "install",
        release,
        chartPath,
        "--namespace",
        releaseNamespace.name,
        "--set",
        `watchNamespaces={${watchedNamespace.name}}`,
        "--wait",
        "--timeout",
        "120s",
      ],
      180_000,
    );
    const apps = kubeConfig.makeApiClient(AppsV1Api);
    const deployment = await apps.readNamespacedDeployment({
      name: fullname,
      namespace: releaseNamespace.name,
    });
    expect(deployment.spec?.replicas).toBe(2);
    expect(deployment.status?.readyReplicas).toBe(2); // KWOK fakes the pods Ready
    const core = kubeConfig.makeApiClient(CoreV1Api);
    await core.readNamespacedServiceAccount({ name: fullname, namespace: releaseNamespace.name });
    await core.readNamespacedService({ name: `${fullname}-metrics`, namespace: releaseNamespace.name });
    await kubeConfig
      .makeApiClient(PolicyV1Api)
      .readNamespacedPodDisruptionBudget({ name: fullname, namespace: releaseNamespace.name });
    const rbac = kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    await rbac.readNamespacedRole({ name: `${fullname}-workloads`, namespace: watchedNamespace.name });
    await rbac.readClusterRole({ name: `${fullname}-nodes` });
    const status = await helmOk(["status", release, "--namespace", releaseNamespace.name]);
    expect(status).toContain("STATUS: deployed");
    expect(status).toContain("Helm does not upgrade CRDs"); // NOTES.txt
  });

  it("grants the chart's ServiceAccount exactly the operator's permissions, checked with its own TokenRequest token", async () => {
    const serviceAccount = await serviceAccountKubeconfig(kubeConfig, releaseNamespace.name, fullname);
    expect(serviceAccount.username).toBe(`system:serviceaccount:${releaseNamespace.name}:${fullname}`);
    const can = accessReviewer(serviceAccount.kubeConfig);
    const watched = watchedNamespace.name;
    const expectations: Array<[string, boolean, () => Promise<boolean>]> = [
      [
        "watch modeldeployments in the watched namespace",
        true,
        () => can("watch", "gpufleet.io", "modeldeployments", watched),
      ],
      [
        "patch modeldeployments/status",
        true,
        () => can("patch", "gpufleet.io", "modeldeployments", watched, "status"),
      ],
      [
        "patch modeldeployments/scale",
        true,
        () => can("patch", "gpufleet.io", "modeldeployments", watched, "scale"),
      ],
      [
        "update modeldeployments/scale (unused: the autoscaler patches)",
        false,
        () => can("update", "gpufleet.io", "modeldeployments", watched, "scale"),
      ],
      [
        "patch modeldeployments (unused: no finalizer)",
        false,
        () => can("patch", "gpufleet.io", "modeldeployments", watched),
      ],
      [
        "update modeldeployments/finalizers",
        true,
        () => can("update", "gpufleet.io", "modeldeployments", watched, "finalizers"),
      ],
      ["create deployments", true, () => can("create", "apps", "deployments", watched)],
      ["create events", true, () => can("create", "events.k8s.io", "events", watched)],
      ["list nodes (cluster-scoped)", true, () => can("list", "", "nodes")],
      [
        "update the Lease in the release namespace",
        true,
        () => can("update", "coordination.k8s.io", "leases", releaseNamespace.name),
      ],
      [
        "list modeldeployments in an unwatched namespace",
        false,
        () => can("list", "gpufleet.io", "modeldeployments", unwatchedNamespace.name),
      ],
      ["list modeldeployments cluster-wide", false, () => can("list", "gpufleet.io", "modeldeployments")],
      ["get secrets in the watched namespace", false, () => can("get", "", "secrets", watched)],
      ["delete deployments (the orphan backstop)", true, () => can("delete", "apps", "deployments", watched)],
      ["delete deployments in an unwatched namespace", false, () => can("delete", "apps", "deployments", unwatchedNamespace.name)],
      ["watch services (unused: read by name)", false, () => can("watch", "", "services", watched)],
      ["create modeldeployments", false, () => can("create", "gpufleet.io", "modeldeployments", watched)],
      [
        "update leases in the watched namespace",
        false,
        () => can("update", "coordination.k8s.io", "leases", watched),
      ],
      ["patch nodes", false, () => can("patch", "", "nodes")],
    ];
    const verdicts: string[] = [];
    for (const [action, _expected, check] of expectations) verdicts.push(`${action}: ${await check()}`);
    expect(verdicts).toEqual(expectations.map(([action, expected]) => `${action}: ${expected}`));
    // And a real call with the token: the Lease API answers (404 = allowed but absent), secrets are 403.
    const leases = serviceAccount.kubeConfig.makeApiClient(CoordinationV1Api);
    const leaseRead = await leases
      .readNamespacedLease({ name: "gpufleet-operator", namespace: releaseNamespace.name })
      .then(
        () => 200,
        (error: { code?: number }) => error.code,
      );
    expect([200, 404]).toContain(leaseRead);
    const secretsRead = await serviceAccount.kubeConfig
      .makeApiClient(CoreV1Api)
      .listNamespacedSecret({ namespace: watched })
      .then(
        () => 200,
        (error: { code?: number }) => error.code,
      );
    expect(secretsRead).toBe(403);
  });

  it("runs the gateway with its own ServiceAccount, allowed to read what it routes to and patch ModelDeployments, nothing more", async () => {
    const apps = kubeConfig.makeApiClient(AppsV1Api);
    const gateway = await apps.readNamespacedDeployment({
      name: `${fullname}-gateway`,
      namespace: releaseNamespace.name,
    });
    expect(gateway.spec?.replicas).toBe(2);
    expect(gateway.status?.readyReplicas).toBe(2);
    const serviceAccount = await serviceAccountKubeconfig(
      kubeConfig,
      releaseNamespace.name,
      `${fullname}-gateway`,
    );
    const can = accessReviewer(serviceAccount.kubeConfig);
    const watched = watchedNamespace.name;
    const expectations: Array<[string, boolean, () => Promise<boolean>]> = [
      ["watch modeldeployments", true, () => can("watch", "gpufleet.io", "modeldeployments", watched)],
      [
        "patch modeldeployments (demand annotation)",
        true,
        () => can("patch", "gpufleet.io", "modeldeployments", watched),
      ],
      ["watch pods", true, () => can("watch", "", "pods", watched)],
      ["watch replicasets", true, () => can("watch", "apps", "replicasets", watched)],
      ["watch deployments", true, () => can("watch", "apps", "deployments", watched)],
      [
        "patch modeldeployments/status",
        false,
        () => can("patch", "gpufleet.io", "modeldeployments", watched, "status"),
      ],
      [
        "update modeldeployments/scale",
        false,
        () => can("update", "gpufleet.io", "modeldeployments", watched, "scale"),
      ],
      ["create modeldeployments", false, () => can("create", "gpufleet.io", "modeldeployments", watched)],
      ["patch deployments", false, () => can("patch", "apps", "deployments", watched)],
      ["create pods", false, () => can("create", "", "pods", watched)],
      ["get secrets", false, () => can("get", "", "secrets", watched)],
      ["list nodes", false, () => can("list", "", "nodes")],
      [
        "list modeldeployments in an unwatched namespace",
        false,
        () => can("list", "gpufleet.io", "modeldeployments", unwatchedNamespace.name),
      ],
      ["update leases", false, () => can("update", "coordination.k8s.io", "leases", releaseNamespace.name)],
    ];
    const verdicts: string[] = [];
    for (const [action, _expected, check] of expectations) verdicts.push(`${action}: ${await check()}`);
    expect(verdicts).toEqual(expectations.map(([action, expected]) => `${action}: ${expected}`));
  });

  it("upgrades to one replica without leader election: the Deployment shrinks and the Lease Role goes away", async () => {
    await helmOk(
      [
        "upgrade",
        release,
        chartPath,
        "--namespace",
        releaseNamespace.name,
        "--reuse-values",
        "--set",
        "replicaCount=1,leaderElection.enabled=false",
        "--wait",
        "--timeout",
        "120s",
      ],
      180_000,
    );
    const apps = kubeConfig.makeApiClient(AppsV1Api);
    const deployment = await apps.readNamespacedDeployment({
      name: fullname,
      namespace: releaseNamespace.name,
    });
    expect(deployment.spec?.replicas).toBe(1);
    const leaderElect = deployment.spec?.template.spec?.containers[0]?.env?.find(
      (variable) => variable.name === "GPUFLEET_LEADER_ELECT",
    );
    expect(leaderElect?.value).toBe("false");
    const roleGone = await kubeConfig
      .makeApiClient(RbacAuthorizationV1Api)
      .readNamespacedRole({ name: `${fullname}-leader-election`, namespace: releaseNamespace.name })
      .then(
        () => 200,
        (error: { code?: number }) => error.code,
      );
    expect(roleGone).toBe(404);
    const history = await helmOk(["history", release, "--namespace", releaseNamespace.name, "-o", "json"]);
    expect(
      (JSON.parse(history) as Array<{ revision: number; status: string }>).map(
        (entry) => `${entry.revision} ${entry.status}`,
      ),
    ).toEqual(["1 superseded", "2 deployed"]);
  });

  it("uninstalls every object it created but keeps the CRD (and so every ModelDeployment)", async () => {
    await helmOk(
      ["uninstall", release, "--namespace", releaseNamespace.name, "--wait", "--timeout", "120s"],
      180_000,
    );
    const rbac = kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    const status = (promise: Promise<unknown>): Promise<number | undefined> =>
      promise.then(
        () => 200,
        (error: { code?: number }) => error.code,
      );
    expect(await status(rbac.readClusterRole({ name: `${fullname}-nodes` }))).toBe(404);
    expect(
      await status(
        rbac.readNamespacedRole({ name: `${fullname}-workloads`, namespace: watchedNamespace.name }),
      ),
    ).toBe(404);
    await waitFor(
      async () =>
        (await status(
          kubeConfig
            .makeApiClient(AppsV1Api)
            .readNamespacedDeployment({ name: fullname, namespace: releaseNamespace.name }),
        )) === 404,
      { timeoutMs: 60_000, description: "operator Deployment deleted" },
    );
    const crd = await kubeConfig
      .makeApiClient(ApiextensionsV1Api)
      .readCustomResourceDefinition({ name: "modeldeployments.gpufleet.io" });
    expect(crd.metadata?.name).toBe("modeldeployments.gpufleet.io");
  });
});
