/**
 * Command-line parsing for `gpufleet` (also run as the kubectl plugin `kubectl-gpufleet`).
 *
 * Built on Node's `util.parseArgs` rather than commander: two subcommands with a handful of flags
 * do not need a framework, it adds no dependency to the operator image, and being a pure function
 * from argv to a tagged result it is trivial to unit-test (commander calls process.exit itself).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

export const OUTPUT_FORMATS = ["table", "json", "yaml"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Exit codes: 0 success, 1 the command ran and failed, 2 the command line was wrong. */
export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

export interface PlanCommand {
  command: "plan";
  output: OutputFormat;
  model: string;
  gpu: string;
  gpusPerNode: number;
  /** Nodes of the pool one replica may span (pipeline stages); default 1. */
  nodes?: number;
  quantization?: string;
  kvCacheDtype?: string;
  engine?: string;
  maxContextLength?: number;
  tensorParallelism?: number | "auto";
  gpuMemoryUtilization?: number;
  /** A local config.json to size from (offline), instead of the catalogue or the Hub. */
  configFile?: string;
  /** Hub revision (branch, tag or commit) when the model is read from the Hub. */
  revision?: string;
}

export interface StatusCommand {
  command: "status";
  output: OutputFormat;
  /** Undefined: the kubeconfig context's namespace (else `default`). */
  namespace?: string;
  allNamespaces: boolean;
  kubeconfig?: string;
  context?: string;
}

export interface UsageCommand {
  command: "usage";
  output: OutputFormat;
  /** Undefined: the kubeconfig context's namespace (else `default`). */
  namespace?: string;
  allNamespaces: boolean;
  kubeconfig?: string;
  context?: string;
  /** today: the current UTC day; month: the current UTC month (what Tenant status holds). */
  period: "today" | "month";
  /** One tenant (a Tenant's name) instead of all. */
  tenant?: string;
}

export interface HelpCommand {
  command: "help";
  text: string;
}

export interface VersionCommand {
  command: "version";
}

export interface UsageError {
  command: "usage-error";
  message: string;
  /** Help of the subcommand the error is about (or the top-level help). */
  help: string;
}

export type ParsedCommandLine =
  | PlanCommand
  | StatusCommand
  | UsageCommand
  | HelpCommand
  | VersionCommand
  | UsageError;

export const PROGRAM = "gpufleet";

export const TOP_LEVEL_HELP = `${PROGRAM}: operate gpufleet LLM inference fleets

Usage:
  ${PROGRAM} <command> [flags]
  kubectl gpufleet <command> [flags]     (installed as the kubectl plugin kubectl-gpufleet)

Commands:
  plan      Print the sizing plan of a model on a GPU type (no cluster needed)
  status    Summarize the ModelDeployments of a namespace
  usage     Tokens, GPU-hours, $ and gCO2 per tenant and model (today or this month)
  version   Print the version

Flags:
  -h, --help      Help for ${PROGRAM} or a command
  -v, --version   Print the version

Exit codes: 0 ok, 1 error, 2 usage error.
Run '${PROGRAM} <command> --help' for a command's flags.
`;

export const PLAN_HELP = `Print the sizing plan of a model on a GPU type: tensor parallelism, GPUs per replica,
weight and KV-cache memory per GPU, KV-cache tokens per replica. No cluster is needed.

Usage:
  ${PROGRAM} plan --model <name|hf-repo> --gpu <product|alias> [flags]
  ${PROGRAM} plan <model> <gpu> [flags]

Flags:
  -m, --model <name>                   Model id or Hugging Face repo (e.g. llama-3.1-8b, Qwen/Qwen3-30B-A3B); a repo the
                                       catalogue does not know is sized from its config.json on the Hub
                                       ($GPUFLEET_HF_ENDPOINT, default https://huggingface.co; token from $HF_TOKEN)
      --config <file>                  Size from this config.json instead (offline)
      --revision <rev>                 Hub branch, tag or commit to read (default main)
  -g, --gpu <name>                     GPU product label or alias (e.g. h100, NVIDIA-L40S, a100-80gb)
      --gpus-per-node <n>              GPUs per node in the pool (default 8); tensor parallelism stays inside a node
      --nodes <n>                      Nodes in the pool (default 1); a model no node holds is split into pipeline
                                       stages across up to this many nodes (PP x TP, one LeaderWorkerSet group)
  -q, --quantization <q>               none | fp8 | awq | gptq | int8 | int4 | nvfp4 | mxfp4 (default: the checkpoint's)
      --kv-cache-dtype <dtype>         auto | fp16 | bf16 | fp8 | fp8_e4m3 | fp8_e5m2 (default auto)
      --engine <engine>                vllm | tensorrt-llm (default vllm)
      --max-context <tokens>           Longest sequence to serve (default: the model's maximum)
      --tensor-parallelism <n|auto>    Force a tensor-parallel degree (default auto)
      --gpu-memory-utilization <f>     Fraction of GPU memory the engine may use, 0-1 (default 0.9)
  -o, --output <format>                table | json | yaml (default table)
  -h, --help                           This help
`;

