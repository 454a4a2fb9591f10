/**
 * A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager and
 * kube-scheduler, with KWOK playing the kubelets of fake GPU nodes. No containers, no network
 * beyond 127.0.0.0/8, no root-only features. Everything lives in one temp dir that stop() removes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import {
  appendFileSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { KubeClient, type KubeObject } from "../../operator/runtime/kube-client.js";
import {
  ensureClusterBinaries,
  type ClusterBinaries,
  type EnsureClusterBinariesOptions,
} from "../../tools/binaries.js";
import {
  applyNodePools,
  KWOK_NODE_ANNOTATION,
  KWOK_NODE_ANNOTATION_VALUE,
  type NodePoolsConfig,
} from "./nodepools.js";
import { ADMIN_USER, FRONT_PROXY_CLIENT, createClusterPki } from "./pki.js";
import { lwsControllerArgs, lwsCrd, lwsModuleDir, lwsWebhookConfigurations, readModuleFile, webhookServing, WEBHOOKS_IN_MODULE, writeLwsControllerFiles } from "./lws.js";

export interface StartLocalClusterOptions {
  /** Binaries to run; default: {@link ensureClusterBinaries} (may build them). */
  binaries?: ClusterBinaries;
  binaryOptions?: EnsureClusterBinariesOptions;
  /** Node pools to create once the control plane is up (default: none). */
  nodePools?: NodePoolsConfig;
  /** Parent of the cluster's temp dir (default: the OS temp dir). */
  parentDir?: string;
  /** Keep the dir (logs, PKI) after stop(), for debugging. Default false. */
  keepDir?: boolean;
  /** Give up if not ready within this time. Default 120 s. */
  readyTimeoutMs?: number;
  /** Where start-up milestones are written; default stderr. Pass `() => {}` to silence. */
  log?: (line: string) => void;
  /** Pod IPs handed out by KWOK. Default 127.1.0.0/16 (loopback, so tests can "dial" them). */
  podCidr?: string;
  /**
   * Path of the LeaderWorkerSet controller binary (tools/binaries.ts `lws-controller`): when given, its CRD
   * is installed and it runs with its webhooks on 127.0.0.1 (./lws.ts), for multi-node replicas.
   */
  lwsController?: string;
  /**
   * Kill the cluster on SIGINT/SIGTERM/SIGHUP (default true). A caller that handles signals
   * itself (the CLI, for a graceful stop) passes false; the process-exit hook stays in any case.
   */
  handleSignals?: boolean;
}

export interface LocalCluster {
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  apiServerUrl: string;
  binaries: ClusterBinaries;
  /** Temp dir with PKI, etcd data, kubeconfig and one log file per process. */
  dir: string;
  /** From spawning etcd (binaries ready) to /readyz ok, default ServiceAccount and nodes Ready. */
  startupMs: number;
  /** Per process: pid (also its process group id) and log file. Updated when a component is restarted. */
  processes: Record<ComponentName, { pid: number; logPath: string }>;
  /**
   * Fault injection for outage tests: SIGKILLs one component (its whole process group) and waits until it
   * is gone. Nothing restarts it until {@link LocalCluster.startComponent}.
   */
  killComponent(name: ComponentName): Promise<void>;
  /** Starts a killed component again with its original flags (same ports, data and certificates), and waits
   * until it serves again (etcd: /health; kube-apiserver: /readyz). */
  startComponent(name: ComponentName, options?: { timeoutMs?: number }): Promise<void>;
  /** killComponent, `downMs` of outage, startComponent: a crashed and restarted control-plane process. */
  restartComponent(name: ComponentName, downMs: number, options?: { timeoutMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

export type ComponentName = "etcd" | "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" | "kwok" | "lws-controller";

/** A free TCP port on 127.0.0.1 (bound then released; the short race is acceptable locally). */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolvePort, rejectPort) => {
    const server = createServer();
    server.unref();
    server.on("error", rejectPort);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

// ---- process bookkeeping and cleanup on exit -------------------------------------------------

interface RunningCluster {
  processGroups: number[];
  dir: string;
  keepDir: boolean;
}

const runningClusters = new Set<RunningCluster>();
let exitHandlerInstalled = false;
let signalHandlersInstalled = false;

function killProcessGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Already gone.
  }
}

/** Synchronous last-resort cleanup: SIGKILL every group and delete every dir. */
function killAllClustersNow(): void {
  for (const cluster of runningClusters) {
    for (const pgid of cluster.processGroups) killProcessGroup(pgid, "SIGKILL");
    if (!cluster.keepDir) rmSync(cluster.dir, { recursive: true, force: true });
  }
  runningClusters.clear();
}

function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on("exit", killAllClustersNow);
}

