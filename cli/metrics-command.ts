/**
 * `premiscale metrics`: what the scaling policies would see now. For each group, its members' latest value of every
 * metric over the window, the group average, and a sparkline of the group average across the window, from the
 * configured store or source. Missing data is shown as missing, never as 0; a source that fails is named with its
 * reason and the command exits 1.
 */
import { existsSync } from "node:fs";
import { Option, type Command } from "commander";
import { PremiscaleError } from "../config/errors.js";
import { loadConfig } from "../pipeline/config.js";
import type { Config, MetricsStoreConfig } from "../config/types.js";
import { openConfiguredSource } from "../metrics/from-config.js";
import { displayUrl } from "../metrics/http.js";
import { MetricsError, type GroupMetrics, type MetricsSource } from "../metrics/types.js";
import { METRIC_NAMES, type MetricName } from "../config/scaling.js";
import { GitStateStore } from "../state/git-state-store.js";
import { membersOf } from "../state/types.js";
import { configPath } from "./context.js";
import { parseDuration } from "./parse.js";
import type { Output } from "./output.js";

/** The options of `premiscale metrics`, as parsed by commander. */
export interface MetricsCommandOptions {
  /** Only this group. */
  group?: string;
  /** A duration such as `5m`. */
  window: string;
  json?: boolean;
}

/** One metric of one group over the window. Every missing value is `null`, never 0. */
export interface MetricSummary {
  metric: MetricName;
  unit: "percent" | "bytes_per_second";
  /** Each member's latest sample in the window; `null` when it has none. */
  members: Record<string, number | null>;
  /** Mean of the members' latest values that exist; `null` when none does. */
  average: number | null;
  /** The group average in each equal part of the window, oldest first: per member first, then over the members. */
  trend: (number | null)[];
}

/** One group's result: its summaries, or why the source gave none. */
export interface GroupReport {
  name: string;
  /** Domain names, from state. */
  members: string[];
  /** `null` when the source failed (then `error` says why). */
  metrics: MetricSummary[] | null;
  error: { message: string; hint: string | null } | null;
}

/** What `premiscale metrics --json` prints (`format_version` changes only with a bump). */
export interface MetricsReport {
  format_version: 1;
  now: string;
  window_seconds: number;
  /** Length of one sparkline step. */
  trend_step_seconds: number;
  source: { type: MetricsStoreConfig["type"]; location: string };
  groups: GroupReport[];
}

const UNITS: Record<MetricName, MetricSummary["unit"]> = {
  cpu: "percent",
  memory: "percent",
  disk_read_bytes: "bytes_per_second",
  disk_write_bytes: "bytes_per_second",
  net_rx_bytes: "bytes_per_second",
  net_tx_bytes: "bytes_per_second",
};

const LABELS: Record<MetricName, string> = {
  cpu: "CPU",
  memory: "MEMORY",
  disk_read_bytes: "DISK READ",
  disk_write_bytes: "DISK WRITE",
  net_rx_bytes: "NET RX",
  net_tx_bytes: "NET TX",
};

const SPARK = "▁▂▃▄▅▆▇█";
/** A sparkline step with no sample at all. */
export const NO_DATA = "·";
/** A value with no sample. */
export const MISSING = "—";

/**
 * The sparkline of a series: ▁ (its minimum) to █ (its maximum), `·` where a value is missing. A flat series is
 * drawn at ▁ when it is 0 and ▄ otherwise. Pure.
 */
export function sparkline(values: readonly (number | null)[]): string {
  const present = values.filter((v): v is number => v !== null);
  if (present.length === 0) return NO_DATA.repeat(values.length);
  const lo = Math.min(...present);
  const hi = Math.max(...present);
  return values
    .map((v) => {
      if (v === null) return NO_DATA;
      if (hi === lo) return v === 0 ? SPARK[0] : SPARK[3];
      return SPARK[Math.min(SPARK.length - 1, Math.floor(((v - lo) / (hi - lo)) * SPARK.length))];
    })
    .join("");
}

/** How many sparkline steps a window gets: about two sample intervals each, between 1 and 30. Pure. */
export function trendSteps(windowSeconds: number, sampleIntervalSeconds: number): number {
  return Math.max(1, Math.min(30, Math.floor(windowSeconds / (2 * Math.max(1, sampleIntervalSeconds)))));
}

const mean = (xs: number[]): number | null => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length);

/**
 * Summarises one group's samples over `(fromMs, toMs]`: members' latest values, their mean, and the group average in
 * `steps` equal parts of the window. Samples outside the window are ignored. Pure.
 */
