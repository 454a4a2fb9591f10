import { Type, type Static } from "@sinclair/typebox";
import { conditionList } from "./modeldeployment.js";
import { StringEnum, withCel } from "./schema-helpers.js";

/**
 * Tenancy API (gpufleet.io/v1alpha1): a platform team declares usage tiers (cluster-scoped `UsageTier`)
 * and tenants (namespaced `Tenant`, which names its tier and the Secrets holding its API keys). The
 * gateway (gateway/tenancy) authenticates requests with those keys, enforces the tier and writes what
 * each tenant used into the Tenant's status. The CRDs are generated from these schemas (`npm run gen:crds`).
 */

export const TIER_KIND = "UsageTier";
export const TIER_PLURAL = "usagetiers";
export const TENANT_KIND = "Tenant";
export const TENANT_PLURAL = "tenants";

export const OVER_LIMIT_ACTIONS = ["Reject", "Sheddable"] as const;
export type OverLimitAction = (typeof OVER_LIMIT_ACTIONS)[number];

export const KEY_FORMATS = ["Plain", "SHA256"] as const;
export type KeyFormat = (typeof KEY_FORMATS)[number];

/** Largest value a limit takes (10^12 tokens: far beyond any real day, well inside a double). */
const MAX_LIMIT = 1_000_000_000_000;
export const MAX_PRIORITY = 1000;
export const MAX_TIER_MODELS = 256;
export const MAX_API_KEYS = 16;
/** Models listed per period in a Tenant's status (the rest are summed under "other"). */
export const MAX_STATUS_MODELS = 64;
export const MAX_STATUS_GATEWAYS = 64;

const DNS_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
const CONFIG_KEY = "^[-._a-zA-Z0-9]+$";
const NAME_RULE = {
  // The name is a Prometheus label value and part of the status; a DNS label keeps it short and plain.
  rule: "size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
  message:
    "metadata.name must be a DNS-1123 label: at most 63 lower-case letters, digits and '-', not starting or ending with '-'",
  reason: "FieldValueInvalid" as const,
};
export const TIER_NAME_RULE = NAME_RULE;
export const TENANT_NAME_RULE = NAME_RULE;

const limit = (description: string) => Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LIMIT, description }));

const limitFields = {
  tokensPerMinute: limit(
    "Prompt + completion tokens a tenant may use per minute (a token bucket refilled continuously; a request reserves its max_tokens while it runs and settles to what it used).",
  ),
  tokensPerDay: limit("Prompt + completion tokens a tenant may use per UTC day."),
  requestsPerMinute: limit("Requests a tenant may start per minute (a token bucket refilled continuously)."),
  maxConcurrentRequests: limit("Requests a tenant may have in flight at once."),
};

const dayCoversMinute = {
  rule: "!has(self.tokensPerDay) || !has(self.tokensPerMinute) || self.tokensPerDay >= self.tokensPerMinute",
  message: "tokensPerDay must be at least tokensPerMinute",
  fieldPath: ".tokensPerDay",
};

export const UsageTierSpecSchema = withCel(
  Type.Object(
    {
      ...limitFields,
      priority: Type.Integer({
        minimum: 0,
        maximum: MAX_PRIORITY,
        default: 0,
        description:
          "Priority band of this tier's requests when models are saturated: higher is served first, the lowest is shed first.",
      }),
      models: Type.Optional(
        Type.Array(Type.String({ minLength: 1, maxLength: 253 }), {
          maxItems: MAX_TIER_MODELS,
          "x-kubernetes-list-type": "set",
          description:
            "Models or model aliases (the OpenAI `model` field) this tier may call. Absent: every model.",
        }),
      ),
      overLimit: StringEnum(OVER_LIMIT_ACTIONS, {
        default: "Reject",
        description:
          "Over a limit: Reject answers 429 with x-ratelimit-* headers and Retry-After; Sheddable admits the request in the lowest band (below every tier), so it is served from spare capacity only and shed first.",
      }),
      defaultMaxTokens: Type.Integer({
        minimum: 1,
        maximum: 1_000_000,
        default: 1024,
        description:
          "Completion tokens reserved for a request that gives no max_tokens (settled to what it used when it ends).",
      }),
      maxQueueWaitMs: Type.Optional(
        Type.Integer({
          minimum: 100,
          maximum: 600_000,
          description:
            "Longest a request of this tier waits in the gateway when its model is saturated; one predicted to wait longer is answered 429 at once. Set it from the tier's TTFT target less the engine's own time to first token (e.g. 1500 for a 2 s target). Absent: the gateway's hold limit.",
        }),
      ),
    },
    { description: "Limits, priority and models of a usage tier." },
  ),
  [dayCoversMinute],
);

