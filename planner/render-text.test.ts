import { describe, expect, it } from "vitest";
import { computePlan } from "./compute-plan.js";
import { renderPlanText, summaryLine } from "./render-text.js";
import { makeConfig, makeDomain, makeInput, makeInstance, makeObservation, makeState } from "./testing.js";

const config = makeConfig({ hosts: ["local"], groups: [{ desired: 3 }] });

describe("renderPlanText", () => {
  it("shows drift, then the actions per group, then the summary line", () => {
    const state = makeState({ web: [makeInstance("web-1", "local"), makeInstance("web-2", "local"), makeInstance("web-3", "local")] });
    const obs = makeObservation("local", { domains: [makeDomain("web-1"), makeDomain("web-2", { state: "stopped" })] });
    const plan = computePlan(makeInput({ config, state, observations: [obs] }));
    expect(renderPlanText(plan)).toBe(
      [
        "Note: Objects have changed outside of premiscale",
        "",
        "  ~ web[web-2] on host local: is stopped",
        "  ~ web[web-3] on host local: no longer exists on the host",
        "",
        "To accept them into state, changing no VM: premiscale apply --refresh-only",
        "",
        "premiscale will perform the following actions:",
        "",
        "  # group web: 1 → 3 (desired: 3 in config)",
        "  - web[web-2] on host local   # replace stopped",
        "  - web[web-3] on host local (already gone: forget it)   # replace missing",
        "  + web[web-00000001] on host local (1 vCPU, 128 MiB)   # replace stopped",
        "  + web[web-00000002] on host local (1 vCPU, 128 MiB)   # replace missing",
        "",
        "Plan: 2 to add, 0 to change, 2 to destroy.",
        "",
      ].join("\n"),
    );
  });

  it("shows scale-in with its reason", () => {
    const state = makeState({ web: [makeInstance("web-1", "local"), makeInstance("web-2", "local")] });
    const obs = makeObservation("local", { domains: [makeDomain("web-1"), makeDomain("web-2")] });
    const plan = computePlan(makeInput({ config: makeConfig({ hosts: ["local"], groups: [{ desired: 1 }] }), state, observations: [obs] }));
    expect(renderPlanText(plan)).toContain("  # group web: 2 → 1 (desired: 1 in config)\n  - web[web-1] on host local   # scale in\n");
  });

  it("says there are no changes when there is nothing to do", () => {
    const plan = computePlan(makeInput({ config: makeConfig({ groups: [{ desired: 0 }] }) }));
    expect(renderPlanText(plan)).toBe("No changes. Your infrastructure matches the configuration.\n");
  });

  it("lists warnings and the shortfall, which is never mistaken for no changes", () => {
    const observations = [makeObservation("local", { unreachable: "refused" })];
    const plan = computePlan(makeInput({ config, state: makeState({ web: [makeInstance("web-1", "local")] }), observations }));
    expect(renderPlanText(plan)).toBe(
      [
        "Warning: host local unreachable: 1 instance of group web not checked",
        "",
        "Shortfall: these groups stay below their desired size until there is room:",
        "",
        "  ! group web: 2 of 2 new VMs cannot be made yet: host local: unreachable",
        "",
        "Plan: 0 to add, 0 to change, 0 to destroy.",
        "Short: 2 VMs of web cannot be made yet; the rest of the plan goes ahead, and the next plan tries again.",
        "",
      ].join("\n"),
    );
  });

  it("lists errors just before the summary", () => {
    const plan = computePlan(makeInput({ config, targets: ["nope"] }));
    expect(renderPlanText(plan)).toContain('Error: group "nope": --target names no group in config (groups: web)\n\nPlan: 0 to add, 0 to change, 0 to destroy.\n');
  });

  it("says which creates wait for which deletes", () => {
    const small = makeConfig({ hosts: ["local"], groups: [{ desired: 1, template: { memoryMiB: 256 } }] });
    const state = makeState({ web: [makeInstance("web-1", "local", { status: "deleting", memoryMiB: 256, vcpus: 1 })] });
    const observations = [makeObservation("local", { domains: [makeDomain("web-1")], capacity: { freeMemoryMiB: 512 } })];
    const text = renderPlanText(computePlan(makeInput({ config: small, state, observations })));
    expect(text).toContain("  + web[web-00000001] on host local (1 vCPU, 256 MiB)   # scale out, waits for web[web-1]");
  });

  it("colors only when asked", () => {
    const plan = computePlan(makeInput({ config }));
    expect(renderPlanText(plan)).not.toContain("\x1b[");
    expect(renderPlanText(plan, { color: true })).toContain("\x1b[32m+\x1b[0m web[web-00000001]");
  });
});

describe("summaryLine", () => {
  it("counts adds and destroys", () => {
    expect(summaryLine(computePlan(makeInput({ config })))).toBe("Plan: 3 to add, 0 to change, 0 to destroy.");
  });
});
