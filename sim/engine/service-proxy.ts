/**
 * A stand-in for a ModelDeployment's Service on the local cluster. Endpoints and EndpointSlices refuse
 * loopback pod IPs, so kube-proxy-style routing cannot work on KWOK; this proxy listens on 127.0.0.1 and
 * forwards each request to the ready engine pod with the fewest requests in flight, the way a gateway in
 * front of an inference fleet would. It follows the pods as they come and go, so a scaled-up fleet
 * receives traffic as soon as its new pods are ready.
 */
import { request as httpRequest, createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { CoreV1Api, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { MODEL_DEPLOYMENT_LABEL, scrapeTargetFromPod } from "../../operator/metrics/scrape.js";

export interface ServiceProxy {
  url: string;
  /** Base URLs currently routed to. */
  endpoints(): string[];
  close(): Promise<void>;
}

export interface ServiceProxyOptions {
  host?: string;
  port?: number;
  /** Current ready endpoints (base URLs, e.g. http://127.1.0.4:8000). */
  endpoints: () => readonly string[];
}

/** Ready pods of one ModelDeployment as base URLs (pod IP and the container port named `http`). */
export function readyEndpointsOf(pods: readonly V1Pod[]): string[] {
  return pods
    .map((pod) => scrapeTargetFromPod(pod))
    .filter((target): target is NonNullable<typeof target> => !!target && target.ready)
    .map((target) => `http://${target.podIP}:${target.port}`)
    .sort();
}

/** Whether an engine answers its health check (what the Deployment's readiness probe asks). */
export async function engineHealthy(endpoint: string, timeoutMs = 1000): Promise<boolean> {
  try {
    const response = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

/**
 * Polls the API server for a ModelDeployment's ready pods; `current()` returns the last answer.
 * KWOK marks a pod Ready without running its readiness probe, so each endpoint's /health is probed
 * here, as the kubelet would: an engine still loading its model gets no traffic.
 */
export function watchReadyEndpoints(kubeConfig: KubeConfig, namespace: string, name: string, intervalMs = 500) {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  let current: string[] = [];
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const poll = async () => {
    try {
      const pods = await core.listNamespacedPod({ namespace, labelSelector: `${MODEL_DEPLOYMENT_LABEL}=${name}` });
      const listed = readyEndpointsOf(pods.items.filter((pod) => !pod.metadata?.deletionTimestamp));
      const healthy = await Promise.all(listed.map((endpoint) => engineHealthy(endpoint)));
      current = listed.filter((_, i) => healthy[i]);
    } catch {
      // keep the last known endpoints through an API hiccup
    }
    if (!stopped) timer = setTimeout(() => void poll(), intervalMs);
  };
  const first = poll();
  return {
    ready: first,
    current: () => current,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

export async function startServiceProxy(options: ServiceProxyOptions): Promise<ServiceProxy> {
  const inFlight = new Map<string, number>();

  const choose = (): string | undefined => {
    let best: string | undefined;
    for (const endpoint of options.endpoints()) {
      if (best === undefined || (inFlight.get(endpoint) ?? 0) < (inFlight.get(best) ?? 0)) best = endpoint;
    }
    return best;
  };

  const forward = (incoming: IncomingMessage, outgoing: ServerResponse) => {
    const endpoint = choose();
    if (!endpoint) {
      outgoing.writeHead(503, { "content-type": "application/json" });
      outgoing.end(JSON.stringify({ error: { message: "no ready replica", type: "service_unavailable" } }));
      return;
    }
    inFlight.set(endpoint, (inFlight.get(endpoint) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      inFlight.set(endpoint, Math.max(0, (inFlight.get(endpoint) ?? 1) - 1));
    };
    const target = new URL(incoming.url ?? "/", endpoint);
    const upstream = httpRequest(target, { method: incoming.method, headers: incoming.headers }, (response) => {
      outgoing.writeHead(response.statusCode ?? 502, response.headers);
      response.pipe(outgoing);
      response.on("end", release);
      response.on("error", release);
    });
    upstream.on("error", (error) => {
      release();
      if (!outgoing.headersSent) outgoing.writeHead(502, { "content-type": "application/json" });
      outgoing.end(JSON.stringify({ error: { message: `upstream ${endpoint}: ${error.message}`, type: "bad_gateway" } }));
    });
    outgoing.on("close", () => {
      release();
      upstream.destroy();
    });
    incoming.pipe(upstream);
  };

  const server = createServer(forward);
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${address.address}:${address.port}`,
    endpoints: () => [...options.endpoints()],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
