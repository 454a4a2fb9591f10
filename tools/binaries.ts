/**
 * Finds or builds the pinned binaries the project runs: the local control plane (etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler, kubectl, kwok), helm, and Prometheus' `prometheus` and
 * `promtool` (for the tests of the Prometheus metrics source and of the chart's alerts), and the
 * LeaderWorkerSet controller `lws-controller` (multi-node replicas; started by the cluster harness).
 *
 * Versions are pinned in ONE place: the Go tool modules under tools/ (tools/k8s, tools/etcd,
 * tools/kwok, tools/helm, tools/prometheus, tools/lws). This file reads the pins from their go.mod files.
 *
 * Resolution order (like controller-runtime's envtest):
 *   1. $KUBEBUILDER_ASSETS/<name>          (taken as is: the caller chose that directory)
 *   2. <name> on PATH                      (only if `--version` reports the pinned major.minor)
 *   3. the build cache outside the repo:   ${GPUFLEET_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/gpufleet}/bin/<pin hash>/
 *      built there with `go build -trimpath` when missing. The directory name hashes the tools'
 *      go.mod + go.sum, so binaries are rebuilt only when a pin changes. prometheus and promtool
 *      have their own folder, bin/prometheus-<hash of tools/prometheus>/, and lws-controller
 *      bin/lws-<hash of tools/lws and tools/k8s>/, so that bumping one group's pins does not rebuild the others.
 *
 * Every build shares one Go build cache (GOCACHE), but a package compiled for one build is reused by
 * another only if its module version and all its dependencies' are the same. lws-controller is therefore
 * built from a copy of its module whose requirements follow tools/k8s' versions of the modules both use
 * (client-go, apimachinery, x/net, protobuf...; BinaryRecipe.alignedWith): after the cluster binaries it
 * compiles ~65 packages of ~860 (measured: README, "CI time"). Prometheus cannot be built that way: it is
 * on client-go 0.37 and grpc 1.84, far above the cluster's 0.34 and 1.72.
 *
 * Prometheus is built without its web UI assets (no `builtinassets` tag: the UI pages answer 404,
 * the HTTP API the tests use is complete) and with `remove_all_sd` (only static, file and HTTP
 * service discovery), which the tests need and which keeps the cold build short.
 */
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  accessSync,
  chmodSync,
  constants,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  openSync,
  closeSync,
  readdirSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { homedir } from "node:os";
