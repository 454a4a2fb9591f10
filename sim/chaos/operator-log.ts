/**
 * What an operator's log (pino JSON lines) says about one ModelDeployment, for a chaos report that found it
 * stale: its own lines (the controller's `resource`, the work queue's `key`) and the leadership terms around
 * them, the last few only, each cut short. A failure seen once in CI can then be read from CI's output.
 * Pure: the log's text in, lines out.
 */

/** Messages that begin or end a leadership term (operator/operator.ts, operator/runtime/leader.ts). */
const TERM_MESSAGES = new Set([
  "leading",
  "caches synced; reconciling",
  "leadership lost; stopping this term's controllers and campaigning again",
  "controllers failed to start; reporting unhealthy",
  "shutdown timed out with handlers still running",
]);

const LEVELS: Record<number, string> = { 10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal" };

export function logLinesAbout(logText: string, namespace: string, name: string, maxLines = 12, maxLineLength = 200): string[] {
  const resource = `ModelDeployment/${namespace}/${name}`;
  const key = `${namespace}/${name}`;
  const picked: string[] = [];
  for (const line of logText.split("\n")) {
    if (!line.startsWith("{")) continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const msg = typeof entry.msg === "string" ? entry.msg : "";
    if (entry.resource !== resource && entry.key !== key && !TERM_MESSAGES.has(msg)) continue;
    const time = typeof entry.time === "string" ? entry.time.slice(11, 23) : String(entry.time ?? "");
    const level = LEVELS[Number(entry.level)] ?? String(entry.level);
    const err = entry.err === undefined ? "" : ` (${typeof entry.err === "string" ? entry.err : JSON.stringify(entry.err)})`;
    picked.push(`${time} ${level} ${msg}${err}`.slice(0, maxLineLength));
  }
  return picked.slice(-maxLines);
}
