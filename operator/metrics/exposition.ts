/**
 * Parser and serializer for the Prometheus text exposition format (version 0.0.4), tolerant of the
 * OpenMetrics 1.0 additions engines emit (`# EOF`, `# UNIT`, exemplars after ` # `, `_total` /
 * `_created` sample suffixes, float-second timestamps) and of Prometheus 3 quoted UTF-8 names.
 *
 * Why our own parser rather than `parse-prometheus-text-format` (npm): that package ships no types,
 * throws untyped Errors, drops timestamps and knows nothing of exemplars or `# EOF`. The operator
 * scrapes engines it does not control, so every malformed input must end in a typed `ParseError`
 * (fuzzed in exposition.fuzz.test.ts) rather than in a crash or a silent zero.
 *
 * Format reference: https://prometheus.io/docs/instrumenting/exposition_formats/ and
 * https://github.com/OpenObservability/OpenMetrics/blob/main/specification/OpenMetrics.md
 */

export type MetricType =
  | "counter"
  | "gauge"
  | "histogram"
  | "summary"
  | "untyped"
  | "unknown"
  | "info"
  | "stateset"
  | "gaugehistogram";

const METRIC_TYPES: ReadonlySet<string> = new Set<MetricType>([
  "counter",
  "gauge",
  "histogram",
  "summary",
  "untyped",
  "unknown",
  "info",
  "stateset",
  "gaugehistogram",
]);

/** Sample-name suffixes that belong to a family of the given type (`foo_bucket` belongs to `foo`). */
const FAMILY_SUFFIXES: Readonly<Record<MetricType, readonly string[]>> = {
  counter: ["_total", "_created"],
  gauge: [],
  histogram: ["_bucket", "_sum", "_count", "_created"],
  summary: ["_sum", "_count", "_created"],
  untyped: [],
  unknown: [],
  info: ["_info"],
  stateset: [],
  gaugehistogram: ["_bucket", "_gcount", "_gsum"],
};

export interface Exemplar {
  labels: Record<string, string>;
  value: number;
  /** OpenMetrics exemplar timestamps are float seconds; kept as written. */
  timestampSeconds?: number;
}

export interface Sample {
  /** Full sample name, e.g. `vllm:time_to_first_token_seconds_bucket`. */
  name: string;
  labels: Record<string, string>;
  value: number;
  /** Milliseconds since the epoch, when the exposition carried one. */
  timestampMs?: number;
  exemplar?: Exemplar;
}

export interface MetricFamily {
  name: string;
  type: MetricType;
  help?: string;
  unit?: string;
  samples: Sample[];
}

/** The only error `parseExposition` throws. `line` is 1-based; `column` is 1-based within it. */
export class ParseError extends Error {
  override readonly name = "ParseError";
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`line ${line}, column ${column}: ${message}`);
  }
}

export interface ParseOptions {
  /**
   * Whether the text is OpenMetrics (true: `# EOF` ends it, timestamps are float seconds) or the
   * Prometheus text format 0.0.4 (false, the default: `# EOF` is a comment like any other, timestamps
   * are integer milliseconds). The Prometheus server picks its parser from the Content-Type the same
   * way; see `isOpenMetricsContentType`.
   */
  openMetrics?: boolean;
  /** Refuse inputs longer than this many characters (default 32 MiB) instead of exhausting memory. */
  maxLength?: number;
}

const LEGACY_METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LEGACY_LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
// Unambiguous (linear-time) float grammar; the named specials are handled separately.
const DECIMAL_FLOAT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;

/** The Prometheus server parses a scrape as OpenMetrics exactly when its Content-Type says so. */
export function isOpenMetricsContentType(contentType: string | null | undefined): boolean {
  return /^\s*application\/openmetrics-text\s*(;|$)/i.test(contentType ?? "");
}

export function parseFloatValue(token: string): number | undefined {
  const first = token.charCodeAt(0);
  // Fast path for the common case, a plain decimal number.
  if (first >= 48 && first <= 57) return DECIMAL_FLOAT.test(token) ? Number(token) : undefined;
  const lower = token.toLowerCase();
  const unsigned = lower.startsWith("+") || lower.startsWith("-") ? lower.slice(1) : lower;
  if (unsigned === "nan") return lower === "nan" ? Number.NaN : undefined;
  if (unsigned === "inf" || unsigned === "infinity") {
    return lower.startsWith("-") ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  }
  if (!DECIMAL_FLOAT.test(token)) return undefined;
  return Number(token);
}

