import { defineConfig } from "vitest/config";
import { PulumiLastSequencer } from "./test/setup/sequencer.js";

// Two projects: `unit` (pure, fast, no cluster) and `cluster` (against the real local control
// plane started by test/setup/cluster.ts). `npm test` runs both.
export default defineConfig({
  test: {
    sequence: { sequencer: PulumiLastSequencer },
    projects: [
      {
        test: {
          name: "unit",
          include: ["operator/**/*.test.ts", "gateway/**/*.test.ts", "sim/**/*.test.ts", "infra/**/*.test.ts", "scripts/**/*.test.ts", "tools/*.test.ts"],
          environment: "node",
          // Some unit tests talk to loopback servers (fake API server, engines); under CI's load, with the
          // cluster project starting beside them on 2 cores, 5 s is too tight for them.
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "cluster",
          include: ["test/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/setup/cluster.ts"],
          testTimeout: 180_000,
          hookTimeout: 600_000,
          // Cluster suites share one control plane; run files one at a time so the 2-core
          // machine is not oversubscribed and pools are not contended.
          fileParallelism: false,
        },
      },
    ],
  },
});
