/**
 * Minimal X.509 PKI for the local control plane, built on Node's crypto only (no openssl, no
 * third-party ASN.1 library). It encodes just the DER needed for a CA, TLS serving certificates
 * and client certificates (RFC 5280 §4.1) and signs them with ECDSA P-256 / SHA-256, which
 * Go's crypto/x509 (used by etcd, kube-apiserver and every client) accepts.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from "node:crypto";
import { isIPv4 } from "node:net";

// ---- DER primitives -------------------------------------------------------------------------

function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let remaining = length; remaining > 0; remaining = Math.floor(remaining / 256)) {
    bytes.unshift(remaining & 0xff);
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

const sequence = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
const octetString = (content: Buffer): Buffer => tlv(0x04, content);
const utf8String = (text: string): Buffer => tlv(0x0c, Buffer.from(text, "utf8"));
const bitString = (content: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), content]));
const booleanTrue = (): Buffer => tlv(0x01, Buffer.from([0xff]));
const explicitTag = (tagNumber: number, content: Buffer): Buffer => tlv(0xa0 | tagNumber, content);

/** A non-negative INTEGER from big-endian bytes (a leading zero keeps it positive). */
function unsignedInteger(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  let trimmed = bytes.subarray(start);
  if ((trimmed[0] ?? 0) & 0x80) trimmed = Buffer.concat([Buffer.from([0]), trimmed]);
  return tlv(0x02, trimmed);
}

export function encodeObjectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split(".").map((arc) => Number.parseInt(arc, 10));
  const [first = 0, second = 0, ...rest] = arcs;
  const bytes: number[] = [first * 40 + second];
  for (const arc of rest) {
    const base128: number[] = [arc & 0x7f];
    for (let value = Math.floor(arc / 128); value > 0; value = Math.floor(value / 128)) {
      base128.unshift((value & 0x7f) | 0x80);
    }
    bytes.push(...base128);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** UTCTime for years < 2050, GeneralizedTime after (RFC 5280 §4.1.2.5). */
function encodeTime(date: Date): Buffer {
  const iso = date.toISOString(); // 2026-01-02T03:04:05.678Z
  const digits = iso.slice(0, 19).replace(/[-:T]/g, "");
  return date.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, "ascii"))
    : tlv(0x18, Buffer.from(`${digits}Z`, "ascii"));
}

// ---- X.509 structures -------------------------------------------------------------------------

const OID = {
  commonName: "2.5.4.3",
  organization: "2.5.4.10",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extendedKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  subjectKeyIdentifier: "2.5.29.14",
  authorityKeyIdentifier: "2.5.29.35",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
} as const;

export interface DistinguishedName {
  commonName: string;
  /** Kubernetes maps O= to groups, e.g. `system:masters`. */
  organizations?: string[];
}

function encodeName(name: DistinguishedName): Buffer {
  const attribute = (oid: string, value: string): Buffer =>
    set(sequence(encodeObjectIdentifier(oid), utf8String(value)));
  const organizations = (name.organizations ?? []).map((org) => attribute(OID.organization, org));
  return sequence(...organizations, attribute(OID.commonName, name.commonName));
}

function extension(oid: string, critical: boolean, value: Buffer): Buffer {
  return sequence(encodeObjectIdentifier(oid), ...(critical ? [booleanTrue()] : []), octetString(value));
}

/** KeyUsage bits, numbered as in RFC 5280 §4.2.1.3. */
const KEY_USAGE_BIT = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;
type KeyUsage = keyof typeof KEY_USAGE_BIT;

function encodeKeyUsage(usages: KeyUsage[]): Buffer {
  let bits = 0;
  for (const usage of usages) bits |= 0x80 >> KEY_USAGE_BIT[usage];
  // One content byte; trailing unused bits are declared so DER stays minimal.
  let unusedBits = 0;
  while (unusedBits < 7 && ((bits >> unusedBits) & 1) === 0) unusedBits++;
  return tlv(0x03, Buffer.from([unusedBits, bits]));
}

