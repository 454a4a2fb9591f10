/** Endpoint choice for the load generator, and latency statistics. Pure. */

export type BalancePolicy = "round-robin" | "least-outstanding";

export class Balancer {
  private next = 0;
  private readonly outstanding: number[];

  constructor(
    readonly endpoints: readonly string[],
    readonly policy: BalancePolicy,
  ) {
    if (endpoints.length === 0) throw new Error("at least one endpoint is needed");
    this.outstanding = endpoints.map(() => 0);
  }

  /** Picks an endpoint and counts the request as outstanding on it; call `release` when done. */
  acquire(): number {
    let chosen: number;
    if (this.policy === "round-robin") {
      chosen = this.next;
      this.next = (this.next + 1) % this.endpoints.length;
    } else {
      // Fewest in flight; ties go round-robin so equal endpoints share the load.
      chosen = -1;
      for (let k = 0; k < this.endpoints.length; k++) {
        const i = (this.next + k) % this.endpoints.length;
        if (chosen === -1 || (this.outstanding[i] ?? 0) < (this.outstanding[chosen] ?? 0)) chosen = i;
      }
      this.next = (chosen + 1) % this.endpoints.length;
    }
    this.outstanding[chosen] = (this.outstanding[chosen] ?? 0) + 1;
    return chosen;
  }

  release(index: number): void {
    this.outstanding[index] = Math.max(0, (this.outstanding[index] ?? 0) - 1);
  }

  outstandingOn(index: number): number {
    return this.outstanding[index] ?? 0;
  }
}

/** Percentile by linear interpolation between closest ranks (numpy's default). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  const a = sorted[low] as number;
  const b = sorted[high] as number;
  return a + (b - a) * (rank - low);
}

export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function summarize(values: readonly number[]): LatencySummary {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = sorted.reduce((acc, v) => acc + v, 0);
  return {
    count: sorted.length,
    mean: sorted.length === 0 ? Number.NaN : sum / sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length === 0 ? Number.NaN : (sorted.at(-1) as number),
  };
}
