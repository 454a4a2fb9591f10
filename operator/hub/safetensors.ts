/**
 * Pure readers for the two files that give a checkpoint's size without downloading it:
 * model.safetensors.index.json (`metadata.total_size`) and a safetensors file's header (an 8-byte
 * little-endian length, then a JSON map of tensor name -> { dtype, shape, data_offsets }).
 */

/** Largest header gpufleet reads (a header lists every tensor; 100 MiB would be absurd). */
export const MAX_SAFETENSORS_HEADER_BYTES = 16 * 1024 * 1024;

/** `metadata.total_size` of a safetensors index, or undefined when absent or not a positive number. */
export function indexTotalBytes(index: unknown): number | undefined {
  if (typeof index !== "object" || index === null) return undefined;
  const metadata = (index as { metadata?: unknown }).metadata;
  if (typeof metadata !== "object" || metadata === null) return undefined;
  const total = (metadata as { total_size?: unknown }).total_size;
  const value = typeof total === "string" ? Number(total) : total;
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : undefined;
}

/** The header length announced by a safetensors file's first 8 bytes. */
export function headerLength(firstBytes: Uint8Array): number {
  if (firstBytes.length < 8)
    throw new Error(`safetensors: expected 8 bytes of header length, got ${firstBytes.length}`);
  const view = new DataView(firstBytes.buffer, firstBytes.byteOffset, 8);
  const length = view.getBigUint64(0, true);
  if (length === 0n || length > BigInt(MAX_SAFETENSORS_HEADER_BYTES)) {
    throw new Error(`safetensors: header length ${length} is outside 1..${MAX_SAFETENSORS_HEADER_BYTES}`);
  }
  return Number(length);
}

/** Bytes of tensor data a safetensors header describes (the end of the last tensor). */
export function headerDataBytes(header: unknown): number {
  if (typeof header !== "object" || header === null)
    throw new Error("safetensors: header is not a JSON object");
  let end = 0;
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") continue;
    const offsets = (entry as { data_offsets?: unknown } | null)?.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((n) => Number.isInteger(n) && n >= 0)
    ) {
      throw new Error(`safetensors: tensor ${name.slice(0, 80)} has no valid data_offsets`);
    }
    end = Math.max(end, offsets[1] as number);
  }
  return end;
}
