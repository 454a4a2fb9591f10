/**
 * Tenant usage survives a gateway replica that stops without a flush (as a SIGKILL would), on the local
 * cluster with the chart's RBAC and admission policies: each replica writes what it metered to its usage
 * journal (a ConfigMap in the tenant namespace) before it is in Tenant status; a replica that starts
 * again under the same name folds its journal; a replica that is gone for good has its journal folded
 * by another replica and deleted; and two replicas serving one tenant sum exactly. Every total is
 * compared with what the client counted from the engines' usage figures, request by request.
 */
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_GROUP, API_VERSION } from "../operator/api/modeldeployment.js";
import { TENANT_PLURAL, TIER_PLURAL, type Tenant } from "../operator/api/tenancy.js";
import { tenantCrd, usageTierCrd } from "../operator/api/tenancy-crd.js";
import type { RunningOperator } from "../operator/operator.js";
import { KubeApiError, KubeClient, isNotFound, type KubeObject } from "../operator/runtime/kube-client.js";
import { loadGatewayConfig } from "../gateway/config.js";
import { startGateway, type Gateway } from "../gateway/gateway.js";
import { JOURNAL_KEY, JOURNAL_LABEL, journalName, parseJournal } from "../gateway/tenancy/journal.js";
import { TENANT_KEY_LABEL } from "../gateway/tenancy/tenancy.js";
import { MANAGED_BY_SELECTOR, SimFleet } from "../sim/engine/fleet.js";
import { applyChartTemplates, registerChartKinds } from "./support/chart-objects.js";
import { ensureCrd, ensureModelDeploymentCrd } from "./support/crds.js";
import { loopbackGatewayEnv } from "./support/gateway.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { condition, modelDeploymentObject, readModelDeployment, startTestOperator } from "./support/operator.js";
import { serviceAccountKubeconfig } from "./support/serviceaccount-kubeconfig.js";

registerChartKinds();

const kubeConfig = testKubeConfig();
const admin = new KubeClient(kubeConfig);
const core = kubeConfig.makeApiClient(CoreV1Api);
let namespace: TestNamespace;
let operator: RunningOperator;
let fleet: SimFleet;
const running = new Set<Gateway>();
const clusterScoped: string[] = [];
let serviceAccountName = "";
let tier = "";
const KEYS = { warm: "sk-warm-0a1b2c", restart: "sk-restart-3d4e5f", gone: "sk-gone-6a7b8c", pair: "sk-pair-9d0e1f" } as const;
type TenantName = keyof typeof KEYS;

const tenantsPath = (name = "") => `/apis/${API_GROUP}/${API_VERSION}/namespaces/${namespace.name}/${TENANT_PLURAL}${name ? `/${name}` : ""}`;
const journalPath = (replica: string) => `/api/v1/namespaces/${namespace.name}/configmaps/${journalName(replica)}`;

/** A gateway replica named `replica`, with the chart's ServiceAccount; `env` sets its intervals. */
async function startReplica(replica: string, env: Record<string, string>): Promise<Gateway> {
  const identity = await serviceAccountKubeconfig(kubeConfig, namespace.name, serviceAccountName);
  const config = loadGatewayConfig(
    loopbackGatewayEnv(namespace.name, replica, {
      GPUFLEET_GATEWAY_SCRAPE_INTERVAL_MS: "500",
      GPUFLEET_GATEWAY_TENANCY: "true",
      GPUFLEET_GATEWAY_TENANT_NAMESPACES: namespace.name,
      ...env,
    }),
  );
  const gateway = await startGateway(new KubeClient(identity.kubeConfig, { userAgent: "gpufleet-gateway" }), config);
  running.add(gateway);
  await waitFor(async () => (await ask(gateway, "warm", 0, false)) !== undefined, { timeoutMs: 30_000, description: `${replica} serves model-small` });
  return gateway;
}

/** Stops a replica as a killed process would: nothing is journaled, reported or deleted on the way out. */
async function kill(gateway: Gateway): Promise<void> {
  await gateway.tenancy!.stopWithoutFlush();
  await gateway.stop(500);
  running.delete(gateway);
}

