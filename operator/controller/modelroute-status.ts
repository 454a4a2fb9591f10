/**
 * ModelRoute status. The operator is its only writer (the gateway replicas only read ModelRoutes): it
 * watches ModelRoutes beside the ModelDeployments it already watches and writes, when it changes, whether
 * each route's alias serves — every step resolved to a served ModelDeployment of the route's namespace,
 * the alias not taken by a ModelDeployment's model name or an older ModelRoute — which steps are missing,
 * and the generation it looked at. `resolveModelRoutes` is the same pure function the gateway resolves
 * aliases with (gateway/cascade/routes.ts), so the status says exactly what the gateway does.
 */
import { API_GROUP, API_VERSION, type Condition, type ModelDeployment } from "../api/modeldeployment.js";
import { MODEL_ROUTE_KIND, MODEL_ROUTE_PLURAL, type ModelRoute, type ModelRouteStatus } from "../api/modelroute.js";
import { logger } from "../log/logger.js";
import { Informer } from "../runtime/informer.js";
import { type KubeClient, type KubeObject, isNotFound, registerKind } from "../runtime/kube-client.js";

registerKind(`${API_GROUP}/${API_VERSION}`, MODEL_ROUTE_KIND, { plural: MODEL_ROUTE_PLURAL, namespaced: true });

const log = logger.child({ component: "modelroute-status" });

/** A ModelDeployment the gateway routes to: its model name, namespace and name. */
export interface ServedModel {
  model: string;
  namespace: string;
  name: string;
}

export type RouteResolution =
  | { outcome: "serving"; alias: string; route: string; steps: ServedModel[] }
  | { outcome: "missing"; alias: string; route: string; missing: string[]; steps: Array<ServedModel | undefined> }
  /** A ModelDeployment serves the alias as its own model name: requests go to it, not to the cascade. */
  | { outcome: "shadowed"; alias: string; route: string; by: string }
  /** An older ModelRoute (by creation, then namespace/name) claims the alias. */
  | { outcome: "taken"; alias: string; route: string; by: string };

const creation = (o: { metadata?: { creationTimestamp?: string } }) => {
  const t = Date.parse(o.metadata?.creationTimestamp ?? "");
  return Number.isFinite(t) ? t : 0;
};
const keyOf = (o: { metadata?: { namespace?: string; name?: string } }) => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;

/** The ModelDeployments that serve a model name: the oldest of those claiming a name (as gateway/fleet.ts routes). Pure. */
export function servedModels(modelDeployments: readonly ModelDeployment[]): ServedModel[] {
  const byModel = new Map<string, ServedModel>();
  // Creation times and keys parsed once per object, not once per comparison (thousands of ModelDeployments).
  const sorted = modelDeployments
    .filter((md) => !md.metadata?.deletionTimestamp && typeof md.spec?.model?.name === "string")
    .map((md) => ({ md, created: creation(md), key: keyOf(md) }))
    .sort((a, b) => a.created - b.created || a.key.localeCompare(b.key))
    .map(({ md }) => md);
  for (const md of sorted)
    if (!byModel.has(md.spec.model.name))
      byModel.set(md.spec.model.name, { model: md.spec.model.name, namespace: md.metadata?.namespace ?? "", name: md.metadata?.name ?? "" });
  return [...byModel.values()];
}

/**
 * Every ModelRoute's resolution, keyed by `namespace/name`. A route fronts only ModelDeployments of its
 * own namespace; an alias that a ModelDeployment serves as its model name is not a cascade; an alias
 * claimed by several routes goes to the oldest (then by namespace/name). Pure.
 */
