/**
 * Engine faults (issue 11 §3): engine pods whose /metrics hang, return garbage, return a body larger than
 * any scraper should read, or redirect elsewhere; and an engine that dies in the middle of a streamed
 * answer while its pod stays Ready. The operator (a real process) and the gateway (real code, in this
 * process) face simulated engines bound to the KWOK pods' IPs.
 *
 * What must hold:
 * - the autoscaler holds the faulty ModelDeployment's replicas (idle, it would otherwise scale down after
 *   its stabilization window), and says why in a bounded status reason that quotes no body text;
 * - nobody follows the redirect (a trap server on loopback counts requests: 0), neither the operator's
 *   scraper nor the gateway's;
 * - a hanging /metrics stalls nothing: a healthy idle ModelDeployment beside it is scaled down in time;
 * - the gateway ends the cut stream promptly with an error (no hang) and sends the next requests to the
 *   other pod, all answered.
 * Converge is timed from the engine's death to the first request served elsewhere.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { API_GROUP, API_VERSION, KIND, type ModelDeployment } from "../../operator/api/modeldeployment.js";
import type { KubeObject } from "../../operator/runtime/kube-client.js";
import type { EngineSpec } from "../engine/fleet.js";
import type { EngineFaults } from "../engine/server.js";
import type { FleetCheck } from "./invariants.js";
import {
  createNamespace,
  dropNamespace,
  observeFleet,
  startOperator,
  type ChaosContext,
  type ChaosRow,
} from "./scenarios.js";
import { complete, startChaosEngines, startChaosGateway, type Answer } from "./serving.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The status field bound the operator promises (issue 11 §1). */
const MAX_REASON_CHARS = 1024;

function spec(model: string, replicas: number, autoscaling?: { maxReplicas: number; windowSeconds: number }): Record<string, unknown> {
  return {
    model: { name: model, source: { huggingFace: { repo: "meta-llama/Llama-3.2-1B-Instruct" } }, maxContextLength: 4096 },
    engine: { kind: "vllm" },
    gpu: { products: ["NVIDIA-L4"] },
    replicas,
    ...(autoscaling
      ? {
          autoscaling: {
            enabled: true,
            minReplicas: 1,
            maxReplicas: autoscaling.maxReplicas,
            scaleDownStabilizationSeconds: autoscaling.windowSeconds,
          },
        }
      : {}),
  };
}

