import { describe, expect, it } from "vitest";
import { SseFramer, lastEventBoundary } from "./sse.js";

const b = (s: string) => Buffer.from(s, "utf8");

describe("lastEventBoundary", () => {
  it.each([
    ["no boundary", "data: x\n", 0],
    ["LF LF", "data: x\n\n", 9],
    ["two events, the second incomplete", "data: x\n\ndata: y\n", 9],
    ["CRLF CRLF", "data: x\r\n\r\n", 11],
    ["CR CR", "data: x\r\r", 9],
    ["LF then CRLF", "data: x\n\r\n", 10],
    ["a CRLF line end alone is not a boundary", "data: x\r\ndata: y\r\n", 0],
  ])("%s", (_label, text, end) => {
    expect(lastEventBoundary(b(text))).toBe(end);
  });

  it("finds a boundary whose first line end was in the previous chunk", () => {
    expect(lastEventBoundary(b("\ndata: y"), 0x0a)).toBe(1);
    expect(lastEventBoundary(b("\r\n"), 0x0a)).toBe(2);
  });
});

describe("SseFramer", () => {
  it("forwards whole events at once and holds back an event until its end arrives", () => {
    const framer = new SseFramer();
    expect(framer.push(b("data: 1\n\ndata: 2\n\n")).toString()).toBe("data: 1\n\ndata: 2\n\n");
    expect(framer.push(b('data: {"a"')).toString()).toBe("");
    expect(framer.pendingBytes).toBe(10);
    expect(framer.push(b(":1}\n")).toString()).toBe("");
    expect(framer.push(b("\ndata: 3")).toString()).toBe('data: {"a":1}\n\n');
    expect(framer.flush().toString()).toBe("data: 3");
  });

  it("passes every byte through unchanged whatever the chunking", () => {
    const stream = 'data: {"x":1}\r\n\r\ndata: [DONE]\n\n: comment\r\rdata: last\n\n';
    for (let size = 1; size <= stream.length; size++) {
      const framer = new SseFramer();
      let out = "";
      const forwarded: string[] = [];
      for (let i = 0; i < stream.length; i += size) {
        const piece = framer.push(b(stream.slice(i, i + size))).toString();
        if (piece) forwarded.push(piece);
        out += piece;
      }
      out += framer.flush().toString();
      expect(out).toBe(stream);
      // Each piece forwarded ends at an event boundary (or is the LF that completes a CRLF boundary; a boundary may end at its CR).
      for (const piece of forwarded) expect(piece).toMatch(/(\n\n|\r\n\r\n?|\r\r|\n)$/);
    }
  });

  it("forwards a chunk of whole events as it is (no copy), and keeps the context for the next", () => {
    const framer = new SseFramer();
    const chunk = b("data: 1\n\ndata: 2\r\n\n");
    expect(framer.push(chunk)).toBe(chunk);
    expect(framer.push(b("data: 3\n")).toString()).toBe("");
    expect(framer.push(b("\n")).toString()).toBe("data: 3\n\n");
    // A lone LF right after forwarded bytes that ended in LF LF is not a new boundary of an event.
    expect(framer.push(b("data: 4\n\n")).toString()).toBe("data: 4\n\n");
  });

  it("refuses an event larger than its bound", () => {
    const framer = new SseFramer(16);
    expect(() => framer.push(b(`data: ${"x".repeat(20)}`))).toThrow(/exceeds 16 bytes/);
  });
});
