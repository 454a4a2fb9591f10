/**
 * Finds or builds the Pulumi CLI and the Pulumi Kubernetes provider from Go modules (no binary
 * downloads), with the same cache convention as tools/binaries.ts:
 * ${GPUFLEET_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/gpufleet}/bin/pulumi-<pin hash>/.
 *
 * Pins live in ONE place each: tools/pulumi/go.mod (CLI: github.com/pulumi/pulumi/pkg/v3) and
 * tools/pulumi-kubernetes/go.mod (provider module, plus the sdk/v4 `replace` whose version names the
 * provider release). They must equal the npm packages @pulumi/pulumi and @pulumi/kubernetes
 * (checked by infra/tools.test.ts).
 *
 * The provider embeds `schema-embed.json` and `terraform-mapping-embed.json`, which its module does
 * not ship: upstream's Makefile runs `VERSION=<v> go generate cmd/pulumi-resource-kubernetes/main.go`
 * (whose `go:generate` is `go run ./generate.go`) before building. The module cache is read-only, so
 * the module source is copied into a writable work folder, generated there, then built. The copy's
 * requirements follow tools/k8s' module versions (as tools/binaries.ts does for the LeaderWorkerSet
 * controller), so the Go build cache already holds the Kubernetes libraries it shares with the cluster
 * binaries: after them it compiles ~460 of its and its generator's ~1,900 packages, not ~1,230.
 *
 * Resolution: $GPUFLEET_PULUMI_BIN_DIR (a `bin` folder, taken as is), else <cache>/bin, built when
 * missing. `bin` because the Automation API's PulumiCommand.get({ root }) runs <root>/bin/pulumi.
 *
 *   npx tsx infra/tools.ts build     build (or find) both and print the figures
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  REPO_ROOT,
  defaultBinaryCacheDir,
  findGo,
  isExecutable,
  parseGoModReplacements,
  parseGoModRequirements,
  prepareAlignedSource,
  withLockFile,
} from "../tools/binaries.js";

export { parseGoModReplacements };

const TOOLS_DIR = join(REPO_ROOT, "tools");

export const PULUMI_CLI_MODULE = "github.com/pulumi/pulumi/pkg/v3";
export const PULUMI_CLI_PACKAGE = "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi";
export const PULUMI_CLI_VERSION_VARIABLE = "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version";
export const KUBERNETES_PROVIDER_MODULE = "github.com/pulumi/pulumi-kubernetes/provider/v4";
export const KUBERNETES_SDK_MODULE = "github.com/pulumi/pulumi-kubernetes/sdk/v4";
export const KUBERNETES_PROVIDER_VERSION_VARIABLE =
  "github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version";
const PROVIDER_COMMAND_DIR = "cmd/pulumi-resource-kubernetes";

/**
 * Dependencies of the provider whose own go.mod asks for newer versions of modules the cluster binaries
 * use (x/net, x/sys, protobuf, otel...): copied and aligned on tools/k8s too, or Go would select those
 * newer versions and nothing the provider shares with the cluster build would come from the Go build
 * cache. With them, ~1,000 of the provider's ~1,500 non-standard packages are the cluster binaries'
 * (client-go, apimachinery, api, apiserver, kustomize, grpc...). A pin bump that needs another one fails
 * the build and names the module.
 */
export const KUBERNETES_PROVIDER_ALIGNMENT: readonly string[] = [
  "github.com/pulumi/esc",
  KUBERNETES_SDK_MODULE,
  "github.com/pulumi/pulumi/pkg/v3",
  "github.com/pulumi/pulumi/sdk/v3",
  "github.com/fluxcd/cli-utils",
  "github.com/fluxcd/pkg/ssa",
  "helm.sh/helm/v3",
  "github.com/containerd/containerd",
  "github.com/pulumi/cloud-ready-checks",
  "sigs.k8s.io/cli-utils",
  "sigs.k8s.io/controller-runtime",
  "github.com/rubenv/sql-migrate",
  "github.com/pgavlin/fx/v2",
  "oras.land/oras-go/v2",
];

