/**
 * Entry point of the fleet stack (Pulumi.yaml in this folder). All settings come from the stack
 * config namespace `fleet` (see Pulumi.example.yaml); the program itself is program.ts.
 *
 *   cd infra/fleet && pulumi stack init example && cp Pulumi.example.yaml Pulumi.<stack>.yaml && pulumi up
 */
import * as pulumi from "@pulumi/pulumi";
import { fleetProgram, type FleetConfig } from "./program.js";

const CONFIG_KEYS = [
  "regions", "models", "latencyTargetMs", "strategy", "minRegionsPerModel", "costCapPerHour", "gcpProject",
  "kubernetesVersion", "namespace", "modelNamespace", "operator", "gpuOperator",
] as const;

/** The stack config as a FleetConfig (structured values are YAML objects in the stack file). */
export function readFleetConfig(config: pulumi.Config = new pulumi.Config("fleet")): FleetConfig {
  const entries = CONFIG_KEYS.map((key) => [key, config.getObject<unknown>(key)] as const).filter(([, value]) => value !== undefined);
  return Object.fromEntries(entries) as unknown as FleetConfig;
}

// Pulumi runs the default export and takes what it returns as the stack outputs.
export default async () => fleetProgram(readFleetConfig());
