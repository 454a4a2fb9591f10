/* eslint-disable @typescript-eslint/no-explicit-any -- the cases mutate arbitrary JSON to make malformed objects */
/**
 * Cascade routing on the local cluster: the ModelRoute CRD admits good routes and refuses malformed
 * ones with a message a person can act on; through the real gateway, the operator and simulated engines,
 * an alias answers from the small model and escalates to the large one when the small engine's
 * logprobs are low (the engine draws each request's confidence from a table by prompt hash).
 */
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadGatewayConfig } from "../gateway/config.js";
import { startGateway, type Gateway } from "../gateway/gateway.js";
import { API_GROUP, API_VERSION } from "../operator/api/modeldeployment.js";
import { MODEL_ROUTE_KIND, MODEL_ROUTE_PLURAL, type ModelRouteStatus } from "../operator/api/modelroute.js";
import type { RunningOperator } from "../operator/operator.js";
import { KubeClient, type KubeObject } from "../operator/runtime/kube-client.js";
import { MANAGED_BY_SELECTOR, SimFleet } from "../sim/engine/fleet.js";
import { tokenLogprobFor } from "../sim/engine/server.js";
import { ensureModelDeploymentCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";
import {
  condition,
  modelDeploymentObject,
  readModelDeployment,
  startTestOperator,
} from "./support/operator.js";
import { loopbackGatewayEnv } from "./support/gateway.js";

const kubeConfig = testKubeConfig();
const customObjects = kubeConfig.makeApiClient(CustomObjectsApi);
const core = kubeConfig.makeApiClient(CoreV1Api);
const admin = new KubeClient(kubeConfig);
let namespace: TestNamespace;
let operator: RunningOperator | undefined;
let fleet: SimFleet | undefined;
let gateway: Gateway | undefined;

/** The small engine's per-request confidences (mean token logprob): a prompt draws one by its hash. */
const SMALL_CONFIDENCES = [-2.5, -0.02];
function promptWith(confidence: number): string {
  for (let i = 0; ; i++) {
    const text = `cluster question ${i}`;
    if (tokenLogprobFor(`user: ${text}\n`, SMALL_CONFIDENCES) === confidence) return text;
  }
}

const validRoute = {
  model: "chat",
  steps: [{ modelDeployment: "small", maxPromptTokens: 2000 }, { modelDeployment: "large" }],
  largeForTiers: ["gold"],
  confidence: { firstTokens: 4, metric: "mean", minLogprob: -0.7 },
};

function route(patch: (spec: Record<string, any>) => void): Record<string, unknown> {
  const spec = structuredClone(validRoute) as Record<string, any>;
  patch(spec);
  return spec;
}

async function createRoute(name: string, spec: unknown): Promise<{ code: number; message: string }> {
  try {
    await customObjects.createNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace: namespace.name,
      plural: MODEL_ROUTE_PLURAL,
      fieldValidation: "Strict",
      body: { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: "ModelRoute", metadata: { name }, spec },
    });
    return { code: 201, message: "" };
  } catch (error) {
    const failure = error as { code?: number; body?: string };
    const body = typeof failure.body === "string" ? JSON.parse(failure.body) : failure.body;
    return { code: failure.code ?? 0, message: String(body?.message ?? error) };
  }
}

beforeAll(async () => {
  await ensureModelDeploymentCrd(kubeConfig); // and the ModelRoute CRD, as crds/ ships them
  namespace = await uniqueNamespace(kubeConfig, "cascade");
}, 120_000);

afterAll(async () => {
  await gateway?.stop(1_000);
  await fleet?.stop();
  await operator?.stop();
  await namespace?.delete();
  admin.close();
});

