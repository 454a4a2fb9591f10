/**
 * What the container image holds, built without a container engine: the same steps as the
 * Dockerfile (build context = the .dockerignore allow-list; tsc with every dependency; `npm ci
 * --omit=dev` into a clean directory; dist copied beside it), then `node dist/operator/main.js`
 * started from that directory against the shared local cluster must answer 200 on /healthz.
 *
 * No Docker engine runs here and base images cannot be pulled, so this is the part of the image
 * that can be proven: the production bundle is complete (no dev dependency needed at run time).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../operator/api/generate.js";
import { freeLoopbackPort } from "../sim/cluster/cluster.js";
import { testKubeConfig, waitFor } from "./support/kube.js";
import { stopChildProcess } from "./support/operator.js";

const execFileAsync = promisify(execFile);

/** The paths `.dockerignore` lets into the build context (`*` then `!path` lines). */
function dockerContextAllowList(dockerignore: string): string[] {
  const lines = dockerignore
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  if (lines[0] !== "*") throw new Error(".dockerignore must start with `*` (an allow-list)");
  return lines.slice(1).map((line) => {
    if (!line.startsWith("!")) throw new Error(`.dockerignore line "${line}" is not an allow-list entry`);
    return line.slice(1).replace(/\/$/, "");
  });
}

function directoryBytes(path: string): number {
  const stats = statSync(path);
  if (!stats.isDirectory()) return stats.size;
  return readdirSync(path).reduce((sum, entry) => sum + directoryBytes(join(path, entry)), 0);
}

const mebibytes = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

let workDir: string;
let buildDir: string;
let runtimeDir: string;
let operator: ChildProcess | undefined;
let operatorOutput = "";

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), "gpufleet-image-bundle-"));
  buildDir = join(workDir, "build");
  runtimeDir = join(workDir, "app");
  mkdirSync(buildDir);
  mkdirSync(runtimeDir);
});

afterAll(async () => {
  await stopChildProcess(operator, 10_000);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe("production bundle (the image's /app, built as the Dockerfile does)", () => {
  it("compiles from the Docker build context alone (stage 1: npm ci + tsc)", async () => {
    const allowList = dockerContextAllowList(readFileSync(join(REPO_ROOT, ".dockerignore"), "utf8"));
    expect(allowList).toEqual(
      expect.arrayContaining([
        "package.json",
        "package-lock.json",
        "tsconfig.json",
        "tsconfig.build.json",
        "operator",
      ]),
    );
    for (const entry of allowList) cpSync(join(REPO_ROOT, entry), join(buildDir, entry), { recursive: true });
    // Stage 1 runs `npm ci` with dev dependencies; the repo's own install is that same lockfile.
    symlinkSync(join(REPO_ROOT, "node_modules"), join(buildDir, "node_modules"), "dir");
    const typescriptCompiler = join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc");
    try {
      await execFileAsync(process.execPath, [typescriptCompiler, "-p", "tsconfig.build.json"], {
        cwd: buildDir,
        timeout: 240_000,
        maxBuffer: 16 * 1024 * 1024,
      });
    } catch (error) {
      const failure = error as { stdout?: string; stderr?: string };
      throw new Error(
        `tsc failed on the Docker build context (does operator/ import from outside it?):\n${failure.stdout ?? ""}${failure.stderr ?? ""}`,
      );
    }
    expect(
      existsSync(join(buildDir, "dist", "operator", "main.js")),
      "dist/operator/main.js: the operator entry point (operator/main.ts) must exist and compile",
    ).toBe(true);
    expect(existsSync(join(buildDir, "dist", "operator", "cli", "gpufleet.js"))).toBe(true);
    // The gateway runs from the same image (the chart's gateway Deployment: dist/gateway/main.js).
    expect(existsSync(join(buildDir, "dist", "gateway", "main.js")), "dist/gateway/main.js").toBe(true);
  }, 300_000);

  it("installs production dependencies only (stage 2: npm ci --omit=dev)", async () => {
    for (const file of ["package.json", "package-lock.json"])
      cpSync(join(REPO_ROOT, file), join(runtimeDir, file));
    await execFileAsync(
      "npm",
      ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"],
      {
        cwd: runtimeDir,
        timeout: 240_000,
        maxBuffer: 16 * 1024 * 1024,
        env: { ...process.env, npm_config_loglevel: "error" },
      },
    );
    const manifest = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    for (const dependency of Object.keys(manifest.dependencies))
      expect(existsSync(join(runtimeDir, "node_modules", dependency)), dependency).toBe(true);
    // The lockfile marks packages only dev dependencies need with `dev: true` (typescript, vitest,
    // eslint, ...); none may reach the image. (@types/node, say, is also a production dependency's dependency.)
    const lock = JSON.parse(readFileSync(join(REPO_ROOT, "package-lock.json"), "utf8")) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const devOnly = Object.entries(lock.packages)
      .filter(([path, entry]) => path !== "" && entry.dev === true)
      .map(([path]) => path);
    expect(devOnly.length).toBeGreaterThan(50);
    expect(devOnly.filter((path) => existsSync(join(runtimeDir, path)))).toEqual([]);
    const productionBytes = directoryBytes(join(runtimeDir, "node_modules"));
    const developmentBytes = directoryBytes(join(REPO_ROOT, "node_modules"));
    process.stdout.write(
      `[image-bundle] node_modules: production ${mebibytes(productionBytes)} vs development ${mebibytes(developmentBytes)} (${((productionBytes / developmentBytes) * 100).toFixed(0)}%)\n`,
    );
    expect(productionBytes).toBeLessThan(developmentBytes);
  }, 300_000);

  it("starts `node dist/operator/main.js` from the bundle and answers 200 on /healthz (stage 3)", async () => {
    cpSync(join(buildDir, "dist"), join(runtimeDir, "dist"), {
      recursive: true,
      filter: (source) => !/\.test\.js(\.map)?$/.test(source),
    });
    const kubeconfigPath = join(workDir, "kubeconfig");
    writeFileSync(kubeconfigPath, testKubeConfig().exportConfig(), { mode: 0o600 });
    const opsPort = await freeLoopbackPort();
    const startedAt = Date.now();
    operator = spawn(process.execPath, ["dist/operator/main.js"], {
      cwd: runtimeDir,
      // What the chart sets, minus leader election (one process, no Lease needed here).
      env: {
        PATH: process.env.PATH ?? "",
        NODE_ENV: "production",
        KUBECONFIG: kubeconfigPath,
        POD_NAME: "image-bundle-test",
        POD_NAMESPACE: "default",
        GPUFLEET_LEADER_ELECT: "false",
        GPUFLEET_OPS_HOST: "127.0.0.1",
        GPUFLEET_OPS_PORT: String(opsPort),
        GPUFLEET_LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    operator.stdout?.on("data", (chunk: Buffer) => (operatorOutput += chunk.toString("utf8")));
    operator.stderr?.on("data", (chunk: Buffer) => (operatorOutput += chunk.toString("utf8")));
    const status = await waitFor(
      async () => {
        if (operator?.exitCode !== null)
          throw new Error(`operator exited ${operator?.exitCode}: ${operatorOutput.slice(-2000)}`);
        const response = await fetch(`http://127.0.0.1:${opsPort}/healthz`, {
          signal: AbortSignal.timeout(2000),
        });
        return response.status === 200 ? response.status : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250, description: "/healthz of the bundled operator" },
    );
    expect(status).toBe(200);
    process.stdout.write(
      `[image-bundle] /healthz 200 after ${Date.now() - startedAt} ms from process start\n`,
    );
  }, 120_000);
});
