import { PremiscaleError } from "../../config/errors.js";

/** One problem in a trace file: where it is (line and, for data, the row) and which column or field. */
export interface TraceIssue {
  file: string;
  /** 1-based line of the file where the record starts; 0 for the whole file. */
  line: number;
  /** 1-based data row (the header and comment lines do not count); 0 for the header or the whole file. */
  row: number;
  /** The column (CSV) or field (JSON lines), e.g. `cpu`; empty when the problem is the record itself. */
  field: string;
  message: string;
}

/** Issues shown in the message; the rest are counted. */
const SHOWN = 10;

/** Where an issue is, as `trace.csv:5 (row 4): cpu:`. */
export function issueLocation(i: TraceIssue): string {
  const at = i.line > 0 ? `${i.file}:${i.line}${i.row > 0 ? ` (row ${i.row})` : ""}` : i.file;
  return `${at}: ${i.field ? `${i.field}: ` : ""}`;
}

/** A trace file that cannot be replayed: malformed, out of order, or without what the policies need. */
export class TraceError extends PremiscaleError {
  override name = "TraceError";
  constructor(
    readonly issues: TraceIssue[],
    hint = "fix the rows named above (see policies/simulate/README.md for the trace format) and run simulate again",
  ) {
    const shown = issues.slice(0, SHOWN).map((i) => `${issueLocation(i)}${i.message}`);
    if (issues.length > SHOWN) shown.push(`… and ${issues.length - SHOWN} more`);
    super(shown.join("\n"), "trace_invalid", hint);
  }
}

/** Simulation options that cannot work: a start size outside min/max, a non-positive interval, an invalid scaling block. */
export class SimulationError extends PremiscaleError {
  override name = "SimulationError";
  constructor(message: string, hint?: string) {
    super(message, "simulation_invalid", hint);
  }
}
