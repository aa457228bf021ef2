/**
 * Trace files: a recorded metrics trace of one group, as CSV with a header or as JSON lines. Parsing is strict:
 * every problem becomes a `TraceIssue` naming the line, the row and the column, and nothing is guessed.
 */
import { closest } from "../../config/closest.js";
import { METRIC_NAMES, type MetricName } from "../../config/scaling.js";
import { TraceError, type TraceIssue } from "./errors.js";

/** `csv` (a header, then one row per line) or `jsonl` (one JSON object per line). */
export type TraceFormat = "csv" | "jsonl";

/**
 * `group`: each row is the group's average per member at one time, recorded while the group had `size` members.
 * `member`: each row is one member's sample (a `member` column); rows of one time add up to the group.
 */
export type TraceShape = "group" | "member";

/** One row of a trace; metrics without a value are missing (no data), not zero. */
export interface TraceRow {
  /** Milliseconds since the epoch. */
  at: number;
  /** Line of the file the row starts on, for messages. */
  line: number;
  /** Group shape: members the group had when this row was recorded (missing: `SimulateInput.recordedSize`). */
  size?: number;
  /** Member shape: which member sent the sample. */
  member?: string;
  values: Partial<Record<MetricName, number>>;
}

/** A parsed trace: rows in time order and what they hold. */
export interface Trace {
  /** The file name messages use (no I/O happens here). */
  file: string;
  format: TraceFormat;
  shape: TraceShape;
  /** Metrics with a column (CSV) or a field in some row (JSON lines), in `METRIC_NAMES` order. */
  metrics: MetricName[];
  /** True when group rows carry their own `size`. */
  hasSize: boolean;
  rows: TraceRow[];
  /** First and last time, milliseconds since the epoch. */
  start: number;
  end: number;
  /** The median step between successive times, in seconds. */
  intervalSeconds: number;
}

/** Options of `parseTrace`. */
export interface ParseTraceOptions {
  /** Named in every message. @default "trace" */
  file?: string;
  /** Missing: from the file name (`.csv`; `.jsonl`, `.ndjson`, `.json`), else from the first record (`{` → JSON lines). */
  format?: TraceFormat;
}

/** Columns (fields) a trace may have besides the metrics. */
export const TRACE_FIELDS = ["time", "size", "member"] as const;
/** Accepted as another name for `time`. */
const TIME_ALIASES = ["time", "timestamp"];
const PERCENT: readonly MetricName[] = ["cpu", "memory"];
const MAX_ISSUES = 50;

/** Picks the format from `options.format`, the file's extension, or the first record. */
export function detectFormat(text: string, options: ParseTraceOptions = {}): TraceFormat {
  if (options.format) return options.format;
  const file = (options.file ?? "").toLowerCase();
  if (file.endsWith(".csv")) return "csv";
  if (/\.(jsonl|ndjson|json)$/.test(file)) return "jsonl";
  const first = text.replace(/^\uFEFF/, "").split(/\r?\n/).find((l) => l.trim() !== "" && !l.trimStart().startsWith("#"));
  return first?.trimStart().startsWith("{") ? "jsonl" : "csv";
}

/** A record before its cells are checked: its line, its data row number, and its cells by column name. */
interface RawRecord {
  line: number;
  row: number;
  /** CSV cells are strings (empty: missing); JSON values are whatever the line held. */
  cells: Map<string, unknown>;
}

/**
 * Parses a trace. Throws `TraceError` listing every problem (up to 50): unknown or duplicate columns, a missing
 * `time`, rows with the wrong number of fields, times without a zone or out of order, values that are not numbers,
 * negative, or above 100 for percentages, an empty trace.
 */
