/**
 * What the apply views show, folded from apply events (pure: the clock comes in as `nowMs`).
 * One row per change of the plan, in plan order; events for an address the plan does not have add a row.
 */
import type { ApplyEvent, ApplyResult } from "../../applier/apply-plan.js";
import type { Change, Plan } from "../../planner/plan.js";

/** Where a change is: not started, in flight, finished well, or failed (also: never started because of an interrupt). */
export type RowStatus = "waiting" | "running" | "done" | "failed";

/** One change as the views show it. */
export interface ApplyRow {
  address: string;
  action: Change["action"];
  host: string;
  status: RowStatus;
  /** The last step reported (`disk`, `start`, `ready`, … or one this version does not know), or null. */
  step: string | null;
  /** Reporter clock at `apply_start`, or null while waiting. */
  startedAt: number | null;
  /** Reporter clock when it finished, or null. */
  finishedAt: number | null;
  /** How long it took, as the applier measured it (set when finished). */
  elapsedMs: number | null;
  error: string | null;
  /** The rollback of a failed create failed too. */
  cleanupError: string | null;
}

/** The rows of an apply. */
export interface ApplyModel {
  rows: readonly ApplyRow[];
}

/** Counts per status. */
export interface Counts {
  total: number;
  waiting: number;
  running: number;
  done: number;
  failed: number;
}

/** Every change of the plan, waiting. */
export function initialApplyModel(plan: Pick<Plan, "changes">): ApplyModel {
  return {
    rows: plan.changes.map((c) => ({
      address: c.address,
      action: c.action,
      host: c.host,
      status: "waiting",
      step: null,
      startedAt: null,
      finishedAt: null,
      elapsedMs: null,
      error: null,
      cleanupError: null,
    })),
  };
}

/** The model after one event, at reporter time `nowMs`. */
export function applyEventToModel(model: ApplyModel, e: ApplyEvent, nowMs: number): ApplyModel {
  const update = (address: string, fn: (r: ApplyRow) => ApplyRow, fallback: () => ApplyRow): ApplyModel => {
    const i = model.rows.findIndex((r) => r.address === address);
    const rows = [...model.rows];
    if (i < 0) rows.push(fn(fallback()));
    else rows[i] = fn(rows[i]!);
    return { rows };
  };
  const unknown = (action: Change["action"], host = "?"): (() => ApplyRow) => () => ({
    address: e.address,
    action,
    host,
    status: "waiting",
    step: null,
    startedAt: null,
    finishedAt: null,
    elapsedMs: null,
    error: null,
    cleanupError: null,
  });
  switch (e.type) {
    case "apply_start":
      return update(e.address, (r) => ({ ...r, action: e.action, host: e.host, status: "running", startedAt: nowMs, step: null }), unknown(e.action, e.host));
    case "apply_progress":
      return update(e.address, (r) => ({ ...r, status: "running", step: e.step, startedAt: r.startedAt ?? nowMs - e.elapsedMs }), unknown("create"));
    case "apply_complete":
      return update(e.address, (r) => ({ ...r, status: "done", finishedAt: nowMs, elapsedMs: e.elapsedMs }), unknown(e.action));
    case "apply_errored":
      return update(e.address, (r) => ({ ...r, status: "failed", finishedAt: nowMs, elapsedMs: e.elapsedMs, error: e.error }), unknown(e.action));
    case "cleanup_errored":
      return update(e.address, (r) => ({ ...r, cleanupError: e.error }), unknown("create"));
    default:
      return model; // an event type this version does not know
  }
}

/** Marks the changes the result says failed but that never started (an interrupted apply skips them). */
export function finishApplyModel(model: ApplyModel, result: ApplyResult, nowMs: number): ApplyModel {
  const failed = new Map(result.failed.map((f) => [f.change.address, f.error]));
  return {
    rows: model.rows.map((r) =>
      r.status !== "done" && r.status !== "failed" && failed.has(r.address)
        ? { ...r, status: "failed", finishedAt: nowMs, error: failed.get(r.address)!, elapsedMs: r.startedAt === null ? 0 : nowMs - r.startedAt }
        : r,
    ),
  };
}

/** Counts per status over `rows`. */
export function countRows(rows: readonly ApplyRow[]): Counts {
  const c: Counts = { total: rows.length, waiting: 0, running: 0, done: 0, failed: 0 };
  for (const r of rows) c[r.status]++;
  return c;
}

/** Counts per host, hosts in order of first appearance in the plan. */
export function hostProgress(model: ApplyModel): { host: string; counts: Counts }[] {
  const hosts = new Map<string, ApplyRow[]>();
  for (const r of model.rows) hosts.set(r.host, [...(hosts.get(r.host) ?? []), r]);
  return [...hosts].map(([host, rows]) => ({ host, counts: countRows(rows) }));
}

/** How long a row has run: the applier's figure once finished, else reporter time since it started. */
export function rowElapsedMs(r: ApplyRow, nowMs: number): number | null {
  if (r.elapsedMs !== null) return r.elapsedMs;
  return r.startedAt === null ? null : Math.max(0, nowMs - r.startedAt);
}

/**
 * The rows to show when at most `maxRows` fit: all of them when they fit; else the running ones (oldest first),
 * then failed, then the next waiting, then the most recently finished, shown in plan order, and counts of the rest.
 */
export function visibleRows(model: ApplyModel, maxRows: number): { rows: ApplyRow[]; hidden: Counts } {
  const all = model.rows;
  if (all.length <= maxRows) return { rows: [...all], hidden: countRows([]) };
  const budget = Math.max(1, maxRows - 1); // one line says what is not shown
  const index = new Map(all.map((r, i) => [r, i]));
  const byStatus = (s: RowStatus) => all.filter((r) => r.status === s);
  const ranked = [
    ...byStatus("running").sort((a, b) => (a.startedAt ?? 0) - (b.startedAt ?? 0)),
    ...byStatus("failed"),
    ...byStatus("waiting"),
    ...byStatus("done").sort((a, b) => (b.finishedAt ?? 0) - (a.finishedAt ?? 0)),
  ];
  const shown = new Set(ranked.slice(0, budget));
  return {
    rows: [...shown].sort((a, b) => index.get(a)! - index.get(b)!),
    hidden: countRows(all.filter((r) => !shown.has(r))),
  };
}
