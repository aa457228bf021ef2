import type { MetricName } from "../config/scaling.js";
import type { GroupMetrics, Sample } from "../metrics/types.js";

/** A member (instance) of a group as the engine sees it. */
export interface Member {
  name: string;
  /** ISO 8601. Warm-up counts from here. */
  createdAt: string;
  /** Running and reachable (later: its guest has checked in). */
  ready: boolean;
}

/** Inputs every metric policy shares. */
export interface MetricContext {
  members: Member[];
  metrics: GroupMetrics | undefined;
  warmupSeconds: number;
  now: Date;
}

/** What every policy gets: the metric inputs, the group's current size and the policy's index (for outcomes). */
export type PolicyContext = MetricContext & { current: number; index: number };

/** `ceil` that forgives floating-point noise: 1.2 × 5 is 6, not 7. */
export const ceilSafe = (x: number): number => Math.ceil(x - 1e-9);

/** One metric over one window, member by member. */
export interface MetricAggregate {
  /** Mean of each measured member's usable samples (members ready, warmed up, with samples). */
  values: number[];
  /** Ready, warmed-up members without a usable sample in the window. */
  missing: string[];
  /** Members not ready or still warming up: left out of the average. */
  setAside: string[];
  /** Mean of `values`; missing when there are none. */
  average?: number;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Why a policy has no value: `no cpu samples over 1m`, or that the metrics source gave nothing. */
export function noDataReason(ctx: MetricContext, metric: MetricName, over: string): string {
  if (ctx.metrics === undefined) return "no metrics (the metrics source gave none): keeping the size";
  if (ctx.members.length > 0 && ctx.members.every((m) => !isMeasured(m, ctx.warmupSeconds, ctx.now))) return "no member is ready and warmed up: keeping the size";
  return `no ${metric} samples ${over}: keeping the size`;
}

/** Samples of a member that may be used: those taken after its warm-up, in `(fromMs, toMs]`. */
function usable(ctx: MetricContext, member: Member, metric: MetricName, fromMs: number, toMs: number): Sample[] {
  const warmedAt = Date.parse(member.createdAt) + ctx.warmupSeconds * 1000;
  const samples = ctx.metrics?.members[member.name]?.[metric] ?? [];
  return samples.filter((s) => s.at > fromMs && s.at <= toMs && s.at >= warmedAt && Number.isFinite(s.value));
}

/** True when a member counts for the metrics now: ready and past its warm-up. */
export function isMeasured(member: Member, warmupSeconds: number, now: Date): boolean {
  return member.ready && now.getTime() >= Date.parse(member.createdAt) + warmupSeconds * 1000;
}

/** Averages a metric over the last `windowSeconds`: per member first, then over the measured members. */
export function aggregateMetric(ctx: MetricContext, metric: MetricName, windowSeconds: number): MetricAggregate {
  const to = ctx.now.getTime();
  const out: MetricAggregate = { values: [], missing: [], setAside: [] };
  for (const m of ctx.members) {
    if (!isMeasured(m, ctx.warmupSeconds, ctx.now)) {
      out.setAside.push(m.name);
      continue;
    }
    const samples = usable(ctx, m, metric, to - windowSeconds * 1000, to);
    if (samples.length === 0) out.missing.push(m.name);
    else out.values.push(mean(samples.map((s) => s.value)));
  }
  if (out.values.length > 0) out.average = mean(out.values);
  return out;
}

/**
 * The group average per period for the newest `count` periods of `periodSeconds`, oldest first (a period ending
 * now is the last); `undefined` for a period without samples. Members not ready are left out, and so are samples
 * taken while a member warmed up. `missing` lists measured members without any sample in the whole range.
 */
export function datapoints(
  ctx: MetricContext,
  metric: MetricName,
  periodSeconds: number,
  count: number,
): { points: (number | undefined)[]; missing: string[] } {
  const to = ctx.now.getTime();
  const period = periodSeconds * 1000;
  const perMember = ctx.members.filter((m) => m.ready).map((m) => ({ m, samples: usable(ctx, m, metric, to - count * period, to) }));
  const points = Array.from({ length: count }, (_, i) => {
    const end = to - (count - 1 - i) * period;
    const means = perMember
      .map(({ samples }) => samples.filter((s) => s.at > end - period && s.at <= end))
      .filter((s) => s.length > 0)
      .map((s) => mean(s.map((x) => x.value)));
    return means.length > 0 ? mean(means) : undefined;
  });
  const missing = perMember.filter(({ m, samples }) => samples.length === 0 && isMeasured(m, ctx.warmupSeconds, ctx.now)).map(({ m }) => m.name);
  return { points, missing };
}
