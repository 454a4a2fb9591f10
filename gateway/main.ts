import { ConfigError, loadGatewayConfig } from "./config.js";
import { startGateway } from "./gateway.js";
import { exitOnSignals } from "../operator/runtime/shutdown.js";
import { logger } from "../operator/log/logger.js";
import { KubeClient } from "../operator/runtime/kube-client.js";

/**
 * `npm run gateway` (tsx gateway/main.ts): the OpenAI-compatible gateway against the cluster in
 * KUBECONFIG, or the in-cluster service account in a pod. SIGTERM/SIGINT: stop accepting, let requests
 * in flight finish (up to 20 s), delete this replica's demand annotations, exit.
 */
async function main(): Promise<void> {
  const log = logger.child({ component: "gateway-main" });
  let config;
  try {
    config = loadGatewayConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      log.fatal(error.message);
      process.exit(2);
    }
    throw error;
  }
  const client = KubeClient.fromKubeconfig(undefined, { userAgent: "gpufleet-gateway" });
  log.info(
    {
      server: client.server.origin,
      watchNamespaces: config.watchNamespaces.length ? config.watchNamespaces : "all",
      replica: config.replicaName,
    },
    "starting gpufleet gateway",
  );
  const gateway = await startGateway(client, config);
  exitOnSignals(() => gateway.stop(20_000), log);
}

main().catch((error: unknown) => {
  logger.fatal(
    { err: error instanceof Error ? { message: error.message, stack: error.stack } : String(error) },
    "gateway failed",
  );
  process.exit(1);
});