export type PulumiToolName = "pulumi" | "pulumi-resource-kubernetes";

export interface PulumiToolPins {
  /** e.g. v3.248.0 */
  cliVersion: string;
  /** Version of the provider Go module (a pseudo-version: the provider has no provider/vX tags). */
  providerModuleVersion: string;
  /** Release of the provider, e.g. v4.25.0: the version of the sdk/v4 module it is built with. */
  providerVersion: string;
  /** Hash of both go.mod + go.sum and the build recipe: names the cache folder. */
  pinHash: string;
}

/** Bump when the build steps change, so cached binaries are rebuilt. */
const BUILD_RECIPE_REVISION = "2";

export function readPulumiToolPins(toolsDir: string = TOOLS_DIR): PulumiToolPins {
  const hash = createHash("sha256").update(`recipe:${BUILD_RECIPE_REVISION}\n`);
  const texts: Record<string, string> = {};
  // tools/k8s too: the provider is built on its module versions (KUBERNETES_PROVIDER_ALIGNMENT).
  for (const toolModule of ["pulumi", "pulumi-kubernetes", "k8s"]) {
    const goModText = readFileSync(join(toolsDir, toolModule, "go.mod"), "utf8");
    texts[toolModule] = goModText;
    const goSumPath = join(toolsDir, toolModule, "go.sum");
    hash.update(`${toolModule}/go.mod\n${goModText}\n`);
    hash.update(`${toolModule}/go.sum\n${existsSync(goSumPath) ? readFileSync(goSumPath, "utf8") : ""}\n`);
  }
  const cliVersion = parseGoModRequirements(texts.pulumi ?? "").get(PULUMI_CLI_MODULE);
  if (!cliVersion) throw new Error(`tools/pulumi/go.mod does not require ${PULUMI_CLI_MODULE}`);
  const providerText = texts["pulumi-kubernetes"] ?? "";
  const providerModuleVersion = parseGoModRequirements(providerText).get(KUBERNETES_PROVIDER_MODULE);
  if (!providerModuleVersion) {
    throw new Error(`tools/pulumi-kubernetes/go.mod does not require ${KUBERNETES_PROVIDER_MODULE}`);
  }
  const providerVersion = parseGoModReplacements(providerText).get(KUBERNETES_SDK_MODULE)?.version;
  if (!providerVersion) {
    throw new Error(
      `tools/pulumi-kubernetes/go.mod must replace ${KUBERNETES_SDK_MODULE} by a released version (it names the provider release)`,
    );
  }
  return { cliVersion, providerModuleVersion, providerVersion, pinHash: hash.digest("hex").slice(0, 16) };
}

export function pulumiToolsCacheDir(pinHash: string, env: NodeJS.ProcessEnv = process.env): string {
  return defaultBinaryCacheDir(`pulumi-${pinHash}`, env);
}

/** Both ldflags -X values; the provider's upstream Makefile stamps the version without its `v`. */
export function versionLdflag(tool: PulumiToolName, pins: PulumiToolPins): string {
  return tool === "pulumi"
    ? `-X ${PULUMI_CLI_VERSION_VARIABLE}=${pins.cliVersion}`
    : `-X ${KUBERNETES_PROVIDER_VERSION_VARIABLE}=${pins.providerVersion.replace(/^v/, "")}`;
}

export type PulumiToolProgress =
  | { kind: "found"; tool: PulumiToolName; path: string; source: "GPUFLEET_PULUMI_BIN_DIR" | "cache" }
  | { kind: "step"; tool: PulumiToolName; step: string }
  | { kind: "build-progress"; tool: PulumiToolName; elapsedMs: number }
  | { kind: "build-done"; tool: PulumiToolName; path: string; elapsedMs: number };

