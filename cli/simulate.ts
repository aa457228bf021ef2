/**
 * `premiscale simulate`: the I/O shell around the pure engine in policies/simulate/. Reads the config (no secrets
 * needed) and a trace file, picks the group, runs `simulate` (or `compare` against another config's same group),
 * and prints the rendering or writes it to `--out` only once everything succeeded.
 */
import { readFile } from "node:fs/promises";
import { basename, extname, relative, resolve } from "node:path";
import { Command, Option } from "commander";
import { PremiscaleError } from "../config/errors.js";
import { loadConfig } from "../pipeline/config.js";
import type { Config, GroupConfig } from "../config/types.js";
import {
  compare,
  parseTrace,
  renderSimulation,
  simulate,
  SIMULATION_OUTPUTS,
  type Comparison,
  type SimulationOutput,
  type SimulationResult,
  type TraceFormat,
} from "../policies/simulate/index.js";
import type { ScalingSpec } from "../config/scaling.js";
import { writeFileAtomic } from "../state/atomic-file.js";
import { configPath } from "./context.js";
import { parseDuration, parseWholeNumber } from "./parse.js";
import type { Output } from "./output.js";

const OK = 0;

/** The options of `premiscale simulate`, as parsed by commander. */
export interface SimulateCommandOptions {
  /** The trace file. */
  trace: string;
  traceFormat?: TraceFormat;
  /** Missing: the only group with `scaling`. */
  group?: string;
  /** Missing: from `out`'s extension, else text. */
  format?: SimulationOutput;
  out?: string;
  /** A second config (the baseline) whose same-named group is simulated first, for a comparison. */
  compareConfig?: string;
  /** Evaluation interval, a duration such as `15s`. */
  interval: string;
  /** Time until a new VM takes load, a duration such as `60s`. */
  boot: string;
  /** Group trace without a `size` column: the group's size when it was recorded. */
  recordedSize?: number;
  /** Members at the start of the trace. Missing: the group's `desired` (its `min` when it has scaling). */
  startSize?: number;
}

/** A group that has scaling policies, for the engine. */
type ScalingGroup = GroupConfig & { scaling: ScalingSpec };

/** `.svg` → svg, `.md`/`.markdown` → markdown, `.json` → json, anything else (or no file) → text. */
export function formatForPath(out: string | undefined): SimulationOutput {
  const ext = extname(out ?? "").toLowerCase();
  if (ext === ".svg") return "svg";
  if (ext === ".md" || ext === ".markdown") return "markdown";
  if (ext === ".json") return "json";
  return "text";
}

/**
 * The group to simulate: `name`, else the only group with `scaling`. Throws a `PremiscaleError` naming the groups
 * when the choice is missing, ambiguous, or the group has no policies.
 */
export function pickGroup(config: Config, name: string | undefined): ScalingGroup {
  const scaled = config.groups.filter((g): g is ScalingGroup => g.scaling !== undefined);
  if (name === undefined) {
    if (scaled.length === 1) return scaled[0]!;
    if (scaled.length === 0) {
      throw new PremiscaleError(
        `no group in ${config.file} has scaling policies: there is nothing to simulate`,
        "simulate_no_scaling",
        `add scaling.policies to a group (groups: ${config.groups.map((g) => g.name).join(", ")})`,
      );
    }
    throw new PremiscaleError(
      `${scaled.length} groups in ${config.file} have scaling policies: ${scaled.map((g) => g.name).join(", ")}`,
      "usage",
      "choose one with --group NAME",
    );
  }
  const group = config.groups.find((g) => g.name === name);
  if (!group) {
    throw new PremiscaleError(`no group named ${name} in ${config.file}`, "usage", `groups are: ${config.groups.map((g) => g.name).join(", ")}`);
  }
  if (!group.scaling) {
    throw new PremiscaleError(
      `group ${name} in ${config.file} has no scaling policies: there is nothing to simulate`,
      "simulate_no_scaling",
      `add scaling.policies to group ${name} (e.g. - {type: target-tracking, metric: cpu, target: 60})`,
    );
  }
  return group as ScalingGroup;
}