import { basename, delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const TOOLS_DIR = join(REPO_ROOT, "tools");

export type ClusterBinaryName =
  "etcd" | "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" | "kubectl" | "kwok" | "helm";

export type ClusterBinaries = Record<ClusterBinaryName, string>;

export type PrometheusBinaryName = "prometheus" | "promtool";

/** The LeaderWorkerSet controller (sigs.k8s.io/lws), which runs multi-node replicas as pod groups. */
export type LwsBinaryName = "lws-controller";

/** Every binary this file can find or build. */
export type PinnedBinaryName = ClusterBinaryName | PrometheusBinaryName | LwsBinaryName;

export const CLUSTER_BINARY_NAMES: readonly ClusterBinaryName[] = [
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "kubectl",
  "kwok",
  "helm",
];

type ToolModule = "k8s" | "etcd" | "kwok" | "helm" | "prometheus" | "lws";

/**
 * Tool modules whose pins share one cache folder. The cluster group's folder is named by its hash
 * alone (as before Prometheus joined), the others by `<group>-<hash>`.
 */
const PIN_GROUPS = {
  cluster: { toolModules: ["k8s", "etcd", "kwok", "helm"], folderPrefix: "", recipeRevision: "1" },
  prometheus: { toolModules: ["prometheus"], folderPrefix: "prometheus-", recipeRevision: "1" },
  // Built on tools/k8s' module versions (BinaryRecipe.alignedWith), so its pins count too.
  lws: { toolModules: ["lws", "k8s"], folderPrefix: "lws-", recipeRevision: "2" },
} as const satisfies Record<
  string,
  { toolModules: readonly ToolModule[]; folderPrefix: string; recipeRevision: string }
>;

type PinGroup = keyof typeof PIN_GROUPS;

const groupOf = (toolModule: ToolModule): PinGroup =>
  toolModule === "prometheus" || toolModule === "lws" ? toolModule : "cluster";

/** How one binary is versioned, built and asked for its version. */
export interface BinaryRecipe {
  name: PinnedBinaryName;
  /** Folder under tools/ holding the go.mod that pins it. */
  toolModule: ToolModule;
  /** Module path whose required version is the pin. */
  pinnedModule: string;
  /** Go package to build (a `tool` of that go.mod). */
  goPackage: string;
  versionArgs: string[];
  /** -X flags that stamp the version into the binary, given the pinned version. */
  versionLdflags: (pinnedVersion: string) => string[];
  /** The version the binary reports, when it differs from the module version (Prometheus). */
  releaseVersion?: (pinnedVersion: string) => string;
  /** Go build tags. */
  buildTags?: readonly string[];
  /**
   * Build from a copy of the pinned module's source whose requirements follow `toolModule`'s versions
   * for every module both builds use, so the Go build cache (one for all builds) already holds those
   * packages, compiled for the cluster binaries. `rewrite`: dependencies whose own go.mod asks for newer
   * versions of shared modules; they are copied too, their requirements aligned the same way.
   */
  alignedWith?: { toolModule: ToolModule; rewrite: readonly string[] };
}

/**
 * Prometheus' Go module versions encode the release: v0.316.0 is Prometheus 3.16.0
 * (v0.<major><minor, two digits>.<patch>).
 */
export function prometheusReleaseVersion(moduleVersion: string): string {
  const match = /^v0\.(\d+)\.(\d+)$/.exec(moduleVersion);
  if (!match) throw new Error(`unexpected Prometheus module version ${moduleVersion} (want v0.MNN.P)`);
  const encoded = Number(match[1]);
  return `${Math.floor(encoded / 100)}.${encoded % 100}.${match[2]}`;
}

const prometheusRecipe = (name: PrometheusBinaryName): BinaryRecipe => ({
  name,
  toolModule: "prometheus",
  pinnedModule: "github.com/prometheus/prometheus",
  goPackage: `github.com/prometheus/prometheus/cmd/${name}`,
  versionArgs: ["--version"],
  versionLdflags: (version) => [
    `-X github.com/prometheus/common/version.Version=${prometheusReleaseVersion(version)}`,
    `-X github.com/prometheus/common/version.Revision=${version}`,
    "-X github.com/prometheus/common/version.Branch=module",
  ],
  releaseVersion: prometheusReleaseVersion,
  buildTags: ["remove_all_sd"],
});

function kubernetesVersionLdflags(version: string): string[] {
  const [major = "", minor = ""] = version.replace(/^v/, "").split(".");
  // Both packages: component-base for servers, client-go for what clients report.
  return ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"].flatMap((pkg) => [
    `-X ${pkg}.gitVersion=${version}`,
    `-X ${pkg}.gitMajor=${major}`,
    `-X ${pkg}.gitMinor=${minor}`,
    `-X ${pkg}.gitTreeState=clean`,
  ]);
}

const kubernetesRecipe = (name: ClusterBinaryName, versionArgs: string[]): BinaryRecipe => ({
  name,
  toolModule: "k8s",
  pinnedModule: "k8s.io/kubernetes",
  goPackage: `k8s.io/kubernetes/cmd/${name}`,
  versionArgs,
  versionLdflags: kubernetesVersionLdflags,
});

export const BINARY_RECIPES: readonly BinaryRecipe[] = [
  {
    name: "etcd",
    toolModule: "etcd",
    pinnedModule: "go.etcd.io/etcd/server/v3",
    goPackage: "go.etcd.io/etcd/server/v3",
    versionArgs: ["--version"],
    // etcd's version string is a constant of its api module; only the commit is stamped at build.
    versionLdflags: (version) => [`-X go.etcd.io/etcd/api/v3/version.GitSHA=${version}`],
  },
  kubernetesRecipe("kube-apiserver", ["--version"]),
  kubernetesRecipe("kube-controller-manager", ["--version"]),
  kubernetesRecipe("kube-scheduler", ["--version"]),
  kubernetesRecipe("kubectl", ["version", "--client"]),
  {
    name: "kwok",
    toolModule: "kwok",
    pinnedModule: "sigs.k8s.io/kwok",
    goPackage: "sigs.k8s.io/kwok/cmd/kwok",
    versionArgs: ["--version"],
    versionLdflags: (version) => [`-X sigs.k8s.io/kwok/pkg/consts.Version=${version}`],
  },
  {
    name: "helm",
    toolModule: "helm",
    pinnedModule: "helm.sh/helm/v3",
    goPackage: "helm.sh/helm/v3/cmd/helm",
    versionArgs: ["version", "--short"],
    versionLdflags: (version) => [`-X helm.sh/helm/v3/internal/version.version=${version}`],
  },
  prometheusRecipe("prometheus"),
  prometheusRecipe("promtool"),
  {
    // Its main package is the module's cmd/ (the manager binary of its releases).
    name: "lws-controller",
    toolModule: "lws",
    pinnedModule: "sigs.k8s.io/lws",
    goPackage: "sigs.k8s.io/lws/cmd",
    versionArgs: ["--version"],
    // Built on tools/k8s' versions of client-go, apimachinery, x/net, protobuf... (v0.8.0 asks for
    // slightly newer patches): ~90% of its packages are then the cluster binaries' and come from the Go
    // build cache (64 of ~860 compiled). cert-controller and volcano's apis ask for newer x/* modules.
    alignedWith: {
      toolModule: "k8s",
      rewrite: ["github.com/open-policy-agent/cert-controller", "volcano.sh/apis"],
    },
    versionLdflags: (version) => [
      `-X sigs.k8s.io/lws/pkg/version.GitVersion=${version}`,
      `-X sigs.k8s.io/lws/pkg/version.GitCommit=${version}`,
    ],
  },
];

