/**
 * The one object the CLI hands apply events to. It shows them in the chosen mode and prints the closing summary.
 * Progress goes to `stream` (stderr for people, stdout for `--json`); the summary goes to `out` (stdout).
 */
import { render, type Instance } from "ink";
import type { ApplyEvent, ApplyResult } from "../../applier/apply-plan.js";
import type { Plan } from "../../planner/plan.js";
import { styles } from "../output.js";
import { applyEventToModel, finishApplyModel, hostProgress, initialApplyModel, rowElapsedMs, type ApplyModel } from "./apply-model.js";
import { ApplyView } from "./apply-view.js";
import { applyFailureDetails, applySucceeded, applySummaryLine, commitLines, doing, formatElapsed, plainEventLine, stepLabel } from "./format.js";
import { applyEventJson, applySummaryJson, noteJson } from "./json-events.js";
import type { ReporterMode } from "./mode.js";
import type { TextSink } from "./sink.js";

/** Options of `createApplyReporter`. */
export interface ApplyReporterOptions {
  mode: ReporterMode;
  /** Progress: the live view (needs a terminal stream, e.g. process.stderr), plain lines, or the JSON stream. */
  stream: TextSink & { columns?: number; rows?: number };
  /** The closing summary for people (not used in JSON mode, whose summary is a `change_summary` object). @default stream */
  out?: TextSink;
  /** The plan being applied: its changes become the rows. */
  plan: Pick<Plan, "changes">;
  /** Monotonic clock in ms for elapsed times. @default performance.now */
  clock?: () => number;
  /** Wall clock for JSON timestamps. @default () => new Date() */
  now?: () => Date;
  /** Colours in the live view and the summary. @default true in tui mode, false otherwise */
  color?: boolean;
  /** The state folder, named in the commit line. */
  statePath?: string;
  /** Change rows in the live view. @default fits the terminal (its rows minus the host and total lines), at least 5 */
  maxRows?: number;
  /** Live view: how often elapsed times tick. @default 1000 */
  tickMs?: number;
  /** Plain mode: a "still creating" line per running change this often; 0 for none. @default 10000 */
  stillEveryMs?: number;
}

/** Receives apply events; `finish` prints the summary once the apply returned. */
export interface ApplyReporter {
  onEvent(e: ApplyEvent): void;
  /** A line for people printed with the progress (above the live view), e.g. "Interrupt received: …". */
  note(text: string, level?: "info" | "warn" | "error"): void;
  /** Stops the live view and prints the commit line and the summary. Call once; later events are ignored. */
  finish(result: ApplyResult): Promise<void>;
  /** Stops the live view and timers without a summary (when apply threw). Safe to call after `finish`. */
  stop(): void;
}

/** Builds the reporter for a mode (see `chooseMode`). */
export function createApplyReporter(opts: ApplyReporterOptions): ApplyReporter {
  if (opts.mode === "json") return jsonReporter(opts);
  if (opts.mode === "plain") return plainReporter(opts);
  return tuiReporter(opts);
}

function line(sink: TextSink, text: string): void {
  sink.write(text.endsWith("\n") ? text : `${text}\n`);
}

function writeSummary(opts: ApplyReporterOptions, result: ApplyResult, color: boolean): void {
  const s = styles(color);
  const out = opts.out ?? opts.stream;
  for (const l of commitLines(result, opts.statePath)) line(opts.stream, l);
  const ok = applySucceeded(result);
  line(out, `\n${(ok ? s.green : s.red)(s.bold(applySummaryLine(result)))}`);
  for (const l of applyFailureDetails(result)) line(out, l);
}

function jsonReporter(opts: ApplyReporterOptions): ApplyReporter {
  const now = opts.now ?? (() => new Date());
  let finished = false;
  return {
    onEvent(e) {
      if (!finished) line(opts.stream, JSON.stringify(applyEventJson(e, now())));
    },
    note(text, level = "info") {
      if (!finished) line(opts.stream, JSON.stringify(noteJson(text, level, now())));
    },
    async finish(result) {
      if (finished) return;
      finished = true;
      line(opts.stream, JSON.stringify(applySummaryJson(result, now())));
    },
    stop() {
      finished = true;
    },
  };
}

function plainReporter(opts: ApplyReporterOptions): ApplyReporter {
  const clock = opts.clock ?? (() => performance.now());
  const color = opts.color ?? false;
  let model = initialApplyModel(opts.plan);
  let finished = false;
  const every = opts.stillEveryMs ?? 10_000;
  const timer =
    every > 0
      ? setInterval(() => {
          const t = clock();
          for (const r of model.rows) {
            const elapsed = rowElapsedMs(r, t);
            if (r.status !== "running" || elapsed === null || elapsed < every) continue;
            line(opts.stream, `${r.address}: still ${doing(r.action)}${r.step ? `, ${stepLabel(r.step)}` : ""} (${formatElapsed(elapsed)})`);
          }
        }, every)
      : null;
  timer?.unref();
  return {
    onEvent(e) {
      if (finished) return;
      model = applyEventToModel(model, e, clock());
      const row = model.rows.find((r) => r.address === e.address);
      const host = row ? hostProgress(model).find((h) => h.host === row.host) : undefined;
      const text = plainEventLine(e, host);
      if (text !== null) line(opts.stream, text);
    },
    note(text) {
      if (!finished) line(opts.stream, text);
    },
    async finish(result) {
      if (finished) return;
      finished = true;
      if (timer) clearInterval(timer);
      writeSummary(opts, result, color);
    },
    stop() {
      finished = true;
      if (timer) clearInterval(timer);
    },
  };
}

function tuiReporter(opts: ApplyReporterOptions): ApplyReporter {
  const clock = opts.clock ?? (() => performance.now());
  const color = opts.color ?? true;
  const started = clock();
  let model: ApplyModel = initialApplyModel(opts.plan);
  const hosts = new Set(model.rows.map((r) => r.host)).size;
  const maxRows = opts.maxRows ?? Math.max(5, (opts.stream.rows ?? 24) - hosts - 6);
  const notes: string[] = [];
  let finished = false;
  const view = () => (
    <ApplyView model={model} nowMs={clock()} startedMs={started} maxRows={maxRows} color={color} spinner={!finished} notes={[...notes]} />
  );
  if (typeof (opts.stream as Partial<NodeJS.WriteStream>).on !== "function") throw new Error("the tui mode needs a terminal stream such as process.stderr");
  const stream = opts.stream as NodeJS.WriteStream;
  const ink: Instance = render(view(), { stdout: stream, stderr: stream, patchConsole: false, exitOnCtrlC: false });
  const timer = setInterval(() => ink.rerender(view()), opts.tickMs ?? 1000);
  timer.unref();
  /** The last frame, without spinners, stays on screen. */
  const stopView = async () => {
    if (finished) return;
    finished = true;
    clearInterval(timer);
    ink.rerender(view());
    ink.unmount();
    await ink.waitUntilExit();
  };
  return {
    onEvent(e) {
      if (finished) return;
      model = applyEventToModel(model, e, clock());
      // A hook's words have no row column of their own: shown under the table with the notes.
      if (e.type === "hook_message") notes.push(plainEventLine(e)!);
      ink.rerender(view());
    },
    note(text) {
      if (finished) return;
      notes.push(text);
      ink.rerender(view());
    },
    async finish(result) {
      if (finished) return;
      model = finishApplyModel(model, result, clock());
      await stopView();
      writeSummary(opts, result, color);
    },
    stop() {
      void stopView();
    },
  };
}
