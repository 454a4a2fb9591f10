import { Type, type Static } from "@sinclair/typebox";
import { ENGINE_ARGS_CEL_MESSAGE, engineArgsCelRule } from "./engine-args.js";
import { IntOrAuto, StringEnum, StringMap, withCel } from "./schema-helpers.js";

/**
 * The `ModelDeployment` API (gpufleet.io/v1alpha1): the one source of truth. The TypeScript types below
 * and the CRD in `crds/` (see `crd.ts`, `npm run gen:crds`) are both derived from these schemas.
 *
 * Fields that carry a `default` are listed as required: the API server fills defaults in before it
 * validates, so users may omit them, and the operator always reads them set.
 */

export const API_GROUP = "gpufleet.io";
export const API_VERSION = "v1alpha1";
export const KIND = "ModelDeployment";
export const PLURAL = "modeldeployments";
export const SINGULAR = "modeldeployment";
export const SHORT_NAMES = ["md", "mdep"];

export const QUANTIZATIONS = ["none", "fp8", "awq", "gptq", "int8", "int4"] as const;
export type Quantization = (typeof QUANTIZATIONS)[number];

export const KV_CACHE_DTYPES = ["auto", "fp16", "bf16", "fp8", "fp8_e4m3", "fp8_e5m2"] as const;
export type KvCacheDtype = (typeof KV_CACHE_DTYPES)[number];

export const ENGINES = ["vllm", "tensorrt-llm", "sglang"] as const;
export type EngineKind = (typeof ENGINES)[number];
/** vLLM's --scheduling-policy values (vllm/config/scheduler.py SchedulerPolicy). */
export const SCHEDULING_POLICIES = ["fcfs", "priority"] as const;
export type SchedulingPolicy = (typeof SCHEDULING_POLICIES)[number];


/** A DNS-1123 subdomain: Secret, ConfigMap and PersistentVolumeClaim names. */
const DNS_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/** A key in a Secret or ConfigMap. */
const CONFIG_KEY = "^[-._a-zA-Z0-9]+$";
/** A label key or taint key: an optional DNS prefix and '/', then a name of at most 63 characters. */
const QUALIFIED_NAME_MAX = 316;
const objectRef = (kind: string) =>
  Type.String({ minLength: 1, maxLength: 253, pattern: DNS_SUBDOMAIN, description: `Name of the ${kind} in the same namespace.` });
const configKey = (description: string) =>
  Type.String({ minLength: 1, maxLength: 253, pattern: CONFIG_KEY, description });

const secretKeyRef = (description: string) =>
  Type.Object(
  {
    name: objectRef("Secret"),
    key: Type.String({
      minLength: 1,
      maxLength: 253,
      pattern: CONFIG_KEY,
      default: "token",
      description: "Key in the Secret that holds the Hugging Face access token.",
    }),
  },
  { description },
);

const HuggingFaceSource = Type.Object(
  {
    repo: Type.String({
      pattern: "^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$",
      maxLength: 200,
      description: "Hugging Face repository id, `organization/name` (e.g. meta-llama/Llama-3.1-8B-Instruct).",
    }),
    revision: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 128,
        description: "Branch, tag or commit to load; pin a commit for reproducible fleets. Default: main.",
      }),
    ),
    tokenSecretRef: Type.Optional(
      secretKeyRef(
        "Secret in the same namespace holding a Hugging Face token for gated models. The pods read it themselves; the operator reads it (bounded to 4 KiB, never logged or put in status) to fetch config.json only where the chart grants it `get` on Secrets in this namespace (hub.tenantTokenNamespaces).",
      ),
    ),
  },
  { description: "Load the model from the Hugging Face Hub." },
);

const PvcSource = Type.Object(
  {
    claimName: objectRef("PersistentVolumeClaim"),
    path: Type.String({
      pattern: "^/",
      maxLength: 1024,
      default: "/",
      description: "Absolute path of the model directory inside the volume.",
    }),
  },
  { description: "Load the model from a PersistentVolumeClaim, mounted read-only." },
);

const ConfigMapConfigSource = Type.Object(
  {
    name: objectRef("ConfigMap"),
    key: Type.String({
      minLength: 1,
      maxLength: 253,
      pattern: CONFIG_KEY,
      default: "config.json",
      description: "Key in the ConfigMap that holds the model's config.json (at most 256 KiB).",
    }),
  },
  {
    description:
      "A ConfigMap in the same namespace holding the model's config.json, for pvc and uri sources: the operator sizes the model from it as it does a Hub model's (kubectl create configmap NAME --from-file=config.json).",
  },
);

