/**
 * The usage journal: each gateway replica's write-ahead record, in the cluster, of the usage it metered
 * and has not yet seen added to Tenant status. One ConfigMap per replica and tenant namespace
 * (`gpufleet-usage-<replica>`), written only by that replica (a PUT with its resourceVersion): a list of
 * numbered batches, each the usage per Tenant of that namespace since the batch before. A restarted
 * replica of the same name finds its journal and folds what is left of it; a journal whose replica
 * stopped writing (its pod is gone) is folded by any other replica and then deleted.
 *
 * A fold adds a journal's batches to one Tenant's status and records, in that replica's
 * `status.gateways[].lastReportId`, the journal's epoch (when its owner created it, ms) and the last
 * batch number folded (`<epoch>/<seq>`), in the same PUT (the Tenant's resourceVersion makes it all or
 * nothing). A batch at or below the mark is never added again, whoever folds and however often: the fold
 * is idempotent, and a survivor and the owner (or two survivors) may fold the same journal at once. A
 * replica creates a new journal only once its old one is gone, and a journal is deleted only once it is
 * folded everywhere: so a recreated journal (a later epoch) numbers its batches from 1 again, and a mark
 * of a later epoch than a journal's says that journal is folded already (a slow survivor still folding
 * a deleted journal adds nothing). The functions here decide; tenancy.ts does the I/O. Pure.
 */
import { MAX_STATUS_MODELS, type TenantStatus } from "../../operator/api/tenancy.js";
import { type UsageDelta, mergeUsage } from "./meter.js";

/** Label of a journal ConfigMap (the gateway lists only these). */
export const JOURNAL_LABEL = "gpufleet.io/usage-journal";
/** The ConfigMap key holding the journal (JSON). */
export const JOURNAL_KEY = "journal.json";
/** Most batches a journal holds; beyond it usage waits in memory until folds make room. */
export const MAX_JOURNAL_BATCHES = 256;
/** Largest journal written (a ConfigMap holds at most 1 MiB). */
export const MAX_JOURNAL_BYTES = 512 * 1024;
/** Tenants in one batch (a namespace's Tenants with usage in one journal interval). */
export const MAX_BATCH_TENANTS = 1024;
/** Deltas per tenant in one batch: every model of two days (a batch can straddle midnight). */
export const MAX_TENANT_DELTAS = 2 * (MAX_STATUS_MODELS + 1);

export interface JournalBatch {
  seq: number;
  /** Tenant name (in the journal's namespace) -> its usage in this batch. */
  tenants: Record<string, UsageDelta[]>;
}

export interface UsageJournal {
  /** The replica writing it (its pod name). */
  replica: string;
  /** When the replica created this journal (ms since the epoch): a later journal of it has a larger one. */
  epoch: number;
  /** Number of the last batch ever added (batches are numbered 1, 2, ... per journal). */
  seq: number;
  /** Number of the last write (each write of the owner adds one: tells a landed write from a lost one). */
  write: number;
  /** When the owner last wrote it (a journal silent for long is an orphan). */
  writeTime: string;
  /** The writing process (random, per start): tells its own landed write from one of an earlier process. */
  boot?: string;
  batches: JournalBatch[];
}

/** Name of a replica's journal ConfigMap (a replica name is a DNS label: at most 78 characters). */
export function journalName(replica: string): string {
  return `gpufleet-usage-${replica}`;
}

