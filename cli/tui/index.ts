/** The terminal views of plan and apply: what cli/commands.ts imports. See README.md. */
export { createApplyReporter, type ApplyReporter, type ApplyReporterOptions } from "./apply-reporter.js";
export { ApplyView, type ApplyViewProps } from "./apply-view.js";
export { applySucceeded, applySummaryLine, formatElapsed, plainEventLine, stepLabel } from "./format.js";
export { applyEventJson, applySummaryJson, planJsonEvents, type JsonEvent } from "./json-events.js";
export { chooseMode, isCI, type ReporterMode } from "./mode.js";
export { PlanView, writePlan } from "./plan-view.js";
export { outputSink, type TextSink } from "./sink.js";
