/**
 * The chart's engine policy (templates/engine-policy.yaml): a ValidatingAdmissionPolicy with the values
 * rendered into it. Installed with helm into the shared local cluster, then ModelDeployments that break each
 * rule are sent to the real API server, which must refuse them with 403 Forbidden (the rules carry
 * reason Forbidden) and the rule's message; what the policy allows, and namespaces the release does not
 * watch, are admitted.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { prefixesRegex } from "../operator/api/engine-args.js";
import { REPO_ROOT } from "../operator/api/generate.js";
import { KubeApiError, KubeClient } from "../operator/runtime/kube-client.js";
import { ensureClusterBinaries, readPinnedTools } from "../tools/binaries.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { runHelm, runHelmOk, type HelmRunOptions } from "./support/helm.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import { modelDeploymentObject, modelDeploymentPath } from "./support/operator.js";

const release = "gf-policy";
const chart = join(REPO_ROOT, "charts", "gpufleet");
const kubeConfig = testKubeConfig();
const admin = new KubeClient(kubeConfig);
let helmBinary: string;
let helmHome: string;
let helmOptions: HelmRunOptions;
let releaseNamespace: TestNamespace;
let tenant: TestNamespace;
let unwatched: TestNamespace;

const randomName = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

const base = () => ({
  model: {
    name: "llama",
    source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct", tokenSecretRef: { name: "hf-token" } } },
  },
});

/** Creates a ModelDeployment; the HTTP status (201 when admitted) and the API server's message. */
async function create(namespace: string, name: string, spec: Record<string, unknown>): Promise<{ code: number; message: string }> {
  try {
    await admin.create(modelDeploymentObject(namespace, name, spec));
    return { code: 201, message: "" };
  } catch (error) {
    if (error instanceof KubeApiError) return { code: error.statusCode, message: error.message };
    throw error;
  }
}

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig);
  helmBinary = (await ensureClusterBinaries({ only: ["helm"] })).helm;
  helmHome = mkdtempSync(join(tmpdir(), "gpufleet-helm-policy-"));
  const kubeconfigPath = join(helmHome, "admin.kubeconfig");
  writeFileSync(kubeconfigPath, kubeConfig.exportConfig(), { mode: 0o600 });
  helmOptions = { home: helmHome, kubeconfig: kubeconfigPath, timeoutMs: 180_000 };
  releaseNamespace = await uniqueNamespace(kubeConfig, "policy-release");
  tenant = await uniqueNamespace(kubeConfig, "policy-tenant");
  unwatched = await uniqueNamespace(kubeConfig, "policy-other");
  await runHelmOk(
    helmBinary,
    [
      "install",
      release,
      chart,
      "--namespace",
      releaseNamespace.name,
      "--set",
      "replicaCount=1,leaderElection.enabled=false",
      "--set",
      `watchNamespaces={${tenant.name}}`,
      "--set",
      "enginePolicy.allowedImageRegistries={docker.io/vllm,nvcr.io/nvidia}",
    ],
    helmOptions,
  );
  // The API server loads a new policy asynchronously: wait for the first refusal.
  await waitFor(async () => (await create(tenant.name, randomName("probe"), { ...base(), engine: { image: "evil.example/x:1" } })).code === 403, {
    timeoutMs: 60_000,
    intervalMs: 500,
    description: "the engine policy to be enforced",
  });
}, 600_000);

afterAll(async () => {
  if (helmBinary && helmOptions)
    await runHelm(helmBinary, ["uninstall", release, "--namespace", releaseNamespace.name, "--ignore-not-found", "--wait"], helmOptions);
  await tenant?.delete();
  await unwatched?.delete();
  await releaseNamespace?.delete();
  admin.close();
  if (helmHome) rmSync(helmHome, { recursive: true, force: true });
}, 120_000);

