/**
 * The chaos suite: `npm run chaos [-- --model-deployments 100 --kills 20 --seed 1 --only kill,api,etcd,proxy,gc,failover,engines]`.
 *
 * Starts its own local control plane (KWOK GPU nodes; own temp dir, stopped at the end even on error),
 * runs the scenarios of sim/chaos/scenarios.ts with the operator as real processes, prints the table
 * (fault, runs, objects checked, lost/duplicate/orphaned/stale, time to converge; for the restarts, the
 * operator's then the gateway's per outage) and exits 1 if any
 * row is not clean or did not converge within the bound. Bounded: every wait has a deadline.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { KubeClient } from "../../operator/runtime/kube-client.js";
import { ensureLeaderWorkerSetCrd, ensureModelDeploymentCrd } from "../../test/support/crds.js";
import { benchNodePools, GPUS_PER_BENCH_NODE } from "../bench/operator-scale-stats.js";
import { startLocalCluster } from "../cluster/cluster.js";
import { sampleLoadAverage } from "../load-average.js";
import { prng } from "../prng.js";
import { fleetIsClean } from "./invariants.js";
import {
  apiFaults,
  controlPlaneRestarts,
  EMPTY_CHECK,
  failoverDuringScaleUp,
  formatChaosTable,
  garbageCollectorDown,
  operatorKills,
  type ChaosContext,
  type ChaosRow,
} from "./scenarios.js";
import { engineFaults } from "./engine-faults.js";

/**
 * KWOK's pod IPs for this cluster: not the tests' 127.1.0.0/16 nor the operator bench's 127.20.0.0/16. The
 * simulated engines listen on the pod IPs, so a chaos run beside the tests on the same range put two
 * engines of different models behind one address, and the gateways of both answered 404 for models whose
 * pod was Ready (session 10: 13 models in the CI share's etcd case, GPUFLEET_CHAOS_SEED=70001).
 */
const CHAOS_POD_CIDR = "127.21.0.0/16";

const say = (line: string) => process.stderr.write(`[chaos] ${line}\n`);

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      "model-deployments": { type: "string", default: "100" },
      kills: { type: "string", default: "20" },
      seed: { type: "string", default: String(Date.now() % 100_000) },
      only: { type: "string", default: "kill,api,etcd,proxy,gc,failover,engines" },
      "converge-timeout": { type: "string", default: "180" },
      "keep-dir": { type: "boolean", default: false },
    },
  });
  const count = Number(values["model-deployments"]);
  const kills = Number(values.kills);
  const seed = Number(values.seed);
  const only = new Set(values.only.split(","));
  say(`seed ${seed} (replay with --seed ${seed}); ${count} ModelDeployments, ${kills} operator kills`);
  const dir = mkdtempSync(join(tmpdir(), "gpufleet-chaos-"));
  const cluster = await startLocalCluster({
    parentDir: dir,
    keepDir: values["keep-dir"],
    nodePools: benchNodePools(Math.ceil((count * 1.3) / GPUS_PER_BENCH_NODE) + 1),
    podCidr: CHAOS_POD_CIDR,
    log: say,
  });
  const client = new KubeClient(cluster.kubeConfig, { userAgent: "gpufleet-chaos" });
  const context: ChaosContext = {
    cluster,
    client,
    dir,
    random: prng(seed),
    say,
    convergeTimeoutMs: Number(values["converge-timeout"]) * 1000,
  };
  const rows: ChaosRow[] = [];
  const load = sampleLoadAverage(5_000);
  try {
    await ensureModelDeploymentCrd(cluster.kubeConfig);
    await ensureLeaderWorkerSetCrd(cluster.kubeConfig);
    const step = async (name: string, scenario: () => Promise<ChaosRow>) => {
      say(`scenario: ${name}`);
      load.phase("load average (1 min)");
      const startedAt = Date.now();
      let row: ChaosRow;
      try {
        row = await scenario();
      } catch (error) {
        // A scenario that throws fails the suite (a row that never converged), and the others still run.
        const message = error instanceof Error ? error.message : String(error);
        say(`${name} FAILED: ${error instanceof Error ? (error.stack ?? message) : message}`);
        row = { fault: name, runs: 0, check: { ...EMPTY_CHECK, problems: [message.slice(0, 500)] }, convergeSeconds: [undefined], notes: ["the scenario threw"] };
      }
      // Every time in the row is mostly waiting for CPU on a shared machine: say how shared it was.
      row = { ...row, notes: [...row.notes, `${load.current()} over ${((Date.now() - startedAt) / 1000).toFixed(0)} s`] };
      rows.push(row);
      say(`${name} done in ${((Date.now() - startedAt) / 1000).toFixed(0)} s\n${formatChaosTable([row])}`);
    };
    if (only.has("kill"))
      await step("operator kills", () => operatorKills(context, { modelDeployments: count, kills }));
    if (only.has("api")) {
      for (const replicas of [1, 2] as const)
        await step(`kube-apiserver restarts, ${replicas} replica(s)`, () =>
          controlPlaneRestarts(context, {
            component: "kube-apiserver",
            downMs: [5_000, 25_000],
            modelDeployments: count,
            replicas,
          }),
        );
    }
    if (only.has("etcd"))
      await step("etcd restarts", () =>
        controlPlaneRestarts(context, {
          component: "etcd",
          downMs: [5_000, 25_000],
          modelDeployments: count,
          replicas: 1,
        }),
      );
    if (only.has("gc"))
      await step("garbage collector down", () =>
        garbageCollectorDown(context, { modelDeployments: Math.min(count, 20), deletes: Math.floor(Math.min(count, 20) / 2), sweepSeconds: 5 }),
      );
    if (only.has("failover"))
      await step("leader failover during scale-ups", () =>
        failoverDuringScaleUp(context, { modelDeployments: Math.min(count, 30), runs: 3 }),
      );
    if (only.has("engines"))
      await step("engine faults", () => engineFaults(context, { windowSeconds: 10, requestsAfterDeath: 20 }));
    if (only.has("proxy"))
      await step("API faults through a proxy", () =>
        apiFaults(context, { modelDeployments: count, phaseSeconds: 20 }),
      );
  } finally {
    load.stop();
    client.close();
    await cluster.stop();
    if (values["keep-dir"]) say(`kept ${dir} (operator logs, cluster logs)`);
    else rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`\ngpufleet chaos suite (seed ${seed})\n${formatChaosTable(rows)}\n`);
  const failed = rows.filter(
    (row) => !fleetIsClean(row.check) || row.convergeSeconds.some((s) => s === undefined),
  );
  return failed.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `chaos suite failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
