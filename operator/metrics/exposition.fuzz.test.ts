/**
 * Property-style fuzzing of the exposition parser with a seeded PRNG (reproducible: a failure prints
 * the seed and input). Properties, for every input:
 *  1. parseExposition returns or throws a ParseError — never any other exception;
 *  2. whatever it returns round-trips: parse(serialize(parse(x))) deep-equals parse(x);
 *  3. it finishes (the vitest timeout guards hangs; pathological long inputs are included).
 */
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  type MetricFamily,
  type MetricType,
  ParseError,
  parseExposition,
  serializeExposition,
} from "./exposition.js";
import { prng } from "../../sim/prng.js";

type Random = () => number;
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
const int = (random: Random, max: number) => Math.floor(random() * max);

// Characters that matter to the grammar, plus some that should not.
const SIGNIFICANT = [
  '"',
  "\\",
  "{",
  "}",
  "=",
  ",",
  " ",
  "\t",
  "\n",
  "\r",
  "#",
  "+",
  "-",
  ".",
  "e",
  "E",
  "_",
  ":",
  "0",
  "9",
  "a",
  "Z",
  "é",
  "\u0000",
  "\u2028",
];
const FLOAT_TOKENS = [
  "0",
  "1",
  "-1",
  "1.5",
  "1e3",
  "-2.5E-7",
  "NaN",
  "+Inf",
  "-Inf",
  "Inf",
  "3.",
  ".5",
  "1e",
  "--1",
  "0x10",
  "",
  "1_0",
];
const TYPES: MetricType[] = [
  "counter",
  "gauge",
  "histogram",
  "summary",
  "untyped",
  "unknown",
  "info",
  "gaugehistogram",
];

function randomName(random: Random): string {
  const base = pick(random, [
    "vllm:num_requests_waiting",
    "up",
    "ttft",
    "a",
    "x_total",
    "h",
    "s",
    "my.dotted",
    "trtllm_kv_cache_utilization",
  ]);
  return random() < 0.3
    ? `${base}${pick(random, ["_bucket", "_sum", "_count", "_total", "_created", ""])}`
    : base;
}

function randomLabelValue(random: Random): string {
  let out = "";
  const length = int(random, 6);
  for (let i = 0; i < length; i++) out += pick(random, [...SIGNIFICANT, "x", "/"]);
  return out;
}

/** Builds a structurally valid family list directly, to be serialized and parsed back. */
function randomFamilies(random: Random): MetricFamily[] {
  const families: MetricFamily[] = [];
  const used = new Set<string>();
  const count = 1 + int(random, 4);
  for (let f = 0; f < count; f++) {
    const name = `${randomName(random)}${f}`;
    if (used.has(name)) continue;
    used.add(name);
    const type = pick(random, TYPES);
    const family: MetricFamily = { name, type, samples: [] };
    // Leading blanks and trailing CRs of HELP text are not representable in the format.
    if (random() < 0.5)
      family.help = randomLabelValue(random)
        .replace(/^[ \t]+/, "")
        .replace(/\r+$/, "");
    const samples = int(random, 4);
    const seriesSeen = new Set<string>();
    for (let i = 0; i < samples; i++) {
      const labels: Record<string, string> = {};
      const labelCount = int(random, 3);
      for (let l = 0; l < labelCount; l++)
        labels[pick(random, ["model_name", "engine", "a.b", "x"])] = randomLabelValue(random);
      let sampleName = name;
      if (type === "histogram") {
        sampleName = `${name}_bucket`;
        labels.le = pick(random, ["0.1", "1", "+Inf"]);
      } else if (type === "summary") {
        labels.quantile = pick(random, ["0.5", "0.99"]);
      }
      const value = pick(random, [
        0,
        1,
        -0,
        1.5,
        1e21,
        -3.25e-9,
        Number.NaN,
        Number.POSITIVE_INFINITY,
        Number.NEGATIVE_INFINITY,
        random(),
      ]);
      // A series appears once: a repeated one keeps only its first value (see parseExposition).
      const series = JSON.stringify([sampleName, Object.entries(labels).sort()]);
      if (seriesSeen.has(series)) continue;
      seriesSeen.add(series);
      const sample: MetricFamily["samples"][number] = { name: sampleName, labels, value };
      if (random() < 0.3) sample.timestampMs = int(random, 2_000_000_000_000);
      if (random() < 0.1)
        sample.exemplar = { labels: { trace_id: randomLabelValue(random) }, value: random() };
      family.samples.push(sample);
    }
    families.push(family);
  }
  return families;
}