export const STATUS_HELP = `Summarize the ModelDeployments of a namespace: replicas, GPUs in use, KV-cache
utilization and queue depth (from .status.autoscaler), and readiness.

Usage:
  ${PROGRAM} status [flags]

Flags:
  -n, --namespace <ns>       Namespace (default: the kubeconfig context's, else default)
  -A, --all-namespaces       Every namespace
      --kubeconfig <path>    Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)
      --context <name>       Kubeconfig context (default: the current one)
  -o, --output <format>      table | json | yaml (default table)
  -h, --help                 This help
`;

export const USAGE_HELP = `What each tenant used per model, from the Tenants' status (the gateway adds
its metered usage there): requests, prompt and completion tokens, GPU-hours, $ (the gateway's GPU
price table) and grams of CO2, with $ and gCO2 per million tokens.

Usage:
  ${PROGRAM} usage [flags]
  kubectl gpufleet usage [flags]

Flags:
  -n, --namespace <ns>       Namespace of the Tenants (default: the kubeconfig context's, else default)
  -A, --all-namespaces       Every namespace
      --tenant <name>        One tenant only
      --period <p>           today | month (UTC; default today)
      --kubeconfig <path>    Kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster)
      --context <name>       Kubeconfig context (default: the current one)
  -o, --output <format>      table | json | yaml (default table)
  -h, --help                 This help
`;

type OptionsConfig = NonNullable<ParseArgsConfig["options"]>;

const COMMON_OPTIONS = {
  output: { type: "string", short: "o" },
  help: { type: "boolean", short: "h" },
} satisfies OptionsConfig;

const PLAN_OPTIONS = {
  ...COMMON_OPTIONS,
  model: { type: "string", short: "m" },
  gpu: { type: "string", short: "g" },
  "gpus-per-node": { type: "string" },
  nodes: { type: "string" },
  quantization: { type: "string", short: "q" },
  "kv-cache-dtype": { type: "string" },
  engine: { type: "string" },
  "max-context": { type: "string" },
  "tensor-parallelism": { type: "string" },
  "gpu-memory-utilization": { type: "string" },
  config: { type: "string" },
  revision: { type: "string" },
} satisfies OptionsConfig;

const STATUS_OPTIONS = {
  ...COMMON_OPTIONS,
  namespace: { type: "string", short: "n" },
  "all-namespaces": { type: "boolean", short: "A" },
  kubeconfig: { type: "string" },
  context: { type: "string" },
} satisfies OptionsConfig;

class UsageProblem extends Error {}

function outputFormat(raw: string | undefined): OutputFormat {
  if (raw === undefined) return "table";
  if ((OUTPUT_FORMATS as readonly string[]).includes(raw)) return raw as OutputFormat;
  throw new UsageProblem(`--output must be one of ${OUTPUT_FORMATS.join(", ")}, not "${raw}"`);
}

function positiveInteger(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < 1)
    throw new UsageProblem(`--${flag} must be a whole number of at least 1, not "${raw}"`);
  return value;
}

function fraction(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(value) || value <= 0 || value > 1)
    throw new UsageProblem(`--${flag} must be a number in (0, 1], not "${raw}"`);
  return value;
}

/** parseArgs' own errors name the flag already; strip its error-code noise. */
function parseArgsMessage(error: unknown): string {
  return error instanceof Error
    ? error.message.replace(/\s*To specify a positional argument.*$/s, "")
    : String(error);
}

