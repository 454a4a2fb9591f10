/**
 * The gateway process assembled: informers (Fleet), the HTTP server, the demand writer and the ops
 * server. `startGateway` is what main.ts and the cluster tests run.
 */
import type { IncomingMessage } from "node:http";
import type { Registry } from "prom-client";
import { logger } from "../operator/log/logger.js";
import { type OpsServer, startOpsServer } from "../operator/runtime/ops-server.js";
import { KubeClient } from "../operator/runtime/kube-client.js";
import { type RegionRouter, startRegionRouting } from "./region-router.js";
import type { GatewayConfig } from "./config.js";
import { DemandWriter } from "./demand.js";
import { AdapterFleet } from "./adapters/adapter-fleet.js";
import { Fleet } from "./fleet.js";
import { createGatewayMetrics } from "./metrics.js";
import { GatewayServer } from "./server.js";
import { startTenancy } from "./tenancy/start.js";
import type { Tenancy } from "./tenancy/tenancy.js";
import { CascadeRoutes } from "./cascade/routes.js";
import { CascadeServer } from "./cascade/serve.js";

export interface Gateway {
  port: number;
  opsPort: number;
  fleet: Fleet;
  server: GatewayServer;
  registry: Registry;
  tenancy?: Tenancy | undefined;
  /** Region routing, when GPUFLEET_GATEWAY_REGION is set (tenancy also prices CO2 with its intensities). */
  regions?: RegionRouter | undefined;
  stop(graceMs?: number): Promise<void>;
}

const log = logger.child({ component: "gateway-main" });

/** The address the gateway reaches itself on: loopback when it listens on every interface. */
function loopbackOf(host: string): string {
  return host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "::" ? "::1" : host;
}

export async function startGateway(
  client: KubeClient,
  config: GatewayConfig,
  /** Environment of the region routing settings (gateway/region-router.ts); default process.env. */
  env: NodeJS.ProcessEnv = process.env,
): Promise<Gateway> {
  const metrics = createGatewayMetrics();
  const fleet = new Fleet(client, {
    watchNamespaces: config.watchNamespaces,
    scrapeIntervalMs: config.scrapeIntervalMs,
    scrapeTimeoutMs: config.scrapeTimeoutMs,
    replicaName: config.replicaName,
    prefillBudgetShare: config.prefillBudgetShare,
  });
  const demand = config.demandWrites
    ? new DemandWriter({
        client,
        replicaName: config.replicaName,
        // Called only after `server` below exists (on requests).
        heldFor: (model) => server.holds.size(model),
        heldTokensFor: (model) => server.heldTokens(model),
        onWrite: (result) => metrics.demandWrites.inc({ result }),
      })
    : undefined;
  const regions = await startRegionRouting(client, env);
  const tenancy = config.tenancy.enabled
    ? startTenancy(client, config, fleet, metrics.registry, regions ? (node) => regions.intensityAtNode(node) : undefined)
    : undefined;
  // Cascade aliases (ModelRoutes): each step goes back through this gateway on loopback.
  const cascadeRoutes = new CascadeRoutes(client, fleet, config.watchNamespaces);
  let listeningPort = 0;
  const cascade = new CascadeServer({
    resolve: (alias) => cascadeRoutes.resolve(alias),
    self: () => ({ host: loopbackOf(config.host), port: listeningPort }),
    // largeForTiers: the caller's tier, authentication only (each step's hop is admitted and metered).
    ...(tenancy ? { tierOf: (req: IncomingMessage) => tenancy.identify(req)?.tier } : {}),
  });
  // LoRA adapter names resolve to their base ModelDeployment (gateway/adapters/).
  const adapters = new AdapterFleet(fleet);
  const server: GatewayServer = new GatewayServer({
    fleet: adapters,
    metrics,
    config,
    ...(demand ? { demand } : {}),
    ...(tenancy ? { tenancy } : {}),
    ...(regions ? { regions } : {}),
    cascade: {
      serve: (request) => cascade.serve(request),
      aliasOf: (req) => cascade.aliasOf(req),
      aliases: () => cascadeRoutes.aliases(),
    },
  });
  if (demand) fleet.subscribe(() => demand.forgetExcept(new Set(fleet.routes().map((r) => r.uid))));
  // Ops first, so the kubelet sees a live (not yet ready) process while informers sync.
  let ready = false;
  const ops: OpsServer = await startOpsServer({
    host: config.opsHost,
    port: config.opsPort,
    registry: metrics.registry,
    healthy: () => true,
    ready: () => (ready ? true : { ready: false, reason: "informers not synced" }),
  });
  await fleet.start();
  await tenancy?.start();
  await cascadeRoutes.start();
  adapters.start();
  const port = await server.listen(config.port, config.host);
  listeningPort = port;
  ready = true;
  log.info(
    { port, opsPort: ops.port, replica: config.replicaName, models: fleet.routes().length },
    "gateway serving",
  );
  return {
    port,
    opsPort: ops.port,
    fleet,
    server,
    registry: metrics.registry,
    tenancy,
    regions,
    async stop(graceMs = 10_000) {
      ready = false;
      await server.close(graceMs);
      await tenancy?.stop();
      cascade.close();
      await cascadeRoutes.stop();
      await demand?.stop();
      adapters.stop();
      await fleet.stop();
      await regions?.stop();
      await ops.close();
      client.close();
    },
  };
}
