import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Where the project's shared public data lives. CI clones the repository elsewhere and places
 * shared/ beside the clone, so the default is `<repoRoot>/../shared/data`; GPUFLEET_SHARED_DATA
 * overrides it (absolute, or relative to the current directory).
 */
export function sharedDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.GPUFLEET_SHARED_DATA;
  if (override !== undefined && override !== "") return path.resolve(override);
  return path.resolve(repoRoot(), "..", "shared", "data");
}

/** The repository root: two folders up from infra/carbon/. */
export function repoRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
}

/** Absolute path of a file under the shared data folder, with a clear error when it is missing. */
export function sharedDataFile(relativePath: string, env: NodeJS.ProcessEnv = process.env): string {
  const file = path.join(sharedDataDir(env), relativePath);
  if (!existsSync(file)) {
    throw new Error(
      `shared data file not found: ${file} (set GPUFLEET_SHARED_DATA or place shared/data beside the repository)`,
    );
  }
  return file;
}
