import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { MetricName, Policy, ScalingSpec, Step } from "../config/scaling.js";
import type { GroupMetrics } from "../metrics/types.js";
import { mulberry32 as seededRandom } from "../planner/random.js";
import type { History } from "../state/types.js";
import type { Member } from "./aggregate.js";
import { decideGroup, type DecideInput } from "./decide-group.js";
import { TEST_NOW, ago, simulate } from "./testing.js";

const metric = fc.constantFrom<MetricName>("cpu", "memory");

const targetTracking = fc.record({
  type: fc.constant("target-tracking" as const),
  metric,
  target: fc.integer({ min: 5, max: 95 }),
  tolerance: fc.constantFrom(0, 0.05, 0.1, 0.3),
  disableScaleIn: fc.boolean(),
  windowSeconds: fc.constantFrom(15, 60, 300),
});

// Contiguous steps: sorted breakpoints between an unbounded first and last step.
const step = fc
  .record({
    metric,
    threshold: fc.integer({ min: 0, max: 100 }),
    breaks: fc.uniqueArray(fc.integer({ min: -50, max: 50 }), { maxLength: 4 }),
    adjustments: fc.array(fc.integer({ min: -4, max: 6 }), { minLength: 5, maxLength: 5 }),
    adjustmentType: fc.constantFrom("ChangeInCapacity" as const, "ExactCapacity" as const, "PercentChangeInCapacity" as const),
    minAdjustmentMagnitude: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
  })
  .map(({ breaks, adjustments, adjustmentType, minAdjustmentMagnitude, ...rest }): Policy => {
    const b = [...breaks].sort((x, y) => x - y);
    const steps: Step[] = [...b, undefined].map((upper, i) => ({
      ...(i > 0 ? { lower: b[i - 1] } : {}),
      ...(upper === undefined ? {} : { upper }),
      adjustment: adjustmentType === "ExactCapacity" ? Math.abs(adjustments[i] ?? 0) * 2 : (adjustments[i] ?? 0),
    }));
    return { type: "step", ...rest, steps, adjustmentType, ...(adjustmentType === "PercentChangeInCapacity" && minAdjustmentMagnitude ? { minAdjustmentMagnitude } : {}) };
  });

const threshold = fc.record({
  type: fc.constant("threshold" as const),
  metric,
  above: fc.integer({ min: 50, max: 100 }),
  below: fc.integer({ min: 0, max: 49 }),
  datapointsToAlarm: fc.integer({ min: 1, max: 3 }),
  evaluationPeriods: fc.constant(3),
  periodSeconds: fc.constantFrom(15, 60),
  change: fc.integer({ min: 1, max: 3 }),
});

const schedule = fc.record(
  {
    type: fc.constant("schedule" as const),
    cron: fc.constantFrom("0 * * * *", "*/5 * * * *", "0 8 * * 1-5", "30 11 * * *"),
    timezone: fc.constantFrom("UTC", "Europe/Berlin", "America/New_York"),
    minSize: fc.integer({ min: 0, max: 15 }),
    maxSize: fc.integer({ min: 0, max: 15 }),
    desired: fc.integer({ min: 0, max: 15 }),
    durationSeconds: fc.constantFrom(300, 3600),
  },
  { requiredKeys: ["type", "cron"] },
);

const metricPolicy = fc.oneof(targetTracking, step, threshold);

const scalingSpec = (policies: fc.Arbitrary<Policy[]>): fc.Arbitrary<ScalingSpec> =>
  fc.record(
    {
      mode: fc.constantFrom("on" as const, "on" as const, "off" as const, "scale-out-only" as const),
      warmupSeconds: fc.constantFrom(0, 60, 300),
      policies,
      behavior: fc.record(
        {
          scaleUp: fc.record({ stabilizationWindowSeconds: fc.constantFrom(0, 60), selectPolicy: fc.constantFrom("Max" as const, "Min" as const, "Disabled" as const) }, { requiredKeys: [] }),
          scaleDown: fc.record({ stabilizationWindowSeconds: fc.constantFrom(0, 300), selectPolicy: fc.constantFrom("Max" as const, "Min" as const) }, { requiredKeys: [] }),
        },
        { requiredKeys: [] },
      ),
      delays: fc.record({ scaleDownUnneededSeconds: fc.constantFrom(0, 600), scaleUpCooldownSeconds: fc.constantFrom(0, 300), delayAfterAddSeconds: fc.constantFrom(0, 600) }, { requiredKeys: [] }),
    },
    { requiredKeys: ["policies"] },
  );

const members = fc.array(fc.record({ age: fc.integer({ min: 0, max: 5000 }), ready: fc.integer({ min: 0, max: 5 }).map((n) => n > 0) }), { maxLength: 12 }).map((list) =>
  list.map((m, i): Member => ({ name: `m${i}`, createdAt: ago(m.age), ready: m.ready })),
);

const samples = fc.array(fc.option(fc.double({ min: 0, max: 200, noNaN: true }), { nil: undefined, freq: 5 }), { maxLength: 20 });

const history = fc.record({
  recommendations: fc.array(fc.record({ age: fc.integer({ min: 0, max: 4000 }), desired: fc.integer({ min: 0, max: 20 }) }), { maxLength: 30 }),
  events: fc.array(
    fc.oneof(
      fc.record({ age: fc.integer({ min: 0, max: 4000 }), kind: fc.constantFrom("add" as const, "delete" as const), count: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ age: fc.integer({ min: 0, max: 4000 }), kind: fc.constant("error" as const), message: fc.constant("failed") }),
    ),
    { maxLength: 6 },
  ),
}).map(({ recommendations, events }): History => ({
  recommendations: [...recommendations].sort((a, b) => b.age - a.age).map((r) => ({ at: ago(r.age), desired: r.desired })),
  events: [...events].sort((a, b) => b.age - a.age).map(({ age, ...e }) => ({ ...e, at: ago(age) })),
}));

