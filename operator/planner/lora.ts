import type { ModelArchitecture } from "./models.js";

/**
 * GPU memory vLLM sets aside for LoRA adapters. With `--enable-lora` vLLM allocates, for every layer it
 * wraps (the attention qkv and output projections and the MLP gate/up and down projections), an A buffer
 * of max_loras x max_lora_rank x input width and a B buffer of max_loras x output width x max_lora_rank,
 * in the model's dtype, before the KV cache is sized; adapters then swap in and out of these slots. So
 * the cost depends on the slots (--max-loras, --max-lora-rank), not on how many adapters are listed.
 * Tensor parallelism shards the buffers roughly evenly (the caller divides by TP).
 *
 * Approximations: mixture-of-experts layers are counted as one dense MLP of `intermediateSize` (vLLM's
 * expert LoRA support differs by version), embeddings and the LM head carry no adapter (vLLM's default
 * when the adapter has no extra vocabulary), and 2 bytes per element (bf16/fp16 base models).
 */
export function loraBufferBytes(
  model: Pick<ModelArchitecture, "layers" | "hiddenSize" | "intermediateSize" | "attentionHeads" | "kvHeads" | "headDim">,
  maxLoras: number,
  maxRank: number,
  bytesPerElement = 2,
): number {
  const h = model.hiddenSize;
  const qkvOut = (model.attentionHeads + 2 * model.kvHeads) * model.headDim;
  const attentionOut = model.attentionHeads * model.headDim;
  const widths =
    h + qkvOut + // qkv_proj: in h, out q+k+v
    attentionOut + h + // o_proj
    h + 2 * model.intermediateSize + // gate_up_proj
    model.intermediateSize + h; // down_proj
  return model.layers * widths * maxRank * maxLoras * bytesPerElement;
}
