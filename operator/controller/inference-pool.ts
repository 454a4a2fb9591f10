/**
 * InferencePool (Gateway API Inference Extension, inference.networking.k8s.io/v1) for users who run a
 * GIE gateway: when the CRD is served, the operator keeps one InferencePool per ModelDeployment that
 * selects its engine pods, owned by the ModelDeployment (the garbage collector deletes it) and written
 * by server-side apply under the operator's one field manager.
 *
 * The CRD is optional: it is discovered once at start and rechecked slowly (default every 5 minutes),
 * so a cluster without it costs one discovery request per recheck and no log lines beyond the first.
 */
import { createHash } from "node:crypto";
import { API_GROUP, API_VERSION, KIND, type ModelDeployment } from "../api/modeldeployment.js";
import { logger } from "../log/logger.js";
import { FIELD_MANAGER, isNotFound, registerKind, type KubeClient, type KubeObject } from "../runtime/kube-client.js";
import { SELECTOR_LABEL } from "./reconcile-plan.js";

export const INFERENCE_POOL_GROUP = "inference.networking.k8s.io";
export const INFERENCE_POOL_VERSION = "v1";
export const INFERENCE_POOL_PLURAL = "inferencepools";
registerKind(`${INFERENCE_POOL_GROUP}/${INFERENCE_POOL_VERSION}`, "InferencePool", { plural: INFERENCE_POOL_PLURAL, namespaced: true });

/**
 * The endpoint picker (EPP) the pool names, which the GIE gateway asks for a pod per request. gpufleet
 * does not run one: by default the pool points at `<name>-epp` port 9002 (the name and gRPC port the
 * inference extension's own chart gives a pool's EPP); the annotation below names another Service.
 */
export const ENDPOINT_PICKER_ANNOTATION = "inference.gpufleet.io/endpoint-picker";
export const DEFAULT_ENDPOINT_PICKER_PORT = 9002;

const DNS_1035_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface EndpointPickerRef {
  kind: "Service";
  name: string;
  port: { number: number };
  failureMode: "FailClose";
}

/**
 * The EPP Service from the annotation `<service>` or `<service>:<port>`; the default when absent or
 * malformed (a bad value is not echoed: the annotation is tenant input).
 */
