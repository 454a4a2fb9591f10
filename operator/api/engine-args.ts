/**
 * The one rule for `spec.engine.args`, checked twice from the same data: at admission (a CEL rule in the
 * CRD, generated here) and at render time (`managedFlagIn`), so the two cannot drift apart.
 *
 * What an engine's argument parser would read as one of the flags the operator derives from the plan
 * must be refused, however it is spelled:
 * - `--tensor_parallel_size` (vLLM's FlexibleArgumentParser turns `_` into `-`; click options use `_`),
 * - `-tp` and other short aliases (listed below as names of their own),
 * - argparse prefix abbreviations (`--tensor-parallel` for `--tensor-parallel-size`: Python's argparse
 *   accepts any unambiguous prefix of a long option unless allow_abbrev is off),
 * - `--config FILE` (vLLM and SGLang read flags from a YAML file; trtllm-serve's `--config` is its
 *   `--extra_llm_api_options`),
 * - a bare positional (`vllm serve MODEL`: a positional model wins over `--model`): every entry must be a
 *   flag, with its value after `=` (`--max-num-seqs=128`), since without each flag's arity a separate
 *   value cannot be told from a positional argument.
 *
 * Normal form of an entry: the part before the first `=`, `_` as `-`, leading dashes removed (argparse
 * and click are case-sensitive: `--MODEL` is no flag of theirs, and the engine refuses to start).
 * It is refused when it is empty or a prefix of (or equal to) a managed name.
 */

/**
 * Managed flags in normal form, for every engine (vLLM, TensorRT-LLM's trtllm-serve, SGLang): the model,
 * its name, the parallelism that sets GPUs per pod, context length, memory share, address, config files.
 */
export const MANAGED_ENGINE_FLAG_NAMES: readonly string[] = [
  // the model and the name clients use
  "model",
  "model-path",
  "served-model-name",
  // GPUs per pod (the planner's tensor parallelism; other parallelism would change the GPU count)
  "tensor-parallel-size",
  "tp-size",
  "tp",
  "pipeline-parallel-size",
  "pp-size",
  "pp",
  "data-parallel-size",
  "dp-size",
  "dp",
  // context length and memory, sized by the planner
  "max-model-len",
  "max-seq-len",
  "context-length",
  "gpu-memory-utilization",
  "kv-cache-free-gpu-memory-fraction",
  "free-gpu-memory-fraction",
  "mem-fraction-static",
  // the address the Service, probes and the scraper use
  "port",
  "host",
  // LoRA: spec.adapters and spec.lora (the planner counts the adapter slots' memory)
  "enable-lora",
  "lora-modules",
  "max-loras",
  "max-lora-rank",
  // files of flags: a second source of every flag above
  "config",
  "extra-llm-api-options",
];

/** The normal form of one argument's flag name (see the module comment); "" for `-`, `--`, `=x`. */
export function normalizeEngineFlag(argument: string): string {
  const equals = argument.indexOf("=");
  const name = equals < 0 ? argument : argument.slice(0, equals);
  // In the order the CEL rule applies them.
  return name.replaceAll("_", "-").replace(/^-+/, "");
}

/**
 * Why an argument is refused, or undefined when it is allowed: the managed flag it would set, or a
 * sentence for a positional argument. `extraManaged` are flags an engine renders beyond the shared list
 * (e.g. `--quantization` when the spec sets one), in any spelling.
 */
export function managedFlagIn(argument: string, extraManaged: readonly string[] = []): string | undefined {
  if (!argument.startsWith("-")) return "a positional argument (write flags with their value after '=')";
  const name = normalizeEngineFlag(argument);
  if (name === "") return "the end of options ('-' or '--' alone)";
  // Named in the engine's own spelling when it rendered the flag, else in the shared normal form;
  // an exact match before an abbreviation.
  const find = (candidates: Array<[string, string]>) =>
    candidates.find(([managed]) => managed === name) ?? candidates.find(([managed]) => managed.startsWith(name));
  const found =
    find(extraManaged.map((flag) => [normalizeEngineFlag(flag), flag])) ??
    find(MANAGED_ENGINE_FLAG_NAMES.map((flag) => [flag, `--${flag}`]));
  return found?.[1];
}

/**
 * A regular expression (RE2 and JavaScript alike) matching exactly the non-empty prefixes of `words`;
 * `dash` is what a '-' in them becomes (`[-_]` also matches an underscore).
 */
export function prefixesRegex(words: readonly string[], dash = "-"): string {
  interface Node {
    children: Map<string, Node>;
  }
  const root: Node = { children: new Map() };
  for (const word of words) {
    let node = root;
    for (const char of word) {
      let child = node.children.get(char);
      if (!child) {
        child = { children: new Map() };
        node.children.set(char, child);
      }
      node = child;
    }
  }
  // Names are lower-case words and dashes, literal in a regex and inside a CEL string (no escapes needed).
  const escape = (char: string) => {
    if (!/^[a-z0-9-]$/.test(char)) throw new Error(`flag names are [a-z0-9-], not ${JSON.stringify(char)}`);
    return char === "-" ? dash : char;
  };
  // Every node is the end of some prefix, so each step after the first character is optional.
  const render = (node: Node): string => {
    const branches = [...node.children.entries()].map(([char, child]) => {
      const rest = child.children.size ? `(?:${render(child)})?` : "";
      return `${escape(char)}${rest}`;
    });
    return branches.length === 1 ? (branches[0] as string) : branches.join("|");
  };
  return `^(?:${render(root)})$`;
}

/**
 * The CEL rule (on the args list) that refuses what `managedFlagIn` refuses, with no extra flags. One
 * regex over the whole entry, '-' and '_' alike (the name is what precedes the first '='; no managed
 * name holds '='), so the API server's cost estimate stays within its budget for 48 entries of 1 KiB.
 */
export function engineArgsCelRule(): string {
  const prefixes = prefixesRegex(MANAGED_ENGINE_FLAG_NAMES, "[-_]").slice(1, -1); // without ^ and $
  return `self.all(a, a.startsWith('-') && !a.matches('^[-_]*${prefixes}?(=(?s:.*))?$'))`;
}

export const ENGINE_ARGS_CEL_MESSAGE =
  "engine.args must not set flags the operator manages (the model, served model name, parallelism, context length, GPU memory share, host, port, --config files), in any spelling, alias or abbreviation; each entry must be one flag with its value after '=' (e.g. --max-num-seqs=128), never a positional argument";