const ModelSource = withCel(
  Type.Object(
    {
      configMap: Type.Optional(ConfigMapConfigSource),
      huggingFace: Type.Optional(HuggingFaceSource),
      pvc: Type.Optional(PvcSource),
      uri: Type.Optional(
        Type.String({
          pattern: "^(s3|gs)://[a-z0-9][a-z0-9.\\-_]{1,221}(/.*)?$",
          maxLength: 2048,
          description: "Object-store URI of the model directory: s3://bucket/path or gs://bucket/path.",
        }),
      ),
    },
    { description: "Where the weights come from. Exactly one of huggingFace, pvc or uri." },
  ),
  [
    {
      rule: "[has(self.huggingFace), has(self.pvc), has(self.uri)].filter(x, x).size() == 1",
      message: "set exactly one model source: huggingFace, pvc or uri",
    },
    {
      rule: "!has(self.configMap) || !has(self.huggingFace)",
      message: "source.configMap is for pvc and uri sources; a huggingFace source's config.json is read from the Hub",
    },
  ],
);

const ArchitectureOverride = withCel(
  Type.Object(
    {
      parameters: Type.Number({ exclusiveMinimum: 0, description: "Total parameters, in billions (e.g. 8.03)." }),
      activeParameters: Type.Optional(
        Type.Number({ exclusiveMinimum: 0, description: "Parameters active per token, in billions (mixture-of-experts only)." }),
      ),
      layers: Type.Integer({ minimum: 1, maximum: 1024, description: "Transformer layers (num_hidden_layers)." }),
      hiddenSize: Type.Integer({ minimum: 1, description: "Hidden size (hidden_size)." }),
      attentionHeads: Type.Integer({ minimum: 1, description: "Attention heads (num_attention_heads)." }),
      kvHeads: Type.Integer({ minimum: 1, description: "Key/value heads (num_key_value_heads); equal to attentionHeads without GQA." }),
      headDim: Type.Optional(Type.Integer({ minimum: 1, description: "Dimension of one head. Default: hiddenSize / attentionHeads." })),
      maxContextLength: Type.Integer({ minimum: 1, description: "Longest context the model supports (max_position_embeddings)." }),
      intermediateSize: Type.Optional(
        Type.Integer({ minimum: 1, description: "Feed-forward width (intermediate_size). Default: 3.5 × hiddenSize." }),
      ),
      vocabSize: Type.Optional(Type.Integer({ minimum: 1, description: "Vocabulary size (vocab_size). Default: 32000." })),
    },
    {
      description:
        "Shape of a model the built-in catalogue does not know, taken from its config.json. Used for sizing only.",
    },
  ),
  [
    { rule: "self.kvHeads <= self.attentionHeads", message: "kvHeads cannot exceed attentionHeads" },
    {
      rule: "self.attentionHeads % self.kvHeads == 0",
      message: "attentionHeads must be a multiple of kvHeads (grouped-query attention)",
    },
    {
      rule: "!has(self.activeParameters) || self.activeParameters <= self.parameters",
      message: "activeParameters cannot exceed parameters",
    },
  ],
);

const ModelSpec = Type.Object(
  {
    name: Type.String({
      pattern: "^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
      maxLength: 200,
      description: "Name clients use in the OpenAI `model` field (vLLM's --served-model-name).",
    }),
    source: ModelSource,
    architecture: Type.Optional(ArchitectureOverride),
    quantization: StringEnum(QUANTIZATIONS, {
      default: "none",
      description: "Weight quantization: none (the checkpoint's dtype), fp8, awq, gptq, int8 or int4.",
    }),
    kvCacheDtype: StringEnum(KV_CACHE_DTYPES, {
      default: "auto",
      description: "Data type of the KV cache; fp8 halves its memory on GPUs that support it. auto follows the model.",
    }),
    maxContextLength: Type.Optional(
      Type.Integer({
        minimum: 256,
        maximum: 10_000_000,
        description: "Longest prompt plus output, in tokens (vLLM's --max-model-len). Default: the model's own maximum.",
      }),
    ),
  },
  { description: "The model to serve." },
);

const KeyRef = (kind: string) =>
  Type.Object(
    {
      name: objectRef(kind),
      key: configKey(`Key in the ${kind}.`),
      optional: Type.Optional(Type.Boolean({ description: `Whether the ${kind} or its key may be missing.` })),
    },
    { description: `A key of a ${kind} in the same namespace.` },
  );

const EnvVarSource = withCel(
  Type.Object(
    {
      secretKeyRef: Type.Optional(KeyRef("Secret")),
      configMapKeyRef: Type.Optional(KeyRef("ConfigMap")),
      fieldRef: Type.Optional(
        Type.Object(
          {
            apiVersion: Type.Optional(Type.String({ maxLength: 64, description: "Version of the schema fieldPath is written in." })),
            fieldPath: Type.String({ minLength: 1, maxLength: 256, description: "Field of the pod, e.g. metadata.name or status.podIP." }),
          },
          { description: "A field of the pod." },
        ),
      ),
      resourceFieldRef: Type.Optional(
        Type.Object(
          {
            containerName: Type.Optional(Type.String({ maxLength: 63, description: "Container whose resource is read." })),
            resource: Type.String({ minLength: 1, maxLength: 64, description: "Resource, e.g. limits.memory." }),
            divisor: Type.Optional(Type.String({ maxLength: 64, description: "Unit of the value, a quantity such as 1Mi." })),
          },
          { description: "A resource limit or request of a container." },
        ),
      ),
    },
    { description: "A core/v1 EnvVarSource: exactly one of secretKeyRef, configMapKeyRef, fieldRef or resourceFieldRef." },
  ),
  [
    {
      rule: "[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef), has(self.resourceFieldRef)].filter(x, x).size() == 1",
      message: "valueFrom takes exactly one of secretKeyRef, configMapKeyRef, fieldRef or resourceFieldRef",
    },
  ],
);