export function parseTrace(text: string, options: ParseTraceOptions = {}): Trace {
  const file = options.file ?? "trace";
  const format = detectFormat(text, options);
  const issues: TraceIssue[] = [];
  const add = (line: number, row: number, field: string, message: string): void => {
    if (issues.length < MAX_ISSUES) issues.push({ file, line, row, field, message });
  };
  const { records, columns } = format === "csv" ? readCsv(text, add) : readJsonLines(text, add);
  if (issues.length > 0) throw new TraceError(issues);

  const shape: TraceShape = columns.includes("member") ? "member" : "group";
  const metrics = METRIC_NAMES.filter((m) => columns.includes(m));
  const timeColumn = columns.find((c) => TIME_ALIASES.includes(c)) ?? "time";
  const rows: TraceRow[] = [];
  for (const r of records) {
    const row = readRow(r, { format, shape, metrics, timeColumn }, add);
    if (row) rows.push(row);
  }
  if (issues.length === 0) checkOrder(rows, shape, records, add);
  if (issues.length === 0 && rows.length === 0) add(0, 0, "", "has no rows: a trace needs at least two times");
  if (issues.length === 0 && new Set(rows.map((r) => r.at)).size === 1) add(rows[0]?.line ?? 0, 1, timeColumn, "has only one time: a trace needs at least two");
  if (issues.length > 0) throw new TraceError(issues);

  // Member rows may interleave by a second or two; the simulator reads them in time order (a stable sort).
  if (shape === "member") rows.sort((a, b) => a.at - b.at);
  const times = [...new Set(rows.map((r) => r.at))];
  // The interval is per member in a member trace (members' rows interleave), else row to row.
  const previous = new Map<string, number>();
  const steps: number[] = [];
  for (const r of rows) {
    const key = r.member ?? "";
    const p = previous.get(key);
    if (p !== undefined && r.at > p) steps.push(r.at - p);
    previous.set(key, r.at);
  }
  steps.sort((a, b) => a - b);
  return {
    file,
    format,
    shape,
    metrics,
    hasSize: columns.includes("size"),
    rows,
    start: times[0] ?? 0,
    end: times[times.length - 1] ?? 0,
    intervalSeconds: (steps[Math.floor(steps.length / 2)] ?? 0) / 1000,
  };
}

type Add = (line: number, row: number, field: string, message: string) => void;

/** Checks a header (CSV) or the union of fields (JSON lines): known names, a time, at least one metric. */
function checkColumns(columns: string[], line: number, add: Add, what: "column" | "field"): void {
  const known = [...TIME_ALIASES, "size", "member", ...METRIC_NAMES];
  const seen = new Set<string>();
  columns.forEach((c, i) => {
    if (c === "") add(line, 0, "", `${what} ${i + 1} has no name`);
    else if (!known.includes(c)) add(line, 0, c, `unknown ${what}${suggest(c, known)}; known: time (or timestamp), size, member, ${METRIC_NAMES.join(", ")}`);
    else if (seen.has(c)) add(line, 0, c, `${what} given twice`);
    seen.add(c);
  });
  const times = columns.filter((c) => TIME_ALIASES.includes(c));
  if (times.length === 0) add(line, 0, "time", `no time ${what}: add one (ISO 8601 with a zone, or seconds since the epoch)`);
  if (times.length > 1) add(line, 0, "timestamp", `give time or timestamp, not both`);
  if (!columns.some((c) => (METRIC_NAMES as readonly string[]).includes(c))) add(line, 0, "", `no metric ${what}: give at least one of ${METRIC_NAMES.join(", ")}`);
  if (columns.includes("member") && columns.includes("size")) add(line, 0, "size", `a trace with a member ${what} counts the size from the members: leave size out`);
}

/** CSV with a header line; `#` lines and blank lines are skipped; fields may be quoted ("a,b", "say ""hi"""). */
function readCsv(text: string, add: Add): { records: RawRecord[]; columns: string[] } {
  const lines = splitCsv(text.replace(/^\uFEFF/, ""), add);
  const header = lines[0];
  if (!header) {
    add(0, 0, "", "is empty: a CSV trace needs a header line (e.g. time,size,cpu) and rows");
    return { records: [], columns: [] };
  }
  const columns = header.fields.map((f) => f.trim().toLowerCase());
  checkColumns(columns, header.line, add, "column");
  const records = lines.slice(1).map((l, i) => {
    if (l.fields.length !== columns.length) {
      add(l.line, i + 1, "", `has ${l.fields.length} field${l.fields.length === 1 ? "" : "s"}, the header has ${columns.length}`);
    }
    return { line: l.line, row: i + 1, cells: new Map(columns.map((c, k) => [c, (l.fields[k] ?? "").trim()])) };
  });
  return { records, columns };
}

