import { stringify } from "yaml";
import { toCrdSchema, type JsonSchema } from "./crd.js";
import { API_GROUP, API_VERSION } from "./modeldeployment.js";
import {
  TENANT_KIND,
  TENANT_NAME_RULE,
  TENANT_PLURAL,
  TIER_KIND,
  TIER_NAME_RULE,
  TIER_PLURAL,
  TenantSpecSchema,
  TenantStatusSchema,
  UsageTierSpecSchema,
} from "./tenancy.js";

/** The UsageTier and Tenant CustomResourceDefinitions (operator/api/tenancy.ts), as plain objects. */

function crd(input: {
  kind: string;
  plural: string;
  shortNames: string[];
  scope: "Cluster" | "Namespaced";
  description: string;
  spec: JsonSchema;
  status?: JsonSchema;
  nameRule: JsonSchema;
  columns: JsonSchema[];
}): JsonSchema {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${input.plural}.${API_GROUP}`,
      annotations: { "gpufleet.io/generated-by": "operator/api/tenancy-crd.ts (npm run gen:crds)" },
    },
    spec: {
      group: API_GROUP,
      names: {
        kind: input.kind,
        listKind: `${input.kind}List`,
        plural: input.plural,
        singular: input.kind.toLowerCase(),
        shortNames: input.shortNames,
        categories: ["gpufleet"],
      },
      scope: input.scope,
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          ...(input.status ? { subresources: { status: {} } } : {}),
          additionalPrinterColumns: input.columns,
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: input.description,
              required: ["spec"],
              "x-kubernetes-validations": [input.nameRule],
              properties: {
                apiVersion: { type: "string", description: "API version of this object." },
                kind: { type: "string", description: "Kind of this object." },
                metadata: { type: "object" },
                spec: input.spec,
                ...(input.status ? { status: input.status } : {}),
              },
            },
          },
        },
      ],
    },
  };
}

export function usageTierCrd(): JsonSchema {
  return crd({
    kind: TIER_KIND,
    plural: TIER_PLURAL,
    shortNames: ["tier"],
    scope: "Cluster",
    description:
      "A usage tier of the inference gateway: tokens per minute and per day, requests per minute, concurrent requests, priority band, allowed models, and what happens over a limit.",
    spec: toCrdSchema(UsageTierSpecSchema),
    nameRule: TIER_NAME_RULE as unknown as JsonSchema,
    columns: [
      { name: "Priority", type: "integer", jsonPath: ".spec.priority" },
      { name: "Tokens/min", type: "integer", jsonPath: ".spec.tokensPerMinute" },
      { name: "Tokens/day", type: "integer", jsonPath: ".spec.tokensPerDay" },
      { name: "Concurrent", type: "integer", jsonPath: ".spec.maxConcurrentRequests" },
      { name: "Over-limit", type: "string", jsonPath: ".spec.overLimit" },
      { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
    ],
  });
}

export function tenantCrd(): JsonSchema {
  return crd({
    kind: TENANT_KIND,
    plural: TENANT_PLURAL,
    shortNames: ["tnt"],
    scope: "Namespaced",
    description:
      "A tenant of the inference gateway: its UsageTier, its API keys (references to Secrets), optional per-tenant limits; the status holds what it used today and this month.",
    spec: toCrdSchema(TenantSpecSchema),
    status: toCrdSchema(TenantStatusSchema),
    nameRule: TENANT_NAME_RULE as unknown as JsonSchema,
    columns: [
      { name: "Tier", type: "string", jsonPath: ".spec.tier" },
      { name: "Suspended", type: "boolean", jsonPath: ".spec.suspended", priority: 1 },
      { name: "Ready", type: "string", jsonPath: ".status.conditions[?(@.type=='Ready')].status" },
      { name: "Reason", type: "string", jsonPath: ".status.conditions[?(@.type=='Ready')].reason", priority: 1 },
      { name: "Day", type: "string", jsonPath: ".status.today.date", priority: 1 },
      { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
    ],
  });
}

const header = "---\n# Generated from operator/api/tenancy.ts by `npm run gen:crds`. Do not edit by hand.\n";
export const usageTierCrdYaml = (): string => header + stringify(usageTierCrd(), { lineWidth: 0 });
export const tenantCrdYaml = (): string => header + stringify(tenantCrd(), { lineWidth: 0 });

/** Where the tenancy CRDs are written, with their content. */
export const TENANCY_CRD_FILES: ReadonlyArray<readonly [string, () => string]> = [
  ["crds/gpufleet.io_usagetiers.yaml", usageTierCrdYaml],
  ["charts/gpufleet/crds/gpufleet.io_usagetiers.yaml", usageTierCrdYaml],
  ["crds/gpufleet.io_tenants.yaml", tenantCrdYaml],
  ["charts/gpufleet/crds/gpufleet.io_tenants.yaml", tenantCrdYaml],
];
