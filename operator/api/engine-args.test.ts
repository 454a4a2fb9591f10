import { describe, expect, it } from "vitest";
import { engineArgsCelRule, managedFlagIn, MANAGED_ENGINE_FLAG_NAMES, normalizeEngineFlag, prefixesRegex } from "./engine-args.js";

/** The CEL rule's steps for one entry, in JavaScript (the cluster test runs the real CEL). */
function celRefuses(argument: string): boolean {
  const rule = engineArgsCelRule();
  const [, regex] = /\.matches\('(\^-\*\(\?:.*\)\$)'\)\)\)$/.exec(rule) ?? [];
  if (!regex) throw new Error(`unexpected rule shape: ${rule}`);
  const equals = argument.indexOf("=");
  const name = (equals < 0 ? argument : argument.slice(0, equals)).replace(/[A-Z]/g, (c) => c.toLowerCase()).replaceAll("_", "-");
  return !argument.startsWith("-") || /^-*$/.test(name) || new RegExp(regex).test(name);
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
  "--Model=other",
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
    expect(normalizeEngineFlag("--Tensor_Parallel_Size=4")).toBe("tensor-parallel-size");
    expect(normalizeEngineFlag("-tp")).toBe("tp");
    expect(normalizeEngineFlag("-\u212A")).toBe("\u212A"); // no Unicode case folding (CEL's lowerAscii)
  });
});
