import type { V1Node } from "@kubernetes/client-node";
import { Value } from "@sinclair/typebox/value";
import { ModelDeploymentSpecSchema, type ModelDeployment } from "../api/modeldeployment.js";

/** Builders shared by the controller's unit tests: objects shaped as the API server returns them. */

export function gpuNode(name: string, product: string, gpus: number, extraLabels: Record<string, string> = {}): V1Node {
  return {
    metadata: { name, labels: { "nvidia.com/gpu.product": product, "nvidia.com/gpu.count": String(gpus), ...extraLabels } },
    status: {
      allocatable: { "nvidia.com/gpu": String(gpus), cpu: "96", memory: "1Ti" },
      conditions: [{ type: "Ready", status: "True" }],
    },
  } as V1Node;
}

/** A ModelDeployment with the schema's defaults filled in, as the API server would after admission. */
export function modelDeployment(name: string, spec: Record<string, unknown>, extra: Partial<ModelDeployment["metadata"]> = {}): ModelDeployment {
  const filled = Value.Default(ModelDeploymentSpecSchema, structuredClone(spec)) as ModelDeployment["spec"];
  return {
    apiVersion: "gpufleet.io/v1alpha1",
    kind: "ModelDeployment",
    metadata: { name, namespace: "team-a", uid: `uid-${name}`, generation: 1, ...extra },
    spec: filled,
  };
}
