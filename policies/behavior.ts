import type { Scaling, ScalingRules } from "../config/scaling.js";
import type { History } from "../state/types.js";
import { ceilSafe } from "./aggregate.js";
import { formatDuration } from "./format.js";

/** A step's result: the size after it, and why when the step changed it. */
export interface StepResult {
  value: number;
  reason?: string;
}

const age = (at: string, now: Date): number => (now.getTime() - Date.parse(at)) / 1000;

/**
 * HPA stabilisation: the current size clamped between the lowest recommendation of the scale-up window and the
 * highest of the scale-down window (both windows include `recommendation`, the one made now).
 */
export function stabilize(current: number, recommendation: number, history: History, behavior: Scaling["behavior"], now: Date): StepResult {
  const up = behavior.scaleUp.stabilizationWindowSeconds;
  const down = behavior.scaleDown.stabilizationWindowSeconds;
  let upMin = recommendation;
  let downMax = recommendation;
  for (const r of history.recommendations) {
    const a = age(r.at, now);
    if (a < up) upMin = Math.min(upMin, r.desired);
    if (a < down) downMax = Math.max(downMax, r.desired);
  }
  const value = Math.min(Math.max(current, upMin), downMax);
  if (value === recommendation) return { value };
  return recommendation > value
    ? { value, reason: `stabilised: lowest recommendation in the last ${up}s is ${upMin}` }
    : { value, reason: `stabilised: highest recommendation in the last ${down}s is ${downMax}` };
}

/** VMs added (`add`) or deleted (`delete`) in the last `seconds`. */
export function changedWithin(history: History, kind: "add" | "delete", seconds: number, now: Date): number {
  return history.events.reduce((n, e) => (e.kind === kind && age(e.at, now) < seconds ? n + e.count : n), 0);
}

/**
 * HPA rate limits: each rule allows a size relative to the size at the start of its period (now minus what was
 * added or deleted since); `selectPolicy` Max takes the rule allowing the most change, Min the least, Disabled none.
 */
export function limitRate(current: number, desired: number, history: History, behavior: Scaling["behavior"], now: Date): StepResult {
  if (desired === current) return { value: desired };
  const upward = desired > current;
  const rules: ScalingRules = upward ? behavior.scaleUp : behavior.scaleDown;
  const direction = upward ? "scale-up" : "scale-down";
  if (rules.selectPolicy === "Disabled" || rules.policies.length === 0) return { value: current, reason: `${direction} disabled (selectPolicy ${rules.selectPolicy})` };
  const allowed = rules.policies.map((r) => {
    const start = upward ? current - changedWithin(history, "add", r.periodSeconds, now) : current + changedWithin(history, "delete", r.periodSeconds, now);
    if (upward) return r.type === "Pods" ? start + r.value : ceilSafe(start * (1 + r.value / 100));
    return r.type === "Pods" ? start - r.value : Math.floor(start * (1 - r.value / 100) + 1e-9);
  });
  // Max picks the rule allowing the most change: the highest size going up, the lowest going down.
  const pick = upward === (rules.selectPolicy === "Max") ? Math.max(...allowed) : Math.min(...allowed);
  // A period that started larger (or smaller) never turns a scale-up into a scale-down, or the reverse.
  const limit = upward ? Math.max(pick, current) : Math.min(pick, current);
  const value = upward ? Math.min(desired, limit) : Math.max(desired, limit);
  if (value === desired) return { value };
  const rulesText = rules.policies.map((r) => `${r.value}${r.type === "Pods" ? " VMs" : "%"} per ${formatDuration(r.periodSeconds)}`).join(", ");
  return { value, reason: `rate limited: ${direction} allows ${limit} now (${rulesText}; selectPolicy ${rules.selectPolicy}), wanted ${desired}` };
}