/** A cursor over one line; every failure is reported as a ParseError at its position. */
class LineCursor {
  pos = 0;
  constructor(
    readonly text: string,
    readonly lineNumber: number,
  ) {}

  fail(message: string, at = this.pos): never {
    throw new ParseError(message, this.lineNumber, at + 1);
  }
  atEnd(): boolean {
    return this.pos >= this.text.length;
  }
  peek(): string {
    return this.text.charAt(this.pos);
  }
  skipBlanks(): void {
    let code = this.text.charCodeAt(this.pos);
    while (code === 32 || code === 9) code = this.text.charCodeAt(++this.pos);
  }
  expect(char: string): void {
    if (this.peek() !== char) this.fail(`expected '${char}', found ${describe(this.peek())}`);
    this.pos++;
  }
  /** Reads a bare identifier: metric names allow ':' (colonAllowed), label names do not. */
  readBareName(colonAllowed: boolean): string {
    const start = this.pos;
    const text = this.text;
    let pos = this.pos;
    const first = text.charCodeAt(pos);
    if (!(isLetterOrUnderscore(first) || (colonAllowed && first === 58))) {
      this.fail(`expected a name, found ${describe(this.peek())}`);
    }
    pos++;
    for (;;) {
      const code = text.charCodeAt(pos);
      if (isLetterOrUnderscore(code) || (code >= 48 && code <= 57) || (colonAllowed && code === 58)) pos++;
      else break;
    }
    this.pos = pos;
    return text.slice(start, pos);
  }
  /**
   * Reads a double-quoted string with the exposition escapes `\\`, `\"` and `\n`. Any other escape
   * is kept as written, backslash included, as the Prometheus server's text parser does.
   */
  readQuoted(): string {
    this.expect('"');
    const text = this.text;
    let out = "";
    let chunkStart = this.pos;
    for (;;) {
      // Jump to the next quote or backslash; everything before it is literal.
      let pos = chunkStart;
      let code = text.charCodeAt(pos);
      while (pos < text.length && code !== 34 && code !== 92) code = text.charCodeAt(++pos);
      if (pos >= text.length) {
        this.pos = pos;
        this.fail("unterminated quoted string");
      }
      out += text.slice(chunkStart, pos);
      if (code === 34) {
        this.pos = pos + 1;
        return out;
      }
      const escaped = text.charAt(pos + 1);
      if (escaped === "\\") out += "\\";
      else if (escaped === '"') out += '"';
      else if (escaped === "n") out += "\n";
      else if (pos + 1 >= text.length) {
        this.pos = pos + 1;
        this.fail("unterminated quoted string");
      } else out += `\\${escaped}`;
      chunkStart = pos + 2;
    }
  }
  /** Reads a run of non-blank characters. */
  readToken(): string {
    const start = this.pos;
    const text = this.text;
    let pos = start;
    for (;;) {
      const code = text.charCodeAt(pos);
      if (pos >= text.length || code === 32 || code === 9) break;
      pos++;
    }
    this.pos = pos;
    return text.slice(start, pos);
  }
}

function isLetterOrUnderscore(code: number): boolean {
  return (code >= 97 && code <= 122) || (code >= 65 && code <= 90) || code === 95;
}

function describe(char: string): string {
  return char === "" ? "end of line" : JSON.stringify(char);
}

/** Label set between `{` and `}`; the cursor is on `{`. Returns the labels and a quoted metric name if one led the set. */
function readLabelSet(
  cursor: LineCursor,
  allowQuotedMetricName: boolean,
): { labels: Record<string, string>; quotedName?: string } {
  cursor.expect("{");
  const names: string[] = [];
  const values: string[] = [];
  // Duplicate check: linear for the usual handful of labels, a Set beyond that (stays O(n)).
  let seen: Set<string> | undefined;
  let quotedName: string | undefined;
  let first = true;
  for (;;) {
    cursor.skipBlanks();
    if (cursor.peek() === "}") {
      cursor.pos++;
      break;
    }
    const nameAt = cursor.pos;
    const name = cursor.peek() === '"' ? cursor.readQuoted() : cursor.readBareName(false);
    cursor.skipBlanks();
    if (first && allowQuotedMetricName && cursor.text.charAt(nameAt) === '"' && cursor.peek() !== "=") {
      // Prometheus 3 form `{"my.metric", label="v"}`: a leading quoted string without `=` is the name.
      quotedName = name;
    } else {
      cursor.expect("=");
      cursor.skipBlanks();
      const value = cursor.readQuoted();
      if (names.length === 16) seen = new Set(names);
      const duplicate = seen ? seen.has(name) : names.includes(name);
      if (duplicate) cursor.fail(`duplicate label '${name}'`, nameAt);
      seen?.add(name);
      names.push(name);
      values.push(value);
    }
    first = false;
    cursor.skipBlanks();
    if (cursor.peek() === ",") {
      cursor.pos++;
      continue;
    }
    if (cursor.peek() === "}") {
      cursor.pos++;
      break;
    }
    cursor.fail(`expected ',' or '}', found ${describe(cursor.peek())}`);
  }
  const labels: Record<string, string> = {};
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string;
    // Assigning "__proto__" would set the prototype instead of adding a label.
    if (name === "__proto__")
      Object.defineProperty(labels, name, {
        value: values[i],
        enumerable: true,
        writable: true,
        configurable: true,
      });
    else labels[name] = values[i] as string;
  }
  return quotedName === undefined ? { labels } : { labels, quotedName };
}

