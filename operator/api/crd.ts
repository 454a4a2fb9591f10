import type { TSchema } from "@sinclair/typebox";
import { stringify } from "yaml";
import {
  API_GROUP,
  API_VERSION,
  KIND,
  ModelDeploymentSpecSchema,
  ModelDeploymentStatusSchema,
  PLURAL,
  SHORT_NAMES,
  SINGULAR,
} from "./modeldeployment.js";

export type JsonSchema = { [key: string]: unknown };

/**
 * Turns a TypeBox (JSON Schema draft-07) schema into the OpenAPI v3 dialect a CRD accepts:
 * drops TypeBox's symbols and `$id`, and rewrites numeric `exclusiveMinimum`/`exclusiveMaximum`
 * into `minimum` + boolean flag, which is what apiextensions.k8s.io/v1 JSONSchemaProps expects.
 */
export function toCrdSchema(schema: TSchema | JsonSchema): JsonSchema {
  const plain = JSON.parse(JSON.stringify(schema)) as JsonSchema;
  return rewrite(plain);
}

function rewrite(node: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  // A field with a default is required in the TypeScript type (it is always set once admitted), but must
  // not be `required` in the CRD: the API server checks an object's `default: {}` against its `required`.
  const properties = (node.properties ?? {}) as Record<string, JsonSchema>;
  const required = Array.isArray(node.required)
    ? (node.required as string[]).filter((name) => properties[name]?.default === undefined)
    : undefined;
  for (const [key, value] of Object.entries(node)) {
    if (key === "$id" || key === "$schema") continue;
    if (key === "default" && value && typeof value === "object" && !Array.isArray(value)) {
      out.default = withNestedDefaults(value as JsonSchema, properties);
      continue;
    }
    if (key === "required") {
      if (required?.length) out.required = required;
      continue;
    }
    if (key === "exclusiveMinimum" && typeof value === "number") {
      out.minimum = value;
      out.exclusiveMinimum = true;
      continue;
    }
    if (key === "exclusiveMaximum" && typeof value === "number") {
      out.maximum = value;
      out.exclusiveMaximum = true;
      continue;
    }
    if (key === "properties" && value && typeof value === "object") {
      out.properties = Object.fromEntries(
        Object.entries(value as Record<string, JsonSchema>).map(([name, child]) => [name, rewrite(child)]),
      );
      continue;
    }
    if ((key === "items" || key === "additionalProperties") && value && typeof value === "object") {
      out[key] = rewrite(value as JsonSchema);
      continue;
    }
    out[key] = value;
  }
  return out;
}

/**
 * An object default with its children's defaults written out: the API server validates a default
 * (CEL rules included) as given, without defaulting inside it first.
 */
function withNestedDefaults(value: JsonSchema, properties: Record<string, JsonSchema>): JsonSchema {
  const filled: JsonSchema = { ...value };
  for (const [name, child] of Object.entries(properties)) {
    if (filled[name] !== undefined || child.default === undefined) continue;
    const childProperties = (child.properties ?? {}) as Record<string, JsonSchema>;
    filled[name] =
      child.default && typeof child.default === "object" && !Array.isArray(child.default)
        ? withNestedDefaults(child.default as JsonSchema, childProperties)
        : child.default;
  }
  return filled;
}

const printerColumns = [
  { name: "Model", type: "string", jsonPath: ".spec.model.name" },
  { name: "Engine", type: "string", jsonPath: ".spec.engine.kind" },
  { name: "GPU", type: "string", jsonPath: ".status.plan.gpuProduct" },
  { name: "GPUs/Replica", type: "integer", jsonPath: ".status.plan.gpusPerReplica", priority: 1 },
  { name: "TP", type: "integer", jsonPath: ".status.plan.tensorParallelism", priority: 1 },
  { name: "Nodes/Replica", type: "integer", jsonPath: ".status.plan.nodesPerReplica", priority: 1 },
  { name: "KV-Tokens", type: "integer", jsonPath: ".status.plan.kvCacheTokensPerReplica", priority: 1 },
  { name: "Replicas", type: "integer", jsonPath: ".spec.replicas" },
  { name: "Ready", type: "integer", jsonPath: ".status.readyReplicas" },
  { name: "Desired", type: "integer", jsonPath: ".status.desiredReplicas", priority: 1 },
  { name: "KV-Util", type: "number", jsonPath: ".status.autoscaler.kvCacheUtilization", priority: 1 },
  { name: "Queue", type: "number", jsonPath: ".status.autoscaler.queueDepth", priority: 1 },
  { name: "TTFT-OK", type: "number", jsonPath: ".status.autoscaler.ttftWithinTarget", priority: 1 },
  // Ready's reason: AllReplicasReady, PartiallyReady, Idle (scaled to zero), Activating (scaling from zero), …
  { name: "Status", type: "string", jsonPath: ".status.conditions[?(@.type=='Ready')].reason" },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
];

/** The ModelDeployment CustomResourceDefinition, as a plain object. */
export function modelDeploymentCrd(): JsonSchema {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${PLURAL}.${API_GROUP}`,
      annotations: { "gpufleet.io/generated-by": "operator/api/crd.ts (npm run gen:crds)" },
    },
    spec: {
      group: API_GROUP,
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: SINGULAR,
        shortNames: SHORT_NAMES,
        categories: ["gpufleet", "all"],
      },
      scope: "Namespaced",
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: {
            status: {},
            scale: {
              specReplicasPath: ".spec.replicas",
              statusReplicasPath: ".status.replicas",
              labelSelectorPath: ".status.selector",
            },
          },
          additionalPrinterColumns: printerColumns,
          schema: {
            openAPIV3Schema: {
              type: "object",
              description:
                "A large-language-model inference service on NVIDIA GPUs: gpufleet sizes it, places it on a fitting GPU pool, runs it with vLLM or TensorRT-LLM and scales it on KV-cache pressure and queue depth.",
              required: ["spec"],
              "x-kubernetes-validations": [
                {
                  // The name is the Deployment's, the Service's (a DNS-1035 label: no dots) and a label value (63).
                  rule: "size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                  message:
                    "metadata.name must be a DNS-1035 label: at most 63 lower-case letters, digits and '-', starting with a letter and not ending with '-' (no dots: it names the Service)",
                  reason: "FieldValueInvalid",
                },
              ],
              properties: {
                apiVersion: { type: "string", description: "API version of this object." },
                kind: { type: "string", description: "Kind of this object." },
                metadata: { type: "object" },
                spec: toCrdSchema(ModelDeploymentSpecSchema),
                status: toCrdSchema(ModelDeploymentStatusSchema),
              },
            },
          },
        },
      ],
    },
  };
}

/** The CRD as the YAML file kept in `crds/` (and shipped in the Helm chart). */
export function modelDeploymentCrdYaml(): string {
  return (
    "---\n# Generated from operator/api/modeldeployment.ts by `npm run gen:crds`. Do not edit by hand.\n" +
    stringify(modelDeploymentCrd(), { lineWidth: 0 })
  );
}

export const CRD_FILE = "crds/gpufleet.io_modeldeployments.yaml";
