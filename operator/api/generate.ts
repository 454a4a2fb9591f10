import { writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CRD_FILE, modelDeploymentCrdYaml } from "./crd.js";
import { MODEL_ROUTE_GENERATED_PATHS, modelRouteCrdYaml } from "./modelroute.js";
import { TENANCY_CRD_FILES } from "./tenancy-crd.js";

/** Every place the generated CRD is written to; the freshness test checks each one. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const GENERATED_CRD_PATHS = [CRD_FILE, "charts/gpufleet/crds/gpufleet.io_modeldeployments.yaml"];

/** Each generated CRD file with the text it must hold (ModelDeployment first). */
export function generatedCrdFiles(): Array<{ path: string; text: () => string }> {
  return [
    ...GENERATED_CRD_PATHS.map((path) => ({ path, text: modelDeploymentCrdYaml })),
    ...MODEL_ROUTE_GENERATED_PATHS.map((path) => ({ path, text: modelRouteCrdYaml })),
    ...TENANCY_CRD_FILES.map(([path, text]) => ({ path, text })),
  ];
}

// `npm run gen:crds`
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const { path: relative, text } of generatedCrdFiles()) {
    const target = join(REPO_ROOT, relative);
    if (relative.startsWith("charts/") && !existsSync(join(REPO_ROOT, "charts/gpufleet"))) continue;
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, text());
    process.stdout.write(`wrote ${relative}\n`);
  }
}