describe("ModelRoute admission by the real API server", () => {
  it("accepts a route and fills in the defaults", async () => {
    expect(await createRoute("ok", validRoute)).toEqual({ code: 201, message: "" });
    const stored = (await customObjects.getNamespacedCustomObject({
      group: API_GROUP,
      version: API_VERSION,
      namespace: namespace.name,
      plural: MODEL_ROUTE_PLURAL,
      name: "ok",
    })) as { spec: Record<string, any> };
    expect(stored.spec.streaming).toBe("hold");
    expect(
      await createRoute(
        "defaults",
        route((s) => {
          s.confidence = { minLogprob: -1 };
        }),
      ),
    ).toEqual({ code: 201, message: "" });
  });

  const malformed: Array<[string, Record<string, unknown>, string, number?]> = [
    ["a route without steps", route((s) => delete s.steps), "spec.steps: Required value"],
    ["a single step", route((s) => (s.steps = [{ modelDeployment: "small" }])), "spec.steps: Invalid value"],
    [
      "five steps",
      route((s) => (s.steps = ["a", "b", "c", "d", "e"].map((m) => ({ modelDeployment: m })))),
      "spec.steps: Too many",
    ],
    [
      "the same ModelDeployment twice",
      route((s) => (s.steps = [{ modelDeployment: "small" }, { modelDeployment: "small" }])),
      "steps must name each ModelDeployment once",
    ],
    [
      "maxPromptTokens on the last step",
      route((s) => (s.steps[1].maxPromptTokens = 9000)),
      "the last step takes every prompt",
    ],
    [
      "prompt limits that shrink along the ladder",
      route(
        (s) =>
          (s.steps = [
            { modelDeployment: "a", maxPromptTokens: 4000 },
            { modelDeployment: "b", maxPromptTokens: 1000 },
            { modelDeployment: "c" },
          ]),
      ),
      "maxPromptTokens must grow along the steps",
    ],
    [
      "a prompt limit after a step that takes every prompt",
      route(
        (s) =>
          (s.steps = [
            { modelDeployment: "a" },
            { modelDeployment: "b", maxPromptTokens: 1000 },
            { modelDeployment: "c" },
          ]),
      ),
      "maxPromptTokens must grow along the steps",
    ],
    [
      "no escalation rule at all",
      { model: "chat", steps: [{ modelDeployment: "small" }, { modelDeployment: "large" }] },
      "a ModelRoute needs at least one escalation rule",
    ],
    [
      "a positive logprob threshold",
      route((s) => (s.confidence.minLogprob = 0.5)),
      "spec.confidence.minLogprob",
    ],
    ["a gate over zero tokens", route((s) => (s.confidence.firstTokens = 0)), "spec.confidence.firstTokens"],
    ["a gate over 65 tokens", route((s) => (s.confidence.firstTokens = 65)), "spec.confidence.firstTokens"],
    [
      "an unknown confidence metric",
      route((s) => (s.confidence.metric = "median")),
      "spec.confidence.metric",
    ],
    ["an unknown streaming mode", route((s) => (s.streaming = "buffer-all")), "spec.streaming"],
    [
      "a step naming no valid ModelDeployment",
      route((s) => (s.steps[0].modelDeployment = "Small_Model")),
      "spec.steps[0].modelDeployment",
    ],
    ["an alias with spaces", route((s) => (s.model = "my chat")), "spec.model"],
    ["an empty alias", route((s) => (s.model = "")), "spec.model"],
    [
      "a tier listed twice",
      route((s) => (s.largeForTiers = ["gold", "gold"])),
      "spec.largeForTiers[1]: Duplicate value",
    ],
    ["an unknown field", route((s) => (s.fallback = "large")), 'unknown field "spec.fallback"', 400],
    [
      "a prompt classifier whose score is used nowhere",
      route((s) => (s.promptClassifier = { terms: [{ word: "theorem", weight: 2 }] })),
      "a promptClassifier needs escalateAbove, confidenceWeight or both",
    ],
    [
      "a classifier word listed twice",
      route((s) => (s.promptClassifier = { terms: [{ word: "prove", weight: 1 }, { word: "prove", weight: 2 }], escalateAbove: 0 })),
      "spec.promptClassifier.terms[1]: Duplicate value",
    ],
    [
      "257 classifier words",
      route((s) => (s.promptClassifier = { terms: Array.from({ length: 257 }, (_, i) => ({ word: `w${i}`, weight: 1 })), escalateAbove: 0 })),
      "spec.promptClassifier.terms: Too many",
    ],
    [
      "a classifier word with capitals",
      route((s) => (s.promptClassifier = { terms: [{ word: "Theorem", weight: 1 }], escalateAbove: 0 })),
      "spec.promptClassifier.terms[0].word",
    ],
    [
      "a classifier weight beyond 20",
      route((s) => (s.promptClassifier = { terms: [{ word: "theorem", weight: 25 }], escalateAbove: 0 })),
      "spec.promptClassifier.terms[0].weight",
    ],
    [
      "a classifier confidenceWeight without a confidence gate",
      route((s) => {
        delete s.confidence;
        s.promptClassifier = { terms: [{ word: "theorem", weight: 1 }], confidenceWeight: 0.5 };
      }),
      "promptClassifier.confidenceWeight moves the confidence gate's threshold",
    ],
    [
      "a negative classifier confidenceWeight",
      route((s) => (s.promptClassifier = { terms: [], confidenceWeight: -1 })),
      "spec.promptClassifier.confidenceWeight",
    ],
  ];

  it.each(malformed)("refuses %s", async (_title, spec, expected, status = 422) => {
    const result = await createRoute("bad", spec);
    expect(result.code).toBe(status);
    expect(result.message, result.message).toContain(expected);
  });
});

