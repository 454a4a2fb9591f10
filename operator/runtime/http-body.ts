/**
 * Reads a fetch Response body as UTF-8, at most `maxBytes`: past that the stream is cancelled and
 * `tooLarge()` is thrown. Shared by every client that reads bytes a remote party controls (engine
 * /metrics, carbon APIs), so none of them buffers an unbounded body.
 */
export async function readBodyWithin(
  response: Response,
  maxBytes: number,
  tooLarge: () => Error,
): Promise<string> {
  const reader = response.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}
