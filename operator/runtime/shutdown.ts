import type { Logger } from "../log/logger.js";

/**
 * SIGTERM/SIGINT run `stop` once and exit 0 (1 if it fails); a stop that takes longer than
 * `forceAfterMs` exits 1. Shared by the operator's and the gateway's main.
 */
export function exitOnSignals(stop: () => Promise<void>, log: Logger, forceAfterMs = 25_000): void {
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    const force = setTimeout(() => {
      log.error(`graceful shutdown took longer than ${Math.round(forceAfterMs / 1000)}s; exiting`);
      process.exit(1);
    }, forceAfterMs);
    force.unref();
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: String(error) }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}
