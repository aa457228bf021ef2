import { describe, expect, it } from "vitest";
import type { StepScalingPolicy } from "../config/scaling.js";
import type { PolicyContext } from "./aggregate.js";
import { findStep, percentChange, recommendStep } from "./step-scaling.js";
import { TEST_NOW, makeMembers, steadyMetrics } from "./testing.js";

function ctx(cpu: number, current = 3, missing = 0): PolicyContext {
  const members = makeMembers(current);
  const metrics = steadyMetrics(members.slice(0, current - missing), "cpu", cpu);
  return { members, metrics, warmupSeconds: 60, now: TEST_NOW, current, index: 0 };
}

// The AWS documentation's example: alarm threshold 50, scale out by steps above it and in by steps below.
const aws: StepScalingPolicy = {
  type: "step",
  metric: "cpu",
  threshold: 50,
  steps: [
    { upper: -20, adjustment: -2 },
    { lower: -20, upper: -10, adjustment: -1 },
    { lower: -10, upper: 10, adjustment: 0 },
    { lower: 10, upper: 20, adjustment: 1 },
    { lower: 20, adjustment: 2 },
  ],
};

describe("step scaling", () => {
  it("includes the lower bound above the threshold and the upper bound below it", () => {
    expect(findStep(aws.steps, 10)).toBe(aws.steps[3]);
    expect(findStep(aws.steps, 9.99)).toBe(aws.steps[2]);
    expect(findStep(aws.steps, 0)).toBe(aws.steps[2]);
    expect(findStep(aws.steps, -10)).toBe(aws.steps[1]);
    expect(findStep(aws.steps, -9.99)).toBe(aws.steps[2]);
    expect(findStep(aws.steps, -20)).toBe(aws.steps[0]);
    expect(findStep(aws.steps, 1000)).toBe(aws.steps[4]);
  });

  it("adds the step's adjustment, with the numbers in the reason", () => {
    const out = recommendStep(aws, ctx(75));
    expect(out).toMatchObject({ recommendation: 5, code: "step", value: 75 });
    expect(out.reason).toBe("avg cpu 75% over 1m, 25% above threshold 50%: step [20, ∞) +2");
    expect(recommendStep(aws, ctx(35))).toMatchObject({ recommendation: 2, reason: "avg cpu 35% over 1m, 15% below threshold 50%: step (-20, -10] -1" });
    expect(recommendStep(aws, ctx(55))).toMatchObject({ recommendation: 3, code: "steady" });
  });

  it("does nothing when the value is in no step", () => {
    const out = recommendStep({ type: "step", metric: "cpu", threshold: 70, steps: [{ lower: 0, adjustment: 1 }] }, ctx(65));
    expect(out).toMatchObject({ recommendation: 3, code: "steady", reason: "avg cpu 65% over 1m is in no step (threshold 70%)" });
  });

  it("rounds percent changes toward zero beyond ±1 and to at least ±1", () => {
    expect(percentChange(100, 12.7)).toBe(12);
    expect(percentChange(3, 10)).toBe(1);
    expect(percentChange(3, -10)).toBe(-1);
    expect(percentChange(15, -44.5)).toBe(-6);
    expect(percentChange(10, 29)).toBe(2);
    expect(percentChange(100, 29)).toBe(29);
    expect(percentChange(4, 0)).toBe(0);
  });

  it("changes at least minAdjustmentMagnitude VMs with PercentChangeInCapacity", () => {
    expect(percentChange(4, 10, 2)).toBe(2);
    expect(percentChange(40, 10, 2)).toBe(4);
    const p: StepScalingPolicy = { type: "step", metric: "cpu", threshold: 80, adjustmentType: "PercentChangeInCapacity", minAdjustmentMagnitude: 2, steps: [{ lower: 0, adjustment: 10 }] };
    expect(recommendStep(p, ctx(90, 4))).toMatchObject({ recommendation: 6, reason: "avg cpu 90% over 1m, 10% above threshold 80%: step [0, ∞) +10% of 4 = +2" });
  });

  it("sets the size with ExactCapacity", () => {
    const p: StepScalingPolicy = { type: "step", metric: "cpu", adjustmentType: "ExactCapacity", steps: [{ upper: 50, adjustment: 2 }, { lower: 50, adjustment: 8 }] };
    expect(recommendStep(p, ctx(70))).toMatchObject({ recommendation: 8, reason: "avg cpu 70% over 1m, 70% above threshold 0%: step [50, ∞) sets 8" });
    expect(recommendStep(p, ctx(20, 5)).recommendation).toBe(2);
  });

  it("never goes below zero", () => {
    const p: StepScalingPolicy = { type: "step", metric: "cpu", steps: [{ adjustment: -10 }] };
    expect(recommendStep(p, ctx(1, 3)).recommendation).toBe(0);
  });

  it("scales out but never in while a member's data is missing", () => {
    expect(recommendStep(aws, ctx(75, 3, 1))).toMatchObject({ recommendation: 5, missing: true });
    expect(recommendStep(aws, ctx(20, 3, 1))).toMatchObject({ recommendation: 3, code: "missing_data", missing: true });
    expect(recommendStep(aws, ctx(20, 3, 3))).toMatchObject({ recommendation: 3, code: "missing_data", reason: "no cpu samples over 1m: keeping the size" });
  });
});
