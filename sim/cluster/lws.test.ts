import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { lwsWebhookConfigurations, pinnedLwsVersion, writeLwsControllerFiles } from "./lws.js";

const manifests = `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: mutating-webhook-configuration
webhooks:
- name: mset.example
  clientConfig:
    service: { name: webhook-service, namespace: system, path: /mutate-set }
  rules: [{ apiGroups: [leaderworkerset.x-k8s.io], apiVersions: [v1], operations: [CREATE], resources: [leaderworkersets] }]
- name: mpod.example
  clientConfig:
    service: { name: webhook-service, namespace: system, path: /mutate--v1-pod }
  rules: [{ apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods] }]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: validating-webhook-configuration
webhooks:
- name: vpod.example
  clientConfig:
    service: { name: webhook-service, namespace: system, path: /validate--v1-pod }
  rules: [{ apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods] }]
`;

describe("the LeaderWorkerSet controller in the local cluster", () => {
  it("pins sigs.k8s.io/lws in tools/lws/go.mod", () => {
    expect(pinnedLwsVersion()).toMatch(/^v0\.\d+\.\d+$/);
  });

  it("points every webhook at 127.0.0.1 with the webhook CA, and limits the pod webhooks to LWS pods", () => {
    const configurations = lwsWebhookConfigurations(manifests, "https://127.0.0.1:9443", "CA PEM");
    expect(configurations.map((c) => [c.kind, (c.metadata as { name: string }).name])).toEqual([
      ["MutatingWebhookConfiguration", "lws-mutating-webhook-configuration"],
      ["ValidatingWebhookConfiguration", "lws-validating-webhook-configuration"],
    ]);
    const webhooks = configurations.flatMap((c) => c.webhooks as Array<Record<string, unknown>>);
    expect(webhooks.map((w) => (w.clientConfig as { url: string }).url)).toEqual([
      "https://127.0.0.1:9443/mutate-set",
      "https://127.0.0.1:9443/mutate--v1-pod",
      "https://127.0.0.1:9443/validate--v1-pod",
    ]);
    expect(webhooks.every((w) => (w.clientConfig as { caBundle: string }).caBundle === Buffer.from("CA PEM").toString("base64"))).toBe(true);
    const podSelector = { matchExpressions: [{ key: "leaderworkerset.sigs.k8s.io/name", operator: "Exists" }] };
    expect(webhooks.map((w) => w.objectSelector)).toEqual([undefined, podSelector, podSelector]);
  });

  it("writes a serving certificate for 127.0.0.1 signed by its own CA, and a config with cert management and leader election off", () => {
    const dir = mkdtempSync(join(tmpdir(), "lws-files-"));
    try {
      const files = writeLwsControllerFiles(dir, { webhook: 9443, health: 8081, metrics: 8080 });
      const serving = new X509Certificate(readFileSync(join(files.certDir, "tls.crt")));
      expect(serving.checkIP("127.0.0.1")).toBe("127.0.0.1");
      expect(serving.verify(new X509Certificate(files.caPem).publicKey)).toBe(true);
      expect(parse(readFileSync(files.configPath, "utf8"))).toMatchObject({
        kind: "Configuration",
        leaderElection: { leaderElect: false },
        internalCertManagement: { enable: false },
        webhook: { host: "127.0.0.1", port: 9443, certDir: files.certDir },
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
