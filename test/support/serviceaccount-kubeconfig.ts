/**
 * A kubeconfig that authenticates as a ServiceAccount, with a short-lived token from the
 * TokenRequest API (what kubelet projects into pods). Lets tests act exactly as the operator's
 * pod would: same identity, same RBAC, nothing the admin credentials would add.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";

export interface ServiceAccountKubeconfigOptions {
  /** Token lifetime; the API server's minimum is 600 s. Default 3600. */
  expirationSeconds?: number;
  /** Token audiences; default: the API server's own (what a pod's default token has). */
  audiences?: string[];
}

export interface ServiceAccountKubeconfig {
  kubeConfig: KubeConfig;
  /** The same configuration written to a private temp file, for child processes (operator, helm, kubectl). */
  path: string;
  /** `system:serviceaccount:<namespace>:<name>`, the username RBAC sees. */
  username: string;
  token: string;
}

/** Pure: a KubeConfig on the admin config's current cluster, authenticated by `token`. */
export function kubeConfigWithToken(
  admin: KubeConfig,
  username: string,
  token: string,
  namespace: string,
): KubeConfig {
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error("the admin kubeconfig has no current cluster");
  const contextName = `${username}@${cluster.name}`;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [cluster],
    users: [{ name: username, token }],
    contexts: [{ name: contextName, cluster: cluster.name, user: username, namespace }],
    currentContext: contextName,
  });
  return kubeConfig;
}

export async function serviceAccountKubeconfig(
  admin: KubeConfig,
  namespace: string,
  serviceAccountName: string,
  options: ServiceAccountKubeconfigOptions = {},
): Promise<ServiceAccountKubeconfig> {
  const core = admin.makeApiClient(CoreV1Api);
  const tokenRequest = await core.createNamespacedServiceAccountToken({
    name: serviceAccountName,
    namespace,
    body: {
      spec: {
        expirationSeconds: options.expirationSeconds ?? 3600,
        audiences: options.audiences ?? [],
      },
    },
  });
  const token = tokenRequest.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${serviceAccountName} returned no token`);
  const username = `system:serviceaccount:${namespace}:${serviceAccountName}`;
  const kubeConfig = kubeConfigWithToken(admin, username, token, namespace);
  const directory = mkdtempSync(join(tmpdir(), "gpufleet-sa-kubeconfig-"));
  const path = join(directory, "kubeconfig");
  writeFileSync(path, kubeConfig.exportConfig(), { mode: 0o600 });
  return { kubeConfig, path, username, token };
}
