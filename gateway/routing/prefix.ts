/**
 * Tokenizer-free prefix identity of a prompt: the text cut into fixed-size character blocks, each block
 * hashed together with the hash of the block before it (a hash chain), so block i's hash names the
 * whole prefix up to and including block i. Two prompts that share their first k blocks share their
 * first k hashes, and nothing after the first differing character matches.
 *
 * How this relates to the engine's blocks: vLLM's automatic prefix caching keys its KV blocks of 16
 * tokens (`--block-size`) by a hash chain over token ids. At ~4 characters per token for English text
 * and code, a block of 256 characters is ~64 tokens, i.e. ~4 engine blocks. The gateway cannot see
 * token boundaries, so its blocks never line up exactly with the engine's; what matters for routing is
 * only that a shared text prefix of n blocks means a shared token prefix of about n × 64 tokens, which
 * the engine holds as cached blocks on the pod that served it last. A block that is not full (the tail
 * of the prompt) is not hashed, as vLLM only caches full blocks.
 */

/** Characters per gateway block: ~64 tokens at ~4 chars/token, a multiple (4) of vLLM's 16-token block. */
export const DEFAULT_BLOCK_CHARS = 256;
/** At most this many blocks are hashed per prompt (256 Ki characters of prefix at the default size). */
export const DEFAULT_MAX_BLOCKS = 1024;

const FNV_PRIME = 0x01000193;
const TWO_POW_32 = 0x1_0000_0000;

/**
 * One link of the chain: a 53-bit hash of `text[start, end)` seeded by the previous link. Two 32-bit
 * FNV-1a style lanes with different seeds, the high lane cut to 21 bits, so the result is a safe integer.
 */
export function chainHash(previous: number, text: string, start: number, end: number): number {
  const prevLo = (previous % TWO_POW_32) >>> 0;
  const prevHi = Math.floor(previous / TWO_POW_32) >>> 0;
  let a = (0x811c9dc5 ^ prevLo) >>> 0;
  let b = (0x050c5d1f ^ Math.imul(prevHi + 0x9e3779b9, 0x85ebca6b)) >>> 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, FNV_PRIME);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  // Final avalanche so that near-identical blocks spread over the whole range.
  a ^= a >>> 16;
  a = Math.imul(a, 0x7feb352d);
  a ^= a >>> 15;
  b ^= b >>> 13;
  b = Math.imul(b, 0xc2b2ae35);
  b ^= b >>> 16;
  return (b & 0x1fffff) * TWO_POW_32 + (a >>> 0);
}

export interface BlockHashOptions {
  blockChars?: number;
  maxBlocks?: number;
}

/** The hash chain of the prompt's full blocks (see the file header). */
export function promptBlockHashes(prompt: string, options: BlockHashOptions = {}): number[] {
  const blockChars = Math.max(1, Math.floor(options.blockChars ?? DEFAULT_BLOCK_CHARS));
  const maxBlocks = Math.max(0, Math.floor(options.maxBlocks ?? DEFAULT_MAX_BLOCKS));
  const blocks = Math.min(maxBlocks, Math.floor(prompt.length / blockChars));
  const out = new Array<number>(blocks);
  let h = 0;
  for (let i = 0; i < blocks; i++) {
    h = chainHash(h, prompt, i * blockChars, (i + 1) * blockChars);
    out[i] = h;
  }
  return out;
}

/**
 * Chain ids that already name blocks (the Mooncake trace's `hash_ids`) into the same kind of hashes,
 * so that a block's hash also depends on every block before it.
 */
export function chainIds(ids: readonly number[]): number[] {
  const out = new Array<number>(ids.length);
  let h = 0;
  for (let i = 0; i < ids.length; i++) {
    h = chainHash(h, String(ids[i]), 0, String(ids[i]).length);
    out[i] = h;
  }
  return out;
}

/** A chat message as the OpenAI API sends it (content: a string, or parts of which text ones count). */
export interface ChatMessageLike {
  role?: unknown;
  content?: unknown;
}

/**
 * Chat messages flattened to one string, deterministically: each message as its role, a newline, its
 * text (string content, or the `text` of its text parts in order), and a record separator. Anything
 * else in a message (images, tool calls) is left out. Stops at `maxChars`.
 */
export function flattenChat(messages: readonly ChatMessageLike[], maxChars = 1 << 20): string {
  const parts: string[] = [];
  let length = 0;
  for (const m of messages) {
    if (length >= maxChars) break;
    const role = typeof m.role === "string" ? m.role : "";
    let text = "";
    if (typeof m.content === "string") text = m.content;
    else if (Array.isArray(m.content)) {
      for (const part of m.content as unknown[]) {
        if (part !== null && typeof part === "object") {
          const p = part as { type?: unknown; text?: unknown };
          if (p.type === "text" && typeof p.text === "string") text += p.text;
        }
      }
    }
    const piece = `${role}\n${text}\u001e`;
    parts.push(piece);
    length += piece.length;
  }
  const joined = parts.join("");
  return joined.length > maxChars ? joined.slice(0, maxChars) : joined;
}
