import { POLICY_DEFAULTS, type ThresholdPolicy } from "../config/scaling.js";
import { datapoints, noDataReason, type PolicyContext } from "./aggregate.js";
import type { PolicyOutcome } from "./decision.js";
import { formatDuration, formatValue } from "./format.js";

/**
 * Threshold with M-of-N datapoints (a CloudWatch alarm with simple scaling): `+change` when at least M of the newest
 * N period averages are above `above`, `−change` when at least M are below `below`. Scale-out wins when both hold.
 * A period without data does not breach; scale-in also needs every period present and no member missing.
 */
export function recommendThreshold(p: ThresholdPolicy, ctx: PolicyContext): PolicyOutcome {
  const m = p.datapointsToAlarm ?? POLICY_DEFAULTS.datapointsToAlarm;
  const n = p.evaluationPeriods ?? POLICY_DEFAULTS.evaluationPeriods;
  const period = p.periodSeconds ?? POLICY_DEFAULTS.periodSeconds;
  const change = p.change ?? POLICY_DEFAULTS.change;
  const { points, missing } = datapoints(ctx, p.metric, period, n);
  const present = points.filter((v): v is number => v !== undefined);
  const gaps = n - present.length;
  const base = { index: ctx.index, type: p.type, metric: p.metric, missing: gaps > 0 || missing.length > 0 };
  const latest = points[points.length - 1];
  const value = latest === undefined ? {} : { value: latest };
  const fmt = (v: number): string => formatValue(p.metric, v);
  const of = `of the last ${n} ${formatDuration(period)} datapoints`;
  const hold = (code: PolicyOutcome["code"], reason: string): PolicyOutcome => ({ ...base, recommendation: ctx.current, code, reason, ...value });

  if (present.length === 0) return hold("missing_data", noDataReason(ctx, p.metric, `in the last ${formatDuration(n * period)}`));
  const { above, below } = p;
  const high = above === undefined ? 0 : present.filter((v) => v > above).length;
  const low = below === undefined ? 0 : present.filter((v) => v < below).length;
  if (above !== undefined && high >= m) {
    return { ...base, recommendation: ctx.current + change, code: "threshold", reason: `${p.metric} > ${fmt(above)} in ${high} ${of}: +${change}`, ...value };
  }
  if (below !== undefined && low >= m) {
    const reason = `${p.metric} < ${fmt(below)} in ${low} ${of}`;
    if (base.missing) {
      const what = missing.length > 0 ? `${p.metric} is missing for ${missing.join(", ")}` : `${gaps} datapoint${gaps === 1 ? "" : "s"} missing`;
      return hold("missing_data", `${reason}, but ${what}: not scaling in`);
    }
    const desired = Math.max(0, ctx.current - change);
    return { ...base, recommendation: desired, code: desired === ctx.current ? "steady" : "threshold", reason: `${reason}: -${change}`, ...value };
  }
  const parts = [above === undefined ? "" : `> ${fmt(above)} in ${high}`, below === undefined ? "" : `< ${fmt(below)} in ${low}`];
  return hold("steady", `${p.metric} ${parts.filter(Boolean).join(", ")} ${of} (${m} needed)`);
}
