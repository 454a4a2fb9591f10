#!/usr/bin/env node
/**
 * `gpufleet` (package.json bin; also `kubectl-gpufleet` so kubectl runs it as `kubectl gpufleet`).
 * Logic lives in main.ts; this file only wires the process to it.
 */
import { runCli } from "./main.js";

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
