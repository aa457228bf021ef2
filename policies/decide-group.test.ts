import { describe, expect, it, vi } from "vitest";
import type { Policy, ScalingSpec } from "../config/scaling.js";
import type { History } from "../state/types.js";
import { decideGroup } from "./decide-group.js";
import { describeDecision } from "./format.js";
import { emptyHistory } from "./history.js";
import { TEST_NOW, ago, makeInput, makeMembers, steadyMetrics } from "./testing.js";

const cpu: Policy = { type: "target-tracking", metric: "cpu", target: 60, windowSeconds: 300 };
const memory: Policy = { type: "target-tracking", metric: "memory", target: 70 };
const scaling: ScalingSpec = { policies: [cpu] };

/** Recommendations of `desired` every 15 s over the last `seconds`. */
function recommended(desired: number, seconds: number, events: History["events"] = []): History {
  return { recommendations: Array.from({ length: seconds / 15 }, (_, i) => ({ at: ago(seconds - i * 15), desired })), events };
}

/** Decides for `count` members all at `value` cpu (and memory at its target). */
function decide(count: number, value: number, over: Parameters<typeof makeInput>[0] = {}) {
  const members = over.group?.members ?? makeMembers(count);
  const metrics = steadyMetrics(members, "cpu", value);
  for (const m of members) Object.assign(metrics.members[m.name] ?? {}, steadyMetrics([m], "memory", 70).members[m.name]);
  return decideGroup(makeInput({ scaling, metrics, ...over, group: { members, ...over.group } }));
}