/** module path → version for every `require`d module of a go.mod (direct or indirect). */
export function parseGoModRequirements(goModText: string): Map<string, string> {
  const requirements = new Map<string, string>();
  let inRequireBlock = false;
  for (const rawLine of goModText.split("\n")) {
    const line = rawLine.replace(/\/\/.*$/, "").trim();
    if (line === "") continue;
    if (inRequireBlock) {
      if (line === ")") {
        inRequireBlock = false;
        continue;
      }
      const [modulePath, version] = line.split(/\s+/);
      if (modulePath && version) requirements.set(modulePath, version);
    } else if (line === "require (") {
      inRequireBlock = true;
    } else if (line.startsWith("require ")) {
      const [, modulePath, version] = line.split(/\s+/);
      if (modulePath && version) requirements.set(modulePath, version);
    }
  }
  return requirements;
}

/** `replace X => Y vN` lines of a go.mod: module path → replacement {path, version}. */
export function parseGoModReplacements(goModText: string): Map<string, { path: string; version?: string }> {
  const replacements = new Map<string, { path: string; version?: string }>();
  let inBlock = false;
  for (const rawLine of goModText.split("\n")) {
    const line = rawLine.replace(/\/\/.*$/, "").trim();
    if (line === "") continue;
    if (inBlock && line === ")") {
      inBlock = false;
      continue;
    }
    if (line === "replace (") {
      inBlock = true;
      continue;
    }
    const body = inBlock ? line : line.startsWith("replace ") ? line.slice("replace ".length) : undefined;
    if (body === undefined) continue;
    const [left = "", right = ""] = body.split("=>").map((side) => side.trim());
    const [modulePath] = left.split(/\s+/);
    const [path, version] = right.split(/\s+/);
    if (modulePath && path) replacements.set(modulePath, version ? { path, version } : { path });
  }
  return replacements;
}

/**
 * The version of every module a go.mod requires, as built: a `replace` by another version of the same
 * module wins (tools/k8s requires the Kubernetes staging modules as v0.0.0 and replaces them).
 */
export function effectiveModuleVersions(goModText: string): Map<string, string> {
  const versions = parseGoModRequirements(goModText);
  for (const [modulePath, replacement] of parseGoModReplacements(goModText)) {
    if (replacement.path === modulePath && replacement.version && versions.has(modulePath)) {
      versions.set(modulePath, replacement.version);
    }
  }
  return versions;
}

/**
 * `go mod edit` flags that move a go.mod's requirements onto the versions another build selected
 * (`alignWith`), for every module both name: `-require=path@version`. Modules only it names keep their
 * version. Requirements that are not in `keep` (modules no package of the build comes from, such as
 * test frameworks) are dropped, so their own requirements no longer raise the shared modules.
 */
export function alignedRequirementEdits(
  goModText: string,
  alignWith: ReadonlyMap<string, string>,
  keep?: ReadonlySet<string>,
): string[] {
  const edits: string[] = [];
  for (const [modulePath, version] of parseGoModRequirements(goModText)) {
    if (keep && !keep.has(modulePath)) {
      edits.push(`-droprequire=${modulePath}`);
      continue;
    }
    const aligned = alignWith.get(modulePath);
    if (aligned !== undefined && aligned !== version) edits.push(`-require=${modulePath}@${aligned}`);
  }
  return edits;
}

/** The first `[v]X.Y.Z` in a `--version` output, as {major, minor}. */
export function parseReportedVersion(output: string): { major: number; minor: number } | undefined {
  const match = /v?(\d+)\.(\d+)\.(\d+)/.exec(output);
  if (!match) return undefined;
  return { major: Number(match[1]), minor: Number(match[2]) };
}

