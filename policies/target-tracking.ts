import { POLICY_DEFAULTS, type TargetTrackingPolicy } from "../config/scaling.js";
import { aggregateMetric, ceilSafe, noDataReason, type PolicyContext } from "./aggregate.js";
import type { PolicyOutcome } from "./decision.js";
import { formatDuration, formatValue } from "./format.js";

/** `|1 − ratio| <= tolerance`, the edge included despite floating point (66 / 60 is 1.1000000000000001). */
export const withinTolerance = (ratio: number, tolerance: number): boolean => Math.abs(1 - ratio) <= tolerance + 1e-9;

/**
 * Target tracking with HPA's algorithm: `ratio = average / target`; inside the tolerance band nothing happens, else
 * `ceil(ratio × members)`. Members without data (missing samples, not ready, warming up) count as 100% of the
 * target when the others say scale in and 0% when they say scale out; if that flips the direction or lands in the
 * band, the size is kept. Missing samples never scale in (AWS), which is stricter than HPA.
 */
export function recommendTargetTracking(p: TargetTrackingPolicy, ctx: PolicyContext): PolicyOutcome {
  const tolerance = p.tolerance ?? POLICY_DEFAULTS.tolerance;
  const window = p.windowSeconds ?? POLICY_DEFAULTS.windowSeconds;
  const base = { index: ctx.index, type: p.type, metric: p.metric };
  const agg = aggregateMetric(ctx, p.metric, window);
  const fmt = (v: number): string => formatValue(p.metric, v);
  const over = `over ${formatDuration(window)}`;
  const hold = (code: PolicyOutcome["code"], reason: string, value?: number): PolicyOutcome => ({
    ...base,
    recommendation: ctx.current,
    code,
    reason,
    missing: agg.missing.length > 0 || agg.average === undefined,
    ...(value === undefined ? {} : { value }),
  });

  if (agg.average === undefined) return hold("missing_data", noDataReason(ctx, p.metric, over));
  const avg = agg.average;
  const ratio = avg / p.target;
  const compare = `avg ${p.metric} ${fmt(avg)} ${ratio > 1 ? ">" : "<"} target ${fmt(p.target)} ${over}`;
  if (withinTolerance(ratio, tolerance)) {
    return hold("steady", `avg ${p.metric} ${fmt(avg)} within ${Math.round(tolerance * 100)}% of target ${fmt(p.target)} ${over}`, avg);
  }

  let desired = ceilSafe(ratio * agg.values.length);
  let reason = compare;
  const unknown = agg.missing.length + agg.setAside.length;
  if (unknown > 0) {
    const fill = ratio < 1 ? p.target : 0;
    const total = agg.values.length + unknown;
    const filled = (agg.values.reduce((a, b) => a + b, 0) + fill * unknown) / total;
    const filledRatio = filled / p.target;
    const without = `${unknown} member${unknown === 1 ? "" : "s"} without data counted at ${fill === 0 ? "0" : "the target"}`;
    if (withinTolerance(filledRatio, tolerance) || filledRatio > 1 !== ratio > 1) {
      return hold("steady", `${compare}, but with ${without} it is ${fmt(filled)}: keeping the size`, avg);
    }
    desired = ceilSafe(filledRatio * total);
    if ((filledRatio < 1 && desired > ctx.current) || (filledRatio > 1 && desired < ctx.current)) {
      return hold("steady", `${compare}, but ${desired} would go the other way: keeping the size`, avg);
    }
    reason = `${compare} (${without}: ${fmt(filled)})`;
  }

  if (desired < ctx.current && agg.missing.length > 0) {
    return hold("missing_data", `${compare}, but ${p.metric} is missing for ${agg.missing.join(", ")}: not scaling in`, avg);
  }
  if (desired < ctx.current && p.disableScaleIn) return hold("steady", `${compare}; scale-in disabled for this policy`, avg);
  return { ...base, recommendation: desired, code: desired === ctx.current ? "steady" : "target_tracking", reason, missing: agg.missing.length > 0, value: avg };
}
