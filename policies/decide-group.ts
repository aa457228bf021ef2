import { resolveScaling, type Policy, type Scaling, type ScalingSpec, type ScheduledPolicy } from "../config/scaling.js";
import type { GroupMetrics } from "../metrics/types.js";
import type { History } from "../state/types.js";
import type { Member, PolicyContext } from "./aggregate.js";
import { limitRate, stabilize } from "./behavior.js";
import type { Decision, DecisionCode, DecisionSource, PolicyOutcome } from "./decision.js";
import { evaluateSchedules } from "./schedule.js";
import { recommendStep } from "./step-scaling.js";
import { recommendTargetTracking } from "./target-tracking.js";
import { recommendThreshold } from "./threshold.js";

/** A group as the engine sees it: its bounds, its size now, and its members' readiness. */
export interface GroupView {
  name: string;
  min: number;
  max: number;
  /** Members counted toward the size now (the planner's "present" instances). */
  current: number;
  members: Member[];
}

/** Everything `decideGroup` needs; the clock is data. */
export interface DecideInput {
  group: GroupView;
  scaling: ScalingSpec;
  /** `undefined` when the metrics source failed: nothing scales in. */
  metrics: GroupMetrics | undefined;
  history: History;
  now: Date;
}

/** How far back a group's history must reach for its windows, rate-limit periods and delays. */
export function retainSeconds(s: Scaling): number {
  const { scaleUp, scaleDown } = s.behavior;
  const d = s.delays;
  return Math.max(
    scaleUp.stabilizationWindowSeconds,
    scaleDown.stabilizationWindowSeconds,
    ...[...scaleUp.policies, ...scaleDown.policies].map((r) => r.periodSeconds),
    d.scaleDownUnneededSeconds,
    d.scaleUpCooldownSeconds,
    d.delayAfterAddSeconds,
    d.delayAfterDeleteSeconds,
    d.delayAfterErrorSeconds,
  );
}

function recommend(p: Exclude<Policy, { type: "schedule" }>, ctx: PolicyContext): PolicyOutcome {
  if (p.type === "target-tracking") return recommendTargetTracking(p, ctx);
  if (p.type === "step") return recommendStep(p, ctx);
  return recommendThreshold(p, ctx);
}

const secondsSince = (at: string | number, now: Date): number => (now.getTime() - (typeof at === "number" ? at : Date.parse(at))) / 1000;
const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));

/** Why the size may not move now (health, error backoff, cooldowns, unneeded time), or undefined when it may. */
function blocked(input: DecideInput, s: Scaling, wanted: number): { code: DecisionCode; reason: string } | undefined {
  const { group, history, now } = input;
  const d = s.delays;
  const age = (m: Member): number => secondsSince(m.createdAt, now);
  const unready = group.members.filter((m) => !m.ready && age(m) >= d.maxProvisionSeconds);
  const total = Math.max(group.members.length, 1);
  if (unready.length > d.maxUnreadyCount && (unready.length / total) * 100 > d.maxUnreadyPercent) {
    const pct = Math.round((unready.length / total) * 100);
    return { code: "too_many_unready", reason: `too many unready: ${unready.length} of ${group.members.length} members (${pct}% > ${d.maxUnreadyPercent}% and ${unready.length} > ${d.maxUnreadyCount}); wanted ${wanted}` };
  }
  const lastAt = (kind: string): number | undefined =>
    history.events.reduce<number | undefined>((t, e) => (e.kind === kind ? Math.max(t ?? -Infinity, Date.parse(e.at)) : t), undefined);
  const left = (at: number | undefined, delay: number): number => (at === undefined ? 0 : Math.ceil(delay - secondsSince(at, now)));

  // A member that never became ready failed to provision: an error at the moment it ran out of time.
  const stuck = unready.map((m) => Date.parse(m.createdAt) + d.maxProvisionSeconds * 1000).filter((t) => t <= now.getTime());
  const lastError = Math.max(lastAt("error") ?? -Infinity, ...stuck);
  const errorLeft = left(Number.isFinite(lastError) ? lastError : undefined, d.delayAfterErrorSeconds);
  if (errorLeft > 0) {
    const event = [...history.events].reverse().find((e) => e.kind === "error" && Date.parse(e.at) === lastError);
    const what = event?.kind === "error" ? `: ${event.message}` : " (a VM did not become ready in time)";
    return { code: "error_backoff", reason: `error backoff: ${errorLeft}s left after the last error${what}; wanted ${wanted}` };
  }
  if (wanted > group.current) {
    const l = left(lastAt("add"), d.scaleUpCooldownSeconds);
    return l > 0 ? { code: "cooldown", reason: `cooldown: ${l}s left after the last scale-out; wanted ${wanted}` } : undefined;
  }
  const afterAdd = left(lastAt("add"), d.delayAfterAddSeconds);
  if (afterAdd > 0) return { code: "cooldown", reason: `cooldown: ${afterAdd}s left after the last scale-out; wanted ${wanted}` };
  const afterDelete = left(lastAt("delete"), d.delayAfterDeleteSeconds);
  if (afterDelete > 0) return { code: "cooldown", reason: `cooldown: ${afterDelete}s left after the last scale-in; wanted ${wanted}` };
  // Unneeded since the oldest of the unbroken run of recommendations below the current size (up to now).
  let since = now.getTime();
  for (let i = history.recommendations.length - 1; i >= 0; i--) {
    const r = history.recommendations[i];
    if (!r || r.desired >= group.current) break;
    since = Date.parse(r.at);
  }
  const unneeded = Math.floor(secondsSince(since, now));
  if (unneeded < d.scaleDownUnneededSeconds) {
    return { code: "unneeded_time", reason: `scale-in to ${wanted} waits: below ${group.current} for ${unneeded}s of the required ${d.scaleDownUnneededSeconds}s` };
  }
  return undefined;
}

