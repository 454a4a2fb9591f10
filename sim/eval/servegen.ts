/**
 * ServeGen (Alibaba Cloud Model Studio, 14 days; Xiang et al., arXiv 2505.09999, Apache-2.0) as
 * demand for the evaluation, from ../shared/data/workload (see its README):
 * - servegen-client-windows-<model>.csv: per client and 10-minute window, the request rate and the
 *   fitted inter-arrival distribution (Gamma or Weibull, shape) with its coefficient of variation;
 * - servegen-aggregate-rate-10min.csv: per window, the rate-weighted mean input and output tokens.
 * Two ways to turn them into load, both from the per-client fits:
 * - `serveGenRequests`: single requests, each client a renewal process with its fitted distribution
 *   rescaled to the window's rate (for the discrete-event simulation of a short span);
 * - `serveGenSeconds`: per-second totals for multi-day spans (the fluid simulation, ./fluid.ts):
 *   a renewal process of rate r and inter-arrival CV c has a count variance of about r·c² per
 *   second, so the second's requests are Normal(Σ r, Σ r·c²) over the clients, and its tokens add
 *   the size variance (sizes exponential around the window's means: CV 1).
 * `loadScale` multiplies every client's rate (the service is ~1,000 requests/s; the evaluation
 * sizes a fleet of tens of replicas).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { seededRandom, sharedDataDir, type Trace, type TraceRequest } from "./traces.js";

export type ServeGenModel = "m-small" | "m-mid";
/**
 * Inter-arrival CVs above this are capped in the per-second totals. A few fits, made on a handful
 * of arrivals, have CVs of several hundred; r·c² is the count variance over long spans only, and at
 * c = 800 it would put 10^8 on one second. The single-request generator keeps every fit as it is.
 */
export const MAX_COUNT_CV = 4;
export const SERVEGEN_WINDOW_SECONDS = 600;

export interface ServeGenClientWindow {
  client: number;
  rate: number;
  cv: number;
  dist: "Gamma" | "Weibull" | "";
  shape: number;
}

export interface ServeGenWindow {
  startS: number;
  /** Σ client rates, requests/s. */
  rate: number;
  /** Σ rate × CV², the per-second count variance. */
  countVariance: number;
  meanInputTokens: number;
  meanOutputTokens: number;
  clients: ServeGenClientWindow[];
}

export interface ServeGen {
  model: ServeGenModel;
  windows: ServeGenWindow[];
}

function csvRows(file: string): string[][] {
  return readFileSync(file, "utf8")
    .split("\n")
    .slice(1)
    .filter((l) => l.trim() !== "")
    .map((l) => l.split(","));
}

export function loadServeGen(
  model: ServeGenModel,
  dataDir = path.join(sharedDataDir(), "workload"),
): ServeGen {
  const tokens = new Map<number, { input: number; output: number }>();
  for (const r of csvRows(path.join(dataDir, "servegen-aggregate-rate-10min.csv"))) {
    if (r[0] !== model) continue;
    tokens.set(Number(r[1]), { input: Number(r[6]), output: Number(r[7]) });
  }
  const byWindow = new Map<number, ServeGenClientWindow[]>();
  for (const r of csvRows(path.join(dataDir, `servegen-client-windows-${model}.csv`))) {
    const rate = Number(r[4]);
    if (!(rate > 0)) continue;
    const start = Number(r[3]);
    const cv = Number(r[5]);
    const list = byWindow.get(start) ?? [];
    list.push({
      client: Number(r[2]),
      rate,
      cv: Number.isFinite(cv) && cv > 0 ? cv : 1,
      dist: (r[6] === "Gamma" || r[6] === "Weibull" ? r[6] : "") as ServeGenClientWindow["dist"],
      shape: Number(r[7]),
    });
    byWindow.set(start, list);
  }
  const starts = [...tokens.keys()].sort((a, b) => a - b);
  let lastTokens = { input: 100, output: 20 };
  const windows = starts.map((startS) => {
    const clients = byWindow.get(startS) ?? [];
    const t = tokens.get(startS);
    if (t && t.input > 0) lastTokens = t;
    return {
      startS,
      rate: clients.reduce((s, c) => s + c.rate, 0),
      countVariance: clients.reduce((s, c) => s + c.rate * Math.min(c.cv, MAX_COUNT_CV) ** 2, 0),
      meanInputTokens: lastTokens.input,
      meanOutputTokens: Math.max(1, lastTokens.output),
      clients,
    };
  });
  return { model, windows };
}

