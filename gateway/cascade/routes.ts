/**
 * Which aliases the gateway serves as cascades: ModelRoutes (operator/api/modelroute.ts), each step
 * resolved to the model name its ModelDeployment serves. A ModelRoute only fronts ModelDeployments of
 * its own namespace (a tenant cannot route into another's). An alias that a ModelDeployment also serves
 * as its model name is not a cascade (the ModelDeployment wins); an alias claimed by several ModelRoutes
 * goes to the oldest (then by namespace/name), as for ModelDeployments.
 */
import { API_GROUP, API_VERSION } from "../../operator/api/modeldeployment.js";
import { MAX_CLASSIFIER_TERMS, MODEL_ROUTE_KIND, MODEL_ROUTE_PLURAL, type ModelRoute } from "../../operator/api/modelroute.js";
import { Informer } from "../../operator/runtime/informer.js";
import { type KubeClient, type KubeObject, registerKind } from "../../operator/runtime/kube-client.js";
import type { FleetView } from "../fleet.js";
import { logger } from "../../operator/log/logger.js";
import type { CascadeRules, PromptClassifierRule } from "./decide.js";
import { resolveModelRoutes } from "../../operator/controller/modelroute-status.js";

const log = logger.child({ component: "gateway-cascade" });

registerKind(`${API_GROUP}/${API_VERSION}`, MODEL_ROUTE_KIND, {
  plural: MODEL_ROUTE_PLURAL,
  namespaced: true,
});

export type ResolvedCascade =
  | { ok: true; alias: string; route: string; rules: CascadeRules; createdAtSeconds: number }
  /** The ModelRoute names a ModelDeployment the gateway does not serve: an actionable message. */
  | { ok: false; alias: string; route: string; message: string };

const creation = (o: KubeObject) => {
  const t = Date.parse(o.metadata?.creationTimestamp ?? "");
  return Number.isFinite(t) ? t : 0;
};

/**
 * Pure: the cascades that ModelRoutes and the served ModelDeployments give, by alias. The routes are
 * resolved by the same function the operator writes their status with (resolveModelRoutes).
 */
export function buildCascades(
  modelRoutes: readonly (ModelRoute & KubeObject)[],
  fleet: Pick<FleetView, "routes">,
): Map<string, ResolvedCascade> {
  const served = fleet.routes().map((r) => ({ model: r.model, namespace: r.namespace, name: r.name }));
  const byKey = new Map(modelRoutes.map((r) => [`${r.metadata?.namespace ?? ""}/${r.metadata?.name ?? ""}`, r]));
  const out = new Map<string, ResolvedCascade>();
  for (const resolution of resolveModelRoutes(modelRoutes, served).values()) {
    const { alias, route } = resolution;
    if (resolution.outcome === "missing") {
      const ns = route.slice(0, route.indexOf("/"));
      out.set(alias, {
        ok: false,
        alias,
        route,
        message: `ModelRoute ${route} names ModelDeployment ${resolution.missing.join(", ")}, which is not served in namespace ${ns}; create it or fix the route's steps.`,
      });
      continue;
    }
    if (resolution.outcome !== "serving") continue;
    const r = byKey.get(route) as ModelRoute & KubeObject;
    const c = r.spec.confidence;
    out.set(alias, {
      ok: true,
      alias,
      route,
      createdAtSeconds: Math.floor(creation(r) / 1000),
      rules: {
        steps: r.spec.steps.map((s, i) => ({
          model: (resolution.steps[i] as { model: string }).model,
          ...(s.maxPromptTokens !== undefined ? { maxPromptTokens: s.maxPromptTokens } : {}),
        })),
        largeForTiers: r.spec.largeForTiers ?? [],
        ...(c
          ? {
              confidence: {
                firstTokens: c.firstTokens ?? 8,
                metric: c.metric ?? "mean",
                minLogprob: c.minLogprob,
              },
            }
          : {}),
        ...(r.spec.promptClassifier ? { promptClassifier: classifierRule(r.spec.promptClassifier) } : {}),
        streaming: r.spec.streaming ?? "hold",
      },
    });
  }
  return out;
}

/** The ModelRoute informer and the cascades it gives with the fleet's current routes. */
export class CascadeRoutes {
  readonly informer: Informer<ModelRoute & KubeObject>;

  constructor(
    client: KubeClient,
    private readonly fleet: Pick<FleetView, "routes">,
    watchNamespaces: string[],
  ) {
    this.informer = new Informer<ModelRoute & KubeObject>(client, {
      apiVersion: `${API_GROUP}/${API_VERSION}`,
      kind: MODEL_ROUTE_KIND,
      name: "gateway-modelroutes",
      ...(watchNamespaces.length ? { namespaces: watchNamespaces } : {}),
    });
  }

  /**
   * Starts watching and waits up to `syncTimeoutMs` for the first list. Never fails the gateway: without
   * the ModelRoute CRD (e.g. a `helm upgrade`, which does not add new CRDs) the informer keeps retrying,
   * aliases answer 404 meanwhile, and direct model names are served as before.
   */
  async start(syncTimeoutMs = 10_000): Promise<void> {
    this.informer.start();
    try {
      await this.informer.waitForSync(syncTimeoutMs);
    } catch {
      log.warn(
        "ModelRoutes are not listed yet (is the ModelRoute CRD installed? kubectl apply --server-side -f crds/); model aliases answer 404 until they are",
      );
    }
  }

  async stop(): Promise<void> {
    await this.informer.stop();
  }

  /** The aliases that serve now (every step resolved), for /v1/models. */
  aliases(): Array<{ id: string; createdAtSeconds: number }> {
    const out: Array<{ id: string; createdAtSeconds: number }> = [];
    for (const c of buildCascades(this.informer.list(), this.fleet).values())
      if (c.ok) out.push({ id: c.alias, createdAtSeconds: c.createdAtSeconds });
    return out;
  }

  resolve(alias: string): ResolvedCascade | undefined {
    // Few ModelRoutes and a cheap build: recomputed per aliased request, so it never goes stale.
    return buildCascades(this.informer.list(), this.fleet).get(alias);
  }
}

/** A ModelRoute's promptClassifier as the decision reads it (defaults filled in). */
export function classifierRule(spec: NonNullable<ModelRoute["spec"]["promptClassifier"]>): PromptClassifierRule {
  return {
    weights: new Map(spec.terms.slice(0, MAX_CLASSIFIER_TERMS).map((t) => [t.word, t.weight])),
    bias: spec.bias ?? 0,
    perPromptTokenDoubling: spec.perPromptTokenDoubling ?? 0,
    ...(spec.escalateAbove !== undefined ? { escalateAbove: spec.escalateAbove } : {}),
    ...(spec.confidenceWeight !== undefined ? { confidenceWeight: spec.confidenceWeight } : {}),
  };
}
