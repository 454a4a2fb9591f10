/**
 * The CLI's shell: parse, dispatch, print, return the exit code. Everything it prints goes through
 * the injected writers so tests see exactly what a user would.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EXIT_OK, EXIT_USAGE, PROGRAM, parseCommandLine } from "./args.js";
import { runPlan, type CommandOutcome } from "./plan.js";
import { kubernetesLister, runStatus, type ListModelDeployments, type StatusTarget } from "./status.js";

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Replaces the Kubernetes API for `status` (tests). */
  listerFor?: (command: Parameters<typeof kubernetesLister>[0]) => {
    target: StatusTarget;
    list: ListModelDeployments;
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
    case "plan":
      outcome = runPlan(parsed);
      break;
    case "status": {
      let lister: { target: StatusTarget; list: ListModelDeployments };
      try {
        lister = (io.listerFor ?? kubernetesLister)(parsed);
      } catch (error) {
        // A missing or unreadable kubeconfig: the command line was fine, the environment is not.
        outcome = {
          exitCode: 1,
          stdout: "",
          stderr: `error: cannot load kubeconfig: ${error instanceof Error ? error.message : String(error)}\n`,
        };
        break;
      }
      outcome = await runStatus(parsed, lister.target, lister.list);
      break;
    }
  }
  if (outcome.stdout) io.stdout(outcome.stdout);
  if (outcome.stderr) io.stderr(outcome.stderr);
  return outcome.exitCode;
}
