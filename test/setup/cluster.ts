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
import { ensurePulumiTools, formatPulumiToolProgress } from "../../infra/tools.js";
import { startLocalCluster } from "../../sim/cluster/cluster.js";
import { loadNodePools } from "../../sim/cluster/nodepools.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Admin kubeconfig of the shared local cluster. */
    kubeconfigPath: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const clusterBinaries = ensureClusterBinaries();
  const pulumiPrebuild = prebuildPulumiTools(clusterBinaries);
  try {
    const binaries = await clusterBinaries;
    // prometheus and promtool serve test/prometheus-source.test.ts and test/helm-alerts.test.ts: built
    // here, before any file runs, so a cold build is not charged to one test's hook timeout.
    await ensurePinnedBinaries(["prometheus", "promtool"]);
    // The LeaderWorkerSet controller runs multi-node replicas (test/multinode.test.ts); built from tools/lws.
    const { "lws-controller": lwsController } = await ensurePinnedBinaries(["lws-controller"]);
    const cluster = await startLocalCluster({ binaries, nodePools: loadNodePools(), lwsController });
    project.provide("kubeconfigPath", cluster.kubeconfigPath);
    process.env.GPUFLEET_TEST_KUBECONFIG = cluster.kubeconfigPath;
    return async () => {
      await pulumiPrebuild.stop();
      await cluster.stop();
    };
  } catch (error) {
    await pulumiPrebuild.stop();
    throw error;
  }
}

/**
 * Starts building the Pulumi CLI and Kubernetes provider that test/pulumi-gpufleet.test.ts needs, in
 * the background at niceness 19: on a cold machine that is over 20 minutes of compiling, which would
 * otherwise start only when that file runs, while the cluster files before it leave a core idle for
 * most of their time (they wait on the control plane). The provider waits for the cluster binaries,
 * whose Kubernetes packages it reuses from Go's build cache. The test file's own call waits for this
 * build (the cache's lock file) and finds the binaries; if this build fails, that call builds again
 * and fails with the error. A warm cache builds nothing; the teardown stops a build still under way.
 */
function prebuildPulumiTools(clusterBinariesBuilt: Promise<unknown>): { stop: () => Promise<void> } {
  const abort = new AbortController();
  const build = ensurePulumiTools({
    niceness: 19,
    signal: abort.signal,
    providerAfter: clusterBinariesBuilt.catch(() => undefined),
    onProgress: (event) => {
      if (event.kind === "step" || event.kind === "build-done") process.stderr.write(`${formatPulumiToolProgress(event)} (in the background, nice 19)\n`);
    },
  }).catch((error: unknown) => {
    if (!abort.signal.aborted) process.stderr.write(`[pulumi-prebuild] failed; test/pulumi-gpufleet.test.ts will build again: ${String(error).slice(0, 2000)}\n`);
  });
  return {
    stop: async () => {
      abort.abort();
      await build;
    },
  };
}
