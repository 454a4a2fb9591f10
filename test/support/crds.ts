import type { KubeConfig } from "@kubernetes/client-node";
import { modelDeploymentCrd } from "../../operator/api/crd.js";
import { modelRouteCrd } from "../../operator/api/modelroute.js";
import { KubeApiError, KubeClient, type KubeObject } from "../../operator/runtime/kube-client.js";
import { inferencePoolCrd } from "../../sim/cluster/inference-pool-crd.js";
import { lwsCrd, lwsModuleDir } from "../../sim/cluster/lws.js";

interface CrdStatus {
  status?: { conditions?: Array<{ type: string; status: string }> };
}

/**
 * Installs (or updates) the generated ModelDeployment CRD, as `kubectl apply --server-side -f crds/`
 * would, and waits until it is served. It goes through the raw client: client-node's typed models drop
 * the `x-kubernetes-*` keys they do not know, which would silently strip the CEL rules.
 */
export async function ensureModelDeploymentCrd(kubeConfig: KubeConfig): Promise<void> {
  await ensureCrd(kubeConfig, modelDeploymentCrd() as unknown as KubeObject);
  // The gateway also watches ModelRoutes (model aliases), shipped in crds/ beside it.
  await ensureCrd(kubeConfig, modelRouteCrd() as unknown as KubeObject);
}

/**
 * Installs the Gateway API Inference Extension's InferencePool CRD from its pinned Go module
 * (sim/cluster/inference-pool-crd.ts). Opt-in per test file: the shared cluster does not have it, so
 * every other file sees a cluster without it.
 */
export async function ensureInferencePoolCrd(kubeConfig: KubeConfig): Promise<void> {
  await ensureCrd(kubeConfig, (await inferencePoolCrd()) as unknown as KubeObject);
}

/**
 * Installs the LeaderWorkerSet CRD alone (from the pinned sigs.k8s.io/lws module), without its controller
 * or webhooks: for a cluster of a file's own where LeaderWorkerSet objects only need to be stored (the
 * chaos suite's garbage-collector backstop). The shared cluster gets LWS with its controller elsewhere.
 */
export async function ensureLeaderWorkerSetCrd(kubeConfig: KubeConfig): Promise<void> {
  await ensureCrd(kubeConfig, lwsCrd(await lwsModuleDir()) as unknown as KubeObject);
}

/** Applies a CRD (server-side, raw) and waits until it is Established. */
export async function ensureCrd(kubeConfig: KubeConfig, crd: KubeObject): Promise<void> {
  const client = new KubeClient(kubeConfig);
  try {
    await client.apply(crd, { fieldManager: "gpufleet-install", force: true });
    const path = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata?.name}`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const current = await client.get<CrdStatus>(path);
      if (current.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) return;
      if (Date.now() > deadline) throw new Error(`CRD ${crd.metadata?.name} not Established within 30s`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    client.close();
  }
}

const INFERENCE_POOL_CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/inferencepools.inference.networking.k8s.io";

/** Removes the InferencePool CRD (if there) and waits until it is gone, so later files see a cluster without it. */
export async function removeInferencePoolCrd(kubeConfig: KubeConfig): Promise<void> {
  const client = new KubeClient(kubeConfig);
  try {
    try {
      await client.request("DELETE", INFERENCE_POOL_CRD_PATH);
    } catch (error) {
      if (!(error instanceof KubeApiError && error.isNotFound)) throw error;
    }
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        await client.get(INFERENCE_POOL_CRD_PATH);
      } catch (error) {
        if (error instanceof KubeApiError && error.isNotFound) return;
        throw error;
      }
      if (Date.now() > deadline) throw new Error("InferencePool CRD not gone within 60s");
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    client.close();
  }
}
