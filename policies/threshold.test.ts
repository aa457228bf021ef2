import { describe, expect, it } from "vitest";
import type { ThresholdPolicy } from "../config/scaling.js";
import type { GroupMetrics } from "../metrics/types.js";
import type { PolicyContext } from "./aggregate.js";
import { TEST_NOW, makeMembers } from "./testing.js";
import { recommendThreshold } from "./threshold.js";

const policy: ThresholdPolicy = { type: "threshold", metric: "cpu", above: 80, below: 20, datapointsToAlarm: 3, evaluationPeriods: 5, periodSeconds: 60 };

/** Two members whose cpu per minute (oldest first, the last minute ending now) is `perMinute`; `undefined`: no sample. */
function ctx(perMinute: (number | undefined)[], current = 2): PolicyContext {
  const members = makeMembers(current);
  const at = (i: number, k: number): number => TEST_NOW.getTime() - (perMinute.length - 1 - i) * 60_000 - k * 15_000;
  const samples = perMinute.flatMap((v, i) => (v === undefined ? [] : [0, 1, 2, 3].map((k) => ({ at: at(i, k), value: v }))));
  const metrics: GroupMetrics = { members: Object.fromEntries(members.map((m) => [m.name, { cpu: samples }])) };
  return { members, metrics, warmupSeconds: 60, now: TEST_NOW, current, index: 0 };
}

describe("threshold with M of N datapoints", () => {
  it("scales out when M of the last N datapoints are above", () => {
    const out = recommendThreshold(policy, ctx([90, 50, 95, 50, 85]));
    expect(out).toMatchObject({ recommendation: 3, code: "threshold", value: 85 });
    expect(out.reason).toBe("cpu > 80% in 3 of the last 5 1m datapoints: +1");
  });

  it("does nothing with fewer than M breaching, and says how many did", () => {
    expect(recommendThreshold(policy, ctx([90, 50, 95, 50, 50]))).toMatchObject({
      recommendation: 2,
      code: "steady",
      reason: "cpu > 80% in 2, < 20% in 0 of the last 5 1m datapoints (3 needed)",
    });
  });

  it("only looks at the newest N periods", () => {
    expect(recommendThreshold(policy, ctx([90, 90, 90, 50, 50, 50, 50, 50])).recommendation).toBe(2);
  });

  it("scales in by change when M are below and every datapoint is present", () => {
    expect(recommendThreshold({ ...policy, change: 2 }, ctx([10, 10, 50, 10, 50], 4))).toMatchObject({ recommendation: 2, reason: "cpu < 20% in 3 of the last 5 1m datapoints: -2" });
  });

  it("does not scale in when a datapoint is missing", () => {
    const out = recommendThreshold(policy, ctx([undefined, 10, 10, 10, 10], 4));
    expect(out).toMatchObject({ recommendation: 4, code: "missing_data", reason: "cpu < 20% in 4 of the last 5 1m datapoints, but 1 datapoint missing: not scaling in" });
  });

  it("prefers scale-out when both directions alarm", () => {
    expect(recommendThreshold({ ...policy, datapointsToAlarm: 2 }, ctx([90, 90, 10, 10, 50])).recommendation).toBe(3);
  });

  it("keeps the size without any data", () => {
    expect(recommendThreshold(policy, ctx([undefined, undefined]))).toMatchObject({ recommendation: 2, code: "missing_data", missing: true });
  });
});
