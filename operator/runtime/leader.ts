import { logger } from "../log/logger.js";
import {
  isAlreadyExists,
  isConflict,
  isNotFound,
  microTime,
  pathFor,
  type KubeClient,
  type ObjectMeta,
} from "./kube-client.js";
import { abortableSleep } from "./abortable-sleep.js";

/**
 * Leader election on a coordination.k8s.io/v1 Lease, with client-go's algorithm and defaults
 * (lease 15 s, renew deadline 10 s, retry 2 s):
 *  - a candidate takes the lease when it is free (no holder) or when the holder has not renewed it for
 *    `leaseDuration`, measured on the candidate's OWN clock from when it last saw the lease change
 *    (so clock skew between machines does not matter);
 *  - every write carries the resourceVersion it read: of two candidates racing, one gets 409 and loses;
 *  - the leader renews every `retryPeriod` and gives up (aborts the signal it handed out) when it could
 *    not renew for `renewDeadline`, which is shorter than `leaseDuration`, so it stops acting before
 *    anyone else may start;
 *  - `release()` clears the holder on graceful shutdown, so a standby takes over at its next retry.
 */

export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}

export interface Lease {
  apiVersion: "coordination.k8s.io/v1";
  kind: "Lease";
  metadata: ObjectMeta;
  spec?: LeaseSpec;
}

export interface LeaderElectorOptions {
  namespace: string;
  /** Lease name, e.g. `gpufleet-operator`. */
  name: string;
  /** This process: unique among candidates (pod name + random suffix). */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Fraction of `retryPeriod` added at random to acquire retries, so candidates do not move in step. Default 0.2. */
  jitter?: number;
}

export interface LeaderCallbacks {
  /** Leadership gained; `signal` aborts when it is lost (or on stop/release). */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  onStoppedLeading: () => void;
  /** The observed holder changed (including to this process). */
  onNewLeader?: (identity: string) => void;
}

export type LeaseDecision = "create" | "take" | "renew" | "wait";

/**
 * What a candidate should do given the lease it read. Pure: the election rule.
 * `observedAtMs` is when this candidate last saw the holder or renewTime change (its own clock).
 */
export function decideLeaseAction(
  lease: LeaseSpec | undefined,
  identity: string,
  nowMs: number,
  observedAtMs: number,
  leaseDurationMs: number,
): LeaseDecision {
  if (!lease) return "create";
  const holder = lease.holderIdentity ?? "";
  if (holder === identity) return "renew";
  if (holder === "") return "take";
  // The holder's own leaseDurationSeconds governs when its claim lapses.
  const duration = lease.leaseDurationSeconds ? lease.leaseDurationSeconds * 1000 : leaseDurationMs;
  return observedAtMs + duration <= nowMs ? "take" : "wait";
}

export class LeaderElector {
  private readonly client: KubeClient;
  private readonly options: Required<LeaderElectorOptions>;
  private readonly path: string;
  private readonly log;
  private stopController = new AbortController();
  private leaderController: AbortController | undefined;
  private callbacks: LeaderCallbacks | undefined;
  private observed: { holder: string; renewTime: string } | undefined;
  private observedAtMs = 0;
  private lastRenewMs = 0;
  private leading = false;
  private runPromise: Promise<void> | undefined;
  /** Set by stop()/release(): ends `runUntilStopped` for good. */
  private stopped = false;
  private progressAtMs = Date.now();
  private terms = 0;

