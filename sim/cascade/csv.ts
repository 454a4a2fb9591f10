/**
 * CSV per RFC 4180 over a whole text: quoted fields may hold commas, doubled quotes and line breaks (the
 * RouteLLM files carry multi-line prompts and answers). Bounded: at most `maxRows` rows are returned.
 */
export function parseCsv(text: string, maxRows = 1_000_000): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  let i = 0;
  const n = text.length;
  while (i < n && rows.length < maxRows) {
    const ch = text[i] as string;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else field += ch;
      i++;
      continue;
    }
    if (ch === '"') quoted = true;
    else if (ch === ",") {
      row.push(field);
      field = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      field = "";
      if (row.length > 1 || row[0] !== "") rows.push(row);
      row = [];
    } else field += ch;
    i++;
  }
  if (field !== "" || row.length > 0) {
    row.push(field);
    if (rows.length < maxRows) rows.push(row);
  }
  return rows;
}

/** Rows as objects keyed by the header row. */
export function csvObjects(text: string, maxRows?: number): Array<Record<string, string>> {
  const [header, ...rows] = parseCsv(text, maxRows);
  if (!header) return [];
  return rows.map((cells) => Object.fromEntries(header.map((name, k) => [name, cells[k] ?? ""])));
}

/** One CSV field, quoted when it must be. */
export function csvField(value: string | number): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
