import { ApiextensionsV1Api, type KubeConfig, type V1CustomResourceDefinition } from "@kubernetes/client-node";
import { modelDeploymentCrd } from "../../operator/api/crd.js";

/** Installs (or updates) the generated ModelDeployment CRD, as `kubectl apply -f crds/` would, and waits until it is served. */
export async function ensureModelDeploymentCrd(kubeConfig: KubeConfig): Promise<void> {
  const extensions = kubeConfig.makeApiClient(ApiextensionsV1Api);
  const crd = modelDeploymentCrd() as unknown as V1CustomResourceDefinition;
  const name = crd.metadata!.name!;
  try {
    await extensions.createCustomResourceDefinition({ body: crd });
  } catch (error) {
    if ((error as { code?: number }).code !== 409) throw error;
    const current = await extensions.readCustomResourceDefinition({ name });
    await extensions.replaceCustomResourceDefinition({
      name,
      body: { ...crd, metadata: { ...crd.metadata, resourceVersion: current.metadata?.resourceVersion } },
    });
  }
  const deadline = Date.now() + 30_000;
  for (;;) {
    const current = await extensions.readCustomResourceDefinition({ name });
    if (current.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) return;
    if (Date.now() > deadline) throw new Error(`CRD ${name} not Established within 30s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