  constructor(client: KubeClient, options: LeaderElectorOptions) {
    this.client = client;
    this.options = {
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      jitter: 0.2,
      ...options,
    };
    if (this.options.renewDeadlineMs >= this.options.leaseDurationMs)
      throw new Error("renewDeadline must be shorter than leaseDuration");
    if (this.options.retryPeriodMs >= this.options.renewDeadlineMs)
      throw new Error("retryPeriod must be shorter than renewDeadline");
    this.path = pathFor({
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      namespace: options.namespace,
      name: options.name,
    });
    this.log = logger.child({
      component: "leader-election",
      lease: `${options.namespace}/${options.name}`,
      identity: options.identity,
    });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** The holder last seen on the lease ("" when free, undefined before the first read). */
  get observedLeader(): string | undefined {
    return this.observed?.holder;
  }

  /**
   * Campaigns until leader, leads until leadership is lost or `stop()`/`release()`; resolves then.
   * Call again to campaign anew.
   */
  run(callbacks: LeaderCallbacks): Promise<void> {
    if (this.runPromise) throw new Error("already running");
    this.callbacks = callbacks;
    this.stopController = new AbortController();
    this.runPromise = this.campaign(this.stopController.signal).finally(() => (this.runPromise = undefined));
    return this.runPromise;
  }

  /**
   * Campaigns, leads, and after losing the lease (an API outage longer than the renew deadline, a lost race)
   * campaigns again, term after term, until `stop()` or `release()`. A process that stood by for good after
   * its first loss would stop reconciling until someone restarted it.
   */
  async runUntilStopped(callbacks: LeaderCallbacks): Promise<void> {
    this.stopped = false;
    while (!this.stopped) {
      await this.run(callbacks);
      if (this.stopped) break;
      this.log.info({ termsLed: this.terms }, "campaigning again for the lease");
    }
  }

  /** Leadership terms won so far by this elector. */
  get termsLed(): number {
    return this.terms;
  }

  /**
   * When the election loop last completed a step (an acquire attempt, a renewal or a failed try, a sleep).
   * A loop that stops stepping is stuck; liveness reports it so the kubelet restarts the process.
   */
  get lastProgressMs(): number {
    return this.progressAtMs;
  }

  /** Whether the loop has stepped within `maxSilenceMs` (default twice the lease duration), or is not running. */
  isProgressing(nowMs = Date.now(), maxSilenceMs = 2 * this.options.leaseDurationMs): boolean {
    return !this.runPromise || nowMs - this.progressAtMs <= maxSilenceMs;
  }

  /** Stops campaigning and renewing WITHOUT touching the lease (what a crash looks like to others). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopController.abort();
    await this.runPromise;
  }

  /** Stops, and if leading, clears the holder so a standby takes over at once. Returns whether it released. */
  async release(): Promise<boolean> {
    this.stopped = true;
    const wasLeading = this.leading;
    this.stopController.abort();
    await this.runPromise;
    if (!wasLeading) return false;
    try {
      const lease = await this.client.request<Lease>("GET", this.path, {
        timeoutMs: this.options.renewDeadlineMs,
      });
      if (lease.spec?.holderIdentity !== this.options.identity) return false;
      const now = microTime();
      await this.client.replace<Lease>({
        ...lease,
        spec: {
          ...lease.spec,
          holderIdentity: null,
          // A 1 s lease: even a candidate that ignores the empty holder waits at most 1 s.
          leaseDurationSeconds: 1,
          acquireTime: now,
          renewTime: now,
        },
      });
      this.log.info("released the lease");
      return true;
    } catch (err) {
      this.log.warn({ err }, "could not release the lease; it expires after its duration");
      return false;
    }
  }

  private async campaign(stop: AbortSignal): Promise<void> {
    const { retryPeriodMs, jitter } = this.options;
    // Acquire.
    this.progressAtMs = Date.now();
    while (!stop.aborted) {
      const acquired = await this.tryAcquireOrRenew(this.options.renewDeadlineMs);
      this.progressAtMs = Date.now();
      if (acquired) break;
      await abortableSleep(retryPeriodMs * (1 + jitter * Math.random()), stop);
      this.progressAtMs = Date.now();
    }
    if (stop.aborted) return;
    this.terms += 1;
    this.leading = true;
    this.lastRenewMs = Date.now();
    const leaderController = new AbortController();
    this.leaderController = leaderController;
    this.log.info("became leader");
    void Promise.resolve()
      .then(() => this.callbacks?.onStartedLeading(leaderController.signal))
      .catch((err: unknown) => this.log.error({ err }, "onStartedLeading failed"));
    // Renew.
    while (!stop.aborted) {
      await abortableSleep(retryPeriodMs, stop);
      this.progressAtMs = Date.now();
      if (stop.aborted) break;
      const deadline = this.lastRenewMs + this.options.renewDeadlineMs;
      const remaining = deadline - Date.now();
      if (remaining > 0 && (await this.tryAcquireOrRenew(remaining))) {
        this.lastRenewMs = Date.now();
        continue;
      }
      if (Date.now() >= deadline || (this.observed && this.observed.holder !== this.options.identity)) {
        this.log.warn(
          { sinceLastRenewMs: Date.now() - this.lastRenewMs },
          "lost leadership: could not renew the lease in time",
        );
        break;
      }
    }
    this.leading = false;
    leaderController.abort();
    this.leaderController = undefined;
    try {
      this.callbacks?.onStoppedLeading();
    } catch (err) {
      this.log.error({ err }, "onStoppedLeading failed");
    }
  }

  /** One read-decide-write round. Every request must answer within `timeoutMs`. */
  private async tryAcquireOrRenew(timeoutMs: number): Promise<boolean> {
    const { identity, leaseDurationMs } = this.options;
    const nowIso = microTime();
    const leaseDurationSeconds = Math.ceil(leaseDurationMs / 1000);
    let lease: Lease | undefined;
    try {
      lease = await this.client.request<Lease>("GET", this.path, { timeoutMs });
    } catch (err) {
      if (!isNotFound(err)) {
        this.log.debug({ err }, "reading the lease failed");
        return false;
      }
    }
    if (lease) this.observe(lease.spec ?? {});
    const decision = decideLeaseAction(lease?.spec, identity, Date.now(), this.observedAtMs, leaseDurationMs);
    if (decision === "wait") return false;
    try {
      if (decision === "create") {
        await this.client.request<Lease>(
          "POST",
          pathFor({ apiVersion: "coordination.k8s.io/v1", kind: "Lease", namespace: this.options.namespace }),
          {
            timeoutMs,
            body: {
              apiVersion: "coordination.k8s.io/v1",
              kind: "Lease",
              metadata: { name: this.options.name, namespace: this.options.namespace },
              spec: {
                holderIdentity: identity,
                leaseDurationSeconds,
                acquireTime: nowIso,
                renewTime: nowIso,
                leaseTransitions: 0,
              },
            },
          },
        );
        this.observe({ holderIdentity: identity, renewTime: nowIso });
        return true;
      }
      const previous = lease!.spec ?? {};
      const spec: LeaseSpec =
        decision === "renew"
          ? { ...previous, leaseDurationSeconds, renewTime: nowIso }
          : {
              holderIdentity: identity,
              leaseDurationSeconds,
              acquireTime: nowIso,
              renewTime: nowIso,
              leaseTransitions: (previous.leaseTransitions ?? 0) + 1,
            };
      // The resourceVersion we read makes this a compare-and-swap: a racing candidate gets 409.
      await this.client.request<Lease>("PUT", this.path, { timeoutMs, body: { ...lease!, spec } });
      this.observe(spec);
      return true;
    } catch (err) {
      if (isConflict(err) || isAlreadyExists(err)) this.log.debug("lost a race for the lease");
      else this.log.debug({ err }, "writing the lease failed");
      return false;
    }
  }

  private observe(spec: LeaseSpec): void {
    const holder = spec.holderIdentity ?? "";
    const renewTime = spec.renewTime ?? "";
    if (this.observed?.holder === holder && this.observed.renewTime === renewTime) return;
    const holderChanged = this.observed?.holder !== holder;
    this.observed = { holder, renewTime };
    this.observedAtMs = Date.now();
    if (holderChanged && holder) {
      this.log.info({ leader: holder }, "new leader observed");
      try {
        this.callbacks?.onNewLeader?.(holder);
      } catch (err) {
        this.log.error({ err }, "onNewLeader failed");
      }
    }
  }
}