export function formatPulumiToolProgress(event: PulumiToolProgress): string {
  const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;
  switch (event.kind) {
    case "found":
      return `[pulumi-tools] ${event.tool}: using ${event.path} (${event.source})`;
    case "step":
      return `[pulumi-tools] ${event.tool}: ${event.step}`;
    case "build-progress":
      return `[pulumi-tools] still building ${event.tool}: ${seconds(event.elapsedMs)} elapsed`;
    case "build-done":
      return `[pulumi-tools] built ${event.tool} in ${seconds(event.elapsedMs)} -> ${event.path}`;
  }
}

export interface PulumiTools {
  pulumi: string;
  kubernetesProvider: string;
  /** Folder holding both: put it first on PATH so the CLI finds the provider as an ambient plugin. */
  binDir: string;
  /** `binDir/..`: the Automation API's `PulumiCommand.get({ root })` runs `<root>/bin/pulumi`. */
  root: string;
  pins: PulumiToolPins;
}

export interface EnsurePulumiToolsOptions {
  env?: NodeJS.ProcessEnv;
  cacheDir?: string;
  onProgress?: (event: PulumiToolProgress) => void;
  progressIntervalMs?: number;
  /**
   * Niceness of the `go build` processes (0-19). The cluster tests' setup builds in the background at 19,
   * so the build takes only CPU that the tests leave idle.
   */
  niceness?: number;
  /** Stops a build under way (its `go build` process group is killed); the call then rejects. */
  signal?: AbortSignal;
  /** Awaited before the provider's build: it reuses the Kubernetes packages the cluster binaries compile. */
  providerAfter?: Promise<unknown>;
}

interface RunOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  logPath: string;
  niceness?: number;
  signal?: AbortSignal;
}

async function run(command: string, args: string[], options: RunOptions): Promise<string> {
  return new Promise<string>((resolveRun, rejectRun) => {
    const chunks: Buffer[] = [];
    if (options.signal?.aborted) {
      rejectRun(new Error(`${command} ${args.join(" ")} not started: aborted`));
      return;
    }
    // Started under `nice`, which execs the command at that niceness: everything it runs inherits it from
    // its first instruction (setting it after the spawn raced a fast child).
    const niced = options.niceness !== undefined;
    const child = spawn(niced ? "nice" : command, niced ? ["-n", String(options.niceness), command, ...args] : args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group when abortable, so an abort also stops the compilers `go` started.
      detached: options.signal !== undefined,
    });
    const abort = (): void => {
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    };
    options.signal?.addEventListener("abort", abort, { once: true });
    child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => chunks.push(chunk));
    child.on("error", rejectRun);
    child.on("close", (code) => {
      options.signal?.removeEventListener("abort", abort);
      const output = Buffer.concat(chunks).toString("utf8");
      writeFileSync(options.logPath, `$ (cd ${options.cwd} && ${command} ${args.join(" ")})\n${output}\n`, {
        flag: "a",
      });
      if (code === 0) resolveRun(output);
      else
        rejectRun(
          new Error(
            `${command} ${args.join(" ")} failed (exit ${code}); log: ${options.logPath}\n${output.slice(-4000)}`,
          ),
        );
    });
  });
}

/** How a build may run: its niceness and what stops it (see {@link EnsurePulumiToolsOptions}). */
type BuildLimits = Pick<RunOptions, "niceness" | "signal">;

function goEnv(goBinary: string, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  // GOTOOLCHAIN=local: never download a toolchain; the modules ask for go <= the installed one.
  return { ...env, GOTOOLCHAIN: "local", PATH: `${dirname(goBinary)}${delimiter}${env.PATH ?? ""}` };
}

async function buildCli(
  goBinary: string,
  pins: PulumiToolPins,
  outputPath: string,
  env: NodeJS.ProcessEnv,
  logPath: string,
  limits: BuildLimits,
): Promise<void> {
  const temporaryOutput = `${outputPath}.tmp-${process.pid}`;
  const ldflags = ["-s", "-w", versionLdflag("pulumi", pins)].join(" ");
  await run(
    goBinary,
    ["build", "-trimpath", "-ldflags", ldflags, "-o", temporaryOutput, PULUMI_CLI_PACKAGE],
    {
      cwd: join(TOOLS_DIR, "pulumi"),
      env: goEnv(goBinary, env),
      logPath,
      ...limits,
    },
  );
  renameSync(temporaryOutput, outputPath);
}