export async function engineFaults(
  context: ChaosContext,
  options: { windowSeconds: number; requestsAfterDeath: number },
): Promise<ChaosRow> {
  const namespace = "chaos-engines";
  await createNamespace(context, namespace);
  const notes: string[] = [];
  const problems: string[] = [];
  let lost = 0;
  let duplicate = 0;
  let orphaned = 0;
  let checked = 0;

  // Anything that follows the redirect lands here.
  let trapHits = 0;
  const trap = createServer((_req, res) => {
    trapHits++;
    res.end("# steered\n");
  });
  await new Promise<void>((resolve) => trap.listen(0, "127.0.0.1", resolve));
  const trapUrl = `http://127.0.0.1:${(trap.address() as AddressInfo).port}/metrics`;

  // The faulty ModelDeployment's four engines get one metrics fault each; the stream one's first engine dies.
  const METRICS_FAULTS: Array<[string, EngineFaults]> = [
    ["hang", { metricsDelayMs: 10 * 60_000 }],
    ["garbage", { garbageMetrics: true }],
    ["huge", { hugeMetricsBytes: 9 * 1024 * 1024 }],
    ["redirect", { metricsRedirectTo: trapUrl }],
  ];
  // By pod, so an engine the fleet starts again (its port was busy) keeps its fault.
  const assigned = new Map<string, [string, EngineFaults]>();
  let dying: string | undefined;
  const faultsFor = (engine: EngineSpec): EngineFaults | undefined => {
    const pod = engine.key.split("/")[1] ?? "";
    if (!assigned.has(pod)) {
      if (pod.startsWith("faulty-")) {
        const faulty = [...assigned.keys()].filter((name) => name.startsWith("faulty-")).length;
        assigned.set(pod, METRICS_FAULTS[faulty % METRICS_FAULTS.length]!);
      } else if (pod.startsWith("stream-") && dying === undefined) {
        dying = pod;
        assigned.set(pod, ["dies mid-stream", { dieMidStreamAfterChunks: 3 }]);
      }
    }
    return assigned.get(pod)?.[1];
  };

  const operator = await startOperator(context, namespace, "engines-0", context.cluster.kubeconfigPath, {
    GPUFLEET_SCRAPE_INTERVAL_SECONDS: "1",
    GPUFLEET_SCRAPE_TIMEOUT_SECONDS: "1",
  });
  const engines = startChaosEngines(context, namespace, faultsFor);
  const gateway = await startChaosGateway(context, namespace);
  const read = (name: string) =>
    context.client.get<ModelDeployment & KubeObject>(`/apis/${API_GROUP}/${API_VERSION}/namespaces/${namespace}/modeldeployments/${name}`);
  const enginesOf = (prefix: string) => [...engines.servers().keys()].filter((key) => key.startsWith(`${namespace}/${prefix}-`));
  const waitUntil = async <T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T | undefined> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await Promise.resolve(probe()).catch(() => undefined);
      if (value !== undefined) return value;
      if (Date.now() > deadline) {
        problems.push(`not within ${Math.round(timeoutMs / 1000)} s: ${what}`);
        return undefined;
      }
      await sleep(250);
    }
  };

  let rerouteSeconds: number | undefined;
  try {
    const window = options.windowSeconds;
    for (const [name, body] of [
      ["faulty", spec("faulty", 4, { maxReplicas: 4, windowSeconds: window })],
      ["healthy", spec("healthy", 2, { maxReplicas: 3, windowSeconds: window })],
      ["stream", spec("stream", 2)],
    ] as const)
      await context.client.apply(
        { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, metadata: { name, namespace }, spec: body } as KubeObject,
        { fieldManager: "chaos-user", force: true },
      );
    const bound = context.convergeTimeoutMs;
    const faultyUp = await waitUntil("four engines of faulty running", bound, () => (enginesOf("faulty").length === 4 ? performance.now() : undefined));

    // The autoscaler side and the gateway side run at once.
    const autoscaler = async () => {
      if (faultyUp === undefined) return;
      // Not stalled: the healthy idle ModelDeployment is scaled down beside the hanging pods.
      const healthyDown = await waitUntil("healthy (idle) scaled down from 2 to 1 while faulty's /metrics hang", (window + 90) * 1000, async () =>
        (await read("healthy")).spec.replicas === 1 ? performance.now() : undefined,
      );
      checked++;
      if (healthyDown === undefined) lost++; // a decision the autoscaler did not make
      else notes.push(`healthy scaled down ${((healthyDown - faultyUp) / 1000).toFixed(1)} s after faulty's engines started (window ${window} s)`);
      // Held: well past faulty's window, still at 4, saying why, bounded, quoting no body.
      const pastWindow = faultyUp + (window + 5) * 1000;
      await sleep(Math.max(0, pastWindow - performance.now()));
      const faulty = await read("faulty");
      const reason = faulty.status?.autoscaler?.reason ?? "";
      checked++;
      if (faulty.spec.replicas !== 4 || (faulty.metadata.generation ?? 0) > 1) {
        duplicate++; // a scale write on metrics that said nothing
        problems.push(`faulty: replicas ${faulty.spec.replicas}, generation ${faulty.metadata.generation} (scaled on broken metrics)`);
      }
      if (!/holding at 4/.test(reason)) problems.push(`faulty: reason does not say it holds: ${reason.slice(0, 200)}`);
      const leaked = ["<html", "not metrics", "xxxxxxxx", trapUrl, "steered"].filter((text) => reason.includes(text));
      if (reason.length > MAX_REASON_CHARS || leaked.length > 0)
        problems.push(`faulty: status reason of ${reason.length} characters quotes ${leaked.join(", ") || "nothing"} (bound ${MAX_REASON_CHARS})`);
      notes.push(`faulty held at ${faulty.spec.replicas} ${((performance.now() - faultyUp) / 1000).toFixed(0)} s after its engines started (${[...assigned.values()].map(([name]) => name).join(", ")}): "${reason.slice(0, 160)}${reason.length > 160 ? "…" : ""}"`);
    };

    const gatewaySide = async () => {
      const routable = await waitUntil("stream routable through the gateway on both pods", bound, () => {
        const route = gateway.gateway.fleet.route("stream");
        return route && route.endpoints.filter((e) => e.ready).length === 2 && dying ? route : undefined;
      });
      if (!routable) return;
      // Streams four at a time (the gateway spreads concurrent requests over both pods by load) until one
      // lands on the engine that dies.
      const cuts: Answer[] = [];
      let cutAt = 0;
      for (let round = 0; round < 4 && cuts.length === 0; round++) {
        const answers = await Promise.all(
          Array.from({ length: 4 }, () => complete(gateway.url, "stream", { stream: true, maxTokens: 40, timeoutMs: 20_000 })),
        );
        for (const answer of answers) {
          checked++;
          if (answer.failure === "hung") {
            lost++;
            problems.push(`a stream through the gateway hung (${(answer.ms / 1000).toFixed(1)} s)`);
          } else if (answer.endpoint === dying || !answer.body.includes("[DONE]")) {
            cuts.push(answer);
            cutAt = performance.now();
          }
        }
      }
      if (cuts.length === 0) {
        problems.push(`no stream landed on ${dying} in 16 streams`);
        lost++;
        return;
      }
      for (const cut of cuts) {
        const cleanError = cut.status === 200 && cut.body.includes("upstream_disconnected") && !cut.body.includes("[DONE]");
        if (!cleanError) {
          lost++;
          problems.push(`a cut stream did not end with the gateway's error event: HTTP ${cut.status}${cut.failure ? ` ${cut.failure}` : ""}, ${cut.body.slice(-200)}`);
        }
      }
      notes.push(`${cuts.length} stream(s) cut by the engine's death, each ended by the gateway within ${(Math.max(...cuts.map((c) => c.ms)) / 1000).toFixed(1)} s`);
      // The pod is still Ready; the gateway must send everything else to the other one.
      let served = 0;
      for (let i = 0; i < options.requestsAfterDeath; i++) {
        const answer = await complete(gateway.url, "stream", { stream: i % 2 === 0, maxTokens: 8, timeoutMs: 20_000 });
        checked++;
        const ok = answer.status === 200 && !answer.failure && answer.endpoint !== dying && (i % 2 !== 0 || answer.body.includes("[DONE]"));
        if (ok) {
          served++;
          rerouteSeconds ??= (performance.now() - cutAt) / 1000;
        } else {
          lost++;
          problems.push(`request ${i} after the death: HTTP ${answer.status}${answer.failure ? ` ${answer.failure}` : ""} from ${answer.endpoint ?? "?"}`);
        }
      }
      notes.push(`${served} of ${options.requestsAfterDeath} requests after the death served by the other pod`);
    };
    await Promise.all([autoscaler(), gatewaySide()]);

    checked++;
    if (trapHits > 0) {
      orphaned += trapHits; // requests steered off to an address the engine chose
      problems.push(`the redirect target was asked ${trapHits} times (a scraper followed the redirect)`);
    }
    const fleet: FleetCheck = await observeFleet(context.client, namespace, new Set(["faulty", "healthy", "stream"]));
    return {
      fault: "engine faults: /metrics hang/garbage/huge/redirect, engine dies mid-stream",
      runs: METRICS_FAULTS.length + 1,
      check: {
        objectsChecked: fleet.objectsChecked + checked,
        lost: fleet.lost + lost,
        duplicate: fleet.duplicate + duplicate,
        orphaned: fleet.orphaned + orphaned,
        stale: fleet.stale,
        problems: [...fleet.problems, ...problems].slice(0, 20),
      },
      convergeSeconds: [rerouteSeconds],
      notes,
    };
  } finally {
    await gateway.stop();
    await engines.stop();
    await operator.process.kill("SIGTERM");
    await new Promise<void>((resolve) => trap.close(() => resolve()));
    await dropNamespace(context, namespace);
  }
}
