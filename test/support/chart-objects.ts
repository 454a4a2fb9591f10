import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { REPO_ROOT } from "../../operator/api/generate.js";
import { registerKind, type KubeClient, type KubeObject } from "../../operator/runtime/kube-client.js";
import { ensureClusterBinaries, readPinnedTools } from "../../tools/binaries.js";
import { runHelmOk } from "./helm.js";

/**
 * Teaches the test's KubeClient the cluster-scoped and namespaced kinds the chart's RBAC and admission
 * templates hold (Role, RoleBinding, ClusterRole, ClusterRoleBinding, ValidatingAdmissionPolicy and its
 * binding), so they can be applied and deleted. Idempotent.
 */
export function registerChartKinds(): void {
  const kinds: Array<[apiVersion: string, kind: string, plural: string, namespaced: boolean]> = [
    ["rbac.authorization.k8s.io/v1", "Role", "roles", true],
    ["rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", true],
    ["rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", false],
    ["rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", false],
    ["admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", false],
    ["admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings", false],
  ];
  for (const [apiVersion, kind, plural, namespaced] of kinds) registerKind(apiVersion, kind, { plural, namespaced });
}

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
