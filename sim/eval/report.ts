/** Printing and plotting of evaluation results (a text table and a dependency-free SVG). */
import { maxOf, type FleetResult, type TimelinePoint } from "./fleet.js";

/** Columns padded to their widest cell: the first left-aligned, the others right-aligned. */
function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

export function formatTable(results: FleetResult[], ttftTargetSeconds: number): string {
  const header = ["policy", "GPU-h", `≤${ttftTargetSeconds}s`, "p50 s", "p95 s", "p99 s", "scale ev", "peak"];
  const rows = results.map((r) => [
    r.controller,
    r.gpuHours.toFixed(1),
    `${(r.withinTargetShare * 100).toFixed(2)}%`,
    r.ttftP50.toFixed(2),
    r.ttftP95.toFixed(2),
    r.ttftP99.toFixed(2),
    String(r.scaleEvents),
    String(r.peakReplicas),
  ]);
  return textTable(header, rows);
}

/** One scenario replayed at another load: the references and gpufleet. */
export interface LoadScaleRow {
  trace: string;
  loadScale: number;
  goalShare: number;
  staticPeak: FleetResult;
  oracle: FleetResult;
  laggedOracle: FleetResult;
  gpufleet: FleetResult;
}

export function formatLoadScaleTable(rows: LoadScaleRow[]): string {
  const header = [
    "scenario",
    "load",
    "static-peak",
    "oracle",
    "one window late",
    "gpufleet",
    "gpufleet vs static",
  ];
  const cell = (r: FleetResult): string =>
    `${r.gpuHours.toFixed(2)} ${(r.withinTargetShare * 100).toFixed(2)}%`;
  return textTable(
    header,
    rows.map((row) => {
      const meets = row.gpufleet.withinTargetShare >= row.goalShare ? "meets goal" : "MISSES goal";
      const change = ((row.gpufleet.gpuHours - row.staticPeak.gpuHours) / row.staticPeak.gpuHours) * 100;
      return [
        row.trace,
        `${row.loadScale}×`,
        cell(row.staticPeak),
        cell(row.oracle),
        cell(row.laggedOracle),
        cell(row.gpufleet),
        `${meets}, ${change.toFixed(0)}% GPU-h`,
      ];
    }),
  );
}

/** One scenario at one engine speed: the references, gpufleet, and the baselines tuned with hindsight. */
export interface SpeedRow {
  trace: string;
  engineSpeed: number;
  goalShare: number;
  staticPeak: FleetResult;
  oracle: FleetResult;
  gpufleet: FleetResult;
  /** Every baseline row (defaults and tuned). */
  baselines: FleetResult[];
}

/** The cheapest of `rows` meeting the goal, or undefined. */
export function cheapestMeeting(rows: FleetResult[], goalShare: number): FleetResult | undefined {
  let best: FleetResult | undefined;
  for (const r of rows)
    if (r.withinTargetShare >= goalShare && (!best || r.gpuHours < best.gpuHours)) best = r;
  return best;
}

export function formatSpeedTable(rows: SpeedRow[]): string {
  const header = [
    "scenario",
    "engine speed",
    "static-peak",
    "oracle",
    "gpufleet",
    "gpufleet / oracle",
    "cheapest baseline meeting goal",
  ];
  const cell = (r: FleetResult): string =>
    `${r.gpuHours.toFixed(2)} ${(r.withinTargetShare * 100).toFixed(2)}%`;
  return textTable(
    header,
    rows.map((row) => {
      const best = cheapestMeeting(row.baselines, row.goalShare);
      let closest: FleetResult | undefined;
      for (const r of row.baselines)
        if (!closest || r.withinTargetShare > closest.withinTargetShare) closest = r;
      const meets = row.gpufleet.withinTargetShare >= row.goalShare ? "" : " MISSES";
      return [
        row.trace,
        `${row.engineSpeed}×`,
        cell(row.staticPeak),
        cell(row.oracle),
        `${cell(row.gpufleet)}${meets}`,
        `${(row.gpufleet.gpuHours / row.oracle.gpuHours).toFixed(2)}×`,
        best
          ? `${best.controller}: ${cell(best)}`
          : `none (closest ${closest?.controller ?? "-"}: ${closest ? cell(closest) : "-"})`,
      ];
    }),
  );
}

const COLORS = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#17becf",
];

interface Panel {
  title: string;
  value: (p: TimelinePoint) => number;
}

const PANELS: Panel[] = [
  { title: "arrivals / s", value: (p) => p.arrivalsPerSecond },
  { title: "replicas (requested)", value: (p) => p.replicas },
  { title: "mean KV-cache utilization", value: (p) => p.meanKvCacheUtilization },
  { title: "requests waiting (all pods + router)", value: (p) => p.requestsWaiting },
];

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Four stacked panels over time, one line per policy (arrivals drawn once: they are the same). */
export function timelineSvg(title: string, results: FleetResult[]): string {
  const width = 1100;
  const panelHeight = 170;
  const left = 60;
  const right = 190;
  const top = 40;
  const gap = 30;
  const height = top + PANELS.length * (panelHeight + gap) + 20;
  const plotWidth = width - left - right;
  const maxT = maxOf(
    results.flatMap((r) => r.timeline.map((p) => p.atMs)),
    1,
  );
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  PANELS.forEach((panel, pi) => {
    const y0 = top + pi * (panelHeight + gap);
    const series = pi === 0 ? results.slice(0, 1) : results;
    const maxV = maxOf(
      series.flatMap((r) => r.timeline.map(panel.value)),
      1e-9,
    );
    out.push(
      `<rect x="${left}" y="${y0}" width="${plotWidth}" height="${panelHeight}" fill="none" stroke="#999"/>`,
    );
    out.push(`<text x="${left + 4}" y="${y0 + 13}" font-weight="bold">${escapeXml(panel.title)}</text>`);
    out.push(`<text x="${left - 4}" y="${y0 + 10}" text-anchor="end">${maxV.toPrecision(3)}</text>`);
    out.push(`<text x="${left - 4}" y="${y0 + panelHeight}" text-anchor="end">0</text>`);
    for (let m = 0; m <= maxT / 60_000; m += 10) {
      const x = left + ((m * 60_000) / maxT) * plotWidth;
      out.push(
        `<line x1="${x.toFixed(1)}" y1="${y0 + panelHeight}" x2="${x.toFixed(1)}" y2="${y0 + panelHeight + 4}" stroke="#999"/>`,
      );
      out.push(`<text x="${x.toFixed(1)}" y="${y0 + panelHeight + 15}" text-anchor="middle">${m} min</text>`);
    }
    series.forEach((r, ri) => {
      const points = r.timeline
        .map(
          (p) =>
            `${(left + (p.atMs / maxT) * plotWidth).toFixed(1)},${(y0 + panelHeight - (panel.value(p) / maxV) * panelHeight).toFixed(1)}`,
        )
        .join(" ");
      const color = pi === 0 ? "#444" : (COLORS[ri % COLORS.length] as string);
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.2" points="${points}"/>`);
    });
  });
  results.forEach((r, ri) => {
    const y = top + 20 + ri * 16;
    out.push(
      `<line x1="${width - right + 12}" y1="${y - 4}" x2="${width - right + 32}" y2="${y - 4}" stroke="${COLORS[ri % COLORS.length]}" stroke-width="3"/>`,
    );
    out.push(`<text x="${width - right + 36}" y="${y}">${escapeXml(r.controller)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n");
}
