/**
 * Region routing in the gateway on the local cluster: one ModelDeployment whose two pods run on GPU
 * nodes of two regions (europe-north1, a clean grid; us-east4, PJM), a gateway in us-east4 running with
 * the chart's gateway RBAC plus its region ClusterRole, intensities from the same source placement
 * reads (the shared yearly and hourly data, handed to the gateway as the chart does: a region data file). A request goes to the cleanest region within its latency
 * budget, to the near region when the budget excludes the far one, and spills when the clean region is
 * saturated.
 */
import { CoreV1Api, type V1Node, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningOperator } from "../operator/operator.js";
import { KubeClient, type KubeObject } from "../operator/runtime/kube-client.js";
import { loadGatewayConfig } from "../gateway/config.js";
import { startGateway, type Gateway } from "../gateway/gateway.js";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadHourlyCarbonData } from "../infra/carbon/hourly-data.js";
import { intensitySourceFromConfig } from "../infra/carbon/intensity-source.js";
import { buildRegionCarbonBundle } from "../infra/carbon/region-data.js";
import { loadStaticCarbonTables } from "../infra/carbon/static-data.js";
import { loadGcpRttTable } from "../infra/placement/rtt.js";
import { MANAGED_BY_SELECTOR, SimFleet } from "../sim/engine/fleet.js";
import { applyChartTemplates, registerChartKinds } from "./support/chart-objects.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, waitUntil, type TestNamespace } from "./support/kube.js";
import { condition, modelDeploymentObject, readModelDeployment, startTestOperator } from "./support/operator.js";
import { serviceAccountKubeconfig } from "./support/serviceaccount-kubeconfig.js";
import { loopbackGatewayEnv } from "./support/gateway.js";

registerChartKinds();

const kubeConfig = testKubeConfig();
const admin = new KubeClient(kubeConfig);
const core = kubeConfig.makeApiClient(CoreV1Api);
let namespace: TestNamespace;
let operator: RunningOperator;
let fleet: SimFleet;
let gateway: Gateway;
const clusterScoped: KubeObject[] = [];

const PRODUCT = "NVIDIA-L40S";
const NODES = [
  { name: "region-test-fi", region: "europe-north1", ip: "127.0.60.1" },
  { name: "region-test-va", region: "us-east4", ip: "127.0.60.2" },
];

function gpuNode(name: string, region: string, ip: string): V1Node {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      annotations: { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
      labels: {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        type: "kwok",
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": PRODUCT,
        "nvidia.com/gpu.memory": "46068",
        "nvidia.com/gpu.count": "1",
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": `${region}-a`,
        "gpufleet.io/pool": "region-test",
      },
    },
    spec: { taints: [{ key: "nvidia.com/gpu", value: "present", effect: "NoSchedule" }] },
    status: {
      addresses: [
        { type: "InternalIP", address: ip },
        { type: "Hostname", address: name },
      ],
      capacity: { cpu: "48", memory: "192Gi", pods: "110", "ephemeral-storage": "2Ti", "nvidia.com/gpu": "1" },
      allocatable: { cpu: "48", memory: "192Gi", pods: "110", "ephemeral-storage": "2Ti", "nvidia.com/gpu": "1" },
    },
  };
}

/** The two regions' carbon data bundle, as `infra/carbon/region-data.ts --regions europe-north1,us-east4 --from us-east4` writes it. */
function carbonDataFile(): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), "gw-regions-carbon-")), "carbon.json");
  const rtt = loadGcpRttTable();
  const bundle = buildRegionCarbonBundle({
    cloud: "gcp",
    regions: NODES.map((n) => n.region),
    from: "us-east4",
    tables: loadStaticCarbonTables(),
    hourly: loadHourlyCarbonData(),
    rttMs: (a, b) => (a === b ? 0 : rtt.rttMs(`gcp:${a}`, `gcp:${b}`)),
  });
  writeFileSync(file, JSON.stringify(bundle));
  return file;
}

/** The chart's gateway ServiceAccount and RBAC, with region routing on, as the release `gf-regions` would apply them. */
async function applyChartGatewayRbac(ns: string): Promise<string> {
  const objects = await applyChartTemplates({
    kubeConfig,
    admin,
    namespace: ns,
    release: "gf-regions",
    set: `watchNamespaces={${ns}},gateway.regionRouting.region=us-east4`,
    templates: ["gateway-serviceaccount.yaml", "gateway-rbac.yaml", "gateway-region-rbac.yaml"],
  });
  expect(objects.map((o) => o.kind).sort()).toEqual([
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ServiceAccount",
  ]);
  clusterScoped.push(...objects.filter((o) => o.kind?.startsWith("Cluster")));
  return "gf-regions-gpufleet-gateway";
}

