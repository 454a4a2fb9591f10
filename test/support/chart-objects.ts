import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { REPO_ROOT } from "../../operator/api/generate.js";
import type { KubeClient, KubeObject } from "../../operator/runtime/kube-client.js";
import { ensureClusterBinaries, readPinnedTools } from "../../tools/binaries.js";
import { runHelmOk } from "./helm.js";

/**
 * Renders some of the chart's templates for a release in `namespace` and applies them with the admin
 * client, as `helm install` would (a stand-in for tests that run the gateway outside a pod but with
 * exactly the chart's ServiceAccount and RBAC). Returns the applied objects.
 */
export async function applyChartTemplates(input: {
  kubeConfig: KubeConfig;
  admin: KubeClient;
  namespace: string;
  release: string;
  set: string;
  templates: readonly string[];
}): Promise<KubeObject[]> {
  const helm = (await ensureClusterBinaries({ only: ["helm"] })).helm;
  const home = mkdtempSync(join(tmpdir(), "gpufleet-chart-objects-"));
  try {
    const kubeconfigPath = join(home, "admin.kubeconfig");
    writeFileSync(kubeconfigPath, input.kubeConfig.exportConfig(), { mode: 0o600 });
    const rendered = await runHelmOk(
      helm,
      [
        "template",
        input.release,
        join(REPO_ROOT, "charts", "gpufleet"),
        "--namespace",
        input.namespace,
        "--kube-version",
        readPinnedTools().versions["kube-apiserver"] as string,
        "--set",
        input.set,
        ...input.templates.flatMap((template) => ["--show-only", `templates/${template}`]),
      ],
      { home, kubeconfig: kubeconfigPath },
    );
    const objects = parseAllDocuments(rendered)
      .map((d) => d.toJS() as KubeObject | null)
      .filter((o): o is KubeObject => o !== null);
    for (const object of objects) await input.admin.apply(object, { fieldManager: "helm-stand-in", force: true });
    return objects;
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}