function readFloat(cursor: LineCursor, what: string): number {
  const at = cursor.pos;
  const token = cursor.readToken();
  if (token === "") cursor.fail(`expected ${what}`, at);
  const value = parseFloatValue(token);
  if (value === undefined) cursor.fail(`invalid ${what} ${JSON.stringify(token)}`, at);
  return value;
}

function readTimestampMs(cursor: LineCursor, openMetrics: boolean): number {
  const at = cursor.pos;
  const token = cursor.readToken();
  let ms: number;
  if (openMetrics) {
    const seconds = parseFloatValue(token);
    if (seconds === undefined || !Number.isFinite(seconds))
      cursor.fail(`invalid timestamp ${JSON.stringify(token)}`, at);
    ms = Math.round(seconds * 1000);
  } else {
    if (!INTEGER.test(token)) cursor.fail(`invalid timestamp ${JSON.stringify(token)}`, at);
    ms = Number(token);
  }
  if (!Number.isSafeInteger(ms)) cursor.fail(`timestamp out of range ${JSON.stringify(token)}`, at);
  return Object.is(ms, -0) ? 0 : ms;
}

/** Reads a metric name in a `# HELP/TYPE/UNIT` line: bare or quoted. */
function readCommentMetricName(cursor: LineCursor): string {
  return cursor.peek() === '"' ? cursor.readQuoted() : cursor.readBareName(true);
}

function unescapeHelp(raw: string): string {
  let out = "";
  for (let i = 0; i < raw.length; i++) {
    const char = raw.charAt(i);
    if (char !== "\\") {
      out += char;
      continue;
    }
    const escaped = raw.charAt(i + 1);
    if (escaped === "\\") out += "\\";
    else if (escaped === "n") out += "\n";
    else if (escaped === '"')
      out += '"'; // OpenMetrics escapes quotes in HELP too
    else if (escaped === "") {
      out += "\\"; // a trailing backslash stays, as in the Prometheus server
      break;
    } else out += `\\${escaped}`; // unknown escapes are kept as written
    i++;
  }
  return out;
}

// A loop, not /\r+$/, whose backtracking is quadratic on long runs of CRs.
function trimTrailingCarriageReturns(line: string): string {
  let end = line.length;
  while (end > 0 && line.charCodeAt(end - 1) === 13) end--;
  return end === line.length ? line : line.slice(0, end);
}

interface FamilyState {
  family: MetricFamily;
  typeDeclared: boolean;
}

/**
 * Parses an exposition into metric families, in order of first appearance. Throws only ParseError.
 * Samples are attached to the declared family whose name they extend with a suffix valid for its
 * type (`h_bucket` → histogram `h`); other samples form an untyped family of their own name.
 */