const SecretKeyRef = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 253, pattern: DNS_SUBDOMAIN, description: "Secret in the Tenant's namespace." }),
    key: Type.String({ minLength: 1, maxLength: 253, pattern: CONFIG_KEY, default: "key", description: "Key in the Secret." }),
  },
  { description: "Where the API key is kept." },
);

const ApiKey = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 63,
      pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
      description: "A name for this key (shown in conditions; the key itself never is).",
    }),
    secretRef: SecretKeyRef,
    format: StringEnum(KEY_FORMATS, {
      default: "Plain",
      description:
        "Plain: the Secret holds the key itself. SHA256: it holds the key's SHA-256 digest as 64 hex digits (the gateway never sees the key at rest).",
    }),
  },
  { description: "One API key (Authorization: Bearer <key>)." },
);

export const TenantSpecSchema = withCel(
  Type.Object(
    {
      tier: Type.String({
        minLength: 1,
        maxLength: 63,
        pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description: "Name of the UsageTier this tenant is on.",
      }),
      apiKeys: Type.Array(ApiKey, {
        minItems: 1,
        maxItems: MAX_API_KEYS,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        description: "The tenant's API keys; any of them authenticates it (rotate by adding the new one first).",
      }),
      overrides: Type.Optional(
        withCel(
          Type.Object(
            {
              ...limitFields,
              priority: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_PRIORITY, description: "Priority band instead of the tier's." })),
            },
            { description: "Per-tenant values that replace the tier's (at least one; else leave it out).", minProperties: 1 },
          ),
          [dayCoversMinute],
        ),
      ),
      suspended: Type.Boolean({
        default: false,
        description: "Refuse every request of this tenant (403) while true; keys stay as they are.",
      }),
    },
    { description: "A tenant of the inference gateway: its tier and its API keys." },
  ),
  [
    {
      rule: "self.apiKeys.all(a, self.apiKeys.exists_one(b, b.secretRef.name == a.secretRef.name && b.secretRef.key == a.secretRef.key))",
      message: "two apiKeys must not name the same Secret key",
      fieldPath: ".apiKeys",
    },
  ],
);

const UsageEntry = Type.Object(
  {
    model: Type.String({ maxLength: 253, description: "The OpenAI `model` the requests named (\"other\" sums the rest)." }),
    requests: Type.Integer({ minimum: 0, description: "Requests that completed (any status from the engine)." }),
    promptTokens: Type.Integer({ minimum: 0, description: "Prompt tokens (the engine's usage figures where given)." }),
    completionTokens: Type.Integer({ minimum: 0, description: "Completion tokens." }),
    gpuSeconds: Type.Number({ minimum: 0, description: "GPU-seconds attributed by token share of each engine replica's time." }),
    costUSD: Type.Number({ minimum: 0, description: "gpuSeconds priced with the gateway's GPU price table (chart values)." }),
    gramsCO2: Type.Number({ minimum: 0, description: "gpuSeconds at the GPU's board power and the configured grid intensity." }),
  },
  { description: "Usage of one model in a period." },
);

const usageList = Type.Array(UsageEntry, { maxItems: MAX_STATUS_MODELS + 1 });

export const TenantStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
    conditions: conditionList(8),
    today: Type.Optional(
      Type.Object(
        {
          date: Type.String({ maxLength: 10, description: "UTC day, YYYY-MM-DD." }),
          models: usageList,
        },
        { description: "Usage on the current UTC day." },
      ),
    ),
    thisMonth: Type.Optional(
      Type.Object(
        {
          month: Type.String({ maxLength: 7, description: "UTC month, YYYY-MM." }),
          models: usageList,
        },
        { description: "Usage in the current UTC month." },
      ),
    ),
    gateways: Type.Optional(
      Type.Array(
        Type.Object({
          replica: Type.String({ maxLength: 63 }),
          lastReportTime: Type.String({ format: "date-time" }),
          lastReportId: Type.Optional(
            Type.String({
              maxLength: 64,
              description:
                "Id of the replica's last report applied here: a replica whose PUT's answer was lost reads it back and does not add the same report twice.",
            }),
          ),
        }),
        {
          maxItems: MAX_STATUS_GATEWAYS,
          description: "Gateway replicas that reported usage recently; each takes 1/n of the per-minute and concurrency limits.",
        },
      ),
    ),
  },
  { description: "Usage written by the gateway replicas (each adds what it metered since its last report)." },
);

export type UsageTierSpec = Static<typeof UsageTierSpecSchema>;
export type TenantSpec = Static<typeof TenantSpecSchema>;
export type TenantStatus = Static<typeof TenantStatusSchema>;
export type UsageEntry = Static<typeof UsageEntry>;

export interface UsageTier {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; uid?: string; generation?: number };
  spec: UsageTierSpec;
}

export interface Tenant {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; uid?: string; generation?: number; resourceVersion?: string };
  spec: TenantSpec;
  status?: TenantStatus;
}