/** A new journal of `replica`, created at `now`. */
export function emptyJournal(replica: string, now: number): UsageJournal {
  return { replica, epoch: now, seq: 0, write: 0, writeTime: new Date(now).toISOString(), batches: [] };
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const count = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const amount = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0 && v < 1e15;

function parseDelta(value: unknown): UsageDelta | undefined {
  if (!value || typeof value !== "object") return undefined;
  const d = value as Record<string, unknown>;
  if (typeof d.day !== "string" || !DAY.test(d.day)) return undefined;
  if (typeof d.model !== "string" || d.model.length === 0 || d.model.length > 253) return undefined;
  if (!count(d.requests) || !count(d.promptTokens) || !count(d.completionTokens)) return undefined;
  if (!amount(d.gpuSeconds) || !amount(d.costUSD) || !amount(d.gramsCO2)) return undefined;
  return {
    day: d.day,
    model: d.model,
    requests: d.requests,
    promptTokens: d.promptTokens,
    completionTokens: d.completionTokens,
    gpuSeconds: d.gpuSeconds,
    costUSD: d.costUSD,
    gramsCO2: d.gramsCO2,
  };
}

/**
 * A journal from its ConfigMap text; undefined when it is missing, too large or malformed in any part
 * (a journal is all or nothing: a partly read one could fold part of a batch).
 */
export function parseJournal(text: string | undefined): UsageJournal | undefined {
  if (text === undefined || text.length > MAX_JOURNAL_BYTES) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!raw || typeof raw !== "object") return undefined;
  const j = raw as Record<string, unknown>;
  if (typeof j.replica !== "string" || j.replica.length > 63 || !DNS_LABEL.test(j.replica)) return undefined;
  if (!count(j.epoch) || !count(j.seq) || !count(j.write) || typeof j.writeTime !== "string" || Number.isNaN(Date.parse(j.writeTime)))
    return undefined;
  if (!Array.isArray(j.batches) || j.batches.length > MAX_JOURNAL_BATCHES) return undefined;
  const batches: JournalBatch[] = [];
  let last = 0;
  for (const b of j.batches as unknown[]) {
    if (!b || typeof b !== "object") return undefined;
    const { seq, tenants } = b as { seq?: unknown; tenants?: unknown };
    // Strictly increasing, none beyond the journal's count.
    if (!count(seq) || seq <= last || seq > j.seq || !tenants || typeof tenants !== "object" || Array.isArray(tenants))
      return undefined;
    last = seq;
    const entries = Object.entries(tenants as Record<string, unknown>);
    if (entries.length > MAX_BATCH_TENANTS) return undefined;
    const parsed: Record<string, UsageDelta[]> = {};
    for (const [tenant, deltas] of entries) {
      if (tenant.length > 63 || !DNS_LABEL.test(tenant) || !Array.isArray(deltas) || deltas.length > MAX_TENANT_DELTAS)
        return undefined;
      const list: UsageDelta[] = [];
      for (const d of deltas as unknown[]) {
        const delta = parseDelta(d);
        if (!delta) return undefined;
        list.push(delta);
      }
      parsed[tenant] = list;
    }
    batches.push({ seq, tenants: parsed });
  }
  if (j.boot !== undefined && (typeof j.boot !== "string" || j.boot.length > 36)) return undefined;
  return {
    replica: j.replica,
    epoch: j.epoch,
    seq: j.seq,
    write: j.write,
    writeTime: j.writeTime,
    ...(typeof j.boot === "string" ? { boot: j.boot } : {}),
    batches,
  };
}

export function serializeJournal(journal: UsageJournal): string {
  return JSON.stringify(journal);
}

/** Whether a journal may be written: within the batch and byte bounds. */
export function journalFits(journal: UsageJournal): boolean {
  return journal.batches.length <= MAX_JOURNAL_BATCHES && Buffer.byteLength(serializeJournal(journal)) <= MAX_JOURNAL_BYTES;
}

/** The journal as its owner writes it next: one write more, stamped `now`. */
export function touched(journal: UsageJournal, now: number): UsageJournal {
  return { ...journal, write: journal.write + 1, writeTime: new Date(now).toISOString() };
}

/**
 * The journal with `usage` (tenant name -> deltas) as its next batch, written at `now`; the journal
 * unchanged when there is no usage.
 */
export function appendBatch(journal: UsageJournal, usage: ReadonlyMap<string, readonly UsageDelta[]>, now: number): UsageJournal {
  const tenants: Record<string, UsageDelta[]> = {};
  for (const [tenant, deltas] of usage) if (deltas.length > 0) tenants[tenant] = deltas.map((d) => ({ ...d }));
  if (Object.keys(tenants).length === 0) return journal;
  const seq = journal.seq + 1;
  return touched({ ...journal, seq, batches: [...journal.batches, { seq, tenants }] }, now);
}

