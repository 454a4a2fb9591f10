import { KubeConfig } from "@kubernetes/client-node";
import { ConfigError, loadConfig } from "./config.js";
import { exitOnSignals } from "./runtime/shutdown.js";
import { logger } from "./log/logger.js";
import { startOperator } from "./operator.js";

/**
 * `node dist/operator/main.js` (or `npm start`): runs the operator against the cluster in KUBECONFIG,
 * or the in-cluster service account when it runs as a pod. SIGTERM/SIGINT stop it gracefully.
 */
async function main(): Promise<void> {
  const log = logger.child({ component: "main" });
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      log.fatal(error.message);
      process.exit(2);
    }
    throw error;
  }
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  log.info(
    {
      server: kubeConfig.getCurrentCluster()?.server,
      watchNamespaces: config.watchNamespaces.length ? config.watchNamespaces : "all",
      leaderElect: config.leaderElect,
      identity: config.identity,
    },
    "starting gpufleet operator",
  );
  const operator = await startOperator(kubeConfig, config);
  log.info({ opsPort: operator.opsPort }, "ops server listening (/healthz, /readyz, /metrics)");

  exitOnSignals(() => operator.stop(), log);
}

main().catch((error: unknown) => {
  logger.fatal(
    { err: error instanceof Error ? { message: error.message, stack: error.stack } : String(error) },
    "operator failed",
  );
  process.exit(1);
});
