/**
 * What the gateway can route to: ModelDeployments by `spec.model.name`, and for each the ready pods of
 * its workload. Pods are the ModelDeployment's only by the controller owner chain Pod -> ReplicaSet ->
 * Deployment -> ModelDeployment, or, for a replica that spans nodes, Pod -> StatefulSet ->
 * LeaderWorkerSet -> ModelDeployment (group leaders only: they serve the API), by uid
 * (operator/metrics/owned-pods.ts; a label proves nothing). Kept current by the operator's informers;
 * pod metrics come from the operator's scraper every ~1.5 s.
 */
import type { V1Deployment, V1Pod, V1ReplicaSet, V1StatefulSet } from "@kubernetes/client-node";
import { parseGatewayDemand } from "../operator/api/gateway-demand.js";
import { API_GROUP, API_VERSION, KIND, type ModelDeployment } from "../operator/api/modeldeployment.js";
import { relativeTokenThroughput } from "../operator/autoscaler/capacity-weight.js";
import { replicaTokenCapacity, wakeTokensPerReplica } from "../operator/autoscaler/loop.js";
import { SELECTOR_LABEL } from "../operator/controller/reconcile-plan.js";
import { logger } from "../operator/log/logger.js";
import { LWS_API_VERSION, LWS_KIND, LWS_LABELS } from "../operator/render/leaderworkerset.js";
import { podsOwnedByModelDeployment } from "../operator/metrics/owned-pods.js";
import { type ScrapeTarget, scrapePods, scrapeTargetFromPod } from "../operator/metrics/scrape.js";
import { readBodyWithin } from "../operator/runtime/http-body.js";
import { Informer } from "../operator/runtime/informer.js";
import { type KubeClient, type KubeObject, registerKind } from "../operator/runtime/kube-client.js";
import { type RoutingState, newRoutingState } from "./routing/picker.js";
import { DEFAULT_BLOCK_CHARS } from "./routing/prefix.js";
import type { EndpointState } from "./routing/types.js";

/** One pod the gateway may send requests to, with its live state for the picker. */
export interface Endpoint extends EndpointState {
  target: ScrapeTarget;
  /** The engine's prompt + generation token counters as last scraped (tenancy attributes GPU time by them). */
  engineTokensTotal?: number;
}

export interface ModelRoute {
  /** The OpenAI `model` clients send (spec.model.name). */
  model: string;
  namespace: string;
  name: string;
  uid: string;
  /** autoscaling.minReplicas is 0: the demand annotation also carries lastRequestAt. */
  scalesToZero: boolean;
  createdAtSeconds: number;
  /** Annotations as last seen (the demand writer reads other replicas' entries from them). */
  annotations: Readonly<Record<string, string>>;
  endpoints: Endpoint[];
  routing: RoutingState;
  /**
   * Prompt tokens this gateway replica lets wait in one pod's prefill backlog before it holds further
   * requests (routeLimits); absent: no bound.
   */
  prefillBudgetTokens?: number;
  /** Prompt tokens per second one replica prefills (the plan's estimate); with the budget. */
  prefillTokensPerSecond?: number;
  /** Names of the ModelDeployment's LoRA adapters (spec.adapters); gateway/adapters/ routes them. */
  adapters?: readonly string[];
}

export interface FleetView {
  route(model: string): ModelRoute | undefined;
  routes(): ModelRoute[];
  /** Called after the routes or their endpoints changed (a pod became ready, a model appeared). */
  subscribe(listener: () => void): () => void;
  /**
   * A request to `endpoint` failed in a way that says the endpoint cannot serve `route` now. `unreachable`
   * (the default): refused or reset before the engine answered (restarting, or still binding its port).
   * `wrong-model`: the engine answered 404 for the route's model, so the address serves another model (a
   * pod IP reused before the watch caught up) or the engine lost the name. The endpoint stops being
   * routable until its `/health` answers 200 again and, after `wrong-model`, its `/v1/models` does not
   * list other models without this one; listeners are told then (held requests wait for it).
   */
  suspect?(route: ModelRoute, endpoint: Endpoint, cause?: SuspectCause): void;
  /** The server sent a request of `route` to the pod at `address` (adapter affinity, gateway/adapters/). */
  picked?(route: ModelRoute, address: string): void;
}

export type SuspectCause = "unreachable" | "wrong-model";

export interface RouteSpec {
  model: string;
  modelDeployment: ModelDeployment & KubeObject;
  targets: ScrapeTarget[];
}

