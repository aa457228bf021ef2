import { distance } from "./closest.js";
import { isTimeZone, parseCron } from "./cron.js";
import { show } from "./show.js";
import { MAX_STABILIZATION_WINDOW_SECONDS, METRIC_NAMES, POLICY_DEFAULTS, type ScalingSpec, type Step, type StepScalingPolicy } from "./scaling.js";

/** One problem in a scaling configuration, with the dot path of the field relative to it (`policies[1].metric`). */
export interface ScalingIssue {
  path: string;
  message: string;
  /** What to do about it. */
  fix?: string;
}

interface NumberRule {
  min?: number;
  max?: number;
  /** `min` itself is not allowed. */
  above?: boolean;
  int?: boolean;
}

/** Collects issues; `num` checks an optional number. */
class Issues {
  readonly list: ScalingIssue[] = [];
  add(path: string, message: string, fix?: string): void {
    this.list.push({ path, message, ...(fix ? { fix } : {}) });
  }
  num(path: string, v: unknown, rule: NumberRule): void {
    if (v === undefined) return;
    const { min, max, above, int } = rule;
    if (typeof v !== "number" || !Number.isFinite(v)) return this.add(path, `must be a number, got ${show(v)}`);
    if (int && !Number.isInteger(v)) return this.add(path, `must be a whole number, got ${v}`);
    if (min !== undefined && (above ? v <= min : v < min)) return this.add(path, `must be ${above ? "greater than" : "at least"} ${min}, got ${v}`);
    if (max !== undefined && v > max) this.add(path, `must be at most ${max}, got ${v}`);
  }
}

const steps = (s: Step): string => `[${s.lower ?? "-∞"}, ${s.upper ?? "∞"})`;

function checkSteps(p: StepScalingPolicy, at: string, issues: Issues): void {
  if (!Array.isArray(p.steps) || p.steps.length === 0) return issues.add(`${at}.steps`, "needs at least one step", "e.g. steps: [{lower: 0, adjustment: 1}]");
  p.steps.forEach((s, i) => {
    issues.num(`${at}.steps[${i}].lower`, s.lower, {});
    issues.num(`${at}.steps[${i}].upper`, s.upper, {});
    issues.num(`${at}.steps[${i}].adjustment`, s.adjustment, p.adjustmentType === "ExactCapacity" ? { int: true, min: 0 } : { int: true });
    if (s.lower !== undefined && s.upper !== undefined && s.lower >= s.upper) issues.add(`${at}.steps[${i}]`, `lower (${s.lower}) must be below upper (${s.upper})`);
  });
  const order = p.steps.map((s, i) => ({ s, i })).sort((a, b) => (a.s.lower ?? -Infinity) - (b.s.lower ?? -Infinity));
  for (let k = 1; k < order.length; k++) {
    const prev = order[k - 1];
    const next = order[k];
    if (!prev || !next) continue;
    const end = prev.s.upper ?? Infinity;
    const start = next.s.lower ?? -Infinity;
    if (end > start) issues.add(`${at}.steps[${next.i}]`, `step ${steps(next.s)} overlaps steps[${prev.i}] ${steps(prev.s)}`, "make each step's lower the previous step's upper");
    else if (end < start) issues.add(`${at}.steps[${next.i}].lower`, `gap between steps[${prev.i}] ${steps(prev.s)} and steps[${next.i}] ${steps(next.s)}`, `set lower to ${end}`);
  }
  if (p.adjustmentType === "ExactCapacity") return;
  const first = order[0];
  const last = order[order.length - 1];
  if (last && last.s.upper !== undefined && p.steps.some((s) => s.adjustment > 0)) {
    issues.add(`${at}.steps[${last.i}].upper`, `values above ${last.s.upper} would match no step, so the policy would stop scaling out under the highest load`, "leave out upper on the highest step");
  }
  if (first && first.s.lower !== undefined && p.steps.some((s) => s.adjustment < 0)) {
    issues.add(`${at}.steps[${first.i}].lower`, `values below ${first.s.lower} would match no step, so the policy would stop scaling in at the lowest load`, "leave out lower on the lowest step");
  }
  if (p.minAdjustmentMagnitude !== undefined && p.adjustmentType !== "PercentChangeInCapacity") {
    issues.add(`${at}.minAdjustmentMagnitude`, "only applies with adjustmentType PercentChangeInCapacity");
  }
}

/**
 * The rules between fields of a group's scaling configuration: known metrics, step bounds without gaps or
 * overlaps, valid crons and time zones, ranges of tolerances, windows and delays. With the group's `bounds`, also
 * schedule sizes outside them. Returns no issues when it is valid; the caller prefixes the paths.
 */
