import { Type, type Static } from "@sinclair/typebox";
import { stringify } from "yaml";
import { API_GROUP, API_VERSION, conditionList } from "./modeldeployment.js";
import { type JsonSchema, toCrdSchema } from "./crd.js";
import { StringEnum, withCel } from "./schema-helpers.js";

/**
 * The `ModelRoute` API (gpufleet.io/v1alpha1, namespaced): a model alias that clients call by name
 * (the OpenAI `model`), fronting two to four ModelDeployments of one family ordered by size, smallest
 * first. The gateway sends a request to the first step unless a rule says otherwise:
 * - `largeForTiers`: requests of these usage tiers go straight to the last (largest) step;
 * - a step's `maxPromptTokens`: longer prompts skip to the next step;
 * - `confidence`: the gateway asks the step for token logprobs and escalates to the next step when the
 *   first `firstTokens` tokens' mean (or minimum) logprob is below `minLogprob`.
 * `streaming` says what a streaming client gets when the confidence gate applies (see gateway/cascade/).
 * The decision is a pure function (gateway/cascade/decide.ts); `npm run bench:cascade` evaluates it.
 */

export const MODEL_ROUTE_KIND = "ModelRoute";
export const MODEL_ROUTE_PLURAL = "modelroutes";
export const MODEL_ROUTE_SINGULAR = "modelroute";
export const MODEL_ROUTE_SHORT_NAMES = ["mroute"];

export const CONFIDENCE_METRICS = ["mean", "min"] as const;
export type ConfidenceMetric = (typeof CONFIDENCE_METRICS)[number];
export const STREAMING_MODES = ["hold", "first", "last"] as const;
export type StreamingMode = (typeof STREAMING_MODES)[number];

const DNS_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

const StepSchema = Type.Object(
  {
    modelDeployment: Type.String({
      minLength: 1,
      maxLength: 63,
      pattern: DNS_LABEL,
      description: "Name of a ModelDeployment in this namespace; the step answers as its spec.model.name.",
    }),
    maxPromptTokens: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 10_000_000,
        description:
          "Longest prompt (estimated tokens: characters / 4) this step takes; longer prompts go to the next step. Not allowed on the last step, which takes every prompt.",
      }),
    ),
  },
  { description: "One model of the ladder." },
);

const ConfidenceSchema = Type.Object(
  {
    firstTokens: Type.Integer({
      minimum: 1,
      maximum: 64,
      default: 8,
      description:
        "Output tokens the gate looks at (and, for a streaming client in `hold` mode, holds back) before it decides.",
    }),
    metric: StringEnum(CONFIDENCE_METRICS, {
      default: "mean",
      description: "How the tokens' logprobs combine into one confidence: their mean, or their minimum.",
    }),
    minLogprob: Type.Number({
      minimum: -20,
      maximum: 0,
      description:
        "Escalate when the confidence (natural-log probability per token) is below this, e.g. -0.5 (a mean token probability under ~0.61).",
    }),
  },
  {
    description:
      "Quality gate: the gateway asks a step for token logprobs and escalates to the next step when its answer's confidence over the first tokens is low.",
  },
);

/** Words a ModelRoute's prompt classifier may list (bounded: each is compared with every prompt word). */
export const MAX_CLASSIFIER_TERMS = 256;

