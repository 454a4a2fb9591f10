import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { KubeClient } from "../operator/runtime/kube-client.js";
import { LeaderElector, type Lease } from "../operator/runtime/leader.js";
import { testKubeConfig, uniqueNamespace, waitFor, type TestNamespace } from "./support/kube.js";

// Leader election on a real coordination.k8s.io/v1 Lease: of two electors one leads; when the leader dies
// without releasing, the other takes over once the lease lapses; a released lease changes hands at once.
// Short timings keep the test quick; the rule is the same at the 15/10/2 s defaults.

const timing = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 250 };

interface Candidate {
  elector: LeaderElector;
  leading: boolean;
  startedAt: number;
  signal: AbortSignal | undefined;
}

describe("LeaderElector on the real API server", () => {
  let ns: TestNamespace;
  let clients: KubeClient[] = [];
  let candidates: Candidate[] = [];

  beforeAll(async () => {
    ns = await uniqueNamespace(testKubeConfig(), "leader");
  });
  afterEach(async () => {
    await Promise.all(candidates.map((c) => c.elector.stop()));
    for (const c of clients) c.close();
    candidates = [];
    clients = [];
  });
  afterAll(async () => {
    await ns?.delete();
  });

  /** Each candidate has its own client (own connections), like separate operator pods. */
  function candidate(identity: string, leaseName: string): Candidate {
    const client = new KubeClient(testKubeConfig());
    clients.push(client);
    const c: Candidate = {
      elector: new LeaderElector(client, { namespace: ns.name, name: leaseName, identity, ...timing }),
      leading: false,
      startedAt: 0,
      signal: undefined,
    };
    void c.elector.run({
      onStartedLeading: (signal) => {
        c.leading = true;
        c.startedAt = Date.now();
        c.signal = signal;
      },
      onStoppedLeading: () => {
        c.leading = false;
      },
    });
    candidates.push(c);
    return c;
  }

  async function readLease(name: string): Promise<Lease> {
    const client = new KubeClient(testKubeConfig());
    try {
      return await client.get<Lease>(`/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases/${name}`);
    } finally {
      client.close();
    }
  }

  it("elects exactly one of two electors", async () => {
    const a = candidate("op-a", "one-leader");
    const b = candidate("op-b", "one-leader");
    await waitFor(() => a.leading || b.leading, { timeoutMs: 10_000, description: "a leader" });
    // Over several renew periods, never two leaders.
    for (let i = 0; i < 10; i++) {
      expect(Number(a.leading) + Number(b.leading)).toBe(1);
      await new Promise((r) => setTimeout(r, 200));
    }
    const lease = await readLease("one-leader");
    expect(lease.spec?.holderIdentity).toBe(a.leading ? "op-a" : "op-b");
    expect(lease.spec?.leaseDurationSeconds).toBe(3);
  });

  it("fails over within the lease duration (plus one retry) when the leader dies without releasing", async () => {
    const a = candidate("op-a", "crash");
    await waitFor(() => a.leading, { timeoutMs: 10_000, description: "op-a leads" });
    const b = candidate("op-b", "crash");
    await new Promise((r) => setTimeout(r, 1_000));
    expect(b.leading).toBe(false);
    const lastRenew = Date.parse((await readLease("crash")).spec?.renewTime ?? "");
    await a.elector.stop(); // a crash: no release, the lease still names op-a
    const crashedAt = Date.now();
    await waitFor(() => b.leading, { timeoutMs: 15_000, intervalMs: 20, description: "op-b takes over" });
    const failoverMs = b.startedAt - crashedAt;
    console.log(
      `leader failover after crash: ${failoverMs} ms (lease ${timing.leaseDurationMs} ms, retry ${timing.retryPeriodMs} ms, ` +
        `${b.startedAt - lastRenew} ms after the last renewal seen on the lease)`,
    );
    expect(failoverMs).toBeLessThanOrEqual(timing.leaseDurationMs + timing.retryPeriodMs * 2);
    // Not early: op-b waited for the lease to lapse.
    expect(failoverMs).toBeGreaterThan(timing.leaseDurationMs - timing.retryPeriodMs * 4 - 1000);
    const lease = await readLease("crash");
    expect(lease.spec?.holderIdentity).toBe("op-b");
    expect(lease.spec?.leaseTransitions).toBe(1);
  });

  it("hands over at once when the leader releases", async () => {
    const a = candidate("op-a", "release");
    await waitFor(() => a.leading, { timeoutMs: 10_000, description: "op-a leads" });
    const b = candidate("op-b", "release");
    await new Promise((r) => setTimeout(r, 500));
    const signal = a.signal!;
    expect(await a.elector.release()).toBe(true);
    expect(signal.aborted).toBe(true);
    const releasedAt = Date.now();
    await waitFor(() => b.leading, { timeoutMs: 10_000, intervalMs: 20, description: "op-b takes over" });
    const handoverMs = b.startedAt - releasedAt;
    console.log(`leader handover after release: ${handoverMs} ms (lease ${timing.leaseDurationMs} ms)`);
    expect(handoverMs).toBeLessThan(timing.leaseDurationMs / 2);
  });
});