export function validateScaling(spec: ScalingSpec, bounds?: { min: number; max: number }): ScalingIssue[] {
  const issues = new Issues();
  if (spec.mode !== undefined && !["on", "off", "scale-out-only"].includes(spec.mode)) issues.add("mode", `must be on, off or scale-out-only, got ${show(spec.mode)}`);
  issues.num("warmupSeconds", spec.warmupSeconds, { min: 0 });

  (spec.policies ?? []).forEach((p, i) => {
    const at = `policies[${i}]`;
    if (p.type === "target-tracking" || p.type === "step" || p.type === "threshold") {
      if (!(METRIC_NAMES as readonly string[]).includes(p.metric)) {
        const near = [...METRIC_NAMES].sort((a, b) => distance(p.metric ?? "", a) - distance(p.metric ?? "", b))[0];
        issues.add(`${at}.metric`, `unknown metric ${show(p.metric)}; known: ${METRIC_NAMES.join(", ")}`, `did you mean ${near}?`);
      }
    }
    switch (p.type) {
      case "target-tracking":
        issues.num(`${at}.target`, p.target, { min: 0, above: true, ...(p.metric === "cpu" || p.metric === "memory" ? { max: 100 } : {}) });
        if (p.target === undefined) issues.add(`${at}.target`, "is required");
        issues.num(`${at}.tolerance`, p.tolerance, { min: 0, max: 0.99 });
        issues.num(`${at}.windowSeconds`, p.windowSeconds, { min: 0, above: true });
        break;
      case "step":
        issues.num(`${at}.threshold`, p.threshold, {});
        issues.num(`${at}.windowSeconds`, p.windowSeconds, { min: 0, above: true });
        issues.num(`${at}.minAdjustmentMagnitude`, p.minAdjustmentMagnitude, { min: 1, int: true });
        if (p.adjustmentType !== undefined && !["ChangeInCapacity", "ExactCapacity", "PercentChangeInCapacity"].includes(p.adjustmentType)) {
          issues.add(`${at}.adjustmentType`, `must be ChangeInCapacity, ExactCapacity or PercentChangeInCapacity, got ${show(p.adjustmentType)}`);
        }
        checkSteps(p, at, issues);
        break;
      case "threshold": {
        if (p.above === undefined && p.below === undefined) issues.add(at, "needs above, below or both");
        issues.num(`${at}.above`, p.above, {});
        issues.num(`${at}.below`, p.below, {});
        if (p.above !== undefined && p.below !== undefined && p.below >= p.above) issues.add(`${at}.below`, `must be below above (${p.above}), got ${p.below}`);
        issues.num(`${at}.evaluationPeriods`, p.evaluationPeriods, { min: 1, int: true });
        issues.num(`${at}.datapointsToAlarm`, p.datapointsToAlarm, { min: 1, int: true, max: p.evaluationPeriods ?? 3 });
        issues.num(`${at}.periodSeconds`, p.periodSeconds, { min: 0, above: true });
        issues.num(`${at}.change`, p.change, { min: 1, int: true });
        break;
      }
      case "schedule": {
        const tz = p.timezone ?? POLICY_DEFAULTS.timezone;
        if (!isTimeZone(tz)) issues.add(`${at}.timezone`, `unknown time zone ${show(tz)}`, "use an IANA name such as Europe/Berlin or UTC");
        else {
          try {
            if (parseCron(p.cron, tz).nextRun(new Date(0)) === null) issues.add(`${at}.cron`, `${show(p.cron)} never runs`);
          } catch (e) {
            // The parser's message repeats the pattern: cut, as show() cuts the value.
            const full = (e instanceof Error ? e.message : String(e)).replace(/^CronPattern: /, "");
            const msg = full.length <= 200 ? full : `${full.slice(0, 200)}…`;
            issues.add(`${at}.cron`, `invalid cron ${show(p.cron)}: ${msg}`, 'five fields: minute hour day-of-month month day-of-week, e.g. "0 8 * * 1-5"');
          }
        }
        if (p.minSize === undefined && p.maxSize === undefined && p.desired === undefined) issues.add(at, "sets nothing: give minSize, maxSize or desired");
        for (const f of ["minSize", "maxSize", "desired"] as const) {
          issues.num(`${at}.${f}`, p[f], { min: 0, int: true });
          const v = p[f];
          if (bounds && v !== undefined && (v < bounds.min || v > bounds.max)) issues.add(`${at}.${f}`, `${v} is outside the group's min ${bounds.min} / max ${bounds.max}`, "schedules act within min and max");
        }
        if (p.minSize !== undefined && p.maxSize !== undefined && p.minSize > p.maxSize) issues.add(`${at}.minSize`, `minSize (${p.minSize}) is greater than maxSize (${p.maxSize})`);
        issues.num(`${at}.durationSeconds`, p.durationSeconds, { min: 0, above: true });
        break;
      }
      default:
        issues.add(`${at}.type`, `unknown policy type ${show((p as { type?: unknown }).type)}; known: target-tracking, step, threshold, schedule`);
    }
  });

  for (const dir of ["scaleUp", "scaleDown"] as const) {
    const r = spec.behavior?.[dir];
    if (!r) continue;
    const at = `behavior.${dir}`;
    issues.num(`${at}.stabilizationWindowSeconds`, r.stabilizationWindowSeconds, { min: 0, max: MAX_STABILIZATION_WINDOW_SECONDS });
    if (r.selectPolicy !== undefined && !["Max", "Min", "Disabled"].includes(r.selectPolicy)) issues.add(`${at}.selectPolicy`, `must be Max, Min or Disabled, got ${show(r.selectPolicy)}`);
    if (r.policies?.length === 0 && r.selectPolicy !== "Disabled") issues.add(`${at}.policies`, "needs at least one rate limit", "or set selectPolicy: Disabled");
    r.policies?.forEach((l, i) => {
      if (l.type !== "Pods" && l.type !== "Percent") issues.add(`${at}.policies[${i}].type`, `must be Pods or Percent, got ${show(l.type)}`);
      issues.num(`${at}.policies[${i}].value`, l.value, { min: 0, above: true, int: l.type === "Pods" });
      issues.num(`${at}.policies[${i}].periodSeconds`, l.periodSeconds, { min: 0, above: true, max: 1800 });
    });
  }
  for (const [k, v] of Object.entries(spec.delays ?? {})) issues.num(`delays.${k}`, v, k === "maxUnreadyPercent" ? { min: 0, max: 100 } : { min: 0, int: k === "maxUnreadyCount" });
  return issues.list;
}