export function versionMatchesPin(output: string, pinnedVersion: string): boolean {
  const reported = parseReportedVersion(output);
  const pinned = parseReportedVersion(pinnedVersion);
  return (
    reported !== undefined &&
    pinned !== undefined &&
    reported.major === pinned.major &&
    reported.minor === pinned.minor
  );
}

export interface PinnedTools {
  /** binary name → pinned module version (e.g. kube-apiserver → v1.34.4, prometheus → v0.316.0). */
  versions: Record<PinnedBinaryName, string>;
  /** Hash of the cluster tools' go.mod and go.sum plus the build recipe: names their cache folder. */
  pinHash: string;
  /** The cache folder name (under bin/) of each binary. */
  cacheFolders: Record<PinnedBinaryName, string>;
}

export function readPinnedTools(toolsDir: string = TOOLS_DIR): PinnedTools {
  const goModByModule = new Map<string, Map<string, string>>();
  const folderByGroup = {} as Record<PinGroup, string>;
  for (const [group, spec] of Object.entries(PIN_GROUPS) as [PinGroup, (typeof PIN_GROUPS)[PinGroup]][]) {
    // Bump a group's recipeRevision when its build command changes, so cached binaries are rebuilt.
    const hash = createHash("sha256").update(`recipe:${spec.recipeRevision}\n`);
    for (const toolModule of spec.toolModules) {
      const goModPath = join(toolsDir, toolModule, "go.mod");
      const goModText = readFileSync(goModPath, "utf8");
      goModByModule.set(toolModule, parseGoModRequirements(goModText));
      hash.update(`${toolModule}/go.mod\n${goModText}\n`);
      const goSumPath = join(toolsDir, toolModule, "go.sum");
      hash.update(`${toolModule}/go.sum\n${existsSync(goSumPath) ? readFileSync(goSumPath, "utf8") : ""}\n`);
    }
    folderByGroup[group] = `${spec.folderPrefix}${hash.digest("hex").slice(0, 16)}`;
  }
  const versions = {} as Record<PinnedBinaryName, string>;
  const cacheFolders = {} as Record<PinnedBinaryName, string>;
  for (const recipe of BINARY_RECIPES) {
    const version = goModByModule.get(recipe.toolModule)?.get(recipe.pinnedModule);
    if (!version) {
      throw new Error(`tools/${recipe.toolModule}/go.mod does not require ${recipe.pinnedModule}`);
    }
    versions[recipe.name] = version;
    cacheFolders[recipe.name] = folderByGroup[groupOf(recipe.toolModule)];
  }
  return { versions, pinHash: folderByGroup.cluster, cacheFolders };
}

/** `<cache>/bin/<folder>`; the folder is a pin hash (see {@link PinnedTools.cacheFolders}). */
export function defaultBinaryCacheDir(pinHash: string, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.GPUFLEET_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "gpufleet");
  return join(base, "bin", pinHash);
}

export type BinaryProgressEvent =
  | {
      kind: "found";
      binary: PinnedBinaryName;
      path: string;
      source: "KUBEBUILDER_ASSETS" | "PATH" | "cache";
    }
  | { kind: "build-start"; binary: PinnedBinaryName; version: string; index: number; total: number }
  | { kind: "build-progress"; binary: PinnedBinaryName; elapsedMs: number }
  | { kind: "build-done"; binary: PinnedBinaryName; path: string; elapsedMs: number }
  | { kind: "rejected"; binary: PinnedBinaryName; path: string; reason: string };

export function formatProgress(event: BinaryProgressEvent): string {
  const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;
  switch (event.kind) {
    case "found":
      return `[cluster-binaries] ${event.binary}: using ${event.path} (${event.source})`;
    case "build-start":
      return `[cluster-binaries] building ${event.binary} ${event.version} (${event.index}/${event.total}); a cold build takes minutes`;
    case "build-progress":
      return `[cluster-binaries] still building ${event.binary}: ${seconds(event.elapsedMs)} elapsed`;
    case "build-done":
      return `[cluster-binaries] built ${event.binary} in ${seconds(event.elapsedMs)} -> ${event.path}`;
    case "rejected":
      return `[cluster-binaries] ${event.binary}: ignoring ${event.path} (${event.reason})`;
  }
}

const printProgressToStderr = (event: BinaryProgressEvent): void => {
  process.stderr.write(`${formatProgress(event)}\n`);
};

