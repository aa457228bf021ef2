/**
 * Replays a trace through the policy engine: every evaluation interval the trace's load is spread over the
 * simulated group's ready members, `decideGroup` decides, the history is recorded, and the decision is carried out
 * at once (new VMs become ready `bootSeconds` later, scale-in removes the newest). Pure and deterministic.
 */
import { POLICY_DEFAULTS, type MetricName, type ScalingSpec } from "../../config/scaling.js";
import { validateScaling } from "../../config/validate-scaling.js";
import type { GroupMetrics, Sample } from "../../metrics/types.js";
import type { Member } from "../aggregate.js";
import { decideGroup } from "../decide-group.js";
import type { DecisionCode } from "../decision.js";
import { emptyHistory, recordDecision } from "../history.js";
import { SimulationError, TraceError } from "./errors.js";
import type { Trace, TraceFormat, TraceShape } from "./trace.js";

/** How a metric responds to the group's size: `spread` divides the group's load over the ready members, `fixed` does not. */
export type LoadKind = "spread" | "fixed";

/** Per metric, how the recorded values carry over to another group size (see `DEFAULT_LOAD`). */
export type LoadModel = Partial<Record<MetricName, LoadKind>>;

/** cpu, disk and network are work shared by the members; memory used per VM stays what it was (a cache, a runtime). */
export const DEFAULT_LOAD: Record<MetricName, LoadKind> = {
  cpu: "spread",
  memory: "fixed",
  disk_read_bytes: "spread",
  disk_write_bytes: "spread",
  net_rx_bytes: "spread",
  net_tx_bytes: "spread",
};

/** The simulation's defaults. */
export const SIMULATE_DEFAULTS = {
  /** premiscale's scan interval. */
  evalIntervalSeconds: 15,
  /** From creation until a new VM is ready and takes load. */
  bootSeconds: 60,
  /** More steps than this is refused: raise the evaluation interval or cut the trace. */
  maxSteps: 100_000,
} as const;

/** The group being simulated: its bounds and its size when the trace starts. */
export interface SimulatedGroup {
  name: string;
  min: number;
  max: number;
  /** Members at the start, ready and warmed up. */
  initial: number;
}

/** Options shared by `simulate` and `compare`. */
export interface SimulateOptions {
  trace: Trace;
  /** @default 15 */
  evalIntervalSeconds?: number;
  /** @default 60 */
  bootSeconds?: number;
  /** Group trace without a `size` column: the size it was recorded at. @default the group's `initial` */
  recordedSize?: number;
  /** @default DEFAULT_LOAD */
  load?: LoadModel;
  /**
   * The first evaluation is this long after the trace starts, so the policies' windows hold data, as they would in
   * a running premiscale. @default the longest window of the policies (`compare`: of all runs)
   */
  primeSeconds?: number;
}

/** Everything `simulate` needs. */
export interface SimulateInput extends SimulateOptions {
  group: SimulatedGroup;
  scaling: ScalingSpec;
  /** Names this run in renderings. @default the group's name */
  label?: string;
}

/** The group at one evaluation. */
export interface TimelinePoint {
  /** ISO 8601. */
  at: string;
  /** Members before the decision (booting ones included). */
  size: number;
  /** Members ready, taking the load. */
  ready: number;
  /** The decision; the group has this many members until the next evaluation. */
  desired: number;
  code: DecisionCode;
  /** Per metric, what each ready member reported at this evaluation; missing when the trace has no data here. */
  values: Partial<Record<MetricName, number>>;
  /** Per spread metric, the group's total load here (the recorded per-member value × the recorded size). */
  demand: Partial<Record<MetricName, number>>;
  /** A percentage metric would have been above 100% per member: the load did not fit in the ready members. */
  saturated: boolean;
}

/** A change of size. */
export interface SimulationEvent {
  at: string;
  from: number;
  to: number;
  code: DecisionCode;
  reason: string;
}

/** The numbers a reviewer compares. */
export interface SimulationSummary {
  startSize: number;
  endSize: number;
  minSize: number;
  peakSize: number;
  scaleOuts: number;
  scaleIns: number;
  /** Members × time: each evaluation's decision counts for one interval (booting members count: they are paid for). */
  vmHours: number;
  /** Time a percentage metric's load exceeded 100% of the ready members. */
  saturatedSeconds: number;
  /** Time without data for the primary metric. */
  noDataSeconds: number;
  /** The primary metric as the members reported it (evaluations with data). */
  metric?: { name: MetricName; mean: number; max: number };
}

/** What is known of the trace, for headings (plain data). */
export interface TraceInfo {
  file: string;
  format: TraceFormat;
  shape: TraceShape;
  metrics: MetricName[];
  rows: number;
  start: string;
  end: string;
  intervalSeconds: number;
}

