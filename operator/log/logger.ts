import { pino, type Logger } from "pino";

/**
 * The operator's one logger. Every component takes a child of it with its own structured fields
 * (`component`, `resource`, `reconcileId`) instead of creating loggers of its own.
 * GPUFLEET_LOG_LEVEL sets the level (default `info`; tests set `silent` or `warn`).
 */
export const logger: Logger = pino({
  name: "gpufleet",
  level: process.env.GPUFLEET_LOG_LEVEL ?? (process.env.VITEST ? "warn" : "info"),
  base: undefined,
  timestamp: pino.stdTimeFunctions.isoTime,
});

export type { Logger };
