import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KubeClient } from "./kube-client.js";
import { LeaderElector, decideLeaseAction, type Lease } from "./leader.js";
import { FakeApiServer } from "./testing/fake-apiserver.js";

describe("decideLeaseAction", () => {
  const now = 100_000;
  it("creates a missing lease, renews its own, takes a free one", () => {
    expect(decideLeaseAction(undefined, "me", now, 0, 15_000)).toBe("create");
    expect(decideLeaseAction({ holderIdentity: "me" }, "me", now, now, 15_000)).toBe("renew");
    expect(decideLeaseAction({ holderIdentity: "" }, "me", now, now, 15_000)).toBe("take");
    expect(decideLeaseAction({ holderIdentity: null }, "me", now, now, 15_000)).toBe("take");
  });
  it("waits for another holder's lease to lapse on its own observation clock", () => {
    const lease = { holderIdentity: "other", leaseDurationSeconds: 15 };
    expect(decideLeaseAction(lease, "me", now, now - 14_999, 15_000)).toBe("wait");
    expect(decideLeaseAction(lease, "me", now, now - 15_000, 15_000)).toBe("take");
  });
  it("uses the holder's leaseDurationSeconds over its own default", () => {
    const released = { holderIdentity: "other", leaseDurationSeconds: 1 };
    expect(decideLeaseAction(released, "me", now, now - 1_000, 15_000)).toBe("take");
  });
});

const timing = { leaseDurationMs: 1_000, renewDeadlineMs: 600, retryPeriodMs: 100 };
const leasePath = "/apis/coordination.k8s.io/v1/namespaces/sys/leases/op";

