/**
 * Session affinity: the pod each session key last went to. Bounded: keys are stored as 53-bit hashes
 * (a hostile client's long header costs nothing), at most `maxSessions` entries (least recently used
 * evicted), and an entry older than `ttlMs` no longer counts.
 */
import { chainHash } from "./prefix.js";

export interface SessionTableOptions {
  maxSessions: number;
  ttlMs: number;
}

export const DEFAULT_SESSION_TABLE_OPTIONS: SessionTableOptions = {
  maxSessions: 100_000,
  ttlMs: 30 * 60_000,
};

export class SessionTable {
  readonly options: SessionTableOptions;
  private readonly entries = new Map<number, { pod: string; atMs: number }>();

  constructor(options: Partial<SessionTableOptions> = {}) {
    this.options = { ...DEFAULT_SESSION_TABLE_OPTIONS, ...options };
    if (!(this.options.maxSessions >= 1)) throw new Error("SessionTable needs maxSessions >= 1");
  }

  private static key(sessionKey: string): number {
    return chainHash(0x5e55, sessionKey, 0, Math.min(sessionKey.length, 4096));
  }

  /** The pod the session last went to, if within the TTL. */
  lookup(sessionKey: string, nowMs: number): string | undefined {
    const e = this.entries.get(SessionTable.key(sessionKey));
    if (e === undefined || nowMs - e.atMs > this.options.ttlMs) return undefined;
    return e.pod;
  }

  record(sessionKey: string, pod: string, nowMs: number): void {
    const k = SessionTable.key(sessionKey);
    this.entries.delete(k);
    this.entries.set(k, { pod, atMs: nowMs });
    while (this.entries.size > this.options.maxSessions) {
      this.entries.delete(this.entries.keys().next().value as number);
    }
  }

  size(): number {
    return this.entries.size;
  }
}