function installSignalHandlers(): void {
  if (signalHandlersInstalled) return;
  signalHandlersInstalled = true;
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const handler = (): void => {
      killAllClustersNow();
      // If nobody else handles the signal, restore the default behaviour (terminate).
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, handler);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, handler);
  }
}

function processGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopProcessGroups(pgids: number[], graceMs: number): Promise<void> {
  for (const pgid of pgids) killProcessGroup(pgid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (pgids.some(processGroupAlive) && Date.now() < deadline) {
    await new Promise((resolveWait) => setTimeout(resolveWait, 100));
  }
  for (const pgid of pgids) if (processGroupAlive(pgid)) killProcessGroup(pgid, "SIGKILL");
  const killDeadline = Date.now() + 5000;
  while (pgids.some(processGroupAlive) && Date.now() < killDeadline) {
    await new Promise((resolveWait) => setTimeout(resolveWait, 50));
  }
}

/**
 * A tiny detached watchdog per cluster: if this Node process dies without running its exit
 * hooks (SIGKILL, OOM), it kills the cluster's process groups and deletes the dir. It exits by
 * itself once the dir is gone (a normal stop()).
 */
const WATCHDOG_SCRIPT = `
const fs = require("node:fs");
const [parentPid, dir] = process.argv.slice(1);
const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };
const timer = setInterval(() => {
  if (!fs.existsSync(dir)) { clearInterval(timer); return; }
  if (alive(Number(parentPid))) return;
  let groups = [];
  try { groups = fs.readFileSync(dir + "/pids", "utf8").split("\\n").filter(Boolean).map(Number); } catch {}
  for (const pgid of groups) { try { process.kill(-pgid, "SIGKILL"); } catch {} }
  fs.rmSync(dir, { recursive: true, force: true });
  clearInterval(timer);
}, 1000);
`;

function startWatchdog(dir: string): number | undefined {
  const watchdog = spawn(process.execPath, ["-e", WATCHDOG_SCRIPT, String(process.pid), dir], {
    detached: true,
    stdio: "ignore",
  });
  watchdog.unref();
  return watchdog.pid;
}

// ---- readiness -----------------------------------------------------------------------------

interface TlsMaterial {
  ca: string;
  cert: string;
  key: string;
}

function httpsGet(
  url: string,
  tls: TlsMaterial,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet, rejectGet) => {
    const request = httpsRequest(url, { ...tls, timeout: timeoutMs, method: "GET" }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () =>
        resolveGet({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
      );
      response.on("error", rejectGet);
    });
    request.on("timeout", () => request.destroy(new Error("timeout")));
    request.on("error", rejectGet);
    request.end();
  });
}

