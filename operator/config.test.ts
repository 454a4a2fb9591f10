import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.js";

describe("loadConfig GPUFLEET_AUTOSCALER_WINDOW_SECONDS", () => {
  it("leaves the autoscaler policy's windows at their defaults when unset or empty", () => {
    expect(loadConfig({}).autoscalerWindowSeconds).toBeUndefined();
    expect("autoscalerWindowSeconds" in loadConfig({ GPUFLEET_AUTOSCALER_WINDOW_SECONDS: "" })).toBe(false);
  });

  it("reads whole seconds from the panic window (15 s) up to an hour", () => {
    expect(loadConfig({ GPUFLEET_AUTOSCALER_WINDOW_SECONDS: "15" }).autoscalerWindowSeconds).toBe(15);
    expect(loadConfig({ GPUFLEET_AUTOSCALER_WINDOW_SECONDS: "3600" }).autoscalerWindowSeconds).toBe(3600);
  });

  it("refuses a window shorter than the panic window, a fraction or a word, naming the variable", () => {
    for (const raw of ["14", "0", "20.5", "soon", "3601"]) {
      expect(() => loadConfig({ GPUFLEET_AUTOSCALER_WINDOW_SECONDS: raw })).toThrow(ConfigError);
      expect(() => loadConfig({ GPUFLEET_AUTOSCALER_WINDOW_SECONDS: raw })).toThrow(/GPUFLEET_AUTOSCALER_WINDOW_SECONDS/);
    }
  });
});
