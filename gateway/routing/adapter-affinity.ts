/**
 * Adapter affinity: which pods of a base model a request for one of its LoRA adapters may go to, and
 * which of those it should prefer. Pure; the gateway keeps the state (gateway/adapters/).
 *
 * vLLM holds at most `--max-loras` adapters in GPU slots; a request for an adapter outside them waits
 * while it is swapped in (and evicts another). Spreading every adapter over every pod makes each pod
 * swap constantly; sending an adapter back to the pods it was last sent to keeps it resident. So:
 * 1. only pods whose engine lists the adapter as loaded are candidates (the rest would answer 404);
 * 2. among them, pods where this gateway sent the adapter recently (its slot is warm) are preferred,
 *    as long as their load stays within a bound of the candidates' mean (bounded-load affinity, as for
 *    prefix and session affinity in picker.ts);
 * 3. otherwise pods with a free slot (fewer recent adapters than their slots) come before pods that
 *    would have to evict one;
 * then the usual picker chooses among what is left.
 */
import { estimatedLoad } from "./scorers.js";
import type { EndpointState } from "./types.js";

export interface AdapterAffinityLimits {
  /** An adapter sent to a pod within this window is taken to be in one of its GPU slots. */
  residencyMs: number;
  /** GPU slots per pod (vLLM --max-loras) when the pod does not say. */
  slots: number;
  affinityLoadFactor: number;
  affinityLoadSlack: number;
}

export const DEFAULT_ADAPTER_AFFINITY: AdapterAffinityLimits = {
  residencyMs: 30_000,
  slots: 4,
  affinityLoadFactor: 1.5,
  affinityLoadSlack: 2,
};

/** Per pod address, the adapters this gateway sent there and when last (at most `MAX_TRACKED` per pod). */
export type AdapterResidency = Map<string, Map<string, number>>;
const MAX_TRACKED = 64;
const MAX_PODS = 10_000;

export function recordAdapterUse(residency: AdapterResidency, address: string, adapter: string, nowMs: number): void {
  let used = residency.get(address);
  if (!used) {
    if (residency.size >= MAX_PODS) {
      const oldest = residency.keys().next().value;
      if (oldest !== undefined) residency.delete(oldest);
    }
    residency.set(address, (used = new Map()));
  }
  used.delete(adapter);
  used.set(adapter, nowMs);
  while (used.size > MAX_TRACKED) {
    const oldest = used.keys().next().value;
    if (oldest === undefined) break;
    used.delete(oldest);
  }
}

/** Adapters sent to the pod within the window, most recent first, at most `slots` (the ones in its slots). */
export function residentAdapters(residency: AdapterResidency, address: string, nowMs: number, limits: AdapterAffinityLimits): string[] {
  const used = residency.get(address);
  if (!used) return [];
  return [...used]
    .filter(([, at]) => nowMs - at <= limits.residencyMs)
    .sort((a, b) => b[1] - a[1])
    .slice(0, limits.slots)
    .map(([name]) => name);
}

export interface AdapterCandidates<E> {
  endpoints: E[];
  /** warm: the adapter is resident on the chosen pods; free-slot: cold pods with a free slot; any: all pods that have it. */
  preference: "warm" | "free-slot" | "any" | "none";
}

export function adapterCandidates<E extends EndpointState>(input: {
  adapter: string;
  endpoints: readonly E[];
  /** Adapters the pod's engine lists as loaded; undefined when not known (the pod is not a candidate). */
  loaded: (endpoint: E) => ReadonlySet<string> | undefined;
  residency: AdapterResidency;
  nowMs: number;
  limits?: AdapterAffinityLimits;
}): AdapterCandidates<E> {
  const limits = input.limits ?? DEFAULT_ADAPTER_AFFINITY;
  const eligible = input.endpoints.filter((e) => e.ready && input.loaded(e)?.has(input.adapter) === true);
  if (eligible.length === 0) return { endpoints: [], preference: "none" };
  const loads = eligible.map(estimatedLoad);
  const mean = loads.reduce((s, l) => s + l, 0) / loads.length;
  const bound = mean * limits.affinityLoadFactor + limits.affinityLoadSlack;
  const resident = eligible.map((e) => residentAdapters(input.residency, e.address, input.nowMs, limits));
  const warm = eligible.filter((_, i) => resident[i]!.includes(input.adapter) && loads[i]! <= bound);
  if (warm.length) return { endpoints: warm, preference: "warm" };
  const free = eligible.filter((_, i) => resident[i]!.length < limits.slots);
  if (free.length && free.length < eligible.length) return { endpoints: free, preference: "free-slot" };
  return { endpoints: eligible, preference: "any" };
}
