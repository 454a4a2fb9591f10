/* eslint-disable @typescript-eslint/no-explicit-any -- the admission cases mutate arbitrary JSON to make malformed objects */
/**
 * Tenants and usage tiers on the local cluster: the generated UsageTier and Tenant CRDs refuse malformed
 * objects at admission; two gateway replicas, running with exactly the chart's RBAC (their
 * ServiceAccount's own token), serve two tenants of different tiers through simulated engines; a wrong
 * key gets 401 and nothing is metered; a tenant over its tokens per minute gets 429 with x-ratelimit-*
 * headers and Retry-After; and each Tenant's status ends up with exactly the tokens the load generator
 * counted from the engines' usage figures, though both replicas added to it.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { REPO_ROOT } from "../operator/api/generate.js";
import { API_GROUP, API_VERSION } from "../operator/api/modeldeployment.js";
import { TENANT_PLURAL, TIER_PLURAL, type Tenant } from "../operator/api/tenancy.js";
import { MODEL_ROUTE_KIND } from "../operator/api/modelroute.js";
import { tenantCrd, usageTierCrd } from "../operator/api/tenancy-crd.js";
import type { RunningOperator } from "../operator/operator.js";
import { KubeApiError, KubeClient, type KubeObject } from "../operator/runtime/kube-client.js";
import { loadGatewayConfig } from "../gateway/config.js";
import { startGateway, type Gateway } from "../gateway/gateway.js";
import { TENANT_KEY_LABEL } from "../gateway/tenancy/tenancy.js";
import { runCli } from "../operator/cli/main.js";
import { MANAGED_BY_SELECTOR, SimFleet } from "../sim/engine/fleet.js";
import { ensureClusterBinaries, readPinnedTools } from "../tools/binaries.js";
import { registerChartKinds } from "./support/chart-objects.js";
import { ensureCrd, ensureModelDeploymentCrd } from "./support/crds.js";
import { runHelmOk } from "./support/helm.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
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
const gateways: Gateway[] = [];
let helmHome: string;
/** A client with the gateway's ServiceAccount token (the chart's RBAC and admission policy apply to it). */
let gatewayIdentity: KubeClient;
const clusterScoped: string[] = [];
/** Tier names are cluster-wide: this run's prefix keeps them apart from other runs. */
let gold = "";
let free = "";
const ACME_KEY = "sk-acme-5f3c9e";
const HOBBY_KEY = "sk-hobby-81d2a0";
const TEAMX_KEY = "sk-teamx-2b7e44";
const BURST_KEY = "sk-burst-c01d93";
/** The `bounded` tier's tokens per minute: the limit two replicas share in the cross-replica case. */
const BOUNDED_TPM = 600;
let silver = "";
let bounded = "";

const tenantsPath = (ns: string, name = "") => `/apis/${API_GROUP}/${API_VERSION}/namespaces/${ns}/${TENANT_PLURAL}${name ? `/${name}` : ""}`;
const tierPath = (name = "") => `/apis/${API_GROUP}/${API_VERSION}/${TIER_PLURAL}${name ? `/${name}` : ""}`;

async function createStatus(path: string, body: unknown): Promise<{ code: number; message: string }> {
  try {
    await admin.request("POST", path, { body, query: { fieldValidation: "Strict" } });
    return { code: 201, message: "" };
  } catch (error) {
    if (error instanceof KubeApiError) return { code: error.statusCode, message: error.message };
    throw error;
  }
}

const validTier = { tokensPerMinute: 1000, tokensPerDay: 100000, maxConcurrentRequests: 4, priority: 10, models: ["a", "b"] };
const validTenant = { tier: "gold", apiKeys: [{ name: "main", secretRef: { name: "acme-key" } }] };
const withTier = (patch: (s: Record<string, any>) => void) => {
  const spec = structuredClone(validTier) as Record<string, any>;
  patch(spec);
  return spec;
};
const withTenant = (patch: (s: Record<string, any>) => void) => {
  const spec = structuredClone(validTenant) as Record<string, any>;
  patch(spec);
  return spec;
};

