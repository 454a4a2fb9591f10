/**
 * Where the time to a first token goes when a request wakes a model from zero: waiting for the
 * operator (request sent → spec.replicas ≥ 1: the gateway holds it and writes its demand, the operator
 * scales), pod start (→ the engine listens on the pod IP: Deployment, ReplicaSet, scheduler, KWOK's
 * kubelet, the simulator starting the engine), model load (→ the engine's /health answers 200) and
 * release → first token (the gateway releases the held request; prefill). Each phase is polled every
 * 25 ms (resolution ±25 ms). Used by sim/bench/scale-from-zero.ts and the demo (sim/demo.ts).
 */
import type { RequestOutcome } from "../loadgen/loadgen.js";

export interface WakeSplit {
  operatorMs: number;
  podStartMs: number;
  modelLoadMs: number;
  firstTokenMs: number;
  totalMs: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every 25 ms until it returns true; returns when (performance.now()). */
export async function firstTime(
  probe: () => Promise<boolean>,
  deadlineMs: number,
  what: string,
): Promise<number> {
  for (;;) {
    if (await probe().catch(() => false)) return performance.now();
    if (performance.now() > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

async function engineAnswers(url: string, wantOk: boolean): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(1_000), redirect: "error" });
  await response.body?.cancel();
  return wantOk ? response.status === 200 : true;
}

export interface WakeProbes {
  /** performance.now() when the waking request was sent. */
  sentAt: number;
  /** Its outcome (sim/loadgen sendRequest). */
  outcome: Promise<RequestOutcome>;
  /** The ModelDeployment's spec.replicas now. */
  replicas: () => Promise<number>;
  /** The IP of a pod of the ModelDeployment that is not terminating, once it has one. */
  podIP: () => Promise<string | undefined>;
  /** The engine's port on the pod (default 8000). */
  enginePort?: number;
  /** performance.now() after which a phase not reached fails. */
  deadlineMs: number;
}

/** Times the phases of one wake; throws if the request fails or a phase is not reached in time. */
export async function timeWake(p: WakeProbes): Promise<WakeSplit> {
  const scaledAt = await firstTime(async () => (await p.replicas()) >= 1, p.deadlineMs, "spec.replicas 1");
  let health = "";
  const listeningAt = await firstTime(
    async () => {
      const ip = await p.podIP();
      if (!ip) return false;
      health = `http://${ip}:${p.enginePort ?? 8000}/health`;
      return engineAnswers(health, false);
    },
    p.deadlineMs,
    "engine listening",
  );
  const loadedAt = await firstTime(() => engineAnswers(health, true), p.deadlineMs, "engine /health 200");
  const result = await p.outcome;
  if (!result.ok || result.ttftMs === undefined)
    throw new Error(`the waking request failed: ${result.error ?? "no first token"}`);
  return {
    operatorMs: scaledAt - p.sentAt,
    podStartMs: listeningAt - scaledAt,
    modelLoadMs: loadedAt - listeningAt,
    firstTokenMs: p.sentAt + result.ttftMs - loadedAt,
    totalMs: result.ttftMs,
  };
}