function creationMs(obj: KubeObject): number {
  const t = Date.parse(obj.metadata?.creationTimestamp ?? "");
  return Number.isFinite(t) ? t : 0;
}

/**
 * Pure: the routes the cluster state gives. A model name claimed by several ModelDeployments goes to the
 * oldest (then by namespace/name), so every gateway replica decides the same; the others are reported.
 * Endpoints: pods owned through the controller chain, with an IP and the engine's `http` port, not
 * being deleted.
 */
export function buildRoutes(input: {
  modelDeployments: readonly (ModelDeployment & KubeObject)[];
  pods: readonly (V1Pod & KubeObject)[];
  replicaSets: readonly (V1ReplicaSet & KubeObject)[];
  deployments: readonly (V1Deployment & KubeObject)[];
  /** Leader StatefulSets and LeaderWorkerSets (multi-node replicas); without them no group leader is routed to. */
  statefulSets?: readonly (V1StatefulSet & KubeObject)[];
  leaderWorkerSets?: readonly KubeObject[];
}): { routes: Map<string, RouteSpec>; shadowed: string[] } {
  const byNamespace = <T extends KubeObject>(items: readonly T[]) => {
    const map = new Map<string, T[]>();
    for (const item of items) {
      const ns = item.metadata?.namespace ?? "";
      let list = map.get(ns);
      if (!list) map.set(ns, (list = []));
      list.push(item);
    }
    return map;
  };
  const pods = byNamespace(input.pods);
  const replicaSets = byNamespace(input.replicaSets);
  const deployments = byNamespace(input.deployments);
  const statefulSets = byNamespace(input.statefulSets ?? []);
  const leaderWorkerSets = byNamespace(input.leaderWorkerSets ?? []);
  const sorted = [...input.modelDeployments]
    .filter((md) => !md.metadata?.deletionTimestamp && typeof md.spec?.model?.name === "string")
    .sort(
      (a, b) =>
        creationMs(a) - creationMs(b) ||
        `${a.metadata?.namespace}/${a.metadata?.name}`.localeCompare(
          `${b.metadata?.namespace}/${b.metadata?.name}`,
        ),
    );
  const routes = new Map<string, RouteSpec>();
  const shadowed: string[] = [];
  for (const md of sorted) {
    const model = md.spec.model.name;
    if (routes.has(model)) {
      shadowed.push(`${md.metadata?.namespace}/${md.metadata?.name}`);
      continue;
    }
    const ns = md.metadata?.namespace ?? "";
    const owned = podsOwnedByModelDeployment({
      owner: { metadata: { namespace: ns, uid: md.metadata?.uid } },
      pods: pods.get(ns) ?? [],
      replicaSets: replicaSets.get(ns) ?? [],
      deployments: deployments.get(ns) ?? [],
      statefulSets: statefulSets.get(ns) ?? [],
      leaderWorkerSets: leaderWorkerSets.get(ns) ?? [],
    });
    const targets: ScrapeTarget[] = [];
    for (const pod of owned) {
      if (pod.metadata?.deletionTimestamp) continue;
      const target = scrapeTargetFromPod(pod, model);
      if (target) targets.push(target);
    }
    targets.sort((a, b) => (a.podName < b.podName ? -1 : a.podName > b.podName ? 1 : 0));
    routes.set(model, { model, modelDeployment: md, targets });
  }
  return { routes, shadowed };
}

/** Bounds of the per-pod prefix index (blocks of ~64 tokens), whatever the plan says. */
export const PREFIX_INDEX_MIN_BLOCKS = 1_024;
export const PREFIX_INDEX_MAX_BLOCKS = 262_144;
/** The prefix index holds this many times what the pod's KV cache can (routing benchmark: ~2 is best). */
export const PREFIX_INDEX_KV_FACTOR = 2;

export interface RouteLimits {
  /** See ModelRoute.prefillBudgetTokens. */
  prefillBudgetTokens?: number;
  prefillTokensPerSecond?: number;
  /** Prefix index bound per pod, from the plan's KV-cache tokens. */
  prefixIndexBlocksPerPod?: number;
  /** Gateway replicas the budget is split among. */
  gatewayReplicas: number;
}

