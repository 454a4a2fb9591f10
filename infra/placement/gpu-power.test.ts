import { describe, expect, it } from "vitest";
import { ASSUMED_IDLE_POWER_FRACTION, gpuPowerOf } from "./gpu-power.js";

describe("gpuPowerOf", () => {
  it("resolves cloud accelerator names through the planner's GPU catalogue", () => {
    expect(gpuPowerOf("nvidia-l4").boardPowerW).toBe(72);
    expect(gpuPowerOf("nvidia-h100-80gb").boardPowerW).toBe(700);
    expect(gpuPowerOf("nvidia-tesla-a100").boardPowerW).toBe(400);
    expect(gpuPowerOf("NVIDIA-L40S")).toEqual({
      boardPowerW: 350,
      idlePowerW: 350 * ASSUMED_IDLE_POWER_FRACTION,
    });
  });

  it("prefers an override and names the product it cannot find", () => {
    expect(gpuPowerOf("nvidia-l4", { "nvidia-l4": { boardPowerW: 70, idlePowerW: 16 } }).idlePowerW).toBe(16);
    expect(() => gpuPowerOf("nvidia-tesla-k80")).toThrow(
      /no power figure for GPU product "nvidia-tesla-k80"/,
    );
  });
});
