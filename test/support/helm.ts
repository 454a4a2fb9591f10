import { execFile } from "node:child_process";
import { join } from "node:path";

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface HelmRunOptions {
  /** A private Helm home: nothing is read from or written to the user's ~/.config/helm. */
  home: string;
  kubeconfig: string;
  timeoutMs?: number;
}

/** Runs the pinned helm binary; resolves with its exit code and output (never rejects). */
export function runHelm(binary: string, args: string[], options: HelmRunOptions): Promise<HelmResult> {
  return new Promise((resolveRun) => {
    execFile(
      binary,
      args,
      {
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 32 * 1024 * 1024,
        env: {
          PATH: process.env.PATH ?? "",
          HOME: options.home,
          HELM_CACHE_HOME: join(options.home, "cache"),
          HELM_CONFIG_HOME: join(options.home, "config"),
          HELM_DATA_HOME: join(options.home, "data"),
          KUBECONFIG: options.kubeconfig,
        },
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolveRun({ code, stdout, stderr });
      },
    );
  });
}

/** Runs helm and returns its stdout; a non-zero exit throws with helm's output. */
export async function runHelmOk(binary: string, args: string[], options: HelmRunOptions): Promise<string> {
  const result = await runHelm(binary, args, options);
  if (result.code !== 0)
    throw new Error(`helm ${args.join(" ")} exited ${result.code}:\n${result.stderr}${result.stdout}`);
  return result.stdout;
}
