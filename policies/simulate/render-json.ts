import type { Rendered } from "./series.js";

/** Version of the JSON form; raised when a field changes meaning or goes away. */
export const SIMULATION_FORMAT_VERSION = "1";

/** A simulation (`kind: "simulation"`) or a comparison (`kind: "comparison"`) as versioned JSON, one field per line. */
export function renderJson(x: Rendered): string {
  const kind = "runs" in x ? "comparison" : "simulation";
  return JSON.stringify({ format_version: SIMULATION_FORMAT_VERSION, kind, ...x }, null, 2) + "\n";
}
