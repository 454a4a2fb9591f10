/**
 * The LeaderWorkerSet controller (sigs.k8s.io/lws) in the local cluster, for ModelDeployments whose replica
 * spans nodes (operator/render/leaderworkerset.ts).
 *
 * Its CRD and webhook configurations are read from the Go module at the version pinned in tools/lws/go.mod
 * (`go mod download` puts it in the Go module cache; config/crd/bases and config/webhook), so nothing of it
 * is copied into this repository. The controller binary is built from the same pin (tools/binaries.ts).
 *
 * Webhooks: LWS needs its webhooks (the pod webhook labels each pod with its group and worker index and
 * injects LWS_LEADER_ADDRESS / LWS_WORKER_INDEX, which the controller and the engines rely on), so they
 * run, over TLS on 127.0.0.1: the controller's own certificate management (which writes a Secret and
 * patches a Service-backed configuration) is turned off; a webhook CA and a serving certificate for
 * 127.0.0.1 are made here (pki.ts), and the webhook configurations point at `https://127.0.0.1:<port>/<path>`
 * with that CA. The pod webhooks only see pods labelled `leaderworkerset.sigs.k8s.io/name` (the objectSelector
 * of LWS's own kustomize patches), so other pods never depend on this process. Leader election is off (one
 * controller per cluster).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:tls";
import { join } from "node:path";
import { parseAllDocuments, parse, stringify } from "yaml";
import { parseGoModRequirements, pinnedModuleDir, REPO_ROOT } from "../../tools/binaries.js";
import { generateEcKeyPair, issueCertificate, privateKeyPem, type DistinguishedName } from "./pki.js";

export const LWS_MODULE = "sigs.k8s.io/lws";
const TOOL_DIR = join(REPO_ROOT, "tools", "lws");
const CRD_IN_MODULE = "config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml";
const WEBHOOKS_IN_MODULE = "config/webhook/manifests.yaml";
/** The label LWS gives every pod it creates; the pod webhooks select on it (LWS's mutating/validating patches). */
const LWS_POD_LABEL = "leaderworkerset.sigs.k8s.io/name";

export function pinnedLwsVersion(toolDir: string = TOOL_DIR): string {
  const version = parseGoModRequirements(readFileSync(join(toolDir, "go.mod"), "utf8")).get(LWS_MODULE);
  if (!version) throw new Error(`tools/lws/go.mod does not require ${LWS_MODULE}`);
  return version;
}

/** Downloads the pinned module (checked against go.sum) if needed; returns its directory. */
export async function lwsModuleDir(toolDir: string = TOOL_DIR): Promise<string> {
  const version = pinnedLwsVersion(toolDir);
  const dir = await pinnedModuleDir(toolDir, LWS_MODULE);
  for (const file of [CRD_IN_MODULE, WEBHOOKS_IN_MODULE])
    if (!existsSync(join(dir, file))) throw new Error(`${LWS_MODULE}@${version} has no ${file}`);
  return dir;
}

/** The LeaderWorkerSet CRD, as an object ready to apply. */
export function lwsCrd(moduleDir: string): Record<string, unknown> {
  return parse(readFileSync(join(moduleDir, CRD_IN_MODULE), "utf8")) as Record<string, unknown>;
}

interface WebhookClientConfig {
  service?: { path?: string };
  url?: string;
  caBundle?: string;
}
interface Webhook {
  name: string;
  clientConfig: WebhookClientConfig;
  rules?: Array<{ resources?: string[] }>;
  objectSelector?: unknown;
  [key: string]: unknown;
}

/**
 * LWS's webhook configurations with each webhook called at `baseUrl` + its path (no Service), trusting
 * `caPem`, the pod webhooks limited to LWS's pods. Pure.
 */
export function lwsWebhookConfigurations(manifestsYaml: string, baseUrl: string, caPem: string): Array<Record<string, unknown>> {
  const caBundle = Buffer.from(caPem).toString("base64");
  return parseAllDocuments(manifestsYaml)
    .map((document) => document.toJSON() as Record<string, unknown> | null)
    .filter((object): object is Record<string, unknown> => !!object && typeof object.kind === "string")
    .map((object) => {
      const metadata = object.metadata as { name: string };
      const webhooks = (object.webhooks as Webhook[]).map((webhook) => {
        const path = webhook.clientConfig.service?.path;
        if (!path) throw new Error(`LWS webhook ${webhook.name} has no service path`);
        const forPods = (webhook.rules ?? []).some((rule) => rule.resources?.includes("pods"));
        return {
          ...webhook,
          clientConfig: { url: `${baseUrl}${path}`, caBundle },
          ...(forPods ? { objectSelector: { matchExpressions: [{ key: LWS_POD_LABEL, operator: "Exists" }] } } : {}),
        };
      });
      return { ...object, metadata: { name: `lws-${metadata.name}` }, webhooks };
    });
}

export interface LwsControllerFiles {
  configPath: string;
  certDir: string;
  caPem: string;
  webhookPort: number;
  healthPort: number;
}

/** A webhook CA, a serving certificate for 127.0.0.1 in `certDir` (tls.crt, tls.key) and the controller's config file. */
export function writeLwsControllerFiles(dir: string, ports: { webhook: number; health: number; metrics: number }): LwsControllerFiles {
  const certDir = join(dir, "certs");
  mkdirSync(certDir, { recursive: true });
  const caName: DistinguishedName = { commonName: "gpufleet-lws-webhook-ca" };
  const caKeys = generateEcKeyPair();
  const ca = issueCertificate({ subject: caName, publicKey: caKeys.publicKey, isCertificateAuthority: true, validForDays: 30 }, { name: caName, keys: caKeys });
  const servingKeys = generateEcKeyPair();
  const serving = issueCertificate(
    { subject: { commonName: "lws-webhook" }, publicKey: servingKeys.publicKey, serverAuth: true, dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], validForDays: 30 },
    { name: caName, keys: caKeys },
  );
  writeFileSync(join(certDir, "tls.crt"), serving.certificatePem, { mode: 0o600 });
  writeFileSync(join(certDir, "tls.key"), privateKeyPem(servingKeys.privateKey), { mode: 0o600 });
  const configPath = join(dir, "lws-config.yaml");
  writeFileSync(
    configPath,
    stringify({
      apiVersion: "config.lws.x-k8s.io/v1alpha1",
      kind: "Configuration",
      leaderElection: { leaderElect: false },
      internalCertManagement: { enable: false },
      webhook: { host: "127.0.0.1", port: ports.webhook, certDir },
      metrics: { bindAddress: `127.0.0.1:${ports.metrics}` },
      health: { healthProbeBindAddress: `127.0.0.1:${ports.health}` },
    }),
  );
  return { configPath, certDir, caPem: ca.certificatePem, webhookPort: ports.webhook, healthPort: ports.health };
}

/** The controller's arguments (its kubeconfig comes from KUBECONFIG). */
export function lwsControllerArgs(files: LwsControllerFiles): string[] {
  return [`--config=${files.configPath}`, "--zap-log-level=info"];
}

/** Resolves once the webhook server completes a TLS handshake with the given CA. */
export function webhookServing(port: number, caPem: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, ca: caPem, servername: "localhost", timeout: timeoutMs }, () => {
      socket.end();
      resolve(socket.authorized);
    });
    socket.on("error", () => resolve(false));
    socket.on("timeout", () => {
      socket.destroy();
      resolve(false);
    });
  });
}

export { readFileSync as readModuleFile, WEBHOOKS_IN_MODULE };
