/**
 * Runs one simulated engine per Running engine pod of gpufleet on a (KWOK) cluster, bound to the
 * pod's IP (KWOK hands out 127.x addresses; any 127.x address binds on Linux loopback) and to the
 * container port named `http`. Pods are found by `app.kubernetes.io/managed-by=gpufleet`; the engine
 * kind comes from `inference.networking.k8s.io/engine-type` (vllm | trtllm-serve).
 *
 * `planFleet` (pure) turns a pod list into the engines that should run; `SimFleet` polls the API
 * server and starts/stops servers to match.
 */
import { CoreV1Api, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import {
  ENGINE_TYPE_LABEL,
  MODEL_DEPLOYMENT_LABEL,
  scrapeTargetFromPod,
} from "../../operator/metrics/scrape.js";
import { replicaFor } from "../eval/hardware.js";
import { type EngineParams, type SchedulingPolicy, engineParamsForNames } from "./model.js";
import { type EngineFaults, type EngineServer, type SimEngineKind, startEngineServer } from "./server.js";
import { LORA_RUNTIME_ENV, startModulesInArgs } from "../../operator/render/lora.js";
import type { LoraOptions } from "./adapters.js";

export const MANAGED_BY_SELECTOR = "app.kubernetes.io/managed-by=gpufleet";
/** Optional pod annotations that choose the simulated hardware (defaults: llama-3.1-8b on H100). */
export const SIM_MODEL_ANNOTATION = "gpufleet.io/sim-model";
export const SIM_GPU_ANNOTATION = "gpufleet.io/sim-gpu";
export const SERVED_MODEL_ANNOTATION = "gpufleet.io/served-model-name";
/** The plan the operator annotates on its pods (operator/render). */
export const PLAN_MODEL_ANNOTATION = "gpufleet.io/model-id";
export const PLAN_GPU_ANNOTATION = "gpufleet.io/gpu-product";
export const PLAN_TP_ANNOTATION = "gpufleet.io/tensor-parallelism";
export const PLAN_MAX_CONTEXT_ANNOTATION = "gpufleet.io/max-context-length";

export interface EngineSpec {
  /** namespace/name */
  key: string;
  uid: string;
  host: string;
  port: number;
  engine: SimEngineKind;
  modelName: string;
  deployment: string;
  simModel: string;
  simGpu: string;
  maxContextLength?: number;
  tensorParallelism?: number;
  /** From the engine container's vLLM LoRA flags and env (--enable-lora, --max-loras, --lora-modules). */
  lora?: LoraOptions;
  /** From a vLLM container's --scheduling-policy (absent: fcfs). */
  schedulingPolicy?: SchedulingPolicy;
}

/** The scheduling policy a vLLM pod's args ask for (`--scheduling-policy priority` or `=priority`), as vLLM reads it. */
export function schedulingPolicyFromPod(pod: V1Pod): SchedulingPolicy | undefined {
  for (const container of pod.spec?.containers ?? []) {
    const args = container.args ?? [];
    let policy: string | undefined;
    for (let i = 0; i < args.length; i++) {
      const arg = args[i] ?? "";
      // The last occurrence wins, as in argparse.
      if (arg === "--scheduling-policy") policy = args[i + 1];
      else if (arg.startsWith("--scheduling-policy=")) policy = arg.slice("--scheduling-policy=".length);
    }
    if (policy === "priority" || policy === "fcfs") return policy;
  }
  return undefined;
}

/** The LoRA setup a vLLM pod asks for in its args and env, as vLLM would read it; undefined without --enable-lora. */
export function loraFromPod(pod: V1Pod): LoraOptions | undefined {
  for (const container of pod.spec?.containers ?? []) {
    const args = container.args ?? [];
    if (!args.includes("--enable-lora")) continue;
    const at = args.indexOf("--max-loras");
    const maxLoras = at === -1 ? 1 : Number(args[at + 1]);
    const runtime = (container.env ?? []).find((e) => e.name === LORA_RUNTIME_ENV)?.value ?? "";
    return {
      maxLoras: Number.isInteger(maxLoras) && maxLoras > 0 ? Math.min(maxLoras, 64) : 1,
      runtimeUpdates: ["1", "true"].includes(runtime.toLowerCase()),
      modules: startModulesInArgs(args) ?? [],
    };
  }
  return undefined;
}

function servedModelName(pod: V1Pod): string | undefined {
  const annotated = pod.metadata?.annotations?.[SERVED_MODEL_ANNOTATION];
  if (annotated) return annotated;
  for (const container of pod.spec?.containers ?? []) {
    const args = [...(container.command ?? []), ...(container.args ?? [])];
    for (let i = 0; i < args.length; i++) {
      const arg = args[i] ?? "";
      if (arg.startsWith("--served-model-name=")) return arg.slice("--served-model-name=".length);
      if (arg === "--served-model-name" && args[i + 1]) return args[i + 1];
    }
  }
  return undefined;
}

/** The engines that should run for these pods: Running, with an IP, an engine label and an `http` port. */
export function planFleet(pods: readonly V1Pod[]): Map<string, EngineSpec> {
  const plan = new Map<string, EngineSpec>();
  for (const pod of pods) {
    if (pod.status?.phase !== "Running" || pod.metadata?.deletionTimestamp) continue;
    const target = scrapeTargetFromPod(pod);
    if (!target) continue;
    const labels = pod.metadata?.labels ?? {};
    const deployment = labels[MODEL_DEPLOYMENT_LABEL] ?? target.podName;
    const annotations = pod.metadata?.annotations ?? {};
    plan.set(`${target.namespace}/${target.podName}`, {
      key: `${target.namespace}/${target.podName}`,
      uid: pod.metadata?.uid ?? "",
      host: target.podIP,
      port: target.port,
      engine: target.engine === "vllm" ? "vllm" : target.engine === "sglang" ? "sglang" : "tensorrt-llm",
      modelName: servedModelName(pod) ?? deployment,
      deployment,
      // The operator annotates each pod with its plan; simulate exactly that replica unless told otherwise.
      simModel: annotations[SIM_MODEL_ANNOTATION] ?? annotations[PLAN_MODEL_ANNOTATION] ?? "llama-3.1-8b",
      simGpu: annotations[SIM_GPU_ANNOTATION] ?? annotations[PLAN_GPU_ANNOTATION] ?? "NVIDIA-H100-80GB-HBM3",
      ...(annotations[PLAN_MAX_CONTEXT_ANNOTATION]
        ? { maxContextLength: Number(annotations[PLAN_MAX_CONTEXT_ANNOTATION]) }
        : {}),
      ...(annotations[PLAN_TP_ANNOTATION]
        ? { tensorParallelism: Number(annotations[PLAN_TP_ANNOTATION]) }
        : {}),
      ...(target.engine === "vllm" && loraFromPod(pod) ? { lora: loraFromPod(pod)! } : {}),
      ...(target.engine === "vllm" && schedulingPolicyFromPod(pod) === "priority"
        ? { schedulingPolicy: "priority" as const }
        : {}),
    });
  }
  return plan;
}

function sameEngine(a: EngineSpec, b: EngineSpec): boolean {
  return (
    a.uid === b.uid &&
    a.host === b.host &&
    a.port === b.port &&
    a.engine === b.engine &&
    a.modelName === b.modelName &&
    a.simModel === b.simModel &&
    a.simGpu === b.simGpu &&
    a.maxContextLength === b.maxContextLength &&
    a.tensorParallelism === b.tensorParallelism &&
    JSON.stringify(a.lora) === JSON.stringify(b.lora) &&
    a.schedulingPolicy === b.schedulingPolicy
  );
}

/** Which running engines to stop and which specs to start so that `running` matches `desired`. */
export function diffFleet(
  running: ReadonlyMap<string, EngineSpec>,
  desired: ReadonlyMap<string, EngineSpec>,
): { start: EngineSpec[]; stop: string[] } {
  const stop: string[] = [];
  const start: EngineSpec[] = [];
  for (const [key, spec] of running) {
    const want = desired.get(key);
    if (!want || !sameEngine(spec, want)) stop.push(key);
  }
  for (const [key, want] of desired) {
    const have = running.get(key);
    if (!have || !sameEngine(have, want)) start.push(want);
  }
  return { start, stop };
}

export interface SimFleetOptions {
  /** Lists the candidate pods (default: all namespaces, managed-by=gpufleet). */
  listPods: () => Promise<V1Pod[]>;
  /** Engine parameters for a spec (default: engineParamsForNames(simModel, simGpu)). */
  paramsFor?: (spec: EngineSpec) => EngineParams;
  loadDelayMs?: number;
  pollIntervalMs?: number;
  /** Called when an engine fails to start (e.g. address in use); the next poll retries. */
  onError?: (spec: EngineSpec, error: unknown) => void;
  /**
   * When set, an engine whose pod went away first drains (finishes its requests in flight, at most this
   * long; `EngineServer.drain`) as the pod's preStop hook does in a real cluster, where KWOK runs no
   * hooks. Unset: it stops at once (its connections reset).
   */
  drainOnDeleteMs?: number;
  /** Per-request confidence table for an engine's logprobs (sim/engine/server.ts `confidences`). */
  confidencesFor?: (spec: EngineSpec) => readonly number[] | undefined;
  /** Faults an engine starts with (sim/engine/server.ts `EngineFaults`), e.g. for chaos scenarios. */
  faultsFor?: (spec: EngineSpec) => EngineFaults | undefined;
}

export function listManagedPods(kubeConfig: KubeConfig): () => Promise<V1Pod[]> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  return async () => (await core.listPodForAllNamespaces({ labelSelector: MANAGED_BY_SELECTOR })).items;
}