/** The mark a fold leaves in `status.gateways[].lastReportId`: the journal's epoch and its last batch folded. */
export function foldMark(epoch: number, seq: number): string {
  return `${epoch}/${seq}`;
}

/**
 * How much of `replica`'s journal of `epoch` the status holds: the last batch folded (0: none), or
 * Infinity when the mark is of a later journal of that replica (this one was folded whole before it was
 * deleted). A mark of no journal (an id of an older gateway version) counts as none.
 */
export function foldedSeq(status: TenantStatus | undefined, replica: string, epoch: number): number {
  const id = status?.gateways?.find((g) => g.replica === replica)?.lastReportId;
  const match = /^(\d{1,16})\/(\d{1,16})$/.exec(id ?? "");
  if (!match) return 0;
  const markEpoch = Number(match[1]);
  if (markEpoch > epoch) return Number.POSITIVE_INFINITY;
  return markEpoch === epoch ? Number(match[2]) : 0;
}

/** Tenants with usage in the journal. */
export function journalTenants(journal: UsageJournal): string[] {
  const names = new Set<string>();
  for (const batch of journal.batches) for (const tenant of Object.keys(batch.tenants)) names.add(tenant);
  return [...names];
}

export interface Fold {
  /** The status with the journal's unfolded batches of the tenant added and the mark moved. */
  status: TenantStatus;
  /** What was added (empty: the status already had every batch; nothing to write for usage). */
  deltas: UsageDelta[];
  /** The mark's batch number: every batch up to it is in `status` now. */
  upTo: number;
}

/**
 * Adds to a Tenant's `status` the batches of `journal` for `tenant` that the status does not hold yet,
 * and moves the journal replica's mark to the journal's last batch. `own`: the folding replica is the
 * journal's (its report time is now); a survivor folding an orphan leaves the report time at the
 * journal's last write, so the gone replica does not count as sharing the tenant's limits. Pure.
 */
export function foldJournal(
  status: TenantStatus | undefined,
  journal: UsageJournal,
  tenant: string,
  now: number,
  staleMs: number,
  own: boolean,
): Fold {
  const folded = foldedSeq(status, journal.replica, journal.epoch);
  if (folded === Number.POSITIVE_INFINITY) return { status: structuredClone(status ?? {}), deltas: [], upTo: journal.seq };
  const deltas: UsageDelta[] = [];
  for (const batch of journal.batches) if (batch.seq > folded) deltas.push(...(batch.tenants[tenant] ?? []));
  const upTo = Math.max(folded, journal.seq);
  const reportTime = own ? now : Math.min(now, Date.parse(journal.writeTime));
  return {
    status: mergeUsage(status, deltas, journal.replica, now, staleMs, foldMark(journal.epoch, upTo), reportTime),
    deltas,
    upTo,
  };
}

/**
 * The journal without what is known to be in Tenant status: each tenant's part of every batch at or
 * below its mark (`folded`: tenant name -> batch number), and batches left empty. Pure.
 */
export function pruneJournal(journal: UsageJournal, folded: ReadonlyMap<string, number>): UsageJournal {
  const batches: JournalBatch[] = [];
  for (const batch of journal.batches) {
    const tenants: Record<string, UsageDelta[]> = {};
    for (const [tenant, deltas] of Object.entries(batch.tenants))
      if (batch.seq > (folded.get(tenant) ?? 0)) tenants[tenant] = deltas;
    if (Object.keys(tenants).length > 0) batches.push({ seq: batch.seq, tenants });
  }
  return batches.length === journal.batches.length && batches.every((b, i) => Object.keys(b.tenants).length === Object.keys(journal.batches[i]!.tenants).length)
    ? journal
    : { ...journal, batches };
}

/** Whether another replica's journal is an orphan: its owner has not written it for `orphanAfterMs`. */
export function isOrphan(journal: UsageJournal, self: string, now: number, orphanAfterMs: number): boolean {
  return journal.replica !== self && now - Date.parse(journal.writeTime) > orphanAfterMs;
}
