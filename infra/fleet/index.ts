/**
 * Entry point of the fleet stack (Pulumi.yaml in this folder). All settings come from the stack
 * config namespace `fleet` (see Pulumi.example.yaml); the program itself is program.ts.
 *
 *   cd infra/fleet && pulumi stack init example && pulumi up   (config: Pulumi.example.yaml)
 */
import * as pulumi from "@pulumi/pulumi";
import { fleetProgram, type FleetConfig } from "./program.js";

const STRING_KEYS = ["strategy", "gcpProject", "kubernetesVersion", "namespace", "modelNamespace"] as const;
const NUMBER_KEYS = ["latencyTargetMs", "minRegionsPerModel", "costCapPerHour"] as const;
const OBJECT_KEYS = ["regions", "models", "operator", "gpuOperator", "carbon"] as const;

/** The stack config as a FleetConfig: scalars by type, structured values as YAML objects in the stack file. */
export function readFleetConfig(config: pulumi.Config = new pulumi.Config("fleet")): FleetConfig {
  const entries: Array<readonly [string, unknown]> = [
    ...STRING_KEYS.map((key) => [key, config.get(key)] as const),
    ...NUMBER_KEYS.map((key) => [key, config.getNumber(key)] as const),
    ...OBJECT_KEYS.map((key) => [key, config.getObject<unknown>(key)] as const),
  ];
  return Object.fromEntries(entries.filter(([, value]) => value !== undefined)) as unknown as FleetConfig;
}

// Pulumi runs the default export and takes what it returns as the stack outputs.
export default async () => fleetProgram(readFleetConfig());
