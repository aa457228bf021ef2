import { formatValue } from "../format.js";
import { allEvents, axisLabel, evaluatedRange, withDate, buckets, meanOf, metricTitle, runsOf, setupLines, summaryRows, formatTime, type Rendered } from "./series.js";
import type { SimulationResult } from "./simulate.js";

const LEVELS = "▁▂▃▄▅▆▇█";

/** A sparkline of `values` scaled to `[0, top]`; a missing value is a space. */
export function sparkline(values: (number | undefined)[], top: number): string {
  return values
    .map((v) => (v === undefined ? " " : (LEVELS[Math.max(0, Math.min(LEVELS.length - 1, Math.round((v / (top || 1)) * (LEVELS.length - 1))))] ?? " ")))
    .join("");
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function alignColumns(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => [...(r[c] ?? "")].length))) ?? [];
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell + " ".repeat((widths[c] ?? 0) - [...cell].length))).join("  ").trimEnd());
}

/**
 * A simulation or a comparison as text for a terminal: the set-up, a summary table, a sparkline of the size and
 * of the primary metric per run (each character is an equal span of time), and every scaling event.
 */
export function renderText(x: Rendered, opts: { width?: number } = {}): string {
  const { trace, runs } = runsOf(x);
  const first = runs[0] as SimulationResult;
  const width = opts.width ?? 60;
  const out: string[] = [`Simulation of group ${first.group.name}${runs.length > 1 ? `: ${runs.map((r) => r.label).join(" vs ")}` : ""}`];
  out.push(...setupLines(trace, first).map((l) => `  ${l}`), "");

  const rows = summaryRows(runs);
  const two = runs.length === 2;
  out.push(...alignColumns([["", ...runs.map((r) => r.label), ...(two ? ["Δ"] : [])], ...rows.map((r) => [r.name, ...r.values, ...(two ? [r.delta ?? ""] : [])])]).map((l) => `  ${l}`), "");

  const range = evaluatedRange(trace, runs);
  const dated = withDate(range.start, range.end);
  const peak = Math.max(...runs.map((r) => r.summary.peakSize));
  const metric = first.primaryMetric;
  const metricTop = Math.max(1e-9, ...runs.flatMap((r) => r.timeline.map((p) => p.values[metric] ?? 0)));
  const percent = metric === "cpu" || metric === "memory";
  const name = (what: string, r: SimulationResult): string => (runs.length > 1 ? `${what} (${r.label})` : what);
  const lines: string[][] = [];
  for (const r of runs) {
    const bs = buckets(r.timeline, width);
    lines.push([name("size", r), sparkline(bs.map((b) => Math.max(...b.map((p) => p.desired))), peak), `0–${peak} VMs`]);
  }
  for (const r of runs) {
    const bs = buckets(r.timeline, width);
    const top = percent ? 100 : metricTop;
    lines.push([name(metricTitle(metric), r), sparkline(bs.map((b) => meanOf(b.map((p) => p.values[metric]))), top), `0–${formatValue(metric, top)}`]);
  }
  const head = lines[0]?.[0] ?? "";
  const labelWidth = Math.max(...lines.map((l) => [...(l[0] ?? "")].length), [...head].length);
  const cols = buckets(first.timeline, width).length;
  const end = axisLabel(range.end, dated);
  out.push(`  ${" ".repeat(labelWidth + 2)}${axisLabel(range.start, dated).padEnd(Math.max(0, cols - end.length))}${end}`);
  out.push(...alignColumns(lines).map((l) => `  ${l}`), "");

  const events = allEvents(runs);
  out.push(`Scaling events (${events.length})`);
  if (events.length === 0) out.push("  none: the size never changed");
  else {
    const table = [["TIME (UTC)", ...(runs.length > 1 ? ["RUN"] : []), "SIZE", "CODE", "REASON"]];
    for (const e of events) table.push([formatTime(e.at), ...(runs.length > 1 ? [e.run] : []), `${e.from} → ${e.to}`, e.code, e.reason]);
    out.push(...alignColumns(table).map((l) => `  ${l}`));
  }
  return out.join("\n") + "\n";
}