describe("the chart's engine policy, enforced by the API server", () => {
  it.each([
    ["an image from a registry not allowed", { engine: { image: "ghcr.io/someone/vllm:latest" } }, "spec.engine.image must come from an allowed registry (docker.io/vllm,nvcr.io/nvidia); this installation refuses ghcr.io/someone/vllm:latest"],
    ["an image that only starts like an allowed registry", { engine: { image: "docker.io/vllm-evil/vllm:1" } }, "spec.engine.image must come from an allowed registry"],
    ["an env reading another Secret", { engine: { env: [{ name: "AWS_SECRET", valueFrom: { secretKeyRef: { name: "cloud-keys", key: "aws" } } }] } }, "spec.engine.env may read a Secret only through"],
    ["--trust-remote-code", { engine: { args: ["--trust-remote-code"] } }, "spec.engine.args may not pass --trust-remote-code"],
    ["--trust_remote_code (trtllm-serve's spelling)", { engine: { args: ["--trust_remote_code"] } }, "spec.engine.args may not pass --trust-remote-code"],
    ["an abbreviation, --trust-remote", { engine: { args: ["--trust-remote=true"] } }, "spec.engine.args may not pass --trust-remote-code"],
  ])("refuses %s with 403 and the rule's message", async (_title, extra, message) => {
    const result = await create(tenant.name, randomName("bad"), { ...base(), ...extra });
    expect(result.code).toBe(403);
    expect(result.message).toContain("ValidatingAdmissionPolicy");
    expect(result.message).toContain(message);
  });

  it("refuses an update that breaks a rule, not only a create", async () => {
    const name = randomName("upd");
    expect((await create(tenant.name, name, base())).code).toBe(201);
    let refused: unknown;
    await admin
      .patch(modelDeploymentPath(tenant.name, name), { spec: { engine: { args: ["--trust-remote-code"] } } })
      .catch((error: unknown) => (refused = error));
    expect(refused).toBeInstanceOf(KubeApiError);
    expect((refused as KubeApiError).statusCode).toBe(403);
    expect((refused as KubeApiError).message).toContain("may not pass --trust-remote-code");
  });

  it("admits what the policy allows: an allowed registry, the token Secret, ConfigMap values, ordinary flags", async () => {
    const result = await create(tenant.name, "good", {
      ...base(),
      engine: {
        image: "docker.io/vllm/vllm-openai:v0.11.0",
        args: ["--enable-prefix-caching", "--trust-request-chat-template"],
        env: [
          { name: "HF_TOKEN_COPY", valueFrom: { secretKeyRef: { name: "hf-token", key: "token" } } },
          { name: "LOG", valueFrom: { configMapKeyRef: { name: "settings", key: "log" } } },
        ],
      },
    });
    expect(result).toEqual({ code: 201, message: "" });
  });

  it("leaves namespaces the release does not watch alone", async () => {
    const result = await create(unwatched.name, randomName("other"), { ...base(), engine: { image: "ghcr.io/someone/vllm:latest", args: ["--trust-remote-code"] } });
    expect(result).toEqual({ code: 201, message: "" });
  });

  it("lets an operator allow trust-remote-code and other Secrets by values (helm upgrade)", async () => {
    const relaxed = { ...base(), engine: { args: ["--trust-remote-code"], env: [{ name: "K", valueFrom: { secretKeyRef: { name: "other", key: "k" } } }] } };
    expect((await create(tenant.name, randomName("trc"), relaxed)).code).toBe(403);
    await runHelmOk(
      helmBinary,
      ["upgrade", release, chart, "--namespace", releaseNamespace.name, "--reuse-values", "--set", "enginePolicy.allowTrustRemoteCode=true,enginePolicy.allowSecretEnvReferences=true"],
      helmOptions,
    );
    await waitFor(async () => (await create(tenant.name, randomName("trc"), relaxed)).code === 201, {
      timeoutMs: 60_000,
      intervalMs: 500,
      description: "the relaxed policy to be enforced",
    });
    // The registry rule still holds.
    expect((await create(tenant.name, randomName("img"), { ...base(), engine: { image: "ghcr.io/someone/vllm:latest" } })).code).toBe(403);
  });

  it("matches flag prefixes with the regex operator/api/engine-args.ts builds", async () => {
    const rendered = await runHelmOk(helmBinary, ["template", "x", chart, "--kube-version", readPinnedTools().versions["kube-apiserver"]], helmOptions);
    expect(rendered).toContain(`matches('^-+${prefixesRegex(["trust-remote-code"]).slice(1)}')`);
  });

  it("takes no params object, so another release's uninstall cannot switch it to 'no params found'", async () => {
    // With a built-in paramKind (ConfigMap), kube-apiserver stops that kind's param informer for good once
    // no binding names it (kubernetes/kubernetes#130887): after helm-chart.test.ts uninstalled its release,
    // this file's policy denied everything with 422 "no params found" (the order dependence of session 3).
    const rendered = await runHelmOk(
      helmBinary,
      ["template", "x", chart, "--kube-version", readPinnedTools().versions["kube-apiserver"], "--set", "enginePolicy.allowedImageRegistries={docker.io/vllm}"],
      helmOptions,
    );
    const policies = parseAllDocuments(rendered)
      .map((document) => document.toJS() as { kind?: string; spec?: { paramKind?: unknown }; metadata?: { name?: string } } | null)
      .filter((object) => object?.kind === "ValidatingAdmissionPolicy" || object?.kind === "ValidatingAdmissionPolicyBinding");
    expect(policies.map((object) => object?.metadata?.name)).toContain("default-x-gpufleet-engine-policy");
    for (const object of policies) expect(object?.spec).not.toHaveProperty("paramKind");
    for (const object of policies) expect(object?.spec).not.toHaveProperty("paramRef");
  });
});
