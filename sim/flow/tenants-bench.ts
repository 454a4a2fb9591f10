/**
 * `npm run bench:tenants`: priority under overload, in simulated time. The Azure code trace (first 20
 * minutes) is split at random, request by request, into three tenants of three tiers and replayed at 1.5x
 * and 3x the fleet's measured capacity through the gateway's own hold queue
 * (gateway/routing/hold-queue.ts), picker (gateway/routing/picker.ts, saturation by maxLoadPerEndpoint)
 * and slot reserve (gateway/tenancy/reserve.ts) onto engine models of the replicas the planner sizes
 * (llama-3.1-8b on one H100). Splits (`--splits`, gold/silver/bronze % of requests): 5/25/70, the top
 * tier a small minority of the traffic (paying production callers on a shared fleet), and 20/30/50, the
 * split of earlier runs, kept so that nothing is hidden.
 *
 * FIFO: one band (wait limit 15 s) and one fairness key: no tiers.
 * Tiered: bands gold 2 / silver 1 / bronze 0, wait limits 30 / 15 / 5 s, fair queueing by tokens; the
 * same with gold's wait limit derived from its TTFT target (UsageTier.maxQueueWaitMs 1500 for 2 s); and
 * that with `--reserve` slots of each pod's load limit that only gold may take.
 * Gold alone: only gold's requests, the fleet to itself (what no scheduler of the shared fleet can beat).
 * Reported per tier: requests, served share, shed (429: refused or pushed out), timed out (503), TTFT
 * p50/p99 of served requests from arrival at the gateway (hold time included), against a 2 s target.
 */
import { parseArgs } from "node:util";
import { HoldQueue, type HoldClass } from "../../gateway/routing/hold-queue.js";
import {
  DEFAULT_PICK_LIMITS,
  DEFAULT_PICK_WEIGHTS,
  newRoutingState,
  pickEndpoint,
} from "../../gateway/routing/picker.js";
import { type SlotReserve, NO_RESERVE, limitsForBand } from "../../gateway/tenancy/reserve.js";
import { EngineModel, type EngineParams } from "../engine/model.js";
import { replicaFor } from "../eval/hardware.js";
import { quantile } from "../eval/fleet.js";
import { scaleUsers, simulatedPods } from "../eval/routing.js";
import { type Trace, loadTrace, seededRandom } from "../eval/traces.js";

interface Tier {
  name: string;
  share: number;
  priority: number;
  /** The band's wait limit (hold queue bandMaxWaitMs). */
  maxWaitMs: number;
  /** The tier's own limit (UsageTier.maxQueueWaitMs, the hold queue's per-request maxWaitMs). */
  queueWaitMs?: number;
}

const TIERS: Tier[] = [
  { name: "gold", share: 0.2, priority: 2, maxWaitMs: 30_000 },
  { name: "silver", share: 0.3, priority: 1, maxWaitMs: 15_000 },
  { name: "bronze", share: 0.5, priority: 0, maxWaitMs: 5_000 },
];
const FIFO_WAIT_MS = 15_000;
const TTFT_TARGET_S = 2;
/**
 * Gold's wait limit derived from its TTFT target: the target less an allowance for the engine's own time
 * to first token once a request is sent (p99 ~0.6 s in these runs), i.e. UsageTier.maxQueueWaitMs 1500.
 */
const GOLD_TARGET_WAIT_MS = 1_500;
const TICK_MS = 10;

interface Outcome {
  tier: string;
  ttftS?: number;
  /** Time held in the gateway before being sent to an engine. */
  holdS?: number;
  result: "served" | "shed" | "timeout" | "unfinished" | "absent";
}

interface Run {
  /** Bands and fair queueing by tier (false: one band, one fairness key, FIFO_WAIT_MS). */
  tiered: boolean;
  tiers: Tier[];
  /** Only this tier's requests arrive (the fleet to itself); the others are left out. */
  only?: string;
  /** The one wait limit when not tiered. */
  fifoWaitMs?: number;
  /** Per-pod slots only the top band (gold) may take (gateway/tenancy/reserve.ts); tiered runs only. */
  reserve?: SlotReserve;
}

interface Pending {
  index: number;
  arrivalMs: number;
  promptTokens: number;
  outputTokens: number;
  tier: Tier;
}

