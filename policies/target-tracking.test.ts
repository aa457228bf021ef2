import { describe, expect, it } from "vitest";
import type { TargetTrackingPolicy } from "../config/scaling.js";
import type { GroupMetrics } from "../metrics/types.js";
import type { Member, PolicyContext } from "./aggregate.js";
import { recommendTargetTracking } from "./target-tracking.js";
import { TEST_NOW, ago, makeMembers, steadyMetrics, trace } from "./testing.js";

const cpu60: TargetTrackingPolicy = { type: "target-tracking", metric: "cpu", target: 60, windowSeconds: 300 };

function ctx(members: Member[], metrics: GroupMetrics | undefined, current = members.length): PolicyContext {
  return { members, metrics, warmupSeconds: 60, now: TEST_NOW, current, index: 0 };
}

/** Members with steady cpu values; `undefined` leaves a member without samples. */
function group(values: (number | undefined)[], over: Partial<Member>[] = []): PolicyContext {
  const members = makeMembers(values.length).map((m, i) => ({ ...m, ...over[i] }));
  const metrics: GroupMetrics = { members: {} };
  members.forEach((m, i) => {
    const v = values[i];
    if (v !== undefined) metrics.members[m.name] = { cpu: trace(v) };
  });
  return ctx(members, metrics);
}

describe("target tracking", () => {
  it("scales out to ceil(members × average / target), with the numbers in the reason", () => {
    const out = recommendTargetTracking(cpu60, group([82, 82, 82]));
    expect(out).toMatchObject({ recommendation: 5, code: "target_tracking", value: 82, missing: false });
    expect(out.reason).toBe("avg cpu 82% > target 60% over 5m");
  });

  it("scales in proportionally", () => {
    const out = recommendTargetTracking(cpu60, group([30, 30, 30, 30]));
    expect(out).toMatchObject({ recommendation: 2, code: "target_tracking", reason: "avg cpu 30% < target 60% over 5m" });
  });

  it("does nothing inside the tolerance band, including its edge, and acts just outside it", () => {
    expect(recommendTargetTracking(cpu60, group([65, 65, 65]))).toMatchObject({ recommendation: 3, code: "steady", reason: "avg cpu 65% within 10% of target 60% over 5m" });
    expect(recommendTargetTracking(cpu60, group([66, 66, 66])).recommendation).toBe(3);
    expect(recommendTargetTracking(cpu60, group([54, 54, 54])).recommendation).toBe(3);
    expect(recommendTargetTracking(cpu60, group([67, 67, 67])).recommendation).toBe(4);
    expect(recommendTargetTracking({ ...cpu60, tolerance: 0.2 }, group([70, 70, 70])).recommendation).toBe(3);
  });

  it("does not round a product that is exactly whole up by floating-point noise", () => {
    expect(recommendTargetTracking(cpu60, group([72, 72, 72, 72, 72])).recommendation).toBe(6);
  });

  it("averages per member first, over the window only", () => {
    const members = makeMembers(2);
    const metrics: GroupMetrics = {
      members: {
        "web-1": { cpu: [...trace(100, new Date(TEST_NOW.getTime() - 400_000), 300), ...trace(90, TEST_NOW, 300)] },
        "web-2": { cpu: trace(90, TEST_NOW, 60, 5) },
      },
    };
    expect(recommendTargetTracking(cpu60, ctx(members, metrics))).toMatchObject({ value: 90, recommendation: 3 });
  });

  it("leaves members still warming up out of the average", () => {
    const members = [...makeMembers(3), { name: "new", createdAt: ago(30), ready: true }];
    const metrics = steadyMetrics(members, "cpu", [60, 60, 60, 100]);
    expect(recommendTargetTracking(cpu60, ctx(members, metrics))).toMatchObject({ value: 60, recommendation: 4, code: "steady" });
  });

  it("ignores the samples a member sent while it warmed up", () => {
    const members = [{ name: "web-1", createdAt: ago(90), ready: true }];
    const metrics: GroupMetrics = { members: { "web-1": { cpu: [{ at: TEST_NOW.getTime() - 80_000, value: 100 }, { at: TEST_NOW.getTime() - 10_000, value: 60 }] } } };
    expect(recommendTargetTracking(cpu60, ctx(members, metrics)).value).toBe(60);
  });

  it("does not scale out when members warming up, counted at 0%, bring the average under the target", () => {
    const out = recommendTargetTracking(cpu60, group([70, 70, 70], [{}, {}, { createdAt: ago(20) }]));
    expect(out).toMatchObject({ recommendation: 3, code: "steady" });
    expect(out.reason).toBe("avg cpu 70% > target 60% over 5m, but with 1 member without data counted at 0 it is 46.7%: keeping the size");
  });

  it("counts members without data at 0% when scaling out", () => {
    const out = recommendTargetTracking(cpu60, group([120, 120, undefined]));
    expect(out).toMatchObject({ recommendation: 4, code: "target_tracking", missing: true });
    expect(out.reason).toBe("avg cpu 120% > target 60% over 5m (1 member without data counted at 0: 80%)");
  });

  it("counts a member not ready at the target when scaling in, instead of dropping it (HPA would go to 2)", () => {
    const out = recommendTargetTracking(cpu60, group([30, 30, 30, 0], [{}, {}, {}, { ready: false }]));
    expect(out).toMatchObject({ recommendation: 3, code: "target_tracking", missing: false });
  });

  it("keeps the size when a member without data, counted at the target, lands the average in the band", () => {
    expect(recommendTargetTracking(cpu60, group([50, undefined, undefined, undefined]))).toMatchObject({ recommendation: 4, code: "steady" });
  });

  it("never scales in while a member's data is missing", () => {
    const out = recommendTargetTracking(cpu60, group([30, 30, 30, undefined]));
    expect(out).toMatchObject({ recommendation: 4, code: "missing_data", missing: true });
    expect(out.reason).toBe("avg cpu 30% < target 60% over 5m, but cpu is missing for web-4: not scaling in");
  });

  it("keeps the size when no member has data, or the metrics source gave nothing", () => {
    expect(recommendTargetTracking(cpu60, group([undefined, undefined]))).toMatchObject({ recommendation: 2, code: "missing_data", reason: "no cpu samples over 5m: keeping the size" });
    expect(recommendTargetTracking(cpu60, ctx(makeMembers(2), undefined))).toMatchObject({ recommendation: 2, code: "missing_data", missing: true });
  });

  it("with disableScaleIn only ever scales out", () => {
    const p = { ...cpu60, disableScaleIn: true };
    expect(recommendTargetTracking(p, group([30, 30, 30, 30]))).toMatchObject({ recommendation: 4, code: "steady" });
    expect(recommendTargetTracking(p, group([90, 90])).recommendation).toBe(3);
  });

  it("formats byte rates with units", () => {
    const members = makeMembers(2);
    const out = recommendTargetTracking({ type: "target-tracking", metric: "net_rx_bytes", target: 10e6 }, ctx(members, steadyMetrics(members, "net_rx_bytes", 25e6)));
    expect(out).toMatchObject({ recommendation: 5, reason: "avg net_rx_bytes 25 MB/s > target 10 MB/s over 1m" });
  });
});