/** Splits CSV text into records of fields, with the line each starts on. */
function splitCsv(text: string, add: Add): { line: number; fields: string[] }[] {
  const out: { line: number; fields: string[] }[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const start = line;
    const end = text.indexOf("\n", i);
    const rest = text.slice(i, end === -1 ? text.length : end).replace(/\r$/, "");
    if (rest.trim() === "" || rest.trimStart().startsWith("#")) {
      i = end === -1 ? text.length : end + 1;
      line++;
      continue;
    }
    const fields: string[] = [];
    let field = "";
    let quoted = false;
    let wasQuoted = false;
    for (; i < text.length; i++) {
      const c = text[i] ?? "";
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') {
          field += '"';
          i++;
        } else if (c === '"') quoted = false;
        else {
          if (c === "\n") line++;
          field += c;
        }
      } else if (c === '"' && field.trim() === "") {
        quoted = true;
        wasQuoted = true;
        field = "";
      } else if (c === ",") {
        fields.push(field);
        field = "";
        wasQuoted = false;
      } else if (c === "\n") break;
      else if (c !== "\r" && !(wasQuoted && c.trim() === "")) field += c;
    }
    if (quoted) add(start, 0, "", "a quoted field is never closed");
    fields.push(field);
    out.push({ line: start, fields });
    i++;
    line++;
  }
  return out;
}

/** JSON lines: one object per line; `#` lines and blank lines are skipped. Columns are the union of the keys. */
function readJsonLines(text: string, add: Add): { records: RawRecord[]; columns: string[] } {
  const records: RawRecord[] = [];
  const columns: string[] = [];
  const firstLine = new Map<string, number>();
  text.replace(/^\uFEFF/, "").split("\n").forEach((raw, i) => {
    const l = raw.trim();
    if (l === "" || l.startsWith("#")) return;
    const line = i + 1;
    const row = records.length + 1;
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch (e) {
      add(line, row, "", `not valid JSON: ${(e as Error).message}`);
      records.push({ line, row, cells: new Map() });
      return;
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      add(line, row, "", `must be a JSON object such as {"time": "2025-06-02T12:00:00Z", "size": 3, "cpu": 55}, got ${JSON.stringify(v)}`);
      records.push({ line, row, cells: new Map() });
      return;
    }
    const cells = new Map(Object.entries(v));
    for (const k of cells.keys()) {
      if (firstLine.has(k)) continue;
      firstLine.set(k, line);
      columns.push(k);
    }
    records.push({ line, row, cells });
  });
  if (records.length === 0) {
    add(0, 0, "", 'is empty: a JSON lines trace needs one object per line, e.g. {"time": "2025-06-02T12:00:00Z", "size": 3, "cpu": 55}');
    return { records, columns };
  }
  // Report unknown keys where they first appear.
  const bad: TraceIssue[] = [];
  checkColumns(columns, 0, (_l, _r, field, message) => bad.push({ file: "", line: firstLine.get(field) ?? 0, row: 0, field, message }), "field");
  for (const b of bad) {
    const row = records.find((r) => r.line === b.line)?.row ?? 0;
    add(b.line, row, b.field, b.message);
  }
  if (columns.includes("member")) {
    for (const r of records) if (!r.cells.has("member")) add(r.line, r.row, "member", "missing: in a trace with members every row names its member");
  }
  return { records, columns };
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/i;
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/i;

/** A time in milliseconds, or why it is not one. */
export function parseTime(v: unknown): number | string {
  if (typeof v === "number" || (typeof v === "string" && NUMBER.test(v))) {
    const s = Number(v);
    if (!Number.isFinite(s) || s < 0) return `not a time: ${JSON.stringify(v)}`;
    if (s > 1e11) return `${JSON.stringify(v)} looks like milliseconds since the epoch: give seconds`;
    return Math.round(s * 1000);
  }
  if (typeof v !== "string") return `must be an ISO 8601 time or seconds since the epoch, got ${JSON.stringify(v)}`;
  const m = ISO.exec(v);
  if (!m) return `not a time: ${JSON.stringify(v)} (use ISO 8601 such as 2025-06-02T12:00:00Z, or seconds since the epoch)`;
  if (!m[7]) return `${JSON.stringify(v)} has no time zone: add Z (UTC) or an offset such as +02:00`;
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6] ?? "0"].map(Number) as [number, number, number, number, number, number];
  const day = new Date(Date.UTC(y, mo - 1, d));
  if (day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) return `not a real time: ${JSON.stringify(v)}`;
  const zone = m[7].toUpperCase() === "Z" ? "Z" : m[7].replace(/^([+-]\d{2})(\d{2})$/, "$1:$2");
  return Date.parse(`${v.slice(0, m[7] ? v.length - m[7].length : v.length).replace(" ", "T")}${zone}`);
}

