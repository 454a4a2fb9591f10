/**
 * vitest globalSetup of the `cluster` project: one real local control plane (etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler, KWOK) with the GPU node pools of
 * sim/cluster/gpu-pools.yaml, shared by every cluster test file.
 *
 * Missing binaries are built, prometheus and promtool too (a cold build takes many minutes and
 * prints progress). A failed
 * build or start is a hard failure: these tests never skip.
 */
import type { TestProject } from "vitest/node";
import { ensureClusterBinaries, ensurePinnedBinaries } from "../../tools/binaries.js";
import { startLocalCluster } from "../../sim/cluster/cluster.js";
import { loadNodePools } from "../../sim/cluster/nodepools.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Admin kubeconfig of the shared local cluster. */
    kubeconfigPath: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const binaries = await ensureClusterBinaries();
  // prometheus and promtool serve test/prometheus-source.test.ts and test/helm-alerts.test.ts: built
  // here, before any file runs, so a cold build is not charged to one test's hook timeout.
  await ensurePinnedBinaries(["prometheus", "promtool"]);
  // The LeaderWorkerSet controller runs multi-node replicas (test/multinode.test.ts); built from tools/lws.
  const { "lws-controller": lwsController } = await ensurePinnedBinaries(["lws-controller"]);
  const cluster = await startLocalCluster({ binaries, nodePools: loadNodePools(), lwsController });
  project.provide("kubeconfigPath", cluster.kubeconfigPath);
  process.env.GPUFLEET_TEST_KUBECONFIG = cluster.kubeconfigPath;
  return async () => {
    await cluster.stop();
  };
}