export function summarizeGroup(data: GroupMetrics, members: readonly string[], o: { fromMs: number; toMs: number; steps: number; metrics?: readonly MetricName[] }): MetricSummary[] {
  const width = (o.toMs - o.fromMs) / o.steps;
  return (o.metrics ?? METRIC_NAMES).map((metric) => {
    const latest: Record<string, number | null> = {};
    const perStep: number[][] = Array.from({ length: o.steps }, () => []);
    for (const name of members) {
      const samples = (data.members[name]?.[metric] ?? []).filter((s) => s.at > o.fromMs && s.at <= o.toMs && Number.isFinite(s.value));
      let last: { at: number; value: number } | undefined;
      const sums = new Map<number, number[]>();
      for (const s of samples) {
        if (!last || s.at >= last.at) last = s;
        const i = Math.min(o.steps - 1, Math.max(0, Math.ceil((s.at - o.fromMs) / width) - 1));
        sums.set(i, [...(sums.get(i) ?? []), s.value]);
      }
      latest[name] = last ? last.value : null;
      for (const [i, xs] of sums) perStep[i]!.push(mean(xs)!);
    }
    return {
      metric,
      unit: UNITS[metric],
      members: latest,
      average: mean(Object.values(latest).filter((v): v is number => v !== null)),
      trend: perStep.map(mean),
    };
  });
}

