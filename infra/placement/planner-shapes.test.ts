import { describe, expect, it } from "vitest";
import { replicaShapeFromPlanner } from "./planner-shapes.js";

describe("replicaShapeFromPlanner", () => {
  it("takes GPUs per replica from the sizing planner", () => {
    const shape = replicaShapeFromPlanner({
      model: "llama-3.1-70b",
      gpuProduct: "nvidia-h100-80gb",
      tokensPerSecondPerReplica: 5_000,
      plan: { maxContextLength: 8192 },
    });
    expect(shape.shape).toEqual({
      gpuProduct: "nvidia-h100-80gb",
      gpusPerReplica: 4,
      tokensPerSecondPerReplica: 5_000,
    });
  });

  it("returns the planner's reason when the model cannot fit", () => {
    const result = replicaShapeFromPlanner({
      model: "llama-3.1-405b",
      gpuProduct: "nvidia-l4",
      gpusPerNode: 1,
      tokensPerSecondPerReplica: 1,
    });
    expect(result.shape).toBeUndefined();
    expect(result.reason).toMatch(/./);
    expect(
      replicaShapeFromPlanner({ model: "gpt-9", gpuProduct: "nvidia-l4", tokensPerSecondPerReplica: 1 })
        .reason,
    ).toBe("unknown model gpt-9");
  });
});