function mutate(random: Random, text: string): string {
  let out = text;
  const edits = 1 + int(random, 4);
  for (let e = 0; e < edits; e++) {
    const at = int(random, out.length + 1);
    switch (int(random, 6)) {
      case 0: // delete a span
        out = out.slice(0, at) + out.slice(at + 1 + int(random, 8));
        break;
      case 1: // insert a significant character
        out = out.slice(0, at) + pick(random, SIGNIFICANT) + out.slice(at);
        break;
      case 2: // insert a float-ish token
        out = `${out.slice(0, at)} ${pick(random, FLOAT_TOKENS)}${out.slice(at)}`;
        break;
      case 3: {
        // duplicate a span (duplicate TYPE/HELP lines, repeated labels)
        const length = int(random, 40);
        out = out.slice(0, at) + out.slice(at, at + length) + out.slice(at);
        break;
      }
      case 4: // truncate
        out = out.slice(0, at);
        break;
      default: {
        // swap two lines (TYPE after samples, orphan buckets)
        const lines = out.split("\n");
        const i = int(random, lines.length);
        const j = int(random, lines.length);
        const a = lines[i] ?? "";
        lines[i] = lines[j] ?? "";
        lines[j] = a;
        out = lines.join("\n");
      }
    }
  }
  return out;
}

/** Checks the two properties for one input; returns whether it parsed. */
function checkProperties(input: string, context: string): boolean {
  let families: MetricFamily[];
  try {
    families = parseExposition(input);
  } catch (error) {
    if (!(error instanceof ParseError)) {
      throw new Error(`${context}: threw ${String(error)} for input ${JSON.stringify(input)}`);
    }
    expect(error.line, context).toBeGreaterThanOrEqual(1);
    return false;
  }
  const reparsed = parseExposition(serializeExposition(families));
  expect(reparsed, `${context}: round trip of ${JSON.stringify(input)}`).toEqual(families);
  return true;
}

const fixtureDir = new URL("./fixtures/", import.meta.url);
const corpus = readdirSync(fixtureDir)
  .filter((name) => name.endsWith(".prom"))
  .map((name) => readFileSync(new URL(name, fixtureDir), "utf8"));

describe("exposition parser fuzzing", () => {
  it("round-trips randomly generated valid families exactly", () => {
    const random = prng(0x5eed_0001);
    for (let i = 0; i < 600; i++) {
      const families = randomFamilies(random);
      const text = serializeExposition(families);
      expect(parseExposition(text), `case ${i}: ${JSON.stringify(text)}`).toEqual(families);
    }
  });

  it("never throws anything but ParseError on mutated real and generated expositions", () => {
    const random = prng(0x5eed_0002);
    let parsed = 0;
    let rejected = 0;
    for (let i = 0; i < 3000; i++) {
      const seed = i % 2 === 0 ? pick(random, corpus) : serializeExposition(randomFamilies(random));
      if (checkProperties(mutate(random, seed), `mutation ${i}`)) parsed++;
      else rejected++;
    }
    // Both outcomes must be exercised, or the mutator is too weak (or too strong) to test anything.
    expect(parsed).toBeGreaterThan(100);
    expect(rejected).toBeGreaterThan(100);
  });

  it("never throws anything but ParseError on random character soup", () => {
    const random = prng(0x5eed_0003);
    for (let i = 0; i < 2000; i++) {
      let input = "";
      const length = int(random, 60);
      for (let c = 0; c < length; c++)
        input += random() < 0.7 ? pick(random, SIGNIFICANT) : String.fromCharCode(int(random, 0x3000));
      checkProperties(input, `soup ${i}`);
    }
  });

  it("stays linear on pathological inputs (long digit runs, CR runs, deep braces, many families)", () => {
    const inputs = [
      `m ${"9".repeat(200_000)}x`,
      `m 1${"\r".repeat(200_000)}x`,
      `m{${'a="b",'.repeat(50_000)}} 1`,
      "{".repeat(200_000),
      Array.from({ length: 20_000 }, (_, i) => `# TYPE f${i} histogram\nf${i}_bucket{le="1"} 1`).join("\n"),
      `# HELP m ${"\\\\".repeat(100_000)}`,
    ];
    for (const [i, input] of inputs.entries()) checkProperties(input, `pathological ${i}`);
  });
});
