/** `premiscale simulate`: replay a metrics trace through a group's policies (see README.md). */
export { TraceError, SimulationError, type TraceIssue } from "./errors.js";
export { parseTrace, detectFormat, type Trace, type TraceRow, type TraceFormat, type TraceShape, type ParseTraceOptions } from "./trace.js";
export {
  simulate,
  compare,
  traceInfo,
  DEFAULT_LOAD,
  SIMULATE_DEFAULTS,
  type SimulateInput,
  type SimulateOptions,
  type SimulatedGroup,
  type SimulationResult,
  type SimulationEvent,
  type SimulationSummary,
  type TimelinePoint,
  type Comparison,
  type LoadModel,
  type LoadKind,
  type TraceInfo,
} from "./simulate.js";
export { renderText } from "./render-text.js";
export { renderSvg } from "./render-svg.js";
export { renderMarkdown } from "./render-markdown.js";
export { renderJson, SIMULATION_FORMAT_VERSION } from "./render-json.js";
export type { Rendered } from "./series.js";

import { renderJson } from "./render-json.js";
import { renderMarkdown } from "./render-markdown.js";
import { renderSvg } from "./render-svg.js";
import { renderText } from "./render-text.js";
import type { Rendered } from "./series.js";

/** Output formats of `premiscale simulate --format`. */
export const SIMULATION_OUTPUTS = ["text", "markdown", "svg", "json"] as const;
/** One of `SIMULATION_OUTPUTS`. */
export type SimulationOutput = (typeof SIMULATION_OUTPUTS)[number];

/** Renders in the chosen output format. */
export function renderSimulation(x: Rendered, output: SimulationOutput): string {
  if (output === "markdown") return renderMarkdown(x);
  if (output === "svg") return renderSvg(x);
  if (output === "json") return renderJson(x);
  return renderText(x);
}
