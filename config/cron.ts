/**
 * Reading a schedule's cron and time zone, shared by the config rules (is it valid?) and the policy engine (when did
 * it last run?), so both read a cron the same way.
 */
import { Cron } from "croner";
import { POLICY_DEFAULTS } from "./scaling.js";

// Parsed crons by zone and pattern: parsing costs more than evaluating, and config crons are few.
const crons = new Map<string, Cron>();

/** True for an IANA time zone name this runtime knows (`Europe/Berlin`, `UTC`). */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** Parses a five-field cron (or `@daily`…) in an IANA time zone; throws with croner's message when either is invalid. */
export function parseCron(cron: string, timezone: string = POLICY_DEFAULTS.timezone): Cron {
  const key = `${timezone} ${cron}`;
  let c = crons.get(key);
  if (!c) {
    if (!isTimeZone(timezone)) throw new RangeError(`unknown time zone ${JSON.stringify(timezone)}`);
    // Paused and without a callback: croner only computes dates, it never starts a timer.
    c = new Cron(cron, { timezone, paused: true, mode: "5-part" });
    crons.set(key, c);
  }
  return c;
}