/**
 * Names of the two runs of a comparison: the files' names, else the paths as given, so that both differ.
 * Throws when both name the same file.
 */
export function runLabels(base: string, current: string, cwd: string): [string, string] {
  if (basename(base) !== basename(current)) return [basename(base), basename(current)];
  const [a, b] = [relative(cwd, resolve(cwd, base)) || base, relative(cwd, resolve(cwd, current)) || current];
  if (a !== b) return [a, b];
  throw new PremiscaleError(`--compare-config ${base} is the config itself`, "usage", "compare with another file, e.g. the main branch's config: git show main:premiscale.yaml > base.yaml");
}

/** `premiscale simulate`. `cwd` resolves relative paths in labels. */
export async function runSimulate(
  io: Output,
  file: string | undefined,
  opts: SimulateCommandOptions,
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): Promise<number> {
  const format = opts.format ?? formatForPath(opts.out);
  const intervalSeconds = parseDuration(opts.interval) / 1000;
  const bootSeconds = parseDuration(opts.boot) / 1000;
  if (!(intervalSeconds > 0)) throw new PremiscaleError(`--interval ${opts.interval}: must be more than 0`, "usage", "write it like 15s or 1m");
  const path = configPath(file, env);
  const config = await loadConfig(path, env, { checkEnv: false });
  const group = pickGroup(config, opts.group);

  let base: ScalingGroup | null = null;
  let labels: [string, string] | null = null;
  if (opts.compareConfig !== undefined) {
    labels = runLabels(opts.compareConfig, path, cwd);
    const other = await loadConfig(opts.compareConfig, env, { checkEnv: false });
    if (!other.groups.some((g) => g.name === group.name)) {
      throw new PremiscaleError(
        `${opts.compareConfig} has no group named ${group.name} to compare with`,
        "usage",
        `its groups are: ${other.groups.map((g) => g.name).join(", ")}; pick a group both files have with --group NAME`,
      );
    }
    base = pickGroup(other, group.name);
  }

  for (const g of base ? [base, group] : [group]) {
    if (opts.startSize !== undefined && (opts.startSize < g.min || opts.startSize > g.max)) {
      throw new PremiscaleError(`--start-size ${opts.startSize} is outside group ${g.name}'s min ${g.min} / max ${g.max}`, "usage", `give a size from ${g.min} to ${g.max}`);
    }
  }
  if ((opts.startSize ?? group.desired) === 0) {
    // Nothing reports metrics at 0 members, so metric policies would never scale the group out.
    io.err(`Note: group ${group.name} starts with 0 VMs, which report no metrics, so metric policies cannot scale it out; give --start-size N (e.g. the size the trace was recorded at).`);
  }

  const trace = parseTrace(await readTraceFile(opts.trace), { file: opts.trace, ...(opts.traceFormat ? { format: opts.traceFormat } : {}) });
  // One recorded size for every run, so a comparison of groups with different start sizes sees the same load.
  const recordedSize = opts.recordedSize ?? Math.max(1, opts.startSize ?? group.desired);
  if (trace.shape === "group" && !trace.hasSize && opts.recordedSize === undefined) {
    io.err(`Note: ${opts.trace} has no size column: taking it as recorded with ${recordedSize} member(s) (the start size); say otherwise with --recorded-size N.`);
  }
  const options = { trace, evalIntervalSeconds: intervalSeconds, bootSeconds, recordedSize };
  const run = (g: ScalingGroup) => ({ group: { name: g.name, min: g.min, max: g.max, initial: opts.startSize ?? g.desired }, scaling: g.scaling });
  const result: SimulationResult | Comparison =
    base && labels
      ? compare({ ...options, runs: [{ label: labels[0], ...run(base) }, { label: labels[1], ...run(group) }] })
      : simulate({ ...options, ...run(group) });
  const text = renderSimulation(result, format);

  if (opts.out === undefined) {
    io.out(text);
    return OK;
  }
  try {
    await writeFileAtomic(opts.out, text);
  } catch (e) {
    throw new PremiscaleError(`cannot write ${opts.out}: ${(e as Error).message}`, "simulate_write_failed", "check that the directory exists and is writable");
  }
  for (const r of "runs" in result ? result.runs : [result]) io.out(summaryLine(r));
  io.out(`Wrote the simulation (${format}) to ${opts.out}.`);
  return OK;
}