/**
 * Engine parameters of the replica the operator planned: the planner sizes it (KV tokens, TP) exactly as
 * for the real pods; a model or GPU outside the planner's catalogue falls back to the engine's own table.
 */
export function paramsForPlannedReplica(spec: EngineSpec): EngineParams {
  try {
    return replicaFor(spec.simModel, spec.simGpu, {
      ...(spec.maxContextLength ? { maxContextLength: spec.maxContextLength } : {}),
      ...(spec.tensorParallelism ? { tensorParallelism: spec.tensorParallelism } : {}),
    }).params;
  } catch {
    return engineParamsForNames(spec.simModel, spec.simGpu);
  }
}

export class SimFleet {
  private readonly engines = new Map<string, { spec: EngineSpec; server: EngineServer }>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private reconciling: Promise<void> | undefined;
  private readonly draining = new Set<EngineServer>();

  constructor(private readonly options: SimFleetOptions) {}

  /** Engines currently serving, by namespace/name. */
  servers(): ReadonlyMap<string, EngineServer> {
    return new Map([...this.engines].map(([key, { server }]) => [key, server]));
  }

  /** One pass: list pods, stop stale engines, start missing ones. */
  async reconcileOnce(): Promise<void> {
    this.reconciling ??= this.reconcile().finally(() => {
      this.reconciling = undefined;
    });
    return this.reconciling;
  }

