import { parseCron } from "../config/cron.js";
import { POLICY_DEFAULTS, type Policy, type ScheduledPolicy } from "../config/scaling.js";
import type { PolicyOutcome } from "./decision.js";
import { formatDuration } from "./format.js";

/** The latest run at or before `now`, if any. */
export function lastRun(p: ScheduledPolicy, now: Date): Date | undefined {
  // croner includes runs earlier in the same second as the reference, but not one exactly at it.
  return parseCron(p.cron, p.timezone).previousRuns(1, new Date(now.getTime() + 1))[0];
}

const clocks = new Map<string, Intl.DateTimeFormat>();

/** A wall-clock time in the schedule's zone: `2025-03-31 08:00 Europe/Berlin` (Swedish dates are ISO-like). */
function wallClock(at: Date, timezone: string): string {
  let f = clocks.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat("sv-SE", { timeZone: timezone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false });
    clocks.set(timezone, f);
  }
  return `${f.format(at)} ${timezone}`;
}

/**
 * Which schedules are in effect at `now`, one outcome per schedule policy (other policies are skipped). A schedule
 * with `durationSeconds` is in effect for that long after each run; of those without, the one that ran last is in
 * effect (ties: the later in the list). An outcome in effect carries `minSize`/`maxSize` and, with `desired`, a
 * recommendation.
 */
export function evaluateSchedules(policies: Policy[], now: Date): PolicyOutcome[] {
  const schedules = policies.flatMap((p, index) => (p.type === "schedule" ? [{ p, index, last: lastRun(p, now) }] : []));
  let latest: (typeof schedules)[number] | undefined;
  for (const s of schedules) {
    if (s.p.durationSeconds === undefined && s.last && (!latest?.last || s.last >= latest.last)) latest = s;
  }
  return schedules.map(({ p, index, last }) => {
    const tz = p.timezone ?? POLICY_DEFAULTS.timezone;
    const base = { index, type: p.type, code: "schedule" as const, missing: false };
    const ends = last && p.durationSeconds !== undefined ? new Date(last.getTime() + p.durationSeconds * 1000) : undefined;
    const active = last !== undefined && (ends ? now < ends : latest?.index === index);
    if (!active) {
      const next = parseCron(p.cron, tz).nextRun(now);
      return { ...base, reason: `schedule "${p.cron}" not in effect${next ? ` (next run ${wallClock(next, tz)})` : ""}` };
    }
    const sets = [
      p.minSize === undefined ? "" : `min ${p.minSize}`,
      p.maxSize === undefined ? "" : `max ${p.maxSize}`,
      p.desired === undefined ? "" : `desired ${p.desired}`,
    ].filter(Boolean);
    const span = ends ? ` for ${formatDuration(p.durationSeconds ?? 0)}` : "";
    return {
      ...base,
      reason: `schedule "${p.cron}" since ${wallClock(last, tz)}${span}: ${sets.join(", ")}`,
      ...(p.desired === undefined ? {} : { recommendation: p.desired }),
      ...(p.minSize === undefined ? {} : { minSize: p.minSize }),
      ...(p.maxSize === undefined ? {} : { maxSize: p.maxSize }),
    };
  });
}
