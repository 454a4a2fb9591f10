/**
 * The serving side of a chaos scenario: simulated engines on the KWOK pods of a namespace (sim/engine,
 * bound to the pod IPs) and the real gateway (gateway/gateway.ts, in this process, informers against the
 * local API server). Used to check that the gateway reconnects and relists after an API outage, and
 * routes around engines that fail.
 */
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import { loadGatewayConfig } from "../../gateway/config.js";
import { startGateway, type Gateway } from "../../gateway/gateway.js";
import { SELECTOR_LABEL } from "../../operator/controller/reconcile-plan.js";
import { KubeClient } from "../../operator/runtime/kube-client.js";
import { loopbackGatewayEnv } from "../../test/support/gateway.js";
import { MANAGED_BY_SELECTOR, SimFleet, type EngineSpec } from "../engine/fleet.js";
import type { EngineFaults } from "../engine/server.js";
import type { ChaosContext } from "./scenarios.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Simulated engines for the gpufleet pods of `namespace`, polled every 250 ms; `faultsFor` sets faults at start. */
export function startChaosEngines(
  context: ChaosContext,
  namespace: string,
  faultsFor?: (spec: EngineSpec) => EngineFaults | undefined,
): SimFleet {
  const fleet = new SimFleet({
    listPods: async () =>
      (await context.client.list<V1Pod>(`/api/v1/namespaces/${namespace}/pods`, { labelSelector: MANAGED_BY_SELECTOR })).items,
    pollIntervalMs: 250,
    loadDelayMs: 0,
    ...(faultsFor ? { faultsFor } : {}),
  });
  fleet.start();
  return fleet;
}

export interface ChaosGateway {
  gateway: Gateway;
  url: string;
  stop(): Promise<void>;
}

/** The gateway watching `namespace`, with its own client (its own watches), on loopback ephemeral ports. */
export async function startChaosGateway(context: ChaosContext, namespace: string): Promise<ChaosGateway> {
  const client = new KubeClient(context.cluster.kubeConfig, { userAgent: "gpufleet-gateway" });
  const config = loadGatewayConfig(
    loopbackGatewayEnv(namespace, "chaos-gateway", {
      GPUFLEET_GATEWAY_SCRAPE_INTERVAL_MS: "1000",
      // A request for a model with no routable pod waits this long at most (polls below retry).
      GPUFLEET_GATEWAY_HOLD_TIMEOUT_SECONDS: "5",
      GPUFLEET_GATEWAY_UPSTREAM_IDLE_TIMEOUT_SECONDS: "10",
    }),
  );
  const gateway = await startGateway(client, config, {});
  return {
    gateway,
    url: `http://127.0.0.1:${gateway.port}`,
    async stop() {
      await gateway.stop(1_000);
      client.close();
    },
  };
}

export interface Answer {
  status: number;
  /** The pod that answered (the gateway's debug header), if any. */
  endpoint: string | undefined;
  body: string;
  ms: number;
  /** The request did not end within its bound (a hang), or the connection broke. */
  failure?: "hung" | "broken";
}

