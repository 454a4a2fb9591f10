/**
 * Sizing facts of Hugging Face models for the reconciler: a cache keyed by repo + revision (the files
 * do not change under a fixed revision; a branch is re-read after `refreshMs`), reads in the background
 * so a reconcile never waits on the network, and retries with exponential backoff when the Hub is
 * down or slow. `lookup` is synchronous: the reconciler sees `pending` and is enqueued again by
 * `onSettled` when the read finishes.
 */
import { HfConfigError, modelFromHfConfig, type HfModel } from "../planner/hf-config.js";
import { HubError, type ModelFiles } from "./client.js";

export type ModelConfigState =
  | { readonly state: "ready"; readonly model: HfModel; readonly source: string }
  | { readonly state: "pending"; readonly message: string }
  | {
      readonly state: "failed";
      /** Condition reason: ModelConfigUnavailable (will retry), ModelConfigUnauthorized, ModelConfigNotFound, ModelConfigInvalid. */
      readonly reason: string;
      readonly message: string;
      readonly retryAtMs?: number;
    };

export interface ModelFilesReader {
  readModel(repo: string, revision: string, token?: string): Promise<ModelFiles>;
}

export interface ResolverOptions {
  reader: ModelFilesReader;
  /** An operator-wide Hub token (GPUFLEET_HF_TOKEN_FILE), used when a lookup brings no tenant credential. */
  token?: () => string | undefined;
  /** Called with the cache key's subscribers when a read settles (the controller enqueues them). */
  onSettled?: (subscribers: readonly string[]) => void;
  now?: () => number;
  /** First retry delay after a retryable failure; doubles up to maxBackoffMs. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Re-read a non-commit revision (a branch such as main) this often. */
  refreshMs?: number;
  /** Most entries kept (least recently used dropped first). */
  maxEntries?: number;
  schedule?: (fn: () => void, ms: number) => void;
}

interface Entry {
  state: ModelConfigState;
  failures: number;
  loadedAtMs?: number;
  inFlight: boolean;
  subscribers: Set<string>;
}

const COMMIT = /^[0-9a-f]{40}$/;

export class HubModelResolver {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly refreshMs: number;
  private readonly maxEntries: number;
  private readonly schedule: (fn: () => void, ms: number) => void;

  constructor(private readonly options: ResolverOptions) {
    this.now = options.now ?? Date.now;
    this.initialBackoffMs = options.initialBackoffMs ?? 5_000;
    this.maxBackoffMs = options.maxBackoffMs ?? 5 * 60_000;
    this.refreshMs = options.refreshMs ?? 60 * 60_000;
    this.maxEntries = options.maxEntries ?? 512;
    this.schedule =
      options.schedule ??
      ((fn, ms) => {
        setTimeout(fn, ms).unref();
      });
  }

  /**
   * The current state for repo@revision; starts (or schedules) a read when needed. `subscriber` is
   * enqueued when it settles. With a tenant's `credential` the answer is cached under that credential's
   * fingerprint, so a private repo read with one tenant's token is never answered to another tenant.
   */
  lookup(
    repo: string,
    revision: string | undefined,
    subscriber: string,
    credential?: { readonly fingerprint: string; readonly token: string },
  ): ModelConfigState {
    const rev = revision ?? "main";
    const key = credential ? `${repo}@${rev}#${credential.fingerprint}` : `${repo}@${rev}`;
    let entry = this.entries.get(key);
    if (entry) {
      // Least recently used order: re-insert on every hit.
      this.entries.delete(key);
      this.entries.set(key, entry);
    } else {
      entry = {
        state: { state: "pending", message: `reading config.json of ${repo}@${rev} from the Hub` },
        failures: 0,
        inFlight: false,
        subscribers: new Set(),
      };
      this.entries.set(key, entry);
      this.evict();
    }
    entry.subscribers.add(subscriber);
    const stale =
      entry.state.state === "ready" &&
      !COMMIT.test(rev) &&
      entry.loadedAtMs !== undefined &&
      this.now() - entry.loadedAtMs > this.refreshMs;
    const due =
      entry.state.state === "failed" &&
      entry.state.retryAtMs !== undefined &&
      this.now() >= entry.state.retryAtMs;
    if (!entry.inFlight && (entry.state.state === "pending" || stale || due))
      this.read(key, repo, rev, entry, credential ? credential.token : this.options.token?.());
    return entry.state;
  }

  /** Forgets a subscriber (its ModelDeployment was deleted). */
  unsubscribe(subscriber: string): void {
    for (const entry of this.entries.values()) entry.subscribers.delete(subscriber);
  }

  private evict(): void {
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  private read(key: string, repo: string, revision: string, entry: Entry, token: string | undefined): void {
    entry.inFlight = true;
    const label = `${repo}@${revision}`;
    const started = this.options.reader.readModel(repo, revision, token);
    void started.then(
      (files) => {
        try {
          const model = modelFromHfConfig(files.config, {
            repo,
            ...(files.safetensorsTotalBytes !== undefined
              ? { safetensorsTotalBytes: files.safetensorsTotalBytes }
              : {}),
          });
          entry.state = { state: "ready", model, source: `config.json of ${label}` };
          entry.failures = 0;
          entry.loadedAtMs = this.now();
        } catch (error) {
          const message =
            error instanceof HfConfigError ? error.message : `config.json: ${(error as Error).message}`;
          // A config is not going to change under the same revision: no retry.
          entry.state = { state: "failed", reason: "ModelConfigInvalid", message: `${label}: ${message}` };
        }
        this.settle(entry);
      },
      (error: unknown) => {
        const hubError = error instanceof HubError ? error : new HubError(String(error), "unavailable");
        // A ready entry being refreshed keeps its last good answer when the Hub fails.
        if (entry.state.state === "ready") {
          entry.loadedAtMs = this.now();
          this.settle(entry);
          return;
        }
        if (hubError.retryable) {
          entry.failures += 1;
          const delay = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** (entry.failures - 1));
          entry.state = {
            state: "failed",
            reason: "ModelConfigUnavailable",
            message: `${hubError.message}; retrying in ${Math.round(delay / 1000)} s (attempt ${entry.failures})`,
            retryAtMs: this.now() + delay,
          };
          // Wake the subscribers when the retry is due, so they look up (and so re-read) again.
          this.schedule(() => this.options.onSettled?.([...entry.subscribers]), delay);
        } else {
          const reason =
            hubError.kind === "unauthorized"
              ? "ModelConfigUnauthorized"
              : hubError.kind === "not-found"
                ? "ModelConfigNotFound"
                : "ModelConfigInvalid";
          const hint =
            hubError.kind === "unauthorized"
              ? token
                ? "; the token given does not grant access to this repo"
                : "; set spec.model.source.huggingFace.tokenSecretRef (read by the operator where the chart's hub.tenantTokenNamespaces allows), give the operator a token (GPUFLEET_HF_TOKEN_FILE), or describe the model in spec.model.architecture"
              : "";
          // Not going to change by itself soon (a repo made public, a token granted): look again slowly.
          entry.state = {
            state: "failed",
            reason,
            message: `${hubError.message}${hint}`,
            retryAtMs: this.now() + this.maxBackoffMs,
          };
          this.schedule(() => this.options.onSettled?.([...entry.subscribers]), this.maxBackoffMs);
        }
        this.settle(entry);
      },
    );
  }

  private settle(entry: Entry): void {
    entry.inFlight = false;
    this.options.onSettled?.([...entry.subscribers]);
  }
}
