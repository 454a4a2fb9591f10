/**
 * One key of a tenant's Secret or ConfigMap, read for sizing: a Hub token named by
 * `spec.model.source.huggingFace.tokenSecretRef`, or a config.json named by `spec.model.source.configMap`.
 *
 * Safety rules, all enforced here:
 * - Only the ModelDeployment's own namespace is read (callers pass its namespace; a ref carries no other).
 * - One GET of the named object; no list, no watch, so the operator holds no copy of other Secrets.
 * - Values are bounded (a token to 4 KiB, a config to 256 KiB); a larger one is refused, not truncated.
 * - A Secret's value never appears in a message, a log line or status: messages name namespace/name/key.
 *
 * Like the Hub resolver, `lookup` is synchronous: it answers from the cache and reads in the background,
 * then enqueues the subscribers; a ready value is re-read after `refreshMs` (a rotated token, an edited
 * config) and subscribers are enqueued again when it changed.
 */
import { createHash } from "node:crypto";

export type TenantObjectKind = "Secret" | "ConfigMap";

export type TenantValueState =
  | { readonly state: "ready"; readonly value: string; /** sha256 of kind/ns/name/key/value, 16 hex. */ readonly fingerprint: string }
  | { readonly state: "pending"; readonly message: string }
  | {
      readonly state: "failed";
      /** NotFound (object or key), Forbidden (no RBAC), TooLarge, Unavailable (API error; retried). */
      readonly problem: "NotFound" | "Forbidden" | "TooLarge" | "Unavailable";
      readonly message: string;
    };

/** Reads one object's data (values decoded to text), or undefined when it does not exist. */
export type TenantObjectGetter = (
  kind: TenantObjectKind,
  namespace: string,
  name: string,
) => Promise<Readonly<Record<string, string>> | undefined>;

export const MAX_TOKEN_BYTES = 4096;
export const MAX_CONFIG_BYTES = 256 * 1024;

export interface TenantObjectCacheOptions {
  get: TenantObjectGetter;
  onSettled?: (subscribers: readonly string[]) => void;
  now?: () => number;
  refreshMs?: number;
  retryMs?: number;
  maxEntries?: number;
  schedule?: (fn: () => void, ms: number) => void;
}

interface Entry {
  state: TenantValueState;
  loadedAtMs: number;
  inFlight: boolean;
  subscribers: Set<string>;
}

/** Forbidden is reported with the status code only: an API error's text may quote the request. */
export class TenantObjectError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

export class TenantObjectCache {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly refreshMs: number;
  private readonly retryMs: number;
  private readonly maxEntries: number;
  private readonly schedule: (fn: () => void, ms: number) => void;

  constructor(private readonly options: TenantObjectCacheOptions) {
    this.now = options.now ?? Date.now;
    this.refreshMs = options.refreshMs ?? 60_000;
    this.retryMs = options.retryMs ?? 30_000;
    this.maxEntries = options.maxEntries ?? 1024;
    this.schedule =
      options.schedule ??
      ((fn, ms) => {
        setTimeout(fn, ms).unref();
      });
  }

  lookup(kind: TenantObjectKind, namespace: string, name: string, key: string, subscriber: string): TenantValueState {
    const id = `${kind}/${namespace}/${name}/${key}`;
    let entry = this.entries.get(id);
    if (entry) {
      this.entries.delete(id);
      this.entries.set(id, entry);
    } else {
      entry = {
        state: { state: "pending", message: `reading ${kind} ${namespace}/${name} key ${key}` },
        loadedAtMs: 0,
        inFlight: false,
        subscribers: new Set(),
      };
      this.entries.set(id, entry);
      while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    }
    entry.subscribers.add(subscriber);
    const age = this.now() - entry.loadedAtMs;
    const due =
      entry.state.state === "pending" ||
      (entry.state.state === "failed" && age >= this.retryMs) ||
      (entry.state.state === "ready" && age >= this.refreshMs);
    if (due && !entry.inFlight) this.read(entry, kind, namespace, name, key);
    return entry.state;
  }

  unsubscribe(subscriber: string): void {
    for (const entry of this.entries.values()) entry.subscribers.delete(subscriber);
  }

  private read(entry: Entry, kind: TenantObjectKind, namespace: string, name: string, key: string): void {
    entry.inFlight = true;
    const what = `${kind} ${namespace}/${name}`;
    const limit = kind === "Secret" ? MAX_TOKEN_BYTES : MAX_CONFIG_BYTES;
    const before = entry.state;
    void this.options.get(kind, namespace, name).then(
      (data) => {
        const value = data?.[key];
        if (data === undefined) entry.state = { state: "failed", problem: "NotFound", message: `${what} not found` };
        else if (value === undefined)
          entry.state = { state: "failed", problem: "NotFound", message: `${what} has no key ${key}` };
        else if (Buffer.byteLength(value, "utf8") > limit)
          entry.state = {
            state: "failed",
            problem: "TooLarge",
            message: `${what} key ${key} is larger than ${limit} bytes`,
          };
        else {
          const fingerprint = createHash("sha256")
            .update(`${kind}/${namespace}/${name}/${key}\n${value}`)
            .digest("hex")
            .slice(0, 16);
          entry.state = { state: "ready", value: kind === "Secret" ? value.trim() : value, fingerprint };
        }
        this.settle(entry, before);
      },
      (error: unknown) => {
        const status = error instanceof TenantObjectError ? error.statusCode : 0;
        if (before.state === "ready" && status !== 403 && status !== 404) {
          // An API hiccup does not take away a value read a minute ago.
          this.settle(entry, before);
          return;
        }
        entry.state =
          status === 403
            ? {
                state: "failed",
                problem: "Forbidden",
                message: `the operator may not read ${what} (HTTP 403)`,
              }
            : status === 404
              ? { state: "failed", problem: "NotFound", message: `${what} not found` }
              : { state: "failed", problem: "Unavailable", message: `reading ${what} failed (HTTP ${status || "error"}); retrying` };
        this.schedule(() => this.options.onSettled?.([...entry.subscribers]), this.retryMs);
        this.settle(entry, before);
      },
    );
  }

  private settle(entry: Entry, before: TenantValueState): void {
    entry.inFlight = false;
    entry.loadedAtMs = this.now();
    const changed =
      before.state !== entry.state.state ||
      (before.state === "ready" && entry.state.state === "ready" && before.fingerprint !== entry.state.fingerprint) ||
      (before.state === "failed" && entry.state.state === "failed" && before.message !== entry.state.message);
    if (changed) this.options.onSettled?.([...entry.subscribers]);
  }
}

/** Decodes a Secret's `data` (base64) or a ConfigMap's `data`, as the getter returns them. */
export function decodeObjectData(
  kind: TenantObjectKind,
  object: { data?: Record<string, string> } | undefined,
): Readonly<Record<string, string>> | undefined {
  if (!object) return undefined;
  const data = object.data ?? {};
  if (kind === "ConfigMap") return data;
  const decoded: Record<string, string> = {};
  for (const [key, value] of Object.entries(data)) decoded[key] = Buffer.from(value, "base64").toString("utf8");
  return decoded;
}