const PromptClassifierSchema = withCel(
  Type.Object(
    {
      terms: Type.Array(
        Type.Object({
          word: Type.String({
            minLength: 2,
            maxLength: 40,
            pattern: "^[a-z0-9]+$",
            description: "A lower-case word (letters and digits, as the gateway splits the prompt).",
          }),
          weight: Type.Number({
            minimum: -20,
            maximum: 20,
            description: "Added to the score for each occurrence of the word among the prompt's first 256 words.",
          }),
        }),
        {
          maxItems: MAX_CLASSIFIER_TERMS,
          "x-kubernetes-list-type": "map",
          "x-kubernetes-list-map-keys": ["word"],
          description: "Word weights (e.g. exported by `npm run bench:cascade -- --write-route`), each word once.",
        },
      ),
      bias: Type.Number({ minimum: -50, maximum: 50, default: 0, description: "Added to every prompt's score." }),
      perPromptTokenDoubling: Type.Number({
        minimum: -20,
        maximum: 20,
        default: 0,
        description: "Added to the score per doubling of the prompt's estimated tokens (times log2 of them).",
      }),
      escalateAbove: Type.Optional(
        Type.Number({
          minimum: -100,
          maximum: 100,
          description: "A prompt scoring above this starts at the next step, before any model answers.",
        }),
      ),
      confidenceWeight: Type.Optional(
        Type.Number({
          minimum: 0,
          maximum: 10,
          description:
            "With `confidence`: keep an answer when its confidence >= minLogprob + confidenceWeight x score (a prompt the classifier doubts needs a more confident answer).",
        }),
      ),
    },
    {
      description:
        "Prompt classifier: a linear score of the prompt's words and length; a high score skips the small step or raises the confidence it must show.",
    },
  ),
  [
    {
      rule: "has(self.escalateAbove) || has(self.confidenceWeight)",
      message: "a promptClassifier needs escalateAbove, confidenceWeight or both; without either its score is not used",
      reason: "FieldValueRequired",
    },
  ],
);

export const ModelRouteSpecSchema = withCel(
  Type.Object(
    {
      model: Type.String({
        minLength: 1,
        maxLength: 128,
        pattern: "^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
        description:
          "The alias clients send as `model`. A ModelDeployment serving the same model name takes precedence over the alias.",
      }),
      steps: Type.Array(StepSchema, {
        minItems: 2,
        maxItems: 4,
        description: "ModelDeployments of one family, smallest first.",
      }),
      largeForTiers: Type.Optional(
        Type.Array(Type.String({ minLength: 1, maxLength: 63, pattern: DNS_LABEL }), {
          maxItems: 32,
          "x-kubernetes-list-type": "set",
          description: "Usage tiers whose requests always go to the last (largest) step.",
        }),
      ),
      confidence: Type.Optional(ConfidenceSchema),
      promptClassifier: Type.Optional(PromptClassifierSchema),
      streaming: StringEnum(STREAMING_MODES, {
        default: "hold",
        description:
          "Streaming requests under the confidence gate: `hold` the first tokens until the gate decides (the client sees nothing until then; on escalation it sees only the larger model's answer), send them to the `first` step without the gate, or to the `last` step.",
      }),
    },
    { description: "A model alias fronting ModelDeployments of one family by size, with escalation rules." },
  ),
  [
    {
      rule: "self.steps.all(s, self.steps.filter(t, t.modelDeployment == s.modelDeployment).size() == 1)",
      message: "steps must name each ModelDeployment once",
      fieldPath: ".steps",
    },
    {
      rule: "!has(self.steps[size(self.steps) - 1].maxPromptTokens)",
      message: "the last step takes every prompt: remove its maxPromptTokens",
      fieldPath: ".steps",
      reason: "FieldValueForbidden",
    },
    {
      // Adjacent steps (at most 4): limits form a prefix of the ladder and grow along it.
      rule: "[0, 1, 2].all(i, i + 1 >= size(self.steps) || (has(self.steps[i].maxPromptTokens) ? (!has(self.steps[i + 1].maxPromptTokens) || self.steps[i].maxPromptTokens < self.steps[i + 1].maxPromptTokens) : !has(self.steps[i + 1].maxPromptTokens)))",
      message:
        "maxPromptTokens must grow along the steps, and a step without it (it takes every prompt) cannot be followed by one with it",
      fieldPath: ".steps",
    },
    {
      rule: "has(self.confidence) || has(self.largeForTiers) || has(self.promptClassifier) || self.steps.exists(s, has(s.maxPromptTokens))",
      message:
        "a ModelRoute needs at least one escalation rule (confidence, largeForTiers, promptClassifier or a step's maxPromptTokens); without one every request goes to the first step",
      reason: "FieldValueRequired",
    },
    {
      rule: "!has(self.promptClassifier) || !has(self.promptClassifier.confidenceWeight) || has(self.confidence)",
      message: "promptClassifier.confidenceWeight moves the confidence gate's threshold: set confidence too, or remove it",
      fieldPath: ".promptClassifier.confidenceWeight",
      reason: "FieldValueRequired",
    },
  ],
);

