import { describe, expect, it } from "vitest";
import { engineArgsCelRule, managedFlagIn, MANAGED_ENGINE_FLAG_NAMES, normalizeEngineFlag, prefixesRegex } from "./engine-args.js";

/** The CEL rule's steps for one entry, in JavaScript (the cluster test runs the real CEL). */
function celRefuses(argument: string): boolean {
  const rule = engineArgsCelRule();
  const [, regex] = /\.matches\('(.*)'\)\)$/.exec(rule) ?? [];
  if (!regex) throw new Error(`unexpected rule shape: ${rule}`);
  // RE2's (?s:.*) is JavaScript's [\s\S]*.
  return !argument.startsWith("-") || new RegExp(regex.replace("(?s:.*)", "[\\s\\S]*")).test(argument);
}

const REFUSED = [
  "--tensor-parallel-size=4",
  "--tensor_parallel_size=4",
  "-tp=4",
  "--tp=4",
  "--tensor-parallel=4",
  "--tensor=4",
  "--served-model=x",
  "--model=other",
  "--model-path=/x",
  "--max_model_len=1",
  "--max-seq-len=1",
  "--gpu-memory-utilization=0.99",
  "--kv_cache_free_gpu_memory_fraction=0.5",
  "--mem-fraction-static=0.9",
  "--context-length=1",
  "--config=/flags.yaml",
  "--conf",
  "--extra_llm_api_options=/x.yaml",
  "--port=1",
  "--host=::",
  "-pp=2",
  "--data-parallel-size=2",
  "meta-llama/Llama-3.1-8B",
  "128",
  "@flags.txt",
  "--",
  "-",
  "--=x",
];
const ALLOWED = [
  "--enable-prefix-caching",
  "--max-num-seqs=128",
  "--max-num-batched-tokens=8192",
  "--port-range-start=9000",
  "--hostname-override=x",
  "--model-impl=transformers",
  "--tokenizer-mode=auto",
  "--trust-remote-code",
  "--max_batch_size=64",
  "--kv-cache-dtype=fp8",
  "-q=awq",
  "--enforce-eager",
  "--MODEL=x", // case-sensitive parsers: no such flag, the engine refuses to start
  "--max-num-seqs=a\nb=c",
];

describe("engine.args rule", () => {
  it.each(REFUSED)("refuses %j at render time and in the CEL rule", (argument) => {
    expect(managedFlagIn(argument)).toBeDefined();
    expect(celRefuses(argument)).toBe(true);
  });

  it.each(ALLOWED)("allows %j at render time and in the CEL rule", (argument) => {
    expect(managedFlagIn(argument)).toBeUndefined();
    expect(celRefuses(argument)).toBe(false);
  });

  it("builds a regex that matches exactly the non-empty prefixes of the managed names", () => {
    const regex = new RegExp(prefixesRegex(MANAGED_ENGINE_FLAG_NAMES));
    const prefixes = new Set(MANAGED_ENGINE_FLAG_NAMES.flatMap((name) => [...name].map((_, i) => name.slice(0, i + 1))));
    for (const prefix of prefixes) expect(regex.test(prefix), prefix).toBe(true);
    for (const other of ["", "models", "tpx", "ports", "hostname", "configs", "x", "model-pathx"]) expect(regex.test(other), other).toBe(false);
  });

  it("normalises the flag name the same way CEL does", () => {
    expect(normalizeEngineFlag("--tensor_parallel_size=4")).toBe("tensor-parallel-size");
    expect(normalizeEngineFlag("-tp")).toBe("tp");
    expect(normalizeEngineFlag("__-model")).toBe("model");
  });
});