/**
 * Pure: a model's routing bounds from its plan.
 * - Prefix index: the pod's KV cache (status.plan.kvCacheTokensPerReplica) in index blocks of
 *   `blockTokens` (~64), times PREFIX_INDEX_KV_FACTOR: what the engine can still hold, with room for
 *   the index's ignorance of evictions; within [PREFIX_INDEX_MIN_BLOCKS, PREFIX_INDEX_MAX_BLOCKS].
 * - Prefill budget: `share` × the prompt tokens one replica prefills within the TTFT objective (the
 *   operator's wake sizing, operator/autoscaler/loop.ts), split evenly among the gateway replicas that
 *   have a demand entry on the ModelDeployment (each replica counts itself). A replica writes its entry
 *   when it holds requests, i.e. when the budget binds, so under pressure the split sees the replicas
 *   that matter; a replica that never held is not counted, and then a pod's backlog can reach up to
 *   (replicas) × its share. Absent without a plan or with share 0.
 */
export function routeLimits(input: {
  modelDeployment: ModelDeployment;
  replicaName?: string | undefined;
  share?: number | undefined;
  blockTokens: number;
  nowMs: number;
}): RouteLimits {
  const { modelDeployment: md, share, nowMs } = input;
  const others = parseGatewayDemand(md.metadata?.annotations, nowMs).entries.filter(
    (e) => e.replica !== input.replicaName,
  ).length;
  const gatewayReplicas = 1 + others;
  const limits: RouteLimits = { gatewayReplicas };
  const kvTokens = md.status?.plan?.kvCacheTokensPerReplica;
  if (typeof kvTokens === "number" && kvTokens > 0 && input.blockTokens > 0)
    limits.prefixIndexBlocksPerPod = Math.min(
      PREFIX_INDEX_MAX_BLOCKS,
      Math.max(PREFIX_INDEX_MIN_BLOCKS, Math.ceil((PREFIX_INDEX_KV_FACTOR * kvTokens) / input.blockTokens)),
    );
  const perReplica = share !== undefined && share > 0 ? wakeTokensPerReplica(md) : undefined;
  const rate = replicaTokenCapacity(md);
  if (perReplica !== undefined && share !== undefined && perReplica > 0 && rate !== undefined && rate > 0) {
    limits.prefillBudgetTokens = (share * perReplica) / gatewayReplicas;
    limits.prefillTokensPerSecond = rate;
  }
  return limits;
}

/**
 * Each endpoint's capacity relative to the largest of the route's: KV-cache tokens of its plan
 * (capacityWeight) and token throughput of its plan (throughputWeight: GPU product x GPUs per replica).
 * 1 (absent) for all when they are alike or unknown; below 1 for replicas spilled over to a smaller or
 * slower GPU product.
 */
export function setCapacityWeights(endpoints: readonly Endpoint[]): void {
  const largest = Math.max(0, ...endpoints.map((e) => e.target.kvCacheTokens ?? 0));
  const throughputs = endpoints.map((e) => relativeTokenThroughput(e.target.compute));
  const fastest = Math.max(0, ...throughputs.map((t) => t ?? 0));
  for (const [i, endpoint] of endpoints.entries()) {
    const own = endpoint.target.kvCacheTokens;
    if (largest > 0 && own !== undefined && own < largest) endpoint.capacityWeight = own / largest;
    else delete endpoint.capacityWeight;
    const speed = throughputs[i];
    if (fastest > 0 && speed !== undefined && speed < fastest) endpoint.throughputWeight = speed / fastest;
    else delete endpoint.throughputWeight;
  }
}

export function endpointAddress(target: ScrapeTarget): string {
  const host = target.podIP.includes(":") ? `[${target.podIP}]` : target.podIP;
  return `${host}:${target.port}`;
}

export interface FleetOptions {
  watchNamespaces: string[];
  /** This gateway replica's name (its demand annotation key): it counts itself among the replicas. */
  replicaName?: string;
  /** GatewayConfig.prefillBudgetShare; absent or 0: no prefill budget. */
  prefillBudgetShare?: number;
  scrapeIntervalMs: number;
  scrapeTimeoutMs: number;
  /** Scrapes in flight at once. */
  scrapeConcurrency?: number;
  /** How often a Ready pod's engine /health is asked until it answers 200. Default 250 ms. */
  healthCheckIntervalMs?: number;
}

/**
 * GET http://<pod>/health once: true on 200. Redirects are not followed (they count as not healthy).
 * A Ready pod is not enough: a readiness probe may be missing or lag, and an engine still loading its
 * model answers 503 to completions.
 */