const EnvVar = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 256, pattern: "^[-._a-zA-Z][-._a-zA-Z0-9]*$", description: "Variable name." }),
    value: Type.Optional(Type.String({ maxLength: 32768, description: "Literal value." })),
    valueFrom: Type.Optional(EnvVarSource),
  },
  { description: "An environment variable, as in a core/v1 container." },
);

const EngineSpec = Type.Object(
  {
    kind: StringEnum(ENGINES, {
      default: "vllm",
      description: "Inference engine: vllm (vllm/vllm-openai), tensorrt-llm (NVIDIA's trtllm-serve) or sglang (lmsysorg/sglang).",
    }),
    image: Type.Optional(
      Type.String({ minLength: 1, maxLength: 512, description: "Container image. Default: the pinned release image of the engine." }),
    ),
    args: Type.Optional(
      withCel(
        // Sizes held to what the API server's CEL cost budget allows for the rule below (48 × 1 KiB).
        Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), {
          maxItems: 48,
          description:
            "Extra engine arguments, appended after the ones the operator derives from the plan. Each entry is one flag with its value after '=' (--max-num-seqs=128); flags the operator manages are refused in any spelling or abbreviation.",
        }),
        [{ rule: engineArgsCelRule(), message: ENGINE_ARGS_CEL_MESSAGE }],
      ),
    ),
    schedulingPolicy: Type.Optional(
      StringEnum(SCHEDULING_POLICIES, {
        description:
          "How the engine orders its waiting queue (engine vllm): fcfs (default) by arrival, or priority (vLLM --scheduling-policy priority) by the request's priority, which the gateway sets from the tenant's UsageTier.priority (a higher band first) and which replaces any priority the client sent; the engine also preempts the lowest priority first when its KV cache runs out. Changing it restarts the engines.",
      }),
    ),
    runAsUser: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 2147483647,
        description:
          "User id the engine runs as. Default 1000: the engines run as any non-root user (HOME is an emptyDir), which the restricted Pod Security Standard requires. 0 runs the image as root; a namespace enforcing restricted then refuses the pods (the Ready condition says so).",
      }),
    ),
    env: Type.Optional(
      Type.Array(EnvVar, {
        maxItems: 64,
        description: "Extra environment variables for the engine container.",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
      }),
    ),
  },
  { default: {}, description: "The inference engine that runs the model." },
);

const GpuSpec = Type.Object(
  {
    products: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 128 }), {
        minItems: 1,
        maxItems: 16,
        "x-kubernetes-list-type": "set",
        description:
          "Allowed GPU products in order of preference, as GPU Feature Discovery labels them (nvidia.com/gpu.product, e.g. NVIDIA-H100-80GB-HBM3). Default: any GPU in the cluster that fits.",
      }),
    ),
    tensorParallelism: withCel(
      IntOrAuto({
        default: "auto",
        description:
          "GPUs one replica spans with tensor parallelism: auto (the smallest degree that fits) or a power of two up to 64.",
      }),
      [
        {
          rule: "type(self) == string ? self == 'auto' : self in [1, 2, 4, 8, 16, 32, 64]",
          message: "tensorParallelism must be 'auto' or a power of two from 1 to 64",
        },
      ],
    ),
    pipelineParallelism: withCel(
      IntOrAuto({
        default: "auto",
        description:
          "Pipeline stages (one node each) one replica spans: auto (one node when the model fits one, else the fewest nodes that hold it, run as a LeaderWorkerSet group), 1 (never span nodes), or 2 to 8.",
      }),
      [
        {
          rule: "type(self) == string ? self == 'auto' : (self >= 1 && self <= 8)",
          message: "pipelineParallelism must be 'auto' or an integer from 1 to 8",
        },
      ],
    ),
    memoryUtilization: Type.Number({
      exclusiveMinimum: 0,
      maximum: 1,
      default: 0.9,
      description: "Share of each GPU's memory the engine may use for weights, activations and KV cache, in (0, 1].",
    }),
  },
  { default: {}, description: "Which GPUs to run on and how to split the model across them." },
);

