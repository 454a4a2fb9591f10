/**
 * Runs simulated engines for gpufleet's engine pods on a KWOK cluster until interrupted:
 *
 *   npx tsx sim/engine/fleet-cli.ts --kubeconfig /path/to/kubeconfig [--load-delay 2] [--poll 1]
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { listManagedPods, SimFleet } from "./fleet.js";

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      kubeconfig: { type: "string" },
      "load-delay": { type: "string", default: "0" },
      poll: { type: "string", default: "1" },
    },
  });
  const kubeConfig = new KubeConfig();
  if (values.kubeconfig) kubeConfig.loadFromFile(values.kubeconfig);
  else kubeConfig.loadFromDefault();
  const fleet = new SimFleet({
    listPods: listManagedPods(kubeConfig),
    loadDelayMs: Number(values["load-delay"]) * 1000,
    pollIntervalMs: Number(values.poll) * 1000,
    onError: (spec, error) =>
      process.stderr.write(`engine ${spec.key} on ${spec.host}:${spec.port}: ${String(error)}\n`),
  });
  fleet.start();
  process.stderr.write("simulated engine fleet running; Ctrl-C to stop\n");
  const stop = () => {
    void fleet.stop().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`fleet: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  });
}
