/**
 * Keeping running vLLM engines' LoRA adapters equal to spec.adapters without restarting them, as pure
 * decisions: what each ready pod must load or unload (vLLM's /v1/load_lora_adapter and
 * /v1/unload_lora_adapter, operator/render/lora.ts), and what the status says. The shell
 * (./adapter-syncer.ts) reads each pod's /v1/models and carries the actions out.
 */
import type { LoraModule } from "../render/lora.js";

/** What one pod's engine reported, or why it could not be read. */
export interface PodAdapters {
  pod: string;
  /** name -> path (vLLM's `root`) of the adapters the engine lists; undefined when /v1/models could not be read. */
  loaded?: ReadonlyMap<string, string>;
}

export interface PodAdapterActions {
  pod: string;
  load: LoraModule[];
  unload: string[];
}

export interface AdapterSyncPlan {
  actions: PodAdapterActions[];
  /** Per desired adapter, the pods that have it loaded with the desired path. */
  status: { name: string; loadedReplicas: number }[];
  condition: { type: "AdaptersReady"; status: "True" | "False"; reason: string; message: string };
}

/** Adapter names as the API accepts them; anything else an engine lists is ignored (and never echoed). */
const NAME = /^[a-z0-9]([-a-z0-9._]{0,61}[a-z0-9])?$/;
const MAX_LISTED = 256;

/**
 * The adapters in a vLLM /v1/models answer: entries whose `parent` is the base model's served name.
 * Bounded (the first 256 entries) and filtered to well-formed names: the answer comes from a pod.
 */
export function parseLoadedAdapters(body: unknown, baseModel: string): Map<string, string> | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const data = (body as { data?: unknown }).data;
  if (!Array.isArray(data)) return undefined;
  const loaded = new Map<string, string>();
  for (const entry of data.slice(0, MAX_LISTED)) {
    if (typeof entry !== "object" || entry === null) continue;
    const { id, parent, root } = entry as { id?: unknown; parent?: unknown; root?: unknown };
    if (typeof id !== "string" || !NAME.test(id) || parent !== baseModel) continue;
    loaded.set(id, typeof root === "string" ? root.slice(0, 512) : "");
  }
  return loaded;
}

export function planAdapterSync(desired: readonly LoraModule[], pods: readonly PodAdapters[]): AdapterSyncPlan {
  const actions: PodAdapterActions[] = [];
  const counts = new Map(desired.map((m) => [m.name, 0]));
  const unreadable: string[] = [];
  for (const pod of pods) {
    if (!pod.loaded) {
      unreadable.push(pod.pod);
      continue;
    }
    const load: LoraModule[] = [];
    const unload: string[] = [];
    for (const module of desired) {
      const path = pod.loaded.get(module.name);
      if (path === module.path) counts.set(module.name, (counts.get(module.name) ?? 0) + 1);
      else if (module.startOnly) {
        // A URL adapter is on disk only in pods started with it: the rollout its change caused brings it.
        continue;
      } else {
        // A changed source is a different adapter under the same name: unload, then load the new one.
        if (path !== undefined) unload.push(module.name);
        load.push(module);
      }
    }
    for (const name of pod.loaded.keys()) if (!desired.some((m) => m.name === name)) unload.push(name);
    if (load.length || unload.length) actions.push({ pod: pod.pod, load, unload });
  }
  const status = desired.map((m) => ({ name: m.name, loadedReplicas: counts.get(m.name) ?? 0 }));
  const readable = pods.length - unreadable.length;
  const missing = status.filter((s) => s.loadedReplicas < readable);
  const condition: AdaptersReadyCondition =
    desired.length === 0 && actions.length === 0
      ? { type: "AdaptersReady", status: "True", reason: "NoAdapters", message: "no LoRA adapter is asked for" }
      : pods.length === 0
        ? { type: "AdaptersReady", status: "False", reason: "NoReadyReplicas", message: "no ready replica to load adapters on yet" }
        : missing.length || actions.length || unreadable.length
          ? {
              type: "AdaptersReady",
              status: "False",
              reason: unreadable.length && !missing.length && !actions.length ? "AdaptersUnknown" : "AdaptersSyncing",
              message: [
                missing.length ? `loading ${missing.map((s) => `${s.name} (${s.loadedReplicas}/${readable})`).join(", ")}` : "",
                actions.some((a) => a.unload.length) ? `unloading ${[...new Set(actions.flatMap((a) => a.unload))].join(", ")}` : "",
                unreadable.length ? `${unreadable.length} replica(s) did not list their adapters` : "",
              ]
                .filter(Boolean)
                .join("; "),
            }
          : {
              type: "AdaptersReady",
              status: "True",
              reason: "AdaptersLoaded",
              message: `${desired.length} adapter(s) loaded on ${readable} ready replica(s)`,
            };
  return { actions, status, condition };
}

type AdaptersReadyCondition = AdapterSyncPlan["condition"];
