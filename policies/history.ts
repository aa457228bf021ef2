/**
 * How a group's `History` (state/types.ts: recorded data, kept in state) changes: the only code that makes new ones.
 */
import type { History, ScaleEvent } from "../state/types.js";
import type { Decision } from "./decision.js";

/** A history with nothing in it: a new group, or one whose state predates the policy engine. */
export function emptyHistory(): History {
  return { recommendations: [], events: [] };
}

const byTime = <T extends { at: string }>(a: T, b: T): number => Date.parse(a.at) - Date.parse(b.at);

/**
 * The history after a decision was carried out: its recommendation is added, and an `add` or `delete` event when
 * it changed the size. Entries older than the decision's `retainSeconds` are dropped, except the newest
 * recommendation before that horizon, which says what was recommended when the window opened.
 * Call it for decisions that were applied (not for a plan only looked at); record failures with `recordEvent`.
 */
export function recordDecision(history: History, decision: Decision, now: Date): History {
  const d = decision.details;
  if (!d) return history;
  const at = now.toISOString();
  const events = [...history.events];
  const change = decision.desired - d.current;
  if (change !== 0) events.push({ at, kind: change > 0 ? "add" : "delete", count: Math.abs(change) });
  const horizon = now.getTime() - d.retainSeconds * 1000;
  const recs = [...history.recommendations, { at, desired: d.recommendation }].sort(byTime);
  const firstKept = recs.findIndex((r) => Date.parse(r.at) >= horizon);
  return {
    recommendations: firstKept === -1 ? recs.slice(-1) : recs.slice(Math.max(0, firstKept - 1)),
    events: events.sort(byTime).filter((e) => Date.parse(e.at) >= horizon),
  };
}

/** The history with one more event (e.g. `{kind: "error"}` after a failed apply). */
export function recordEvent(history: History, event: ScaleEvent): History {
  return { ...history, events: [...history.events, event].sort(byTime) };
}
