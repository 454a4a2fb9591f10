import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { logger } from "../log/logger.js";
import type { RequestAuthorizer } from "./metrics-auth.js";

/**
 * The operator's operations endpoint: /healthz (liveness), /readyz (readiness, with a short reason
 * when not ready) and /metrics (Prometheus text). It binds `host`; in a pod that is 0.0.0.0 so the
 * kubelet and Prometheus can reach it.
 */

export type Readiness = boolean | { ready: boolean; reason?: string };

export interface OpsServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  registry: Registry;
  healthy: () => boolean;
  /** Not ready: a standby replica, informers not synced, ... Return a reason for the probe's body. */
  ready: () => Readiness;
  /** When set, /metrics answers only callers it allows (401/403 otherwise); probes stay open. */
  authorizeMetrics?: RequestAuthorizer;
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

const log = logger.child({ component: "ops-server" });

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const text = (status: number, body: string) => {
      res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" });
      res.end(`${body}\n`);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return text(405, "method not allowed");
    try {
      switch (path) {
        case "/healthz":
        case "/livez":
          return options.healthy() ? text(200, "ok") : text(500, "unhealthy");
        case "/readyz": {
          const readiness = options.ready();
          const ready = typeof readiness === "boolean" ? readiness : readiness.ready;
          const reason = typeof readiness === "boolean" ? undefined : readiness.reason;
          return ready ? text(200, "ok") : text(503, `not ready: ${reason ?? "starting"}`);
        }
        case "/metrics":
          (options.authorizeMetrics ? options.authorizeMetrics(req, path) : Promise.resolve({ allowed: true as const }))
            .then((decision) => {
              if (!decision.allowed) {
                text(decision.status, decision.status === 401 ? "unauthorized" : "forbidden");
                return undefined;
              }
              return options.registry.metrics();
            })
            .then((body) => {
              if (body === undefined) return;
              res.writeHead(200, { "Content-Type": options.registry.contentType });
              res.end(body);
            })
            .catch((err: unknown) => {
              log.warn({ err }, "serving metrics failed");
              if (!res.headersSent) text(500, "metrics unavailable");
            });
          return;
        default:
          return text(404, "not found");
      }
    } catch (err) {
      log.warn({ err, path }, "ops endpoint failed");
      return text(500, "internal error");
    }
  });
  // Probes must not keep a shutdown waiting.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ host: options.host, port }, "ops server listening");
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
