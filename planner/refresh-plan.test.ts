import { describe, expect, it } from "vitest";
import { computePlan } from "./compute-plan.js";
import { computeRefreshPlan } from "./refresh-plan.js";
import { renderPlanText } from "./render-text.js";
import { makeConfig, makeDomain, makeInput, makeInstance, makeObservation, makeState, TEST_LINEAGE, TEST_NOW } from "./testing.js";

// Refresh-only plans (issue 14): state accepts the hosts as they are; no VM is created, started, stopped or destroyed.

const config = makeConfig({ groups: [{ desired: 3 }] });
const web = (n: number) => `web-${n}`;

describe("refresh-only plans", () => {
  it("forgets VMs removed by hand, marks stopped ones, adopts our leftovers, and changes no VM", () => {
    const state = makeState({ web: [makeInstance(web(1), "a"), makeInstance(web(2), "a"), makeInstance(web(3), "a")] });
    const obs = makeObservation("a", { domains: [makeDomain(web(1)), makeDomain(web(2), { state: "stopped" }), makeDomain("web-9", { createdAt: "2025-05-01T00:00:00.000Z" })] });
    const p = computeRefreshPlan(makeInput({ config, state, observations: [obs] }));
    expect(p.mode).toBe("refresh-only");
    expect(p.changes).toEqual([]);
    expect(p.summary).toEqual({ add: 0, change: 0, destroy: 0 });
    expect(p.refresh?.map((u) => [u.action, u.name, u.instance ?? null])).toEqual([
      ["mark_stopped", web(2), { ...makeInstance(web(2), "a"), stopped: { at: TEST_NOW.toISOString(), state: "stopped" } }],
      ["forget", web(3), null],
      ["adopt", "web-9", { name: "web-9", uuid: "uuid-web-9", host: "a", created: "2025-05-01T00:00:00.000Z", status: "running" }],
    ]);
    expect(p.drift.map((d) => [d.kind, d.name])).toEqual([
      ["stopped", web(2)],
      ["missing", web(3)],
      ["not_in_state", "web-9"],
    ]);
    expect(p.based_on).toMatchObject({ lineage: TEST_LINEAGE, serial: 3 });
  });

  it("marks a VM accepted as stopped running again once it runs, and says nothing of one still stopped", () => {
    const stopped = { at: "2025-05-01T00:00:00.000Z", state: "stopped" as const };
    const state = makeState({ web: [makeInstance(web(1), "a", { stopped }), makeInstance(web(2), "a", { stopped })] });
    const obs = makeObservation("a", { domains: [makeDomain(web(1)), makeDomain(web(2), { state: "stopped" })] });
    const p = computeRefreshPlan(makeInput({ config, state, observations: [obs] }));
    expect(p.refresh).toEqual([expect.objectContaining({ action: "mark_running", name: web(1), instance: makeInstance(web(1), "a") })]);
  });

  it("leaves interrupted records, warm pool VMs stopped on purpose, other lineages and unreachable hosts alone", () => {
    const state = makeState({ web: [makeInstance(web(1), "a", { status: "creating" }), makeInstance(web(2), "a", { pool: "warm" }), makeInstance(web(3), "b")] });
    const obs = [makeObservation("a", { domains: [makeDomain(web(2), { state: "stopped" }), makeDomain("web-7", { lineage: "other" })] }), makeObservation("b", { unreachable: "no route" })];
    const p = computeRefreshPlan(makeInput({ config: makeConfig({ hosts: ["a", "b"], groups: [{ desired: 3 }] }), state, observations: obs }));
    expect(p.refresh).toEqual([]);
    expect(p.warnings).toEqual([
      "web[web-1] on host a was left half-created by an interrupted apply: refresh-only leaves it; premiscale apply finishes it",
      "host b unreachable: 1 instance of group web not checked",
    ]);
    expect(p.drift).toEqual([expect.objectContaining({ kind: "foreign_lineage", name: "web-7" })]);
  });

  it("renders what it records and says no VM is changed; with nothing to record, that the infrastructure still matches", () => {
    const state = makeState({ web: [makeInstance(web(1), "a")] });
    const text = renderPlanText(computeRefreshPlan(makeInput({ config, state, observations: [makeObservation("a")] })));
    expect(text).toContain("  ~ web[web-1] on host a: forget it (no longer exists on the host)");
    expect(text).toContain("This is a refresh-only plan, so premiscale will not create, start, stop or destroy any VM to undo these.");
    expect(text).toContain("Refresh-only: 1 update to record in state; no VM is changed.");
    expect(text).not.toContain("premiscale apply --refresh-only");
    const idle = renderPlanText(computeRefreshPlan(makeInput({ config, state, observations: [makeObservation("a", { domains: [makeDomain(web(1))] })] })));
    expect(idle).toContain("No changes. Your infrastructure still matches the configuration.");
  });

  it("a normal plan says when refresh-only would be useful, and none when only templates drifted", () => {
    const state = makeState({ web: [makeInstance(web(1), "a")] });
    expect(renderPlanText(computePlan(makeInput({ config, state, observations: [makeObservation("a")] })))).toContain(
      "To accept it into state, changing no VM: premiscale apply --refresh-only",
    );
  });
});

describe("normal plans after refresh-only accepted a stop", () => {
  const stopped = { at: "2025-05-01T00:00:00.000Z", state: "stopped" as const };

  it("leave the stopped VM alone and uncounted, and top the group up around it", () => {
    const state = makeState({ web: [makeInstance(web(1), "a"), makeInstance(web(2), "a", { stopped })] });
    const obs = makeObservation("a", { domains: [makeDomain(web(1)), makeDomain(web(2), { state: "stopped" })] });
    const p = computePlan(makeInput({ config: makeConfig({ groups: [{ desired: 2 }] }), state, observations: [obs] }));
    expect(p.drift).toEqual([]);
    expect(p.groups[0]).toMatchObject({ current: 1, desired: 2 });
    expect(p.changes.map((c) => [c.action, c.reason])).toEqual([["create", "scale_out"]]);
    expect(p.warnings).toContain(
      "web[web-2] on host a is stopped (accepted by apply --refresh-only at 2025-05-01T00:00:00.000Z): left alone and not counted; start it again, or premiscale apply --replace web[web-2] removes it",
    );
  });

  it("remove it when --replace names it", () => {
    const state = makeState({ web: [makeInstance(web(1), "a"), makeInstance(web(2), "a", { stopped })] });
    const obs = makeObservation("a", { domains: [makeDomain(web(1)), makeDomain(web(2), { state: "stopped" })] });
    const p = computePlan(makeInput({ config: makeConfig({ groups: [{ desired: 1 }] }), state, observations: [obs], replace: ["web[web-2]"] }));
    expect(p.changes.map((c) => [c.action, c.name, c.reason])).toEqual([["delete", web(2), "replace_requested"]]);
  });

  it("count it again once it runs", () => {
    const state = makeState({ web: [makeInstance(web(1), "a"), makeInstance(web(2), "a", { stopped })] });
    const obs = makeObservation("a", { domains: [makeDomain(web(1)), makeDomain(web(2))] });
    const p = computePlan(makeInput({ config: makeConfig({ groups: [{ desired: 2 }] }), state, observations: [obs] }));
    expect(p.changes).toEqual([]);
  });
});