export async function engineHealthy(target: ScrapeTarget, timeoutMs: number): Promise<boolean> {
  try {
    const response = await fetch(`http://${endpointAddress(target)}/health`, {
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.body?.cancel().catch(() => undefined);
    return response.status === 200;
  } catch {
    return false;
  }
}

/** A /v1/models answer larger than this is not read (vLLM lists the model and its loaded adapters). */
const MODELS_BODY_MAX_BYTES = 256 * 1024;
/** Entries of a /v1/models answer looked at. */
const MODELS_LISTED_MAX = 1024;

/**
 * GET http://<address>/v1/models once: the entries of its `data` list (at most MODELS_LISTED_MAX), or
 * undefined when the answer is no such list (not 200, not JSON, too large, no answer). Redirects are not
 * followed and the body is bounded; callers compare entries, never keep their bytes.
 */
export async function engineModelList(address: string, timeoutMs: number): Promise<unknown[] | undefined> {
  try {
    const response = await fetch(`http://${address}/v1/models`, { redirect: "manual", signal: AbortSignal.timeout(timeoutMs) });
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => undefined);
      return undefined;
    }
    const text = await readBodyWithin(response, MODELS_BODY_MAX_BYTES, () => new Error("too large"));
    const data = (JSON.parse(text) as { data?: unknown } | null)?.data;
    return Array.isArray(data) ? data.slice(0, MODELS_LISTED_MAX) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * True when the engine lists `model` in its /v1/models, false when it lists models but not this one (the
 * address now belongs to another model's engine, or the engine serves another name), undefined when its
 * answer does not say.
 */
async function engineListsModel(target: ScrapeTarget, model: string, timeoutMs: number): Promise<boolean | undefined> {
  const entries = await engineModelList(endpointAddress(target), timeoutMs);
  return entries?.some((entry) => typeof entry === "object" && entry !== null && (entry as { id?: unknown }).id === model);
}

/**
 * Whether a suspected endpoint may take requests again. After a refused connection: its /health answers
 * 200. After the engine answered that it does not serve the model (`mustServe`): also its /v1/models does
 * not list other models without this one; an engine whose /v1/models says nothing is judged by /health.
 */
async function endpointRecovered(target: ScrapeTarget, mustServe: string | undefined, timeoutMs: number): Promise<boolean> {
  if (!(await engineHealthy(target, timeoutMs))) return false;
  if (mustServe === undefined) return true;
  return (await engineListsModel(target, mustServe, timeoutMs)) !== false;
}

registerKind("apps/v1", "ReplicaSet", { plural: "replicasets", namespaced: true });
registerKind("apps/v1", "StatefulSet", { plural: "statefulsets", namespaced: true });
registerKind(LWS_API_VERSION, LWS_KIND, { plural: "leaderworkersets", namespaced: true });

const log = logger.child({ component: "gateway-fleet" });

/** The informer-backed FleetView the gateway process runs with. */
export class Fleet implements FleetView {
  readonly informers;
  readonly groupInformers;
  private current = new Map<string, ModelRoute>();
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly routingStates = new Map<string, RoutingState>();
  private readonly listeners = new Set<() => void>();
  private dirty = true;
  private rebuildScheduled = false;
  private scrapeTimer: NodeJS.Timeout | undefined;
  private scraping = false;
  private stopped = false;
  private lastShadowWarning = "";
  /** Endpoints (by key) whose engine answered /health 200 since their pod turned Ready. */
  private readonly healthy = new Set<string>();
  private readonly checking = new Map<string, NodeJS.Timeout>();
  /** Endpoints (by key) whose engine said it does not serve this model: the model it must list again. */
  private readonly mustServe = new Map<string, string>();

  constructor(
    client: KubeClient,
    private readonly options: FleetOptions,
  ) {
    const namespaces = options.watchNamespaces.length ? { namespaces: options.watchNamespaces } : {};
    this.informers = {
      modelDeployments: new Informer<ModelDeployment & KubeObject>(client, {
        apiVersion: `${API_GROUP}/${API_VERSION}`,
        kind: KIND,
        name: "gateway-modeldeployments",
        ...namespaces,
      }),
      // The label only narrows what is watched; the owner chain decides.
      pods: new Informer<V1Pod & KubeObject>(client, {
        apiVersion: "v1",
        kind: "Pod",
        name: "gateway-pods",
        labelSelector: SELECTOR_LABEL,
        ...namespaces,
      }),
      replicaSets: new Informer<V1ReplicaSet & KubeObject>(client, {
        apiVersion: "apps/v1",
        kind: "ReplicaSet",
        name: "gateway-replicasets",
        labelSelector: SELECTOR_LABEL,
        ...namespaces,
      }),
      deployments: new Informer<V1Deployment & KubeObject>(client, {
        apiVersion: "apps/v1",
        kind: "Deployment",
        name: "gateway-deployments",
        labelSelector: SELECTOR_LABEL,
        ...namespaces,
      }),
    };
    // The LeaderWorkerSet chain of multi-node replicas. Not waited for at start and not part of
    // hasSynced: where the LeaderWorkerSet CRD is not installed its informer keeps retrying (backing off
    // to 30 s) and single-node ModelDeployments are served as before; group leaders become endpoints
    // once both have listed.
    this.groupInformers = {
      statefulSets: new Informer<V1StatefulSet & KubeObject>(client, {
        apiVersion: "apps/v1",
        kind: "StatefulSet",
        name: "gateway-statefulsets",
        labelSelector: LWS_LABELS.name,
        ...namespaces,
      }),
      leaderWorkerSets: new Informer<KubeObject>(client, {
        apiVersion: LWS_API_VERSION,
        kind: LWS_KIND,
        name: "gateway-leaderworkersets",
        labelSelector: SELECTOR_LABEL,
        ...namespaces,
      }),
    };
    for (const informer of [...Object.values(this.informers), ...Object.values(this.groupInformers)] as Informer<KubeObject>[]) {
      informer.addHandlers({
        onAdd: () => this.invalidate(),
        onUpdate: () => this.invalidate(),
        onDelete: () => this.invalidate(),
      });
    }
  }

  get hasSynced(): boolean {
    return Object.values(this.informers).every((i) => i.hasSynced);
  }

  async start(syncTimeoutMs = 60_000): Promise<void> {
    for (const informer of Object.values(this.groupInformers)) informer.start();
    for (const informer of Object.values(this.informers)) informer.start();
    await Promise.all(Object.values(this.informers).map((i) => i.waitForSync(syncTimeoutMs)));
    this.rebuild();
    this.scheduleScrape(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.scrapeTimer);
    for (const timer of this.checking.values()) clearTimeout(timer);
    this.checking.clear();
    await Promise.all([...Object.values(this.informers), ...Object.values(this.groupInformers)].map((i) => i.stop()));
  }

  route(model: string): ModelRoute | undefined {
    if (this.dirty) this.rebuild();
    return this.current.get(model);
  }

  routes(): ModelRoute[] {
    if (this.dirty) this.rebuild();
    return [...this.current.values()];
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  suspect(route: ModelRoute, endpoint: Endpoint, cause: SuspectCause = "unreachable"): void {
    const key = `${route.uid}/${endpoint.podName}`;
    if (this.endpoints.get(key) !== endpoint) return; // replaced since: the rebuild decides
    if (cause === "wrong-model") this.mustServe.set(key, route.model);
    this.healthy.delete(key);
    endpoint.ready = false;
    this.checkHealth(key, endpoint.target);
  }

  private invalidate(): void {
    this.dirty = true;
    if (this.rebuildScheduled) return;
    this.rebuildScheduled = true;
    // Coalesce a burst of watch events into one rebuild, then tell listeners (held requests wait on it).
    setImmediate(() => {
      this.rebuildScheduled = false;
      if (this.dirty) this.rebuild();
    });
  }

  private rebuild(): void {
    this.dirty = false;
    const { routes, shadowed } = buildRoutes({
      modelDeployments: this.informers.modelDeployments.list(),
      pods: this.informers.pods.list(),
      replicaSets: this.informers.replicaSets.list(),
      deployments: this.informers.deployments.list(),
      statefulSets: this.groupInformers.statefulSets.list(),
      leaderWorkerSets: this.groupInformers.leaderWorkerSets.list(),
    });
    const warning = shadowed.join(",");
    if (warning && warning !== this.lastShadowWarning)
      log.warn(
        { shadowed: shadowed.slice(0, 20) },
        "ModelDeployments whose model name an older one already serves are not routed to",
      );
    this.lastShadowWarning = warning;
    const next = new Map<string, ModelRoute>();
    const liveEndpoints = new Set<string>();
    const liveStates = new Set<string>();
    for (const [model, spec] of routes) {
      const md = spec.modelDeployment;
      const uid = md.metadata?.uid ?? "";
      liveStates.add(uid);
      let routing = this.routingStates.get(uid);
      if (!routing) this.routingStates.set(uid, (routing = newRoutingState()));
      const limits = routeLimits({
        modelDeployment: md,
        replicaName: this.options.replicaName,
        share: this.options.prefillBudgetShare,
        blockTokens: (routing.blockHashing.blockChars ?? DEFAULT_BLOCK_CHARS) / 4,
        nowMs: Date.now(),
      });
      if (limits.prefixIndexBlocksPerPod !== undefined) routing.prefix.resize(limits.prefixIndexBlocksPerPod);
      const endpoints: Endpoint[] = [];
      for (const target of spec.targets) {
        const key = `${uid}/${target.podName}`;
        liveEndpoints.add(key);
        const address = endpointAddress(target);
        let endpoint = this.endpoints.get(key);
        // Routable = pod Ready AND its engine answered /health 200 since it turned Ready at this address (a
        // KWOK- or probe-Ready pod may still be loading its model). Leaving Ready, or a new address, forgets it.
        if (!target.ready || (endpoint && endpoint.address !== address)) this.healthy.delete(key);
        if (target.ready && !this.healthy.has(key)) this.checkHealth(key, target);
        const routable = target.ready && this.healthy.has(key);
        if (!endpoint || endpoint.address !== address) {
          // A new pod, or the same name at a new address (recreated): fresh state, nothing in flight known.
          endpoint = {
            podName: target.podName,
            namespace: target.namespace,
            address,
            ready: routable,
            inFlight: endpoint?.inFlight ?? 0,
            target,
          };
          this.endpoints.set(key, endpoint);
        } else {
          endpoint.ready = routable;
          endpoint.target = target;
        }
        endpoints.push(endpoint);
      }
      setCapacityWeights(endpoints);
      next.set(model, {
        model,
        namespace: md.metadata?.namespace ?? "",
        name: md.metadata?.name ?? "",
        uid,
        scalesToZero: md.spec.autoscaling?.minReplicas === 0,
        createdAtSeconds: Math.floor(creationMs(md) / 1000),
        annotations: md.metadata?.annotations ?? {},
        endpoints,
        routing,
        ...(limits.prefillBudgetTokens === undefined || limits.prefillTokensPerSecond === undefined
          ? {}
          : {
              prefillBudgetTokens: limits.prefillBudgetTokens,
              prefillTokensPerSecond: limits.prefillTokensPerSecond,
            }),
        ...(md.spec.adapters?.length ? { adapters: md.spec.adapters.map((a) => a.name) } : {}),
      });
    }
    for (const key of this.endpoints.keys()) if (!liveEndpoints.has(key)) this.endpoints.delete(key);
    for (const key of this.healthy) if (!liveEndpoints.has(key)) this.healthy.delete(key);
    for (const key of this.mustServe.keys()) if (!liveEndpoints.has(key)) this.mustServe.delete(key);
    for (const [key, timer] of this.checking)
      if (!liveEndpoints.has(key)) {
        clearTimeout(timer);
        this.checking.delete(key);
      }
    for (const uid of this.routingStates.keys()) if (!liveStates.has(uid)) this.routingStates.delete(uid);
    this.current = next;
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (err) {
        log.error({ err }, "fleet listener threw");
      }
    }
  }

  /** Asks the engine's /health until it answers 200, then marks the endpoint routable (one loop per endpoint). */
  private checkHealth(key: string, target: ScrapeTarget): void {
    if (this.checking.has(key) || this.stopped) return;
    const interval = this.options.healthCheckIntervalMs ?? 250;
    const attempt = async () => {
      const current = this.endpoints.get(key)?.target ?? target;
      if (!current.ready) {
        // The pod left Ready: the next rebuild starts a fresh check when it returns.
        this.checking.delete(key);
        return;
      }
      const ok = await endpointRecovered(current, this.mustServe.get(key), Math.max(interval, 1000));
      if (!this.checking.has(key) || this.stopped) return;
      if (ok) {
        this.checking.delete(key);
        this.mustServe.delete(key);
        this.healthy.add(key);
        this.invalidate();
        return;
      }
      this.checking.set(
        key,
        setTimeout(() => void attempt(), interval),
      );
    };
    this.checking.set(
      key,
      setTimeout(() => void attempt(), 0),
    );
  }

  private scheduleScrape(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.scrapeTimer);
    this.scrapeTimer = setTimeout(() => void this.scrapeOnce(), delayMs);
    this.scrapeTimer.unref();
  }

  /** Scrapes every ready endpoint once (the operator's scraper) and stores the samples on the endpoints. */
  async scrapeOnce(): Promise<void> {
    if (this.scraping) return;
    this.scraping = true;
    const started = Date.now();
    try {
      const endpoints = this.routes().flatMap((r) => r.endpoints.filter((e) => e.ready));
      const byTarget = new Map(endpoints.map((e) => [e.target, e]));
      const results = await scrapePods(
        endpoints.map((e) => e.target),
        { concurrency: this.options.scrapeConcurrency ?? 16, timeoutMs: this.options.scrapeTimeoutMs },
      );
      for (const result of results) {
        const endpoint = byTarget.get(result.target);
        if (!endpoint) continue;
        if (result.ok) {
          const { kvCacheUtilization, requestsWaiting, requestsRunning, scrapedAtMs } = result.sample;
          endpoint.metrics = { kvCacheUtilization, requestsWaiting, requestsRunning, scrapedAtMs };
          const { promptTokensTotal, generationTokensTotal } = result.sample;
          if (promptTokensTotal !== undefined && generationTokensTotal !== undefined)
            endpoint.engineTokensTotal = promptTokensTotal + generationTokensTotal;
          endpoint.inFlightAtScrape = endpoint.inFlight;
        } else {
          // No sample: the picker falls back to this replica's own in-flight count.
          delete endpoint.metrics;
          delete endpoint.inFlightAtScrape;
        }
      }
    } catch (err) {
      log.warn({ err }, "scraping engine pods failed");
    } finally {
      this.scraping = false;
      this.scheduleScrape(Math.max(0, this.options.scrapeIntervalMs - (Date.now() - started)));
    }
  }
}

/** A fixed FleetView (tests, the overhead benchmark): routes given by the caller. */
export class StaticFleet implements FleetView {
  private readonly map = new Map<string, ModelRoute>();
  private readonly listeners = new Set<() => void>();

  set(
    route: Omit<ModelRoute, "routing" | "annotations" | "createdAtSeconds" | "uid" | "scalesToZero"> &
      Partial<ModelRoute>,
  ): ModelRoute {
    const full: ModelRoute = {
      uid: `uid-${route.namespace}-${route.name}`,
      scalesToZero: false,
      createdAtSeconds: 0,
      annotations: {},
      routing: newRoutingState(),
      ...route,
    };
    this.map.set(full.model, full);
    this.changed();
    return full;
  }

  delete(model: string): void {
    this.map.delete(model);
    this.changed();
  }

  route(model: string): ModelRoute | undefined {
    return this.map.get(model);
  }

  routes(): ModelRoute[] {
    return [...this.map.values()];
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tell listeners the endpoints changed (after a test mutated them). */
  changed(): void {
    for (const listener of this.listeners) listener();
  }

  private readonly checks = new Set<NodeJS.Timeout>();
  private stopped = false;

  /** As the informer-backed Fleet: not routable until it has recovered (asked every 100 ms). */
  suspect(route: ModelRoute, endpoint: Endpoint, cause: SuspectCause = "unreachable"): void {
    if (!endpoint.ready) return;
    endpoint.ready = false;
    const mustServe = cause === "wrong-model" ? route.model : undefined;
    const attempt = async () => {
      if (this.stopped) return;
      if (await endpointRecovered(endpoint.target, mustServe, 1000)) {
        endpoint.ready = true;
        this.changed();
        return;
      }
      const timer = setTimeout(() => {
        this.checks.delete(timer);
        void attempt();
      }, 100);
      timer.unref();
      this.checks.add(timer);
    };
    void attempt();
  }

  /** Stops the health checks `suspect` started. */
  stop(): void {
    this.stopped = true;
    for (const timer of this.checks) clearTimeout(timer);
    this.checks.clear();
  }
}

/** An endpoint for a StaticFleet: a ready vLLM pod at `host:port`. */
export function staticEndpoint(podName: string, host: string, port: number, namespace = "default"): Endpoint {
  const target: ScrapeTarget = { namespace, podName, podIP: host, port, engine: "vllm", ready: true };
  return { podName, namespace, address: endpointAddress(target), ready: true, inFlight: 0, target };
}