function simulate(
  trace: Trace,
  params: EngineParams,
  replicas: number,
  maxLoad: number,
  run: Run,
  seed: number,
): Outcome[] {
  const { tiered, tiers: TIERS } = run;
  const random = seededRandom(seed);
  const tierOf = trace.requests.map(() => {
    const u = random();
    return u < TIERS[0]!.share ? TIERS[0]! : u < TIERS[0]!.share + TIERS[1]!.share ? TIERS[1]! : TIERS[2]!;
  });
  const { engines, endpoints } = simulatedPods(params, replicas);
  const routing = newRoutingState();
  const limits = { ...DEFAULT_PICK_LIMITS, maxLoadPerEndpoint: maxLoad };
  const reserve = tiered ? (run.reserve ?? NO_RESERVE) : NO_RESERVE;
  const limitsOf = (priority: number) => limitsForBand(limits, priority, reserve);
  const queue = new HoldQueue<Pending>({
    maxPerModel: 100_000,
    maxWaitMs: run.fifoWaitMs ?? FIFO_WAIT_MS,
    ...(tiered ? { bandMaxWaitMs: Object.fromEntries(TIERS.map((t) => [t.priority, t.maxWaitMs])) } : {}),
  });
  const outcomes: Outcome[] = trace.requests.map((_, i) => ({ tier: tierOf[i]!.name, result: "unfinished" }));
  const owner = new Map<string, number>();
  const send = (p: Pending, nowMs: number) => {
    const pick = pickEndpoint(
      { model: "m", prompt: "", blockHashes: [], promptTokens: p.promptTokens },
      endpoints,
      routing,
      DEFAULT_PICK_WEIGHTS,
      nowMs,
      limitsOf(tiered ? p.tier.priority : 0),
    );
    if (!pick) return false;
    const i = endpoints.indexOf(pick.endpoint);
    endpoints[i]!.inFlight++;
    owner.set(`q${p.index}`, i);
    outcomes[p.index]!.holdS = (nowMs - p.arrivalMs) / 1000;
    engines[i]!.enqueue({
      id: `q${p.index}`,
      promptTokens: p.promptTokens,
      maxOutputTokens: p.outputTokens,
      arrivalMs: nowMs,
    });
    return true;
  };
  const requests = trace.requests;
  let next = 0;
  const endMs = (requests[requests.length - 1]?.arrivalMs ?? 0) + 120_000;
  for (let t = 0; t <= endMs; t += TICK_MS) {
    engines.forEach((engine, i) => {
      for (const ev of engine.advanceTo(t)) {
        const index = Number(ev.requestId.slice(1));
        if (ev.kind === "first-token") {
          const o = outcomes[index]!;
          o.ttftS = (ev.atMs - requests[index]!.arrivalMs) / 1000;
          o.result = "served";
        }
        if (ev.kind === "finished" || ev.kind === "rejected") {
          endpoints[i]!.inFlight--;
          owner.delete(ev.requestId);
        }
      }
    });
    for (const e of queue.expire(t)) outcomes[e.item.index]!.result = "timeout";
    while (queue.size("m") > 0) {
      // As the gateway's drain: probe with the band of the entry released next (the slot reserve).
      if (
        !pickEndpoint(
          { model: "m", prompt: "", blockHashes: [] },
          endpoints,
          routing,
          DEFAULT_PICK_WEIGHTS,
          t,
          limitsOf(queue.peek("m")?.priority ?? 0),
        )
      )
        break;
      const [entry] = queue.release("m", 1, t);
      if (!entry || !send(entry.item, t)) break;
    }
    while (next < requests.length && (requests[next]!.arrivalMs ?? 0) <= t) {
      const r = requests[next]!;
      if (run.only !== undefined && tierOf[next]!.name !== run.only) {
        outcomes[next]!.result = "absent";
        next++;
        continue;
      }
      const p: Pending = {
        index: next,
        arrivalMs: r.arrivalMs,
        promptTokens: r.promptTokens,
        outputTokens: r.outputTokens,
        tier: tierOf[next]!,
      };
      next++;
      if (queue.size("m") === 0 && send(p, t)) continue;
      const cls: HoldClass = tiered
        ? {
            priority: p.tier.priority,
            fairnessKey: p.tier.name,
            cost: p.promptTokens + p.outputTokens,
            ...(p.tier.queueWaitMs !== undefined ? { maxWaitMs: p.tier.queueWaitMs } : {}),
          }
        : { cost: p.promptTokens + p.outputTokens };
      const outcome = queue.hold("m", p, t, cls);
      for (const e of outcome.shed ?? []) outcomes[e.item.index]!.result = "shed";
      if (!outcome.held) outcomes[p.index]!.result = "shed";
    }
    if (next >= requests.length && queue.size("m") === 0 && owner.size === 0) break;
  }
  return outcomes;
}