  private async reconcile(): Promise<void> {
    const desired = planFleet(await this.options.listPods());
    const running = new Map([...this.engines].map(([key, { spec }]) => [key, spec]));
    const { start, stop } = diffFleet(running, desired);
    await Promise.all(
      stop.map(async (key) => {
        const engine = this.engines.get(key);
        this.engines.delete(key);
        if (engine && this.options.drainOnDeleteMs !== undefined) {
          // Not awaited: new engines start meanwhile (the port is free once the drain begins).
          const server = engine.server;
          this.draining.add(server);
          void server.drain(this.options.drainOnDeleteMs).finally(() => this.draining.delete(server));
          return;
        }
        await engine?.server.close();
      }),
    );
    for (const spec of start) {
      if (this.stopped) return;
      try {
        const params = (this.options.paramsFor ?? paramsForPlannedReplica)(spec);
        const faults = this.options.faultsFor?.(spec);
        const server = await startEngineServer({
          host: spec.host,
          port: spec.port,
          engine: spec.engine,
          modelName: spec.modelName,
          params,
          loadDelayMs: this.options.loadDelayMs ?? 0,
          ...(spec.lora ? { lora: spec.lora } : {}),
          ...(spec.schedulingPolicy ? { schedulingPolicy: spec.schedulingPolicy } : {}),
          ...(this.options.confidencesFor?.(spec) ? { confidences: this.options.confidencesFor(spec)! } : {}),
          ...(faults ? { faults } : {}),
        });
        this.engines.set(spec.key, { spec, server });
      } catch (error) {
        this.options.onError?.(spec, error);
      }
    }
  }

  /** Polls until `stop()`. */
  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.reconcileOnce()
        .catch(() => undefined) // an API hiccup: try again next poll
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.options.pollIntervalMs ?? 1000);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.reconciling?.catch(() => undefined);
    await Promise.all([...this.engines.values()].map(({ server }) => server.close()));
    this.engines.clear();
    await Promise.all([...this.draining].map((server) => server.close()));
    this.draining.clear();
  }
}

export { ENGINE_TYPE_LABEL, MODEL_DEPLOYMENT_LABEL };
