import { describe, expect, it } from "vitest";
import type { Policy, ScalingSpec } from "./scaling.js";
import { validateScaling } from "./validate-scaling.js";

const paths = (spec: ScalingSpec, bounds?: { min: number; max: number }) => validateScaling(spec, bounds).map((i) => i.path);

describe("validateScaling", () => {
  it("accepts a configuration using every kind of policy", () => {
    const spec: ScalingSpec = {
      mode: "on",
      warmupSeconds: 120,
      policies: [
        { type: "target-tracking", metric: "cpu", target: 60, tolerance: 0.1 },
        { type: "step", metric: "memory", threshold: 70, steps: [{ upper: -20, adjustment: -1 }, { lower: -20, upper: 10, adjustment: 0 }, { lower: 10, adjustment: 2 }] },
        { type: "threshold", metric: "net_rx_bytes", above: 50e6, below: 1e6, datapointsToAlarm: 3, evaluationPeriods: 5 },
        { type: "schedule", cron: "0 8 * * 1-5", timezone: "Europe/Berlin", minSize: 3, durationSeconds: 36000 },
      ],
      behavior: { scaleDown: { stabilizationWindowSeconds: 600, policies: [{ type: "Pods", value: 1, periodSeconds: 60 }] } },
      delays: { maxUnreadyPercent: 30 },
    };
    expect(validateScaling(spec, { min: 1, max: 10 })).toEqual([]);
  });

  it("names an unknown metric by its path and suggests the closest", () => {
    const spec = { policies: [{ type: "target-tracking", metric: "cpu", target: 60 }, { type: "target-tracking", metric: "cpuu", target: 60 }] } as ScalingSpec;
    expect(validateScaling(spec)).toEqual([
      { path: "policies[1].metric", message: 'unknown metric "cpuu"; known: cpu, memory, disk_read_bytes, disk_write_bytes, net_rx_bytes, net_tx_bytes', fix: "did you mean cpu?" },
    ]);
  });

  it("finds overlapping and gapped step bounds", () => {
    const step = (steps: { lower?: number; upper?: number; adjustment: number }[]): ScalingSpec => ({ policies: [{ type: "step", metric: "cpu", threshold: 50, steps }] });
    expect(validateScaling(step([{ upper: 10, adjustment: -1 }, { lower: 5, adjustment: 1 }]))).toEqual([
      { path: "policies[0].steps[1]", message: "step [5, ∞) overlaps steps[0] [-∞, 10)", fix: "make each step's lower the previous step's upper" },
    ]);
    expect(validateScaling(step([{ upper: 0, adjustment: -1 }, { lower: 10, adjustment: 1 }]))).toEqual([
      { path: "policies[0].steps[1].lower", message: "gap between steps[0] [-∞, 0) and steps[1] [10, ∞)", fix: "set lower to 0" },
    ]);
    expect(paths(step([{ lower: 0, upper: 10, adjustment: 1 }]))).toEqual(["policies[0].steps[0].upper"]);
    expect(paths(step([{ lower: 10, upper: 0, adjustment: 1 }]))).toContain("policies[0].steps[0]");
    expect(paths(step([]))).toEqual(["policies[0].steps"]);
  });

  it("rejects an invalid cron and an unknown time zone", () => {
    const sched = (cron: string, timezone?: string): ScalingSpec => ({ policies: [{ type: "schedule", cron, minSize: 2, ...(timezone ? { timezone } : {}) }] });
    expect(validateScaling(sched("61 * * * *"))).toMatchObject([{ path: "policies[0].cron", message: 'invalid cron "61 * * * *": Invalid value for minute: 61' }]);
    expect(paths(sched("0 8 * * * *"))).toEqual(["policies[0].cron"]);
    expect(paths(sched("0 0 31 2 *"))).toEqual(["policies[0].cron"]);
    expect(validateScaling(sched("0 8 * * *", "Mars/Olympus"))).toEqual([
      { path: "policies[0].timezone", message: 'unknown time zone "Mars/Olympus"', fix: "use an IANA name such as Europe/Berlin or UTC" },
    ]);
    expect(paths(sched("@daily", "America/New_York"))).toEqual([]);
  });

  it("checks ranges: tolerance, targets, M of N, windows, rate limits, delays", () => {
    const policies: Policy[] = [
      { type: "target-tracking", metric: "cpu", target: 160, tolerance: 1.5 },
      { type: "threshold", metric: "cpu", above: 20, below: 80, datapointsToAlarm: 4, evaluationPeriods: 3 },
      { type: "threshold", metric: "cpu" },
    ];
    expect(paths({ policies })).toEqual(["policies[0].target", "policies[0].tolerance", "policies[1].below", "policies[1].datapointsToAlarm", "policies[2]"]);
    expect(
      paths({
        behavior: { scaleUp: { stabilizationWindowSeconds: 7200, policies: [{ type: "Pods", value: 0.5, periodSeconds: 3600 }] }, scaleDown: { policies: [] } },
        delays: { maxUnreadyPercent: 120, maxUnreadyCount: -1 },
      }),
    ).toEqual([
      "behavior.scaleUp.stabilizationWindowSeconds",
      "behavior.scaleUp.policies[0].value",
      "behavior.scaleUp.policies[0].periodSeconds",
      "behavior.scaleDown.policies",
      "delays.maxUnreadyPercent",
      "delays.maxUnreadyCount",
    ]);
  });

  it("checks schedule sizes against each other and the group's bounds", () => {
    const spec: ScalingSpec = { policies: [{ type: "schedule", cron: "@hourly", minSize: 6, maxSize: 4 }, { type: "schedule", cron: "@hourly" }] };
    expect(paths(spec, { min: 1, max: 5 })).toEqual(["policies[0].minSize", "policies[0].minSize", "policies[1]"]);
  });

  it("names an unknown policy type", () => {
    expect(paths({ policies: [{ type: "predictive" } as unknown as Policy] })).toEqual(["policies[0].type"]);
  });
});
