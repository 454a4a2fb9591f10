import type { EngineParams } from "./model.js";

/** A tiny, fast engine for tests: ~3 ms steps, room for 4096 tokens of KV. */
export const SMALL_ENGINE: EngineParams = {
  kvCapacityTokens: 4096,
  blockSizeTokens: 16,
  maxNumSeqs: 8,
  maxNumBatchedTokens: 512,
  watermarkFraction: 0.01,
  weightReadMs: 2,
  computeMsPerToken: 0.002,
  kvReadMsPerToken: 0.0001,
  stepOverheadMs: 1,
  maxModelLenTokens: 2048,
};
