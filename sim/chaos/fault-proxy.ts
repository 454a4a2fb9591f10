/**
 * A fault-injecting proxy in front of a kube-apiserver, on loopback: plain HTTP in (a kubeconfig whose
 * server is the proxy, no credentials), HTTPS out with the credentials of the kubeconfig it was given.
 * Faults, changed at any time with setFaults(): added latency, 429 with Retry-After, 500s, and
 * watch streams cut. Every request is logged (bounded) so a run can count requests and check that the
 * client waited as long as Retry-After asked.
 */
import http from "node:http";
import https from "node:https";
import { writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import type { KubeConfig } from "@kubernetes/client-node";
import type { LoggedRequest } from "./invariants.js";
import { prng } from "../prng.js";

export interface Faults {
  /** Added before forwarding each request. */
  latencyMs: number;
  /** Share of requests answered 429 with Retry-After. */
  tooManyRequests: number;
  retryAfterSeconds: number;
  /** Share of requests answered 500. */
  serverErrors: number;
  /** Cut every open watch stream this often (0: never). */
  dropWatchesEveryMs: number;
}

export const NO_FAULTS: Faults = {
  latencyMs: 0,
  tooManyRequests: 0,
  retryAfterSeconds: 1,
  serverErrors: 0,
  dropWatchesEveryMs: 0,
};

export interface FaultProxy {
  url: string;
  /** Writes a kubeconfig pointing at the proxy; returns its path. */
  writeKubeconfig(path: string): string;
  setFaults(faults: Partial<Faults>): void;
  /** Requests seen so far (method, path without query, status answered, Retry-After given). */
  readonly log: readonly LoggedRequest[];
  watchesCut(): number;
  stop(): Promise<void>;
}

const MAX_LOG_ENTRIES = 500_000;

export async function startFaultProxy(kubeConfig: KubeConfig, seed = 1): Promise<FaultProxy> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error("kubeconfig has no current cluster");
  const upstream = new URL(cluster.server);
  const tlsOptions: https.RequestOptions = {};
  await kubeConfig.applyToHTTPSOptions(tlsOptions);
  const agent = new https.Agent({
    keepAlive: true,
    ca: tlsOptions.ca,
    cert: tlsOptions.cert,
    key: tlsOptions.key,
  });
  const random = prng(seed);
  let faults: Faults = { ...NO_FAULTS };
  const log: LoggedRequest[] = [];
  const watchSockets = new Set<Socket>();
  let cut = 0;
  let dropTimer: NodeJS.Timeout | undefined;
  const record = (entry: LoggedRequest) => {
    if (log.length < MAX_LOG_ENTRIES) log.push(entry);
  };

  const server = http.createServer((request, response) => {
    const atMs = performance.now();
    const url = new URL(request.url ?? "/", "http://proxy");
    const method = request.method ?? "GET";
    const isWatch = url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1";
    const roll = random();
    if (roll < faults.tooManyRequests) {
      record({
        atMs,
        method,
        path: url.pathname,
        status: 429,
        retryAfterSeconds: faults.retryAfterSeconds,
        watch: isWatch,
      });
      request.resume();
      response.writeHead(429, {
        "content-type": "application/json",
        "retry-after": String(faults.retryAfterSeconds),
      });
      response.end(
        JSON.stringify({
          kind: "Status",
          apiVersion: "v1",
          status: "Failure",
          reason: "TooManyRequests",
          code: 429,
          message: "chaos: too many requests",
        }),
      );
      return;
    }
    if (roll < faults.tooManyRequests + faults.serverErrors) {
      record({ atMs, method, path: url.pathname, status: 500, watch: isWatch });
      request.resume();
      response.writeHead(500, { "content-type": "application/json" });
      response.end(
        JSON.stringify({
          kind: "Status",
          apiVersion: "v1",
          status: "Failure",
          reason: "InternalError",
          code: 500,
          message: "chaos: internal error",
        }),
      );
      return;
    }
    const forward = () => {
      const upstreamRequest = https.request(
        {
          protocol: "https:",
          hostname: upstream.hostname,
          port: upstream.port,
          method,
          path: request.url,
          headers: { ...request.headers, host: upstream.host },
          agent,
        },
        (upstreamResponse) => {
          record({
            atMs,
            method,
            path: url.pathname,
            status: upstreamResponse.statusCode ?? 0,
            watch: isWatch,
          });
          response.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.headers);
          if (isWatch) {
            const socket = response.socket;
            if (socket) {
              watchSockets.add(socket);
              socket.once("close", () => watchSockets.delete(socket));
            }
          }
          upstreamResponse.pipe(response);
          response.once("close", () => upstreamResponse.destroy());
        },
      );
      upstreamRequest.on("error", () => {
        record({ atMs, method, path: url.pathname, status: 502, watch: isWatch });
        if (!response.headersSent) response.writeHead(502, { "content-type": "text/plain" });
        response.end("chaos proxy: upstream unreachable");
      });
      request.pipe(upstreamRequest);
    };
    if (faults.latencyMs > 0) setTimeout(forward, faults.latencyMs);
    else forward();
  });
  const allSockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    allSockets.add(socket);
    socket.once("close", () => allSockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  const proxyUrl = `http://127.0.0.1:${port}`;

  const scheduleDrops = () => {
    if (dropTimer) clearInterval(dropTimer);
    dropTimer = undefined;
    if (faults.dropWatchesEveryMs > 0)
      dropTimer = setInterval(() => {
        for (const socket of watchSockets) {
          socket.destroy();
          cut++;
        }
        watchSockets.clear();
      }, faults.dropWatchesEveryMs);
  };

  return {
    url: proxyUrl,
    writeKubeconfig(path: string) {
      writeFileSync(
        path,
        JSON.stringify({
          apiVersion: "v1",
          kind: "Config",
          clusters: [{ name: "chaos", cluster: { server: proxyUrl, "insecure-skip-tls-verify": true } }],
          users: [{ name: "chaos", user: {} }],
          contexts: [{ name: "chaos", context: { cluster: "chaos", user: "chaos", namespace: "default" } }],
          "current-context": "chaos",
        }),
        { mode: 0o600 },
      );
      return path;
    },
    setFaults(next) {
      faults = { ...faults, ...next };
      scheduleDrops();
    },
    log,
    watchesCut: () => cut,
    async stop() {
      if (dropTimer) clearInterval(dropTimer);
      for (const socket of allSockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