export interface EnsureClusterBinariesOptions {
  onProgress?: (event: BinaryProgressEvent) => void;
  env?: NodeJS.ProcessEnv;
  /** Override the cache folder of every binary (default: {@link defaultBinaryCacheDir} of its group). */
  cacheDir?: string;
  /** Only these binaries (default: the seven cluster binaries). */
  only?: ClusterBinaryName[];
  /** Skip KUBEBUILDER_ASSETS and PATH (used by `cli.ts build` to fill the cache). */
  cacheOnly?: boolean;
  /** The `go` command to build with (default: {@link findGo}). */
  goBinary?: string;
  /** Interval of build-progress events. */
  progressIntervalMs?: number;
}

/** Adds the owner's write bit through a tree (module cache copies are read-only). */
export function makeTreeWritable(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    chmodSync(path, entry.isDirectory() ? 0o755 : statSync(path).mode | 0o200);
    if (entry.isDirectory()) makeTreeWritable(path);
  }
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findOnPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

async function reportedVersion(path: string, args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await execFileAsync(path, args, { timeout: 20_000 });
    return `${stdout}\n${stderr}`;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** `go` from PATH, else the standard /usr/local/go install. */
export function findGo(env: NodeJS.ProcessEnv = process.env): string {
  const fromPath = findOnPath("go", env);
  if (fromPath) return fromPath;
  if (isExecutable("/usr/local/go/bin/go")) return "/usr/local/go/bin/go";
  throw new Error(
    "Go toolchain not found (looked on PATH and /usr/local/go/bin/go): install Go, then `npm run cluster:build` builds every pinned binary from tools/*/go.mod",
  );
}

/**
 * The directory of a Go module at the version `toolDir`/go.mod pins, downloaded into the Go module cache
 * (checked against go.sum) if needed: for files a module ships besides code (CRDs, webhook manifests).
 */
export async function pinnedModuleDir(toolDir: string, modulePath: string): Promise<string> {
  const version = parseGoModRequirements(readFileSync(join(toolDir, "go.mod"), "utf8")).get(modulePath);
  if (!version) throw new Error(`${join(toolDir, "go.mod")} does not require ${modulePath}`);
  const { stdout } = await execFileAsync(findGo(), ["mod", "download", "-json", modulePath], {
    cwd: toolDir,
    maxBuffer: 1 << 20,
    timeout: 300_000,
  });
  const info = JSON.parse(stdout) as { Dir?: string; Version?: string; Error?: string };
  if (info.Error || !info.Dir) throw new Error(`go mod download ${modulePath}: ${info.Error ?? "no module directory"}`);
  if (info.Version !== version) throw new Error(`go mod download gave ${modulePath} ${info.Version}, pinned ${version}`);
  return info.Dir;
}

/** Exclusive lock file (our pid inside), so two runs never build into the same folder at once; a dead holder's lock is taken over. */
export async function withLockFile<T>(lockPath: string, work: () => Promise<T>, onWait?: (holderPid: number) => void): Promise<T> {
  let told = false;
  for (;;) {
    try {
      const fd = openSync(lockPath, "wx");
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = Number.parseInt(readFileSync(lockPath, "utf8").trim(), 10);
      let holderAlive = false;
      try {
        if (Number.isFinite(holder)) {
          process.kill(holder, 0);
          holderAlive = true;
        }
      } catch {
        holderAlive = false;
      }
      if (!holderAlive) {
        rmSync(lockPath, { force: true });
        continue;
      }
      if (!told) onWait?.(holder);
      told = true;
      await new Promise((resolveWait) => setTimeout(resolveWait, 2000));
    }
  }
  try {
    return await work();
  } finally {
    rmSync(lockPath, { force: true });
  }
}

/** Runs `go`, appending the command and its output to `logPath`; throws with the output's tail on failure. */
async function runGo(
  goBinary: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
  logPath: string,
  what = `go ${args.join(" ")}`,
): Promise<string> {
  return new Promise<string>((resolveRun, rejectRun) => {
    const stdout: Buffer[] = [];
    const all: Buffer[] = [];
    const child = spawn(goBinary, args, {
      cwd,
      // The Go toolchain's own dir first so `go` finds its tools. CGO is left at Go's default:
      // forcing it either way changes the build-cache keys of every package and costs a full rebuild.
      env: { ...env, PATH: `${dirname(goBinary)}${delimiter}${env.PATH ?? ""}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.on("data", (chunk: Buffer) => {
      stdout.push(chunk);
      all.push(chunk);
    });
    child.stderr.on("data", (chunk: Buffer) => all.push(chunk));
    child.on("error", rejectRun);
    child.on("close", (code) => {
      const output = Buffer.concat(all).toString("utf8");
      writeFileSync(logPath, `$ (cd ${cwd} && go ${args.join(" ")})\n${output}\n`, { flag: "a" });
      if (code === 0) resolveRun(Buffer.concat(stdout).toString("utf8"));
      else rejectRun(new Error(`${what} failed (exit ${code}); log: ${logPath}\n${output.slice(-4000)}`));
    });
  });
}

/** What {@link prepareAlignedSource} copies and aligns (see {@link BinaryRecipe.alignedWith}). */
export interface AlignedSourceSpec {
  /** Names the build in messages. */
  name: string;
  /** Folder of the go.mod that pins the module (tools/<module>). */
  toolDir: string;
  /** Folder of the go.mod whose module versions the copy follows (tools/k8s). */
  alignDir: string;
  /** The module whose source is copied. */
  pinnedModule: string;
  /** The package built from it (a full import path). */
  goPackage: string;
  /** Dependencies whose own go.mod asks for newer versions of shared modules: copied and aligned too. */
  rewrite: readonly string[];
  /**
   * Modules the copied module replaces by a local path of its own repository (the provider's `../sdk`),
   * taken at this released version instead: module path → version.
   */
  replaceVersions?: ReadonlyMap<string, string>;
  /**
   * Let `go` add the requirements the aligned module graph still lacks (modules that tests of the copied
   * module or the aligned versions bring), then check that no go.sum line had to be added: every module
   * is still verified against the committed go.sum files, and nothing is downloaded unverified.
   */
  completeRequirements?: boolean;
}

/**
 * Writes into `workDir` the source of `spec.pinnedModule` at its pin, with the go.mod requirements
 * moved onto the versions of `spec.alignDir`'s go.mod (see {@link BinaryRecipe.alignedWith}), and checks
 * that every module both builds use now has the same version. Every module is still checked against
 * the committed go.sum files.
 */
export async function prepareAlignedSource(
  goBinary: string,
  spec: AlignedSourceSpec,
  workDir: string,
  env: NodeJS.ProcessEnv,
  logPath: string,
): Promise<void> {
  const { toolDir, alignDir } = spec;
  const alignWith = effectiveModuleVersions(readFileSync(join(alignDir, "go.mod"), "utf8"));
  const replaceVersions = spec.replaceVersions ?? new Map<string, string>();
  /** The module (path and version) of every package the binary is built from, one line each. */
  const modulesOfBuild = async (cwd: string, mode = "-mod=readonly"): Promise<string[]> =>
    (
      await runGo(
        goBinary,
        // -e: a package may embed files that `go generate` writes only later (the Pulumi provider's schema).
        ["list", mode, "-e", "-deps", "-f", "{{with .Module}}{{.Path}} {{.Version}}{{end}}", spec.goPackage],
        cwd,
        env,
        logPath,
      )
    )
      .split("\n")
      .filter((line) => line !== "");
  // Modules a package of the binary comes from; the others (test frameworks, generators) are dropped.
  const keep = new Set((await modulesOfBuild(toolDir)).map((line) => line.split(" ")[0] ?? ""));
  for (const modulePath of replaceVersions.keys()) keep.add(modulePath);

  rmSync(workDir, { recursive: true, force: true });
  const copyModule = async (modulePath: string, destination: string): Promise<void> => {
    const version = replaceVersions.get(modulePath);
    cpSync(version ? await moduleDir(toolDir, modulePath, version) : await pinnedModuleDir(toolDir, modulePath), destination, {
      recursive: true,
    });
    makeTreeWritable(destination);
  };
  await copyModule(spec.pinnedModule, workDir);
  const replaces: string[] = [];
  for (const [modulePath, version] of replaceVersions) {
    if (!spec.rewrite.includes(modulePath)) replaces.push(`-replace=${modulePath}=${modulePath}@${version}`);
  }
  for (const [index, modulePath] of spec.rewrite.entries()) {
    const relative = `_aligned/${index}`;
    await copyModule(modulePath, join(workDir, relative));
    const edits = alignedRequirementEdits(readFileSync(join(workDir, relative, "go.mod"), "utf8"), alignWith);
    if (edits.length > 0) await runGo(goBinary, ["mod", "edit", ...edits], join(workDir, relative), env, logPath);
    replaces.push(`-replace=${modulePath}=./${relative}`);
  }
  const mainEdits = alignedRequirementEdits(readFileSync(join(workDir, "go.mod"), "utf8"), alignWith, keep);
  await runGo(goBinary, ["mod", "edit", ...mainEdits, ...replaces], workDir, env, logPath);
  const sums = new Set<string>();
  for (const goSum of [join(toolDir, "go.sum"), join(alignDir, "go.sum"), join(workDir, "go.sum")]) {
    if (!existsSync(goSum)) continue;
    for (const line of readFileSync(goSum, "utf8").split("\n")) if (line.trim() !== "") sums.add(line);
  }
  const mergedSums = `${[...sums].sort().join("\n")}\n`;
  writeFileSync(join(workDir, "go.sum"), mergedSums);
  if (spec.completeRequirements) {
    await modulesOfBuild(workDir, "-mod=mod");
    if (readFileSync(join(workDir, "go.sum"), "utf8") !== mergedSums) {
      throw new Error(
        `${spec.name}: the aligned module graph needs go.sum lines that no committed go.sum has (${join(toolDir, "go.sum")}, ${join(alignDir, "go.sum")}); log: ${logPath}`,
      );
    }
  }

  const mismatched = new Set<string>();
  for (const line of await modulesOfBuild(workDir)) {
    const [modulePath = "", version = ""] = line.split(" ");
    const aligned = alignWith.get(modulePath);
    if (aligned !== undefined && aligned !== version) mismatched.add(`${modulePath} ${version} (tools/${basename(alignDir)}: ${aligned})`);
  }
  if (mismatched.size > 0) {
    throw new Error(
      `${spec.name}: after aligning on tools/${basename(alignDir)}, these modules still differ (a dependency's go.mod asks for more; add it to the rewrite list): ${[...mismatched].join(", ")}; log: ${logPath}`,
    );
  }
}

/** The module cache folder of `modulePath@version` (downloaded if missing, checked against `toolDir`'s go.sum). */
async function moduleDir(toolDir: string, modulePath: string, version: string): Promise<string> {
  const { stdout } = await execFileAsync(findGo(), ["mod", "download", "-json", `${modulePath}@${version}`], {
    cwd: toolDir,
    maxBuffer: 1 << 20,
    timeout: 300_000,
  });
  const info = JSON.parse(stdout) as { Dir?: string; Error?: string };
  if (info.Error || !info.Dir) throw new Error(`go mod download ${modulePath}@${version}: ${info.Error ?? "no module directory"}`);
  return info.Dir;
}

async function goBuild(
  goBinary: string,
  recipe: BinaryRecipe,
  version: string,
  outputPath: string,
  env: NodeJS.ProcessEnv,
  logPath: string,
): Promise<void> {
  const ldflags = ["-s", "-w", ...recipe.versionLdflags(version)].join(" ");
  const temporaryOutput = `${outputPath}.tmp-${process.pid}`;
  const tags = recipe.buildTags && recipe.buildTags.length > 0 ? ["-tags", recipe.buildTags.join(",")] : [];
  writeFileSync(logPath, "");
  let cwd = join(TOOLS_DIR, recipe.toolModule);
  const alignedWith = recipe.alignedWith;
  const sourceDir = `${outputPath}.src`;
  if (alignedWith) {
    const spec: AlignedSourceSpec = {
      name: recipe.name,
      toolDir: join(TOOLS_DIR, recipe.toolModule),
      alignDir: join(TOOLS_DIR, alignedWith.toolModule),
      pinnedModule: recipe.pinnedModule,
      goPackage: recipe.goPackage,
      rewrite: alignedWith.rewrite,
    };
    await prepareAlignedSource(goBinary, spec, sourceDir, env, logPath);
    cwd = sourceDir;
  }
  const args = ["build", "-mod=readonly", "-trimpath", ...tags, "-ldflags", ldflags, "-o", temporaryOutput, recipe.goPackage];
  await runGo(goBinary, args, cwd, env, logPath, `go build of ${recipe.name}`);
  renameSync(temporaryOutput, outputPath);
  // The copied source is only needed for the build (the Go build cache keeps the compiled packages).
  if (alignedWith) rmSync(sourceDir, { recursive: true, force: true });
}

/**
 * Returns the path of every cluster binary (or of `options.only`), building the missing ones
 * sequentially (the machine has 2 cores; parallel Go builds only thrash). Throws on a failed build:
 * callers must not skip.
 */
export async function ensureClusterBinaries(
  options: EnsureClusterBinariesOptions = {},
): Promise<ClusterBinaries> {
  const { only, ...rest } = options;
  return ensurePinnedBinaries(only ?? CLUSTER_BINARY_NAMES, rest);
}

/** Like {@link ensureClusterBinaries}, for any pinned binaries, e.g. `["prometheus", "promtool"]`. */
export async function ensurePinnedBinaries<N extends PinnedBinaryName>(
  names: readonly N[],
  options: Omit<EnsureClusterBinariesOptions, "only"> = {},
): Promise<Record<N, string>> {
  const env = options.env ?? process.env;
  const onProgress = options.onProgress ?? printProgressToStderr;
  const pins = readPinnedTools();
  const cacheDirOf = (name: PinnedBinaryName): string =>
    options.cacheDir ?? defaultBinaryCacheDir(pins.cacheFolders[name], env);
  const wanted = BINARY_RECIPES.filter((recipe) => names.includes(recipe.name as N));
  const resolved: Partial<Record<PinnedBinaryName, string>> = {};
  const toBuild: BinaryRecipe[] = [];
  const reportedPin = (recipe: BinaryRecipe): string => {
    const pinned = pins.versions[recipe.name];
    return recipe.releaseVersion ? recipe.releaseVersion(pinned) : pinned;
  };

  for (const recipe of wanted) {
    const pinnedVersion = reportedPin(recipe);
    if (!options.cacheOnly && env.KUBEBUILDER_ASSETS) {
      const candidate = join(env.KUBEBUILDER_ASSETS, recipe.name);
      if (isExecutable(candidate)) {
        resolved[recipe.name] = candidate;
        onProgress({ kind: "found", binary: recipe.name, path: candidate, source: "KUBEBUILDER_ASSETS" });
        continue;
      }
    }
    if (!options.cacheOnly) {
      const candidate = findOnPath(recipe.name, env);
      if (candidate) {
        const output = await reportedVersion(candidate, recipe.versionArgs);
        if (versionMatchesPin(output, pinnedVersion)) {
          resolved[recipe.name] = candidate;
          onProgress({ kind: "found", binary: recipe.name, path: candidate, source: "PATH" });
          continue;
        }
        const reported = parseReportedVersion(output);
        onProgress({
          kind: "rejected",
          binary: recipe.name,
          path: candidate,
          reason: `reports ${reported ? `${reported.major}.${reported.minor}` : "no version"}, pinned ${pinnedVersion}`,
        });
      }
    }
    const cached = join(cacheDirOf(recipe.name), recipe.name);
    if (isExecutable(cached)) {
      resolved[recipe.name] = cached;
      onProgress({ kind: "found", binary: recipe.name, path: cached, source: "cache" });
      continue;
    }
    toBuild.push(recipe);
  }

  if (toBuild.length > 0) {
    const goBinary = options.goBinary ?? findGo(env);
    const cacheDirs = [...new Set(toBuild.map((recipe) => cacheDirOf(recipe.name)))];
    let index = 0;
    for (const cacheDir of cacheDirs) {
      mkdirSync(cacheDir, { recursive: true });
      await withLockFile(join(cacheDir, ".build.lock"), async () => {
        for (const recipe of toBuild.filter((candidate) => cacheDirOf(candidate.name) === cacheDir)) {
          index++;
          const outputPath = join(cacheDir, recipe.name);
          if (isExecutable(outputPath)) {
            // Another process built it while we waited for the lock.
            resolved[recipe.name] = outputPath;
            onProgress({ kind: "found", binary: recipe.name, path: outputPath, source: "cache" });
            continue;
          }
          const version = pins.versions[recipe.name];
          const startedAt = Date.now();
          onProgress({ kind: "build-start", binary: recipe.name, version, index, total: toBuild.length });
          const ticker = setInterval(
            () =>
              onProgress({ kind: "build-progress", binary: recipe.name, elapsedMs: Date.now() - startedAt }),
            options.progressIntervalMs ?? 30_000,
          );
          try {
            await goBuild(
              goBinary,
              recipe,
              version,
              outputPath,
              env,
              join(cacheDir, `${recipe.name}.build.log`),
            );
          } finally {
            clearInterval(ticker);
          }
          const output = await reportedVersion(outputPath, recipe.versionArgs);
          if (!versionMatchesPin(output, reportedPin(recipe))) {
            rmSync(outputPath, { force: true });
            throw new Error(
              `built ${recipe.name} but it reports "${output.trim()}" instead of ${reportedPin(recipe)}`,
            );
          }
          resolved[recipe.name] = outputPath;
          onProgress({
            kind: "build-done",
            binary: recipe.name,
            path: outputPath,
            elapsedMs: Date.now() - startedAt,
          });
        }
      });
    }
  }

  for (const recipe of wanted) {
    if (!resolved[recipe.name]) throw new Error(`no binary for ${recipe.name}`);
  }
  return resolved as Record<N, string>;
}