/** The chart's gateway RBAC with tenancy on for this namespace, applied as the release `gf` in it would apply it. */
async function applyChartGatewayRbac(ns: string): Promise<string> {
  const helm = (await ensureClusterBinaries({ only: ["helm"] })).helm;
  helmHome = mkdtempSync(join(tmpdir(), "gpufleet-tenancy-helm-"));
  const kubeconfigPath = join(helmHome, "admin.kubeconfig");
  writeFileSync(kubeconfigPath, kubeConfig.exportConfig(), { mode: 0o600 });
  const rendered = await runHelmOk(
    helm,
    [
      "template", "gf", join(REPO_ROOT, "charts", "gpufleet"),
      "--namespace", ns,
      "--kube-version", readPinnedTools().versions["kube-apiserver"] as string,
      "--set", `watchNamespaces={${ns}}`,
      "--set", "gateway.tenancy.enabled=true",
      "--set", `gateway.tenancy.namespaces={${ns}}`,
      "--show-only", "templates/gateway-serviceaccount.yaml",
      "--show-only", "templates/gateway-rbac.yaml",
      "--show-only", "templates/gateway-tenancy-rbac.yaml",
      "--show-only", "templates/gateway-tenant-policy.yaml",
    ],
    { home: helmHome, kubeconfig: kubeconfigPath },
  );
  const objects = parseAllDocuments(rendered)
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => o !== null);
  expect(objects.map((o) => o.kind).sort()).toEqual([
    "ClusterRole", "ClusterRoleBinding", "Role", "Role", "RoleBinding", "RoleBinding", "ServiceAccount",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ValidatingAdmissionPolicyBinding",
  ]);
  const plural: Record<string, string> = {
    ClusterRole: "rbac.authorization.k8s.io/v1/clusterroles",
    ClusterRoleBinding: "rbac.authorization.k8s.io/v1/clusterrolebindings",
    ValidatingAdmissionPolicy: "admissionregistration.k8s.io/v1/validatingadmissionpolicies",
    ValidatingAdmissionPolicyBinding: "admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
  };
  for (const object of objects) {
    await admin.apply(object, { fieldManager: "helm-stand-in", force: true });
    const kindPath = plural[object.kind ?? ""];
    if (kindPath) clusterScoped.push(`/apis/${kindPath}/${object.metadata?.name}`);
  }
  return "gf-gpufleet-gateway";
}

async function tenantStatus(name: string): Promise<Tenant["status"]> {
  return (await admin.get<Tenant & KubeObject>(tenantsPath(namespace.name, name))).status;
}

const url = (gateway: Gateway) => `http://127.0.0.1:${gateway.port}/v1/chat/completions`;
function chat(gateway: Gateway, key: string | undefined, body: Record<string, unknown>): Promise<Response> {
  return fetch(url(gateway), {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify(body),
  });
}