const AutoscalingSpec = withCel(
  Type.Object(
    {
      enabled: Type.Boolean({
        default: false,
        description: "Let the operator own replicas and scale on KV-cache utilization and queue depth.",
      }),
      minReplicas: Type.Integer({ minimum: 0, maximum: 1000, default: 1, description: "Fewest replicas." }),
      maxReplicas: Type.Integer({ minimum: 1, maximum: 1000, default: 4, description: "Most replicas." }),
      kvCacheUtilizationTarget: Type.Number({
        exclusiveMinimum: 0,
        maximum: 1,
        default: 0.8,
        description: "Target share of KV-cache blocks in use per replica, in (0, 1].",
      }),
      queueDepthTargetPerReplica: Type.Number({
        exclusiveMinimum: 0,
        maximum: 10_000,
        default: 4,
        description: "Target number of requests waiting for KV cache per replica.",
      }),
      ttftTargetSeconds: Type.Optional(
        Type.Number({
          exclusiveMinimum: 0,
          maximum: 600,
          description:
            "Time-to-first-token objective in seconds (what your users wait for the first token). The autoscaler derives its token-throughput headroom from it (a tighter objective keeps more spare capacity for bursts) and reports how many requests met it.",
        }),
      ),
      tokenThroughputUtilizationTarget: Type.Optional(
        Type.Number({
          exclusiveMinimum: 0,
          maximum: 1,
          description:
            "Target share of one replica's token throughput (prompt + generated tokens/s, from the engines' counters) each replica carries at the recent peak, in (0, 1]. Unset: derived from the measured burstiness of the demand, the learned time to ready and ttftTargetSeconds (2 s without one), and applied to the mean demand of the last minute. Set it to use a fixed target on the peak instead.",
        }),
      ),
      scaleUpStabilizationSeconds: Type.Integer({
        minimum: 0,
        maximum: 3600,
        default: 0,
        description: "Lowest recommendation over this window is used for scale-up (0 reacts at once).",
      }),
      scaleDownStabilizationSeconds: Type.Integer({
        minimum: 0,
        maximum: 3600,
        default: 300,
        description: "Highest recommendation over this window is used for scale-down, so replicas do not flap.",
      }),
      forecast: Type.Optional(
        Type.Boolean({
          description:
            "Also provision for the demand forecast at the horizon (the learned time for a new replica to become ready + one decision interval), from the daily cycle in the autoscaler's history (kept in the ConfigMap <name>-autoscaling-history). Never scales below what the measured demand asks; does nothing until two days of history show a daily cycle. The status reason names the forecast when it drove a decision.",
        }),
      ),
      scaleToZeroIdleSeconds: Type.Optional(
        Type.Integer({
          minimum: 60,
          maximum: 86_400,
          description:
            "With minReplicas 0: scale to zero after this long without a request (none seen by the gateway, none counted by the engines). Requests that reach the gateway while the model is at zero are held and wake it (status Ready reason Activating, then AllReplicasReady); at zero the reason is Idle.",
        }),
      ),
    },
    { default: {}, description: "Autoscaling on what limits an LLM server: KV-cache pressure and queue depth." },
  ),
  [
    { rule: "self.minReplicas <= self.maxReplicas", message: "autoscaling.minReplicas must not exceed maxReplicas" },
    {
      rule: "self.minReplicas > 0 || has(self.scaleToZeroIdleSeconds)",
      message: "autoscaling.minReplicas 0 needs scaleToZeroIdleSeconds",
    },
  ],
);

const Toleration = Type.Object(
  {
    key: Type.Optional(Type.String({ maxLength: QUALIFIED_NAME_MAX, description: "Taint key; empty with operator Exists matches all." })),
    operator: Type.Optional(StringEnum(["Exists", "Equal"] as const, { description: "Exists or Equal (default)." })),
    value: Type.Optional(Type.String({ maxLength: 63, description: "Taint value for operator Equal." })),
    effect: Type.Optional(
      StringEnum(["NoSchedule", "PreferNoSchedule", "NoExecute"] as const, { description: "Taint effect to tolerate." }),
    ),
    tolerationSeconds: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 31_536_000, description: "For NoExecute: how long the pod stays bound." }),
    ),
  },
  { description: "A core/v1 Toleration." },
);

// A core/v1 Affinity, with every list and string bounded (an opaque object could hold megabytes).
const labelKey = (description: string) => Type.String({ minLength: 1, maxLength: QUALIFIED_NAME_MAX, description });
const labelValues = Type.Array(Type.String({ maxLength: 63 }), { maxItems: 64, description: "Values (label values)." });

const NodeSelectorRequirement = Type.Object(
  {
    key: labelKey("Node label key (or field name for matchFields)."),
    operator: StringEnum(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] as const, { description: "How key and values relate." }),
    values: Type.Optional(labelValues),
  },
  { description: "A core/v1 NodeSelectorRequirement." },
);