function encodeSubjectAltNames(dnsNames: string[], ipAddresses: string[]): Buffer {
  const dns = dnsNames.map((host) => tlv(0x82, Buffer.from(host, "ascii")));
  const ips = ipAddresses.map((ip) => {
    if (!isIPv4(ip)) throw new Error(`only IPv4 SANs are supported, got ${ip}`);
    return tlv(0x87, Buffer.from(ip.split(".").map((octet) => Number.parseInt(octet, 10))));
  });
  return sequence(...dns, ...ips);
}

function keyIdentifier(publicKey: KeyObject): Buffer {
  // RFC 5280 §4.2.1.2 method 1 uses the SHA-1 of the key bits; any stable hash is allowed.
  return createHash("sha1")
    .update(publicKey.export({ type: "spki", format: "der" }))
    .digest();
}

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function generateEcKeyPair(): KeyPair {
  return generateKeyPairSync("ec", { namedCurve: "P-256" });
}

export interface CertificateRequest {
  subject: DistinguishedName;
  publicKey: KeyObject;
  isCertificateAuthority?: boolean;
  serverAuth?: boolean;
  clientAuth?: boolean;
  dnsNames?: string[];
  ipAddresses?: string[];
  validForDays?: number;
}

export interface Issuer {
  name: DistinguishedName;
  keys: KeyPair;
}

export interface IssuedCertificate {
  certificatePem: string;
  certificateDer: Buffer;
}

/** Builds and signs one certificate. A self-signed CA passes its own name and keys as issuer. */
export function issueCertificate(request: CertificateRequest, issuer: Issuer): IssuedCertificate {
  const signatureAlgorithm = sequence(encodeObjectIdentifier(OID.ecdsaWithSha256));
  // Back-date a little so clocks that differ by seconds don't reject a fresh certificate.
  const notBefore = new Date(Date.now() - 60 * 60 * 1000);
  const notAfter = new Date(Date.now() + (request.validForDays ?? 30) * 24 * 60 * 60 * 1000);

  const extendedKeyUsages = [
    ...(request.serverAuth ? [encodeObjectIdentifier(OID.serverAuth)] : []),
    ...(request.clientAuth ? [encodeObjectIdentifier(OID.clientAuth)] : []),
  ];
  const altNames = [...(request.dnsNames ?? []), ...(request.ipAddresses ?? [])];
  const extensions = [
    extension(
      OID.basicConstraints,
      true,
      request.isCertificateAuthority ? sequence(booleanTrue()) : sequence(),
    ),
    extension(
      OID.keyUsage,
      true,
      encodeKeyUsage(
        request.isCertificateAuthority
          ? ["digitalSignature", "keyCertSign", "cRLSign"]
          : ["digitalSignature"], // EC keys sign; they never encipher
      ),
    ),
    ...(extendedKeyUsages.length > 0
      ? [extension(OID.extendedKeyUsage, false, sequence(...extendedKeyUsages))]
      : []),
    ...(altNames.length > 0
      ? [
          extension(
            OID.subjectAltName,
            false,
            encodeSubjectAltNames(request.dnsNames ?? [], request.ipAddresses ?? []),
          ),
        ]
      : []),
    extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(request.publicKey))),
    extension(OID.authorityKeyIdentifier, false, sequence(tlv(0x80, keyIdentifier(issuer.keys.publicKey)))),
  ];

  const serialNumber = randomBytes(16);
  serialNumber[0] = (serialNumber[0] ?? 0) & 0x7f; // positive, at most 20 octets (RFC 5280 §4.1.2.2)

  const toBeSigned = sequence(
    explicitTag(0, tlv(0x02, Buffer.from([2]))), // v3
    unsignedInteger(serialNumber),
    signatureAlgorithm,
    encodeName(issuer.name),
    sequence(encodeTime(notBefore), encodeTime(notAfter)),
    encodeName(request.subject),
    request.publicKey.export({ type: "spki", format: "der" }),
    explicitTag(3, sequence(...extensions)),
  );
  const signature = sign("sha256", toBeSigned, { key: issuer.keys.privateKey, dsaEncoding: "der" });
  const certificateDer = sequence(toBeSigned, signatureAlgorithm, bitString(signature));
  return { certificateDer, certificatePem: toPem("CERTIFICATE", certificateDer) };
}

