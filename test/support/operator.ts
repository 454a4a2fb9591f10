import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import { REPO_ROOT } from "../../operator/api/generate.js";
import { loadConfig, type OperatorConfig } from "../../operator/config.js";
import { startOperator, type RunningOperator } from "../../operator/operator.js";
import { API_GROUP, API_VERSION, KIND, type ModelDeployment } from "../../operator/api/modeldeployment.js";
import { KubeClient, type KubeObject } from "../../operator/runtime/kube-client.js";

/** The operator in this process, watching only `namespace` so test files do not see each other's objects. */
export async function startTestOperator(kubeConfig: KubeConfig, namespace: string, env: Record<string, string> = {}): Promise<RunningOperator> {
  const config: OperatorConfig = loadConfig({
    GPUFLEET_WATCH_NAMESPACES: namespace,
    GPUFLEET_LEADER_ELECT: "false",
    GPUFLEET_OPS_PORT: "0",
    GPUFLEET_OPS_HOST: "127.0.0.1",
    GPUFLEET_SCRAPE_INTERVAL_SECONDS: "1",
    POD_NAMESPACE: namespace,
    ...env,
  });
  return startOperator(kubeConfig, config);
}

export interface OperatorProcess {
  child: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The operator as a separate OS process (`node --import tsx operator/main.ts`), for crash and failover tests. */
export function spawnOperatorProcess(kubeconfigPath: string, env: Record<string, string>, logFile: string, nodeArgs: string[] = []): OperatorProcess {
  const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", join(REPO_ROOT, "operator/main.ts")], {
    cwd: REPO_ROOT,
    env: { ...process.env, KUBECONFIG: kubeconfigPath, GPUFLEET_LOG_LEVEL: "info", GPUFLEET_OPS_HOST: "127.0.0.1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log = createWriteStream(logFile);
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    logFile,
    exited,
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Stops a child process: SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
export async function stopChildProcess(child: ChildProcess | undefined, graceMs: number): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** A ModelDeployment object for tests. */
export function modelDeploymentObject(namespace: string, name: string, spec: Record<string, unknown>): KubeObject & Partial<ModelDeployment> {
  return { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, metadata: { name, namespace }, spec } as never;
}

export function modelDeploymentPath(namespace: string, name?: string): string {
  return `/apis/${API_GROUP}/${API_VERSION}/namespaces/${namespace}/modeldeployments${name ? `/${name}` : ""}`;
}

export async function readModelDeployment(client: KubeClient, namespace: string, name: string): Promise<ModelDeployment> {
  return client.get<ModelDeployment>(modelDeploymentPath(namespace, name));
}

export function condition(md: ModelDeployment | undefined, type: string) {
  return md?.status?.conditions?.find((c) => c.type === type);
}

/** Whether the operator whose ops server listens on `port` leads (its `gpufleet_leader` gauge is 1). */
export async function isLeader(port: number): Promise<boolean> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return /^gpufleet_leader 1$/m.test(text);
  } catch {
    return false;
  }
}