/** What the load generator counts per tenant: completed requests and the engine's usage figures. */
const counted = new Map<TenantName, { requests: number; prompt: number; completion: number }>();

/** One request for `tenant`; counted when it completed with 200 (undefined otherwise). */
async function ask(gateway: Gateway, tenant: TenantName, i: number, stream = i % 2 === 1): Promise<true | undefined> {
  const response = await fetch(`http://127.0.0.1:${gateway.port}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${KEYS[tenant]}` },
    body: JSON.stringify({
      model: "model-small",
      messages: [{ role: "user", content: `${tenant} question ${i}: ${"words ".repeat(3 + (i % 9))}` }],
      max_tokens: 3 + (i % 5),
      ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
    }),
  });
  const text = await response.text();
  if (response.status !== 200) return undefined;
  let usage: { prompt_tokens: number; completion_tokens: number } | undefined;
  if (!stream) usage = (JSON.parse(text) as { usage: typeof usage }).usage;
  else {
    const events = text.split("\n\n").filter((e) => e.startsWith("data: {"));
    usage = (JSON.parse(events.at(-1)!.slice(6)) as { usage?: typeof usage }).usage;
  }
  if (!usage) throw new Error("an answer without usage figures");
  const c = counted.get(tenant) ?? { requests: 0, prompt: 0, completion: 0 };
  counted.set(tenant, { requests: c.requests + 1, prompt: c.prompt + usage.prompt_tokens, completion: c.completion + usage.completion_tokens });
  return true;
}

async function send(gateway: Gateway, tenant: TenantName, n: number, from = 0): Promise<void> {
  for (let i = from; i < from + n; i += 4)
    await Promise.all(
      Array.from({ length: Math.min(4, from + n - i) }, async (_, k) => expect(await ask(gateway, tenant, i + k)).toBe(true)),
    );
}

async function status(tenant: TenantName): Promise<{ requests: number; prompt: number; completion: number }> {
  const s = (await admin.get<Tenant & KubeObject>(tenantsPath(tenant))).status;
  const m = s?.today?.models.find((e) => e.model === "model-small");
  return { requests: m?.requests ?? 0, prompt: m?.promptTokens ?? 0, completion: m?.completionTokens ?? 0 };
}

/** Requests of `tenant` in `replica`'s journal, as the cluster holds it. */
async function journaled(replica: string, tenant: TenantName): Promise<number> {
  try {
    const object = await admin.get<KubeObject & { data?: Record<string, string> }>(journalPath(replica));
    const journal = parseJournal(object.data?.[JOURNAL_KEY]);
    return (journal?.batches ?? []).flatMap((b) => b.tenants[tenant] ?? []).reduce((sum, d) => sum + d.requests, 0);
  } catch (error) {
    if (isNotFound(error)) return 0;
    throw error;
  }
}