export function resolveModelRoutes(
  modelRoutes: readonly ModelRoute[],
  served: readonly ServedModel[],
): Map<string, RouteResolution> {
  const direct = new Map(served.map((s) => [s.model, `${s.namespace}/${s.name}`]));
  const byDeployment = new Map(served.map((s) => [`${s.namespace}/${s.name}`, s]));
  const claimed = new Map<string, string>();
  const out = new Map<string, RouteResolution>();
  const sorted = modelRoutes
    .filter((r) => !r.metadata?.deletionTimestamp && typeof r.spec?.model === "string" && Array.isArray(r.spec.steps))
    .sort((a, b) => creation(a) - creation(b) || keyOf(a).localeCompare(keyOf(b)));
  for (const r of sorted) {
    const alias = r.spec.model;
    const route = keyOf(r);
    const ns = r.metadata?.namespace ?? "";
    const shadow = direct.get(alias);
    if (shadow !== undefined) {
      out.set(route, { outcome: "shadowed", alias, route, by: shadow });
      continue;
    }
    const owner = claimed.get(alias);
    if (owner !== undefined) {
      out.set(route, { outcome: "taken", alias, route, by: owner });
      continue;
    }
    claimed.set(alias, route);
    const steps = r.spec.steps.map((s) => byDeployment.get(`${ns}/${s.modelDeployment}`));
    const missing = r.spec.steps.filter((_, i) => !steps[i]).map((s) => s.modelDeployment);
    if (missing.length > 0) out.set(route, { outcome: "missing", alias, route, missing, steps });
    else out.set(route, { outcome: "serving", alias, route, steps: steps as ServedModel[] });
  }
  return out;
}

/** The status the operator writes for `route` given its resolution. Pure (no timestamps: see `withTransitionTimes`). */
export function modelRouteStatus(route: ModelRoute, resolution: RouteResolution | undefined): ModelRouteStatus {
  const ns = route.metadata?.namespace ?? "";
  const stepStatus = (resolved: readonly (ServedModel | undefined)[]) =>
    route.spec.steps.map((s, i) => ({
      modelDeployment: s.modelDeployment,
      ...(resolved[i] ? { model: resolved[i]!.model } : {}),
      found: resolved[i] !== undefined,
    }));
  let ready: Omit<Condition, "lastTransitionTime">;
  let steps = stepStatus(route.spec.steps.map(() => undefined));
  let missing: string[] = [];
  if (!resolution) ready = { type: "Ready", status: "False", reason: "NotResolved", message: "The route is not resolved yet." };
  else if (resolution.outcome === "serving") {
    steps = stepStatus(resolution.steps);
    ready = {
      type: "Ready",
      status: "True",
      reason: "StepsResolved",
      message: `Alias ${resolution.alias} serves: ${resolution.steps.map((s) => `${s.name} (${s.model})`).join(" -> ")}.`,
    };
  } else if (resolution.outcome === "missing") {
    steps = stepStatus(resolution.steps);
    missing = resolution.missing;
    ready = {
      type: "Ready",
      status: "False",
      reason: "ModelDeploymentMissing",
      message: `ModelDeployment ${missing.join(", ")} is not served in namespace ${ns}; create it or fix the route's steps. Requests for ${resolution.alias} get 503 meanwhile.`,
    };
  } else if (resolution.outcome === "shadowed")
    ready = {
      type: "Ready",
      status: "False",
      reason: "AliasIsAModel",
      message: `ModelDeployment ${resolution.by} serves the model name ${resolution.alias} itself, which takes precedence; rename the alias.`,
    };
  else
    ready = {
      type: "Ready",
      status: "False",
      reason: "AliasTaken",
      message: `The older ModelRoute ${resolution.by} claims the alias ${resolution.alias}; rename this one's spec.model.`,
    };
  return {
    ...(route.metadata?.generation !== undefined ? { observedGeneration: route.metadata.generation } : {}),
    conditions: [{ ...ready, lastTransitionTime: "" }],
    steps,
    ...(missing.length ? { missingModelDeployments: missing } : {}),
  };
}

/** `next` with each condition's transition time: the old one when its status did not change, else `now`. Pure. */
export function withTransitionTimes(next: ModelRouteStatus, previous: ModelRouteStatus | undefined, now: Date): ModelRouteStatus {
  const stamp = new Date(Math.floor(now.getTime() / 1000) * 1000).toISOString();
  return {
    ...next,
    conditions: (next.conditions ?? []).map((c) => {
      const old = previous?.conditions?.find((p) => p.type === c.type);
      return { ...c, lastTransitionTime: old && old.status === c.status && old.lastTransitionTime ? old.lastTransitionTime : stamp };
    }),
  };
}