/** What the load generator counts from one answer: the engine's usage figures (JSON, or a stream's usage chunk). */
async function usageOf(response: Response, stream: boolean): Promise<{ prompt: number; completion: number }> {
  const text = await response.text();
  if (!stream) {
    const usage = (JSON.parse(text) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
    return { prompt: usage.prompt_tokens, completion: usage.completion_tokens };
  }
  const events = text.split("\n\n").filter((e) => e.startsWith("data: {"));
  const last = JSON.parse(events.at(-1)!.slice(6)) as { usage?: { prompt_tokens: number; completion_tokens: number } };
  if (!last.usage) throw new Error("stream without a usage chunk");
  return { prompt: last.usage.prompt_tokens, completion: last.usage.completion_tokens };
}

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig);
  await ensureCrd(kubeConfig, usageTierCrd() as unknown as KubeObject);
  await ensureCrd(kubeConfig, tenantCrd() as unknown as KubeObject);
  namespace = await uniqueNamespace(kubeConfig, "tenancy");
  gold = `${namespace.name}-gold`;
  free = `${namespace.name}-free`;
  silver = `${namespace.name}-silver`;
  bounded = `${namespace.name}-bounded`;
  operator = await startTestOperator(kubeConfig, namespace.name);
  fleet = new SimFleet({
    listPods: async () =>
      (await core.listNamespacedPod({ namespace: namespace.name, labelSelector: MANAGED_BY_SELECTOR })).items,
    pollIntervalMs: 250,
    loadDelayMs: 300,
  });
  fleet.start();
  // Tiers, tenants and their keys: acme's key in plain text, hobby's as a SHA-256 digest.
  for (const [name, spec] of [
    [gold, { priority: 100, tokensPerMinute: 200_000, maxConcurrentRequests: 16 }],
    [free, { priority: 0, tokensPerMinute: 250, models: ["model-small"] }],
    // May call the cascade alias only (not its step models by name).
    [silver, { priority: 50, tokensPerMinute: 100_000, models: ["chat"] }],
    [bounded, { priority: 10, tokensPerMinute: BOUNDED_TPM }],
  ] as const) {
    await admin.create({ apiVersion: `${API_GROUP}/${API_VERSION}`, kind: "UsageTier", metadata: { name }, spec } as KubeObject, { path: tierPath() });
    clusterScoped.push(tierPath(name));
  }
  const secret = (name: string, value: string) => ({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: namespace.name, labels: { [TENANT_KEY_LABEL]: "true" } },
    stringData: { key: value },
  });
  await admin.create(secret("acme-key", ACME_KEY) as KubeObject);
  await admin.create(secret("hobby-key", createHash("sha256").update(HOBBY_KEY).digest("hex")) as KubeObject);
  await admin.create(secret("teamx-key", TEAMX_KEY) as KubeObject);
  await admin.create(secret("burst-key", BURST_KEY) as KubeObject);
  const tenant = (name: string, tier: string, secretName: string, format: string) => ({
    apiVersion: `${API_GROUP}/${API_VERSION}`,
    kind: "Tenant",
    metadata: { name, namespace: namespace.name },
    spec: { tier, apiKeys: [{ name: "main", format, secretRef: { name: secretName } }] },
  });
  await admin.create(tenant("acme", gold, "acme-key", "Plain") as KubeObject, { path: tenantsPath(namespace.name) });
  await admin.create(tenant("hobby", free, "hobby-key", "SHA256") as KubeObject, { path: tenantsPath(namespace.name) });
  await admin.create(tenant("lost", gold, "no-such-secret", "Plain") as KubeObject, { path: tenantsPath(namespace.name) });
  await admin.create(tenant("teamx", silver, "teamx-key", "Plain") as KubeObject, { path: tenantsPath(namespace.name) });
  await admin.create(tenant("burst", bounded, "burst-key", "Plain") as KubeObject, { path: tenantsPath(namespace.name) });
  // The alias `chat`: model-small, then model-large; the gold tier always gets the large one.
  await admin.apply(
    {
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: MODEL_ROUTE_KIND,
      metadata: { name: "chat", namespace: namespace.name },
      spec: { model: "chat", steps: [{ modelDeployment: "small" }, { modelDeployment: "large" }], largeForTiers: [gold] },
    } as KubeObject,
    { fieldManager: "platform-team" },
  );

  const serviceAccountName = await applyChartGatewayRbac(namespace.name);
  for (const replica of ["gateway-a", "gateway-b"]) {
    const identity = await serviceAccountKubeconfig(kubeConfig, namespace.name, serviceAccountName);
    const config = loadGatewayConfig(loopbackGatewayEnv(namespace.name, replica, {
      GPUFLEET_GATEWAY_SCRAPE_INTERVAL_MS: "500",
      GPUFLEET_GATEWAY_TENANCY: "true",
      GPUFLEET_GATEWAY_TENANT_NAMESPACES: namespace.name,
      GPUFLEET_GATEWAY_USAGE_REPORT_INTERVAL_MS: "400",
    }));
    gateways.push(await startGateway(new KubeClient(identity.kubeConfig, { userAgent: "gpufleet-gateway" }), config));
    gatewayIdentity ??= new KubeClient(identity.kubeConfig);
  }
  for (const [name, model] of [["small", "model-small"], ["large", "model-large"]] as const)
    await admin.apply(
      modelDeploymentObject(namespace.name, name, {
        model: { name: model, source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 },
        engine: { kind: "vllm" },
        gpu: { products: ["NVIDIA-L4"] },
        replicas: 1,
      }),
      { fieldManager: "platform-team" },
    );
  for (const name of ["small", "large"])
    await waitFor(async () => condition(await readModelDeployment(admin, namespace.name, name), "Ready")?.status === "True", {
      timeoutMs: 90_000,
      description: `${name} Ready`,
    });
  // Routable through both replicas once the engines answered the gateway's /health.
  for (const gateway of gateways)
    for (const model of ["model-small", "model-large"])
      await waitFor(async () => (await chat(gateway, ACME_KEY, { model, messages: [{ role: "user", content: "warm" }], max_tokens: 1 })).status === 200, {
        timeoutMs: 30_000,
        description: `${model} served through the gateway`,
      });
}, 300_000);

afterAll(async () => {
  for (const gateway of gateways) await gateway.stop(1_000);
  await fleet?.stop();
  await operator?.stop();
  gatewayIdentity?.close();
  for (const path of clusterScoped.reverse()) await admin.delete(path).catch(() => undefined);
  await namespace?.delete();
  admin.close();
  if (helmHome) rmSync(helmHome, { recursive: true, force: true });
});

