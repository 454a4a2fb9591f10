/**
 * Bounds on the text the operator writes into a ModelDeployment's status. Some of it echoes what a
 * tenant controls (engine responses, names, spec values), so every free-text field is cut to a fixed
 * size and cleaned of control characters before it is written: a status write can never fail for size,
 * and a tenant cannot grow the object or forge lines in `kubectl describe`.
 */
import type { ModelDeploymentStatus } from "./modeldeployment.js";

/** Bytes (UTF-8) of one free-text status field at most. */
export const STATUS_TEXT_MAX_BYTES = 1024;

const ELLIPSIS = "…";
// C0/C1 controls (newlines included) and the Unicode bidirectional overrides that reorder what a terminal shows.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]+/g;

/**
 * `text` with control and bidi-override characters replaced by a space, cut to at most `maxBytes`
 * UTF-8 bytes on a character boundary, ending in "…" when cut.
 */
export function boundText(text: string, maxBytes: number = STATUS_TEXT_MAX_BYTES): string {
  const clean = text.replace(UNSAFE, " ");
  if (Buffer.byteLength(clean, "utf8") <= maxBytes) return clean;
  const budget = maxBytes - Buffer.byteLength(ELLIPSIS, "utf8");
  if (budget <= 0) return "";
  let bytes = 0;
  let end = 0;
  for (const char of clean) {
    const size = Buffer.byteLength(char, "utf8");
    if (bytes + size > budget) break;
    bytes += size;
    end += char.length;
  }
  return `${clean.slice(0, end)}${ELLIPSIS}`;
}

/** The status with every condition's message and the autoscaler's reason bounded (reasons are our own CamelCase words). */
export function boundStatus(status: ModelDeploymentStatus): ModelDeploymentStatus {
  return {
    ...status,
    ...(status.conditions
      ? {
          conditions: status.conditions.map((condition) => ({
            ...condition,
            message: boundText(condition.message),
          })),
        }
      : {}),
    ...(status.autoscaler?.reason === undefined
      ? {}
      : { autoscaler: { ...status.autoscaler, reason: boundText(status.autoscaler.reason) } }),
  };
}