/** One completion through the gateway, bounded by `timeoutMs`; never throws. */
export async function complete(
  url: string,
  model: string,
  options: { stream?: boolean; maxTokens?: number; timeoutMs?: number } = {},
): Promise<Answer> {
  const startedAt = performance.now();
  const signal = AbortSignal.timeout(options.timeoutMs ?? 15_000);
  let status = 0;
  let endpoint: string | undefined;
  try {
    const response = await fetch(`${url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, prompt: "chaos", max_tokens: options.maxTokens ?? 4, stream: options.stream ?? false }),
      signal,
    });
    status = response.status;
    endpoint = response.headers.get("x-gpufleet-endpoint") ?? undefined;
    const body = await response.text();
    return { status, endpoint, body, ms: performance.now() - startedAt };
  } catch {
    return {
      status,
      endpoint,
      body: "",
      ms: performance.now() - startedAt,
      failure: signal.aborted ? "hung" : "broken",
    };
  }
}

/**
 * Polls (bounded) until every model in `serving` answers a completion with 200 through the gateway and
 * every model in `gone` answers 404: the gateway has relisted. Returns the seconds it took from `fromMs`
 * (undefined: not within the bound) and what still failed.
 */
export async function waitForGatewayRoutes(
  url: string,
  serving: readonly string[],
  gone: readonly string[],
  fromMs: number,
  timeoutMs: number,
  /** What the cluster shows of a model still not answering (its pods' readiness), for the report. */
  explain?: (model: string) => Promise<string>,
): Promise<{ seconds: number | undefined; problems: string[]; lastPending: string[]; timeline: string }> {
  const deadline = Date.now() + timeoutMs;
  const pendingServing = new Set(serving);
  const pendingGone = new Set(gone);
  // Per model still wrong this round: its line, and whether it carries an explanation.
  let last = new Map<string, { line: string; explained: boolean }>();
  // What the models that answered last said before they did (explained ones first): where a slow convergence waited.
  let lastPending: string[] = [];
  // How many were left each time that changed, with one explained example (seconds from fromMs).
  const timeline: string[] = [];
  let lastLeft = -1;
  for (;;) {
    if (last.size > 0)
      lastPending = [...last.values()]
        .sort((a, b) => Number(b.explained) - Number(a.explained))
        .slice(0, 5)
        .map((entry) => entry.line);
    last = new Map();
    // The first few models still pending each round are explained (bounded: each explanation reads the API).
    const explained = new Set([...pendingServing].slice(0, 3));
    await Promise.all([
      ...[...pendingServing].map(async (model) => {
        const answer = await complete(url, model, { timeoutMs: 10_000 });
        if (answer.status === 200) pendingServing.delete(model);
        else {
          const explanation = explain && explained.has(model) ? await explain(model).catch(() => "pods unreadable") : undefined;
          last.set(model, {
            line: `${model}: HTTP ${answer.status}${answer.failure ? ` (${answer.failure})` : ""}, want 200${explanation ? `; ${explanation}` : ""}`,
            explained: explanation !== undefined,
          });
        }
      }),
      ...[...pendingGone].map(async (model) => {
        const answer = await complete(url, model, { timeoutMs: 10_000 });
        if (answer.status === 404) pendingGone.delete(model);
        else last.set(model, { line: `${model} (deleted): HTTP ${answer.status}, want 404`, explained: false });
      }),
    ]);
    const left = pendingServing.size + pendingGone.size;
    if (left !== lastLeft && timeline.length < 20) {
      const example = [...last.values()].find((entry) => entry.explained)?.line;
      timeline.push(`${((performance.now() - fromMs) / 1000).toFixed(1)} s ${left} left${example ? ` (${example})` : ""}`);
    }
    lastLeft = left;
    if (left === 0) return { seconds: (performance.now() - fromMs) / 1000, problems: [], lastPending, timeline: timeline.join("; ") };
    if (Date.now() > deadline)
      return { seconds: undefined, problems: [...last.values()].slice(0, 20).map((entry) => entry.line), lastPending, timeline: timeline.join("; ") };
    await sleep(500);
  }
}

/**
 * A model's pods as the cluster shows them, in a few words: how many, how many Ready, how many not yet
 * scheduled, and the nodes among theirs that are not Ready (a gateway routes only to Ready pods).
 */
export async function podReadiness(client: KubeClient, namespace: string, model: string): Promise<string> {
  const pods = (await client.list<V1Pod>(`/api/v1/namespaces/${namespace}/pods`, { labelSelector: `${SELECTOR_LABEL}=${model}` })).items;
  const ready = pods.filter((pod) => pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")).length;
  const nodeNames = [...new Set(pods.map((pod) => pod.spec?.nodeName).filter((name): name is string => !!name))].slice(0, 4);
  const notReadyNodes: string[] = [];
  for (const name of nodeNames) {
    const node = await client.get<V1Node>(`/api/v1/nodes/${name}`).catch(() => undefined);
    if (!node?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) notReadyNodes.push(name);
  }
  const phases = [...new Set(pods.map((pod) => pod.status?.phase ?? "?"))].join("/");
  // Unscheduled: the scheduler has not bound them; scheduled and Pending: the node (KWOK) has not run them.
  const unscheduled = pods.filter((pod) => !pod.spec?.nodeName).length;
  return (
    `${pods.length} pod(s) ${phases}, ${ready} Ready` +
    (unscheduled ? `, ${unscheduled} not scheduled` : "") +
    (notReadyNodes.length ? `, node(s) not Ready: ${notReadyNodes.join(", ")}` : "")
  );
}

/**
 * What the gateway's own view holds for a model still not answering: no route (its ModelDeployment or
 * owner chain not yet in its caches), or the route's endpoints, how many its pod cache shows Ready and how
 * many of those answered /health. Next to podReadiness, it says which side a slow recovery waits on.
 */
export function gatewayView(gateway: Gateway, model: string): string {
  const route = gateway.fleet.route(model);
  if (!route) return "gateway: no route";
  const podReady = route.endpoints.filter((endpoint) => endpoint.target.ready).length;
  const routable = route.endpoints.filter((endpoint) => endpoint.ready).length;
  return `gateway: ${route.endpoints.length} endpoint(s), ${podReady} Ready in its cache, ${routable} healthy`;
}

