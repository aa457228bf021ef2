/** The plan for people (drift, the diff, the summary line) or as JSON lines, in the reporter's modes. */
import { Box, Text, renderToString } from "ink";
import type { ReactNode } from "react";
import type { Plan } from "../../planner/plan.js";
import { renderPlanText } from "../../planner/render-text.js";
import type { TextSink } from "./sink.js";
import { planJsonEvents } from "./json-events.js";
import type { ReporterMode } from "./mode.js";

/**
 * The plan as Ink renders it: the planner's text (drift first, `+`/`-` per VM with its reason, errors, then
 * `Plan: N to add, 0 to change, M to destroy.`), so the terminal and plain text never disagree.
 */
export function PlanView(props: { plan: Plan; color?: boolean }): ReactNode {
  return (
    <Box flexDirection="column">
      <Text>{renderPlanText(props.plan, { color: props.color ?? true }).trimEnd()}</Text>
    </Box>
  );
}

/**
 * Writes a plan to `sink` (stdout: the plan is a result): tui mode renders `PlanView` once (no live area),
 * plain mode the same text, json mode one object per line (`resource_drift`, `diagnostic`, `planned_change`,
 * then `change_summary`).
 */
export function writePlan(opts: { mode: ReporterMode; sink: TextSink & { columns?: number }; plan: Plan; color?: boolean; now?: () => Date }): void {
  if (opts.mode === "json") {
    const now = (opts.now ?? (() => new Date()))();
    for (const e of planJsonEvents(opts.plan, now)) opts.sink.write(`${JSON.stringify(e)}\n`);
    return;
  }
  if (opts.mode === "plain") {
    opts.sink.write(renderPlanText(opts.plan, { color: opts.color ?? false }));
    return;
  }
  opts.sink.write(`${renderToString(<PlanView plan={opts.plan} color={opts.color ?? true} />, { columns: opts.sink.columns ?? 80 })}\n`);
}
