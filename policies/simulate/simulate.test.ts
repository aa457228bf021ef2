import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ScalingSpec } from "../../config/scaling.js";
import { SimulationError, TraceError } from "./errors.js";
import { compare, simulate, type SimulationResult } from "./simulate.js";
import { parseTrace } from "./trace.js";

const load = (name: string): ReturnType<typeof parseTrace> => parseTrace(readFileSync(new URL(`testdata/${name}`, import.meta.url), "utf8"), { file: name });
const cpu60: ScalingSpec = { policies: [{ type: "target-tracking", metric: "cpu", target: 60 }] };
const group = (over: Partial<{ min: number; max: number; initial: number }> = {}): { name: string; min: number; max: number; initial: number } => ({ name: "web", min: 2, max: 8, initial: 3, ...over });
const at = (iso: string): number => Date.parse(iso);
const sizesWithin = (r: SimulationResult): boolean => r.timeline.every((p) => p.desired >= r.group.min && p.desired <= r.group.max);

/** A group trace of `minutes` 1-minute rows with cpu from `cpu(minute)` at a recorded size. */
function groupTrace(minutes: number, cpu: (m: number) => number | undefined, size = 3): ReturnType<typeof parseTrace> {
  const rows = ["time,size,cpu"];
  for (let m = 0; m <= minutes; m++) rows.push(`${new Date(at("2025-06-02T12:00:00Z") + m * 60_000).toISOString()},${size},${cpu(m) ?? ""}`);
  return parseTrace(rows.join("\n"), { file: "gen.csv" });
}

