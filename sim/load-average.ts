import { loadavg } from "node:os";

/** One named stretch of a run and the lowest and highest 1-minute load average seen in it. */
interface LoadPhase {
  name: string;
  min: number;
  max: number;
}

const formatPhase = ({ name, min, max }: LoadPhase) =>
  min > max ? `${name} n/a` : `${name} ${min.toFixed(1)}–${max.toFixed(1)}`;

/**
 * The machine's 1-minute load average, sampled every `intervalMs` and kept as min–max per named phase.
 * On a shared machine a benchmark's or chaos run's times say as much about the others' load as about
 * gpufleet, so every figure is printed with the load it was measured under.
 */
export function sampleLoadAverage(intervalMs: number): {
  /** Ends the current phase and starts the named one. */
  phase: (name: string) => void;
  /** The current phase, e.g. "replay 3.1–7.9". */
  current: () => string;
  /** Every phase so far, comma-separated. */
  ranges: () => string;
  stop: () => void;
} {
  const phases: LoadPhase[] = [];
  const sample = () => {
    const current = phases.at(-1);
    if (!current) return;
    const [one = 0] = loadavg();
    current.min = Math.min(current.min, one);
    current.max = Math.max(current.max, one);
  };
  const timer = setInterval(sample, intervalMs);
  timer.unref();
  return {
    phase: (name) => {
      sample();
      phases.push({ name, min: Infinity, max: -Infinity });
      sample();
    },
    current: () => {
      sample();
      const current = phases.at(-1);
      return current ? formatPhase(current) : "n/a";
    },
    ranges: () => {
      sample();
      return phases.map(formatPhase).join(", ");
    },
    stop: () => clearInterval(timer),
  };
}
