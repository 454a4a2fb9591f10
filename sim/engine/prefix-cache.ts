/**
 * The prefix cache of one simulated engine, after vLLM's automatic prefix caching (v1 KV cache
 * manager): a KV block that holds a full block of prompt tokens is identified by a hash chain (the
 * hash of its tokens and of the block before it), so equal ids mean an equal prefix. A new request
 * reuses the longest run of leading blocks already cached and skips their prefill. Blocks referenced
 * by running requests are in use; when no request references a cached block any more it stays cached
 * but counts as free, and is evicted least recently used first when the KV cache needs room. A
 * finished request's blocks are freed tail first, so a conversation's shared head outlives its tail.
 *
 * Units: the cache works on the blocks the request names (`blockTokens` each: 512 for the Mooncake
 * trace's `hash_ids`, 64 for text hashed by the gateway's prefix.ts), each costing
 * ceil(tokens / engine block size) KV blocks of 16 tokens. A 512-token trace block is thus 32 vLLM
 * blocks that are cached, hit and evicted together: hits are the same as vLLM's on 16-token blocks
 * whenever prefixes are shared in whole trace blocks, which is all the trace can express.
 */
export interface CachedBlock {
  hash: number;
  /** Prompt tokens the block holds. */
  tokens: number;
  /** KV blocks (of the engine's block size) it takes. */
  engineBlocks: number;
  /** Running requests that use it; 0 = cached but free (evictable). */
  refs: number;
}

export class PrefixCache {
  private readonly blocks = new Map<number, CachedBlock>();
  /** refs == 0, least recently released first. */
  private readonly free = new Map<number, CachedBlock>();
  /** KV blocks held by unreferenced cached blocks (free space that still holds a cached prefix). */
  evictableEngineBlocks = 0;

  /** How many leading hashes are cached (used or free). */
  leadingHits(hashes: readonly number[]): number {
    let n = 0;
    while (n < hashes.length && this.blocks.has(hashes[n] as number)) n++;
    return n;
  }

  get(hash: number): CachedBlock | undefined {
    return this.blocks.get(hash);
  }

  /** Take a reference on a cached block; returns the KV blocks that moved from free to used. */
  acquire(block: CachedBlock): number {
    block.refs++;
    if (block.refs === 1) {
      this.free.delete(block.hash);
      this.evictableEngineBlocks -= block.engineBlocks;
      return block.engineBlocks;
    }
    return 0;
  }

  /** Register a block just computed by a request (which holds the one reference). Undefined if already cached. */
  insert(hash: number, tokens: number, engineBlocks: number): CachedBlock | undefined {
    if (this.blocks.has(hash)) return undefined;
    const block: CachedBlock = { hash, tokens, engineBlocks, refs: 1 };
    this.blocks.set(hash, block);
    return block;
  }

  /**
   * Drop a request's references, last block first; returns the KV blocks that became free (cached).
   */
  release(blocks: readonly CachedBlock[]): number {
    let freed = 0;
    for (let i = blocks.length - 1; i >= 0; i--) {
      const block = blocks[i] as CachedBlock;
      block.refs--;
      if (block.refs === 0) {
        this.free.set(block.hash, block);
        this.evictableEngineBlocks += block.engineBlocks;
        freed += block.engineBlocks;
      }
    }
    return freed;
  }

  /** Evict least recently freed blocks until at least `engineBlocks` KV blocks are reclaimed; returns them. */
  evict(engineBlocks: number): number {
    let reclaimed = 0;
    for (const block of this.free.values()) {
      if (reclaimed >= engineBlocks) break;
      this.free.delete(block.hash);
      this.blocks.delete(block.hash);
      this.evictableEngineBlocks -= block.engineBlocks;
      reclaimed += block.engineBlocks;
    }
    return reclaimed;
  }

  /** Cached blocks (used and free). */
  size(): number {
    return this.blocks.size;
  }
}
