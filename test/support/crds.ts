import type { KubeConfig } from "@kubernetes/client-node";
import { modelDeploymentCrd } from "../../operator/api/crd.js";
import { KubeClient, type KubeObject } from "../../operator/runtime/kube-client.js";

interface CrdStatus {
  status?: { conditions?: Array<{ type: string; status: string }> };
}

/**
 * Installs (or updates) the generated ModelDeployment CRD, as `kubectl apply --server-side -f crds/`
 * would, and waits until it is served. It goes through the raw client: client-node's typed models drop
 * the `x-kubernetes-*` keys they do not know, which would silently strip the CEL rules.
 */
export async function ensureModelDeploymentCrd(kubeConfig: KubeConfig): Promise<void> {
  const client = new KubeClient(kubeConfig);
  try {
    const crd = modelDeploymentCrd() as unknown as KubeObject;
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
