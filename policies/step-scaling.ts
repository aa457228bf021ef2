import { POLICY_DEFAULTS, type Step, type StepScalingPolicy } from "../config/scaling.js";
import { aggregateMetric, noDataReason, type PolicyContext } from "./aggregate.js";
import type { PolicyOutcome } from "./decision.js";
import { formatDuration, formatValue } from "./format.js";

/**
 * The step a value (relative to the threshold) falls into. At or above the threshold a step's lower bound is
 * inclusive and its upper bound exclusive; below it the other way round (AWS).
 */
export function findStep(steps: Step[], diff: number): Step | undefined {
  return steps.find((s) => {
    const lo = s.lower ?? -Infinity;
    const hi = s.upper ?? Infinity;
    return diff >= 0 ? lo <= diff && diff < hi : lo < diff && diff <= hi;
  });
}

/**
 * The change in VMs of `PercentChangeInCapacity`: `current × percent / 100` rounded toward zero, at least ±1,
 * and at least `minMagnitude` VMs when given (AWS: 12.7 → 12, 0.5 → 1, −0.5 → −1, −6.67 → −6).
 */
export function percentChange(current: number, percent: number, minMagnitude = 0): number {
  if (percent === 0) return 0;
  const sign = Math.sign(percent);
  return sign * Math.max(1, minMagnitude, Math.trunc(Math.abs((current * percent) / 100) + 1e-9));
}

/** Step scaling (AWS): the group average's distance from the threshold picks a step, whose adjustment sets the size. */
export function recommendStep(p: StepScalingPolicy, ctx: PolicyContext): PolicyOutcome {
  const window = p.windowSeconds ?? POLICY_DEFAULTS.windowSeconds;
  const threshold = p.threshold ?? 0;
  const type = p.adjustmentType ?? POLICY_DEFAULTS.adjustmentType;
  const agg = aggregateMetric(ctx, p.metric, window);
  const fmt = (v: number): string => formatValue(p.metric, v);
  const base = { index: ctx.index, type: p.type, metric: p.metric, missing: agg.missing.length > 0 || agg.average === undefined };
  const hold = (code: PolicyOutcome["code"], reason: string): PolicyOutcome => ({ ...base, recommendation: ctx.current, code, reason, ...(agg.average === undefined ? {} : { value: agg.average }) });

  if (agg.average === undefined) return hold("missing_data", noDataReason(ctx, p.metric, `over ${formatDuration(window)}`));
  const diff = agg.average - threshold;
  const where = `avg ${p.metric} ${fmt(agg.average)} over ${formatDuration(window)}`;
  const step = findStep(p.steps, diff);
  if (!step) return hold("steady", `${where} is in no step (threshold ${fmt(threshold)})`);

  const bound = (v: number | undefined, inf: string): string => (v === undefined ? inf : String(v));
  const range = diff >= 0 ? `[${bound(step.lower, "-∞")}, ${bound(step.upper, "∞")})` : `(${bound(step.lower, "-∞")}, ${bound(step.upper, "∞")}]`;
  let desired: number;
  let effect: string;
  if (type === "ExactCapacity") {
    desired = step.adjustment;
    effect = `sets ${desired}`;
  } else {
    const change = type === "ChangeInCapacity" ? step.adjustment : percentChange(ctx.current, step.adjustment, p.minAdjustmentMagnitude);
    desired = ctx.current + change;
    const signed = (n: number): string => (n >= 0 ? `+${n}` : `-${-n}`);
    effect = type === "ChangeInCapacity" ? signed(change) : `${signed(step.adjustment)}% of ${ctx.current} = ${signed(change)}`;
  }
  desired = Math.max(0, desired);
  const reason = `${where}, ${diff >= 0 ? `${fmt(diff)} above` : `${fmt(-diff)} below`} threshold ${fmt(threshold)}: step ${range} ${effect}`;
  if (desired < ctx.current && agg.missing.length > 0) return hold("missing_data", `${reason}, but ${p.metric} is missing for ${agg.missing.join(", ")}: not scaling in`);
  return { ...base, recommendation: desired, code: desired === ctx.current ? "steady" : "step", reason, value: agg.average };
}