describe("simulate", () => {
  it("keeps a steady load at the same size: no events, every decision steady", () => {
    const r = simulate({ trace: load("steady.csv"), group: group(), scaling: cpu60 });
    expect(r.events).toEqual([]);
    expect(new Set(r.timeline.map((p) => p.code))).toEqual(new Set(["steady"]));
    expect(r.summary).toMatchObject({ startSize: 3, endSize: 3, scaleOuts: 0, scaleIns: 0, noDataSeconds: 0, metric: { name: "cpu", mean: 55, max: 55 } });
  });

  it("does not flap on a noisy but flat load: at most one change, never back", () => {
    const r = simulate({ trace: load("noisy.csv"), group: group({ initial: 4 }), scaling: cpu60 });
    expect(r.events.length).toBeLessThanOrEqual(1);
    expect(r.summary.peakSize - r.summary.minSize).toBeLessThanOrEqual(1);
    expect(sizesWithin(r)).toBe(true);
  });

  it("scales out only after the ramp starts and in only after the load falls, within min and max", () => {
    const r = simulate({ trace: load("ramp.csv"), group: group(), scaling: cpu60 });
    expect(sizesWithin(r)).toBe(true);
    const outs = r.events.filter((e) => e.to > e.from);
    const ins = r.events.filter((e) => e.to < e.from && Date.parse(e.at) > at("2025-06-02T13:00:00Z"));
    expect(outs.length).toBeGreaterThan(0);
    expect(outs.every((e) => Date.parse(e.at) > at("2025-06-02T12:30:00Z"))).toBe(true);
    expect(r.summary.peakSize).toBeGreaterThan(3);
    // The load falls from 13:40; scale-in waits the unneeded time (600 s by default).
    expect(Date.parse(ins[0]?.at ?? "")).toBeGreaterThanOrEqual(at("2025-06-02T13:40:00Z") + 600_000);
    expect(r.summary.endSize).toBe(2);
  });

  it("holds scale-in for the down-stabilisation window: a longer window scales in later", () => {
    const base: ScalingSpec = { ...cpu60, delays: { scaleDownUnneededSeconds: 0 } };
    const firstIn = (windowSeconds: number): number => {
      const r = simulate({ trace: load("ramp.csv"), group: group(), scaling: { ...base, behavior: { scaleDown: { stabilizationWindowSeconds: windowSeconds } } } });
      return Date.parse(r.events.find((e) => e.to < e.from && Date.parse(e.at) > at("2025-06-02T13:00:00Z"))?.at ?? "");
    };
    const quick = firstIn(0);
    const slow = firstIn(900);
    expect(quick).toBeGreaterThan(at("2025-06-02T13:40:00Z"));
    expect(slow - quick).toBeGreaterThanOrEqual(900_000 - 60_000);
  });

  it("makes new VMs take load only after the boot time, so a longer boot saturates longer", () => {
    // 95% of 5 recorded members is 475% of work: 3 members are saturated until new ones are ready.
    const spike = groupTrace(40, (m) => (m < 10 ? 30 : 95), 5);
    const fast = simulate({ trace: spike, group: group({ max: 10 }), scaling: cpu60, bootSeconds: 0 });
    const slow = simulate({ trace: spike, group: group({ max: 10 }), scaling: cpu60, bootSeconds: 300 });
    const out = slow.events.find((e) => e.to > e.from);
    expect(out).toBeDefined();
    const outAt = Date.parse(out?.at ?? "");
    // Ready members stay at the old count for the boot time, then catch up.
    const readyAfter = (s: number): number | undefined => slow.timeline.find((p) => Date.parse(p.at) >= outAt + s * 1000)?.ready;
    expect(readyAfter(285)).toBe(out?.from);
    expect(readyAfter(300)).toBe(out?.to);
    expect(slow.summary.saturatedSeconds).toBeGreaterThan(fast.summary.saturatedSeconds);
  });

  it("never scales in while the trace has no data", () => {
    const r = simulate({ trace: load("spike.jsonl"), group: group({ initial: 3 }), scaling: cpu60 });
    const gap = r.timeline.filter((p) => Date.parse(p.at) >= at("2025-06-02T12:36:00Z") && Date.parse(p.at) < at("2025-06-02T12:42:00Z"));
    expect(gap.length).toBeGreaterThan(0);
    expect(gap.every((p) => p.values.cpu === undefined && p.desired >= p.size)).toBe(true);
    expect(gap.some((p) => p.code === "missing_data")).toBe(true);
    expect(r.summary.noDataSeconds).toBeGreaterThanOrEqual(360);
    // The spike at 12:20 scales out.
    expect(r.events.some((e) => e.to > e.from && Date.parse(e.at) >= at("2025-06-02T12:20:00Z") && Date.parse(e.at) < at("2025-06-02T12:25:00Z"))).toBe(true);
  });

  it("spreads the load over the simulated size: a member trace of 3 equals a group trace of size 3", () => {
    const members = ["time,member,cpu"];
    for (let m = 0; m <= 30; m++) for (const n of ["a", "b", "c"]) members.push(`${1_748_865_600 + m * 60},${n},${m < 10 ? 40 : 80}`);
    const fromMembers = simulate({ trace: parseTrace(members.join("\n"), { file: "m.csv" }), group: group(), scaling: cpu60 });
    const fromGroup = simulate({ trace: groupTrace(30, (m) => (m < 10 ? 40 : 80)), group: group(), scaling: cpu60 });
    expect(fromMembers.timeline.map((p) => [p.desired, p.values.cpu])).toEqual(fromGroup.timeline.map((p) => [p.desired, p.values.cpu]));
    // 80% of 3 members is 240% of work: 4 ready members see 60% each.
    expect(fromGroup.timeline.find((p) => p.ready === 4 && p.values.cpu !== undefined)?.values.cpu).toBe(60);
  });

  it("uses the recorded size without a size column, and keeps memory per member as recorded", () => {
    const t = parseTrace("time,cpu,memory\n0,30,70\n60,30,70\n120,30,70\n", { file: "r.csv" });
    const r = simulate({ trace: t, group: group({ initial: 2 }), scaling: cpu60, recordedSize: 4, evalIntervalSeconds: 60, primeSeconds: 0 });
    expect(r.timeline[0]?.values).toEqual({ cpu: 60, memory: 70 });
    expect(r.timeline[0]?.demand).toEqual({ cpu: 120 });
    const spread = simulate({ trace: t, group: group({ initial: 2 }), scaling: cpu60, recordedSize: 4, evalIntervalSeconds: 60, primeSeconds: 0, load: { memory: "spread" } });
    expect(spread.timeline[0]?.values.memory).toBe(100);
    expect(spread.timeline[0]?.saturated).toBe(true);
  });

  it("waits for the policies' windows before the first evaluation", () => {
    const t = load("ramp.csv");
    const r = simulate({ trace: t, group: group(), scaling: { policies: [{ type: "threshold", metric: "cpu", above: 80, periodSeconds: 60, evaluationPeriods: 5, datapointsToAlarm: 3 }] } });
    expect(r.timeline[0]?.at).toBe(new Date(t.start + 300_000).toISOString());
  });

  it("is deterministic: the same input gives the same result", () => {
    const a = simulate({ trace: load("spike.jsonl"), group: group(), scaling: cpu60 });
    const b = simulate({ trace: load("spike.jsonl"), group: group(), scaling: cpu60 });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });

  it("refuses impossible options and invalid scaling with SimulationError", () => {
    const t = load("steady.csv");
    expect(() => simulate({ trace: t, group: group({ initial: 9 }), scaling: cpu60 })).toThrow(/start size 9 is outside min 2 \/ max 8/);
    expect(() => simulate({ trace: t, group: group(), scaling: cpu60, evalIntervalSeconds: 0 })).toThrow(SimulationError);
    expect(() => simulate({ trace: t, group: group(), scaling: { policies: [{ type: "target-tracking", metric: "cpu", target: 0 }] } })).toThrow(/scaling\.policies\[0\]\.target: must be greater than 0/);
    expect(() => simulate({ trace: t, group: group(), scaling: cpu60, primeSeconds: 7200 })).toThrow(/shorter than/);
  });

  it("refuses a trace without the metric the policies use, naming it", () => {
    const e = (() => {
      try {
        simulate({ trace: load("steady.csv"), group: group(), scaling: { policies: [{ type: "target-tracking", metric: "memory", target: 70 }] } });
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(TraceError);
    expect((e as TraceError).message).toBe("steady.csv: memory: group web scales on memory (policies[0].metric), but the trace has no memory column");
  });

  it("keeps every size within min and max and records exactly the changes as events (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }), { minLength: 5, maxLength: 40 }),
        fc.integer({ min: 0, max: 4 }),
        fc.integer({ min: 0, max: 6 }),
        fc.integer({ min: 0, max: 6 }),
        (cpus, min, span, startOffset) => {
          const max = min + span;
          const initial = min + Math.min(span, startOffset);
          const r = simulate({ trace: groupTrace(cpus.length, (m) => cpus[m] ?? undefined), group: { name: "g", min, max, initial }, scaling: cpu60, bootSeconds: 30 });
          expect(sizesWithin(r)).toBe(true);
          const changes = r.timeline.filter((p) => p.desired !== p.size).map((p) => [p.at, p.size, p.desired]);
          expect(r.events.map((e) => [e.at, e.from, e.to])).toEqual(changes);
          r.timeline.slice(1).forEach((p, i) => expect(p.size).toBe(r.timeline[i]?.desired));
        },
      ),
      { numRuns: 30 },
    );
  });
});

describe("compare", () => {
  it("runs each configuration over the same trace, from the same first evaluation", () => {
    const c = compare({
      trace: load("ramp.csv"),
      runs: [
        { label: "current", group: group(), scaling: cpu60 },
        { label: "proposed", group: group(), scaling: { policies: [{ type: "threshold", metric: "cpu", above: 70, below: 30, evaluationPeriods: 3 }] } },
      ],
    });
    expect(c.runs.map((r) => r.label)).toEqual(["current", "proposed"]);
    expect(c.runs[0]?.timeline[0]?.at).toBe(c.runs[1]?.timeline[0]?.at);
    expect(c.runs[0]?.events).not.toEqual(c.runs[1]?.events);
    expect(() => compare({ trace: load("ramp.csv"), runs: [{ label: "a", group: group(), scaling: cpu60 }, { label: "a", group: group(), scaling: cpu60 }] })).toThrow(/two runs are labelled "a"/);
  });
});