/**
 * Requests per second one replica finishes when the gateway keeps it saturated: `maxLoad` of the trace's
 * requests in flight at all times (closed loop), as the picker's maxLoadPerEndpoint allows.
 */
function replicaCapacity(trace: Trace, params: EngineParams, maxLoad: number): number {
  const engine = new EngineModel(params, { tokenEvents: false });
  const sample = trace.requests.slice(0, 2000);
  let sent = 0;
  let inFlight = 0;
  let done = 0;
  let lastMs = 0;
  const top = (t: number) => {
    while (inFlight < maxLoad && sent < sample.length) {
      const r = sample[sent]!;
      engine.enqueue({
        id: `c${sent}`,
        promptTokens: r.promptTokens,
        maxOutputTokens: r.outputTokens,
        arrivalMs: t,
      });
      sent++;
      inFlight++;
    }
  };
  top(0);
  for (let t = TICK_MS; done < sample.length && t < 24 * 3600_000; t += TICK_MS) {
    for (const ev of engine.advanceTo(t))
      if (ev.kind === "finished" || ev.kind === "rejected") {
        done++;
        inFlight--;
        lastMs = ev.atMs;
      }
    top(t);
  }
  return sample.length / (lastMs / 1000);
}

function report(name: string, outcomes: Outcome[]): string[] {
  const lines: string[] = [];
  for (const tier of TIERS) {
    const mine = outcomes.filter((o) => o.tier === tier.name && o.result !== "absent");
    if (mine.length === 0) continue;
    const hold = mine.filter((o) => o.ttftS !== undefined).map((o) => o.holdS ?? 0).sort((a, b) => a - b);
    const ttft = mine
      .filter((o) => o.ttftS !== undefined)
      .map((o) => o.ttftS as number)
      .sort((a, b) => a - b);
    const count = (r: Outcome["result"]) => mine.filter((o) => o.result === r).length;
    const pct = (n: number) => `${((100 * n) / Math.max(1, mine.length)).toFixed(1)}%`;
    const p99 = ttft.length ? quantile(ttft, 0.99) : NaN;
    lines.push(
      `| ${name} | ${tier.name} | ${mine.length} | ${pct(count("served"))} | ${pct(count("shed"))} | ${pct(count("timeout"))} | ${ttft.length ? quantile(ttft, 0.5).toFixed(2) : "-"} | ${Number.isNaN(p99) ? "-" : p99.toFixed(2)} | ${hold.length ? quantile(hold, 0.99).toFixed(2) : "-"} | ${p99 <= TTFT_TARGET_S ? "yes" : "no"} |`,
    );
  }
  return lines;
}

/** Tiers with the given shares of requests (gold, silver, bronze), bands and wait limits as TIERS. */
function split(shares: readonly number[]): Tier[] {
  return TIERS.map((t, i) => ({ ...t, share: shares[i] ?? 0 }));
}

