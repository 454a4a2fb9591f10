/**
 * Local GPU cluster CLI.
 *
 *   npx tsx sim/cluster/cli.ts build            build (or find) etcd, kube-*, kubectl, kwok, helm,
 *                                               and prometheus + promtool (for the tests)
 *   npx tsx sim/cluster/cli.ts up [--pools F]   start a cluster in the foreground until Ctrl-C
 *   npx tsx sim/cluster/cli.ts up --detach      start it in the background (pid file), print env
 *   npx tsx sim/cluster/cli.ts down             stop a detached cluster
 *   npx tsx sim/cluster/cli.ts env              print `export KUBECONFIG=...` for a running cluster
 *
 * The kubeconfig is also copied to .cache/local-cluster/kubeconfig under the repo root.
 */
import { spawn } from "node:child_process";
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BINARY_RECIPES, REPO_ROOT, ensurePinnedBinaries } from "../../tools/binaries.js";
import { startLocalCluster, type LocalCluster } from "./cluster.js";
import { DEFAULT_NODE_POOLS_FILE, loadNodePools } from "./nodepools.js";

const STATE_DIR = join(REPO_ROOT, ".cache", "local-cluster");
const KUBECONFIG_COPY = join(STATE_DIR, "kubeconfig");
const PID_FILE = join(STATE_DIR, "pid");
const READY_FILE = join(STATE_DIR, "ready");
const DETACHED_LOG = join(STATE_DIR, "up.log");

const print = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

function runningPid(): number | undefined {
  if (!existsSync(PID_FILE)) return undefined;
  const pid = Number.parseInt(readFileSync(PID_FILE, "utf8").trim(), 10);
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

async function build(): Promise<void> {
  const startedAt = Date.now();
  const binaries = await ensurePinnedBinaries(BINARY_RECIPES.map((recipe) => recipe.name));
  for (const [name, path] of Object.entries(binaries)) print(`${name.padEnd(24)} ${path}`);
  print(`binaries ready in ${((Date.now() - startedAt) / 1000).toFixed(1)}s`);
}

async function upForeground(poolsFile: string): Promise<void> {
  const existing = runningPid();
  if (existing !== undefined && existing !== process.pid) {
    throw new Error(`a local cluster is already running (pid ${existing}); run 'down' first`);
  }
  mkdirSync(STATE_DIR, { recursive: true });
  rmSync(READY_FILE, { force: true });
  writeFileSync(PID_FILE, String(process.pid));

  // Filled once started; the signal handler below is installed before, to cover start-up too.
  const started: { cluster?: LocalCluster } = {};
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`\n${signal}: stopping the local cluster...\n`);
    const finish = (): void => {
      rmSync(PID_FILE, { force: true });
      rmSync(READY_FILE, { force: true });
      rmSync(KUBECONFIG_COPY, { force: true });
      process.exit(0);
    };
    if (started.cluster) void started.cluster.stop().then(finish, finish);
    else finish(); // still starting: the exit hook kills whatever was spawned
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => shutdown(signal));

  // With the LeaderWorkerSet controller, for models whose replica spans nodes.
  const { "lws-controller": lwsController } = await ensurePinnedBinaries(["lws-controller"]);
  const cluster = await startLocalCluster({ nodePools: loadNodePools(poolsFile), handleSignals: false, lwsController });
  started.cluster = cluster;
  copyFileSync(cluster.kubeconfigPath, KUBECONFIG_COPY);
  writeFileSync(READY_FILE, `${cluster.startupMs}\n`);
  print(`local cluster ready in ${(cluster.startupMs / 1000).toFixed(1)}s at ${cluster.apiServerUrl}`);
  print(`logs: ${join(cluster.dir, "logs")}`);
  print(`KUBECONFIG: ${cluster.kubeconfigPath} (copied to ${KUBECONFIG_COPY})`);
  print(`export KUBECONFIG=${KUBECONFIG_COPY}`);
  print(`kubectl: ${cluster.binaries.kubectl}`);
  print("Press Ctrl-C to stop.");
  // Keep the event loop alive until a signal arrives.
  setInterval(() => undefined, 1 << 30);
}

async function upDetached(poolsFile: string): Promise<void> {
  const existing = runningPid();
  if (existing !== undefined) throw new Error(`a local cluster is already running (pid ${existing})`);
  mkdirSync(STATE_DIR, { recursive: true });
  rmSync(READY_FILE, { force: true });
  const logFd = openSync(DETACHED_LOG, "w");
  const child = spawn(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), "up", "--pools", poolsFile],
    { detached: true, stdio: ["ignore", logFd, logFd], cwd: REPO_ROOT },
  );
  closeSync(logFd);
  child.unref();
  // Bounded wait: a cold binary build can take long, so allow up to an hour but report failure fast.
  const deadline = Date.now() + 60 * 60 * 1000;
  while (!existsSync(READY_FILE)) {
    if (child.exitCode !== null || (child.pid !== undefined && !isAlive(child.pid))) {
      throw new Error(`the detached cluster exited during start-up; see ${DETACHED_LOG}`);
    }
    if (Date.now() > deadline)
      throw new Error(`the detached cluster did not become ready; see ${DETACHED_LOG}`);
    await new Promise((resolveWait) => setTimeout(resolveWait, 500));
  }
  print(`local cluster running in the background (pid ${child.pid}); log ${DETACHED_LOG}`);
  print(`export KUBECONFIG=${KUBECONFIG_COPY}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function down(): Promise<void> {
  const pid = runningPid();
  if (pid === undefined) {
    print("no local cluster is running");
    return;
  }
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + 60_000;
  while (isAlive(pid) && Date.now() < deadline)
    await new Promise((resolveWait) => setTimeout(resolveWait, 200));
  if (isAlive(pid)) throw new Error(`pid ${pid} did not stop within 60 s`);
  rmSync(PID_FILE, { force: true });
  print(`stopped the local cluster (pid ${pid})`);
}

function env(): void {
  if (runningPid() === undefined || !existsSync(KUBECONFIG_COPY)) {
    process.stderr.write("no local cluster is running; start one with: npx tsx sim/cluster/cli.ts up\n");
    process.exitCode = 1;
    return;
  }
  print(`export KUBECONFIG=${KUBECONFIG_COPY}`);
}

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      pools: { type: "string", default: DEFAULT_NODE_POOLS_FILE },
      detach: { type: "boolean", default: false },
    },
  });
  const command = positionals[0];
  switch (command) {
    case "build":
      return build();
    case "up":
      return values.detach ? upDetached(values.pools) : upForeground(values.pools);
    case "down":
      return down();
    case "env":
      return env();
    default:
      process.stderr.write("usage: npx tsx sim/cluster/cli.ts build|up [--pools FILE] [--detach]|down|env\n");
      process.exitCode = 2;
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