async function pollUntil(
  description: string,
  deadline: number,
  exited: () => string | undefined,
  check: () => Promise<boolean>,
): Promise<void> {
  let lastError = "";
  for (;;) {
    const exitedProcess = exited();
    if (exitedProcess) throw new Error(`${exitedProcess} while waiting for ${description}`);
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${description}${lastError ? ` (last error: ${lastError})` : ""}`,
      );
    }
    await new Promise((resolveWait) => setTimeout(resolveWait, 200));
  }
}

function tailOfFile(path: string, lines: number): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

// ---- start ---------------------------------------------------------------------------------

function kubeconfigYaml(server: string, pki: { ca: string; cert: string; key: string }): string {
  const base64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");
  // JSON is valid YAML; it keeps this free of indentation mistakes.
  return JSON.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        { name: "gpufleet-local", cluster: { server, "certificate-authority-data": base64(pki.ca) } },
      ],
      users: [
        {
          name: ADMIN_USER,
          user: { "client-certificate-data": base64(pki.cert), "client-key-data": base64(pki.key) },
        },
      ],
      contexts: [
        {
          name: "gpufleet-local",
          context: { cluster: "gpufleet-local", user: ADMIN_USER, namespace: "default" },
        },
      ],
      "current-context": "gpufleet-local",
    },
    null,
    2,
  );
}

export async function startLocalCluster(options: StartLocalClusterOptions = {}): Promise<LocalCluster> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const binaries = options.binaries ?? (await ensureClusterBinaries(options.binaryOptions));
  const readyTimeoutMs = options.readyTimeoutMs ?? 120_000;
  const parentDir = options.parentDir ?? tmpdir();
  mkdirSync(parentDir, { recursive: true });
  const dir = mkdtempSync(join(parentDir, "gpufleet-cluster-"));
  const running: RunningCluster = { processGroups: [], dir, keepDir: options.keepDir ?? false };
  installExitHandler();
  if (options.handleSignals ?? true) installSignalHandlers();
  runningClusters.add(running);

  const startedAt = Date.now();
  const children = new Map<ComponentName, ChildProcess>();
  const processes = {} as LocalCluster["processes"];
  const exitedEarly: string[] = [];
  const launched = new Map<ComponentName, { binary: string; args: string[]; env: NodeJS.ProcessEnv }>();
  /** Components killed on purpose (killComponent): their exit is not a failure. */
  const killedOnPurpose = new Set<ComponentName>();

  const stop = async (): Promise<void> => {
    if (!runningClusters.has(running)) return;
    // Stop the clients of the apiserver first, etcd last, so nothing logs spurious errors.
    const order: ComponentName[] = [
      "lws-controller",
      "kwok",
      "kube-scheduler",
      "kube-controller-manager",
      "kube-apiserver",
      "etcd",
    ];
    for (const name of order) {
      const pid = processes[name]?.pid;
      if (pid) await stopProcessGroups([pid], 10_000);
    }
    await stopProcessGroups(running.processGroups, 5_000);
    runningClusters.delete(running);
    if (!running.keepDir) rmSync(dir, { recursive: true, force: true });
  };

  const launch = (
    name: ComponentName,
    binary: string,
    args: string[],
    env: NodeJS.ProcessEnv = process.env,
  ): void => {
    launched.set(name, { binary, args, env });
    const logPath = join(dir, "logs", `${name}.log`);
    const logFd = openSync(logPath, "a");
    writeFileSync(logFd, `$ ${binary} ${args.join(" ")}\n`);
    // detached: its own process group, so stop() can kill it with everything it forks.
    const child = spawn(binary, args, { cwd: dir, env, detached: true, stdio: ["ignore", logFd, logFd] });
    closeSync(logFd);
    if (child.pid === undefined) throw new Error(`failed to spawn ${binary}`);
    running.processGroups.push(child.pid);
    appendFileSync(join(dir, "pids"), `${child.pid}\n`);
    children.set(name, child);
    processes[name] = { pid: child.pid, logPath };
    child.on("exit", (code, signal) => {
      if (runningClusters.has(running) && !killedOnPurpose.has(name))
        exitedEarly.push(`${name} exited (code ${code}, signal ${signal}); see ${logPath}`);
    });
    child.unref();
  };
  const firstExit = (): string | undefined => exitedEarly[0];

  try {
    const watchdogPid = startWatchdog(dir);
    if (watchdogPid !== undefined) running.processGroups.push(watchdogPid);
    mkdirSync(join(dir, "logs"));
    mkdirSync(join(dir, "pki"));
    const pki = createClusterPki();
    const file = (name: string, content: string): string => {
      const path = join(dir, "pki", name);
      writeFileSync(path, content, { mode: 0o600 });
      return path;
    };
    const caFile = file("ca.crt", pki.caCertificatePem);
    const caKeyFile = file("ca.key", pki.caPrivateKeyPem);
    const apiServerCertFile = file("apiserver.crt", pki.apiServerCertificatePem);
    const apiServerKeyFile = file("apiserver.key", pki.apiServerPrivateKeyPem);
    const serviceAccountKeyFile = file("sa.key", pki.serviceAccountPrivateKeyPem);
    const serviceAccountPubFile = file("sa.pub", pki.serviceAccountPublicKeyPem);
    const frontProxyCaFile = file("front-proxy-ca.crt", pki.frontProxyCaCertificatePem);
    const frontProxyClientCertFile = file("front-proxy-client.crt", pki.frontProxyClientCertificatePem);
    const frontProxyClientKeyFile = file("front-proxy-client.key", pki.frontProxyClientPrivateKeyPem);

    const [etcdClientPort, etcdPeerPort, apiServerPort, controllerManagerPort, schedulerPort, kwokPort] =
      await Promise.all(Array.from({ length: 6 }, () => freeLoopbackPort()));
    const apiServerUrl = `https://127.0.0.1:${apiServerPort}`;
    const kubeconfigPath = join(dir, "kubeconfig");
    writeFileSync(
      kubeconfigPath,
      kubeconfigYaml(apiServerUrl, {
        ca: pki.caCertificatePem,
        cert: pki.adminCertificatePem,
        key: pki.adminPrivateKeyPem,
      }),
      { mode: 0o600 },
    );

    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const etcdPeerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    launch("etcd", binaries.etcd, [
      "--name=gpufleet",
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${etcdPeerUrl}`,
      `--initial-advertise-peer-urls=${etcdPeerUrl}`,
      `--initial-cluster=gpufleet=${etcdPeerUrl}`,
      "--initial-cluster-state=new",
      // A throwaway test store: durability across power loss is not needed, speed is.
      "--unsafe-no-fsync",
      "--log-level=warn",
    ]);

    launch("kube-apiserver", binaries["kube-apiserver"], [
      `--etcd-servers=${etcdUrl}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiServerPort}`,
      `--cert-dir=${join(dir, "apiserver-certs")}`,
      `--tls-cert-file=${apiServerCertFile}`,
      `--tls-private-key-file=${apiServerKeyFile}`,
      `--client-ca-file=${caFile}`,
      "--authorization-mode=Node,RBAC",
      `--service-account-issuer=${apiServerUrl}`,
      `--service-account-key-file=${serviceAccountPubFile}`,
      `--service-account-signing-key-file=${serviceAccountKeyFile}`,
      // Config only: ClusterIPs are allocated from it but nothing here ever routes to them.
      "--service-cluster-ip-range=100.64.0.0/16",
      // The "kubernetes" Service endpoint would be the loopback advertise address, which
      // Endpoints validation rejects; skip reconciling it instead of logging errors forever.
      "--endpoint-reconciler-type=none",
      // Request-header authentication for the aggregation layer (e.g. a custom/external metrics
      // APIService); without it every component also logs a missing CA bundle forever.
      `--requestheader-client-ca-file=${frontProxyCaFile}`,
      `--requestheader-allowed-names=${FRONT_PROXY_CLIENT}`,
      "--requestheader-username-headers=X-Remote-User",
      "--requestheader-group-headers=X-Remote-Group",
      "--requestheader-extra-headers-prefix=X-Remote-Extra-",
      `--proxy-client-cert-file=${frontProxyClientCertFile}`,
      `--proxy-client-key-file=${frontProxyClientKeyFile}`,
      "--allow-privileged=true",
      "--profiling=false",
      // Added to the default admission set: what a kubeadm cluster also enables.
      "--enable-admission-plugins=NodeRestriction",
      "--storage-media-type=application/vnd.kubernetes.protobuf",
      "--v=1",
    ]);

    const tls = { ca: pki.caCertificatePem, cert: pki.adminCertificatePem, key: pki.adminPrivateKeyPem };
    const deadline = startedAt + readyTimeoutMs;
    await pollUntil("kube-apiserver /readyz", deadline, firstExit, async () => {
      const response = await httpsGet(`${apiServerUrl}/readyz`, tls, 2000);
      return response.status === 200;
    });
    const apiServerReadyMs = Date.now() - startedAt;

    const componentKubeconfig = kubeconfigPath;
    launch("kube-controller-manager", binaries["kube-controller-manager"], [
      `--kubeconfig=${componentKubeconfig}`,
      `--authentication-kubeconfig=${componentKubeconfig}`,
      `--authorization-kubeconfig=${componentKubeconfig}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${controllerManagerPort}`,
      "--leader-elect=false",
      `--service-account-private-key-file=${serviceAccountKeyFile}`,
      `--root-ca-file=${caFile}`,
      `--cluster-signing-cert-file=${caFile}`,
      `--cluster-signing-key-file=${caKeyFile}`,
      "--use-service-account-credentials=true",
      // Everything except controllers that need a cloud provider or allocate node CIDRs/routes.
      "--controllers=*,-node-ipam-controller,-node-route-controller,-cloud-node-lifecycle-controller,-service-lb-controller",
      // KWOK plays every kubelet from one process that shares 2 cores with the tests; a heartbeat late under
      // load must not mark nodes NotReady and their pods unready, which would be an artefact of the simulation.
      "--node-monitor-grace-period=5m",
      "--v=1",
    ]);
    launch("kube-scheduler", binaries["kube-scheduler"], [
      `--kubeconfig=${componentKubeconfig}`,
      `--authentication-kubeconfig=${componentKubeconfig}`,
      `--authorization-kubeconfig=${componentKubeconfig}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${schedulerPort}`,
      "--leader-elect=false",
      "--v=1",
    ]);
    launch(
      "kwok",
      binaries.kwok,
      [
        `--kubeconfig=${kubeconfigPath}`,
        `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=${KWOK_NODE_ANNOTATION_VALUE}`,
        `--cidr=${options.podCidr ?? "127.1.0.0/16"}`,
        "--node-ip=127.0.0.1",
        // Without a lease duration KWOK posts no heartbeat at all, and the node lifecycle controller marks
        // every node NotReady (and its pods unready) once the grace period after start-up has passed.
        "--node-lease-duration-seconds=40",
        `--server-address=127.0.0.1:${kwokPort}`,
        "--v=INFO",
      ],
      // KWOK reads ~/.kwok/kwok.yaml if present: point HOME at our dir so a user's config can't leak in.
      { ...process.env, HOME: dir },
    );

    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kubeconfigPath);
    const core = kubeConfig.makeApiClient(CoreV1Api);
    await pollUntil(
      "the default ServiceAccount (kube-controller-manager up)",
      deadline,
      firstExit,
      async () => {
        await core.readNamespacedServiceAccount({ name: "default", namespace: "default" });
        return true;
      },
    );
    if (options.nodePools) {
      const remaining = Math.max(5_000, deadline - Date.now());
      await applyNodePools(kubeConfig, options.nodePools, { waitForReady: true, timeoutMs: remaining });
    }
    if (options.lwsController) {
      const lwsStartedAt = Date.now();
      const moduleDir = await lwsModuleDir();
      // The raw client: client-node's typed models drop the x-kubernetes-* keys (int-or-string) the CRD needs.
      const raw = new KubeClient(kubeConfig);
      try {
        const crd = lwsCrd(moduleDir) as KubeObject;
        const crdPath = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata?.name}`;
        await raw.create(crd, { path: "/apis/apiextensions.k8s.io/v1/customresourcedefinitions" });
        await pollUntil("the LeaderWorkerSet CRD Established", deadline, firstExit, async () => {
          const read = await raw.get<{ status?: { conditions?: Array<{ type: string; status: string }> } }>(crdPath);
          return (read.status?.conditions ?? []).some((c) => c.type === "Established" && c.status === "True");
        });
        const [webhookPort, healthPort, metricsPort] = await Promise.all([freeLoopbackPort(), freeLoopbackPort(), freeLoopbackPort()]);
        const lwsDir = join(dir, "lws");
        mkdirSync(lwsDir);
        const files = writeLwsControllerFiles(lwsDir, { webhook: webhookPort, health: healthPort, metrics: metricsPort });
        launch("lws-controller", options.lwsController, lwsControllerArgs(files), { ...process.env, KUBECONFIG: kubeconfigPath });
        await pollUntil("the LeaderWorkerSet webhook serving TLS", Math.max(deadline, Date.now() + 60_000), firstExit, () => webhookServing(webhookPort, files.caPem));
        for (const configuration of lwsWebhookConfigurations(readModuleFile(join(moduleDir, WEBHOOKS_IN_MODULE), "utf8"), `https://127.0.0.1:${webhookPort}`, files.caPem)) {
          const plural = configuration.kind === "MutatingWebhookConfiguration" ? "mutatingwebhookconfigurations" : "validatingwebhookconfigurations";
          await raw.create(configuration as KubeObject, { path: `/apis/admissionregistration.k8s.io/v1/${plural}` });
        }
      } finally {
        raw.close();
      }
      log(`[local-cluster] LeaderWorkerSet controller up in ${((Date.now() - lwsStartedAt) / 1000).toFixed(1)}s (webhooks on 127.0.0.1)`);
    }
    const startupMs = Date.now() - startedAt;
    log(
      `[local-cluster] ready in ${(startupMs / 1000).toFixed(1)}s (apiserver /readyz after ${(apiServerReadyMs / 1000).toFixed(1)}s) at ${apiServerUrl}; dir ${dir}`,
    );

    const killComponent = async (name: ComponentName): Promise<void> => {
      const pid = processes[name]?.pid;
      if (!pid) throw new Error(`no ${name} in this cluster`);
      killedOnPurpose.add(name);
      killProcessGroup(pid, "SIGKILL");
      const goneBy = Date.now() + 10_000;
      while (processGroupAlive(pid) && Date.now() < goneBy) await new Promise((resolveWait) => setTimeout(resolveWait, 20));
      if (processGroupAlive(pid)) throw new Error(`${name} (pid ${pid}) survived SIGKILL`);
      running.processGroups = running.processGroups.filter((group) => group !== pid);
    };
    const startComponent = async (name: ComponentName, startOptions: { timeoutMs?: number } = {}): Promise<void> => {
      const spec = launched.get(name);
      if (!spec) throw new Error(`no ${name} in this cluster`);
      if (processGroupAlive(processes[name].pid)) throw new Error(`${name} is still running; killComponent it first`);
      killedOnPurpose.delete(name);
      launch(name, spec.binary, spec.args, spec.env);
      const readyBy = Date.now() + (startOptions.timeoutMs ?? 60_000);
      const exitedNow = () => exitedEarly.find((line) => line.startsWith(`${name} exited`));
      if (name === "kube-apiserver")
        await pollUntil("kube-apiserver /readyz after restart", readyBy, exitedNow, async () => (await httpsGet(`${apiServerUrl}/readyz`, tls, 2000)).status === 200);
      else if (name === "etcd")
        await pollUntil("etcd /health after restart", readyBy, exitedNow, async () => (await fetch(`${etcdUrl}/health`)).ok);
    };
    const restartComponent = async (name: ComponentName, downMs: number, restartOptions: { timeoutMs?: number } = {}): Promise<void> => {
      await killComponent(name);
      await new Promise((resolveWait) => setTimeout(resolveWait, downMs));
      await startComponent(name, restartOptions);
    };

    return {
      kubeconfigPath,
      kubeConfig,
      apiServerUrl,
      binaries,
      dir,
      startupMs,
      processes,
      killComponent,
      startComponent,
      restartComponent,
      stop,
    };
  } catch (error) {
    // Quote the end of every log in the error, then clean up as usual: nothing stays behind.
    const logTails = Object.entries(processes)
      .map(([name, { logPath }]) => `--- ${name} (last lines of ${logPath}) ---\n${tailOfFile(logPath, 25)}`)
      .join("\n");
    await stop();
    throw new Error(
      `local cluster failed to start: ${error instanceof Error ? error.message : String(error)}\n${logTails}`,
      { cause: error },
    );
  }
}
