/** Words and lines shared by the views (pure; no clock, no I/O). */
import type { ApplyEvent, ApplyResult } from "../../applier/apply-plan.js";
import type { Change } from "../../planner/plan.js";
import type { Counts } from "./apply-model.js";

/** Go-style durations, whole seconds: `0s`, `12s`, `1m5s`, `2h0m3s`. */
export function formatElapsed(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

const STEP_LABELS: Record<string, string> = {
  "create-disk": "creating disk",
  configure: "configuring",
  start: "starting",
  pause: "pausing",
  ready: "waiting for check-in",
  stop: "stopping",
  delete: "deleting",
};

/** What a step is doing, in words (`hook:NAME` runs a lifecycle hook); a step this version does not know is shown by its name. */
export function stepLabel(step: string): string {
  if (step.startsWith("hook:")) return `running hook ${step.slice(5)}`;
  return Object.hasOwn(STEP_LABELS, step) ? STEP_LABELS[step]! : step;
}

const ACTION_WORDS: Record<Change["action"], { verb: string; doing: string; done: string }> = {
  create: { verb: "create", doing: "creating", done: "created" },
  delete: { verb: "destroy", doing: "destroying", done: "destroyed" },
  take: { verb: "take from the warm pool", doing: "taking from the warm pool", done: "taken from the warm pool" },
  return: { verb: "return to the warm pool", doing: "returning to the warm pool", done: "returned to the warm pool" },
};

/** `create`, `destroy`, `take from the warm pool`, `return to the warm pool`. */
export function verb(action: Change["action"]): string {
  return ACTION_WORDS[action]?.verb ?? action;
}

/** `creating` / `destroying` / `taking from the warm pool` / `returning to the warm pool`. */
export function doing(action: Change["action"]): string {
  return ACTION_WORDS[action]?.doing ?? action;
}

/** `created` / `destroyed` / `taken from the warm pool` / `returned to the warm pool`. */
export function done(action: Change["action"]): string {
  return ACTION_WORDS[action]?.done ?? action;
}

/**
 * The plain-mode line of an event (no timestamp: stable for logs and tests), or null for an event type this
 * version does not know. `hostCounts` adds `[kvm1: 3/5]` to finished lines.
 */
export function plainEventLine(e: ApplyEvent, hostCounts?: { host: string; counts: Counts }): string | null {
  const progress = hostCounts ? ` [${hostCounts.host}: ${hostCounts.counts.done + hostCounts.counts.failed}/${hostCounts.counts.total}]` : "";
  switch (e.type) {
    case "apply_start":
      return `${e.address}: ${doing(e.action)} on ${e.host}...`;
    case "apply_progress":
      return `${e.address}: ${stepLabel(e.step)} (${formatElapsed(e.elapsedMs)})`;
    case "apply_complete":
      return `${e.address}: ${done(e.action)} (${formatElapsed(e.elapsedMs)})${progress}`;
    case "apply_errored":
      return `${e.address}: ${verb(e.action)} failed (${formatElapsed(e.elapsedMs)}): ${e.error}${progress}`;
    case "cleanup_errored":
      return `${e.address}: could not remove the half-created VM: ${e.error} (state keeps it as 'creating'; the next apply removes it)`;
    case "hook_message":
      return `${e.address}: ${e.message}`;
    default:
      return null;
  }
}

/** Added, changed (warm pool moves) and destroyed counts of what succeeded. */
export function resultCounts(r: Pick<ApplyResult, "succeeded">): { added: number; changed: number; destroyed: number } {
  const added = r.succeeded.filter((c) => c.action === "create").length;
  const destroyed = r.succeeded.filter((c) => c.action === "delete").length;
  return { added, changed: r.succeeded.length - added - destroyed, destroyed };
}

/** True when every change succeeded and the state was committed (exit code 0). */
export function applySucceeded(r: Pick<ApplyResult, "failed" | "commitError">): boolean {
  return r.failed.length === 0 && r.commitError === null;
}

/**
 * Terraform's closing line: `Apply complete! Resources: 2 added, 0 changed, 1 destroyed.`, or
 * `Apply failed: 1 of 3 changes failed. Resources: …` (or `… the state could not be committed. …`).
 */
export function applySummaryLine(r: ApplyResult): string {
  const { added, changed, destroyed } = resultCounts(r);
  const resources = `Resources: ${added} added, ${changed} changed, ${destroyed} destroyed.`;
  if (applySucceeded(r)) return `Apply complete! ${resources}`;
  if (r.failed.length === 0) return `Apply failed: the state could not be committed. ${resources}`;
  return `Apply failed: ${r.failed.length} of ${r.failed.length + r.succeeded.length} changes failed. ${resources}`;
}

/**
 * The lines under a failed apply's summary: what succeeded (one line each up to `maxOk`, else a count), what
 * failed and why (always every one), and what to do.
 */
export function applyFailureDetails(r: ApplyResult, maxOk = 10): string[] {
  if (applySucceeded(r)) return [];
  const { added, changed, destroyed } = resultCounts(r);
  const ok =
    r.succeeded.length <= maxOk
      ? r.succeeded.map((c) => `  ok      ${c.action} ${c.address} on ${c.host}`)
      : [`  ok      ${r.succeeded.length} changes (${added} created, ${changed > 0 ? `${changed} moved in or out of a warm pool, ` : ""}${destroyed} destroyed; premiscale state list shows them)`];
  return [
    ...ok,
    ...r.failed.map((f) => `  failed  ${f.change.action} ${f.change.address} on ${f.change.host}: ${f.error}`),
    "State records what succeeded. Fix the cause and run premiscale apply again: it converges.",
  ];
}

/** Diagnostics about the state commit (for stderr): the commit made, or why there is none. */
export function commitLines(r: ApplyResult, statePath?: string): string[] {
  const where = statePath ? ` in ${statePath}` : "";
  const lines: string[] = [];
  if (r.commit) lines.push(`State committed: ${r.commit.slice(0, 12)}${where}`);
  if (r.commitError) {
    lines.push(`Error: state was written${statePath ? ` to ${statePath}` : ""} but not committed: ${r.commitError}`);
    lines.push("  the next apply commits it; fix the git repository first");
  }
  return lines;
}
