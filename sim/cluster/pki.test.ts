import { X509Certificate, createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ADMIN_GROUP, ADMIN_USER, createClusterPki, encodeObjectIdentifier } from "./pki.js";

describe("encodeObjectIdentifier", () => {
  it("encodes multi-byte arcs in base 128 (ecdsa-with-SHA256)", () => {
    expect(encodeObjectIdentifier("1.2.840.10045.4.3.2").toString("hex")).toBe("06082a8648ce3d040302");
  });
});

describe("createClusterPki", () => {
  const pki = createClusterPki();
  const ca = new X509Certificate(pki.caCertificatePem);
  const apiServer = new X509Certificate(pki.apiServerCertificatePem);
  const admin = new X509Certificate(pki.adminCertificatePem);

  it("makes a self-signed CA that Node's X.509 parser accepts", () => {
    expect(ca.ca).toBe(true);
    expect(ca.verify(ca.publicKey)).toBe(true);
    expect(ca.subject).toContain("CN=gpufleet-local-ca");
  });

  it("issues an apiserver serving certificate valid for 127.0.0.1 and localhost", () => {
    expect(apiServer.ca).toBe(false);
    expect(apiServer.checkIssued(ca)).toBe(true);
    expect(apiServer.verify(ca.publicKey)).toBe(true);
    expect(apiServer.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(apiServer.checkHost("localhost")).toBe("localhost");
    expect(apiServer.checkIP("127.0.0.2")).toBeUndefined();
    expect(apiServer.keyUsage).toContain("1.3.6.1.5.5.7.3.1");
  });

  it("issues an admin client certificate in group system:masters", () => {
    expect(admin.verify(ca.publicKey)).toBe(true);
    expect(admin.subject).toContain(`O=${ADMIN_GROUP}`);
    expect(admin.subject).toContain(`CN=${ADMIN_USER}`);
    expect(admin.keyUsage).toContain("1.3.6.1.5.5.7.3.2");
    expect(admin.checkPrivateKey(createPrivateKey(pki.adminPrivateKeyPem))).toBe(true);
  });

  it("is valid now and for weeks ahead", () => {
    const now = Date.now();
    expect(new Date(apiServer.validFrom).getTime()).toBeLessThan(now);
    expect(new Date(apiServer.validTo).getTime()).toBeGreaterThan(now + 7 * 24 * 3600 * 1000);
  });

  it("signs the front-proxy client with its own CA, not the cluster CA", () => {
    const frontProxyCa = new X509Certificate(pki.frontProxyCaCertificatePem);
    const frontProxyClient = new X509Certificate(pki.frontProxyClientCertificatePem);
    expect(frontProxyClient.verify(frontProxyCa.publicKey)).toBe(true);
    expect(frontProxyClient.verify(ca.publicKey)).toBe(false);
    expect(frontProxyClient.subject).toContain("CN=front-proxy-client");
  });

  it("gives a service-account key pair whose halves match", () => {
    const data = Buffer.from("token");
    const signature = sign("sha256", data, createPrivateKey(pki.serviceAccountPrivateKeyPem));
    expect(verify("sha256", data, createPublicKey(pki.serviceAccountPublicKeyPem), signature)).toBe(true);
  });
});
