/**
 * The one seeded PRNG of the repository's simulations, benchmarks and randomised tests (mulberry32:
 * 32-bit state, period 2^32, uniform in [0, 1)). Same seed, same sequence, so every random run can be
 * replayed from the seed it prints.
 */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
