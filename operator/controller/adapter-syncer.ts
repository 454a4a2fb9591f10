/**
 * The shell around ./adapter-sync.ts: every few seconds, for each ModelDeployment with LoRA on, read
 * /v1/models from each of its ready pods (owned through the controller chain by uid, like the scraper),
 * load and unload adapters through vLLM's runtime endpoints to match spec.adapters, record Events, and
 * hand the reconcile loop a view for the status (AdaptersReady, status.adapters).
 *
 * Pod answers are hostile input: no redirect is followed, bodies are bounded, adapter names outside the
 * API's pattern are ignored, and nothing a pod says is copied into Events or the status.
 */
import type { V1Deployment, V1Pod, V1ReplicaSet } from "@kubernetes/client-node";
import type { ModelDeployment } from "../api/modeldeployment.js";
import { logger } from "../log/logger.js";
import { podsOwnedByModelDeployment } from "../metrics/owned-pods.js";
import { scrapeTargetFromPod, type ScrapeTarget } from "../metrics/scrape.js";
import { LOAD_ADAPTER_PATH, loraEnabled, loraModulesOf, UNLOAD_ADAPTER_PATH } from "../render/lora.js";
import { readBodyWithin } from "../runtime/http-body.js";
import type { Informer } from "../runtime/informer.js";
import type { KubeObject } from "../runtime/kube-client.js";
import { parseLoadedAdapters, planAdapterSync, type AdapterSyncPlan, type PodAdapters } from "./adapter-sync.js";
import type { EventSink } from "./controller.js";

const MODELS_BODY_MAX_BYTES = 256 * 1024;
const ACTION_BODY_MAX_BYTES = 16 * 1024;

export interface AdapterView {
  status: AdapterSyncPlan["status"];
  condition: AdapterSyncPlan["condition"];
}

export interface AdapterSyncerOptions {
  modelDeployments: Informer<ModelDeployment & KubeObject>;
  pods: Informer<V1Pod & KubeObject>;
  replicaSets: Informer<V1ReplicaSet & KubeObject>;
  deployments: Informer<V1Deployment & KubeObject>;
  events?: EventSink;
  intervalMs?: number;
  timeoutMs?: number;
  /** Called when a ModelDeployment's view changed (the controller re-reconciles it). */
  onViewChanged?: (key: string) => void;
}

function url(target: ScrapeTarget, path: string): string {
  const host = target.podIP.includes(":") ? `[${target.podIP}]` : target.podIP;
  return `http://${host}:${target.port}${path}`;
}