const NodeSelectorTerm = Type.Object(
  {
    matchExpressions: Type.Optional(Type.Array(NodeSelectorRequirement, { maxItems: 16, description: "Requirements on node labels." })),
    matchFields: Type.Optional(Type.Array(NodeSelectorRequirement, { maxItems: 16, description: "Requirements on node fields." })),
  },
  { description: "A core/v1 NodeSelectorTerm: all its requirements hold." },
);

const LabelSelector = Type.Object(
  {
    matchLabels: Type.Optional(
      withCel(StringMap({ maxProperties: 32, valueMaxLength: 63, description: "Labels that must all be present." }), [
        { rule: `self.all(k, size(k) <= ${QUALIFIED_NAME_MAX})`, message: `label keys are at most ${QUALIFIED_NAME_MAX} characters` },
      ]),
    ),
    matchExpressions: Type.Optional(
      Type.Array(
        Type.Object(
          {
            key: labelKey("Label key."),
            operator: StringEnum(["In", "NotIn", "Exists", "DoesNotExist"] as const, { description: "How key and values relate." }),
            values: Type.Optional(labelValues),
          },
          { description: "A label selector requirement." },
        ),
        { maxItems: 16, description: "Requirements on labels." },
      ),
    ),
  },
  { description: "A metav1.LabelSelector." },
);

const PodAffinityTerm = Type.Object(
  {
    labelSelector: Type.Optional(LabelSelector),
    namespaceSelector: Type.Optional(LabelSelector),
    namespaces: Type.Optional(Type.Array(Type.String({ maxLength: 63 }), { maxItems: 16, description: "Namespaces the selector applies to." })),
    topologyKey: labelKey("Node label whose equal values form one topology domain (e.g. kubernetes.io/hostname)."),
    matchLabelKeys: Type.Optional(Type.Array(labelKey("Pod label key."), { maxItems: 16, description: "Pod label keys merged into labelSelector." })),
    mismatchLabelKeys: Type.Optional(Type.Array(labelKey("Pod label key."), { maxItems: 16, description: "Pod label keys excluded from labelSelector." })),
  },
  { description: "A core/v1 PodAffinityTerm." },
);

const weight = Type.Integer({ minimum: 1, maximum: 100, description: "Weight, 1 to 100." });

const PodAffinity = (description: string) =>
  Type.Object(
    {
      requiredDuringSchedulingIgnoredDuringExecution: Type.Optional(
        Type.Array(PodAffinityTerm, { maxItems: 8, description: "Terms that must hold." }),
      ),
      preferredDuringSchedulingIgnoredDuringExecution: Type.Optional(
        Type.Array(Type.Object({ weight, podAffinityTerm: PodAffinityTerm }, { description: "A weighted term." }), {
          maxItems: 8,
          description: "Terms preferred, by weight.",
        }),
      ),
    },
    { description },
  );

const Affinity = Type.Object(
  {
    nodeAffinity: Type.Optional(
      Type.Object(
        {
          requiredDuringSchedulingIgnoredDuringExecution: Type.Optional(
            Type.Object(
              { nodeSelectorTerms: Type.Array(NodeSelectorTerm, { maxItems: 8, description: "Terms ORed together." }) },
              { description: "A core/v1 NodeSelector." },
            ),
          ),
          preferredDuringSchedulingIgnoredDuringExecution: Type.Optional(
            Type.Array(Type.Object({ weight, preference: NodeSelectorTerm }, { description: "A weighted term." }), {
              maxItems: 16,
              description: "Terms preferred, by weight.",
            }),
          ),
        },
        { description: "A core/v1 NodeAffinity." },
      ),
    ),
    podAffinity: Type.Optional(PodAffinity("A core/v1 PodAffinity.")),
    podAntiAffinity: Type.Optional(PodAffinity("A core/v1 PodAntiAffinity.")),
  },
  { description: "A core/v1 Affinity merged with the GPU product affinity the operator sets; every list bounded." },
);

const PlacementSpec = Type.Object(
  {
    nodeSelector: Type.Optional(
      withCel(
        StringMap({ maxProperties: 32, valueMaxLength: 63, description: "Extra node labels the pods must match (32 at most)." }),
        [{ rule: `self.all(k, size(k) <= ${QUALIFIED_NAME_MAX})`, message: `nodeSelector keys are label keys, at most ${QUALIFIED_NAME_MAX} characters` }],
      ),
    ),
    tolerations: Type.Optional(
      Type.Array(Toleration, {
        maxItems: 32,
        description: "Extra tolerations; the nvidia.com/gpu toleration is always added.",
      }),
    ),
    affinity: Type.Optional(Affinity),
  },
  { default: {}, description: "Where the pods may run, on top of the GPU pool the operator picks." },
);

const ServingSpec = Type.Object(
  {
    port: Type.Integer({
      minimum: 1024,
      maximum: 65535,
      default: 8000,
      description: "Port of the OpenAI-compatible API in the pods and on the Service.",
    }),
    terminationGracePeriodSeconds: Type.Integer({
      minimum: 5,
      maximum: 3600,
      default: 120,
      description: "How long a pod going away may spend finishing in-flight requests.",
    }),
  },
  { default: {}, description: "How the model is served." },
);

