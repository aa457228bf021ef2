import { PassThrough } from "node:stream";
import { render } from "ink-testing-library";
import { describe, expect, it } from "vitest";
import { computePlan } from "../../planner/compute-plan.js";
import { renderPlanText } from "../../planner/render-text.js";
import { makeConfig, makeDomain, makeInput, makeInstance, makeObservation, makeState } from "../../planner/testing.js";
import { PlanView, writePlan } from "./plan-view.js";
import type { ReporterMode } from "./mode.js";

/** web: one VM stopped by hand (drift, replaced) and scaled from 2 to 3. */
function driftPlan() {
  const config = makeConfig({ groups: [{ name: "web", desired: 3 }] });
  return computePlan(
    makeInput({
      config,
      state: makeState({ web: [makeInstance("web-aaaa", "a"), makeInstance("web-bbbb", "a")] }),
      observations: [makeObservation("a", { domains: [makeDomain("web-aaaa"), makeDomain("web-bbbb", { state: "stopped" })] })],
    }),
  );
}

function written(mode: ReporterMode): string {
  const sink = new PassThrough();
  let text = "";
  sink.on("data", (b: Buffer) => (text += b.toString()));
  writePlan({ mode, sink, plan: driftPlan(), color: false, now: () => new Date("2026-01-02T03:04:05.000Z") });
  return text;
}

describe("PlanView", () => {
  it("shows the drift first, then the diff, then the summary line", () => {
    const frame = render(<PlanView plan={driftPlan()} color={false} />).lastFrame() ?? "";
    const drift = frame.indexOf("Note: Objects have changed outside of premiscale");
    const stopped = frame.search(/~ web\[web-bbbb\] on host a: /);
    const replace = frame.search(/- web\[web-bbbb\] on host a\s+# replace stopped/);
    const add = frame.search(/\+ web\[web-\w+\] on host a \(1 vCPU, 128 MiB\)/);
    const summary = frame.indexOf("Plan: 2 to add, 0 to change, 1 to destroy.");
    expect([drift, stopped, replace, add, summary].every((i) => i >= 0)).toBe(true);
    expect(drift < stopped && stopped < replace && replace < add && add < summary).toBe(true);
  });
});

describe("writePlan", () => {
  it("writes the planner's text in plain mode and the same text from Ink in tui mode", () => {
    expect(written("plain")).toBe(renderPlanText(driftPlan()));
    expect(written("tui").split("\n").map((l) => l.trimEnd())).toEqual(renderPlanText(driftPlan()).trimEnd().split("\n").concat(""));
  });

  it("streams drift, one planned_change per change and a change_summary in json mode", () => {
    const lines = written("json").trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.type)).toEqual(["resource_drift", "planned_change", "planned_change", "planned_change", "change_summary"]);
    expect(lines.every((l) => l["@timestamp"] === "2026-01-02T03:04:05.000Z")).toBe(true);
    expect(lines[1]).toMatchObject({ change: { address: "web[web-bbbb]", action: "delete", host: "a", reason: "replace_stopped" } });
    expect(lines.at(-1)).toMatchObject({ "@message": "Plan: 2 to add, 0 to change, 1 to destroy.", changes: { add: 2, change: 0, remove: 1, operation: "plan" } });
  });
});
