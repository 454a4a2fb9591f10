/**
 * Server-sent events passed through whole: the gateway forwards an upstream stream's bytes as they
 * arrive, but only up to the end of the last complete event (a blank line). The tail of an event still
 * in flight is kept back until its end arrives. A well-behaved engine writes one or more whole events
 * per chunk, so nothing waits; and when the upstream dies mid-event the client never sees half an event:
 * the gateway drops the tail and ends the stream with an error event of its own.
 *
 * Line ends may be LF, CRLF or CR (the SSE grammar); an event ends where a line end follows a line end.
 * Pure: bytes in, bytes out.
 */

const LF = 0x0a;
const CR = 0x0d;

/**
 * Index just past the last event boundary in `buf` (0 when there is none).
 * `prev` is the byte before buf[0] (or -1), so a boundary split across two chunks is found.
 */
export function lastEventBoundary(buf: Uint8Array, prev = -1): number {
  let end = 0;
  // State: was the previous byte a line end, and was it a CR (a following LF belongs to it)?
  let atLineStart = prev === LF || prev === CR;
  let afterCr = prev === CR;
  for (let i = 0; i < buf.length; i++) {
    const b = buf[i];
    if (b === LF) {
      if (afterCr) {
        // CRLF: the LF completes the line end the CR began.
        afterCr = false;
        if (end === i) end = i + 1; // a boundary ending in CR extends over its LF
        continue;
      }
      if (atLineStart) end = i + 1;
      atLineStart = true;
    } else if (b === CR) {
      if (atLineStart && !afterCr) end = i + 1;
      else if (atLineStart && afterCr) end = i + 1; // CR CR
      atLineStart = true;
      afterCr = true;
    } else {
      atLineStart = false;
      afterCr = false;
    }
  }
  return end;
}

const EMPTY = Buffer.alloc(0);

export class SseFramer {
  private pending: Buffer = EMPTY;
  /** The last byte already forwarded (context for a boundary split across chunks). */
  private lastForwarded = -1;

  /** @param maxEventBytes an event longer than this is an upstream fault (`push` throws). */
  constructor(readonly maxEventBytes = 1 << 20) {}

  /** Bytes of an incomplete event held back. */
  get pendingBytes(): number {
    return this.pending.length;
  }

  /** Feeds one upstream chunk; returns the bytes to forward now (possibly empty). */
  push(chunk: Buffer): Buffer {
    // The usual chunk: whole events, nothing held. It ends with LF LF, a boundary whatever precedes it
    // (the first LF ends a line, the second an event), so it goes out as it is, without a scan or a copy.
    const n = chunk.length;
    if (this.pending.length === 0 && n >= 2 && chunk[n - 1] === LF && chunk[n - 2] === LF) {
      this.lastForwarded = LF;
      return chunk;
    }
    const data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    // A boundary may begin in the held tail, so the tail is scanned again (it is bounded by maxEventBytes).
    const end = lastEventBoundary(data, this.lastForwarded);
    if (end === 0) {
      if (data.length > this.maxEventBytes) throw new Error(`an event exceeds ${this.maxEventBytes} bytes`);
      this.pending = data;
      return EMPTY;
    }
    const out = data.subarray(0, end);
    const rest = data.subarray(end);
    if (rest.length > this.maxEventBytes) throw new Error(`an event exceeds ${this.maxEventBytes} bytes`);
    this.pending = rest.length ? Buffer.from(rest) : EMPTY;
    this.lastForwarded = out[out.length - 1] ?? this.lastForwarded;
    return out;
  }

  /**
   * The upstream ended cleanly: whatever is held is forwarded (a final event without its blank line
   * is the upstream's business; the SSE client discards an unterminated event itself).
   */
  flush(): Buffer {
    const out = this.pending;
    this.pending = EMPTY;
    return out;
  }
}