/** vLLM's accepted --max-lora-rank values (vllm/config/lora.py MaxLoRARanks). */
export const LORA_RANKS = [8, 16, 32, 64, 128, 256, 320, 512] as const;
/** Adapter names: what clients put in `model`; a label-like word so they can be logged and shown safely. */
export const ADAPTER_NAME_PATTERN = "^[a-z0-9]([-a-z0-9._]{0,61}[a-z0-9])?$";
export const MAX_ADAPTERS = 32;
/**
 * An adapter URL: https, a host name or IPv4 address, an optional port, and a path of URL-safe characters
 * (no query, fragment, user info or '..' segment, checked by CEL): nothing a shell or the downloader could
 * read as anything but a URL.
 */
export const ADAPTER_URL_PATTERN = "^https://[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?$";
export const MAX_ADAPTER_URL_BYTES = 17179869184;

const AdapterSource = withCel(
  Type.Object(
    {
      huggingFace: Type.Optional(
        Type.Object(
          {
            repo: Type.String({
              pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$",
              maxLength: 193,
              description: "Hugging Face repository of the adapter, organization/name; the engine downloads it from the Hub.",
            }),
          },
          { description: "An adapter on the Hugging Face Hub (vLLM resolves a repository id itself)." },
        ),
      ),
      path: Type.Optional(
        Type.String({
          pattern: "^/[A-Za-z0-9._/-]*$",
          maxLength: 512,
          description: "Absolute path of the adapter directory inside the engine container (e.g. on the model's PVC under /models).",
        }),
      ),
      url: Type.Optional(
        Type.Object(
          {
            baseUrl: Type.String({
              pattern: ADAPTER_URL_PATTERN,
              maxLength: 512,
              description:
                "https URL of the directory holding the adapter's adapter_config.json and adapter_model.safetensors (PEFT layout); both are fetched from under it.",
            }),
            maxBytes: Type.Integer({
              minimum: 1024,
              maximum: MAX_ADAPTER_URL_BYTES,
              default: 1073741824,
              description: "Largest adapter_model.safetensors accepted, in bytes (default 1 GiB, at most 16 GiB): a larger or longer answer fails the download.",
            }),
            sha256: Type.Optional(
              Type.String({ pattern: "^[a-f0-9]{64}$", description: "SHA-256 of adapter_model.safetensors, hex: a different file fails the download." }),
            ),
          },
          {
            description:
              "An adapter downloaded over https into the pod before the engine starts (an init container of the engine's image; redirects only to the same host; bounded). Adding, changing or removing a URL adapter restarts the engines; huggingFace and path adapters do not.",
          },
        ),
      ),
    },
    { description: "Where the adapter's weights come from. Exactly one of huggingFace, path or url." },
  ),
  [
    {
      rule: "[has(self.huggingFace), has(self.path), has(self.url)].filter(x, x).size() == 1",
      message: "set exactly one adapter source: huggingFace, path or url",
    },
    { rule: "!has(self.path) || !self.path.contains('..')", message: "adapter path must not contain '..'" },
    { rule: "!has(self.url) || !self.url.baseUrl.contains('..')", message: "adapter url must not contain '..'" },
  ],
);

const AdapterSpec = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 63,
      pattern: ADAPTER_NAME_PATTERN,
      description: "Name clients send in the OpenAI `model` field to use this adapter.",
    }),
    source: AdapterSource,
    rank: Type.Integer({ minimum: 1, maximum: 512, default: 16, description: "LoRA rank of the adapter (r in its adapter_config.json); at most lora.maxRank." }),
  },
  { description: "A LoRA adapter served on top of the base model." },
);

const LoraSpec = Type.Object(
  {
    maxLoras: Type.Integer({
      minimum: 1,
      maximum: 64,
      default: 4,
      description: "Adapters one batch may mix (vLLM --max-loras): GPU slots reserved for adapter weights. More adapters than slots are swapped in from CPU memory.",
    }),
    maxRank: Type.Integer({
      enum: [...LORA_RANKS],
      default: 64,
      description: "Largest adapter rank the engine accepts (vLLM --max-lora-rank); the slots are sized for it.",
    }),
  },
  {
    description:
      "LoRA serving limits. Changing them restarts the engines; adding or removing adapters does not. Set this to keep LoRA enabled with no adapters.",
  },
);