export type ModelRouteSpec = Static<typeof ModelRouteSpecSchema>;

/** Written by the operator (operator/controller/modelroute-status.ts), the only writer; the gateway reads routes from spec. */
export const ModelRouteStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
    conditions: conditionList(4),
    steps: Type.Optional(
      Type.Array(
        Type.Object({
          modelDeployment: Type.String({ maxLength: 63 }),
          model: Type.Optional(Type.String({ maxLength: 253, description: "The model name the step answers as (its ModelDeployment's spec.model.name)." })),
          found: Type.Boolean({ description: "The ModelDeployment exists in this namespace and serves its model name." }),
        }),
        { maxItems: 4, description: "Each step as resolved." },
      ),
    ),
    missingModelDeployments: Type.Optional(
      Type.Array(Type.String({ maxLength: 63 }), { maxItems: 4, description: "Steps whose ModelDeployment is not served in this namespace." }),
    ),
  },
  { description: "Whether the alias serves: every step resolved to a served ModelDeployment, and the alias not taken." },
);

export type ModelRouteStatus = Static<typeof ModelRouteStatusSchema>;

export interface ModelRoute {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    generation?: number;
  };
  spec: ModelRouteSpec;
  status?: ModelRouteStatus;
}

/** The ModelRoute CustomResourceDefinition, as a plain object. */
export function modelRouteCrd(): JsonSchema {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${MODEL_ROUTE_PLURAL}.${API_GROUP}`,
      annotations: { "gpufleet.io/generated-by": "operator/api/modelroute.ts (npm run gen:crds)" },
    },
    spec: {
      group: API_GROUP,
      names: {
        kind: MODEL_ROUTE_KIND,
        listKind: `${MODEL_ROUTE_KIND}List`,
        plural: MODEL_ROUTE_PLURAL,
        singular: MODEL_ROUTE_SINGULAR,
        shortNames: MODEL_ROUTE_SHORT_NAMES,
        categories: ["gpufleet"],
      },
      scope: "Namespaced",
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          additionalPrinterColumns: [
            { name: "Alias", type: "string", jsonPath: ".spec.model" },
            { name: "First", type: "string", jsonPath: ".spec.steps[0].modelDeployment" },
            { name: "Gate", type: "number", jsonPath: ".spec.confidence.minLogprob" },
            { name: "Ready", type: "string", jsonPath: ".status.conditions[?(@.type=='Ready')].status" },
            { name: "Reason", type: "string", jsonPath: ".status.conditions[?(@.type=='Ready')].reason", priority: 1 },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description:
                "A model alias (cascade) fronting ModelDeployments of one family by size: the gateway answers from the smallest step and escalates by tier, prompt length or the small model's token confidence.",
              required: ["spec"],
              properties: {
                apiVersion: { type: "string", description: "API version of this object." },
                kind: { type: "string", description: "Kind of this object." },
                metadata: { type: "object" },
                spec: toCrdSchema(ModelRouteSpecSchema),
                status: toCrdSchema(ModelRouteStatusSchema),
              },
            },
          },
          subresources: { status: {} },
        },
      ],
    },
  };
}

export function modelRouteCrdYaml(): string {
  return (
    "---\n# Generated from operator/api/modelroute.ts by `npm run gen:crds`. Do not edit by hand.\n" +
    stringify(modelRouteCrd(), { lineWidth: 0 })
  );
}

export const MODEL_ROUTE_CRD_FILE = "crds/gpufleet.io_modelroutes.yaml";
export const MODEL_ROUTE_GENERATED_PATHS = [
  MODEL_ROUTE_CRD_FILE,
  "charts/gpufleet/crds/gpufleet.io_modelroutes.yaml",
];
