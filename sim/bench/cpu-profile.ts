/**
 * Where a process's CPU went, from a V8 `.cpuprofile` (node --cpu-prof): self time by function and by
 * area (an npm package, a folder of this repo, or V8's own entries such as the garbage collector).
 * Pure apart from reading the files.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
}

export interface SelfTime {
  name: string;
  ms: number;
}

/** The area a script URL belongs to: `npm:<package>`, a repo folder (two levels), `node:internal`, or V8's. */
export function areaOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  const packageMatch = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (packageMatch) return `npm:${packageMatch[1]}`;
  if (url.startsWith("node:")) return "node:internal";
  const repoMatch = /\/(operator|sim|gateway|infra|test)\/([^/]+)\//.exec(url);
  if (repoMatch) return `${repoMatch[1]}/${repoMatch[2]}`;
  return url
    .replace(/^file:\/\//, "")
    .split("/")
    .slice(-2)
    .join("/");
}

export function selfTimes(profile: CpuProfile): {
  byFunction: SelfTime[];
  byArea: SelfTime[];
  totalMs: number;
} {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  let totalMs = 0;
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const node = nodes.get(samples[i]!);
    const ms = (deltas[i] ?? 0) / 1000;
    if (!node || ms <= 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") continue;
    totalMs += ms;
    const where = url
      ? `${url.replace(/^.*\/(node_modules|operator|sim|gateway)\//, "$1/")}:${lineNumber + 1}`
      : "";
    const name = `${functionName || "(anonymous)"}${where ? ` ${where}` : ""}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
    const area = areaOf(url, functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + ms);
  }
  const sorted = (map: Map<string, number>) =>
    [...map].map(([name, ms]) => ({ name, ms })).sort((a, b) => b.ms - a.ms);
  return { byFunction: sorted(byFunction), byArea: sorted(byArea), totalMs };
}

/** A short text summary of every .cpuprofile in `dir` (top areas and functions by self time). */
export function summarizeCpuProfile(dir: string, top = 12): string | undefined {
  let files: string[];
  try {
    files = readdirSync(dir).filter((file) => file.endsWith(".cpuprofile"));
  } catch {
    return undefined;
  }
  if (files.length === 0) return undefined;
  const lines: string[] = [];
  for (const file of files) {
    const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile;
    const { byFunction, byArea, totalMs } = selfTimes(profile);
    const share = (ms: number) => `${((ms / Math.max(totalMs, 1)) * 100).toFixed(1).padStart(5)}%`;
    lines.push(`${file}: ${(totalMs / 1000).toFixed(1)} s of CPU sampled (${join(dir, file)})`);
    lines.push("  by area:");
    for (const entry of byArea.slice(0, top)) lines.push(`    ${share(entry.ms)}  ${entry.name}`);
    lines.push("  by function:");
    for (const entry of byFunction.slice(0, top)) lines.push(`    ${share(entry.ms)}  ${entry.name}`);
  }
  return lines.join("\n");
}