function parseSplit(text: string): number[] {
  const shares = text.split("/").map((x) => Number(x) / 100);
  if (shares.length !== 3 || shares.some((x) => !(x >= 0)) || Math.abs(shares.reduce((a, b) => a + b, 0) - 1) > 1e-9)
    throw new Error(`--splits: ${text} is not three percentages gold/silver/bronze adding up to 100`);
  return shares;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      minutes: { type: "string", default: "20" },
      replicas: { type: "string", default: "2" },
      "max-load": { type: "string", default: "16" },
      // Gold a minority of the traffic (paying production callers), then the split of earlier runs.
      splits: { type: "string", default: "5/25/70,20/30/50" },
      // Slots per pod reserved for gold (gateway.tenancy.reservedSlotsPerPod), one run each.
      reserve: { type: "string", default: "4,8" },
      loads: { type: "string", default: "1.5,3" },
    },
  });
  const full = loadTrace("azure-code");
  const windowMs = Number(values.minutes) * 60_000;
  const base: Trace = {
    ...full,
    requests: full.requests.filter((r) => r.arrivalMs < windowMs),
    durationMs: windowMs,
  };
  const replica = replicaFor("llama-3.1-8b", "NVIDIA-H100-80GB-HBM3", { maxContextLength: 8192 });
  const replicas = Number(values.replicas);
  const maxLoad = Number(values["max-load"]);
  const reserveSlots = values.reserve.split(",").map(Number).filter((n) => n > 0);
  const capacity = replicaCapacity(base, replica.params, maxLoad) * replicas;
  const rate = base.requests.length / (windowMs / 1000);
  const out = [
    `## Priority under overload (simulated; ${base.name}, first ${values.minutes} min, ${base.requests.length} requests, ${rate.toFixed(2)} req/s)`,
    `Fleet: ${replicas} x llama-3.1-8b on H100 (${replica.gpusPerReplica} GPU each); measured capacity ${capacity.toFixed(2)} req/s (each replica kept at that load with the trace's requests); a pod takes requests while its load < ${maxLoad}. TTFT target ${TTFT_TARGET_S} s.`,
    "",
    "| split g/s/b % | run | tier | requests | served | shed (429) | timed out (503) | TTFT p50 s | TTFT p99 s | held p99 s | p99 within target |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  const notes: string[] = [];
  for (const splitText of values.splits.split(",")) {
    const tiers = split(parseSplit(splitText));
    const targetTiers = tiers.map((t) => (t.name === "gold" ? { ...t, queueWaitMs: GOLD_TARGET_WAIT_MS } : t));
    const runs: Array<[string, Run]> = [
      ["FIFO", { tiered: false, tiers }],
      ["tiered, waits 30/15/5 s", { tiered: true, tiers }],
      [`tiered, gold maxQueueWaitMs ${GOLD_TARGET_WAIT_MS}`, { tiered: true, tiers: targetTiers }],
      ...reserveSlots.map((slots): [string, Run] => [
        `tiered, gold maxQueueWaitMs ${GOLD_TARGET_WAIT_MS}, ${slots} of ${maxLoad} slots per pod reserved for gold`,
        { tiered: true, tiers: targetTiers, reserve: { slotsPerPod: slots, minPriority: tiers[0]!.priority } },
      ]),
      [`gold alone, wait ${GOLD_TARGET_WAIT_MS / 1000} s`, { tiered: false, tiers, only: "gold", fifoWaitMs: GOLD_TARGET_WAIT_MS }],
      ["gold alone, wait 600 s", { tiered: false, tiers, only: "gold", fifoWaitMs: 600_000 }],
    ];
    for (const load of values.loads.split(",").map(Number)) {
      const trace = scaleUsers(base, (load * capacity) / rate, 11);
      for (const [label, run] of runs)
        out.push(...report(`${splitText} | ${load}x ${label}`, simulate(trace, replica.params, replicas, maxLoad, run, 5)));
      // How bursty gold's own demand is: windows in which gold alone asks more than the whole fleet serves.
      const random = seededRandom(5);
      const goldArrivals = trace.requests.filter(() => random() < tiers[0]!.share).map((r) => r.arrivalMs);
      const bursts = [30, 5].map((seconds) => {
        const windows = new Array<number>(Math.ceil(windowMs / (seconds * 1000))).fill(0);
        for (const at of goldArrivals) windows[Math.floor(at / (seconds * 1000))]!++;
        const over = windows.filter((n) => n / seconds > capacity).length;
        return `${over} of ${windows.length} ${seconds}-s windows (busiest ${(Math.max(...windows) / seconds).toFixed(1)} req/s)`;
      });
      notes.push(`split ${splitText}, ${load}x: gold alone asks more than the fleet's capacity in ${bursts.join(" and in ")}.`);
    }
  }
  out.push("", ...notes);
  process.stdout.write(out.join("\n") + "\n");
}

main();