async function request(target: ScrapeTarget, path: string, timeoutMs: number, body?: unknown): Promise<{ status: number; text: string }> {
  const response = await fetch(url(target, path), {
    method: body === undefined ? "GET" : "POST",
    // A redirect would let an engine point the operator at any address it can reach.
    redirect: "manual",
    signal: AbortSignal.timeout(timeoutMs),
    ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const limit = body === undefined ? MODELS_BODY_MAX_BYTES : ACTION_BODY_MAX_BYTES;
  const text = await readBodyWithin(response, limit, () => new Error(`answer larger than ${limit} bytes`));
  return { status: response.status, text };
}

export class AdapterSyncer {
  private readonly views = new Map<string, AdapterView>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly log = logger.child({ component: "adapters" });

  constructor(private readonly options: AdapterSyncerOptions) {}

  view(key: string): AdapterView | undefined {
    return this.views.get(key);
  }

  start(): void {
    this.stopped = false;
    const tick = () => {
      this.running = this.syncAll()
        .catch((error: unknown) => this.log.warn({ err: String(error) }, "adapter sync pass failed"))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs ?? 3_000);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  async syncAll(): Promise<void> {
    const live = new Set<string>();
    for (const md of this.options.modelDeployments.list()) {
      if (md.metadata.deletionTimestamp || !loraEnabled(md.spec)) continue;
      const key = `${md.metadata.namespace ?? ""}/${md.metadata.name}`;
      live.add(key);
      try {
        await this.syncOne(md, key);
      } catch (error) {
        this.log.warn({ resource: key, err: String(error) }, "adapter sync failed; next pass retries");
      }
    }
    for (const key of this.views.keys()) if (!live.has(key)) this.views.delete(key);
  }

  async syncOne(md: ModelDeployment & KubeObject, key: string): Promise<void> {
    const namespace = md.metadata.namespace ?? "";
    const owned = podsOwnedByModelDeployment({
      owner: { metadata: { namespace, uid: md.metadata.uid } },
      pods: this.options.pods.list((pod) => pod.metadata?.namespace === namespace),
      replicaSets: this.options.replicaSets.list((rs) => rs.metadata?.namespace === namespace),
      deployments: this.options.deployments.list((d) => d.metadata?.namespace === namespace),
    });
    const targets = owned
      .filter((pod) => !pod.metadata?.deletionTimestamp)
      .map((pod) => scrapeTargetFromPod(pod))
      .filter((t): t is ScrapeTarget => !!t && t.ready && t.engine === "vllm");
    const timeoutMs = this.options.timeoutMs ?? 2_000;
    const base = md.spec.model.name;
    const observed: PodAdapters[] = await Promise.all(
      targets.map(async (target) => {
        try {
          const answer = await request(target, "/v1/models", timeoutMs);
          if (answer.status !== 200) return { pod: target.podName };
          const loaded = parseLoadedAdapters(JSON.parse(answer.text), base);
          return loaded ? { pod: target.podName, loaded } : { pod: target.podName };
        } catch {
          return { pod: target.podName };
        }
      }),
    );
    const desired = loraModulesOf(md.spec);
    const plan = planAdapterSync(desired, observed);
    const loadedNow = new Map<string, number>();
    const unloadedNow = new Map<string, number>();
    const failed = new Map<string, number>();
    for (const action of plan.actions) {
      const target = targets.find((t) => t.podName === action.pod);
      if (!target) continue;
      for (const name of action.unload) {
        const ok = await this.act(target, UNLOAD_ADAPTER_PATH, { lora_name: name }, timeoutMs);
        if (ok) unloadedNow.set(name, (unloadedNow.get(name) ?? 0) + 1);
        else failed.set(`unload ${name}`, (failed.get(`unload ${name}`) ?? 0) + 1);
      }
      for (const module of action.load) {
        const ok = await this.act(target, LOAD_ADAPTER_PATH, { lora_name: module.name, lora_path: module.path }, timeoutMs);
        if (ok) loadedNow.set(module.name, (loadedNow.get(module.name) ?? 0) + 1);
        else failed.set(`load ${module.name}`, (failed.get(`load ${module.name}`) ?? 0) + 1);
      }
    }
    // Names in Events come from the spec (desired) or were checked against the API's pattern (parseLoadedAdapters).
    for (const [name, count] of loadedNow)
      void this.options.events?.record(md, "Normal", "AdapterLoaded", `LoRA adapter ${name} loaded on ${count} running replica(s) without a restart`);
    for (const [name, count] of unloadedNow)
      void this.options.events?.record(md, "Normal", "AdapterUnloaded", `LoRA adapter ${name} unloaded from ${count} running replica(s)`);
    for (const [what, count] of failed)
      void this.options.events?.record(md, "Warning", "AdapterSyncFailed", `could not ${what} on ${count} replica(s); retrying`);

    // The view after the actions: what was just loaded counts as loaded.
    const after: PodAdapters[] = observed.map((pod) => {
      if (!pod.loaded) return pod;
      const action = plan.actions.find((a) => a.pod === pod.pod);
      if (!action) return pod;
      const loaded = new Map(pod.loaded);
      for (const name of action.unload) if (unloadedNow.has(name)) loaded.delete(name);
      for (const module of action.load) if (loadedNow.has(module.name)) loaded.set(module.name, module.path);
      return { pod: pod.pod, loaded };
    });
    const settled = planAdapterSync(desired, after);
    const view: AdapterView = { status: settled.status, condition: settled.condition };
    const before = this.views.get(key);
    this.views.set(key, view);
    if (JSON.stringify(before) !== JSON.stringify(view)) this.options.onViewChanged?.(key);
  }

  private async act(target: ScrapeTarget, path: string, body: unknown, timeoutMs: number): Promise<boolean> {
    try {
      const answer = await request(target, path, timeoutMs, body);
      return answer.status === 200;
    } catch {
      return false;
    }
  }
}