export const ModelDeploymentSpecSchema = withCel(
  Type.Object(
    {
      model: ModelSpec,
      engine: EngineSpec,
      gpu: GpuSpec,
      replicas: Type.Integer({
        minimum: 0,
        maximum: 1000,
        default: 1,
        description: "Replicas to run. Written by the autoscaler when autoscaling is enabled; by you, HPA or KEDA otherwise.",
      }),
      autoscaling: AutoscalingSpec,
      placement: PlacementSpec,
      serving: ServingSpec,
      adapters: Type.Optional(
        Type.Array(AdapterSpec, {
          maxItems: MAX_ADAPTERS,
          "x-kubernetes-list-type": "map",
          "x-kubernetes-list-map-keys": ["name"],
          description:
            "LoRA adapters on top of the model (engine vllm). Clients call one by its name in `model`. Added and removed on the running engines without a restart.",
        }),
      ),
      lora: Type.Optional(LoraSpec),
    },
    { description: "What to serve and how; the operator derives GPUs, parallelism and placement from it." },
  ),
  [
    {
      rule: "!has(self.adapters) || size(self.adapters) == 0 || self.engine.kind == 'vllm'",
      message: "LoRA adapters are served by engine vllm only",
      fieldPath: ".adapters",
    },
    {
      rule: "!has(self.adapters) || self.adapters.all(a, a.name != self.model.name)",
      message: "an adapter cannot take the model's own name (spec.model.name)",
      fieldPath: ".adapters",
    },
    {
      rule: "!has(self.adapters) || self.adapters.all(a, a.rank <= (has(self.lora) ? self.lora.maxRank : 64))",
      message: "an adapter's rank exceeds lora.maxRank (default 64)",
      fieldPath: ".adapters",
    },
    {
      rule: "!has(self.engine.schedulingPolicy) || self.engine.schedulingPolicy == 'fcfs' || self.engine.kind == 'vllm'",
      message: "priority scheduling (engine.schedulingPolicy: priority) is served by engine vllm only",
      fieldPath: ".engine.schedulingPolicy",
    },
    {
      rule: "self.engine.kind != 'tensorrt-llm' || !(self.model.quantization in ['awq', 'gptq'])",
      message: "tensorrt-llm takes fp8, int8 or int4 quantization; awq and gptq checkpoints need engine vllm",
      fieldPath: ".model.quantization",
    },
    {
      rule: "!has(self.model.architecture) || !has(self.model.maxContextLength) || self.model.maxContextLength <= self.model.architecture.maxContextLength",
      message: "model.maxContextLength exceeds the context the architecture supports",
      fieldPath: ".model.maxContextLength",
    },
  ],
);

export const ConditionSchema = Type.Object(
  {
    type: Type.String({ maxLength: 316, description: "Condition type: Ready, Progressing, Degraded, …" }),
    status: StringEnum(["True", "False", "Unknown"] as const, { description: "True, False or Unknown." }),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: "Generation the condition is about." })),
    lastTransitionTime: Type.String({ format: "date-time", description: "When the status last changed." }),
    reason: Type.String({ maxLength: 1024, description: "CamelCase reason." }),
    message: Type.String({ maxLength: 32768, description: "What happened, for a person." }),
  },
  { description: "A metav1.Condition." },
);

/** An optional status `conditions` list of at most `maxItems`, a map keyed by `type` (as metav1.Conditions are). */
export function conditionList(maxItems: number) {
  return Type.Optional(
    Type.Array(ConditionSchema, {
      maxItems,
      "x-kubernetes-list-type": "map",
      "x-kubernetes-list-map-keys": ["type"],
    }),
  );
}

const PlanStatus = Type.Object(
  {
    gpuProduct: Type.String({ description: "GPU product chosen (nvidia.com/gpu.product)." }),
    gpusPerReplica: Type.Integer({ description: "GPUs each replica uses." }),
    tensorParallelism: Type.Integer({ description: "Tensor-parallel degree." }),
    pipelineParallelism: Type.Optional(
      Type.Integer({ description: "Pipeline stages per replica (absent or 1: the replica fits one node)." }),
    ),
    nodesPerReplica: Type.Optional(
      Type.Integer({ description: "Pods (one per node) that make one replica: the LeaderWorkerSet group size." }),
    ),
    stages: Type.Optional(
      Type.String({ maxLength: 2048, description: "What each pipeline stage holds: layers, weights and KV per GPU." }),
    ),
    kvCacheTokensPerReplica: Type.Integer({ description: "KV-cache capacity of one replica, in tokens." }),
    maxContextLength: Type.Integer({ description: "Context length the engine is started with." }),
    maxConcurrentFullContextSequences: Type.Optional(
      Type.Number({ description: "Full-length sequences that fit in one replica's KV cache at once." }),
    ),
    weightsGiBPerGpu: Type.Optional(Type.Number({ description: "Weight memory on each GPU, GiB." })),
    pool: Type.Optional(Type.String({ description: "Node pool the replicas are pinned to." })),
  },
  { description: "The sizing plan the operator computed." },
);