/** One run: the timeline, the events and the summary. Plain JSON. */
export interface SimulationResult {
  label: string;
  group: SimulatedGroup;
  scaling: ScalingSpec;
  trace: TraceInfo;
  evalIntervalSeconds: number;
  bootSeconds: number;
  /** The metric the charts show: the first metric a policy uses, else the trace's first. */
  primaryMetric: MetricName;
  /** The first target-tracking target on the primary metric, drawn as a line. */
  target?: number;
  timeline: TimelinePoint[];
  events: SimulationEvent[];
  summary: SimulationSummary;
}

/** Several runs over one trace, e.g. the current and the proposed policies. */
export interface Comparison {
  trace: TraceInfo;
  runs: SimulationResult[];
}

/** `trace` reduced to plain data. */
export function traceInfo(trace: Trace): TraceInfo {
  return {
    file: trace.file,
    format: trace.format,
    shape: trace.shape,
    metrics: trace.metrics,
    rows: trace.rows.length,
    start: new Date(trace.start).toISOString(),
    end: new Date(trace.end).toISOString(),
    intervalSeconds: trace.intervalSeconds,
  };
}

const PERCENT: readonly MetricName[] = ["cpu", "memory"];

/** Checks the options before a run; throws `SimulationError` or, when the trace lacks a metric the policies use, `TraceError`. */
function check(input: SimulateInput, interval: number, boot: number): void {
  const { group, trace } = input;
  const whole = (n: number): boolean => Number.isInteger(n) && n >= 0;
  if (!whole(group.min) || !whole(group.max) || group.min > group.max) {
    throw new SimulationError(`group ${group.name}: min ${group.min} and max ${group.max} must be whole numbers with min ≤ max`);
  }
  if (!whole(group.initial) || group.initial < group.min || group.initial > group.max) {
    throw new SimulationError(`group ${group.name}: the start size ${group.initial} is outside min ${group.min} / max ${group.max}`, "give a start size between min and max");
  }
  if (!(interval > 0) || !Number.isFinite(interval)) throw new SimulationError(`the evaluation interval must be more than 0 seconds, got ${interval}`);
  if (!(boot >= 0) || !Number.isFinite(boot)) throw new SimulationError(`the boot time must be 0 seconds or more, got ${boot}`);
  const prime = input.primeSeconds ?? lookbackSeconds(input.scaling);
  if (!(prime >= 0) || trace.start + prime * 1000 > trace.end) {
    throw new SimulationError(`${trace.file}: the trace is shorter than the ${prime}s the policies look back; nothing would be evaluated`, "record a longer trace");
  }
  if (input.recordedSize !== undefined && !(Number.isInteger(input.recordedSize) && input.recordedSize >= 1)) {
    throw new SimulationError(`the recorded size must be a whole number, at least 1, got ${input.recordedSize}`);
  }
  const steps = Math.floor((trace.end - trace.start) / (interval * 1000)) + 1;
  if (steps > SIMULATE_DEFAULTS.maxSteps) {
    throw new SimulationError(`${trace.file}: ${steps} evaluations at every ${interval}s is more than ${SIMULATE_DEFAULTS.maxSteps}`, "raise the evaluation interval or cut the trace");
  }
  const issues = validateScaling(input.scaling, group);
  if (issues.length > 0) {
    const lines = issues.map((i) => `scaling.${i.path}: ${i.message}${i.fix ? ` (${i.fix})` : ""}`);
    throw new SimulationError(`group ${group.name}: invalid scaling:\n${lines.join("\n")}`, "fix the group's scaling block");
  }
  const missing = (input.scaling.policies ?? []).flatMap((p, i) => (p.type !== "schedule" && !trace.metrics.includes(p.metric) ? [{ metric: p.metric, i }] : []));
  if (missing.length > 0) {
    const what = trace.format === "csv" ? "column" : "field";
    throw new TraceError(
      missing.map(({ metric, i }) => ({ file: trace.file, line: 0, row: 0, field: metric, message: `group ${group.name} scales on ${metric} (policies[${i}].metric), but the trace has no ${metric} ${what}` })),
      `record ${[...new Set(missing.map((m) => m.metric))].join(", ")} in the trace, or simulate a group whose policies use ${trace.metrics.join(", ")}`,
    );
  }
}

