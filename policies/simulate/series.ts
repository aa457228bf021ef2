/** Helpers the renderers share: times, buckets of the timeline, axis ticks, units and the summary rows. */
import type { MetricName } from "../../config/scaling.js";
import { formatDuration, formatValue } from "../format.js";
import type { Comparison, SimulationResult, TimelinePoint, TraceInfo } from "./simulate.js";

/** What every renderer takes: one run or a comparison. */
export type Rendered = SimulationResult | Comparison;

/** The trace and the runs of either input. */
export function runsOf(x: Rendered): { trace: TraceInfo; runs: SimulationResult[] } {
  return "runs" in x ? x : { trace: x.trace, runs: [x] };
}

const pad2 = (n: number): string => String(n).padStart(2, "0");

/** `2025-06-02 12:31:15` (UTC). */
export function formatTime(at: string | number): string {
  return new Date(at).toISOString().slice(0, 19).replace("T", " ");
}

/** True when `start` and `end` fall on different UTC days, so time labels need the date. */
export const withDate = (start: number, end: number): boolean => Math.floor(start / 86_400_000) !== Math.floor(end / 86_400_000);

/** An axis label: `12:30`, or `06-02 12:30` with the date (UTC). */
export function axisLabel(ms: number, date: boolean): string {
  const d = new Date(ms);
  const hm = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
  return date ? `${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ${hm}` : hm;
}

/** Tick steps for time axes, in seconds. */
const TIME_STEPS = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800];

/** A "nice" step from `steps` so that `span / step` is at most `count`. */
export function niceTimeStep(spanSeconds: number, count: number): number {
  return TIME_STEPS.find((s) => spanSeconds / s <= count) ?? Math.ceil(spanSeconds / count / 86_400) * 86_400;
}

/** The smallest of 1, 2, 5 × 10^k at or above `x`. */
export function niceCeil(x: number): number {
  if (x <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  return ([1, 2, 2.5, 5, 10].map((m) => m * p).find((v) => v >= x - 1e-9) ?? 10 * p);
}

/** A number with at most `digits` decimals and no exponent (`12.5`, `3`), stable for golden files. */
export function num(x: number, digits = 1): string {
  const r = Math.round(x * 10 ** digits) / 10 ** digits;
  return (Object.is(r, -0) ? 0 : r).toFixed(digits).replace(/\.?0+$/, "");
}

/** Per metric: its unit on an axis and the divisor from the metric's own unit. Percentages stay 0–100. */
export function metricUnit(metric: MetricName, max: number): { label: string; divisor: number; percent: boolean } {
  if (metric === "cpu" || metric === "memory") return { label: "%", divisor: 1, percent: true };
  const units = ["B/s", "kB/s", "MB/s", "GB/s", "TB/s"];
  const i = max <= 0 ? 0 : Math.min(units.length - 1, Math.max(0, Math.floor(Math.log10(max) / 3)));
  return { label: units[i] ?? "B/s", divisor: 1000 ** i, percent: false };
}

/** A metric's name with what it is per: `cpu per VM`. */
export const metricTitle = (metric: MetricName): string => `${metric} per VM`;

/** The timeline cut into `count` equal spans of time (the last may be shorter); each bucket holds its points. */
export function buckets(timeline: TimelinePoint[], count: number): TimelinePoint[][] {
  const n = Math.max(1, Math.min(count, timeline.length));
  return Array.from({ length: n }, (_, i) => timeline.slice(Math.floor((i * timeline.length) / n), Math.floor(((i + 1) * timeline.length) / n)));
}

/** Mean of the defined values, or undefined. */
export function meanOf(values: (number | undefined)[]): number | undefined {
  const xs = values.filter((v): v is number => v !== undefined);
  return xs.length === 0 ? undefined : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** The span the charts show: from the first evaluation of any run to the trace's end, in milliseconds. */
export function evaluatedRange(trace: TraceInfo, runs: SimulationResult[]): { start: number; end: number } {
  const start = Math.min(...runs.map((r) => Date.parse(r.timeline[0]?.at ?? trace.start)));
  return { start, end: Math.max(start + 1000, Date.parse(trace.end)) };
}

/** How the trace and the run were set up, in two lines. */
export function setupLines(trace: TraceInfo, run: SimulationResult): string[] {
  const span = (Date.parse(trace.end) - Date.parse(trace.start)) / 1000;
  const shape = trace.shape === "member" ? "a row per member" : "group averages";
  return [
    `trace ${trace.file}: ${trace.rows} rows (${shape}) of ${trace.metrics.join(", ")}, ${formatTime(trace.start)} → ${formatTime(trace.end)} UTC (${formatDuration(span)}, every ${formatDuration(trace.intervalSeconds)})`,
    `evaluated every ${formatDuration(run.evalIntervalSeconds)} from ${formatTime(run.timeline[0]?.at ?? trace.start).slice(11)} (once the policies' windows hold data); a new VM takes load ${formatDuration(run.bootSeconds)} after it is created`,
  ];
}

/** One row of the summary table: a name, a value per run and, for two runs, the difference where it means something. */
export interface SummaryRow {
  name: string;
  values: string[];
  delta?: string;
}

const signed = (x: number, show: (abs: number) => string): string => (x === 0 ? "=" : `${x > 0 ? "+" : "−"}${show(Math.abs(x))}`);

/** The numbers a reviewer compares, one column per run. */
export function summaryRows(runs: SimulationResult[]): SummaryRow[] {
  const s = runs.map((r) => r.summary);
  const delta = (f: (x: SimulationResult["summary"]) => number, show: (abs: number) => string = (v) => num(v, 2)): { delta?: string } => {
    const [a, b] = s;
    return runs.length === 2 && a && b ? { delta: signed(f(b) - f(a), show) } : {};
  };
  const metric = runs[0]?.primaryMetric ?? "cpu";
  const fmt = (v: number): string => formatValue(metric, v);
  return [
    { name: "group", values: runs.map((r) => `min ${r.group.min}, max ${r.group.max}, start ${r.group.initial}`) },
    { name: "size at the end", values: s.map((x) => String(x.endSize)), ...delta((x) => x.endSize) },
    { name: "size range", values: s.map((x) => `${x.minSize}–${x.peakSize}`), ...delta((x) => x.peakSize) },
    { name: "scale-outs / scale-ins", values: s.map((x) => `${x.scaleOuts} / ${x.scaleIns}`) },
    { name: "VM-hours", values: s.map((x) => num(x.vmHours, 2)), ...delta((x) => x.vmHours) },
    { name: `${metricTitle(metric)} mean / max`, values: s.map((x) => (x.metric ? `${fmt(x.metric.mean)} / ${fmt(x.metric.max)}` : "no data")) },
    { name: "saturated (load > 100%)", values: s.map((x) => formatDuration(x.saturatedSeconds)), ...delta((x) => x.saturatedSeconds, formatDuration) },
    { name: `no ${metric} data`, values: s.map((x) => formatDuration(x.noDataSeconds)) },
  ];
}

/** The events of every run, in time order (stable: by run on a tie). */
export function allEvents(runs: SimulationResult[]): (SimulationResult["events"][number] & { run: string })[] {
  return runs.flatMap((r) => r.events.map((e) => ({ ...e, run: r.label }))).sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
}
