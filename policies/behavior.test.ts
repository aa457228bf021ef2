import { describe, expect, it } from "vitest";
import { resolveScaling, type BehaviorSpec } from "../config/scaling.js";
import type { History } from "../state/types.js";
import { limitRate, stabilize } from "./behavior.js";
import { TEST_NOW, ago } from "./testing.js";

const behavior = (spec: BehaviorSpec = {}) => resolveScaling({ behavior: spec }).behavior;
const recs = (...pairs: [number, number][]): History => ({ recommendations: pairs.map(([s, desired]) => ({ at: ago(s), desired })), events: [] });
const events = (...list: History["events"]): History => ({ recommendations: [], events: list });

describe("stabilisation", () => {
  it("scales in only to the highest recommendation of the scale-down window", () => {
    const out = stabilize(5, 2, recs([400, 6], [200, 4], [100, 3]), behavior(), TEST_NOW);
    expect(out).toEqual({ value: 4, reason: "stabilised: highest recommendation in the last 300s is 4" });
  });

  it("keeps the size when a recommendation in the window is at or above it", () => {
    expect(stabilize(5, 2, recs([250, 5], [100, 3]), behavior(), TEST_NOW).value).toBe(5);
  });

  it("scales out at once by default (no scale-up window)", () => {
    expect(stabilize(3, 6, recs([10, 3]), behavior(), TEST_NOW)).toEqual({ value: 6 });
  });

  it("scales out only to the lowest recommendation of a scale-up window", () => {
    const out = stabilize(3, 6, recs([90, 2], [50, 4], [10, 7]), behavior({ scaleUp: { stabilizationWindowSeconds: 60 } }), TEST_NOW);
    expect(out).toEqual({ value: 4, reason: "stabilised: lowest recommendation in the last 60s is 4" });
  });

  it("with an empty history follows the recommendation", () => {
    expect(stabilize(5, 2, recs(), behavior(), TEST_NOW).value).toBe(2);
  });
});

describe("rate limits", () => {
  it("by default allow 4 VMs or 100% per 15 s up, whichever is more", () => {
    expect(limitRate(3, 20, recs(), behavior(), TEST_NOW)).toEqual({
      value: 7,
      reason: "rate limited: scale-up allows 7 now (4 VMs per 15s, 100% per 15s; selectPolicy Max), wanted 20",
    });
    expect(limitRate(10, 50, recs(), behavior(), TEST_NOW).value).toBe(20);
  });

  it("count what was added within the period from the size at its start", () => {
    const h = events({ at: ago(10), kind: "add", count: 4 });
    expect(limitRate(7, 20, h, behavior(), TEST_NOW).value).toBe(7);
    expect(limitRate(7, 20, events({ at: ago(20), kind: "add", count: 4 }), behavior(), TEST_NOW).value).toBe(14);
  });

  it("take the rule allowing the least change with selectPolicy Min", () => {
    expect(limitRate(3, 20, recs(), behavior({ scaleUp: { selectPolicy: "Min" } }), TEST_NOW).value).toBe(6);
    expect(limitRate(10, 0, recs(), behavior({ scaleDown: { selectPolicy: "Min", policies: [{ type: "Pods", value: 1, periodSeconds: 60 }, { type: "Percent", value: 50, periodSeconds: 60 }] } }), TEST_NOW).value).toBe(9);
  });

  it("take the rule allowing the most change going down with selectPolicy Max", () => {
    const b = behavior({ scaleDown: { policies: [{ type: "Pods", value: 1, periodSeconds: 60 }, { type: "Percent", value: 50, periodSeconds: 60 }] } });
    expect(limitRate(10, 0, recs(), b, TEST_NOW).value).toBe(5);
    expect(limitRate(9, 0, events({ at: ago(30), kind: "delete", count: 1 }), b, TEST_NOW).value).toBe(5);
  });

  it("allow nothing in a Disabled direction", () => {
    expect(limitRate(5, 2, recs(), behavior({ scaleDown: { selectPolicy: "Disabled" } }), TEST_NOW)).toEqual({ value: 5, reason: "scale-down disabled (selectPolicy Disabled)" });
    expect(limitRate(5, 8, recs(), behavior({ scaleDown: { selectPolicy: "Disabled" } }), TEST_NOW).value).toBe(8);
  });

  it("never turn a scale-up into a scale-down", () => {
    expect(limitRate(3, 5, events({ at: ago(5), kind: "add", count: 9 }), behavior({ scaleUp: { selectPolicy: "Min" } }), TEST_NOW).value).toBe(3);
  });
});
