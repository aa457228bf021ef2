import { describe, expect, it } from "vitest";
import type { ScheduledPolicy } from "../config/scaling.js";
import { decideGroup } from "./decide-group.js";
import { evaluateSchedules } from "./schedule.js";
import { makeInput } from "./testing.js";

const morning: ScheduledPolicy = { type: "schedule", cron: "0 8 * * *", timezone: "Europe/Berlin", minSize: 5, durationSeconds: 3600 };
const at = (iso: string): Date => new Date(iso);
const minAt = (p: ScheduledPolicy, iso: string): number | undefined => evaluateSchedules([p], at(iso))[0]?.minSize;

describe("scheduled policies", () => {
  it("are in effect for durationSeconds after each run, at local time across the spring DST change", () => {
    expect(minAt(morning, "2025-03-29T07:30:00Z")).toBe(5); // 08:30 CET
    expect(minAt(morning, "2025-03-29T08:30:00Z")).toBeUndefined(); // 09:30 CET
    expect(minAt(morning, "2025-03-31T06:30:00Z")).toBe(5); // 08:30 CEST
    expect(minAt(morning, "2025-03-31T07:30:00Z")).toBeUndefined(); // 09:30 CEST, 08:30 in winter time
    expect(evaluateSchedules([morning], at("2025-03-31T06:30:00Z"))[0]?.reason).toBe('schedule "0 8 * * *" since 2025-03-31 08:00 Europe/Berlin for 1h: min 5');
  });

  it("follow local time across the autumn DST change", () => {
    expect(minAt(morning, "2025-10-25T06:30:00Z")).toBe(5); // 08:30 CEST
    expect(minAt(morning, "2025-10-27T06:30:00Z")).toBeUndefined(); // 07:30 CET
    expect(minAt(morning, "2025-10-27T07:30:00Z")).toBe(5); // 08:30 CET
  });

  it("run a time that the spring change skips when the clock jumps past it", () => {
    const p: ScheduledPolicy = { ...morning, cron: "30 2 * * *", durationSeconds: 1800 };
    expect(minAt(p, "2025-03-30T01:10:00Z")).toBe(5); // 03:10 CEST; 02:30 never happened that day
    expect(minAt(p, "2025-03-30T01:40:00Z")).toBeUndefined();
  });

  it("without a duration stay in effect until another schedule without one runs", () => {
    const open: ScheduledPolicy = { type: "schedule", cron: "0 8 * * 1-5", minSize: 5 };
    const close: ScheduledPolicy = { type: "schedule", cron: "0 18 * * 1-5", minSize: 1 };
    const mins = (iso: string) => evaluateSchedules([open, close], at(iso)).map((o) => o.minSize);
    expect(mins("2025-06-02T12:00:00Z")).toEqual([5, undefined]); // Monday noon
    expect(mins("2025-06-02T19:00:00Z")).toEqual([undefined, 1]); // Monday evening
    expect(mins("2025-06-07T12:00:00Z")).toEqual([undefined, 1]); // Saturday: Friday 18:00 ran last
    expect(mins("2025-06-09T08:00:00Z")).toEqual([5, undefined]); // the very second it runs
  });

  it("say when they run next while not in effect", () => {
    expect(evaluateSchedules([morning], at("2025-06-02T12:00:00Z"))[0]).toMatchObject({
      code: "schedule",
      reason: 'schedule "0 8 * * *" not in effect (next run 2025-06-03 08:00 Europe/Berlin)',
    });
  });

  it("raise the group's floor in a decision, even with no data", () => {
    const d = decideGroup(makeInput({ scaling: { policies: [morning] }, metrics: undefined, now: at("2025-06-03T06:10:00Z") }));
    expect(d).toMatchObject({ desired: 5, code: "schedule" });
    expect(d.reason).toBe('min 5 from schedule "0 8 * * *" (policies[0])');
    expect(d.details).toMatchObject({ min: 5, max: 10 });
  });

  it("set a ceiling, within the group's min and max", () => {
    const night: ScheduledPolicy = { type: "schedule", cron: "0 22 * * *", maxSize: 2, durationSeconds: 8 * 3600 };
    const d = decideGroup(makeInput({ scaling: { policies: [night] }, now: at("2025-06-03T01:00:00Z") }));
    expect(d).toMatchObject({ desired: 2, code: "schedule" });
    const tooLow = decideGroup(makeInput({ group: { min: 3 }, scaling: { policies: [{ ...night, maxSize: 1 }] }, now: at("2025-06-03T01:00:00Z") }));
    expect(tooLow.desired).toBe(3);
  });

  it("with desired recommend a size that other policies may exceed", () => {
    const p: ScheduledPolicy = { type: "schedule", cron: "0 8 * * *", desired: 6, durationSeconds: 3600 };
    const d = decideGroup(makeInput({ scaling: { policies: [p] }, now: at("2025-06-03T08:10:00Z") }));
    expect(d).toMatchObject({ desired: 6, code: "schedule", reason: 'schedule "0 8 * * *" since 2025-06-03 08:00 UTC for 1h: desired 6' });
  });
});
