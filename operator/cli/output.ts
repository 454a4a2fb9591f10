import { stringify } from "yaml";

/** JSON (2-space, trailing newline) or YAML for `-o json|yaml`. */
export function renderStructured(value: unknown, format: "json" | "yaml"): string {
  return format === "json" ? `${JSON.stringify(value, null, 2)}\n` : stringify(value);
}

/** Left-aligned columns separated by three spaces, like kubectl's tables. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const render = (row: readonly string[]): string =>
    row
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join("   ")
      .trimEnd();
  return `${[header, ...rows].map(render).join("\n")}\n`;
}
