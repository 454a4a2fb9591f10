/**
 * API keys: parsing `Authorization: Bearer <key>`, turning a Secret's value into a SHA-256 digest, and
 * finding the tenant a presented key belongs to by comparing digests in constant time. Keys are held
 * only as digests once read; they are never logged, never put in status or metrics. Pure.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { KeyFormat } from "../../operator/api/tenancy.js";

/** Longest key accepted in a header (longer: refused as malformed, without hashing it). */
export const MAX_KEY_CHARS = 512;
/** Keys held at once (every Tenant's apiKeys, 16 each at most): a bound on the comparison loop. */
export const MAX_KEYS = 100_000;

export function digestKey(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

/** The key in an Authorization header: `Bearer <visible ASCII>` (bounded), else undefined. */
export function parseBearer(header: string | string[] | undefined): string | undefined {
  if (typeof header !== "string") return undefined;
  const match = /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
  const key = match?.[1];
  if (!key || key.length > MAX_KEY_CHARS) return undefined;
  return key;
}

export type SecretKeyProblem = "missing" | "empty" | "malformed-digest" | "too-long";

/**
 * The digest a Secret's value stands for. `value` is the raw bytes of `data[key]`. Plain: the key itself
 * (one trailing newline, as `kubectl create secret --from-file` leaves it, is dropped). SHA256: 64 hex digits.
 */
export function digestFromSecretValue(
  value: Buffer | undefined,
  format: KeyFormat,
): { digest: Buffer } | { problem: SecretKeyProblem } {
  if (value === undefined) return { problem: "missing" };
  let text = value.toString("utf8");
  if (text.endsWith("\n")) text = text.slice(0, -1);
  if (text.endsWith("\r")) text = text.slice(0, -1);
  if (text.length === 0) return { problem: "empty" };
  if (format === "SHA256") {
    const hex = text.trim().toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(hex)) return { problem: "malformed-digest" };
    return { digest: Buffer.from(hex, "hex") };
  }
  if (text.length > MAX_KEY_CHARS) return { problem: "too-long" };
  return { digest: digestKey(text) };
}

export interface KeyEntry<T> {
  digest: Buffer;
  owner: T;
}

/**
 * The keys of every tenant. `match` hashes the presented key once, then compares it with every digest
 * held, without stopping at the first hit, each comparison with `timingSafeEqual`: how long it takes
 * says nothing about which key (or how much of one) matched.
 */
export class KeyIndex<T> {
  private readonly entries: KeyEntry<T>[];
  constructor(entries: readonly KeyEntry<T>[]) {
    this.entries = entries.slice(0, MAX_KEYS).filter((e) => e.digest.length === 32);
  }

  get size(): number {
    return this.entries.length;
  }

  match(presented: string): T | undefined {
    const digest = digestKey(presented);
    let found: T | undefined;
    for (const entry of this.entries) {
      const equal = timingSafeEqual(entry.digest, digest);
      if (equal && found === undefined) found = entry.owner;
    }
    return found;
  }
}
