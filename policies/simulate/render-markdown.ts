import { formatDuration, formatValue } from "../format.js";
import { RUN_COLORS } from "./render-svg.js";
import { allEvents, evaluatedRange, formatTime, meanOf, metricTitle, metricUnit, niceCeil, num, runsOf, setupLines, summaryRows, type Rendered } from "./series.js";
import type { SimulationResult, TimelinePoint } from "./simulate.js";

/** Points per mermaid series at most: more gives no detail in a 700-pixel chart and bloats a pull-request comment. */
export const MAX_CHART_POINTS = 100;
/** Events listed; the rest are counted (the text and JSON outputs have all of them). */
export const MAX_EVENT_ROWS = 50;

/** Chart steps in seconds: in minutes or quarter hours they are exact binary fractions, so mermaid spaces them evenly. */
const CHART_STEPS = [15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400];
const BAR_COLOR = "#d1d5db";
const TARGET_COLOR = "#9ca3af";
/** Lighter shades of `RUN_COLORS`, for each run's target. */
const LIGHT = ["#93c5fd", "#fca5a5", "#86efac", "#d8b4fe"];

/** Text in a markdown table cell or paragraph, with markdown's and HTML's special characters escaped. */
const md = (s: string): string => s.replace(/[\\`*_[\]<>|]/g, (c) => `\\${c}`).replace(/\n/g, " ");
/** Text inside a mermaid string (which cannot hold a double quote). */
const quoted = (s: string): string => `"${s.replace(/"/g, "'")}"`;

/** The points of the charts: times from the trace's start, every `step` seconds, and the x axis they make. */
function chartAxis(runs: SimulationResult[], startMs: number, endMs: number): { times: number[]; step: number; axis: string } {
  const span = (endMs - startMs) / 1000;
  const minStep = runs[0]?.evalIntervalSeconds ?? 15;
  const step = CHART_STEPS.find((s) => s >= minStep && span / s + 1 <= MAX_CHART_POINTS) ?? Math.ceil(span / (MAX_CHART_POINTS - 1));
  const count = Math.floor(span / step) + 1;
  const times = Array.from({ length: count }, (_, k) => startMs + k * step * 1000);
  const hours = (step * 4) % 3600 === 0 && span >= 7200;
  const unit = hours ? 3600 : 60;
  const from = formatTime(startMs).slice(0, 16);
  const axis = `x-axis ${quoted(`${hours ? "hours" : "minutes"} from ${from} UTC`)} 0 --> ${num(((count - 1) * step) / unit, 4)}`;
  return { times, step, axis };
}

/** For each chart time, the timeline points in the step ending there (the first time: the first point). */
function perTime(timeline: TimelinePoint[], times: number[], step: number): TimelinePoint[][] {
  const out: TimelinePoint[][] = times.map(() => []);
  let k = 0;
  for (const p of timeline) {
    const t = Date.parse(p.at);
    while (k < times.length - 1 && t > (times[k] ?? 0)) k++;
    if (t > (times[k] ?? 0) - step * 1000) out[k]?.push(p);
  }
  return out;
}

const capital = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
const series = (values: number[], digits = 1): string => `[${values.map((v) => num(v, digits)).join(", ")}]`;
const init = (colors: string[]): string => `%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "${colors.join(", ")}"}}}}%%`;
const colorName: Record<string, string> = {
  "#2563eb": "blue",
  "#dc2626": "red",
  "#16a34a": "green",
  "#9333ea": "purple",
  "#93c5fd": "light blue",
  "#fca5a5": "light red",
  "#86efac": "light green",
  "#d8b4fe": "light purple",
};

/**
 * A simulation or comparison as GitHub/GitLab markdown: a summary (a line, or a table with Δ for two runs), two
 * mermaid `xychart-beta` charts (VMs per run over the load in busy VMs; the primary metric per VM with the target),
 * and the scaling events in a folded table. At most `MAX_CHART_POINTS` points per series and `MAX_EVENT_ROWS` events.
 */
