/**
 * A load ramp: a trace's request sizes (prompt and output tokens, in trace order) re-timed as a
 * Poisson process whose rate stays at `fromPerSecond` for `flatMs` (a trickle), rises linearly to
 * `peakPerSecond` over `upMs`, stays
 * at the peak for `holdMs`, then falls back to `fromPerSecond` over `downMs`. Real traffic that grows
 * over a minute rather than arriving as one burst: what an autoscaler can follow. Deterministic for a
 * seed (sim/prng.ts). Pure.
 */
import { prng } from "../prng.js";
import type { ScheduledRequest, TraceRequest } from "./trace.js";

export interface RampOptions {
  fromPerSecond: number;
  peakPerSecond: number;
  /** The trickle before the rise (default 0). */
  flatMs?: number;
  upMs: number;
  holdMs: number;
  downMs: number;
  seed?: number;
}

export function rampDurationMs(o: RampOptions): number {
  return (o.flatMs ?? 0) + o.upMs + o.holdMs + o.downMs;
}

/** Requests per second the ramp asks for at `tMs` after its start (0 outside the ramp). */
export function rampRateAt(o: RampOptions, tMs: number): number {
  if (tMs < 0 || tMs > rampDurationMs(o)) return 0;
  if (tMs < (o.flatMs ?? 0)) return o.fromPerSecond;
  return rampRateAfterTrickle(o, tMs - (o.flatMs ?? 0));
}

function rampRateAfterTrickle(o: RampOptions, tMs: number): number {
  const span = o.peakPerSecond - o.fromPerSecond;
  if (tMs < o.upMs) return o.fromPerSecond + (span * tMs) / o.upMs;
  if (tMs <= o.upMs + o.holdMs) return o.peakPerSecond;
  return o.peakPerSecond - (span * (tMs - o.upMs - o.holdMs)) / Math.max(1, o.downMs);
}

/**
 * The schedule: arrivals by thinning a Poisson process at the peak rate (each candidate kept with
 * probability rate(t) / peak), the i-th arrival carrying the i-th request's sizes (the trace wraps
 * around if the ramp needs more requests than it has).
 */
export function rampSchedule(trace: readonly TraceRequest[], o: RampOptions): ScheduledRequest[] {
  if (trace.length === 0) throw new Error("rampSchedule needs a non-empty trace");
  if (!(o.peakPerSecond > 0) || !(o.fromPerSecond >= 0) || o.fromPerSecond > o.peakPerSecond)
    throw new Error("rampSchedule needs 0 <= fromPerSecond <= peakPerSecond, peakPerSecond > 0");
  const random = prng(o.seed ?? 1);
  const end = rampDurationMs(o);
  const out: ScheduledRequest[] = [];
  for (let t = 0; ;) {
    t += (-Math.log(1 - random()) / o.peakPerSecond) * 1000;
    if (t > end) break;
    if (random() * o.peakPerSecond >= rampRateAt(o, t)) continue;
    const sizes = trace[out.length % trace.length] as TraceRequest;
    out.push({ ...sizes, offsetMs: t, sendAtMs: t, index: out.length });
  }
  return out;
}
