/** Helpers for tests that run against the shared local cluster (see test/setup/cluster.ts). */
import { randomBytes } from "node:crypto";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { inject } from "vitest";

/** Admin KubeConfig of the shared local cluster. */
export function testKubeConfig(): KubeConfig {
  const path = inject("kubeconfigPath") ?? process.env.GPUFLEET_TEST_KUBECONFIG;
  if (!path) {
    throw new Error(
      "no test cluster: run this file in the vitest `cluster` project (its globalSetup starts one)",
    );
  }
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(path);
  return kubeConfig;
}

export interface TestNamespace {
  name: string;
  /** Deletes the namespace (the namespace controller then removes what is in it). */
  delete(): Promise<void>;
}

/** Creates a namespace named `<prefix>-<random>`; call delete() (e.g. in afterAll) to remove it. */
export async function uniqueNamespace(
  kubeConfig: KubeConfig = testKubeConfig(),
  prefix = "test",
): Promise<TestNamespace> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const name = `${prefix}-${randomBytes(4).toString("hex")}`;
  await core.createNamespace({ body: { metadata: { name, labels: { "gpufleet.io/test": "true" } } } });
  // The ServiceAccount admission plugin rejects pods until the namespace's default SA exists.
  await waitFor(
    async () => {
      await core.readNamespacedServiceAccount({ name: "default", namespace: name });
      return true;
    },
    { timeoutMs: 30_000, description: `default ServiceAccount in namespace ${name}` },
  );
  return {
    name,
    async delete() {
      try {
        await core.deleteNamespace({ name });
      } catch (error) {
        if ((error as { code?: unknown }).code !== 404) throw error;
      }
    },
  };
}

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** What is awaited, for the timeout message ("pod x Running"). */
  description: string;
}

/** Thrown by a probe to say what it saw that is not yet what it waits for (quoted as "last seen" on timeout). */
export class StillWaiting extends Error {
  override name = "StillWaiting";
}

/**
 * Polls `probe` until it returns a value other than undefined/null/false, and returns that value.
 * A thrown error counts as "not yet"; the last one is quoted in the timeout error.
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  options: WaitForOptions,
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 200;
  const startedAt = Date.now();
  let lastProblem = "the condition was never met";
  for (let attempt = 1; ; attempt++) {
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false) return value;
      lastProblem = `last result: ${String(value)}`;
    } catch (error) {
      lastProblem =
        error instanceof StillWaiting
          ? `last seen: ${error.message}`
          : `last error: ${error instanceof Error ? error.message : String(error)}`;
    }
    const elapsed = Date.now() - startedAt;
    if (elapsed >= timeoutMs) {
      throw new Error(
        `timed out after ${elapsed} ms (${attempt} attempts) waiting for ${options.description}; ${lastProblem}`,
      );
    }
    await new Promise((resolveWait) => setTimeout(resolveWait, Math.min(intervalMs, timeoutMs - elapsed)));
  }
}

/**
 * Reads a value until `accept` takes it, and returns it; on timeout the message shows the last value read
 * (through `show`), not just "undefined": what a flaky wait last saw is what explains it.
 */
export async function waitUntil<T>(
  read: () => Promise<T> | T,
  accept: (value: T) => boolean,
  options: WaitForOptions & { show: (value: T) => string },
): Promise<T> {
  return waitFor(async () => {
    const value = await read();
    if (accept(value)) return { value };
    throw new StillWaiting(options.show(value));
  }, options).then(({ value }) => value);
}