/** Whether two statuses say the same (transition times aside). Pure. */
export function sameStatus(a: ModelRouteStatus | undefined, b: ModelRouteStatus): boolean {
  const strip = (s: ModelRouteStatus | undefined) =>
    JSON.stringify({ ...s, conditions: (s?.conditions ?? []).map((c) => ({ ...c, lastTransitionTime: "" })) });
  return strip(a) === strip(b);
}

export interface ModelRouteStatusOptions {
  client: KubeClient;
  modelDeployments: Informer<ModelDeployment & KubeObject>;
  namespaces: string[];
  now?: () => Date;
}

/** Watches ModelRoutes and writes their status when it changes (the operator's leader only). */
export class ModelRouteStatusWriter {
  readonly informer: Informer<ModelRoute & KubeObject>;
  private scheduled: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly now: () => Date;

  constructor(private readonly options: ModelRouteStatusOptions) {
    this.now = options.now ?? (() => new Date());
    this.informer = new Informer<ModelRoute & KubeObject>(options.client, {
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: MODEL_ROUTE_KIND,
      name: "modelroutes",
      ...(options.namespaces.length ? { namespaces: options.namespaces } : {}),
    });
    const handlers = { onAdd: () => this.schedule(), onUpdate: () => this.schedule(), onDelete: () => this.schedule() };
    this.informer.addHandlers(handlers);
    options.modelDeployments.addHandlers(handlers);
  }

  /**
   * Starts watching. Never waits for the list: without the ModelRoute CRD (a `helm upgrade` does not add
   * CRDs) the informer keeps retrying and nothing else of the operator is held up.
   */
  start(): void {
    this.informer.start();
    // The first list's events come before the informer counts as synced: look again once it is.
    this.informer.waitForSync().then(
      () => this.schedule(),
      () => undefined,
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.scheduled);
    await this.running;
    await this.informer.stop();
  }

  private schedule(): void {
    if (this.stopped || this.scheduled) return;
    this.scheduled = setTimeout(() => {
      this.scheduled = undefined;
      if (this.running) {
        this.again = true;
        return;
      }
      this.running = this.sync()
        .catch((err: unknown) => log.warn({ err: String(err) }, "writing ModelRoute status failed; retrying on the next change"))
        .finally(() => {
          this.running = undefined;
          if (this.again) {
            this.again = false;
            this.schedule();
          }
        });
    }, 200);
  }

  /** Writes the status of every route whose status changed. */
  async sync(): Promise<void> {
    if (!this.informer.hasSynced) return;
    const routes = this.informer.list();
    // Without routes there is nothing to write: skip resolving every ModelDeployment (this runs after each change).
    if (routes.length === 0) return;
    const resolutions = resolveModelRoutes(routes, servedModels(this.options.modelDeployments.list()));
    for (const route of routes) {
      if (this.stopped) return;
      if (route.metadata?.deletionTimestamp) continue;
      const next = modelRouteStatus(route, resolutions.get(keyOf(route)));
      if (sameStatus(route.status, next)) continue;
      const status = withTransitionTimes(next, route.status, this.now());
      const path = `/apis/${API_GROUP}/${API_VERSION}/namespaces/${route.metadata?.namespace}/${MODEL_ROUTE_PLURAL}/${route.metadata?.name}/status`;
      try {
        await this.options.client.request("PATCH", path, {
          // A merge patch keeps keys it does not name: an empty list is sent as null to remove it.
          body: { status: { ...status, missingModelDeployments: status.missingModelDeployments ?? null } },
          contentType: "application/merge-patch+json",
        });
      } catch (error) {
        if (isNotFound(error)) continue;
        throw error;
      }
    }
  }
}
