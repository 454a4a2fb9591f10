import { describe, expect, it } from "vitest";
import { PLAN_HELP, STATUS_HELP, TOP_LEVEL_HELP, parseCommandLine } from "./args.js";

describe("parseCommandLine", () => {
  it("reads plan's model and GPU from flags, with kubectl-style defaults", () => {
    expect(parseCommandLine(["plan", "--model", "llama-3.1-8b", "--gpu", "h100"])).toEqual({
      command: "plan",
      output: "table",
      model: "llama-3.1-8b",
      gpu: "h100",
      gpusPerNode: 8,
    });
  });

  it("reads plan's model and GPU as positionals and every optional flag", () => {
    expect(
      parseCommandLine([
        "plan",
        "llama-3.1-70b",
        "a100-80gb",
        "-o",
        "json",
        "--gpus-per-node",
        "4",
        "-q",
        "fp8",
        "--kv-cache-dtype",
        "fp8",
        "--engine",
        "tensorrt-llm",
        "--max-context",
        "8192",
        "--tensor-parallelism",
        "2",
        "--gpu-memory-utilization",
        "0.85",
      ]),
    ).toEqual({
      command: "plan",
      output: "json",
      model: "llama-3.1-70b",
      gpu: "a100-80gb",
      gpusPerNode: 4,
      quantization: "fp8",
      kvCacheDtype: "fp8",
      engine: "tensorrt-llm",
      maxContextLength: 8192,
      tensorParallelism: 2,
      gpuMemoryUtilization: 0.85,
    });
  });

  it("accepts --tensor-parallelism auto and short -m/-g", () => {
    expect(parseCommandLine(["plan", "-m", "x", "-g", "y", "--tensor-parallelism", "auto"])).toMatchObject({
      tensorParallelism: "auto",
      model: "x",
      gpu: "y",
    });
  });

  it.each([
    [["plan", "--gpu", "h100"], "plan needs a model"],
    [["plan", "--model", "llama-3.1-8b"], "plan needs a GPU"],
    [["plan", "a", "b", "c"], "at most <model> <gpu>"],
    [["plan", "a", "b", "-o", "xml"], '--output must be one of table, json, yaml, not "xml"'],
    [["plan", "a", "b", "--gpus-per-node", "0"], "--gpus-per-node must be a whole number of at least 1"],
    [
      ["plan", "a", "b", "--max-context", "8k"],
      '--max-context must be a whole number of at least 1, not "8k"',
    ],
    [
      ["plan", "a", "b", "--gpu-memory-utilization", "1.5"],
      "--gpu-memory-utilization must be a number in (0, 1]",
    ],
    [["plan", "a", "b", "--frobnicate"], "Unknown option '--frobnicate'"],
    [["plan", "a", "b", "--model"], "--model"],
    [["status", "extra"], 'status takes no arguments, got "extra"'],
    [["status", "-n", "a", "-A"], "--namespace and --all-namespaces are mutually exclusive"],
    [["status", "-n", "Not_A_Namespace"], '--namespace "Not_A_Namespace" is not a valid namespace name'],
    [["deploy"], 'unknown command "deploy"'],
    [[], "no command given"],
  ])("refuses %j as a usage error: %s", (argv, message) => {
    const parsed = parseCommandLine(argv);
    expect(parsed.command).toBe("usage-error");
    if (parsed.command === "usage-error") expect(parsed.message).toContain(message);
  });

  it("attaches the failing subcommand's help to a usage error", () => {
    expect(parseCommandLine(["status", "-o", "csv"])).toMatchObject({
      command: "usage-error",
      help: STATUS_HELP,
    });
    expect(parseCommandLine(["plan"])).toMatchObject({ command: "usage-error", help: PLAN_HELP });
    expect(parseCommandLine(["nope"])).toMatchObject({ command: "usage-error", help: TOP_LEVEL_HELP });
  });

  it("reads status flags: namespace, all namespaces, kubeconfig, context, output", () => {
    expect(
      parseCommandLine([
        "status",
        "-n",
        "team-a",
        "--kubeconfig",
        "/tmp/kc",
        "--context",
        "prod",
        "-o",
        "yaml",
      ]),
    ).toEqual({
      command: "status",
      output: "yaml",
      namespace: "team-a",
      allNamespaces: false,
      kubeconfig: "/tmp/kc",
      context: "prod",
    });
    expect(parseCommandLine(["status", "--all-namespaces"])).toEqual({
      command: "status",
      output: "table",
      allNamespaces: true,
    });
    expect(parseCommandLine(["status", "--namespace=team-b"])).toMatchObject({ namespace: "team-b" });
  });

  it("answers --help at every level with the matching help text", () => {
    expect(parseCommandLine(["--help"])).toEqual({ command: "help", text: TOP_LEVEL_HELP });
    expect(parseCommandLine(["-h"])).toEqual({ command: "help", text: TOP_LEVEL_HELP });
    expect(parseCommandLine(["help", "plan"])).toEqual({ command: "help", text: PLAN_HELP });
    expect(parseCommandLine(["plan", "--help"])).toEqual({ command: "help", text: PLAN_HELP });
    expect(parseCommandLine(["status", "-h"])).toEqual({ command: "help", text: STATUS_HELP });
    expect(parseCommandLine(["--version"])).toEqual({ command: "version" });
  });
});