describe("decideGroup", () => {
  it("scales out on target tracking with the numbers in the reason", () => {
    const d = decide(3, 82);
    expect(d).toMatchObject({ group: "web", desired: 5, code: "target_tracking" });
    expect(describeDecision(d)).toBe("web: 3 → 5 (avg cpu 82% > target 60% over 5m)");
    expect(d.details).toMatchObject({ current: 3, recommendation: 5, stabilized: 5, limited: 5, min: 1, max: 10, retainSeconds: 600 });
  });

  it("scales out when any policy wants to", () => {
    expect(decide(3, 82, { scaling: { policies: [memory, cpu] } })).toMatchObject({ desired: 5, code: "target_tracking" });
  });

  it("scales in only when every policy agrees", () => {
    const d = decide(4, 30, { scaling: { policies: [cpu, memory] }, history: recommended(2, 900) });
    expect(d).toMatchObject({ desired: 4, code: "steady", reason: "avg memory 70% within 10% of target 70% over 1m" });
  });

  it("scales in once the size has been unneeded long enough, to the highest recommendation of the window", () => {
    expect(decide(4, 30, { history: recommended(2, 900) })).toMatchObject({ desired: 2, code: "target_tracking" });
    const h = recommended(2, 900);
    h.recommendations.push({ at: ago(100), desired: 3 });
    expect(decide(4, 30, { history: h })).toMatchObject({ desired: 3, code: "stabilized", reason: "stabilised: highest recommendation in the last 300s is 3" });
  });

  it("keeps the size while a recommendation in the scale-down window is as high", () => {
    const h = recommended(2, 900);
    h.recommendations.push({ at: ago(100), desired: 4 });
    expect(decide(4, 30, { history: h })).toMatchObject({ desired: 4, code: "stabilized", reason: "stabilised: highest recommendation in the last 300s is 4" });
  });

  it("waits for the unneeded time before scaling in, also after a restart with no history", () => {
    expect(decide(4, 30, { history: recommended(2, 120) })).toMatchObject({ desired: 4, code: "unneeded_time", reason: "scale-in to 2 waits: below 4 for 120s of the required 600s" });
    expect(decide(4, 30)).toMatchObject({ desired: 4, code: "unneeded_time" });
    const broken = recommended(2, 900);
    broken.recommendations = broken.recommendations.map((r) => (r.at === ago(405) ? { ...r, desired: 4 } : r));
    expect(decide(4, 30, { history: broken })).toMatchObject({ desired: 4, code: "unneeded_time", reason: "scale-in to 2 waits: below 4 for 390s of the required 600s" });
  });

  it("rate-limits a large scale-out", () => {
    const d = decide(3, 400);
    expect(d).toMatchObject({ desired: 7, code: "rate_limited" });
    expect(d.details).toMatchObject({ recommendation: 20, stabilized: 20, limited: 7 });
  });

  it("waits for the cooldown after a scale-out before scaling out again", () => {
    const d = decide(3, 82, { history: { recommendations: [], events: [{ at: ago(180), kind: "add", count: 1 }] } });
    expect(d).toMatchObject({ desired: 3, code: "cooldown", reason: "cooldown: 120s left after the last scale-out; wanted 5" });
  });

  it("does not scale in soon after a scale-out or a scale-in", () => {
    const afterAdd = decide(4, 30, { history: recommended(2, 900, [{ at: ago(60), kind: "add", count: 1 }]) });
    expect(afterAdd).toMatchObject({ desired: 4, code: "cooldown", reason: "cooldown: 540s left after the last scale-out; wanted 2" });
    const afterDelete = decide(4, 30, { history: recommended(2, 900, [{ at: ago(500), kind: "delete", count: 1 }]) });
    expect(afterDelete).toMatchObject({ desired: 4, code: "cooldown", reason: "cooldown: 100s left after the last scale-in; wanted 2" });
  });

  it("backs off after an error", () => {
    const d = decide(3, 82, { history: { recommendations: [], events: [{ at: ago(100), kind: "error", message: "no host has room" }] } });
    expect(d).toMatchObject({ desired: 3, code: "error_backoff", reason: "error backoff: 500s left after the last error: no host has room; wanted 5" });
  });

  it("treats a VM that did not become ready within maxProvisionSeconds as an error", () => {
    const members = [...makeMembers(3), { name: "web-4", createdAt: ago(1000), ready: false }];
    const d = decide(4, 100, { group: { members } });
    expect(d).toMatchObject({ desired: 4, code: "error_backoff", reason: "error backoff: 500s left after the last error (a VM did not become ready in time); wanted 5" });
  });

  it("stops scaling when more than 45% and more than 3 members are unready", () => {
    const members = makeMembers(8).map((m, i) => (i < 4 ? { ...m, ready: false } : m));
    const d = decide(8, 150, { group: { members, max: 20 } });
    expect(d).toMatchObject({ desired: 8, code: "too_many_unready", reason: "too many unready: 4 of 8 members (50% > 45% and 4 > 3); wanted 10" });
    const fewer = makeMembers(9).map((m, i) => (i < 4 ? { ...m, ready: false } : m));
    expect(decide(9, 150, { group: { members: fewer, max: 20 } }).code).not.toBe("too_many_unready");
  });

  it("caps at max and raises to min, saying what was wanted", () => {
    expect(decide(9, 82, { group: { max: 10 } })).toMatchObject({ desired: 10, code: "at_max", reason: "max 10 (wanted 13: avg cpu 82% > target 60% over 5m)" });
    expect(decideGroup(makeInput({ group: { members: [], min: 1 }, scaling }))).toMatchObject({ desired: 1, code: "at_min", reason: "min 1" });
    expect(decide(12, 60, { group: { max: 10 } })).toMatchObject({ desired: 10, code: "at_max", reason: "max 10" });
  });

  it("never scales in without metrics, but still scales out on what it has", () => {
    const none = decideGroup(makeInput({ group: { members: makeMembers(4) }, scaling, metrics: undefined, history: recommended(1, 900) }));
    expect(none).toMatchObject({ desired: 4, code: "missing_data", reason: "no metrics (the metrics source gave none): keeping the size" });
    const members = makeMembers(3);
    const onlyCpu = decideGroup(makeInput({ group: { members }, scaling: { policies: [memory, cpu] }, metrics: steadyMetrics(members, "cpu", 82) }));
    expect(onlyCpu).toMatchObject({ desired: 5, code: "target_tracking" });
  });

  it("keeps the size in mode off, within min and max", () => {
    expect(decide(3, 82, { scaling: { ...scaling, mode: "off" } })).toMatchObject({ desired: 3, code: "mode_off", reason: "mode off: keeping 3" });
    expect(decide(12, 82, { scaling: { ...scaling, mode: "off" } })).toMatchObject({ desired: 10, code: "mode_off", reason: "mode off: max is 10" });
  });

  it("never scales in in scale-out-only mode", () => {
    const d = decide(4, 30, { scaling: { ...scaling, mode: "scale-out-only" }, history: recommended(2, 900) });
    expect(d).toMatchObject({ desired: 4, code: "scale_out_only", reason: "scale-out-only mode: not scaling in to 2 (avg cpu 30% < target 60% over 5m)" });
    expect(decide(3, 82, { scaling: { ...scaling, mode: "scale-out-only" } }).desired).toBe(5);
  });

  it("keeps the size without policies", () => {
    expect(decideGroup(makeInput())).toMatchObject({ desired: 3, code: "no_policies", reason: "no scaling policies: keeping the size" });
  });

  it("lists every policy's outcome in the details", () => {
    const d = decide(3, 82, { scaling: { policies: [cpu, memory, { type: "schedule", cron: "0 3 * * *", minSize: 2, durationSeconds: 60 }] } });
    expect(d.details?.policies.map((p) => [p.index, p.type, p.code, p.recommendation])).toEqual([
      [0, "target-tracking", "target_tracking", 5],
      [1, "target-tracking", "steady", 3],
      [2, "schedule", "schedule", undefined],
    ]);
  });

  it("does not read the clock or draw random numbers: the same input gives the same decision at any wall-clock time", () => {
    const input = makeInput({ scaling, metrics: steadyMetrics(makeMembers(3), "cpu", 82), history: emptyHistory(), now: TEST_NOW });
    const reads: string[] = [];
    const RealDate = Date;
    /** Decides with the machine's clock set to `wallClock`, recording every look at the clock and every random draw. */
    const decideAt = (wallClock: string) => {
      const at = RealDate.parse(wallClock);
      class WallClockDate extends RealDate {
        constructor(...args: unknown[]) {
          if (args.length === 0) {
            reads.push("new Date()");
            super(at);
          } else super(...(args as [number]));
        }
        static override now(): number {
          reads.push("Date.now()");
          return at;
        }
      }
      vi.stubGlobal("Date", WallClockDate);
      const random = vi.spyOn(Math, "random");
      const performanceNow = vi.spyOn(performance, "now");
      try {
        return decideGroup(structuredClone(input));
      } finally {
        vi.unstubAllGlobals();
        reads.push(...random.mock.calls.map(() => "Math.random()"), ...performanceNow.mock.calls.map(() => "performance.now()"));
        vi.restoreAllMocks();
      }
    };
    const early = decideAt("2001-01-01T00:00:00Z");
    const late = decideAt("2099-12-31T23:59:59Z");
    expect(reads).toEqual([]);
    expect(early).toMatchObject({ desired: 5, code: "target_tracking" });
    expect(late).toEqual(early);
  });
});
