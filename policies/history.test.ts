import { describe, expect, it } from "vitest";
import type { Decision } from "./decision.js";
import { emptyHistory, recordDecision, recordEvent } from "./history.js";
import { TEST_NOW, ago } from "./testing.js";

function decision(current: number, desired: number, recommendation = desired, retainSeconds = 600): Decision {
  return {
    group: "web",
    desired,
    code: "target_tracking",
    reason: "",
    details: { current, recommendation, stabilized: desired, limited: desired, min: 1, max: 10, policies: [], retainSeconds },
  };
}

describe("history", () => {
  it("records the recommendation, and an add or delete event when the size changed", () => {
    const h = recordDecision(emptyHistory(), decision(3, 5, 6), TEST_NOW);
    expect(h).toEqual({ recommendations: [{ at: TEST_NOW.toISOString(), desired: 6 }], events: [{ at: TEST_NOW.toISOString(), kind: "add", count: 2 }] });
    expect(recordDecision(h, decision(5, 4), TEST_NOW).events.at(-1)).toMatchObject({ kind: "delete", count: 1 });
    expect(recordDecision(emptyHistory(), decision(3, 3), TEST_NOW).events).toEqual([]);
  });

  it("drops what the longest window no longer needs, keeping the newest recommendation before it", () => {
    const old = {
      recommendations: [700, 650, 610, 590, 30].map((s) => ({ at: ago(s), desired: s })),
      events: [{ at: ago(700), kind: "add" as const, count: 1 }, { at: ago(100), kind: "error" as const, message: "boom" }],
    };
    const h = recordDecision(old, decision(3, 3), TEST_NOW);
    expect(h.recommendations.map((r) => r.desired)).toEqual([610, 590, 30, 3]);
    expect(h.events).toEqual([{ at: ago(100), kind: "error", message: "boom" }]);
  });

  it("ignores decisions that did not come from the policy engine", () => {
    const h = emptyHistory();
    expect(recordDecision(h, { group: "web", desired: 3, code: "config", reason: "desired: 3 in config" }, TEST_NOW)).toBe(h);
  });

  it("keeps events in time order and survives a JSON round trip", () => {
    const h = recordEvent(recordEvent(emptyHistory(), { at: ago(10), kind: "error", message: "late" }), { at: ago(20), kind: "add", count: 1 });
    expect(h.events.map((e) => e.kind)).toEqual(["add", "error"]);
    expect(JSON.parse(JSON.stringify(h))).toEqual(h);
  });
});