/** A random group and everything around it. */
const world = (policies: fc.Arbitrary<Policy[]>) =>
  fc
    .record({
      min: fc.integer({ min: 0, max: 5 }),
      span: fc.integer({ min: 0, max: 10 }),
      members,
      extra: fc.integer({ min: -2, max: 3 }),
      cpu: fc.array(samples, { minLength: 12, maxLength: 12 }),
      memory: fc.array(samples, { minLength: 12, maxLength: 12 }),
      scaling: scalingSpec(policies),
      history,
      minutes: fc.integer({ min: 0, max: 7 * 24 * 60 }),
    })
    .map((w): DecideInput => {
      const now = new Date(TEST_NOW.getTime() + w.minutes * 60_000);
      const series = (values: (number | undefined)[]) =>
        values.flatMap((value, k) => (value === undefined ? [] : [{ at: now.getTime() - (values.length - 1 - k) * 15_000, value }]));
      const metrics: GroupMetrics = { members: Object.fromEntries(w.members.map((m, i) => [m.name, { cpu: series(w.cpu[i] ?? []), memory: series(w.memory[i] ?? []) }])) };
      const current = Math.max(0, w.members.length + w.extra);
      return { group: { name: "g", min: w.min, max: w.min + w.span, current, members: w.members }, scaling: w.scaling, metrics, history: w.history, now };
    });

const anyPolicies = fc.array(fc.oneof(metricPolicy, schedule), { maxLength: 4 });

describe("decideGroup properties", () => {
  it("never decides a size outside [min, max], and always says why", () => {
    fc.assert(
      fc.property(world(anyPolicies), (input) => {
        const d = decideGroup(input);
        expect(d.desired).toBeGreaterThanOrEqual(input.group.min);
        expect(d.desired).toBeLessThanOrEqual(input.group.max);
        expect(Number.isInteger(d.desired)).toBe(true);
        expect(d.reason.length).toBeGreaterThan(0);
      }),
      { numRuns: 300 },
    );
  });

  it("never lowers the size when data is missing", () => {
    const withMissing = fc.tuple(world(fc.array(metricPolicy, { minLength: 1, maxLength: 3 })), fc.constantFrom("source down", "metric gone", "member silent"), fc.nat());
    fc.assert(
      fc.property(withMissing, ([input, how, pick]) => {
        const { members, current } = input.group;
        const warmup = input.scaling.warmupSeconds ?? 60;
        const measured = members.filter((m) => m.ready && input.now.getTime() - Date.parse(m.createdAt) >= warmup * 1000);
        const metricPolicies = (input.scaling.policies ?? []).filter((p) => p.type !== "schedule");
        let metrics = input.metrics;
        if (how === "source down") metrics = undefined;
        else if (how === "metric gone") {
          const gone = metricPolicies[pick % metricPolicies.length]?.metric ?? "cpu";
          metrics = { members: Object.fromEntries(Object.entries(metrics?.members ?? {}).map(([n, s]) => [n, { ...s, [gone]: [] }])) };
        } else {
          const silent = measured[pick % Math.max(1, measured.length)];
          if (!silent) return;
          metrics = { members: { ...metrics?.members, [silent.name]: {} } };
        }
        const d = decideGroup({ ...input, metrics });
        expect(d.desired).toBeGreaterThanOrEqual(Math.min(current, d.details?.max ?? input.group.max));
      }),
      { numRuns: 300 },
    );
  });

  it("never changes the size while the metric stays at the target", () => {
    const arb = fc.record({ tt: targetTracking, min: fc.integer({ min: 0, max: 3 }), span: fc.integer({ min: 0, max: 8 }), offset: fc.nat(), spec: scalingSpec(fc.constant([])) });
    fc.assert(
      fc.property(arb, ({ tt, min, span, offset, spec }) => {
        const start = min + (offset % (span + 1));
        const scaling = { ...spec, mode: "on" as const, policies: [tt] };
        const run = simulate({ scaling, metric: tt.metric, min, max: min + span, start, steps: 40, value: () => tt.target });
        expect(run.sizes.every((s) => s === start)).toBe(true);
      }),
      { numRuns: 60 },
    );
  });

  it("changes the size at most once on a noisy but flat trace (200 steps of 15 s, noise within half the tolerance)", () => {
    const arb = fc.record({
      target: fc.integer({ min: 10, max: 90 }),
      tolerance: fc.constantFrom(0.05, 0.1, 0.2),
      metric,
      min: fc.integer({ min: 0, max: 3 }),
      max: fc.integer({ min: 3, max: 12 }),
      start: fc.integer({ min: 0, max: 14 }),
      seed: fc.integer(),
      warmupSeconds: fc.constantFrom(0, 60, 300),
    });
    fc.assert(
      fc.property(arb, ({ target, tolerance, metric, min, max, start, seed, warmupSeconds }) => {
        const random = seededRandom(seed);
        const scaling: ScalingSpec = { warmupSeconds, policies: [{ type: "target-tracking", metric, target, tolerance, windowSeconds: 60 }] };
        const value = () => target * (1 + (random() - 0.5) * tolerance);
        const run = simulate({ scaling, metric, min, max, start, steps: 200, value });
        const changes = run.sizes.filter((s, i) => s !== (i === 0 ? start : run.sizes[i - 1])).length;
        expect(changes).toBeLessThanOrEqual(1);
      }),
      { numRuns: 40 },
    );
  });
});
