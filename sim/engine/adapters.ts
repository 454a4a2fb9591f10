/**
 * LoRA adapters in the simulated vLLM, as the real server exposes them (vllm-project/vllm):
 * - started with `--lora-modules name=path ...`; `--max-loras` GPU slots;
 * - POST /v1/load_lora_adapter {lora_name, lora_path} and POST /v1/unload_lora_adapter {lora_name}, only
 *   when the server runs with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (404 otherwise: no such route);
 *   loading a name already loaded is a 400, unloading an unknown one a 404;
 * - GET /v1/models lists each adapter with `parent` = the base model;
 * - `vllm:lora_requests_info{max_lora, running_lora_adapters, waiting_lora_adapters}`, a gauge whose value
 *   is the time it was set and whose labels name (comma-separated) the adapters with running / waiting
 *   requests (vllm/v1/metrics/loggers.py).
 * The simulator adds `gpufleet_sim:lora_requests{lora_name, state}` (per-adapter running and waiting
 * counts, which vLLM does not export) and `gpufleet_sim:lora_swaps_total` (an adapter brought into a GPU
 * slot, evicting the least recently used when all `max_loras` are taken), each swap costing `swapMs`
 * before the request enters the engine: the cost adapter affinity in the gateway avoids.
 */
import type { MetricFamily } from "../../operator/metrics/exposition.js";

/** What the simulator accepts as an adapter name: the CRD's pattern (operator/api), at most 63 characters. */
export const SIM_ADAPTER_NAME = /^[a-z0-9]([-a-z0-9._]{0,61}[a-z0-9])?$/;
export const SIM_MAX_ADAPTERS = 64;
const MAX_PATH_CHARS = 512;

export interface LoraOptions {
  maxLoras: number;
  /** VLLM_ALLOW_RUNTIME_LORA_UPDATING: the load/unload routes exist. */
  runtimeUpdates: boolean;
  modules: readonly { name: string; path: string }[];
  /** Simulated milliseconds one swap into a GPU slot costs (default 40). */
  swapMs?: number;
}

export class AdapterError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
  ) {
    super(message);
  }
}

export class SimAdapters {
  private readonly loaded = new Map<string, string>();
  /** Adapters in GPU slots, least recently used first. */
  private slots: string[] = [];
  private readonly counts = new Map<string, { running: number; waiting: number }>();
  private swaps = 0;

  constructor(readonly options: LoraOptions) {
    for (const module of options.modules) this.load(module.name, module.path);
  }

  get swapMs(): number {
    return this.options.swapMs ?? 40;
  }

  has(name: string): boolean {
    return this.loaded.has(name);
  }

  list(): { name: string; path: string }[] {
    return [...this.loaded].map(([name, path]) => ({ name, path }));
  }

  load(name: unknown, path: unknown): void {
    if (typeof name !== "string" || !SIM_ADAPTER_NAME.test(name))
      throw new AdapterError(400, "lora_name must be a lower-case name of at most 63 characters", "BadRequestError");
    if (typeof path !== "string" || path.length === 0 || path.length > MAX_PATH_CHARS)
      throw new AdapterError(400, `lora_path must be a string of 1 to ${MAX_PATH_CHARS} characters`, "BadRequestError");
    if (this.loaded.has(name))
      throw new AdapterError(400, `The lora adapter '${name}' has already been loaded.`, "InvalidUserInput");
    if (this.loaded.size >= SIM_MAX_ADAPTERS)
      throw new AdapterError(400, `at most ${SIM_MAX_ADAPTERS} adapters may be loaded`, "BadRequestError");
    this.loaded.set(name, path);
  }

  unload(name: unknown): void {
    if (typeof name !== "string" || !this.loaded.has(name))
      throw new AdapterError(404, `The lora adapter '${typeof name === "string" ? name.slice(0, 63) : ""}' cannot be found.`, "NotFoundError");
    this.loaded.delete(name);
    this.slots = this.slots.filter((slot) => slot !== name);
  }

  /** A request for `name` arrives: true when the adapter had to be swapped into a GPU slot. */
  admit(name: string): boolean {
    this.bump(name, "waiting", 1);
    const at = this.slots.indexOf(name);
    if (at !== -1) {
      this.slots.splice(at, 1);
      this.slots.push(name);
      return false;
    }
    this.slots.push(name);
    if (this.slots.length > this.options.maxLoras) this.slots.shift();
    this.swaps++;
    return true;
  }

  started(name: string): void {
    this.bump(name, "waiting", -1);
    this.bump(name, "running", 1);
  }

  finished(name: string, wasRunning: boolean): void {
    this.bump(name, wasRunning ? "running" : "waiting", -1);
  }

  private bump(name: string, state: "running" | "waiting", delta: number): void {
    const count = this.counts.get(name) ?? { running: 0, waiting: 0 };
    count[state] = Math.max(0, count[state] + delta);
    if (count.running === 0 && count.waiting === 0) this.counts.delete(name);
    else this.counts.set(name, count);
  }

  families(nowSeconds: number): MetricFamily[] {
    const names = (state: "running" | "waiting") =>
      [...this.counts].filter(([, count]) => count[state] > 0).map(([name]) => name).sort().join(",");
    const perAdapter = [...this.counts].sort(([a], [b]) => (a < b ? -1 : 1));
    return [
      {
        name: "vllm:lora_requests_info",
        type: "gauge",
        help: "Running stats on lora requests.",
        samples: [
          {
            name: "vllm:lora_requests_info",
            labels: {
              max_lora: String(this.options.maxLoras),
              running_lora_adapters: names("running"),
              waiting_lora_adapters: names("waiting"),
            },
            value: nowSeconds,
          },
        ],
      },
      {
        name: "gpufleet_sim:lora_requests",
        type: "gauge",
        help: "Requests per LoRA adapter and state (simulator only; vLLM exports names, not counts).",
        samples: perAdapter.flatMap(([name, count]) => [
          { name: "gpufleet_sim:lora_requests", labels: { lora_name: name, state: "running" }, value: count.running },
          { name: "gpufleet_sim:lora_requests", labels: { lora_name: name, state: "waiting" }, value: count.waiting },
        ]),
      },
      {
        name: "gpufleet_sim:lora_swaps_total",
        type: "counter",
        help: "Adapters brought into a GPU slot (simulator only).",
        samples: [{ name: "gpufleet_sim:lora_swaps_total", labels: {}, value: this.swaps }],
      },
    ];
  }
}
