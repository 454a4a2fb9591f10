/* eslint-disable @typescript-eslint/no-explicit-any -- the malformed-journal cases mutate arbitrary JSON */
import { describe, expect, it } from "vitest";
import type { TenantStatus } from "../../operator/api/tenancy.js";
import {
  MAX_JOURNAL_BATCHES,
  type UsageJournal,
  appendBatch,
  emptyJournal,
  foldJournal,
  foldedSeq,
  isOrphan,
  journalFits,
  journalTenants,
  parseJournal,
  pruneJournal,
  serializeJournal,
} from "./journal.js";
import { type UsageDelta, replicasSharing } from "./meter.js";

const T0 = Date.parse("2026-12-02T10:00:00Z");
const STALE = 30_000;

const use = (requests: number, prompt: number, completion: number, model = "m"): UsageDelta => ({
  day: "2026-12-02", model, requests, promptTokens: prompt, completionTokens: completion, gpuSeconds: 0.5 * requests, costUSD: 0, gramsCO2: 0,
});
const batch = (usage: Record<string, UsageDelta[]>) => new Map(Object.entries(usage));
const totals = (s: TenantStatus | undefined) => {
  const m = s?.today?.models.find((e) => e.model === "m");
  return { requests: m?.requests ?? 0, tokens: (m?.promptTokens ?? 0) + (m?.completionTokens ?? 0) };
};

/** One fold as the shell does it: read the status, fold, write it back. */
const fold = (status: TenantStatus | undefined, journal: UsageJournal, tenant = "acme", own = true, now = T0) =>
  foldJournal(status, journal, tenant, now, STALE, own).status;
/** A new journal of `replica`, created at T0 (or `at`). */
const fresh = (replica: string, at = T0) => emptyJournal(replica, at);