const ProductReplicasStatus = Type.Object(
  {
    gpuProduct: Type.String({ maxLength: 128, description: "GPU product (nvidia.com/gpu.product)." }),
    workload: Type.String({ maxLength: 253, description: "Deployment that runs these replicas." }),
    replicas: Type.Integer({ description: "Replicas asked of this product." }),
    readyReplicas: Type.Integer({ description: "Of those, ready." }),
    unschedulable: Type.Integer({ description: "Of those, pending with no node that fits." }),
    gpusPerReplica: Type.Integer({ description: "GPUs one replica of this product takes." }),
    tensorParallelism: Type.Integer({ description: "Tensor-parallel degree on this product." }),
    kvCacheTokensPerReplica: Type.Integer({ description: "KV-cache capacity of one replica on this product, tokens." }),
  },
  { description: "Replicas of one GPU product." },
);

const AdapterStatus = Type.Object(
  {
    name: Type.String({ maxLength: 63, description: "Adapter name." }),
    loadedReplicas: Type.Integer({ description: "Ready replicas that report the adapter loaded." }),
  },
  { description: "Where one LoRA adapter is loaded." },
);

const AutoscalerStatus = Type.Object(
  {
    lastObservationTime: Type.Optional(Type.String({ format: "date-time", description: "When metrics were last read." })),
    kvCacheUtilization: Type.Optional(Type.Number({ description: "Mean KV-cache utilization over ready replicas." })),
    queueDepth: Type.Optional(Type.Number({ description: "Requests waiting, summed over ready replicas." })),
    queueDepthPerReplica: Type.Optional(Type.Number({ description: "Requests waiting per ready replica." })),
    requestsRunning: Type.Optional(Type.Number({ description: "Requests running, summed over ready replicas." })),
    scrapedReplicas: Type.Optional(Type.Integer({ description: "Replicas whose metrics were read." })),
    desiredReplicas: Type.Optional(Type.Integer({ description: "Replicas the policy asked for." })),
    reason: Type.Optional(Type.String({ maxLength: 1024, description: "Why, in words." })),
    ttftWithinTarget: Type.Optional(
      Type.Number({
        description:
          "Share of the requests of the last 5 minutes whose first token came within autoscaling.ttftTargetSeconds, 0..1 (from the engines' time-to-first-token histograms).",
      }),
    ),
    ttftRequests: Type.Optional(Type.Integer({ description: "Requests that ttftWithinTarget counts." })),
    lastScaleTime: Type.Optional(Type.String({ format: "date-time", description: "When replicas last changed." })),
  },
  { description: "The autoscaler's last observation and decision." },
);

export const ModelDeploymentStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(
      Type.Integer({
        description:
          "The last generation whose workload (Deployment, Service, PodDisruptionBudget) the operator applied. It equals metadata.generation only while that spec is served; when the operator cannot write it (NameConflict, ApplyFailed, no GPU fits, an object of the same name still being deleted) it stays at the last generation served, or is absent, and the conditions (each with the current generation) say why.",
      }),
    ),
    conditions: Type.Optional(
      Type.Array(ConditionSchema, {
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        description: "Ready, Progressing, Degraded and CapacityShortfall conditions.",
      }),
    ),
    replicas: Type.Optional(Type.Integer({ description: "Pods that exist." })),
    readyReplicas: Type.Optional(Type.Integer({ description: "Pods ready to serve." })),
    desiredReplicas: Type.Optional(Type.Integer({ description: "Replicas the operator is converging to." })),
    selector: Type.Optional(Type.String({ description: "Label selector of the pods (for the scale subresource)." })),
    plan: Type.Optional(PlanStatus),
    replicasByProduct: Type.Optional(
      Type.Array(ProductReplicasStatus, {
        maxItems: 16,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["gpuProduct"],
        description:
          "Replicas per GPU product: the preferred product first; others hold replicas that spilled over while it was full.",
      }),
    ),
    adapters: Type.Optional(
      Type.Array(AdapterStatus, {
        maxItems: 32,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        description: "Per adapter of spec.adapters, the ready replicas that have it loaded.",
      }),
    ),
    autoscaler: Type.Optional(AutoscalerStatus),
    endpoint: Type.Optional(Type.String({ description: "In-cluster URL of the OpenAI-compatible API." })),
  },
  { description: "What the operator observed and decided." },
);

export type ModelDeploymentSpec = Static<typeof ModelDeploymentSpecSchema>;
export type ModelDeploymentStatus = Static<typeof ModelDeploymentStatusSchema>;
export type Condition = Static<typeof ConditionSchema>;
export type PlanSummary = Static<typeof PlanStatus>;
export type AutoscalerSummary = Static<typeof AutoscalerStatus>;
export type AutoscalingSpec = Static<typeof AutoscalingSpec>;
export type AdapterSpec = Static<typeof AdapterSpec>;
export type ProductReplicas = Static<typeof ProductReplicasStatus>;

export interface ModelDeployment {
  apiVersion: `${typeof API_GROUP}/${typeof API_VERSION}`;
  kind: typeof KIND;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    finalizers?: string[];
  };
  spec: ModelDeploymentSpec;
  status?: ModelDeploymentStatus;
}