/** Waits until the status holds exactly the counted requests, then compares every figure. */
async function expectStatusCounted(tenant: TenantName): Promise<void> {
  const expected = counted.get(tenant)!;
  await waitFor(async () => (await status(tenant)).requests >= expected.requests, {
    timeoutMs: 20_000,
    description: `${tenant}: ${expected.requests} requests in status`,
  });
  expect(await status(tenant)).toEqual(expected);
}

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig);
  await ensureCrd(kubeConfig, usageTierCrd() as unknown as KubeObject);
  await ensureCrd(kubeConfig, tenantCrd() as unknown as KubeObject);
  namespace = await uniqueNamespace(kubeConfig, "journal");
  tier = `${namespace.name}-gold`;
  operator = await startTestOperator(kubeConfig, namespace.name);
  fleet = new SimFleet({
    listPods: async () => (await core.listNamespacedPod({ namespace: namespace.name, labelSelector: MANAGED_BY_SELECTOR })).items,
    pollIntervalMs: 250,
    loadDelayMs: 300,
  });
  fleet.start();
  await admin.create(
    { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: "UsageTier", metadata: { name: tier }, spec: { priority: 10, tokensPerMinute: 1_000_000, maxConcurrentRequests: 64 } } as KubeObject,
    { path: `/apis/${API_GROUP}/${API_VERSION}/${TIER_PLURAL}` },
  );
  clusterScoped.push(`/apis/${API_GROUP}/${API_VERSION}/${TIER_PLURAL}/${tier}`);
  for (const [name, key] of Object.entries(KEYS)) {
    await admin.create({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: `${name}-key`, namespace: namespace.name, labels: { [TENANT_KEY_LABEL]: "true" } },
      stringData: { key },
    } as KubeObject);
    await admin.create(
      {
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: "Tenant",
        metadata: { name, namespace: namespace.name },
        spec: { tier, apiKeys: [{ name: "main", secretRef: { name: `${name}-key` } }] },
      } as KubeObject,
      { path: tenantsPath() },
    );
  }
  const objects = await applyChartTemplates({
    kubeConfig,
    admin,
    namespace: namespace.name,
    release: "gf",
    set: `watchNamespaces={${namespace.name}},gateway.tenancy.enabled=true,gateway.tenancy.namespaces={${namespace.name}}`,
    templates: ["gateway-serviceaccount.yaml", "gateway-rbac.yaml", "gateway-tenancy-rbac.yaml", "gateway-tenant-policy.yaml"],
  });
  for (const object of objects) {
    const plural: Record<string, string> = {
      ClusterRole: "rbac.authorization.k8s.io/v1/clusterroles",
      ClusterRoleBinding: "rbac.authorization.k8s.io/v1/clusterrolebindings",
      ValidatingAdmissionPolicy: "admissionregistration.k8s.io/v1/validatingadmissionpolicies",
      ValidatingAdmissionPolicyBinding: "admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
    };
    const kindPath = plural[object.kind ?? ""];
    if (kindPath) clusterScoped.push(`/apis/${kindPath}/${object.metadata?.name}`);
    if (object.kind === "ServiceAccount") serviceAccountName = object.metadata?.name ?? "";
  }
  await admin.apply(
    modelDeploymentObject(namespace.name, "small", {
      model: { name: "model-small", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 },
      engine: { kind: "vllm" },
      gpu: { products: ["NVIDIA-L4"] },
      replicas: 1,
    }),
    { fieldManager: "platform-team" },
  );
  await waitFor(async () => condition(await readModelDeployment(admin, namespace.name, "small"), "Ready")?.status === "True", {
    timeoutMs: 90_000,
    description: "small Ready",
  });
}, 300_000);

afterAll(async () => {
  for (const gateway of running) await gateway.stop(500);
  await fleet?.stop();
  await operator?.stop();
  for (const path of clusterScoped.reverse()) await admin.delete(path).catch(() => undefined);
  await namespace?.delete();
  admin.close();
});

/** No report before the stop: only the journal can carry the usage over. */
const SLOW_REPORTS = { GPUFLEET_GATEWAY_USAGE_REPORT_INTERVAL_MS: "600000", GPUFLEET_GATEWAY_USAGE_JOURNAL_INTERVAL_MS: "100" };