/** Standard normal from two uniforms (Box-Muller). */
function normal(random: () => number): number {
  const u = Math.max(1e-12, random());
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

export interface SecondsDemand {
  /** First second (from the data's midnight). */
  startS: number;
  requests: Float64Array;
  promptTokens: Float64Array;
  outputTokens: Float64Array;
}

/** Per-second demand over [fromS, toS) at `loadScale`, deterministic for a seed. */
export function serveGenSeconds(
  sg: ServeGen,
  options: { fromS: number; toS: number; loadScale: number; seed: number },
): SecondsDemand {
  const { fromS, toS, loadScale } = options;
  const n = Math.max(0, Math.floor(toS - fromS));
  const random = seededRandom(options.seed);
  const out: SecondsDemand = {
    startS: fromS,
    requests: new Float64Array(n),
    promptTokens: new Float64Array(n),
    outputTokens: new Float64Array(n),
  };
  for (let i = 0; i < n; i++) {
    const w = sg.windows[Math.floor((fromS + i) / SERVEGEN_WINDOW_SECONDS)];
    if (!w) continue;
    const mean = w.rate * loadScale;
    const sd = Math.sqrt(w.countVariance * loadScale);
    const count = Math.max(0, mean + sd * normal(random));
    // Exponential sizes (CV 1): the sum of `count` of them has variance count × mean².
    const sizeNoise = (m: number) => Math.max(0, count * m + Math.sqrt(count) * m * normal(random));
    out.requests[i] = count;
    out.promptTokens[i] = sizeNoise(w.meanInputTokens);
    out.outputTokens[i] = sizeNoise(w.meanOutputTokens);
  }
  return out;
}

/** A Gamma(shape, 1) variate (Marsaglia and Tsang; shape < 1 by the boost u^(1/shape)). */
function gamma(shape: number, random: () => number): number {
  if (shape < 1) return gamma(shape + 1, random) * Math.pow(Math.max(1e-12, random()), 1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(random);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = random();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Log-gamma (Lanczos), for the Weibull mean. */
function lnGamma(z: number): number {
  const g = [
    676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (z < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * z)) - lnGamma(1 - z);
  z -= 1;
  let x = 0.99999999999980993;
  for (let i = 0; i < g.length; i++) x += (g[i] as number) / (z + i + 1);
  const t = z + g.length - 0.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(x);
}

/** One inter-arrival time with the client's fitted shape, rescaled to mean 1/rate. */
function interArrival(c: ServeGenClientWindow, rate: number, random: () => number): number {
  if (c.dist === "Weibull" && c.shape > 0) {
    const meanUnit = Math.exp(lnGamma(1 + 1 / c.shape));
    return Math.pow(-Math.log(Math.max(1e-12, random())), 1 / c.shape) / meanUnit / rate;
  }
  const shape = c.dist === "Gamma" && c.shape > 0 ? c.shape : 1;
  return gamma(shape, random) / shape / rate;
}

const exponential = (mean: number, random: () => number): number =>
  Math.max(1, Math.round(-Math.log(Math.max(1e-12, random())) * mean));

/** Single requests over [fromS, toS): each client a renewal process with its fit. */
export function serveGenRequests(
  sg: ServeGen,
  options: { fromS: number; toS: number; loadScale: number; seed: number },
): Trace {
  const { fromS, toS, loadScale } = options;
  const random = seededRandom(options.seed);
  const requests: TraceRequest[] = [];
  for (
    let w0 = Math.floor(fromS / SERVEGEN_WINDOW_SECONDS) * SERVEGEN_WINDOW_SECONDS;
    w0 < toS;
    w0 += SERVEGEN_WINDOW_SECONDS
  ) {
    const w = sg.windows[w0 / SERVEGEN_WINDOW_SECONDS];
    if (!w) continue;
    const lo = Math.max(fromS, w0);
    const hi = Math.min(toS, w0 + SERVEGEN_WINDOW_SECONDS);
    for (const c of w.clients) {
      const rate = c.rate * loadScale;
      // Start at a random phase of the first gap, then renew.
      let t = lo + interArrival(c, rate, random) * random();
      while (t < hi) {
        requests.push({
          arrivalMs: Math.round((t - fromS) * 1000),
          promptTokens: exponential(w.meanInputTokens, random),
          outputTokens: exponential(w.meanOutputTokens, random),
        });
        t += interArrival(c, rate, random);
      }
    }
  }
  requests.sort((a, b) => a.arrivalMs - b.arrivalMs);
  return { name: `servegen-${sg.model}`, requests, durationMs: (toS - fromS) * 1000 };
}

/** Per-second totals of a request trace (the fluid simulation fed exactly the DES's arrivals). */
export function secondsOfTrace(trace: Trace, startS = 0): SecondsDemand {
  const n = Math.ceil(trace.durationMs / 1000);
  const out: SecondsDemand = {
    startS,
    requests: new Float64Array(n),
    promptTokens: new Float64Array(n),
    outputTokens: new Float64Array(n),
  };
  for (const r of trace.requests) {
    const i = Math.min(n - 1, Math.floor(r.arrivalMs / 1000));
    out.requests[i]! += 1;
    out.promptTokens[i]! += r.promptTokens;
    out.outputTokens[i]! += r.outputTokens;
  }
  return out;
}