export function parseExposition(text: string, options: ParseOptions = {}): MetricFamily[] {
  const maxLength = options.maxLength ?? 32 * 1024 * 1024;
  if (typeof text !== "string") throw new ParseError("input is not a string", 1, 1);
  if (text.length > maxLength) throw new ParseError(`input longer than ${maxLength} characters`, 1, 1);
  const openMetrics = options.openMetrics ?? false;
  const families = new Map<string, FamilyState>();
  const order: MetricFamily[] = [];

  const familyFor = (name: string): FamilyState => {
    let state = families.get(name);
    if (!state) {
      state = { family: { name, type: "untyped", samples: [] }, typeDeclared: false };
      families.set(name, state);
      order.push(state.family);
    }
    return state;
  };

  const ownerCache = new Map<string, FamilyState>();
  const seen = new Set<string>();
  const lines = text.split("\n");
  for (let index = 0; index < lines.length; index++) {
    // Tolerate CRLF (and stray CRs) at line ends.
    const line = trimTrailingCarriageReturns(lines[index] ?? "");
    const cursor: LineCursor = new LineCursor(line, index + 1);
    cursor.skipBlanks();
    if (cursor.atEnd()) continue;

    if (cursor.peek() === "#") {
      if (openMetrics && /^#[ \t]*EOF[ \t]*$/.test(line.trim())) break;
      cursor.pos++;
      cursor.skipBlanks();
      const keyword = cursor.readToken();
      if (keyword !== "HELP" && keyword !== "TYPE" && keyword !== "UNIT") continue; // plain comment
      cursor.skipBlanks();
      if (cursor.atEnd()) continue; // "# HELP" alone is just a comment, as in the Go parser
      const nameAt = cursor.pos;
      const name = readCommentMetricName(cursor);
      if (!cursor.atEnd() && cursor.peek() !== " " && cursor.peek() !== "\t") {
        cursor.fail(`unexpected ${describe(cursor.peek())} after metric name`);
      }
      cursor.skipBlanks();
      const rest = line.slice(cursor.pos);
      ownerCache.clear();
      const state = familyFor(name);
      if (keyword === "HELP") {
        if (state.family.help !== undefined) cursor.fail(`second HELP line for '${name}'`, nameAt);
        state.family.help = unescapeHelp(rest);
      } else if (keyword === "TYPE") {
        const type = rest.trim();
        if (!METRIC_TYPES.has(type)) cursor.fail(`unknown metric type ${JSON.stringify(type)}`);
        if (state.typeDeclared) cursor.fail(`second TYPE line for '${name}'`, nameAt);
        if (state.family.samples.length > 0) cursor.fail(`TYPE line for '${name}' after its samples`, nameAt);
        state.typeDeclared = true;
        state.family.type = type as MetricType;
      } else {
        if (state.family.unit !== undefined) cursor.fail(`second UNIT line for '${name}'`, nameAt);
        state.family.unit = rest.trim();
      }
      continue;
    }

    // Sample line: name [labels] value [timestamp] [# exemplar]
    let name: string;
    let labels: Record<string, string> = {};
    const nameAt = cursor.pos;
    if (cursor.peek() === "{") {
      const set = readLabelSet(cursor, true);
      if (set.quotedName === undefined) cursor.fail("sample without a metric name", nameAt);
      name = set.quotedName;
      labels = set.labels;
    } else {
      name = cursor.readBareName(true);
      const afterName = cursor.pos;
      cursor.skipBlanks();
      if (cursor.peek() === "{") labels = readLabelSet(cursor, false).labels;
      else cursor.pos = afterName;
    }
    if (cursor.peek() !== " " && cursor.peek() !== "\t") {
      cursor.fail(`expected whitespace before the value, found ${describe(cursor.peek())}`);
    }
    cursor.skipBlanks();
    const value = readFloat(cursor, "sample value");
    cursor.skipBlanks();
    const sample: Sample = { name, labels, value };
    if (!cursor.atEnd() && cursor.peek() !== "#") {
      sample.timestampMs = readTimestampMs(cursor, openMetrics);
      cursor.skipBlanks();
    }
    if (!cursor.atEnd()) {
      if (cursor.peek() !== "#") cursor.fail(`unexpected ${describe(cursor.peek())} after sample`);
      cursor.pos++;
      cursor.skipBlanks();
      const exemplarLabels = readLabelSet(cursor, false).labels;
      cursor.skipBlanks();
      const exemplar: Exemplar = { labels: exemplarLabels, value: readFloat(cursor, "exemplar value") };
      cursor.skipBlanks();
      if (!cursor.atEnd()) {
        const at = cursor.pos;
        const seconds = parseFloatValue(cursor.readToken());
        if (seconds === undefined || !Number.isFinite(seconds)) cursor.fail("invalid exemplar timestamp", at);
        exemplar.timestampSeconds = seconds;
        cursor.skipBlanks();
      }
      if (!cursor.atEnd()) cursor.fail(`unexpected ${describe(cursor.peek())} after exemplar`);
      sample.exemplar = exemplar;
    }

    // A series seen before in this exposition keeps its first value: the Prometheus server stores the
    // first sample for a series and timestamp and rejects the rest (prometheus_target_scrapes_sample_
    // duplicate_timestamp_total); adding them up would double a gauge.
    const key = seriesKey(name, labels);
    if (seen.has(key)) continue;
    seen.add(key);

    // Owner lookups are cached per sample name (histograms repeat `_bucket` names many times);
    // HELP/TYPE/UNIT lines clear the cache, since a new or newly typed family can change owners.
    let state = ownerCache.get(name);
    if (state === undefined) {
      state = owningFamily(families, name) ?? familyFor(name);
      ownerCache.set(name, state);
    }
    validateSample(cursor, state.family, sample, nameAt);
    state.family.samples.push(sample);
  }
  return order;
}

/** Identity of a series: its name and its labels in name order (label order in the text is free). */
function seriesKey(name: string, labels: Record<string, string>): string {
  const names = Object.keys(labels);
  if (names.length > 1) names.sort();
  // Length-prefixed, so no name or label value (quoted ones may hold any character) can collide.
  let key = `${name.length}:${name}`;
  for (const label of names) {
    const value = labels[label] as string;
    key += `|${label.length}:${label}${value.length}:${value}`;
  }
  return key;
}

const ALL_SUFFIXES: readonly string[] = [...new Set(Object.values(FAMILY_SUFFIXES).flat())];

function owningFamily(families: Map<string, FamilyState>, sampleName: string): FamilyState | undefined {
  const exact = families.get(sampleName);
  if (exact) return exact;
  // Constant work per sample (a handful of suffixes), so huge inputs stay linear.
  for (const suffix of ALL_SUFFIXES) {
    if (!sampleName.endsWith(suffix)) continue;
    const state = families.get(sampleName.slice(0, -suffix.length));
    if (state?.typeDeclared && FAMILY_SUFFIXES[state.family.type].includes(suffix)) return state;
  }
  return undefined;
}

function validateSample(cursor: LineCursor, family: MetricFamily, sample: Sample, at: number): void {
  const suffix = sample.name.slice(family.name.length);
  if ((family.type === "histogram" || family.type === "gaugehistogram") && suffix === "_bucket") {
    const le = sample.labels.le;
    if (le === undefined) cursor.fail(`histogram bucket '${sample.name}' without an 'le' label`, at);
    if (parseFloatValue(le) === undefined)
      cursor.fail(`histogram bucket 'le' is not a number: ${JSON.stringify(le)}`, at);
  }
  if (family.type === "summary" && suffix === "") {
    const quantile = sample.labels.quantile;
    if (quantile === undefined) cursor.fail(`summary sample '${sample.name}' without a 'quantile' label`, at);
    if (parseFloatValue(quantile) === undefined) {
      cursor.fail(`summary 'quantile' is not a number: ${JSON.stringify(quantile)}`, at);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Serialization (used by the engine simulator and to round-trip what was parsed)

function quote(value: string): string {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

export function formatFloatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  if (Object.is(value, -0)) return "-0";
  return String(value);
}

function formatLabelPairs(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(
    ([name, value]) => `${LEGACY_LABEL_NAME.test(name) ? name : quote(name)}=${quote(value)}`,
  );
}

function formatSeries(name: string, labels: Record<string, string>): string {
  const pairs = formatLabelPairs(labels);
  if (LEGACY_METRIC_NAME.test(name)) return pairs.length === 0 ? name : `${name}{${pairs.join(",")}}`;
  return `{${[quote(name), ...pairs].join(",")}}`;
}

/** Writes families in Prometheus text format 0.0.4 (integer-millisecond timestamps). */
export function serializeExposition(families: readonly MetricFamily[]): string {
  const out: string[] = [];
  for (const family of families) {
    const familyName = LEGACY_METRIC_NAME.test(family.name) ? family.name : quote(family.name);
    if (family.help !== undefined) {
      out.push(`# HELP ${familyName} ${family.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`);
    }
    out.push(`# TYPE ${familyName} ${family.type}`);
    if (family.unit !== undefined) out.push(`# UNIT ${familyName} ${family.unit}`);
    for (const sample of family.samples) {
      let line = `${formatSeries(sample.name, sample.labels)} ${formatFloatValue(sample.value)}`;
      if (sample.timestampMs !== undefined) line += ` ${sample.timestampMs}`;
      if (sample.exemplar) {
        const pairs = formatLabelPairs(sample.exemplar.labels);
        line += ` # {${pairs.join(",")}} ${formatFloatValue(sample.exemplar.value)}`;
        if (sample.exemplar.timestampSeconds !== undefined)
          line += ` ${formatFloatValue(sample.exemplar.timestampSeconds)}`;
      }
      out.push(line);
    }
  }
  return out.length === 0 ? "" : `${out.join("\n")}\n`;
}

/** All samples named exactly `name`, across families. */
export function samplesNamed(families: readonly MetricFamily[], name: string): Sample[] {
  const found: Sample[] = [];
  for (const family of families)
    for (const sample of family.samples) if (sample.name === name) found.push(sample);
  return found;
}