export function toPem(label: string, der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

export function privateKeyPem(key: KeyObject): string {
  return key.export({ type: "pkcs8", format: "pem" }).toString();
}

export function publicKeyPem(key: KeyObject): string {
  return key.export({ type: "spki", format: "pem" }).toString();
}

/** Everything the control plane needs, as PEM strings. */
export interface ClusterPki {
  caCertificatePem: string;
  caPrivateKeyPem: string;
  apiServerCertificatePem: string;
  apiServerPrivateKeyPem: string;
  adminCertificatePem: string;
  adminPrivateKeyPem: string;
  serviceAccountPrivateKeyPem: string;
  serviceAccountPublicKeyPem: string;
  /** Separate CA for the aggregation layer's front proxy (request-header authentication). */
  frontProxyCaCertificatePem: string;
  frontProxyClientCertificatePem: string;
  frontProxyClientPrivateKeyPem: string;
}

export const ADMIN_USER = "gpufleet-admin";
export const ADMIN_GROUP = "system:masters";
export const FRONT_PROXY_CLIENT = "front-proxy-client";

export function createClusterPki(): ClusterPki {
  const caName: DistinguishedName = { commonName: "gpufleet-local-ca" };
  const caKeys = generateEcKeyPair();
  const ca = issueCertificate(
    { subject: caName, publicKey: caKeys.publicKey, isCertificateAuthority: true, validForDays: 365 },
    { name: caName, keys: caKeys },
  );
  const issuer: Issuer = { name: caName, keys: caKeys };

  const apiServerKeys = generateEcKeyPair();
  const apiServer = issueCertificate(
    {
      subject: { commonName: "kube-apiserver" },
      publicKey: apiServerKeys.publicKey,
      serverAuth: true,
      dnsNames: ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
      ipAddresses: ["127.0.0.1"],
    },
    issuer,
  );

  const adminKeys = generateEcKeyPair();
  const admin = issueCertificate(
    {
      subject: { commonName: ADMIN_USER, organizations: [ADMIN_GROUP] },
      publicKey: adminKeys.publicKey,
      clientAuth: true,
    },
    issuer,
  );

  const frontProxyCaName: DistinguishedName = { commonName: "gpufleet-front-proxy-ca" };
  const frontProxyCaKeys = generateEcKeyPair();
  const frontProxyCa = issueCertificate(
    {
      subject: frontProxyCaName,
      publicKey: frontProxyCaKeys.publicKey,
      isCertificateAuthority: true,
      validForDays: 365,
    },
    { name: frontProxyCaName, keys: frontProxyCaKeys },
  );
  const frontProxyClientKeys = generateEcKeyPair();
  const frontProxyClient = issueCertificate(
    {
      subject: { commonName: FRONT_PROXY_CLIENT },
      publicKey: frontProxyClientKeys.publicKey,
      clientAuth: true,
    },
    { name: frontProxyCaName, keys: frontProxyCaKeys },
  );

  const serviceAccountKeys = generateEcKeyPair();
  return {
    frontProxyCaCertificatePem: frontProxyCa.certificatePem,
    frontProxyClientCertificatePem: frontProxyClient.certificatePem,
    frontProxyClientPrivateKeyPem: privateKeyPem(frontProxyClientKeys.privateKey),
    caCertificatePem: ca.certificatePem,
    caPrivateKeyPem: privateKeyPem(caKeys.privateKey),
    apiServerCertificatePem: apiServer.certificatePem,
    apiServerPrivateKeyPem: privateKeyPem(apiServerKeys.privateKey),
    adminCertificatePem: admin.certificatePem,
    adminPrivateKeyPem: privateKeyPem(adminKeys.privateKey),
    serviceAccountPrivateKeyPem: privateKeyPem(serviceAccountKeys.privateKey),
    serviceAccountPublicKeyPem: publicKeyPem(serviceAccountKeys.publicKey),
  };
}