describe("UsageTier and Tenant admission by the real API server", () => {
  it("accepts well-formed objects and fills defaults in", async () => {
    expect(await createStatus(tierPath(), { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: "UsageTier", metadata: { name: `${namespace.name}-ok` }, spec: validTier })).toEqual({ code: 201, message: "" });
    clusterScoped.push(tierPath(`${namespace.name}-ok`));
    const tier = await admin.get<KubeObject & { spec: Record<string, unknown> }>(tierPath(`${namespace.name}-ok`));
    expect(tier.spec).toMatchObject({ overLimit: "Reject", defaultMaxTokens: 1024 });
    expect(await createStatus(tenantsPath(namespace.name), { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: "Tenant", metadata: { name: "ok" }, spec: validTenant })).toEqual({ code: 201, message: "" });
    const tenant = await admin.get<KubeObject & { spec: Tenant["spec"] }>(tenantsPath(namespace.name, "ok"));
    expect(tenant.spec.apiKeys[0]).toEqual({ name: "main", format: "Plain", secretRef: { name: "acme-key", key: "key" } });
    expect(tenant.spec.suspended).toBe(false);
  });

  const tiers: Array<[string, unknown, string, number?]> = [
    ["a negative tokensPerMinute", withTier((s) => (s.tokensPerMinute = -5)), "spec.tokensPerMinute in body should be greater than or equal to 1"],
    ["a tokensPerMinute of 0", withTier((s) => (s.tokensPerMinute = 0)), "spec.tokensPerMinute in body should be greater than or equal to 1"],
    ["a day's budget below a minute's", withTier((s) => (s.tokensPerDay = 10)), "tokensPerDay must be at least tokensPerMinute"],
    ["an unknown over-limit action", withTier((s) => (s.overLimit = "Queue")), 'spec.overLimit: Unsupported value: "Queue"'],
    ["a priority above 1000", withTier((s) => (s.priority = 1001)), "spec.priority in body should be less than or equal to 1000"],
    ["a model listed twice", withTier((s) => (s.models = ["a", "a"])), "spec.models[1]: Duplicate value"],
    ["an empty model name", withTier((s) => (s.models = [""])), "spec.models[0] in body should be at least 1 chars long"],
    ["more than 256 models", withTier((s) => (s.models = Array.from({ length: 257 }, (_, i) => `m${i}`))), "spec.models: Too many"],
    ["a concurrency cap of 0", withTier((s) => (s.maxConcurrentRequests = 0)), "spec.maxConcurrentRequests in body should be greater than or equal to 1"],
    ["an unknown field (a typo)", withTier((s) => (s.tokensPerMinut = 5)), 'unknown field "spec.tokensPerMinut"', 400],
  ];
  it.each(tiers)("refuses a UsageTier with %s", async (title, spec, expected, status = 422) => {
    const name = `${namespace.name}-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-").slice(0, 30).replace(/-$/, "")}`;
    const result = await createStatus(tierPath(), { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: "UsageTier", metadata: { name }, spec });
    if (result.code === 201) clusterScoped.push(tierPath(name));
    expect(result.code).toBe(status);
    expect(result.message).toContain(expected);
  });

  it("refuses a UsageTier whose name is not a DNS label", async () => {
    const result = await createStatus(tierPath(), { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: "UsageTier", metadata: { name: `${namespace.name}.gold` }, spec: validTier });
    expect(result.code).toBe(422);
    expect(result.message).toContain("metadata.name must be a DNS-1123 label");
  });

  const tenants: Array<[string, unknown, string, number?]> = [
    ["no tier", withTenant((s) => delete s.tier), "spec.tier: Required value"],
    ["a tier that is no name", withTenant((s) => (s.tier = "Gold Tier")), "spec.tier in body should match"],
    ["no API keys", withTenant((s) => (s.apiKeys = [])), "spec.apiKeys in body should have at least 1 items"],
    ["two keys of one name", withTenant((s) => s.apiKeys.push({ name: "main", secretRef: { name: "other" } })), 'spec.apiKeys[1]: Duplicate value: {"name":"main"}'],
    ["two keys naming one Secret key", withTenant((s) => s.apiKeys.push({ name: "second", secretRef: { name: "acme-key" } })), "two apiKeys must not name the same Secret key"],
    ["a Secret name that is no DNS name", withTenant((s) => (s.apiKeys[0].secretRef.name = "Acme_Key")), "spec.apiKeys[0].secretRef.name in body should match"],
    ["a Secret key with a slash", withTenant((s) => (s.apiKeys[0].secretRef.key = "a/b")), "spec.apiKeys[0].secretRef.key in body should match"],
    ["an unknown key format", withTenant((s) => (s.apiKeys[0].format = "bcrypt")), 'spec.apiKeys[0].format: Unsupported value: "bcrypt"'],
    ["more than 16 keys", withTenant((s) => (s.apiKeys = Array.from({ length: 17 }, (_, i) => ({ name: `k${i}`, secretRef: { name: `s${i}` } })))), "spec.apiKeys: Too many"],
    ["overrides with a day below a minute", withTenant((s) => (s.overrides = { tokensPerMinute: 100, tokensPerDay: 50 })), "tokensPerDay must be at least tokensPerMinute"],
    ["empty overrides", withTenant((s) => (s.overrides = {})), "spec.overrides in body should have at least 1 properties"],
    ["a negative priority override", withTenant((s) => (s.overrides = { priority: -1 })), "spec.overrides.priority in body should be greater than or equal to 0"],
  ];
  it.each(tenants)("refuses a Tenant with %s", async (title, spec, expected, status = 422) => {
    const name = `bad-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-").slice(0, 40).replace(/-$/, "")}`;
    const result = await createStatus(tenantsPath(namespace.name), { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: "Tenant", metadata: { name }, spec });
    expect(result.code).toBe(status);
    expect(result.message).toContain(expected);
  });

  it("refuses a Tenant whose name would not fit a label (64 characters)", async () => {
    const result = await createStatus(tenantsPath(namespace.name), { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: "Tenant", metadata: { name: "t".repeat(64) }, spec: validTenant });
    expect(result.code).toBe(422);
    expect(result.message).toContain("metadata.name must be a DNS-1123 label");
  });
});

