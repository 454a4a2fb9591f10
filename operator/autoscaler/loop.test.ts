import { describe, expect, it } from "vitest";
import { modelDeployment } from "../controller/testing.js";
import { policyConfig, replicaTokenCapacity } from "./loop.js";
import { tokenUtilizationTargetForTtft } from "./ttft-objective.js";

const spec = {
  model: { name: "llama", source: { huggingFace: { repo: "meta-llama/Llama-3.1-8B-Instruct" } } },
  autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 8 },
};

const plan = {
  gpuProduct: "NVIDIA-A100-SXM4-80GB",
  gpusPerReplica: 1,
  tensorParallelism: 1,
  kvCacheTokensPerReplica: 400_000,
  maxContextLength: 16_384,
};

describe("policyConfig", () => {
  it("hands the policy the replica token capacity estimated from the sizing plan", () => {
    const md = { ...modelDeployment("code", spec), status: { plan } };
    // Llama 3.1 8B on one A100: 312 TFLOPS × 0.5 / (2 × 8.03e9) ≈ 9,700 tokens/s.
    expect(replicaTokenCapacity(md)).toBeCloseTo(9714, -1);
    expect(policyConfig(md).replicaTokenCapacityPerSecond).toBeCloseTo(9714, -1);
  });

  it("leaves the capacity out until a plan exists, so the policy learns it from saturated pods", () => {
    const md = modelDeployment("code", spec);
    expect(replicaTokenCapacity(md)).toBeUndefined();
    expect("replicaTokenCapacityPerSecond" in policyConfig(md)).toBe(false);
  });

  it("leaves the capacity out for a GPU the catalogue does not know", () => {
    const md = { ...modelDeployment("code", spec), status: { plan: { ...plan, gpuProduct: "Acme-X1" } } };
    expect(replicaTokenCapacity(md)).toBeUndefined();
  });
});

describe("policyConfig token headroom", () => {
  const withAutoscaling = (autoscaling: Record<string, unknown>) =>
    modelDeployment("code", { ...spec, autoscaling: { ...spec.autoscaling, ...autoscaling } });

  it("derives the token utilisation target from the TTFT objective", () => {
    expect(policyConfig(withAutoscaling({ ttftTargetSeconds: 1 })).tokenUtilizationTarget).toBeCloseTo(1 / 3.25);
    expect(policyConfig(withAutoscaling({ ttftTargetSeconds: 5 })).tokenUtilizationTarget).toBeCloseTo(5 / 7.25);
  });

  it("lets an explicit target override the one derived from the objective", () => {
    const md = withAutoscaling({ ttftTargetSeconds: 5, tokenThroughputUtilizationTarget: 0.4 });
    expect(policyConfig(md).tokenUtilizationTarget).toBe(0.4);
  });

  it("keeps the 2 s-goal headroom when no objective is declared", () => {
    expect(policyConfig(withAutoscaling({})).tokenUtilizationTarget).toBe(tokenUtilizationTargetForTtft(2));
  });
});