function parsePlan(args: string[]): PlanCommand | HelpCommand {
  const { values, positionals } = parseArgs({
    args,
    options: PLAN_OPTIONS,
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return { command: "help", text: PLAN_HELP };
  if (positionals.length > 2)
    throw new UsageProblem(`plan takes at most <model> <gpu>, got ${positionals.length} arguments`);
  const model = values.model ?? positionals[0];
  const gpu = values.gpu ?? positionals[1];
  if (values.model !== undefined && positionals.length > 0 && values.gpu !== undefined)
    throw new UsageProblem(
      `unexpected argument "${positionals[0]}" (model and GPU are already given as flags)`,
    );
  if (!model) throw new UsageProblem("plan needs a model: --model <name>");
  if (!gpu) throw new UsageProblem("plan needs a GPU: --gpu <name>");
  const rawTensorParallelism = values["tensor-parallelism"];
  const command: PlanCommand = {
    command: "plan",
    output: outputFormat(values.output),
    model,
    gpu,
    gpusPerNode: positiveInteger("gpus-per-node", values["gpus-per-node"]) ?? 8,
  };
  const nodes = positiveInteger("nodes", values.nodes);
  if (nodes !== undefined) command.nodes = nodes;
  if (values.quantization !== undefined) command.quantization = values.quantization;
  if (values["kv-cache-dtype"] !== undefined) command.kvCacheDtype = values["kv-cache-dtype"];
  if (values.engine !== undefined) command.engine = values.engine;
  const maxContextLength = positiveInteger("max-context", values["max-context"]);
  if (maxContextLength !== undefined) command.maxContextLength = maxContextLength;
  if (rawTensorParallelism !== undefined)
    command.tensorParallelism =
      rawTensorParallelism === "auto" ? "auto" : positiveInteger("tensor-parallelism", rawTensorParallelism);
  const gpuMemoryUtilization = fraction("gpu-memory-utilization", values["gpu-memory-utilization"]);
  if (gpuMemoryUtilization !== undefined) command.gpuMemoryUtilization = gpuMemoryUtilization;
  if (values.config !== undefined) command.configFile = values.config;
  if (values.revision !== undefined) command.revision = values.revision;
  return command;
}

const NAMESPACE_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

interface ClusterFlagValues {
  namespace?: string | undefined;
  "all-namespaces"?: boolean | undefined;
  kubeconfig?: string | undefined;
  context?: string | undefined;
  output?: string | undefined;
}

/** -n / -A / --kubeconfig / --context / -o of a command that reads the cluster, checked. */
function clusterFlags(
  name: string,
  values: ClusterFlagValues,
  positionals: string[],
): { output: OutputFormat; allNamespaces: boolean; namespace?: string; kubeconfig?: string; context?: string } {
  if (positionals.length > 0)
    throw new UsageProblem(`${name} takes no arguments, got "${positionals.join(" ")}"`);
  if (values.namespace !== undefined && values["all-namespaces"])
    throw new UsageProblem("--namespace and --all-namespaces are mutually exclusive");
  if (values.namespace !== undefined && !NAMESPACE_PATTERN.test(values.namespace))
    throw new UsageProblem(`--namespace "${values.namespace}" is not a valid namespace name`);
  const flags: ReturnType<typeof clusterFlags> = {
    output: outputFormat(values.output),
    allNamespaces: values["all-namespaces"] ?? false,
  };
  if (values.namespace !== undefined) flags.namespace = values.namespace;
  if (values.kubeconfig !== undefined) flags.kubeconfig = values.kubeconfig;
  if (values.context !== undefined) flags.context = values.context;
  return flags;
}

function parseStatus(args: string[]): StatusCommand | HelpCommand {
  const { values, positionals } = parseArgs({
    args,
    options: STATUS_OPTIONS,
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return { command: "help", text: STATUS_HELP };
  return { command: "status", ...clusterFlags("status", values, positionals) };
}

function parseUsage(args: string[]): UsageCommand | HelpCommand {
  const { values, positionals } = parseArgs({
    args,
    options: { ...STATUS_OPTIONS, period: { type: "string" }, tenant: { type: "string" } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return { command: "help", text: USAGE_HELP };
  const flags = clusterFlags("usage", values, positionals);
  const period = values.period ?? "today";
  if (period !== "today" && period !== "month")
    throw new UsageProblem(`--period must be today or month, got "${period}"`);
  if (values.tenant !== undefined && !NAMESPACE_PATTERN.test(values.tenant))
    throw new UsageProblem(`--tenant "${values.tenant}" is not a valid Tenant name`);
  const command: UsageCommand = { command: "usage", ...flags, period };
  if (values.tenant !== undefined) command.tenant = values.tenant;
  return command;
}

/** argv without the node binary and script path, e.g. `["plan", "--model", "llama-3.1-8b"]`. */
export function parseCommandLine(argv: readonly string[]): ParsedCommandLine {
  const [first, ...rest] = argv;
  if (first === undefined || first === "-h" || first === "--help" || first === "help") {
    const topic = first === "help" ? rest[0] : undefined;
    if (topic === "plan") return { command: "help", text: PLAN_HELP };
    if (topic === "status") return { command: "help", text: STATUS_HELP };
    if (topic === "usage") return { command: "help", text: USAGE_HELP };
    if (first === undefined)
      return { command: "usage-error", message: "no command given", help: TOP_LEVEL_HELP };
    return { command: "help", text: TOP_LEVEL_HELP };
  }
  if (first === "-v" || first === "--version" || first === "version") return { command: "version" };
  const help =
    first === "plan"
      ? PLAN_HELP
      : first === "status"
        ? STATUS_HELP
        : first === "usage"
          ? USAGE_HELP
          : TOP_LEVEL_HELP;
  try {
    if (first === "plan") return parsePlan(rest);
    if (first === "status") return parseStatus(rest);
    if (first === "usage") return parseUsage(rest);
    return { command: "usage-error", message: `unknown command "${first}"`, help };
  } catch (error) {
    if (error instanceof UsageProblem) return { command: "usage-error", message: error.message, help };
    // parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes for unknown flags and missing values.
    if ((error as NodeJS.ErrnoException).code?.startsWith("ERR_PARSE_ARGS"))
      return { command: "usage-error", message: parseArgsMessage(error), help };
    throw error;
  }
}
