import { writeFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CRD_FILE, modelDeploymentCrdYaml } from "./crd.js";

/** Every place the generated CRD is written to; the freshness test checks each one. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const GENERATED_CRD_PATHS = [CRD_FILE, "charts/gpufleet/crds/gpufleet.io_modeldeployments.yaml"];

// `npm run gen:crds`
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const yamlText = modelDeploymentCrdYaml();
  for (const relative of GENERATED_CRD_PATHS) {
    const target = join(REPO_ROOT, relative);
    if (relative.startsWith("charts/") && !existsSync(join(REPO_ROOT, "charts/gpufleet"))) continue;
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, yamlText);
    process.stdout.write(`wrote ${relative}\n`);
  }
}
