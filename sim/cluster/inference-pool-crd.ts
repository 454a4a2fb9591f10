/**
 * The Gateway API Inference Extension's InferencePool CRD (inference.networking.k8s.io/v1), taken from
 * its Go module at the version pinned in tools/gateway-api-inference-extension/go.mod: `go mod download`
 * puts the module in the Go module cache, and the CRD is read from its config/crd/bases. Nothing of it
 * is copied into this repository. Tests that need the CRD install it (test/support/crds.ts).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { parseGoModRequirements, pinnedModuleDir, REPO_ROOT } from "../../tools/binaries.js";

export const INFERENCE_EXTENSION_MODULE = "sigs.k8s.io/gateway-api-inference-extension";
const TOOL_DIR = join(REPO_ROOT, "tools", "gateway-api-inference-extension");
const CRD_IN_MODULE = "config/crd/bases/inference.networking.k8s.io_inferencepools.yaml";

/** The pinned version of the inference extension module. */
export function pinnedInferenceExtensionVersion(toolDir: string = TOOL_DIR): string {
  const version = parseGoModRequirements(readFileSync(join(toolDir, "go.mod"), "utf8")).get(INFERENCE_EXTENSION_MODULE);
  if (!version) throw new Error(`tools/gateway-api-inference-extension/go.mod does not require ${INFERENCE_EXTENSION_MODULE}`);
  return version;
}

/** Downloads the pinned module (checked against go.sum) if needed; returns the CRD file's path. */
export async function inferencePoolCrdPath(toolDir: string = TOOL_DIR): Promise<string> {
  const version = pinnedInferenceExtensionVersion(toolDir);
  const path = join(await pinnedModuleDir(toolDir, INFERENCE_EXTENSION_MODULE), CRD_IN_MODULE);
  if (!existsSync(path)) throw new Error(`${INFERENCE_EXTENSION_MODULE}@${version} has no ${CRD_IN_MODULE}`);
  return path;
}

/** The InferencePool CRD as an object, ready to apply. */
export async function inferencePoolCrd(): Promise<Record<string, unknown>> {
  return parse(readFileSync(await inferencePoolCrdPath(), "utf8")) as Record<string, unknown>;
}
