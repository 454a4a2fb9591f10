import { existsSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  KNOWN_TRACES,
  arrivalsPerWindow,
  loadTrace,
  parseAzureCsv,
  parseAzureTimestamp,
  parseMooncakeJsonl,
  sharedDataDir,
} from "./traces.js";

describe("parseAzureTimestamp", () => {
  it("keeps sub-millisecond digits of the 7-digit fraction", () => {
    const a = parseAzureTimestamp("2023-11-16 18:17:03.9799600");
    const b = parseAzureTimestamp("2023-11-16 18:17:04.0319600");
    expect(b - a).toBeCloseTo(52, 6);
  });

  it("rejects text that is not a timestamp", () => {
    expect(() => parseAzureTimestamp("yesterday")).toThrow(/bad Azure trace timestamp/);
  });
});

describe("parseAzureCsv", () => {
  it("reads rows without a trailing newline, relative to the first arrival", () => {
    const text =
      "TIMESTAMP,ContextTokens,GeneratedTokens\n" +
      "2023-11-16 18:17:03.9799600,4808,10\n" +
      "2023-11-16 18:17:04.0319600,3180,8\n" +
      "2023-11-16 18:17:05.0781490,110,27";
    const trace = parseAzureCsv(text);
    expect(trace.requests).toHaveLength(3);
    expect(trace.requests[0]).toEqual({ arrivalMs: 0, promptTokens: 4808, outputTokens: 10 });
    expect(trace.requests[2]?.arrivalMs).toBeCloseTo(1098.189, 3);
    expect(trace.durationMs).toBeCloseTo(1098.189, 3);
  });

  it("rejects a file with another header", () => {
    expect(() => parseAzureCsv("a,b,c\n1,2,3")).toThrow(/unexpected Azure trace header/);
  });

  it("turns zero-token outputs into one token so every request is servable", () => {
    const trace = parseAzureCsv("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.0000000,10,0");
    expect(trace.requests[0]?.outputTokens).toBe(1);
  });
});

describe("parseMooncakeJsonl", () => {
  it("reads timestamp (ms), input and output lengths and block ids, sorted by arrival", () => {
    const text = [
      '{"timestamp": 3000, "input_length": 100, "output_length": 5, "hash_ids": [0, 1]}',
      '{"timestamp": 0, "input_length": 6758, "output_length": 500, "hash_ids": [0]}',
      "",
    ].join("\n");
    const trace = parseMooncakeJsonl(text);
    expect(trace.requests).toEqual([
      { arrivalMs: 0, promptTokens: 6758, outputTokens: 500, blockIds: [0] },
      { arrivalMs: 3000, promptTokens: 100, outputTokens: 5, blockIds: [0, 1] },
    ]);
  });

  it("rejects a line without the length fields", () => {
    expect(() => parseMooncakeJsonl('{"timestamp": 1}')).toThrow(/bad Mooncake trace line 1/);
  });
});

describe("arrivalsPerWindow", () => {
  it("counts requests per window", () => {
    const trace = parseMooncakeJsonl(
      [
        '{"timestamp":0,"input_length":1,"output_length":1}',
        '{"timestamp":999,"input_length":1,"output_length":1}',
        '{"timestamp":2500,"input_length":1,"output_length":1}',
      ].join("\n"),
    );
    expect(arrivalsPerWindow(trace, 1000)).toEqual([2, 0, 1]);
  });
});

describe("the shared public traces", () => {
  it("are where the project expects them (../shared/data or $GPUFLEET_SHARED_DATA)", () => {
    for (const file of Object.values(KNOWN_TRACES))
      expect(existsSync(path.join(sharedDataDir(), file))).toBe(true);
  });

  it("hold 8,819 Azure code requests over ~57 minutes and 12,031 Mooncake requests over ~59 minutes", () => {
    const azure = loadTrace("azure-code");
    expect(azure.requests).toHaveLength(8819);
    expect(azure.durationMs / 60_000).toBeGreaterThan(56);
    expect(azure.durationMs / 60_000).toBeLessThan(58);
    const mooncake = loadTrace("mooncake");
    expect(mooncake.requests).toHaveLength(12031);
    expect(mooncake.durationMs).toBe(3536999);
  });
});
