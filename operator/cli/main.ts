/**
 * The CLI's shell: parse, dispatch, print, return the exit code. Everything it prints goes through
 * the injected writers so tests see exactly what a user would.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EXIT_OK, EXIT_USAGE, PROGRAM, parseCommandLine } from "./args.js";
import { runPlan, type CommandOutcome, type ResolvedModel } from "./plan.js";
import { findModel } from "../planner/models.js";
import { HfConfigError, modelFromHfConfig } from "../planner/hf-config.js";
import { HubClient } from "../hub/client.js";
import type { PlanCommand } from "./args.js";
import { kubernetesLister, runStatus, type ListModelDeployments, type StatusTarget } from "./status.js";
import { kubernetesTenantLister, runUsage, type ListTenants, type UsageTarget } from "./usage.js";

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Environment for the Hub endpoint and token (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Replaces the Kubernetes API for `status` (tests). */
  listerFor?: (command: Parameters<typeof kubernetesLister>[0]) => {
    target: StatusTarget;
    list: ListModelDeployments;
  };
  /** Replaces the Kubernetes API for `usage` (tests). */
  tenantListerFor?: (command: Parameters<typeof kubernetesTenantLister>[0]) => {
    target: UsageTarget;
    list: ListTenants;
  };
}

/** The version in the nearest package.json named gpufleet (works from operator/cli and dist/operator/cli). */
export function cliVersion(startDirectory: string = dirname(fileURLToPath(import.meta.url))): string {
  let directory = startDirectory;
  for (;;) {
    const candidate = join(directory, "package.json");
    if (existsSync(candidate)) {
      const manifest = JSON.parse(readFileSync(candidate, "utf8")) as { name?: string; version?: string };
      if (manifest.name === "gpufleet" && manifest.version) return manifest.version;
    }
    const parent = dirname(directory);
    if (parent === directory) return "unknown";
    directory = parent;
  }
}

const MAX_CONFIG_FILE_BYTES = 4 * 1024 * 1024;
const REPO_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * The model to plan, read from its own config.json when the command gives a file (--config) or names a
 * Hugging Face repo the catalogue does not know (read from the Hub); otherwise the catalogue answers.
 */
async function resolvePlanModel(
  command: PlanCommand,
  env: NodeJS.ProcessEnv,
): Promise<{ model?: ResolvedModel } | { error: CommandOutcome }> {
  const fail = (message: string, exitCode = 1) => ({
    error: { exitCode, stdout: "", stderr: `error: ${message}\n` },
  });
  const repo = REPO_PATTERN.test(command.model)
    ? command.model
    : `local/${command.model.replace(/[^A-Za-z0-9._-]/g, "-")}`;
  if (command.configFile !== undefined) {
    let config: unknown;
    try {
      const text = readFileSync(command.configFile, "utf8");
      if (text.length > MAX_CONFIG_FILE_BYTES)
        return fail(`${command.configFile} is larger than ${MAX_CONFIG_FILE_BYTES} bytes`);
      config = JSON.parse(text);
    } catch (error) {
      return fail(`cannot read ${command.configFile}: ${(error as Error).message}`);
    }
    try {
      return { model: { model: modelFromHfConfig(config, { repo }).model, source: command.configFile } };
    } catch (error) {
      return fail(error instanceof HfConfigError ? `${command.configFile}: ${error.message}` : String(error));
    }
  }
  if (command.revision === undefined && findModel(command.model)) return {};
  if (!REPO_PATTERN.test(command.model)) return {};
  const endpoint = env.GPUFLEET_HF_ENDPOINT || "https://huggingface.co";
  const revision = command.revision ?? "main";
  try {
    const files = await new HubClient({ endpoint }).readModel(
      command.model,
      revision,
      env.HF_TOKEN || undefined,
    );
    const hf = modelFromHfConfig(files.config, {
      repo: command.model,
      ...(files.safetensorsTotalBytes !== undefined
        ? { safetensorsTotalBytes: files.safetensorsTotalBytes }
        : {}),
    });
    return {
      model: { model: hf.model, source: `config.json of ${command.model}@${revision} (${endpoint})` },
    };
  } catch (error) {
    return fail(`cannot size ${command.model}: ${(error as Error).message}`);
  }
}

/** A lister from the kubeconfig; a missing or unreadable one: the command line was fine, the environment is not. */
function withKubeconfig<T>(make: () => T): T | { error: CommandOutcome } {
  try {
    return make();
  } catch (error) {
    return {
      error: {
        exitCode: 1,
        stdout: "",
        stderr: `error: cannot load kubeconfig: ${error instanceof Error ? error.message : String(error)}\n`,
      },
    };
  }
}

export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const parsed = parseCommandLine(argv);
  let outcome: CommandOutcome;
  switch (parsed.command) {
    case "help":
      outcome = { exitCode: EXIT_OK, stdout: parsed.text, stderr: "" };
      break;
    case "version":
      outcome = { exitCode: EXIT_OK, stdout: `${PROGRAM} ${cliVersion()}\n`, stderr: "" };
      break;
    case "usage-error":
      outcome = { exitCode: EXIT_USAGE, stdout: "", stderr: `error: ${parsed.message}\n\n${parsed.help}` };
      break;
    case "plan": {
      const resolved = await resolvePlanModel(parsed, io.env ?? process.env);
      outcome = "error" in resolved ? resolved.error : runPlan(parsed, resolved.model);
      break;
    }
    case "status": {
      const lister = withKubeconfig(() => (io.listerFor ?? kubernetesLister)(parsed));
      outcome = "error" in lister ? lister.error : await runStatus(parsed, lister.target, lister.list);
      break;
    }
    case "usage": {
      const lister = withKubeconfig(() => (io.tenantListerFor ?? kubernetesTenantLister)(parsed));
      outcome = "error" in lister ? lister.error : await runUsage(parsed, lister.target, lister.list);
      break;
    }
  }
  if (outcome.stdout) io.stdout(outcome.stdout);
  if (outcome.stderr) io.stderr(outcome.stderr);
  return outcome.exitCode;
}