const post = (body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(`http://127.0.0.1:${gateway.port}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });

/** Region of the pod that served a response (its node's label). */
async function regionOf(response: Response): Promise<string> {
  const podName = response.headers.get("x-gpufleet-endpoint") ?? "";
  const pod: V1Pod = await core.readNamespacedPod({ name: podName, namespace: namespace.name });
  return NODES.find((n) => n.name === pod.spec?.nodeName)?.region ?? `unknown node ${pod.spec?.nodeName}`;
}

beforeAll(async () => {
  for (const node of NODES) await admin.apply(gpuNode(node.name, node.region, node.ip) as never, { fieldManager: "test", force: true });
  await ensureModelDeploymentCrd(kubeConfig);
  namespace = await uniqueNamespace(kubeConfig, "gw-regions");
  operator = await startTestOperator(kubeConfig, namespace.name);
  fleet = new SimFleet({
    listPods: async () =>
      (await core.listNamespacedPod({ namespace: namespace.name, labelSelector: MANAGED_BY_SELECTOR })).items,
    pollIntervalMs: 250,
    loadDelayMs: 300,
  });
  fleet.start();
  const serviceAccountName = await applyChartGatewayRbac(namespace.name);
  const env = loopbackGatewayEnv(namespace.name, "gateway-regions", {
    GPUFLEET_GATEWAY_SCRAPE_INTERVAL_MS: "500",
    GPUFLEET_GATEWAY_DEMAND_WRITES: "false",
    GPUFLEET_GATEWAY_REGION: "us-east4",
    GPUFLEET_GATEWAY_REGION_RTT_MS: "europe-north1=90",
    GPUFLEET_GATEWAY_LATENCY_BUDGET_MS: "100",
    GPUFLEET_GATEWAY_REGION_CAPACITY_PER_POD: "2",
    // The data as the chart mounts it (gateway.regionRouting.carbonData), not the shared data folder.
    GPUFLEET_GATEWAY_CARBON_DATA: carbonDataFile(),
  });
  const identity = await serviceAccountKubeconfig(kubeConfig, namespace.name, serviceAccountName);
  gateway = await startGateway(
    new KubeClient(identity.kubeConfig, { userAgent: "gpufleet-gateway" }),
    loadGatewayConfig(env),
    env,
  );
  await admin.apply(
    modelDeploymentObject(namespace.name, "everywhere", {
      model: {
        name: "model-regions",
        source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } },
        maxContextLength: 8192,
      },
      engine: { kind: "vllm" },
      gpu: { products: [PRODUCT] },
      replicas: 2,
    }),
    { fieldManager: "platform-team" },
  );
  await waitFor(
    async () => condition(await readModelDeployment(admin, namespace.name, "everywhere"), "Ready")?.status === "True",
    { timeoutMs: 60_000, description: "everywhere Ready" },
  );
  // The region choice is only defined once the gateway routes to both pods: a pod is Ready before its
  // engine's /health answers 200, and until then every request goes to the other region.
  await waitUntil(
    () => gateway.fleet.route("model-regions")?.endpoints ?? [],
    (endpoints) => endpoints.length === 2 && endpoints.every((e) => e.ready),
    {
      timeoutMs: 30_000,
      description: "both pods of model-regions routable in the gateway",
      show: (endpoints) => endpoints.map((e) => `${e.podName} ready=${e.ready}`).join(", ") || "no route",
    },
  );
}, 300_000);

afterAll(async () => {
  await gateway?.stop(1_000);
  await fleet?.stop();
  await operator?.stop();
  await namespace?.delete();
  for (const object of clusterScoped)
    await admin.delete(`/apis/rbac.authorization.k8s.io/v1/${(object.kind ?? "").toLowerCase()}s/${object.metadata?.name}`).catch(() => undefined);
  for (const node of NODES) await admin.delete(`/api/v1/nodes/${node.name}`).catch(() => undefined);
  admin.close();
});

describe("the gateway's region choice on the local cluster", () => {
  it("runs the model's two pods one in each region, and rates the regions from placement's source", async () => {
    const pods = (await core.listNamespacedPod({ namespace: namespace.name, labelSelector: "gpufleet.io/model-deployment=everywhere" })).items;
    expect(pods.map((p) => NODES.find((n) => n.name === p.spec?.nodeName)?.region).sort()).toEqual([
      "europe-north1",
      "us-east4",
    ]);
    const source = intensitySourceFromConfig();
    const fi = (await source.intensity("gcp:europe-north1")).gCO2PerKWh;
    const va = (await source.intensity("gcp:us-east4")).gCO2PerKWh;
    expect(fi).toBeLessThan(va);
    // Tenancy's CO2 per tenant uses the same figure, by the region of the node a pod runs on.
    expect(gateway.regions?.intensityAtNode("region-test-fi")).toBeCloseTo(fi, 6);
    expect(gateway.regions?.intensityAtNode("region-test-va")).toBeCloseTo(va, 6);
    expect(gateway.regions?.intensityAtNode("no-such-node")).toBeUndefined();
  });

  it("sends a request to the cleanest region within its budget, and to the near one when the budget excludes it", async () => {
    await waitFor(async () => (await post({ model: "model-regions", prompt: "ping", max_tokens: 1 })).status === 200, {
      timeoutMs: 30_000,
      description: "model-regions served through the gateway",
    });
    for (let i = 0; i < 3; i++) {
      const clean = await post({ model: "model-regions", prompt: `q${i}`, max_tokens: 2 });
      expect(clean.status).toBe(200);
      expect(await regionOf(clean)).toBe("europe-north1");
      await clean.text();
      const near = await post(
        { model: "model-regions", prompt: `q${i}`, max_tokens: 2 },
        { "x-gpufleet-latency-budget-ms": "50" },
      );
      expect(near.status).toBe(200);
      expect(await regionOf(near)).toBe("us-east4");
      await near.text();
    }
  });

  it("spills to the next region when the clean one is saturated", async () => {
    const abort = new AbortController();
    const open: Response[] = [];
    try {
      // Two long streams fill europe-north1 (2 requests per pod before it counts as saturated).
      for (let i = 0; i < 2; i++) {
        const stream = await post(
          { model: "model-regions", prompt: `long ${i}`, max_tokens: 2000, stream: true },
          {},
          abort.signal,
        );
        expect(await regionOf(stream)).toBe("europe-north1");
        open.push(stream);
      }
      const spilled = await post({ model: "model-regions", prompt: "third", max_tokens: 2 });
      expect(spilled.status).toBe(200);
      expect(await regionOf(spilled)).toBe("us-east4");
      await spilled.text();
    } finally {
      abort.abort();
      for (const stream of open) await stream.body?.cancel().catch(() => undefined);
    }
  });
});
