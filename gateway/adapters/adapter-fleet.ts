/**
 * LoRA adapters at the gateway: a FleetView over the gateway's Fleet in which every adapter of a
 * ModelDeployment's spec.adapters is a model of its own. A request whose `model` names an adapter
 * resolves to the base ModelDeployment's route narrowed to the pods whose engine lists the adapter as
 * loaded, preferring the pods it is warm on (gateway/routing/adapter-affinity.ts); /v1/models lists
 * the adapters; demand (scale from zero) is recorded against the base ModelDeployment.
 *
 * Which adapters a pod has loaded is read from its engine's /v1/models every `pollIntervalMs` (vLLM
 * lists adapters with `parent` = the base model). Pod answers are bounded, redirects are not followed,
 * and only names of the API's adapter pattern are kept.
 */
import { parseLoadedAdapters } from "../../operator/controller/adapter-sync.js";
import { logger } from "../../operator/log/logger.js";
import { engineModelList, type Endpoint, type FleetView, type ModelRoute, type SuspectCause } from "../fleet.js";
import {
  adapterCandidates,
  type AdapterAffinityLimits,
  type AdapterResidency,
  DEFAULT_ADAPTER_AFFINITY,
  recordAdapterUse,
} from "../routing/adapter-affinity.js";

const log = logger.child({ component: "gateway-adapters" });

export interface AdapterFleetOptions {
  pollIntervalMs?: number;
  timeoutMs?: number;
  limits?: AdapterAffinityLimits;
  now?: () => number;
}

export class AdapterFleet implements FleetView {
  /** adapter name -> base model name; rebuilt when the base routes change. */
  private index = new Map<string, string>();
  private indexStale = true;
  /** pod address -> adapters its engine lists. */
  private readonly loaded = new Map<string, ReadonlySet<string>>();
  private readonly residency: AdapterResidency = new Map();
  private readonly listeners = new Set<() => void>();
  private readonly unsubscribeBase: () => void;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private readonly now: () => number;

  constructor(
    private readonly base: FleetView,
    private readonly options: AdapterFleetOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.unsubscribeBase = base.subscribe(() => {
      this.indexStale = true;
      this.notify();
    });
  }

  route(model: string): ModelRoute | undefined {
    const direct = this.base.route(model);
    if (direct) return direct;
    const baseModel = this.adapterIndex().get(model);
    if (baseModel === undefined) return undefined;
    const route = this.base.route(baseModel);
    if (!route) return undefined;
    const { endpoints } = adapterCandidates<Endpoint>({
      adapter: model,
      endpoints: route.endpoints,
      loaded: (e) => this.loaded.get(e.address),
      residency: this.residency,
      nowMs: this.now(),
      limits: this.options.limits ?? DEFAULT_ADAPTER_AFFINITY,
    });
    return { ...route, model, endpoints };
  }

  routes(): ModelRoute[] {
    const routes = this.base.routes();
    const adapters: ModelRoute[] = [];
    for (const name of this.adapterIndex().keys()) {
      const route = this.route(name);
      if (route) adapters.push(route);
    }
    return [...routes, ...adapters];
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  suspect(route: ModelRoute, endpoint: Endpoint, cause: SuspectCause = "unreachable"): void {
    const baseModel = this.adapterIndex().get(route.model);
    if (baseModel !== undefined && cause === "wrong-model") {
      // The engine does not have the adapter (unloaded since the last poll): the pod stops being a
      // candidate for this adapter until its /v1/models lists it again; it keeps serving the base model.
      const loaded = this.loaded.get(endpoint.address);
      if (loaded?.has(route.model)) {
        this.loaded.set(endpoint.address, new Set([...loaded].filter((name) => name !== route.model)));
        this.notify();
      }
      return;
    }
    // The endpoint objects are the base fleet's: its bookkeeping applies to adapter routes too.
    const baseRoute = baseModel !== undefined ? this.base.route(baseModel) : route;
    if (baseRoute) this.base.suspect?.(baseRoute, endpoint, cause);
  }

  /** The server sent a request of `route` to the pod at `address` (affinity bookkeeping). */
  picked(route: ModelRoute, address: string): void {
    if (this.adapterIndex().has(route.model)) recordAdapterUse(this.residency, address, route.model, this.now());
  }

  /** Adapters a pod's engine listed at the last poll (for tests and debugging). */
  loadedOn(address: string): ReadonlySet<string> | undefined {
    return this.loaded.get(address);
  }

  start(): void {
    this.stopped = false;
    const tick = () => {
      void this.pollOnce()
        .catch((error: unknown) => log.warn({ err: String(error) }, "adapter poll failed"))
        .finally(() => {
          if (!this.stopped) {
            this.timer = setTimeout(tick, this.options.pollIntervalMs ?? 2_000);
            this.timer.unref();
          }
        });
    };
    tick();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.unsubscribeBase();
  }

  /** Reads /v1/models of every ready pod of every model with adapters; tells listeners when something changed. */
  async pollOnce(): Promise<void> {
    const timeoutMs = this.options.timeoutMs ?? 1_000;
    const live = new Set<string>();
    let changed = false;
    for (const route of this.base.routes()) {
      if (!route.adapters?.length) continue;
      await Promise.all(
        route.endpoints
          .filter((e) => e.ready)
          .map(async (e) => {
            live.add(e.address);
            const adapters = await readLoaded(e.address, route.model, timeoutMs);
            const before = this.loaded.get(e.address);
            if (!adapters) return; // keep the last answer; a pod that stops answering also stops being ready
            if (!before || before.size !== adapters.size || [...adapters].some((a) => !before.has(a))) changed = true;
            this.loaded.set(e.address, adapters);
          }),
      );
    }
    for (const address of this.loaded.keys())
      if (!live.has(address)) {
        this.loaded.delete(address);
        changed = true;
      }
    if (changed) this.notify();
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }

  private adapterIndex(): Map<string, string> {
    if (!this.indexStale) return this.index;
    const index = new Map<string, string>();
    // The oldest ModelDeployment claims a name first (as for model names, fleet.ts).
    const routes = [...this.base.routes()].sort(
      (a, b) => a.createdAtSeconds - b.createdAtSeconds || `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`),
    );
    for (const route of routes)
      for (const adapter of route.adapters ?? [])
        if (!index.has(adapter) && !this.base.route(adapter)) index.set(adapter, route.model);
    this.index = index;
    this.indexStale = false;
    return index;
  }
}

async function readLoaded(address: string, baseModel: string, timeoutMs: number): Promise<Set<string> | undefined> {
  const data = await engineModelList(address, timeoutMs);
  const loaded = data && parseLoadedAdapters({ data }, baseModel);
  return loaded ? new Set(loaded.keys()) : undefined;
}