describe("LeaderElector against a fake API server", () => {
  let fake: FakeApiServer;
  let client: KubeClient;
  let electors: LeaderElector[];

  beforeEach(async () => {
    fake = new FakeApiServer();
    await fake.start();
    client = new KubeClient(fake.kubeConfig(), { requestTimeoutMs: 1000 });
    electors = [];
  });
  afterEach(async () => {
    await Promise.all(electors.map((e) => e.stop()));
    client.close();
    await fake.stop();
  });

  function candidate(identity: string) {
    const elector = new LeaderElector(client, { namespace: "sys", name: "op", identity, ...timing });
    electors.push(elector);
    const state = {
      leading: false,
      startedAt: 0,
      stoppedAt: 0,
      signal: undefined as AbortSignal | undefined,
      leaders: [] as string[],
    };
    const done = elector.run({
      onStartedLeading: (signal) => {
        state.leading = true;
        state.startedAt = Date.now();
        state.signal = signal;
      },
      onStoppedLeading: () => {
        state.leading = false;
        state.stoppedAt = Date.now();
      },
      onNewLeader: (id) => state.leaders.push(id),
    });
    return { elector, state, done };
  }

  async function waitFor(cond: () => boolean, timeoutMs: number, what: string) {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it("elects exactly one of two candidates and records it on the lease", async () => {
    const a = candidate("a");
    const b = candidate("b");
    await waitFor(() => a.state.leading || b.state.leading, 2000, "a leader");
    await new Promise((r) => setTimeout(r, 400));
    expect([a.state.leading, b.state.leading].filter(Boolean)).toHaveLength(1);
    const leader = a.state.leading ? "a" : "b";
    const lease = fake.getObject(leasePath) as Lease;
    expect(lease.spec?.holderIdentity).toBe(leader);
    expect(lease.spec?.leaseDurationSeconds).toBe(1);
    expect(lease.spec?.renewTime).toMatch(/\.\d{6}Z$/);
    expect(lease.spec?.leaseTransitions).toBe(0);
    expect((a.state.leading ? b : a).state.leaders).toContain(leader);
  });

  it("keeps renewing: the leader stays leader well past the lease duration", async () => {
    const a = candidate("a");
    await waitFor(() => a.state.leading, 2000, "leader");
    const firstRenew = (fake.getObject(leasePath) as Lease).spec?.renewTime;
    const b = candidate("b");
    await new Promise((r) => setTimeout(r, 2_500));
    expect(a.state.leading).toBe(true);
    expect(b.state.leading).toBe(false);
    expect((fake.getObject(leasePath) as Lease).spec?.renewTime).not.toBe(firstRenew);
  });

  it("fails over after the lease duration when the leader dies without releasing", async () => {
    const a = candidate("a");
    await waitFor(() => a.state.leading, 2000, "first leader");
    const b = candidate("b");
    await new Promise((r) => setTimeout(r, 300));
    await a.elector.stop(); // a crash: the lease is left as it was
    const crashedAt = Date.now();
    await waitFor(() => b.state.leading, 3000, "failover");
    const failoverMs = b.state.startedAt - crashedAt;
    // Not before the lease could have lapsed, and within lease duration + one (jittered) retry.
    expect(failoverMs).toBeGreaterThanOrEqual(timing.leaseDurationMs - timing.retryPeriodMs * 2);
    expect(failoverMs).toBeLessThanOrEqual(timing.leaseDurationMs + timing.retryPeriodMs * 3);
    const lease = fake.getObject(leasePath) as Lease;
    expect(lease.spec?.holderIdentity).toBe("b");
    expect(lease.spec?.leaseTransitions).toBe(1);
  });

  it("hands over at once on release()", async () => {
    const a = candidate("a");
    await waitFor(() => a.state.leading, 2000, "first leader");
    const b = candidate("b");
    await new Promise((r) => setTimeout(r, 300));
    const signal = a.state.signal!;
    expect(await a.elector.release()).toBe(true);
    expect(signal.aborted).toBe(true);
    expect(a.state.leading).toBe(false);
    const releasedAt = Date.now();
    await waitFor(() => b.state.leading, 2000, "handover");
    expect(b.state.startedAt - releasedAt).toBeLessThan(timing.leaseDurationMs / 2);
  });

  it("gives up leadership when it cannot renew within the renew deadline", async () => {
    const a = candidate("a");
    await waitFor(() => a.state.leading, 2000, "leader");
    const signal = a.state.signal!;
    fake.failNext("PUT", /leases\/op$/, 500, "InternalError", 1000);
    const brokeAt = Date.now();
    await a.done;
    expect(signal.aborted).toBe(true);
    expect(a.state.leading).toBe(false);
    // It stops before its lease could lapse for anyone else.
    expect(a.state.stoppedAt - brokeAt).toBeLessThan(timing.leaseDurationMs);
    expect(a.state.stoppedAt - brokeAt).toBeGreaterThanOrEqual(
      timing.renewDeadlineMs - timing.retryPeriodMs * 2,
    );
  });

  it("campaigns again after losing the lease, and leads a new term once the API answers again", async () => {
    const elector = new LeaderElector(client, { namespace: "sys", name: "op", identity: "a", ...timing });
    electors.push(elector);
    const terms: AbortSignal[] = [];
    let stops = 0;
    const running = elector.runUntilStopped({
      onStartedLeading: (signal) => void terms.push(signal),
      onStoppedLeading: () => void (stops += 1),
    });
    await waitFor(() => terms.length === 1, 2000, "first term");
    // The API server fails every lease write for longer than the renew deadline (an outage).
    fake.failNext("PUT", /leases\/op$/, 503, "ServiceUnavailable", 12);
    await waitFor(() => stops === 1, 3000, "leadership lost");
    expect(terms[0]!.aborted).toBe(true);
    expect(elector.isLeader).toBe(false);
    await waitFor(() => terms.length === 2, 5000, "a second term after the outage");
    expect(terms[1]!.aborted).toBe(false);
    expect(elector.isLeader).toBe(true);
    expect(elector.termsLed).toBe(2);
    expect(elector.isProgressing()).toBe(true);
    await elector.stop();
    await running; // stop() ends the loop for good
    expect(terms[1]!.aborted).toBe(true);
  });

  it("reports a stuck election loop as not progressing", async () => {
    const elector = new LeaderElector(client, { namespace: "sys", name: "op", identity: "a", ...timing });
    electors.push(elector);
    void elector.runUntilStopped({ onStartedLeading: () => {}, onStoppedLeading: () => {} });
    await waitFor(() => elector.isLeader, 2000, "leader");
    expect(elector.isProgressing()).toBe(true);
    expect(elector.isProgressing(Date.now() + 2 * timing.leaseDurationMs + 1_000)).toBe(false);
  });
});