describe("a cascade alias through the gateway on the local cluster", () => {
  const deploy = (name: string, model: string) =>
    admin.apply(
      modelDeploymentObject(namespace.name, name, {
        model: {
          name: model,
          source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } },
          maxContextLength: 8192,
        },
        engine: { kind: "vllm" },
        gpu: { products: ["NVIDIA-L4"] },
        replicas: 1,
      }),
      { fieldManager: "platform-team" },
    );
  const post = (body: unknown) =>
    fetch(`http://127.0.0.1:${gateway!.port}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    operator = await startTestOperator(kubeConfig, namespace.name);
    fleet = new SimFleet({
      listPods: async () =>
        (await core.listNamespacedPod({ namespace: namespace.name, labelSelector: MANAGED_BY_SELECTOR }))
          .items,
      pollIntervalMs: 250,
      loadDelayMs: 200,
      confidencesFor: (spec) => (spec.modelName === "chat-small" ? SMALL_CONFIDENCES : undefined),
    });
    fleet.start();
    await deploy("small", "chat-small");
    await deploy("large", "chat-large");
    const applyRoute = (name: string, spec: Record<string, unknown>) =>
      admin.apply(
        {
          apiVersion: `${API_GROUP}/${API_VERSION}`,
          kind: MODEL_ROUTE_KIND,
          metadata: { name, namespace: namespace.name },
          spec,
        } as KubeObject,
        { fieldManager: "platform-team" },
      );
    const steps = [{ modelDeployment: "small" }, { modelDeployment: "large" }];
    await applyRoute("chat", { model: "chat", steps, confidence: { firstTokens: 4, minLogprob: -0.7 } });
    // A prompt classifier (words scored as `npm run bench:cascade -- --write-route` exports them).
    await applyRoute("hard", {
      model: "chat-hard",
      steps,
      confidence: { firstTokens: 4, minLogprob: -0.7 },
      promptClassifier: { terms: [{ word: "theorem", weight: 3 }, { word: "hello", weight: -1 }], bias: -1, escalateAbove: 0 },
    });
    await applyRoute("broken", {
      model: "broken",
      steps: [{ modelDeployment: "small" }, { modelDeployment: "gone" }],
      confidence: { minLogprob: -1 },
    });
    for (const name of ["small", "large"])
      await waitFor(
        async () =>
          condition(await readModelDeployment(admin, namespace.name, name), "Ready")?.status === "True",
        {
          timeoutMs: 60_000,
          description: `${name} Ready`,
        },
      );
    const config = loadGatewayConfig(loopbackGatewayEnv(namespace.name, "gateway-cascade", {
      GPUFLEET_GATEWAY_SCRAPE_INTERVAL_MS: "1000",
    }));
    gateway = await startGateway(new KubeClient(kubeConfig, { userAgent: "gpufleet-gateway" }), config);
    for (const model of ["chat-small", "chat-large"])
      await waitFor(
        async () =>
          (await post({ model, max_tokens: 1, messages: [{ role: "user", content: "ping" }] })).status ===
          200,
        {
          timeoutMs: 30_000,
          description: `${model} served through the gateway`,
        },
      );
  }, 240_000);

  it("answers a confident prompt from the small model, naming it in `model` and x-gpufleet-model", async () => {
    const r = await post({
      model: "chat",
      max_tokens: 6,
      messages: [{ role: "user", content: promptWith(-0.02) }],
    });
    expect(r.status).toBe(200);
    expect(r.headers.get("x-gpufleet-model")).toBe("chat-small");
    expect(r.headers.get("x-gpufleet-cascade")).toBe("confident");
    const body = (await r.json()) as { model: string; choices: Array<{ logprobs: unknown }> };
    expect(body.model).toBe("chat-small");
    expect(body.choices[0]?.logprobs).toBeNull();
  });

  it("escalates to the large model when the small engine's logprobs are low, streaming only the large answer", async () => {
    const r = await post({
      model: "chat",
      stream: true,
      max_tokens: 6,
      messages: [{ role: "user", content: promptWith(-2.5) }],
    });
    expect(r.status).toBe(200);
    expect(r.headers.get("x-gpufleet-model")).toBe("chat-large");
    expect(r.headers.get("x-gpufleet-cascade")).toBe("low-confidence");
    expect(Number(r.headers.get("x-gpufleet-confidence"))).toBeCloseTo(-2.5, 3);
    const text = await r.text();
    const models = new Set([...text.matchAll(/"model":"([^"]+)"/g)].map((m) => m[1]));
    expect(models).toEqual(new Set(["chat-large"]));
    expect(text.trim().endsWith("data: [DONE]")).toBe(true);
  });

  it("a route's prompt classifier sends a prompt with its words straight to the large model, others through the gate", async () => {
    const hard = await post({
      model: "chat-hard",
      max_tokens: 4,
      messages: [{ role: "user", content: `Prove the theorem. ${promptWith(-0.02)}` }],
    });
    expect(hard.status).toBe(200);
    expect(hard.headers.get("x-gpufleet-model")).toBe("chat-large");
    expect(hard.headers.get("x-gpufleet-cascade")).toBe("classifier");
    expect(((await hard.json()) as { model: string }).model).toBe("chat-large");
    const easy = await post({ model: "chat-hard", max_tokens: 4, messages: [{ role: "user", content: promptWith(-0.02) }] });
    expect(easy.status).toBe(200);
    expect(easy.headers.get("x-gpufleet-model")).toBe("chat-small");
    expect(easy.headers.get("x-gpufleet-cascade")).toBe("confident");
    await easy.text();
  });

  it("a route naming a missing ModelDeployment answers 503 saying which; unknown names stay 404", async () => {
    const broken = await post({
      model: "broken",
      max_tokens: 1,
      messages: [{ role: "user", content: "hi" }],
    });
    expect(broken.status).toBe(503);
    expect(((await broken.json()) as { error: { message: string } }).error.message).toContain(
      "names ModelDeployment gone",
    );
    expect((await post({ model: "nothing-here", messages: [{ role: "user", content: "hi" }] })).status).toBe(
      404,
    );
  });

  it("the operator writes each route's status (Ready, resolved steps, missing ModelDeployments); /v1/models lists the serving alias only", async () => {
    const read = (name: string) =>
      admin.get<KubeObject & { metadata: { generation?: number }; status?: ModelRouteStatus }>(
        `/apis/${API_GROUP}/${API_VERSION}/namespaces/${namespace.name}/modelroutes/${name}`,
      );
    const ready = (s: ModelRouteStatus | undefined) => s?.conditions?.find((c) => c.type === "Ready");
    // The admission cases created "ok" and "defaults" for the alias chat before this file's "chat" route:
    // the oldest (creation time, then name: the first two share a second) serves it, the others are told
    // it is taken.
    const claimers = ["ok", "defaults", "chat"];
    await waitFor(
      async () => {
        for (const name of [...claimers, "broken"]) if (ready((await read(name)).status) === undefined) return false;
        return true;
      },
      { timeoutMs: 20_000, description: "ModelRoute status written" },
    );
    const routes = await Promise.all(claimers.map(async (name) => ({ name, object: await read(name) })));
    const serving = routes.filter((r) => ready(r.object.status)?.status === "True");
    expect(serving).toHaveLength(1);
    const winner = serving[0]!;
    expect(ready(winner.object.status)).toMatchObject({ reason: "StepsResolved" });
    expect(winner.object.status?.observedGeneration).toBe(winner.object.metadata.generation);
    expect(winner.object.status?.steps).toEqual([
      { modelDeployment: "small", model: "chat-small", found: true },
      { modelDeployment: "large", model: "chat-large", found: true },
    ]);
    for (const other of routes.filter((r) => r !== winner)) {
      expect(ready(other.object.status)).toMatchObject({ status: "False", reason: "AliasTaken" });
      expect(ready(other.object.status)?.message).toContain(`ModelRoute ${namespace.name}/${winner.name} claims the alias chat`);
    }
    const broken = (await read("broken")).status;
    expect(ready(broken)).toMatchObject({ status: "False", reason: "ModelDeploymentMissing" });
    expect(ready(broken)?.message).toContain("ModelDeployment gone is not served");
    expect(broken?.missingModelDeployments).toEqual(["gone"]);
    const models = (await (await fetch(`http://127.0.0.1:${gateway!.port}/v1/models`)).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).toEqual(expect.arrayContaining(["chat", "chat-small", "chat-large"]));
    expect(models.data.map((m) => m.id)).not.toContain("broken");
  });
});