async function buildKubernetesProvider(
  goBinary: string,
  pins: PulumiToolPins,
  outputPath: string,
  workDir: string,
  env: NodeJS.ProcessEnv,
  logPath: string,
  onStep: (step: string) => void,
  limits: BuildLimits,
): Promise<void> {
  const toolModuleDir = join(TOOLS_DIR, "pulumi-kubernetes");
  const buildEnv = goEnv(goBinary, env);
  const sourceDir = join(workDir, "provider");
  // A copy of the module whose requirements follow tools/k8s' versions (client-go, apimachinery, x/net,
  // grpc, protobuf...), so that the Go build cache already holds what the provider shares with the
  // cluster binaries, compiled for them (see KUBERNETES_PROVIDER_ALIGNMENT). Its own
  // `replace sdk/v4 => ../sdk` points into upstream's monorepo: the released sdk of the same version
  // (tools/pulumi-kubernetes) is taken instead.
  onStep(`copying ${KUBERNETES_PROVIDER_MODULE} with its requirements on tools/k8s' versions`);
  await prepareAlignedSource(
    goBinary,
    {
      name: "pulumi-resource-kubernetes",
      toolDir: toolModuleDir,
      alignDir: join(TOOLS_DIR, "k8s"),
      pinnedModule: KUBERNETES_PROVIDER_MODULE,
      goPackage: `${KUBERNETES_PROVIDER_MODULE}/${PROVIDER_COMMAND_DIR}`,
      rewrite: KUBERNETES_PROVIDER_ALIGNMENT,
      replaceVersions: new Map([[KUBERNETES_SDK_MODULE, pins.providerVersion]]),
      completeRequirements: true,
    },
    sourceDir,
    buildEnv,
    logPath,
  );

  onStep("generating schema-embed.json and terraform-mapping-embed.json (upstream `go generate`)");
  const generateEnv = {
    ...buildEnv,
    VERSION: pins.providerVersion.replace(/^v/, ""),
    GOFLAGS: "-mod=readonly",
  };
  await run(goBinary, ["generate", "./main.go"], {
    cwd: join(sourceDir, PROVIDER_COMMAND_DIR),
    env: generateEnv,
    logPath,
    ...limits,
  });
  for (const generated of ["schema-embed.json", "terraform-mapping-embed.json"]) {
    if (!existsSync(join(sourceDir, PROVIDER_COMMAND_DIR, generated))) {
      throw new Error(`go generate did not write ${generated}; log: ${logPath}`);
    }
  }

  onStep("compiling (a cold build takes many minutes on 2 cores)");
  const temporaryOutput = `${outputPath}.tmp-${process.pid}`;
  const ldflags = ["-s", "-w", versionLdflag("pulumi-resource-kubernetes", pins)].join(" ");
  await run(
    goBinary,
    [
      "build",
      "-mod=readonly",
      "-trimpath",
      "-ldflags",
      ldflags,
      "-o",
      temporaryOutput,
      `./${PROVIDER_COMMAND_DIR}`,
    ],
    {
      cwd: sourceDir,
      env: buildEnv,
      logPath,
      ...limits,
    },
  );
  renameSync(temporaryOutput, outputPath);
  // The copied source is only needed for the build (the Go build cache keeps the compiled packages).
  rmSync(sourceDir, { recursive: true, force: true });
}

/**
 * Paths of the Pulumi CLI and the Kubernetes provider, building what is missing (sequentially: the
 * machine has 2 cores). Throws on a failed build: callers must not skip.
 */
