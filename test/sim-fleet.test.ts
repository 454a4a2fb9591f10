/**
 * End to end on the local KWOK cluster: an engine pod labelled as gpufleet labels them gets a
 * simulated engine on its KWOK pod IP (127.1.x.y), and the operator's direct scraper reads it
 * through the pod object, as the autoscaler will.
 */
import { CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scrapePods, scrapeTargetFromPod } from "../operator/metrics/scrape.js";
import { MANAGED_BY_SELECTOR, SimFleet } from "../sim/engine/fleet.js";
import { type TestNamespace, testKubeConfig, uniqueNamespace, waitFor } from "./support/kube.js";

describe("simulated engine fleet on the local cluster", () => {
  const kubeConfig = testKubeConfig();
  const core = kubeConfig.makeApiClient(CoreV1Api);
  let namespace: TestNamespace;
  let fleet: SimFleet;

  beforeAll(async () => {
    namespace = await uniqueNamespace(kubeConfig, "sim-fleet");
    fleet = new SimFleet({
      listPods: async () =>
        (await core.listNamespacedPod({ namespace: namespace.name, labelSelector: MANAGED_BY_SELECTOR }))
          .items,
      pollIntervalMs: 250,
    });
    fleet.start();
  });

  afterAll(async () => {
    await fleet?.stop();
    await namespace?.delete();
  });

  it("starts an engine on the pod IP, scrapes it through the pod, and stops it with the pod", async () => {
    const pod: V1Pod = {
      metadata: {
        name: "llama-0",
        labels: {
          "app.kubernetes.io/managed-by": "gpufleet",
          "gpufleet.io/model-deployment": "llama",
          "inference.networking.k8s.io/engine-type": "vllm",
        },
      },
      spec: {
        containers: [
          {
            name: "engine",
            image: "vllm/vllm-openai:v0.10.0",
            args: ["--served-model-name", "llama"],
            ports: [{ name: "http", containerPort: 8000 }],
          },
        ],
      },
    };
    await core.createNamespacedPod({ namespace: namespace.name, body: pod });
    const running = await waitFor(
      async () => {
        const current = await core.readNamespacedPod({ name: "llama-0", namespace: namespace.name });
        return current.status?.phase === "Running" && current.status.podIP ? current : undefined;
      },
      { timeoutMs: 60_000, description: "pod llama-0 Running with an IP" },
    );
    expect(running.status?.podIP).toMatch(/^127\./);

    const server = await waitFor(() => fleet.servers().get(`${namespace.name}/llama-0`), {
      timeoutMs: 30_000,
      description: "simulated engine for llama-0",
    });
    expect(server.url).toBe(`http://${running.status?.podIP}:8000`);

    const target = scrapeTargetFromPod(running, "llama");
    expect(target).toBeDefined();
    const [result] = await scrapePods(target ? [target] : [], { concurrency: 1, timeoutMs: 2000 });
    expect(result?.ok && result.sample).toMatchObject({
      kvCacheUtilization: 0,
      requestsRunning: 0,
      requestsWaiting: 0,
    });

    await core.deleteNamespacedPod({ name: "llama-0", namespace: namespace.name, gracePeriodSeconds: 0 });
    await waitFor(() => !fleet.servers().has(`${namespace.name}/llama-0`), {
      timeoutMs: 30_000,
      description: "engine of llama-0 stopped",
    });
    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
  });
});