/** One line a terminal shows when the rendering went to a file. */
function summaryLine(r: SimulationResult): string {
  const s = r.summary;
  return `${r.label}: ${s.startSize} → ${s.endSize} VMs (range ${s.minSize}–${s.peakSize}), ${s.scaleOuts} scale-out(s), ${s.scaleIns} scale-in(s), ${s.vmHours} VM-hours`;
}

async function readTraceFile(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    const code = (e as { code?: string }).code;
    const why = code === "ENOENT" ? "does not exist" : code === "EISDIR" ? "is a directory" : `cannot be read (${(e as Error).message})`;
    throw new PremiscaleError(`trace file ${path} ${why}`, "trace_unreadable", "check the path given to --trace");
  }
}

const HELP = `
Trace (CSV with a header, or JSON lines): time (ISO 8601 with a zone, or epoch seconds), metrics per
member cpu, memory (%), disk_*/net_*_bytes (bytes/s), and size (group rows) or member (a row per VM).

Example (details: policies/simulate/README.md):
  time,size,cpu,memory
  2025-06-02T12:00:00Z,3,41.5,52
  2025-06-02T12:01:00Z,3,,52

  premiscale simulate --trace web-day.csv --start-size 6            # as text, on the terminal
  premiscale simulate --trace web-day.csv --group web --out web.svg  # a chart (PNG: rsvg-convert)
  git show main:premiscale.yaml > base.yaml                          # in review: base vs this config
  premiscale simulate --trace web-day.csv --compare-config base.yaml --out sim.md   # Δ = this − base`;

/** Adds `premiscale simulate` to the program; `cfg` gives the `-c` value when the command runs. */
export function registerSimulateCommand(program: Command, io: Output, setExit: (code: number) => void, cfg: () => string | undefined): void {
  program
    .command("simulate")
    .description(
      "Replay a recorded metrics trace through a group's scaling policies and show what the group would have done: " +
        "the size over time, every scaling event with its reason, and VM-hours, as text, markdown (mermaid chart), SVG or JSON. " +
        "Touches no host and needs no secrets.",
    )
    .requiredOption("--trace <file>", "the trace: CSV or JSON lines (format below)")
    .addOption(new Option("--trace-format <format>", "the trace's format (default: from its extension, else its first line)").choices(["csv", "jsonl"]))
    .option("--group <name>", "the group to simulate (default: the only group with scaling)")
    .addOption(new Option("--format <format>", "output format (default: from --out's extension .svg/.md/.json, else text)").choices([...SIMULATION_OUTPUTS]))
    .option("-o, --out <file>", "write the output to this file instead of stdout (only when the simulation succeeded)")
    .option("--compare-config <file>", "also simulate the same group of this config (the baseline, e.g. the main branch's) and compare")
    .addOption(new Option("--interval <duration>", "how often the policies are evaluated").default("15s"))
    .addOption(new Option("--boot <duration>", "how long a new VM takes before it takes load").default("60s"))
    .addOption(new Option("--recorded-size <n>", "the group's size when the trace was recorded (traces without a size column)").argParser(parseWholeNumber("--recorded-size", 1)))
    .addOption(new Option("--start-size <n>", "members when the trace starts (default: the group's desired, i.e. its min with scaling)").argParser(parseWholeNumber("--start-size", 0)))
    .addHelpText("after", HELP)
    .action(async (opts: SimulateCommandOptions) => setExit(await runSimulate(io, cfg(), opts)));
}
