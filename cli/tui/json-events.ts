/**
 * The machine-readable stream: one JSON object per line, Terraform's machine-readable UI where it has a name for
 * the event (`planned_change`, `resource_drift`, `diagnostic`, `change_summary`, `apply_start`, `apply_progress`,
 * `apply_complete`, `apply_errored`) and `premiscale.<name>` for ours. Every object has `type`, `@level`,
 * `@message` (the plain-mode line) and `@timestamp`. Pure: the wall clock comes in as `now`.
 */
import type { ApplyEvent, ApplyResult } from "../../applier/apply-plan.js";
import type { Plan } from "../../planner/plan.js";
import { describeShortfall, summaryLine } from "../../planner/render-text.js";
import { applySucceeded, applySummaryLine, plainEventLine, resultCounts } from "./format.js";

/** One line of the stream. */
export type JsonEvent = { type: string; "@level": "info" | "warn" | "error"; "@message": string; "@timestamp": string } & Record<string, unknown>;

const TERRAFORM_APPLY_TYPES = new Set(["apply_start", "apply_progress", "apply_complete", "apply_errored"]);

function envelope(type: string, level: JsonEvent["@level"], message: string, now: Date, fields: Record<string, unknown>): JsonEvent {
  return { "@level": level, "@message": message, "@timestamp": now.toISOString(), type, ...fields };
}

/** An apply event as a stream object; event types Terraform has no name for become `premiscale.<type>`. */
export function applyEventJson(e: ApplyEvent, now: Date): JsonEvent {
  const { type, ...fields } = e;
  const error = type === "apply_errored" || type === "cleanup_errored";
  return envelope(TERRAFORM_APPLY_TYPES.has(type) ? type : `premiscale.${type}`, error ? "error" : "info", plainEventLine(e) ?? type, now, fields);
}

/** The closing `change_summary` of an apply (`operation: "apply"`), with what failed and the state commit. */
export function applySummaryJson(r: ApplyResult, now: Date): JsonEvent {
  const { added, changed, destroyed } = resultCounts(r);
  return envelope("change_summary", applySucceeded(r) ? "info" : "error", applySummaryLine(r), now, {
    changes: { add: added, change: changed, remove: destroyed, operation: "apply" },
    failed: r.failed.map((f) => ({ address: f.change.address, action: f.change.action, host: f.change.host, error: f.error })),
    commit: r.commit,
    commitError: r.commitError,
  });
}

/** A note for people (e.g. "interrupt received") as a stream object. */
export function noteJson(text: string, level: JsonEvent["@level"], now: Date): JsonEvent {
  return envelope("premiscale.note", level, text, now, {});
}

/**
 * A plan as stream objects: drift first, warnings and errors as diagnostics, one `planned_change` per change,
 * then `change_summary` (`operation: "plan"`).
 */
export function planJsonEvents(plan: Plan, now: Date): JsonEvent[] {
  const out: JsonEvent[] = [];
  for (const d of plan.drift) {
    out.push(envelope("resource_drift", "info", `${d.group}[${d.name}] on host ${d.host}: ${d.detail}`, now, { drift: d }));
  }
  for (const w of plan.warnings) out.push(envelope("diagnostic", "warn", `Warning: ${w}`, now, { diagnostic: { severity: "warning", summary: w } }));
  for (const c of plan.changes) {
    out.push(
      envelope("planned_change", "info", `${c.address}: plan to ${c.action} on ${c.host} (${c.detail})`, now, {
        change: {
          address: c.address, action: c.action, group: c.group, name: c.name, host: c.host, reason: c.reason, detail: c.detail,
          ...(c.waits_for ? { waits_for: c.waits_for } : {}),
          ...((c.action === "create" || c.action === "delete") && c.pool ? { pool: true } : {}),
          ...(c.action === "create" && c.replaces ? { replaces: c.replaces } : {}),
        },
      }),
    );
  }
  for (const u of plan.refresh ?? []) {
    out.push(envelope("premiscale.refresh", "info", `${u.address} on host ${u.host}: ${u.action.replace("_", " ")} (${u.detail})`, now, { refresh: { address: u.address, action: u.action, group: u.group, name: u.name, host: u.host, detail: u.detail } }));
  }
  for (const s of plan.shortfalls) {
    out.push(envelope("diagnostic", "warn", `Shortfall: ${describeShortfall(s)}`, now, { diagnostic: { severity: "warning", summary: describeShortfall(s), group: s.group, missing: s.missing } }));
  }
  for (const e of plan.errors) {
    out.push(envelope("diagnostic", "error", `Error: group "${e.group}": ${e.message}`, now, { diagnostic: { severity: "error", summary: e.message, group: e.group } }));
  }
  out.push(
    envelope("change_summary", plan.errors.length > 0 ? "error" : "info", summaryLine(plan), now, {
      changes: { add: plan.summary.add, change: plan.summary.change, remove: plan.summary.destroy, operation: "plan" },
    }),
  );
  return out;
}