export async function ensurePulumiTools(options: EnsurePulumiToolsOptions = {}): Promise<PulumiTools> {
  const env = options.env ?? process.env;
  const onProgress =
    options.onProgress ?? ((event) => process.stderr.write(`${formatPulumiToolProgress(event)}\n`));
  const pins = readPulumiToolPins();

  const override = env.GPUFLEET_PULUMI_BIN_DIR;
  if (override) {
    const pulumi = join(override, "pulumi");
    const kubernetesProvider = join(override, "pulumi-resource-kubernetes");
    for (const [tool, path] of [
      ["pulumi", pulumi],
      ["pulumi-resource-kubernetes", kubernetesProvider],
    ] as const) {
      if (!isExecutable(path))
        throw new Error(`GPUFLEET_PULUMI_BIN_DIR=${override} has no executable ${tool}`);
      onProgress({ kind: "found", tool, path, source: "GPUFLEET_PULUMI_BIN_DIR" });
    }
    return { pulumi, kubernetesProvider, binDir: override, root: dirname(override), pins };
  }

  const cacheDir = options.cacheDir ?? pulumiToolsCacheDir(pins.pinHash, env);
  const binDir = join(cacheDir, "bin");
  mkdirSync(binDir, { recursive: true });
  const pulumi = join(binDir, "pulumi");
  const kubernetesProvider = join(binDir, "pulumi-resource-kubernetes");
  const missing = (path: string): boolean => !isExecutable(path);
  if (missing(pulumi) || missing(kubernetesProvider)) {
    const goBinary = findGo(env);
    const limits: BuildLimits = {
      ...(options.niceness !== undefined ? { niceness: options.niceness } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    };
    await withLockFile(join(cacheDir, ".build.lock"), async () => {
      const builds: Array<[PulumiToolName, string, () => Promise<void>]> = [
        ["pulumi", pulumi, () => buildCli(goBinary, pins, pulumi, env, join(cacheDir, "pulumi.build.log"), limits)],
        [
          "pulumi-resource-kubernetes",
          kubernetesProvider,
          async () => {
            await options.providerAfter;
            options.signal?.throwIfAborted();
            await buildKubernetesProvider(
              goBinary,
              pins,
              kubernetesProvider,
              cacheDir,
              env,
              join(cacheDir, "pulumi-resource-kubernetes.build.log"),
              (step) => onProgress({ kind: "step", tool: "pulumi-resource-kubernetes", step }),
              limits,
            );
          },
        ],
      ];
      for (const [tool, path, build] of builds) {
        if (!missing(path)) continue;
        const startedAt = Date.now();
        const version = tool === "pulumi" ? pins.cliVersion : pins.providerVersion;
        onProgress({ kind: "step", tool, step: `building ${version} from Go modules` });
        const ticker = setInterval(
          () => onProgress({ kind: "build-progress", tool, elapsedMs: Date.now() - startedAt }),
          options.progressIntervalMs ?? 30_000,
        );
        try {
          await build();
        } finally {
          clearInterval(ticker);
        }
        onProgress({ kind: "build-done", tool, path, elapsedMs: Date.now() - startedAt });
      }
    }, (holder) => onProgress({ kind: "step", tool: "pulumi", step: `waiting for the build under way (pid ${holder}) to finish` }));
  }
  onProgress({ kind: "found", tool: "pulumi", path: pulumi, source: "cache" });
  onProgress({
    kind: "found",
    tool: "pulumi-resource-kubernetes",
    path: kubernetesProvider,
    source: "cache",
  });
  return { pulumi, kubernetesProvider, binDir, root: cacheDir, pins };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const command = process.argv[2] ?? "build";
  if (command !== "build") {
    process.stderr.write("usage: npx tsx infra/tools.ts build\n");
    process.exit(2);
  }
  const startedAt = Date.now();
  const tools = await ensurePulumiTools();
  process.stdout.write(
    `pulumi ${tools.pins.cliVersion}: ${tools.pulumi}\npulumi-resource-kubernetes ${tools.pins.providerVersion}: ${tools.kubernetesProvider}\n` +
      `total ${((Date.now() - startedAt) / 1000).toFixed(1)}s\n`,
  );
}
