import { describe, expect, it } from "vitest";
import { PlanRejectedError } from "../config/errors.js";
import { computePlan } from "./compute-plan.js";
import { checkPlanApplicable, parsePlan, serializePlan } from "./plan-file.js";
import type { Plan } from "./plan.js";
import { TEST_LINEAGE, TEST_NOW, makeConfig, makeInput, makeState } from "./testing.js";

const plan = computePlan(makeInput({ config: makeConfig({ groups: [{ desired: 2 }] }), state: makeState({}, { serial: 5 }) }));
const rejected = (fn: () => unknown, message: string | RegExp, code: string) => {
  expect(fn).toThrow(PlanRejectedError);
  expect(fn).toThrow(message);
  try {
    fn();
  } catch (e) {
    expect((e as PlanRejectedError).code).toBe(code);
  }
};

describe("serializePlan and parsePlan", () => {
  it("round-trip a plan", () => {
    expect(parsePlan(serializePlan(plan))).toEqual(plan);
  });

  it("write the same text for equal plans whatever their key order", () => {
    const shuffled = Object.fromEntries(Object.entries(plan).reverse()) as unknown as Plan;
    expect(serializePlan(shuffled)).toBe(serializePlan(plan));
    expect(JSON.parse(serializePlan(plan)).checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  it("accept a plan whose JSON was reformatted but not changed", () => {
    const text = JSON.stringify(JSON.parse(serializePlan(plan)));
    expect(parsePlan(text)).toEqual(plan);
  });

  it("refuse a plan that is not JSON", () => {
    rejected(() => parsePlan("{oops"), /plan file is not valid JSON/, "plan_invalid");
    rejected(() => parsePlan("[]"), "plan file is not a premiscale plan", "plan_invalid");
  });

  it("refuse a plan altered after it was written", () => {
    const data = JSON.parse(serializePlan(plan));
    data.changes[0].host = "elsewhere";
    rejected(() => parsePlan(JSON.stringify(data)), "plan file was altered after it was written: run premiscale plan again", "plan_altered");
  });

  it("refuse a plan without a checksum", () => {
    const { checksum: _checksum, ...data } = JSON.parse(serializePlan(plan));
    rejected(() => parsePlan(JSON.stringify(data)), "plan file was altered after it was written", "plan_altered");
  });

  it("refuse a plan of a newer major format", () => {
    const data = { ...JSON.parse(serializePlan(plan)), format_version: "4.3" };
    rejected(() => parsePlan(JSON.stringify(data)), "plan format 4.x is newer than this premiscale reads (3.x): upgrade premiscale", "plan_format_newer");
  });

  it("refuse a plan of formats 1 and 2, saying to plan again", () => {
    const older = { ...plan, format_version: "2.0" } as unknown as Plan;
    rejected(() => parsePlan(serializePlan(older)), /plan format 2\.x was written by an older premiscale .*run premiscale plan again/, "plan_format_older");
    const old = { ...plan, format_version: "1.1" } as unknown as Plan;
    rejected(() => parsePlan(serializePlan(old)), /plan format 1\.x was written by an older premiscale .*run premiscale plan again/, "plan_format_older");
  });

  it("read a plan of a newer minor format with unknown fields", () => {
    const { checksum: _checksum, ...body } = JSON.parse(serializePlan(plan));
    const newer = serializePlan({ ...body, format_version: "3.7", extra: { x: 1 } } as unknown as Plan);
    expect(parsePlan(newer)).toMatchObject({ format_version: "3.7", extra: { x: 1 } });
  });
});

describe("checkPlanApplicable", () => {
  const state = { lineage: TEST_LINEAGE, serial: 5 };

  it("accepts a fresh plan made on the current state", () => {
    expect(() => checkPlanApplicable(plan, state, TEST_NOW)).not.toThrow();
  });

  it("accepts a first plan while there is still no state", () => {
    const first = computePlan(makeInput({ config: makeConfig() }));
    expect(() => checkPlanApplicable(first, null, TEST_NOW)).not.toThrow();
  });

  it("refuses an expired plan and says when it expired", () => {
    const later = new Date(TEST_NOW.getTime() + 2 * 3600_000);
    rejected(() => checkPlanApplicable(plan, state, later), "plan expired at 2025-06-01T13:00:00.000Z (60 min ago", "plan_expired");
  });

  it("refuses a plan made for another lineage", () => {
    rejected(() => checkPlanApplicable(plan, { lineage: "B", serial: 5 }, TEST_NOW), `plan was made for state lineage ${TEST_LINEAGE}, state is B`, "plan_lineage_mismatch");
  });

  it("refuses a plan made before any state existed once state exists", () => {
    const first = computePlan(makeInput({ config: makeConfig() }));
    rejected(() => checkPlanApplicable(first, state, TEST_NOW), "Saved plan is stale: it was made before any state existed", "plan_stale");
  });

  it("refuses a stale plan", () => {
    rejected(
      () => checkPlanApplicable(plan, { lineage: TEST_LINEAGE, serial: 7 }, TEST_NOW),
      "Saved plan is stale: state serial is 7, the plan was made at serial 5: run premiscale plan again",
      "plan_stale",
    );
  });

  it("refuses a plan with errors", () => {
    const failed = computePlan(makeInput({ config: makeConfig(), state: makeState({}, { serial: 5 }), targets: ["nope"] }));
    rejected(() => checkPlanApplicable(failed, state, TEST_NOW), 'plan has errors, so it cannot be applied: group "nope"', "plan_has_errors");
  });
});
