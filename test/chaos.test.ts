/**
 * CI's share of the chaos suite (sim/chaos/scenarios.ts; the full run is `npm run chaos`: 100
 * ModelDeployments, 20 operator kills, API server and etcd down 5 s and 25 s, 20 s fault phases).
 * Scaled down here to keep CI short: 16 ModelDeployments, 4 kills, one outage of each longer than the
 * lease (churn before and after it, not across it: see churnDuringOutage), 6 s fault phases. The operators
 * here run with a 6 s lease (SHORT_LEASE_ENV; the full run keeps client-go's 15 s), so an outage of 8 s is
 * longer than the lease: the operator loses leadership during it and must campaign again.
 * This file starts its own control plane, because it kills and restarts
 * kube-apiserver and etcd, which the shared cluster of the other files must not see.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeClient } from "../operator/runtime/kube-client.js";
import { benchNodePools } from "../sim/bench/operator-scale-stats.js";
import { startLocalCluster, type LocalCluster } from "../sim/cluster/cluster.js";
import { prng } from "../sim/prng.js";
import { fleetIsClean } from "../sim/chaos/invariants.js";
import {
  apiFaults,
  controlPlaneRestarts,
  failoverDuringScaleUp,
  formatChaosTable,
  garbageCollectorDown,
  operatorKills,
  SHORT_LEASE_ENV,
  type ChaosContext,
  type ChaosRow,
} from "../sim/chaos/scenarios.js";
import { engineFaults } from "../sim/chaos/engine-faults.js";
import { ensureLeaderWorkerSetCrd, ensureModelDeploymentCrd } from "./support/crds.js";

const MODEL_DEPLOYMENTS = 16;
/** Longer than the 6 s lease of SHORT_LEASE_ENV (kube-apiserver's own restart adds a few seconds more). */
const OUTAGE_MS = 8_000;
const seed = Number(process.env.GPUFLEET_CHAOS_SEED ?? Date.now() % 100_000);
let dir: string;
let cluster: LocalCluster;
let context: ChaosContext;
const rows: ChaosRow[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "gpufleet-chaos-test-"));
  cluster = await startLocalCluster({ parentDir: dir, nodePools: benchNodePools(4), log: () => undefined });
  await ensureModelDeploymentCrd(cluster.kubeConfig);
  // Stored only (no LWS controller): the backstop must collect a dead ModelDeployment's LeaderWorkerSet.
  await ensureLeaderWorkerSetCrd(cluster.kubeConfig);
  context = {
    cluster,
    client: new KubeClient(cluster.kubeConfig, { userAgent: "gpufleet-chaos" }),
    dir,
    random: prng(seed),
    say: (line) => process.stderr.write(`[chaos] ${line}\n`),
    convergeTimeoutMs: 120_000,
    operatorEnv: { ...SHORT_LEASE_ENV },
  };
}, 300_000);

afterAll(async () => {
  process.stderr.write(
    `\nchaos (CI share, seed ${seed}: GPUFLEET_CHAOS_SEED=${seed} replays it)\n${formatChaosTable(rows)}\n`,
  );
  context?.client.close();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const expectClean = (row: ChaosRow, modelDeployments = MODEL_DEPLOYMENTS) => {
  rows.push(row);
  expect(row.check.problems).toEqual([]);
  expect(fleetIsClean(row.check)).toBe(true);
  expect(row.check.objectsChecked).toBeGreaterThan(modelDeployments);
  for (const seconds of row.convergeSeconds) expect(seconds).toBeDefined();
};

describe("chaos", () => {
  it("loses, duplicates and orphans nothing when the operator is SIGKILLed at random points under churn", async () => {
    expectClean(
      await operatorKills(context, { modelDeployments: MODEL_DEPLOYMENTS, kills: 4, maxGapMs: 2000, churnPauseMs: 200 }),
    );
  }, 300_000);

  it("converges after kube-apiserver is down longer than the lease, with two replicas", async () => {
    expectClean(
      await controlPlaneRestarts(context, {
        component: "kube-apiserver",
        downMs: [OUTAGE_MS],
        modelDeployments: MODEL_DEPLOYMENTS,
        replicas: 2,
        churnDuringOutage: false,
      }),
    );
  }, 300_000);

  it("converges after etcd is down longer than the lease", async () => {
    expectClean(
      await controlPlaneRestarts(context, {
        component: "etcd",
        downMs: [OUTAGE_MS],
        modelDeployments: MODEL_DEPLOYMENTS,
        replicas: 1,
      }),
    );
  }, 300_000);

  it("removes the objects of deleted ModelDeployments itself (Deployment, Service, PDB, LeaderWorkerSet, history ConfigMap) when the garbage collector does not (kube-controller-manager stopped)", async () => {
    const row = await garbageCollectorDown(context, { modelDeployments: 6, deletes: 3, sweepSeconds: 2 });
    expectClean(row, 6);
  }, 300_000);

  it("scales each ModelDeployment up exactly once when the leader is SIGKILLed during a wave of scale-ups", async () => {
    expectClean(await failoverDuringScaleUp(context, { modelDeployments: 6, runs: 1 }), 6);
  }, 300_000);

  it("holds the autoscaler on engines whose /metrics hang, are garbage, huge or redirect (following nothing, stalling nothing), and the gateway ends a stream cut by a dying engine with an error and routes around it", async () => {
    const row = await engineFaults(context, { windowSeconds: 5, requestsAfterDeath: 6 });
    expectClean(row, 3);
  }, 300_000);

  it("honours Retry-After, does not hot-loop on 500s or cut watches, and converges through a faulty API", async () => {
    const row = await apiFaults(context, { modelDeployments: MODEL_DEPLOYMENTS, phaseSeconds: 6 });
    expectClean(row);
    const phase = (prefix: string) => row.phases?.find((p) => p.name.startsWith(prefix));
    const baseline = phase("no faults")!;
    const throttled = phase("30% 429")!;
    expect(throttled.retryFollowUps).toBeGreaterThan(0);
    expect(throttled.retriesTooEarly).toBe(0);
    // No hot loop: failing requests must not multiply the request rate.
    for (const name of ["30% 429", "30% 500", "watches cut"])
      expect(phase(name)!.perSecond, name).toBeLessThan(Math.max(4 * baseline.perSecond, 30));
  }, 300_000);
});