export function renderMarkdown(x: Rendered): string {
  const { trace, runs } = runsOf(x);
  const first = runs[0] as SimulationResult;
  const metric = first.primaryMetric;
  const fmt = (v: number): string => formatValue(metric, v);
  const out: string[] = [`### Simulation of group \`${first.group.name}\`${runs.length > 1 ? `: ${runs.map((r) => md(r.label)).join(" vs ")}` : ""}`, ""];
  out.push(setupLines(trace, first).map(md).join("  \n"), "");

  if (runs.length === 1) {
    const s = first.summary;
    const seen = s.metric ? `; ${metricTitle(metric)} mean ${fmt(s.metric.mean)}, max ${fmt(s.metric.max)}` : "";
    const bad = [s.saturatedSeconds > 0 ? `saturated for ${formatDuration(s.saturatedSeconds)}` : "", s.noDataSeconds > 0 ? `no ${metric} data for ${formatDuration(s.noDataSeconds)}` : ""].filter(Boolean);
    out.push(
      `**${md(first.label)}**: ${s.startSize} → ${s.endSize} VMs (between ${s.minSize} and ${s.peakSize}; min ${first.group.min}, max ${first.group.max}), ` +
        `${s.scaleOuts} scale-out${s.scaleOuts === 1 ? "" : "s"}, ${s.scaleIns} scale-in${s.scaleIns === 1 ? "" : "s"}, ${num(s.vmHours, 2)} VM-hours${seen}${bad.length ? `; ${bad.join(", ")}` : ""}.`,
      "",
    );
  } else {
    const two = runs.length === 2;
    out.push(`| | ${runs.map((r) => md(r.label)).join(" | ")} |${two ? " Δ |" : ""}`, `|---|${runs.map(() => "---|").join("")}${two ? "---|" : ""}`);
    for (const row of summaryRows(runs)) out.push(`| ${md(row.name)} | ${row.values.map(md).join(" | ")} |${two ? ` ${md(row.delta ?? "")} |` : ""}`);
    out.push("");
  }

  // Chart 1: VMs per run, over the load in busy VMs when the metric is cpu.
  const range = evaluatedRange(trace, runs);
  const { times, step, axis } = chartAxis(runs, range.start, range.end);
  const perRun = runs.map((r) => perTime(r.timeline, times, step));
  const colors = runs.map((_, i) => RUN_COLORS[i % RUN_COLORS.length] ?? "#000");
  const legend = runs.length > 1 ? runs.map((r, i) => `${colorName[colors[i] ?? ""] ?? colors[i]}: ${md(r.label)}`).join(", ") + ". " : "";
  const showLoad = metric === "cpu" && first.timeline.some((p) => p.demand.cpu !== undefined);
  const sizes = perRun.map((pts) => pts.map((b) => Math.max(0, ...b.map((p) => p.desired))));
  const loads = (perRun[0] ?? []).map((b) => (meanOf(b.map((p) => p.demand.cpu)) ?? 0) / 100);
  const yMax = Math.max(1, ...sizes.flat(), ...(showLoad ? loads : []), ...runs.map((r) => (r.group.max <= 2 * r.summary.peakSize ? r.group.max : 0)));
  out.push("```mermaid", init(showLoad ? [BAR_COLOR, ...colors] : colors), "xychart-beta", `    title ${quoted(`${first.group.name}: VMs`)}`, `    ${axis}`, `    y-axis "VMs" 0 --> ${Math.ceil(yMax)}`);
  if (showLoad) out.push(`    bar ${series(loads)}`);
  for (const s of sizes) out.push(`    line ${series(s, 0)}`);
  out.push("```", "");
  const loadText = showLoad ? "Grey bars: the cpu load in VMs' worth of work (load ÷ 100% per VM). " : "";
  out.push(`_${capital(`${legend}${loadText}One point per ${formatDuration(step)}, showing the most VMs in that span.`)}_`, "");

  // Chart 2: the metric per VM as each run's members saw it, and the target.
  const raw = perRun.map((pts) => pts.map((b) => meanOf(b.map((p) => p.values[metric]))));
  const top = Math.max(0, ...raw.flat().map((v) => v ?? 0), ...runs.map((r) => r.target ?? 0));
  const unit = metricUnit(metric, top);
  const held = raw.map((vs) => {
    let last = 0;
    return vs.map((v) => (last = v === undefined ? last : v / unit.divisor));
  });
  // One grey target when the runs share it, else each run's target in a light shade of its colour.
  const targets = runs.map((r, i) => ({ r, i, value: r.target })).filter((t): t is { r: SimulationResult; i: number; value: number } => t.value !== undefined);
  const shared = targets.length > 0 && targets.length === runs.length && targets.every((t) => t.value === targets[0]?.value);
  const targetLines = shared ? targets.slice(0, 1) : targets;
  const targetColors = targetLines.map((t) => (shared ? TARGET_COLOR : (LIGHT[t.i % LIGHT.length] ?? TARGET_COLOR)));
  out.push("```mermaid", init([...colors, ...targetColors]), "xychart-beta", `    title ${quoted(`${metricTitle(metric)} (${unit.label})`)}`, `    ${axis}`);
  out.push(`    y-axis ${quoted(unit.label)} 0 --> ${unit.percent ? 100 : niceCeil(top / unit.divisor)}`);
  for (const s of held) out.push(`    line ${series(s)}`);
  for (const t of targetLines) out.push(`    line ${series(times.map(() => t.value / unit.divisor))}`);
  out.push("```", "");
  const targetText = shared
    ? `Grey: the target, ${md(fmt(targets[0]?.value ?? 0))}. `
    : targetLines.map((t, k) => `${colorName[targetColors[k] ?? ""] ?? "light"}: ${md(t.r.label)}'s target, ${md(fmt(t.value))}`).join(", ") + (targetLines.length > 0 ? ". " : "");
  const gaps = runs.some((r) => r.summary.noDataSeconds > 0) ? " Where the trace has no data the line keeps its last value." : "";
  out.push(`_${capital(`${legend}${targetText}Means per ${formatDuration(step)}.${gaps}`)}_`, "");

  // Events, folded when there are many.
  const events = allEvents(runs);
  if (events.length === 0) out.push("No scaling events: the size never changed.");
  else {
    out.push(`<details${events.length <= 10 ? " open" : ""}><summary>${events.length} scaling event${events.length === 1 ? "" : "s"}</summary>`, "");
    const multi = runs.length > 1;
    out.push(`| time (UTC) |${multi ? " run |" : ""} size | code | reason |`, `|---|${multi ? "---|" : ""}---|---|---|`);
    for (const e of events.slice(0, MAX_EVENT_ROWS)) {
      out.push(`| ${formatTime(e.at)} |${multi ? ` ${md(e.run)} |` : ""} ${e.from} → ${e.to} | \`${e.code}\` | ${md(e.reason)} |`);
    }
    if (events.length > MAX_EVENT_ROWS) out.push("", `… and ${events.length - MAX_EVENT_ROWS} more (the text output lists them all).`);
    out.push("", "</details>");
  }
  return out.join("\n") + "\n";
}
