import type { V1Container, V1Deployment } from "@kubernetes/client-node";
import { Value } from "@sinclair/typebox/value";
import { ModelDeploymentSpecSchema, type ModelDeployment } from "../api/modeldeployment.js";
import type { ResolvedPlan } from "./types.js";

/** Builders for the renderer's tests: ModelDeployments as the API server returns them (defaults filled). */

export function modelDeployment(
  spec: Record<string, unknown>,
  metadata: Partial<ModelDeployment["metadata"]> = {},
): ModelDeployment {
  const filled = Value.Default(ModelDeploymentSpecSchema, structuredClone(spec)) as ModelDeployment["spec"];
  return {
    apiVersion: "gpufleet.io/v1alpha1",
    kind: "ModelDeployment",
    metadata: {
      name: "llama-3-1-8b",
      namespace: "team-a",
      uid: "4f2a8c1e-0000-4000-8000-000000000001",
      generation: 1,
      ...metadata,
    },
    spec: filled,
  };
}

/** Llama 3.1 8B from the Hub with a gated-model token, vLLM unless `engine` says otherwise. */
export function llama8b(
  overrides: Record<string, unknown> = {},
  metadata: Partial<ModelDeployment["metadata"]> = {},
): ModelDeployment {
  return modelDeployment(
    {
      model: {
        name: "llama-3.1-8b-instruct",
        source: {
          huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct", tokenSecretRef: { name: "hf-token" } },
        },
        maxContextLength: 16384,
      },
      ...overrides,
    },
    metadata,
  );
}

export function plan(overrides: Partial<ResolvedPlan> = {}): ResolvedPlan {
  return {
    gpuProduct: "NVIDIA-H100-80GB-HBM3",
    gpusPerReplica: 1,
    tensorParallelism: 1,
    maxContextLength: 16384,
    kvCacheTokensPerReplica: 420_000,
    gpuMemoryUtilization: 0.9,
    modelId: "llama-3.1-8b",
    ...overrides,
  };
}

export function engineContainerOf(deployment: V1Deployment): V1Container {
  const container = deployment.spec?.template.spec?.containers[0];
  if (!container) throw new Error("deployment has no container");
  return container;
}

/** The value following `flag` in an argument list (undefined when the flag is absent). */
export function argValue(args: readonly string[] | undefined, flag: string): string | undefined {
  const index = (args ?? []).indexOf(flag);
  return index === -1 ? undefined : args?.[index + 1];
}