/** A metric or size cell: a number, `undefined` when empty (CSV) or null (JSON), or why it is neither. */
function parseNumber(v: unknown, format: TraceFormat): number | undefined | string {
  if (v === undefined || v === null || v === "") return undefined;
  if (format === "jsonl" && typeof v !== "number") return `must be a number or null, got ${JSON.stringify(v)}`;
  if (typeof v === "string" && !NUMBER.test(v)) return `not a number: ${JSON.stringify(v)} (leave the cell empty when there is no value)`;
  const n = Number(v);
  return Number.isFinite(n) ? n : `not a number: ${JSON.stringify(v)}`;
}

function readRow(r: RawRecord, ctx: { format: TraceFormat; shape: TraceShape; metrics: MetricName[]; timeColumn: string }, add: Add): TraceRow | undefined {
  if (r.cells.size === 0) return undefined;
  let ok = true;
  const fail = (field: string, message: string): void => {
    add(r.line, r.row, field, message);
    ok = false;
  };
  const rawTime = r.cells.get(ctx.timeColumn);
  const at = rawTime === undefined || rawTime === "" ? "missing: every row needs a time" : parseTime(rawTime);
  if (typeof at === "string") fail(ctx.timeColumn, at);
  const row: TraceRow = { at: typeof at === "number" ? at : 0, line: r.line, values: {} };

  if (ctx.shape === "member") {
    const m = r.cells.get("member");
    if (typeof m !== "string" || m === "") fail("member", `must name the member, got ${JSON.stringify(m ?? "")}`);
    else row.member = m;
  } else if (r.cells.has("size")) {
    const s = parseNumber(r.cells.get("size"), ctx.format);
    if (typeof s === "string") fail("size", s);
    else if (s === undefined) fail("size", "missing: give the members the group had at this time");
    else if (!Number.isInteger(s) || s < 1) fail("size", `must be a whole number of members, at least 1, got ${s}`);
    else row.size = s;
  }
  for (const metric of ctx.metrics) {
    const v = parseNumber(r.cells.get(metric), ctx.format);
    if (typeof v === "string") fail(metric, v);
    else if (v === undefined) continue;
    else if (v < 0) fail(metric, `must not be negative, got ${v}`);
    else if (PERCENT.includes(metric) && v > 100) fail(metric, `is a percentage per member: at most 100, got ${v}`);
    else row.values[metric] = v;
  }
  return ok ? row : undefined;
}

/** Times must go forward: row after row in a group trace, member by member in a member trace (rows may interleave). */
function checkOrder(rows: TraceRow[], shape: TraceShape, records: RawRecord[], add: Add): void {
  const rowOf = (line: number): number => records.find((r) => r.line === line)?.row ?? 0;
  const iso = (t: number): string => new Date(t).toISOString();
  const last = new Map<string, TraceRow>();
  for (const r of rows) {
    const key = shape === "member" ? (r.member ?? "") : "";
    const before = last.get(key);
    const whose = shape === "member" ? ` row of member ${key}` : " row";
    if (before && r.at < before.at) add(r.line, rowOf(r.line), "time", `${iso(r.at)} is before the previous${whose}'s ${iso(before.at)} (line ${before.line}): sort the trace by time`);
    else if (before && r.at === before.at) add(r.line, rowOf(r.line), "time", `${iso(r.at)} appears twice${shape === "member" ? ` for member ${key}` : ""} (also line ${before.line})`);
    last.set(key, r);
  }
}

/** ` (did you mean cpu?)` for a near miss. */
function suggest(name: string, known: string[]): string {
  const best = closest(name, known);
  return best !== undefined ? ` (did you mean ${best}?)` : "";
}