export function endpointPickerRef(modelDeployment: ModelDeployment): EndpointPickerRef {
  const fallback: EndpointPickerRef = {
    kind: "Service",
    name: `${modelDeployment.metadata.name}-epp`.slice(0, 253),
    port: { number: DEFAULT_ENDPOINT_PICKER_PORT },
    failureMode: "FailClose",
  };
  const raw = modelDeployment.metadata.annotations?.[ENDPOINT_PICKER_ANNOTATION];
  if (raw === undefined || raw.length > 70) return fallback;
  const match = /^([a-z0-9-]+)(?::(\d{1,5}))?$/.exec(raw);
  if (!match || !DNS_1035_LABEL.test(match[1] ?? "")) return fallback;
  const port = match[2] === undefined ? DEFAULT_ENDPOINT_PICKER_PORT : Number(match[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return fallback;
  return { ...fallback, name: match[1] as string, port: { number: port } };
}

/** The InferencePool of a ModelDeployment (pure): its pods by the selector label, on the serving port. */
export function renderInferencePool(modelDeployment: ModelDeployment): KubeObject {
  const { name, namespace, uid } = modelDeployment.metadata;
  if (!uid) throw new Error(`ModelDeployment ${name} has no metadata.uid: render it as read from the API server`);
  return {
    apiVersion: `${INFERENCE_POOL_GROUP}/${INFERENCE_POOL_VERSION}`,
    kind: "InferencePool",
    metadata: {
      name,
      ...(namespace ? { namespace } : {}),
      labels: { [SELECTOR_LABEL]: name, "app.kubernetes.io/managed-by": "gpufleet" },
      ownerReferences: [
        { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, name, uid, controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: {
      selector: { matchLabels: { [SELECTOR_LABEL]: name } },
      targetPorts: [{ number: modelDeployment.spec.serving.port }],
      endpointPickerRef: endpointPickerRef(modelDeployment),
    },
  } as KubeObject;
}

export interface InferencePoolSyncOptions {
  /** How often to look again whether the CRD is served. */
  recheckIntervalMs?: number;
  /** Called when the CRD appears (reconcile every ModelDeployment, so each gets its pool). */
  onAvailable?: () => void;
  now?: () => number;
}

/** Re-apply an unchanged pool at least this often (restores one deleted or edited by hand). */
const POOL_RESYNC_MS = 5 * 60_000;

/** The shell: discovery, and one server-side apply per ModelDeployment when its pool changed. */
export class InferencePoolSync {
  private served: boolean | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly applied = new Map<string, { hash: string; atMs: number }>();
  private readonly log = logger.child({ component: "inferencepool" });
  private loggedDiscoveryError = false;

  constructor(
    private readonly client: KubeClient,
    private readonly options: InferencePoolSyncOptions = {},
  ) {}

  /** Whether the InferencePool CRD was served at the last look (undefined: not looked yet). */
  available(): boolean | undefined {
    return this.served;
  }

  async start(): Promise<void> {
    await this.discover();
    // Stopped during the discovery (the lease lost as the term began): no recheck timer outlives the term.
    if (this.stopped) return;
    this.timer ??= setInterval(() => void this.discover(), this.options.recheckIntervalMs ?? 5 * 60_000);
    this.timer.unref?.();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One discovery request: is inference.networking.k8s.io/v1 served with inferencepools? */
  async discover(): Promise<boolean> {
    let served: boolean;
    try {
      const list = await this.client.get<{ resources?: Array<{ name?: string }> }>(`/apis/${INFERENCE_POOL_GROUP}/${INFERENCE_POOL_VERSION}`);
      served = (list.resources ?? []).some((resource) => resource.name === INFERENCE_POOL_PLURAL);
    } catch (error) {
      if (!isNotFound(error)) {
        if (!this.loggedDiscoveryError) this.log.warn({ err: String(error) }, "InferencePool discovery failed; will look again");
        this.loggedDiscoveryError = true;
        return this.served ?? false;
      }
      served = false;
    }
    this.loggedDiscoveryError = false;
    this.setServed(served);
    return served;
  }

  private setServed(served: boolean): void {
    const before = this.served;
    this.served = served;
    if (before === served) return;
    if (served) {
      this.log.info("InferencePool CRD served: keeping one InferencePool per ModelDeployment");
      if (before === false) this.options.onAvailable?.();
    } else {
      this.applied.clear();
      this.log.info("InferencePool CRD not served: no InferencePools written (looking again periodically)");
    }
  }

  /** Applies the ModelDeployment's pool when the CRD is served and the pool changed (or is due a resync). */
  async sync(modelDeployment: ModelDeployment): Promise<void> {
    if (this.served !== true) return;
    const key = `${modelDeployment.metadata.namespace ?? ""}/${modelDeployment.metadata.name}`;
    const pool = renderInferencePool(modelDeployment);
    const hash = createHash("sha256").update(JSON.stringify(pool)).digest("hex");
    const now = this.options.now?.() ?? Date.now();
    const last = this.applied.get(key);
    if (last && last.hash === hash && now - last.atMs < POOL_RESYNC_MS) return;
    try {
      await this.client.apply(pool, { fieldManager: FIELD_MANAGER, force: true });
    } catch (error) {
      // The CRD went away since discovery: stop writing until a recheck sees it again.
      if (isNotFound(error)) {
        this.setServed(false);
        return;
      }
      throw error;
    }
    this.applied.set(key, { hash, atMs: now });
  }

  forget(key: string): void {
    this.applied.delete(key);
  }
}
