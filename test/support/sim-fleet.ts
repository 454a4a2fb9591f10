import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { MANAGED_BY_SELECTOR, SimFleet } from "../../sim/engine/fleet.js";
import { startServiceProxy, watchReadyEndpoints, type ServiceProxy } from "../../sim/engine/service-proxy.js";
import type { KubeClient } from "../../operator/runtime/kube-client.js";
import { waitFor } from "./kube.js";
import { condition, modelDeploymentObject, readModelDeployment } from "./operator.js";

/** Simulated engines on the managed pods of `namespace` (KWOK pod IPs), polled every 250 ms. */
export function startSimFleet(kubeConfig: KubeConfig, namespace: string): SimFleet {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const fleet = new SimFleet({
    listPods: async () => (await core.listNamespacedPod({ namespace, labelSelector: MANAGED_BY_SELECTOR })).items,
    pollIntervalMs: 250,
    loadDelayMs: 500,
  });
  fleet.start();
  return fleet;
}

/**
 * Apply a ModelDeployment, wait until it is Ready and a simulated engine answers behind a local
 * proxy of its ready endpoints; `cleanups` gets what to stop afterwards.
 */
export async function deployBehindProxy(
  client: KubeClient,
  kubeConfig: KubeConfig,
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
  cleanups: Array<() => unknown>,
): Promise<ServiceProxy> {
  await client.apply(modelDeploymentObject(namespace, name, spec), { fieldManager: "platform-team" });
  await waitFor(async () => condition(await readModelDeployment(client, namespace, name), "Ready")?.status === "True", {
    timeoutMs: 60_000,
    description: `${name} Ready`,
  });
  const endpoints = watchReadyEndpoints(kubeConfig, namespace, name, 250);
  cleanups.push(endpoints.stop);
  const proxy = await startServiceProxy({ endpoints: endpoints.current });
  cleanups.push(() => proxy.close());
  // The simulated engine answers once loaded; wait until the proxy reaches one.
  await waitFor(async () => (await fetch(`${proxy.url}/health`)).status === 200, { timeoutMs: 30_000, description: `${name} engine up` });
  return proxy;
}