/**
 * Decides one group's desired size (policies/README.md, "Pipeline"): one recommendation per policy, their maximum,
 * stabilisation, rate limits, delays and health limits, the mode, then min/max and the schedules' floors, which
 * always hold. Missing data never scales in. Pure: the clock and the history come in, and nothing is recorded —
 * pass the decision to `recordDecision` once it has been applied.
 */
export function decideGroup(input: DecideInput): Decision {
  const { group, now, history } = input;
  const s = resolveScaling(input.scaling);
  const current = group.current;
  const ctx = { members: group.members, metrics: input.metrics, warmupSeconds: s.warmupSeconds, now, current };
  const schedules = evaluateSchedules(s.policies, now);
  const outcomes = s.policies.map((p, index) =>
    p.type === "schedule" ? (schedules.find((o) => o.index === index) as PolicyOutcome) : recommend(p, { ...ctx, index }),
  );

  // Take the maximum; on a tie, the outcome that says the most (a scaling or missing-data code before "steady").
  const voting = outcomes.filter((o) => o.recommendation !== undefined);
  const recommendation = voting.length > 0 ? Math.max(...voting.map((o) => o.recommendation ?? 0)) : current;
  const top = voting.filter((o) => o.recommendation === recommendation);
  const deciding = top.find((o) => o.code !== "steady") ?? top[0];
  let code: DecisionCode = deciding?.code ?? (s.policies.length === 0 ? "no_policies" : "steady");
  let reason = deciding?.reason ?? (s.policies.length === 0 ? "no scaling policies: keeping the size" : "no policy recommends a size: keeping it");

  const stabilized = stabilize(current, recommendation, history, s.behavior, now);
  if (stabilized.reason) [code, reason] = ["stabilized", stabilized.reason];
  const limited = limitRate(current, stabilized.value, history, s.behavior, now);
  if (limited.reason) [code, reason] = ["rate_limited", limited.reason];
  let x = limited.value;
  if (x !== current) {
    const why = blocked(input, s, x);
    if (why) [x, code, reason] = [current, why.code, why.reason];
  }
  if (s.mode === "scale-out-only" && x < current) [x, code, reason] = [current, "scale_out_only", `scale-out-only mode: not scaling in to ${x} (${reason})`];

  // Bounds: the group's min/max always hold; schedules in effect raise the floor and set the ceiling within them.
  const active = schedules.filter((o) => o.minSize !== undefined || o.maxSize !== undefined);
  const schedMin = Math.max(...active.map((o) => o.minSize ?? -Infinity));
  const schedMax = Math.max(...active.map((o) => o.maxSize ?? -Infinity));
  const lo = clamp(Number.isFinite(schedMin) ? schedMin : group.min, group.min, group.max);
  const hi = Math.max(lo, clamp(Number.isFinite(schedMax) ? schedMax : group.max, group.min, group.max));
  const byLo = active.find((o) => o.minSize === lo && lo > group.min);
  const byHi = active.find((o) => o.maxSize === hi && hi < group.max);
  const from = (o: PolicyOutcome): string => ` from schedule "${(s.policies[o.index] as ScheduledPolicy).cron}" (policies[${o.index}])`;

  let desired: number;
  if (s.mode === "off") {
    desired = clamp(current, group.min, group.max);
    code = "mode_off";
    reason = desired === current ? `mode off: keeping ${current}` : `mode off: ${desired < current ? "max" : "min"} is ${desired}`;
  } else {
    desired = clamp(x, lo, hi);
    const wanted = x === current ? "" : ` (wanted ${x}: ${reason})`;
    if (desired > x) [code, reason] = [byLo ? "schedule" : "at_min", `min ${lo}${byLo ? from(byLo) : ""}${wanted}`];
    if (desired < x) [code, reason] = [byHi ? "schedule" : "at_max", `max ${hi}${byHi ? from(byHi) : ""}${wanted}`];
  }

  return {
    group: group.name,
    desired,
    code,
    reason,
    details: {
      current,
      recommendation,
      stabilized: stabilized.value,
      limited: limited.value,
      min: lo,
      max: hi,
      policies: outcomes,
      retainSeconds: retainSeconds(s),
    },
  };
}

/**
 * The policy engine as a decision source, for one planning run: it owns the groups that have `scaling`, and decides
 * each from the metrics gathered for it (`error`: the metrics source failed, so nothing scales in), its history and
 * the run's clock.
 */
export function policySource(input: {
  metrics: ReadonlyMap<string, GroupMetrics | { error: string }>;
  history: (group: string) => History;
  now: Date;
}): DecisionSource {
  return {
    name: "policies",
    owns: (group) => group.scaling !== undefined,
    decide: (group, members) => {
      const m = input.metrics.get(group.name);
      return decideGroup({
        group: { name: group.name, min: group.min, max: group.max, current: members.length, members },
        scaling: group.scaling!,
        // No entry: the policies read no metric (schedules only). An error: the source failed, so nothing scales in.
        metrics: m === undefined ? { members: {} } : "error" in m ? undefined : m,
        history: input.history(group.name),
        now: input.now,
      });
    },
  };
}