describe("two tenants of different tiers through two gateway replicas", () => {
  it("answers a wrong or missing key with 401 and meters nothing", async () => {
    // Requests and tokens per model and period: what a 401 must not move.
    const counts = async (name: string) => {
      const status = await tenantStatus(name);
      return [status?.today, status?.thisMonth].map((period) =>
        (period?.models ?? []).map((m) => `${m.model}:${m.requests}/${m.promptTokens}/${m.completionTokens}`).sort(),
      );
    };
    // The warm-up requests of beforeAll are reported within one interval (400 ms): let them land first.
    await new Promise((r) => setTimeout(r, 1_000));
    const before = { acme: await counts("acme"), hobby: await counts("hobby") };
    for (const gateway of gateways) {
      const wrong = await chat(gateway, "sk-acme-5f3c9f", { model: "model-small", messages: [{ role: "user", content: "hi" }], max_tokens: 3 });
      expect(wrong.status).toBe(401);
      expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe("invalid_api_key");
      // hobby's Secret holds the digest: the digest itself is not a key
      const digest = await chat(gateway, createHash("sha256").update(HOBBY_KEY).digest("hex"), { model: "model-small", messages: [{ role: "user", content: "hi" }] });
      expect(digest.status).toBe(401);
      await digest.text();
      const missing = await chat(gateway, undefined, { model: "model-small", messages: [{ role: "user", content: "hi" }] });
      expect(missing.status).toBe(401);
      await missing.text();
    }
    // Two report intervals later, neither tenant's usage moved.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await counts("acme")).toEqual(before.acme);
    expect(await counts("hobby")).toEqual(before.hobby);
    const metrics = await (await fetch(`http://127.0.0.1:${gateways[0]!.opsPort}/metrics`)).text();
    expect(metrics).toContain('gpufleet_gateway_auth_failures_total{reason="invalid"} 2');
    expect(metrics).not.toContain(ACME_KEY);
  });

  it("reports a tenant whose key Secret is missing as not Ready, with the Secret it looked for", async () => {
    const status = await waitFor(async () => {
      const s = await tenantStatus("lost");
      return s?.conditions?.find((c) => c.type === "Ready") ? s : undefined;
    }, { timeoutMs: 10_000, description: "lost's Ready condition" });
    const ready = status.conditions!.find((c) => c.type === "Ready")!;
    expect(ready).toMatchObject({ status: "False", reason: "NoUsableKey" });
    expect(ready.message).toContain("Secret no-such-secret not found");
  });

  it("refuses the free tier a model it may not call (403), and over its tokens per minute answers 429 with x-ratelimit-* and Retry-After", async () => {
    const gateway = gateways[0]!;
    const denied = await chat(gateway, HOBBY_KEY, { model: "model-large", messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
    expect(denied.status).toBe(403);
    await denied.text();
    // free: 250 tokens per minute. Each request reserves its prompt estimate + 100 completion tokens.
    let refused: Response | undefined;
    for (let i = 0; i < 10 && !refused; i++) {
      const response = await chat(gateway, HOBBY_KEY, { model: "model-small", messages: [{ role: "user", content: `q${i}` }], max_tokens: 100 });
      if (response.status === 429) refused = response;
      else {
        expect(response.status).toBe(200);
        expect(response.headers.get("x-ratelimit-limit-tokens")).toBe("250");
        await response.text();
      }
    }
    expect(refused, "a 429 within 10 requests of 100+ tokens at 250 tokens/min").toBeDefined();
    const body = (await refused!.json()) as { error: { code: string; type: string; message: string } };
    expect(body.error).toMatchObject({ code: "rate_limit_exceeded", type: "rate_limit_error" });
    expect(body.error.message).toContain("tokens per minute");
    expect(refused!.headers.get("x-ratelimit-limit-tokens")).toBe("250");
    const remaining = Number(refused!.headers.get("x-ratelimit-remaining-tokens"));
    expect(remaining).toBeGreaterThanOrEqual(0);
    expect(remaining).toBeLessThan(103);
    const retryAfter = Number(refused!.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(refused!.headers.get("x-ratelimit-reset-tokens")).toMatch(/^(\d+m)?\d+s$/);
  });

  it("serves the cascade alias by tier: gold (largeForTiers) gets the large model, a tier listing only the alias calls it and is metered as the step's model", async () => {
    const ask = (gateway: Gateway, key: string, model: string) =>
      chat(gateway, key, { model, messages: [{ role: "user", content: "alias question" }], max_tokens: 3 });
    const gold = await ask(gateways[0]!, ACME_KEY, "chat");
    expect(gold.status).toBe(200);
    expect(gold.headers.get("x-gpufleet-model")).toBe("model-large");
    expect(gold.headers.get("x-gpufleet-cascade")).toBe("tier");
    await gold.text();
    const before = (await tenantStatus("teamx"))?.today?.models.find((m) => m.model === "model-small")?.requests ?? 0;
    const viaAlias = await ask(gateways[1]!, TEAMX_KEY, "chat");
    expect(viaAlias.status).toBe(200);
    expect(viaAlias.headers.get("x-gpufleet-model")).toBe("model-small");
    await viaAlias.text();
    const direct = await ask(gateways[1]!, TEAMX_KEY, "model-small");
    expect(direct.status).toBe(403);
    await direct.text();
    await waitFor(async () => ((await tenantStatus("teamx"))?.today?.models.find((m) => m.model === "model-small")?.requests ?? 0) === before + 1, {
      timeoutMs: 10_000,
      description: "teamx's alias request metered as model-small",
    });
    expect((await tenantStatus("teamx"))?.today?.models.map((m) => m.model)).toEqual(["model-small"]);
    const models = (await (await fetch(`http://127.0.0.1:${gateways[0]!.port}/v1/models`)).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).toEqual(["chat", "model-large", "model-small"]);
  });

  it("holds a tenant's tokens per minute across both replicas within the stated bound (one extra bucket plus the refill until they see each other)", async () => {
    // A fresh tenant saturated through both replicas for T seconds. One replica alone admits at most
    // L + L·T/60; two, until each has read the other's report (after F), at most one more bucket and the
    // doubled refill for F: L + L·T/60 + L + L·F/60. F is measured here: from the first request until
    // both replicas enforce 1/2 of the limit; the bound takes F = 5 s and the test checks F is below it.
    const L = BOUNDED_TPM;
    const T = 8;
    const F_BOUND_S = 5;
    // Each request reserves its prompt estimate (~230 tokens) + 4: a few fill a bucket, so the 429s come at once.
    const prompt = "tokens ".repeat(130);
    const key = `${namespace.name}/burst`;
    const start = Date.now();
    const deadline = start + T * 1000;
    const halvedAt: Array<number | undefined> = [undefined, undefined];
    const watch = setInterval(() => {
      gateways.forEach((gateway, g) => {
        if (halvedAt[g] === undefined && gateway.tenancy?.replicasSharing(key) === 2) halvedAt[g] = Date.now() - start;
      });
    }, 50);
    let admitted = 0;
    let refused = 0;
    const worker = async (gateway: Gateway, w: number) => {
      for (let i = 0; Date.now() < deadline; i++) {
        const response = await chat(gateway, BURST_KEY, { model: "model-small", messages: [{ role: "user", content: `b${w}-${i} ${prompt}` }], max_tokens: 4 });
        if (response.status === 200) {
          const usage = await usageOf(response, false);
          admitted += usage.prompt + usage.completion;
        } else {
          expect(response.status).toBe(429);
          await response.text();
          refused++;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    };
    try {
      await Promise.all(gateways.flatMap((gateway, g) => [0, 1, 2].map((w) => worker(gateway, g * 3 + w))));
    } finally {
      clearInterval(watch);
    }
    const single = L + (L * T) / 60;
    const bound = single + L + (L * F_BOUND_S) / 60;
    process.stdout.write(
      `cross-replica limit: L=${L} tokens/min, T=${T} s: admitted ${admitted} tokens (one replica alone: at most ${single}; two: at most ${bound}); ${refused} refused with 429; both replicas enforced 1/2 after ${halvedAt.map((ms) => (ms === undefined ? "never" : `${ms} ms`)).join(" and ")}\n`,
    );
    expect(refused).toBeGreaterThan(0);
    // Both replicas learned of each other (each enforces half), within the F the bound assumes ...
    for (const ms of halvedAt) {
      expect(ms).toBeDefined();
      expect(ms!).toBeLessThanOrEqual(F_BOUND_S * 1000);
    }
    // ... and together they admitted no more than the bound.
    expect(admitted).toBeLessThanOrEqual(bound);
    expect(((await tenantStatus("burst"))?.gateways ?? []).map((g) => g.replica).sort()).toEqual(["gateway-a", "gateway-b"]);
  });

  it("ends with each Tenant's status holding exactly the tokens the load generator counted", async () => {
    // Settle what came before, then take the status as the baseline.
    await new Promise((r) => setTimeout(r, 1_000));
    const tokensOf = (s: Tenant["status"], model: string) => {
      const m = s?.today?.models.find((e) => e.model === model);
      return { requests: m?.requests ?? 0, prompt: m?.promptTokens ?? 0, completion: m?.completionTokens ?? 0 };
    };
    const baseline = { acme: await tenantStatus("acme"), hobby: await tenantStatus("hobby") };
    const counted = new Map<string, { requests: number; prompt: number; completion: number }>();
    const add = (key: string, u: { prompt: number; completion: number }) => {
      const c = counted.get(key) ?? { requests: 0, prompt: 0, completion: 0 };
      counted.set(key, { requests: c.requests + 1, prompt: c.prompt + u.prompt, completion: c.completion + u.completion });
    };
    // acme (gold) through both replicas, both models, streamed (usage chunk) and not, 6 at a time.
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < 24; i++) {
      const gateway = gateways[i % 2]!;
      const model = i % 3 === 0 ? "model-large" : "model-small";
      const stream = i % 2 === 1;
      jobs.push(
        (async () => {
          const response = await chat(gateway, ACME_KEY, {
            model,
            messages: [{ role: "user", content: `tenant acme question ${i}: ${"words ".repeat(5 + i)}` }],
            max_tokens: 5 + (i % 7),
            ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
          });
          expect(response.status).toBe(200);
          add(`acme/${model}`, await usageOf(response, stream));
        })(),
      );
      if (jobs.length === 6) await Promise.all(jobs.splice(0));
    }
    await Promise.all(jobs);
    // hobby (free) through the second replica, slowly enough to stay under its limit.
    const hobbyBefore = tokensOf(baseline.hobby, "model-small");
    let hobbyServed = 0;
    for (let i = 0; i < 3; i++) {
      const response = await chat(gateways[1]!, HOBBY_KEY, { model: "model-small", messages: [{ role: "user", content: `hobby ${i}` }], max_tokens: 4 });
      if (response.status === 429) {
        await response.text();
        continue;
      }
      expect(response.status).toBe(200);
      add("hobby/model-small", await usageOf(response, false));
      hobbyServed++;
    }
    for (const [tenant, model] of [["acme", "model-small"], ["acme", "model-large"], ["hobby", "model-small"]] as const) {
      const expected = counted.get(`${tenant}/${model}`) ?? { requests: 0, prompt: 0, completion: 0 };
      const before = tokensOf(baseline[tenant], model);
      await waitFor(
        async () => {
          const now = tokensOf(await tenantStatus(tenant), model);
          return now.requests - before.requests === expected.requests ? now : undefined;
        },
        { timeoutMs: 15_000, description: `${tenant}/${model}: ${expected.requests} requests in status` },
      );
      const now = tokensOf(await tenantStatus(tenant), model);
      expect({ tenant, model, requests: now.requests - before.requests, prompt: now.prompt - before.prompt, completion: now.completion - before.completion })
        .toEqual({ tenant, model, ...expected });
    }
    expect(hobbyServed + tokensOf(await tenantStatus("hobby"), "model-small").requests - hobbyBefore.requests).toBeGreaterThan(0);
    const acme = await tenantStatus("acme");
    // Both replicas reported; GPU time, dollars and CO2 were attributed.
    expect(acme?.gateways?.map((g) => g.replica).sort()).toEqual(["gateway-a", "gateway-b"]);
    const small = acme?.today?.models.find((m) => m.model === "model-small");
    expect(small?.gpuSeconds).toBeGreaterThan(0);
    expect(small?.costUSD).toBeGreaterThan(0);
    expect(small?.gramsCO2).toBeGreaterThan(0);
    expect(acme?.thisMonth?.models.find((m) => m.model === "model-small")?.promptTokens).toBeGreaterThanOrEqual(small!.promptTokens);
    // `gpufleet usage` (as `kubectl gpufleet usage` runs it) reads the same figures from the cluster.
    const out: string[] = [];
    const code = await runCli(["usage", "-n", namespace.name, "--tenant", "acme", "-o", "json", "--kubeconfig", inject("kubeconfigPath")], {
      stdout: (t) => out.push(t),
      stderr: (t) => out.push(t),
    });
    expect(code, out.join("")).toBe(0);
    const rows = (JSON.parse(out.join("")) as { rows: Array<{ model: string; promptTokens: number; completionTokens: number; usdPerMillionTokens: number | null }> }).rows;
    const cliSmall = rows.find((r) => r.model === "model-small");
    expect(cliSmall).toMatchObject({ promptTokens: small!.promptTokens, completionTokens: small!.completionTokens });
    expect(cliSmall!.usdPerMillionTokens).toBeGreaterThan(0);
  });

  it("lets the gateway's ServiceAccount only add to a Tenant's usage (the chart's admission policy), not lower it", async () => {
    // An admin gives tenant "ok" some usage; the gateway's identity may add to it, not take from it.
    const path = tenantsPath(namespace.name, "ok");
    const day = new Date().toISOString().slice(0, 10);
    const current = await admin.get<Tenant & KubeObject>(path);
    const usage = { model: "model-small", requests: 5, promptTokens: 500, completionTokens: 50, gpuSeconds: 1, costUSD: 0.01, gramsCO2: 1 };
    await admin.replace({ ...current, status: { today: { date: day, models: [usage] }, thisMonth: { month: day.slice(0, 7), models: [usage] } } } as KubeObject, { path: `${path}/status` });
    const lowered = async (): Promise<number> => {
      const tenant = await admin.get<Tenant & KubeObject>(path);
      const models = tenant.status!.today!.models.map((m) => ({ ...m, promptTokens: m.promptTokens - 1 }));
      try {
        await gatewayIdentity.replace({ ...tenant, status: { ...tenant.status, today: { date: day, models } } } as KubeObject, { path: `${path}/status` });
        return 200;
      } catch (error) {
        if (error instanceof KubeApiError) return error.statusCode;
        throw error;
      }
    };
    // The policy was applied with the RBAC before the gateways started; poll in case it is still loading.
    await waitFor(async () => (await lowered()) === 403, { timeoutMs: 30_000, description: "a lowered usage refused" });
    const tenant = await admin.get<Tenant & KubeObject>(path);
    const added = tenant.status!.today!.models.map((m) => ({ ...m, requests: m.requests + 1, promptTokens: m.promptTokens + 10 }));
    await gatewayIdentity.replace({ ...tenant, status: { ...tenant.status, today: { date: day, models: added } } } as KubeObject, { path: `${path}/status` });
    expect((await admin.get<Tenant & KubeObject>(path)).status?.today?.models[0]?.requests).toBeGreaterThan(5);
  });
});

describe("vLLM priority scheduling (ModelDeployment engine.schedulingPolicy: priority)", () => {
  it("renders the flag and the pod annotation, the engine runs priority scheduling, and each tenant's requests reach it with its band as vLLM's priority (gold 100 -> -100), through both replicas", async () => {
    await admin.apply(
      modelDeploymentObject(namespace.name, "prio", {
        model: { name: "model-prio", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } }, maxContextLength: 8192 },
        engine: { kind: "vllm", schedulingPolicy: "priority" },
        gpu: { products: ["NVIDIA-L4"] },
        replicas: 1,
      }),
      { fieldManager: "platform-team" },
    );
    await waitFor(async () => condition(await readModelDeployment(admin, namespace.name, "prio"), "Ready")?.status === "True", {
      timeoutMs: 90_000,
      description: "prio Ready",
    });
    const [pod] = (await core.listNamespacedPod({ namespace: namespace.name, labelSelector: "gpufleet.io/model-deployment=prio" })).items;
    expect(pod?.metadata?.annotations?.["gpufleet.io/scheduling-policy"]).toBe("priority");
    const args = pod?.spec?.containers[0]?.args ?? [];
    expect(args[args.indexOf("--scheduling-policy") + 1]).toBe("priority");
    const key = `${namespace.name}/${pod?.metadata?.name}`;
    await waitFor(async () => fleet.servers().has(key), { timeoutMs: 30_000, description: "the prio engine started" });
    const engine = fleet.servers().get(key)!;
    expect(engine.model.schedulingPolicy).toBe("priority");
    // What reaches the engine's queue: each request's priority.
    const priorities: Array<number | undefined> = [];
    const enqueue = engine.model.enqueue.bind(engine.model);
    engine.model.enqueue = (request) => {
      priorities.push(request.priority);
      enqueue(request);
    };
    for (const gateway of gateways)
      await waitFor(async () => (await chat(gateway, ACME_KEY, { model: "model-prio", messages: [{ role: "user", content: "warm" }], max_tokens: 1 })).status === 200, {
        timeoutMs: 30_000,
        description: "model-prio served through the gateway",
      });
    priorities.length = 0;
    for (const gateway of gateways) {
      const gold = await chat(gateway, ACME_KEY, { model: "model-prio", messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
      expect(gold.status).toBe(200);
      await gold.text();
      // The bounded tier (band 10), sending its own priority: the gateway's value replaces it. (Its small
      // per-minute budget may still be spent by the cross-replica test: a 429 never reaches the engine.)
      await waitFor(
        async () => {
          const own = await chat(gateway, BURST_KEY, { model: "model-prio", messages: [{ role: "user", content: "hi" }], max_tokens: 2, priority: -5000 });
          await own.text();
          return own.status === 200;
        },
        { timeoutMs: 60_000, description: "the bounded tier served" },
      );
    }
    expect(priorities).toEqual([-100, -10, -100, -10]);
  });
});