describe("tenant usage over gateway replicas that stop without a flush", () => {
  it("a replica killed after it metered 16 requests starts again under its name and adds them to the Tenant's status exactly once", async () => {
    const first = await startReplica("gw-restart", SLOW_REPORTS);
    await send(first, "restart", 16);
    // Journaled within a journal interval of each answer (the client saw every answer end).
    await waitFor(async () => (await journaled("gw-restart", "restart")) === 16, { timeoutMs: 10_000, description: "16 requests journaled" });
    await kill(first);
    expect((await status("restart")).requests).toBe(0);
    const again = await startReplica("gw-restart", SLOW_REPORTS);
    await expectStatusCounted("restart");
    // Folded once: its journal holds nothing more, and a while later the status has not moved.
    await waitFor(async () => (await journaled("gw-restart", "restart")) === 0, { timeoutMs: 10_000, description: "journal pruned" });
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await status("restart")).toEqual(counted.get("restart"));
    await again.stop(500);
    running.delete(again);
    // A clean stop leaves no journal behind.
    await expect(admin.get(journalPath("gw-restart"))).rejects.toMatchObject({ statusCode: 404 });
  });

  it("a replica killed for good has its journal folded by the replica that serves on, once, and both replicas' requests sum exactly", async () => {
    const env = { ...SLOW_REPORTS, GPUFLEET_GATEWAY_USAGE_JOURNAL_ORPHAN_AFTER_MS: "2000" };
    const gone = await startReplica("gw-gone-a", env);
    const survivor = await startReplica("gw-gone-b", { ...env, GPUFLEET_GATEWAY_USAGE_REPORT_INTERVAL_MS: "500" });
    await Promise.all([send(gone, "gone", 12), send(survivor, "gone", 8, 100)]);
    await waitFor(async () => (await journaled("gw-gone-a", "gone")) === 12, { timeoutMs: 10_000, description: "12 requests journaled" });
    // Alive, the replica keeps its journal fresh: the survivor does not take it over meanwhile.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await journaled("gw-gone-a", "gone")).toBe(12);
    await kill(gone);
    await expectStatusCounted("gone");
    await waitFor(async () => admin.get(journalPath("gw-gone-a")).then(() => false, (error: unknown) => isNotFound(error)), {
      timeoutMs: 10_000,
      description: "the gone replica's journal deleted",
    });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await status("gone")).toEqual(counted.get("gone"));
  });

  it("two replicas reporting every 300 ms sum one tenant exactly, through a kill and restart of one of them", async () => {
    const env = { GPUFLEET_GATEWAY_USAGE_REPORT_INTERVAL_MS: "300", GPUFLEET_GATEWAY_USAGE_JOURNAL_INTERVAL_MS: "100" };
    const a = await startReplica("gw-pair-a", env);
    let b = await startReplica("gw-pair-b", env);
    await Promise.all([send(a, "pair", 12), send(b, "pair", 12, 100)]);
    await expectStatusCounted("pair");
    // b is killed right after its answers were journaled; a serves on; b comes back.
    await send(b, "pair", 8, 200);
    await waitFor(async () => (await status("pair")).requests + (await journaled("gw-pair-b", "pair")) === counted.get("pair")!.requests, {
      timeoutMs: 10_000,
      description: "b's requests journaled or reported",
    });
    await kill(b);
    await send(a, "pair", 8, 300);
    b = await startReplica("gw-pair-b", env);
    await send(b, "pair", 4, 400);
    await expectStatusCounted("pair");
    // Both replicas' marks are in the status (the other replicas running wrote their Ready condition there too).
    const gateways = (await admin.get<Tenant & KubeObject>(tenantsPath("pair"))).status?.gateways?.map((g) => g.replica);
    expect(gateways).toEqual(expect.arrayContaining(["gw-pair-a", "gw-pair-b"]));
  });

  it("lets the gateway's ServiceAccount write no ConfigMap in a tenant namespace but a usage journal (the chart's admission policy)", async () => {
    const identity = await serviceAccountKubeconfig(kubeConfig, namespace.name, serviceAccountName);
    const gateway = new KubeClient(identity.kubeConfig);
    const create = async (name: string, labelled: boolean): Promise<number> => {
      try {
        await gateway.create({
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name, namespace: namespace.name, labels: labelled ? { [JOURNAL_LABEL]: "true" } : {} },
          data: {},
        } as KubeObject);
        return 201;
      } catch (error) {
        if (error instanceof KubeApiError) return error.statusCode;
        throw error;
      }
    };
    try {
      // RBAC allows creating ConfigMaps here; the policy refuses any but a labelled gpufleet-usage-*.
      expect(await create("app-settings", true)).toBe(403);
      expect(await create("gpufleet-usage-unlabelled", false)).toBe(403);
      expect(await create("gpufleet-usage-probe", true)).toBe(201);
    } finally {
      gateway.close();
    }
  });
});
