/**
 * Per pod, an approximate index of the prompt blocks (prefix.ts hashes) the gateway has sent there:
 * what that pod's engine probably still holds in its prefix cache. Memory is bounded: at most
 * `maxBlocksPerPod` hashes per pod (least recently sent evicted first) and at most `maxPods` pods
 * (the pod least recently sent to is dropped). A hash is a number, so a pod's index costs a Map entry
 * per block whatever the prompt text was. (vLLM production-stack's router keeps an unbounded prefix
 * trie of prompt text, vllm-project/production-stack#687; this is the bounded alternative.)
 *
 * Within one prompt the blocks are inserted last block first, so the head of a chain is the most
 * recent entry and the tail of a chain is evicted first — as vLLM frees a finished request's blocks
 * tail first, so that its cache keeps the shared heads of conversations longest.
 */
export interface PrefixIndexOptions {
  /**
   * Hashes kept per pod (the gateway sets it per model from the plan: gateway/fleet.ts routeLimits). About twice what the engine can cache works best on the routing benchmark
   * (sim/eval/routing.ts prefixIndexBlocksFor): the default, 16,384 blocks of ~64 tokens (~1M tokens),
   * is twice the KV cache of Llama 3.1 8B on an H100 (~450k tokens), at ~1-2 MB of Map entries per pod.
   */
  maxBlocksPerPod: number;
  /** Pods tracked at most (a model's replicas; pods that vanish are also dropped by `retainPods`). */
  maxPods: number;
}

export const DEFAULT_PREFIX_INDEX_OPTIONS: PrefixIndexOptions = { maxBlocksPerPod: 16_384, maxPods: 1024 };

export class PrefixIndex {
  readonly options: PrefixIndexOptions;
  /** Pod name -> (block hash -> last time it was sent, ms), oldest first. Pods in least-recent-first order. */
  private readonly pods = new Map<string, Map<number, number>>();

  constructor(options: Partial<PrefixIndexOptions> = {}) {
    this.options = { ...DEFAULT_PREFIX_INDEX_OPTIONS, ...options };
    if (!(this.options.maxBlocksPerPod >= 1) || !(this.options.maxPods >= 1)) {
      throw new Error("PrefixIndex bounds must be at least 1");
    }
  }

  /** Remember that the prompt with these block hashes was sent to `pod` at `nowMs`. */
  record(pod: string, hashes: readonly number[], nowMs: number): void {
    let blocks = this.pods.get(pod);
    if (blocks === undefined) {
      while (this.pods.size >= this.options.maxPods) {
        const oldest = this.pods.keys().next().value as string;
        this.pods.delete(oldest);
      }
      blocks = new Map();
    } else {
      this.pods.delete(pod);
    }
    this.pods.set(pod, blocks);
    // Only the first maxBlocksPerPod blocks of a prompt can be kept; insert them tail first.
    const n = Math.min(hashes.length, this.options.maxBlocksPerPod);
    for (let i = n - 1; i >= 0; i--) {
      const h = hashes[i] as number;
      blocks.delete(h);
      blocks.set(h, nowMs);
    }
    while (blocks.size > this.options.maxBlocksPerPod) {
      const oldest = blocks.keys().next().value as number;
      blocks.delete(oldest);
    }
  }

  /**
   * A new per-pod bound (the gateway sizes it from the plan's KV-cache tokens); a smaller one takes
   * effect on each pod's next `record`, which evicts down to it.
   */
  resize(maxBlocksPerPod: number): void {
    if (!(maxBlocksPerPod >= 1)) throw new Error("PrefixIndex bounds must be at least 1");
    this.options.maxBlocksPerPod = Math.floor(maxBlocksPerPod);
  }

  /** How many leading blocks of `hashes` `pod` is believed to hold (stops at the first miss). */
  matchedBlocks(pod: string, hashes: readonly number[]): number {
    const blocks = this.pods.get(pod);
    if (blocks === undefined) return 0;
    let n = 0;
    while (n < hashes.length && blocks.has(hashes[n] as number)) n++;
    return n;
  }

  /** Drop pods not in `podNames` (deleted or replaced pods: their engine cache is gone). */
  retainPods(podNames: ReadonlySet<string>): void {
    for (const pod of [...this.pods.keys()]) if (!podNames.has(pod)) this.pods.delete(pod);
  }

  forgetPod(pod: string): void {
    this.pods.delete(pod);
  }

  /** Hashes held for `pod` (0 if unknown). */
  blockCount(pod: string): number {
    return this.pods.get(pod)?.size ?? 0;
  }

  /** Pods tracked. */
  podCount(): number {
    return this.pods.size;
  }

  /** Hashes held over all pods (bounded by maxPods × maxBlocksPerPod). */
  totalBlocks(): number {
    let total = 0;
    for (const blocks of this.pods.values()) total += blocks.size;
    return total;
  }
}
