import { describe, expect, it } from "vitest";
import { computePlan } from "./compute-plan.js";
import type { Plan } from "./plan.js";
import { renderPlanMarkdown } from "./render-markdown.js";
import { makeConfig, makeDomain, makeInput, makeInstance, makeObservation, makeState } from "./testing.js";

const twoGroups = (): Plan => {
  const config = makeConfig({ hosts: ["local"], groups: [{ desired: 3 }, { name: "db", desired: 0 }] });
  const state = makeState({ web: [makeInstance("web-1", "local"), makeInstance("web-2", "local")], db: [makeInstance("db-1", "local")] });
  const obs = makeObservation("local", { domains: [makeDomain("web-1"), makeDomain("web-2", { state: "stopped" }), makeDomain("db-1")] });
  return computePlan(makeInput({ config, state, observations: [obs] }));
};

describe("renderPlanMarkdown", () => {
  it("renders header, warning, drift, group reasons, the diff, the summary, a backtest and the next step", () => {
    const md = renderPlanMarkdown(twoGroups(), {
      title: "premiscale plan `abc`",
      baseMoved: { planSerial: 3, currentSerial: 5 },
      backtest: "| policy | max |\n|---|---|\n| old | 4 |\n",
      next: "Merge this branch to apply it.",
    });
    expect(md).toBe(
      [
        "### premiscale plan `abc`",
        "",
        "Made on lineage `11111111`, state serial 3; expires 2025-06-01T13:00:00.000Z.",
        "",
        "> [!WARNING]",
        "> **The base moved:** this plan was made at state serial 3, and state is now at serial 5.",
        "> Applying it will be refused: run `premiscale plan` again.",
        "",
        "**Objects changed outside premiscale:**",
        "",
        "- `web[web-2]` on host `local`: is stopped",
        "",
        "To accept it into state, changing no VM: premiscale apply --refresh-only",
        "",
        "| group | now | desired | why |",
        "| --- | ---: | ---: | --- |",
        "| `web` | 1 | 3 | desired: 3 in config |",
        "| `db` | 1 | 0 | desired: 0 in config |",
        "",
        "```diff",
        "# group web: 1 -> 3 (desired: 3 in config)",
        "- web[web-2] on host local   # replace stopped: domain is stopped: remove it",
        "+ web[web-00000001] on host local (1 vCPU, 128 MiB)   # replace stopped: replaces web-2",
        "+ web[web-00000002] on host local (1 vCPU, 128 MiB)   # scale out: desired 3 > current 1 (desired: 3 in config)",
        "",
        "# group db: 1 -> 0 (desired: 0 in config)",
        "- db[db-1] on host local   # scale in: desired 0 < current 1 (desired: 0 in config)",
        "```",
        "",
        "**Plan: 2 to add, 0 to change, 2 to destroy.**",
        "",
        "#### Policy backtest",
        "",
        "| policy | max |",
        "|---|---|",
        "| old | 4 |",
        "",
        "* :arrow_forward: Merge this branch to apply it.",
        "",
      ].join("\n"),
    );
  });

  it("folds a diff longer than 20 lines into <details> and keeps the summary line outside it", () => {
    const plan = computePlan(makeInput({ config: makeConfig({ hosts: ["local"], groups: [{ desired: 25, max: 30 }] }) }));
    const md = renderPlanMarkdown(plan);
    const open = md.indexOf("<details><summary>Show the plan (26 lines)</summary>");
    const close = md.indexOf("</details>");
    const summary = md.indexOf("**Plan: 25 to add, 0 to change, 0 to destroy.**");
    expect(open).toBeGreaterThan(0);
    expect(md.slice(open, close)).toContain("```diff\n# group web: 0 -> 25");
    expect(summary).toBeGreaterThan(close);
    expect(md.match(/^\+ web\[/gm)).toHaveLength(25);
  });

  it("leaves a short diff open, and the fold threshold can be changed", () => {
    const plan = computePlan(makeInput({ config: makeConfig({ hosts: ["local"], groups: [{ desired: 2 }] }) }));
    expect(renderPlanMarkdown(plan)).not.toContain("<details>");
    expect(renderPlanMarkdown(plan, { collapseAboveLines: 2 })).toContain("<details><summary>Show the plan (3 lines)</summary>");
  });

  it("says there are no changes, without a diff or a next step", () => {
    const plan = computePlan(makeInput({ config: makeConfig({ groups: [{ desired: 0 }] }) }));
    const md = renderPlanMarkdown(plan);
    expect(md).toContain("**No changes. Your infrastructure matches the configuration.**");
    expect(md).not.toContain("```");
    expect(md).not.toContain(":arrow_forward:");
    expect(md).toContain("no state yet, state serial 0");
  });

  it("lists warnings and shortfalls", () => {
    const config = makeConfig({ hosts: ["local"], groups: [{ desired: 3 }] });
    const plan = computePlan(
      makeInput({ config, state: makeState({ web: [makeInstance("web-1", "local")] }), observations: [makeObservation("local", { unreachable: "refused" })] }),
    );
    const md = renderPlanMarkdown(plan);
    expect(md).toContain("> **Warning:** host local unreachable: 1 instance of group web not checked");
    expect(md).toContain("**Shortfall:** group web: 2 of 2 new VMs cannot be made yet: host local: unreachable");
    expect(md).toContain("| `web` | 1 | 3 |");
    expect(md).toContain("**Plan: 0 to add, 0 to change, 0 to destroy.**");
    expect(md).toContain("Short: 2 VMs of web cannot be made yet");
  });

  it("lists errors and tells the reviewer to fix and plan again", () => {
    const plan = computePlan(makeInput({ config: makeConfig({ hosts: ["local"] }), targets: ["nope"] }));
    const md = renderPlanMarkdown(plan);
    expect(md).toContain("**Error:** group `nope`: --target names no group in config (groups: web)");
    expect(md).toContain("* :arrow_forward: Fix the errors above, then run `premiscale plan` again.");
  });

  it("keeps text from the plan from breaking the markup: table pipes, HTML, backtick fences", () => {
    const plan = twoGroups();
    const web = plan.groups.find((g) => g.name === "web")!;
    web.reason = "a | b <script>";
    plan.changes[0]!.detail = "```\n**not bold**";
    const md = renderPlanMarkdown(plan, { notices: ["plan `x` was refused"] });
    expect(md).toContain("| `web` | 1 | 3 | a \\| b &lt;script&gt; |");
    // The fence is longer than the backtick run inside, so the detail cannot close it.
    expect(md).toMatch(/^````diff$/m);
    expect(md).toMatch(/^````$/m);
    expect(md).toContain("> **Note:** plan `x` was refused");
  });

  it("mentions targeting and the groups left unchanged", () => {
    const config = makeConfig({ hosts: ["local"], groups: [{ desired: 1 }, { name: "db", desired: 0 }, { name: "cache", desired: 0 }] });
    const plan = computePlan(makeInput({ config, targets: ["web", "db"] }));
    const md = renderPlanMarkdown(plan);
    expect(md).toContain("> **Targeted:** only `web`, `db`; the plan may be incomplete.");
    expect(md).toContain("1 other group unchanged.");
  });
});
