/* eslint-disable @typescript-eslint/no-explicit-any -- the cases mutate arbitrary JSON to make malformed objects */
/**
 * Cascade routing on the local cluster: the ModelRoute CRD admits good routes and refuses malformed
 * ones with a message a person can act on.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_GROUP, API_VERSION } from "../operator/api/modeldeployment.js";
import { MODEL_ROUTE_PLURAL, modelRouteCrd } from "../operator/api/modelroute.js";
import type { KubeObject } from "../operator/runtime/kube-client.js";
import { ensureCrd } from "./support/crds.js";
import { testKubeConfig, uniqueNamespace, type TestNamespace } from "./support/kube.js";
import { CustomObjectsApi } from "@kubernetes/client-node";

const kubeConfig = testKubeConfig();
const customObjects = kubeConfig.makeApiClient(CustomObjectsApi);
let namespace: TestNamespace;

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
  await ensureCrd(kubeConfig, modelRouteCrd() as unknown as KubeObject);
  namespace = await uniqueNamespace(kubeConfig, "cascade");
}, 120_000);

afterAll(async () => {
  await namespace?.delete();
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
  ];

  it.each(malformed)("refuses %s", async (_title, spec, expected, status = 422) => {
    const result = await createRoute("bad", spec);
    expect(result.code).toBe(status);
    expect(result.message, result.message).toContain(expected);
  });
});
