/**
 * A node group's disruption budget: how many of its nodes scale-down may take at once, now. Karpenter's NodePool
 * budgets: the group's budget (`10%` by default) is always in force; each scheduled budget is in force for its
 * `duration` after each time its cron `schedule` fires (in its time zone), and the most restrictive budget in force
 * wins, so `nodes: "0"` on `0 9 * * 1-5` for `8h` stops scale-down during business hours. Pure: the time is `now`.
 */
import { parseCron } from "../../config/cron.js";
import type { ScheduledDisruptionBudget } from "../../config/kubernetes.js";

/** A budget in force only for `durationMs` after each time `schedule` fires. */
export interface ScheduledBudget {
  /** A node count (`"2"`) or a share of the group's nodes (`"10%"`, rounded up). */
  nodes: string;
  /** Five-field cron (or `@daily`…). */
  schedule: string;
  /** IANA time zone the cron is read in. */
  timezone: string;
  /** The duration as written (`8h`, `30m`, `1h30m`), for reasons. */
  duration: string;
  durationMs: number;
}

/** A budget of the config (`kubernetes.native.scaleDown.budgets`, a group's `disruptionBudgets`) in milliseconds. */
export function scheduledBudget(b: ScheduledDisruptionBudget): ScheduledBudget {
  return { nodes: b.nodes, schedule: b.schedule, timezone: b.timezone, duration: b.duration, durationMs: b.durationSeconds * 1000 };
}

/** What the budgets allow now. */
export interface BudgetNow {
  /** Nodes of the group that may be disrupted now (before subtracting those being deleted). */
  allowed: number;
  /** The budget that decides, for reasons: `disruption budget 10%`, or the scheduled one with its window. */
  by: string;
}

/**
 * Nodes a budget allows among `nodes`: a count, or a percentage rounded up (Karpenter's and a PDB's rounding: 10% of
 * 4 nodes is 1, 0% is 0).
 */
export function budgetNodes(budget: string, nodes: number): number {
  const m = /^(\d+)(%?)$/.exec(budget.trim());
  if (!m) return 0;
  const n = Number(m[1]);
  if (!m[2]) return n;
  return Math.max(0, Math.ceil((n * nodes) / 100 - 1e-9));
}

/**
 * When `b` is in force at `now`: the end of its current window, or null when it is not. In force when the schedule
 * fired within the last `durationMs` (Karpenter's IsActive: the first run after now − duration is not after now); a
 * later run within the window extends it.
 */
export function budgetWindowEnd(b: ScheduledBudget, now: Date): Date | null {
  const cron = parseCron(b.schedule, b.timezone);
  let hit = cron.nextRun(new Date(now.getTime() - b.durationMs));
  if (!hit || hit.getTime() > now.getTime()) return null;
  // Walk to the last run at or before now (bounded: a cron firing every minute in a long window ends early, which
  // only shortens the "until" of the reason).
  for (let i = 0; i < 1000; i++) {
    const next = cron.nextRun(hit);
    if (!next || next.getTime() > now.getTime()) break;
    hit = next;
  }
  return new Date(hit.getTime() + b.durationMs);
}

/** The budget in force for a group of `nodes` nodes at `now`: the most restrictive of `base` and the scheduled ones in force. */
export function budgetNow(base: string, scheduled: readonly ScheduledBudget[], nodes: number, now: Date): BudgetNow {
  let best: BudgetNow = { allowed: budgetNodes(base, nodes), by: `disruption budget ${base}` };
  for (const b of scheduled) {
    const end = budgetWindowEnd(b, now);
    if (!end) continue;
    const allowed = budgetNodes(b.nodes, nodes);
    if (allowed < best.allowed) best = { allowed, by: `scheduled disruption budget ${b.nodes} ("${b.schedule}" ${b.timezone} for ${b.duration}, until ${end.toISOString().replace(/:00\.000Z$/, "Z")})` };
  }
  return best;
}