/** A value for people: `41.2%`, `1.5 KiB/s`, or `—` when missing. Pure. */
export function formatValue(unit: MetricSummary["unit"], v: number | null): string {
  if (v === null) return MISSING;
  if (unit === "percent") return `${v.toFixed(1)}%`;
  const steps = ["B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"];
  let x = v;
  let i = 0;
  while (Math.abs(x) >= 1024 && i < steps.length - 1) {
    x /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(x)} B/s` : `${x.toFixed(1)} ${steps[i]}`;
}

/** `5m`, `90s`, `1h30m`: a window for people. Pure. */
export function formatWindow(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

/** The human form of a report (no colour). Pure. */
export function renderMetricsText(r: MetricsReport): string {
  const out: string[] = [];
  const window = formatWindow(r.window_seconds);
  out.push(`Metrics over the last ${window} from ${r.source.type} ${r.source.location}; ${MISSING} no sample in the window, ${NO_DATA} none in that part of it.`);
  for (const g of r.groups) {
    out.push("");
    if (g.members.length === 0) {
      out.push(`${g.name}: no members in state`);
      continue;
    }
    out.push(`${g.name}: ${g.members.length} member${g.members.length === 1 ? "" : "s"}${g.error ? ", metrics unavailable (error below)" : ""}`);
    const cell = (m: MetricName, v: number | null) => formatValue(UNITS[m], v);
    const rows: string[][] = [["MEMBER", ...METRIC_NAMES.map((m) => LABELS[m])]];
    for (const name of g.members) rows.push([name, ...METRIC_NAMES.map((m) => cell(m, g.metrics?.find((s) => s.metric === m)?.members[name] ?? null))]);
    rows.push(["average", ...METRIC_NAMES.map((m) => cell(m, g.metrics?.find((s) => s.metric === m)?.average ?? null))]);
    out.push(...table(rows).map((l) => `  ${l}`));
    if (!g.metrics) continue;
    out.push(`  group average over ${window}, oldest to newest (${formatWindow(r.trend_step_seconds)} a step):`);
    const trendRows = g.metrics.map((s) => {
      const present = s.trend.filter((v): v is number => v !== null);
      const [lo, hi] = [formatValue(s.unit, Math.min(...present)), formatValue(s.unit, Math.max(...present))];
      const range = present.length === 0 ? "no samples" : lo === hi ? `steady at ${lo}` : `${lo} … ${hi}`;
      return [LABELS[s.metric].toLowerCase(), sparkline(s.trend), range];
    });
    out.push(...table(trendRows).map((l) => `    ${l}`));
  }
  return out.join("\n");
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => [...(r[i] ?? "")].length)));
  return rows.map((r) => r.map((c, i) => c + " ".repeat(widths[i]! - [...c].length)).join("  ").trimEnd());
}

/** Where the source is, for people and JSON (no credentials). */
function sourceLocation(store: MetricsStoreConfig): string {
  return store.type === "sqlite" ? store.path : displayUrl(store.url);
}

function sampleIntervalSeconds(config: Config): number {
  const s = config.metrics.store;
  return s.type === "prometheus" ? s.stepSeconds : s.type === "influxdb" ? s.intervalSeconds : config.metrics.intervalSeconds;
}

/** Opens the source; an embedded store that does not exist yet is reported, not created. */
function openSource(config: Config): MetricsSource {
  const store = config.metrics.store;
  if (store.type === "sqlite" && !existsSync(store.path)) {
    throw new MetricsError(store.path, "no metrics were collected yet (the database does not exist)", "run premiscale serve: it collects VM metrics every metrics.intervalSeconds into this store", {
      code: "metrics_store_missing",
    });
  }
  return openConfiguredSource(store);
}

/**
 * Gathers the report: state for the members, one `groupMetrics` call per group with members. A failing source
 * fails only its groups (their `error` says why).
 */
export async function collectMetricsReport(config: Config, opts: { group?: string; windowSeconds: number; now: Date }): Promise<MetricsReport> {
  const groups = opts.group === undefined ? config.groups : config.groups.filter((g) => g.name === opts.group);
  if (groups.length === 0) {
    throw new PremiscaleError(`--group ${opts.group}: no group of that name in ${config.file}`, "usage", `groups are: ${config.groups.map((g) => g.name).join(", ")}`);
  }
  const state = await new GitStateStore(config.state.path).read();
  const toMs = opts.now.getTime();
  const fromMs = toMs - opts.windowSeconds * 1000;
  const steps = trendSteps(opts.windowSeconds, sampleIntervalSeconds(config));
  const members = (name: string) => membersOf(state?.groups.find((g) => g.name === name)).map((i) => i.name);
  const asError = (e: unknown) => {
    if (!(e instanceof PremiscaleError)) throw e;
    return { message: e.message, hint: e.hint ?? null };
  };
  let source: MetricsSource | null = null;
  let openError: GroupReport["error"] = null;
  const needed = groups.some((g) => members(g.name).length > 0);
  if (needed) {
    try {
      source = openSource(config);
    } catch (e) {
      openError = asError(e);
    }
  }
  try {
    const reports = await Promise.all(
      groups.map(async (g): Promise<GroupReport> => {
        const names = members(g.name);
        if (names.length === 0) return { name: g.name, members: [], metrics: [], error: null };
        if (!source) return { name: g.name, members: names, metrics: null, error: openError };
        try {
          const data = await source.groupMetrics({ group: g.name, members: names, windowSeconds: opts.windowSeconds, now: opts.now, metrics: METRIC_NAMES });
          return { name: g.name, members: names, metrics: summarizeGroup(data, names, { fromMs, toMs, steps }), error: null };
        } catch (e) {
          return { name: g.name, members: names, metrics: null, error: asError(e) };
        }
      }),
    );
    return {
      format_version: 1,
      now: opts.now.toISOString(),
      window_seconds: opts.windowSeconds,
      trend_step_seconds: opts.windowSeconds / steps,
      source: { type: config.metrics.store.type, location: sourceLocation(config.metrics.store) },
      groups: reports,
    };
  } finally {
    await source?.close();
  }
}

/** `premiscale metrics`; resolves to the exit code (1 when the source failed for some group). */
export async function runMetrics(io: Output, file: string | undefined, opts: MetricsCommandOptions, now: Date = new Date()): Promise<number> {
  const windowMs = parseDuration(opts.window);
  if (windowMs < 1000) throw new PremiscaleError(`--window ${opts.window} is shorter than a second`, "usage", "write it like 5m or 1h");
  const config = await loadConfig(configPath(file), process.env, { checkEnv: false });
  const report = await collectMetricsReport(config, { group: opts.group, windowSeconds: Math.round(windowMs / 1000), now });
  if (opts.json) io.out(JSON.stringify(report, null, 2));
  else io.out(renderMetricsText(report));
  // One message per distinct failure (every group of one source usually fails the same way).
  const failures = new Map<string, { hint: string | null; groups: string[] }>();
  for (const g of report.groups) {
    if (!g.error) continue;
    const f = failures.get(g.error.message) ?? { hint: g.error.hint, groups: [] };
    f.groups.push(g.name);
    failures.set(g.error.message, f);
  }
  for (const [message, f] of failures) {
    io.err(`Error: ${message} (group${f.groups.length > 1 ? "s" : ""} ${f.groups.join(", ")}: values shown as missing)`);
    if (f.hint) io.err(`  ${f.hint}`);
  }
  return failures.size > 0 ? 1 : 0;
}

const HELP = `
Values: cpu and memory in percent (memory only from guests that report it through the virtio balloon), disk and
network in bytes per second. A member's value is its latest sample in the window; "average" is the mean of those.
The sparkline is the group average across the window (▁ its lowest, █ its highest). ${MISSING} means no sample, never 0.
With the embedded store (metrics.store.type sqlite), \`premiscale serve\` collects the samples.
Exit codes: 0 shown (even with missing data), 1 the metrics source failed or the config is invalid.`;

/** Adds `premiscale metrics` to the command line. */
export function registerMetricsCommand(program: Command, io: Output, setExit: (code: number) => void, cfg: () => string | undefined): void {
  program
    .command("metrics")
    .description("Show each group's current metrics per member, the group average and a sparkline of the recent window, from the configured metrics store.")
    .option("--group <name>", "only this group")
    .addOption(new Option("--window <duration>", "how far back to look").default("5m"))
    .option("--json", "print the report as JSON (missing values are null)")
    .addHelpText("after", HELP)
    .action(async (opts: MetricsCommandOptions) => setExit(await runMetrics(io, cfg(), opts)));
}