/** How far back the policies look, in seconds: their windows and threshold periods. */
function lookbackSeconds(scaling: ScalingSpec): number {
  return Math.max(
    POLICY_DEFAULTS.windowSeconds,
    ...(scaling.policies ?? []).map((p) => {
      if (p.type === "target-tracking" || p.type === "step") return p.windowSeconds ?? POLICY_DEFAULTS.windowSeconds;
      if (p.type === "threshold") return (p.evaluationPeriods ?? POLICY_DEFAULTS.evaluationPeriods) * (p.periodSeconds ?? POLICY_DEFAULTS.periodSeconds);
      return 0;
    }),
  );
}

/** Per metric, the group's load at one evaluation and the mean value per recorded member. */
type Load = Partial<Record<MetricName, { demand: number; perMember: number }>>;

/**
 * The load at `t` from the rows `rows[from..to)` (those in the last `holdMs`): per source (each member, or the
 * group), the mean of its values since the previous evaluation, else its newest value. Group rows count × their
 * size; members' values add up.
 */
function loadAt(trace: Trace, from: number, to: number, t: number, sinceMs: number, recordedSize: number): Load {
  const out: Load = {};
  for (const metric of trace.metrics) {
    // Per source: values since the last evaluation (sum, count), else the newest value before.
    const sources = new Map<string, { recent: number[]; newest?: number }>();
    for (let i = from; i < to; i++) {
      const r = trace.rows[i];
      const v = r?.values[metric];
      if (r === undefined || v === undefined) continue;
      const value = trace.shape === "group" ? v * (r.size ?? recordedSize) : v;
      const key = r.member ?? "";
      const src = sources.get(key) ?? { recent: [] };
      if (r.at > t - sinceMs) src.recent.push(value);
      else src.newest = value;
      sources.set(key, src);
    }
    if (sources.size === 0) continue;
    const mean = (xs: number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;
    const perSource = [...sources.values()].map((src) => (src.recent.length > 0 ? mean(src.recent) : (src.newest ?? 0)));
    if (trace.shape === "group") {
      const demand = perSource[0] ?? 0;
      // The per-member value of the same rows (for metrics that do not spread).
      const rows = trace.rows.slice(from, to).filter((r) => r.values[metric] !== undefined);
      const recent = rows.filter((r) => r.at > t - sinceMs);
      const pick = recent.length > 0 ? recent : rows.slice(-1);
      out[metric] = { demand, perMember: mean(pick.map((r) => r.values[metric] ?? 0)) };
    } else {
      const demand = perSource.reduce((a, x) => a + x, 0);
      out[metric] = { demand, perMember: demand / perSource.length };
    }
  }
  return out;
}

interface SimMember {
  name: string;
  createdAt: string;
  readyAt: number;
  samples: Partial<Record<MetricName, Sample[]>>;
}

/**
 * Runs one group's policies over a trace, from its first time to its last, every `evalIntervalSeconds`. Throws
 * `SimulationError` for impossible options or an invalid scaling block, `TraceError` when the trace lacks a metric
 * the policies use.
 */
export function simulate(input: SimulateInput): SimulationResult {
  const interval = input.evalIntervalSeconds ?? SIMULATE_DEFAULTS.evalIntervalSeconds;
  const boot = input.bootSeconds ?? SIMULATE_DEFAULTS.bootSeconds;
  check(input, interval, boot);
  const { trace, group, scaling } = input;
  const load = { ...DEFAULT_LOAD, ...input.load };
  const recordedSize = input.recordedSize ?? Math.max(1, group.initial);
  const keepMs = (lookbackSeconds(scaling) + interval) * 1000;
  const step = interval * 1000;
  const primaryMetric =
    (scaling.policies ?? []).flatMap((p) => (p.type === "schedule" ? [] : [p.metric])).find((m) => trace.metrics.includes(m)) ?? trace.metrics[0] ?? "cpu";
  const targetPolicy = (scaling.policies ?? []).find((p) => p.type === "target-tracking" && p.metric === primaryMetric);

  let members: SimMember[] = Array.from({ length: group.initial }, (_, i) => ({
    name: `${group.name}-${i + 1}`,
    createdAt: new Date(trace.start - 86_400_000).toISOString(),
    readyAt: trace.start - 86_400_000,
    samples: {},
  }));
  let nextId = group.initial + 1;
  let history = emptyHistory();
  const timeline: TimelinePoint[] = [];
  const events: SimulationEvent[] = [];
  let row = 0;

  // A row counts until 1.5 trace intervals have passed (the next one is late or missing): then there is no data.
  const holdMs = Math.max(1.5 * trace.intervalSeconds, interval) * 1000;
  let low = 0;
  const firstEval = trace.start + (input.primeSeconds ?? lookbackSeconds(scaling)) * 1000;
  for (let t = trace.start; t <= trace.end; t += step) {
    while (row < trace.rows.length && (trace.rows[row]?.at ?? Infinity) <= t) row++;
    while (low < row && (trace.rows[low]?.at ?? Infinity) <= t - holdMs) low++;
    const loads = loadAt(trace, low, row, t, step, recordedSize);
    const ready = members.filter((m) => m.readyAt <= t);
    const values: TimelinePoint["values"] = {};
    const demand: TimelinePoint["demand"] = {};
    let saturated = false;
    for (const metric of trace.metrics) {
      const l = loads[metric];
      if (!l) continue;
      let value: number | undefined = l.perMember;
      if (load[metric] === "spread") {
        demand[metric] = l.demand;
        value = ready.length > 0 ? l.demand / ready.length : undefined;
        if (value === undefined || (PERCENT.includes(metric) && value > 100 + 1e-9)) {
          saturated ||= l.demand > 0;
          if (value !== undefined) value = 100;
        }
      }
      if (value === undefined) continue;
      values[metric] = value;
      const v = value;
      for (const m of ready) m.samples[metric] = [...(m.samples[metric] ?? []).filter((x) => x.at > t - keepMs), { at: t, value: v }];
    }

    if (t < firstEval) continue;
    const clock = new Date(t);
    const view: Member[] = members.map((m) => ({ name: m.name, createdAt: m.createdAt, ready: m.readyAt <= t }));
    const metrics: GroupMetrics = { members: Object.fromEntries(members.map((m) => [m.name, m.samples])) };
    const current = members.length;
    const d = decideGroup({ group: { name: group.name, min: group.min, max: group.max, current, members: view }, scaling, metrics, history, now: clock });
    history = recordDecision(history, d, clock);
    const at = clock.toISOString();
    timeline.push({ at, size: current, ready: ready.length, desired: d.desired, code: d.code, values, demand, saturated });
    if (d.desired !== current) events.push({ at, from: current, to: d.desired, code: d.code, reason: d.reason });
    while (members.length < d.desired) members.push({ name: `${group.name}-${nextId++}`, createdAt: at, readyAt: t + boot * 1000, samples: {} });
    if (members.length > d.desired) members = members.slice(0, d.desired);
  }

  return {
    label: input.label ?? group.name,
    group: { ...group },
    scaling,
    trace: traceInfo(trace),
    evalIntervalSeconds: interval,
    bootSeconds: boot,
    primaryMetric,
    ...(targetPolicy?.type === "target-tracking" ? { target: targetPolicy.target } : {}),
    timeline,
    events,
    summary: summarize(timeline, events, primaryMetric, interval),
  };
}

function summarize(timeline: TimelinePoint[], events: SimulationEvent[], metric: MetricName, interval: number): SimulationSummary {
  const sizes = timeline.map((p) => p.desired);
  const seen = timeline.flatMap((p) => (p.values[metric] === undefined ? [] : [p.values[metric] as number]));
  const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;
  return {
    startSize: timeline[0]?.size ?? 0,
    endSize: sizes[sizes.length - 1] ?? 0,
    minSize: Math.min(...timeline.map((p) => Math.min(p.size, p.desired))),
    peakSize: Math.max(...timeline.map((p) => Math.max(p.size, p.desired))),
    scaleOuts: events.filter((e) => e.to > e.from).length,
    scaleIns: events.filter((e) => e.to < e.from).length,
    vmHours: round((timeline.reduce((a, p) => a + p.desired, 0) * interval) / 3600, 2),
    saturatedSeconds: timeline.filter((p) => p.saturated).length * interval,
    noDataSeconds: timeline.filter((p) => p.values[metric] === undefined).length * interval,
    ...(seen.length > 0 ? { metric: { name: metric, mean: round(seen.reduce((a, b) => a + b, 0) / seen.length, 2), max: round(Math.max(...seen), 2) } } : {}),
  };
}

/** Runs several scaling configurations (e.g. the current and the proposed) over the same trace. */
export function compare(input: SimulateOptions & { runs: { label: string; group: SimulatedGroup; scaling: ScalingSpec }[] }): Comparison {
  if (input.runs.length === 0) throw new SimulationError("compare needs at least one run");
  const labels = input.runs.map((r) => r.label);
  const twice = labels.find((l, i) => labels.indexOf(l) !== i);
  if (twice !== undefined) throw new SimulationError(`two runs are labelled ${JSON.stringify(twice)}`, "give each run its own label");
  const { runs, ...options } = input;
  const primeSeconds = options.primeSeconds ?? Math.max(...runs.map((r) => lookbackSeconds(r.scaling)));
  return { trace: traceInfo(input.trace), runs: runs.map((r) => simulate({ ...options, primeSeconds, ...r })) };
}