describe("the usage journal folded into Tenant status", () => {
  it("adds each batch once: a restarted replica folding its journal again adds nothing, then only what is new", () => {
    let journal = appendBatch(fresh("gw-a"), batch({ acme: [use(2, 20, 10)] }), T0);
    journal = appendBatch(journal, batch({ acme: [use(1, 5, 5)] }), T0 + 100);
    const once = fold(undefined, journal);
    expect(totals(once)).toEqual({ requests: 3, tokens: 40 });
    expect(foldedSeq(once, "gw-a", T0)).toBe(2);
    // The process died before pruning its journal; the new one reads the same journal and folds again.
    const again = fold(once, parseJournal(serializeJournal(journal))!, "acme", true, T0 + 5_000);
    expect(totals(again)).toEqual({ requests: 3, tokens: 40 });
    const more = appendBatch(journal, batch({ acme: [use(4, 8, 8)] }), T0 + 6_000);
    expect(totals(fold(again, more))).toEqual({ requests: 7, tokens: 56 });
  });

  it("folds a journal once when its owner and a survivor fold it from the same status (the second PUT conflicts and recomputes)", () => {
    const journal = appendBatch(fresh("gw-a"), batch({ acme: [use(3, 30, 3)] }), T0);
    const read: TenantStatus | undefined = undefined;
    const byOwner = fold(read, journal, "acme", true);
    // The survivor's PUT was computed from `read` too; the resourceVersion refuses it, it reads byOwner and folds again.
    const bySurvivor = fold(byOwner, journal, "acme", false, T0 + 50);
    expect(totals(bySurvivor)).toEqual({ requests: 3, tokens: 33 });
    // A survivor that read an older journal (fewer batches) than the owner folded never moves the mark back.
    const newer = appendBatch(journal, batch({ acme: [use(1, 1, 1)] }), T0 + 100);
    const folded = fold(bySurvivor, newer);
    const stale = fold(folded, journal, "acme", false, T0 + 200);
    expect(totals(stale)).toEqual({ requests: 4, tokens: 35 });
    expect(foldedSeq(stale, "gw-a", T0)).toBe(2);
  });

  it("folds a gone replica's journal without counting that replica as sharing the tenant's limits", () => {
    const journal = appendBatch(fresh("gw-gone"), batch({ acme: [use(5, 50, 50)], other: [use(1, 1, 1)] }), T0);
    const status = fold(undefined, journal, "acme", false, T0 + 120_000);
    expect(totals(status)).toEqual({ requests: 5, tokens: 100 });
    expect(replicasSharing(status, "gw-b", T0 + 120_000, STALE)).toBe(1);
    expect(status.gateways?.find((g) => g.replica === "gw-gone")?.lastReportTime).toBe(new Date(T0).toISOString());
    // Folding it again (the survivor's delete of the journal failed, or a second survivor) adds nothing.
    expect(totals(fold(status, journal, "acme", false, T0 + 130_000))).toEqual({ requests: 5, tokens: 100 });
    expect(isOrphan(journal, "gw-b", T0 + 60_001, 60_000)).toBe(true);
    expect(isOrphan(journal, "gw-b", T0 + 59_000, 60_000)).toBe(false);
    expect(isOrphan(journal, "gw-gone", T0 + 600_000, 60_000)).toBe(false);
  });

  it("sums two replicas' journals exactly in any order of folds, repeated folds included", () => {
    let a = fresh("gw-a");
    let b = fresh("gw-b");
    let status: TenantStatus | undefined;
    let expected = 0;
    for (let i = 1; i <= 20; i++) {
      if (i % 2) a = appendBatch(a, batch({ acme: [use(1, i, 1)] }), T0 + i);
      else b = appendBatch(b, batch({ acme: [use(1, i, 1)] }), T0 + i);
      expected += i + 1;
      // Fold one or both, sometimes twice.
      if (i % 3 === 0) status = fold(status, a);
      if (i % 4 === 0) status = fold(fold(status, b), b);
    }
    status = fold(fold(fold(status, b), a), a);
    expect(totals(status)).toEqual({ requests: 20, tokens: expected });
    expect(replicasSharing(status, "gw-a", T0 + 1000, STALE)).toBe(2);
  });

  it("starts a recreated journal's batches over under its later epoch, and a slow survivor folding the deleted one adds nothing", () => {
    const first = appendBatch(appendBatch(fresh("gw-a"), batch({ acme: [use(1, 1, 1)] }), T0), batch({ acme: [use(1, 1, 1)] }), T0);
    const status = fold(undefined, first);
    // The journal was folded and deleted; the replica creates a new one (a later epoch), numbered from 1.
    const recreated = appendBatch(fresh("gw-a", T0 + 1000), batch({ acme: [use(2, 2, 2)] }), T0 + 1000);
    expect(foldedSeq(status, "gw-a", T0 + 1000)).toBe(0);
    const both = fold(status, recreated);
    expect(totals(both)).toEqual({ requests: 4, tokens: 8 });
    // A second survivor read the first journal before it was deleted and folds it only now.
    expect(foldedSeq(both, "gw-a", T0)).toBe(Number.POSITIVE_INFINITY);
    const late = foldJournal(both, first, "acme", T0 + 2000, STALE, false);
    expect(late.deltas).toEqual([]);
    expect(totals(late.status)).toEqual({ requests: 4, tokens: 8 });
    expect(foldedSeq(late.status, "gw-a", T0 + 1000)).toBe(1);
    // An id of an older gateway version is no mark.
    expect(foldedSeq({ gateways: [{ replica: "gw-a", lastReportTime: new Date(T0).toISOString(), lastReportId: "1a2b3c4d-7" }] }, "gw-a", T0)).toBe(0);
  });

  it("prunes what each tenant's mark covers and keeps the rest", () => {
    let journal = appendBatch(fresh("gw-a"), batch({ acme: [use(1, 1, 1)], beta: [use(1, 1, 1)] }), T0);
    journal = appendBatch(journal, batch({ acme: [use(1, 1, 1)] }), T0);
    const pruned = pruneJournal(journal, new Map([["acme", 1]]));
    expect(pruned.batches).toEqual([{ seq: 1, tenants: { beta: [use(1, 1, 1)] } }, { seq: 2, tenants: { acme: [use(1, 1, 1)] } }]);
    expect(pruneJournal(pruned, new Map([["acme", 2], ["beta", 1]])).batches).toEqual([]);
    expect(pruneJournal(journal, new Map())).toBe(journal);
    expect(pruned.seq).toBe(2);
    expect(journalTenants(journal).sort()).toEqual(["acme", "beta"]);
  });

  it("reads back what it writes and refuses a malformed or oversized journal whole", () => {
    const journal = appendBatch(fresh("gw-a"), batch({ acme: [use(1, 2, 3)] }), T0);
    expect(parseJournal(serializeJournal(journal))).toEqual(journal);
    const broken = (patch: (j: Record<string, any>) => void) => {
      const j = JSON.parse(serializeJournal(journal)) as Record<string, any>;
      patch(j);
      return parseJournal(JSON.stringify(j));
    };
    expect(broken((j) => (j.batches[0].tenants.acme[0].promptTokens = -1))).toBeUndefined();
    expect(broken((j) => (j.batches[0].tenants.acme[0].gpuSeconds = "1"))).toBeUndefined();
    expect(broken((j) => (j.batches[0].seq = 7))).toBeUndefined(); // beyond the journal's count
    expect(broken((j) => j.batches.push({ seq: 1, tenants: {} }))).toBeUndefined(); // not increasing
    expect(broken((j) => (j.batches[0].tenants["Not A Name"] = []))).toBeUndefined();
    expect(broken((j) => (j.replica = "x".repeat(64)))).toBeUndefined();
    expect(parseJournal("{")).toBeUndefined();
    expect(parseJournal(undefined)).toBeUndefined();
    let big = fresh("gw-a");
    for (let i = 0; i <= MAX_JOURNAL_BATCHES; i++) big = appendBatch(big, batch({ acme: [use(1, 1, 1)] }), T0);
    expect(journalFits(big)).toBe(false);
    expect(parseJournal(serializeJournal(big))).toBeUndefined();
    expect(appendBatch(journal, new Map([["acme", []]]), T0)).toBe(journal);
  });
});
