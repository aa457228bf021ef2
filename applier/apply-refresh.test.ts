import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { computeRefreshPlan } from "../planner/refresh-plan.js";
import { makeConfig, makeDomain, makeInput, makeInstance, makeObservation, TEST_LINEAGE } from "../planner/testing.js";
import { GitStateStore } from "../state/git-state-store.js";
import { git } from "../state/git.js";
import { applyRefresh } from "./apply-refresh.js";

describe("applyRefresh", () => {
  it("records a refresh-only plan's updates in state, in one commit saying what and that no VM changed", async () => {
    const dir = join(await mkdtemp(join(tmpdir(), "premiscale-refresh-")), "state");
    const store = new GitStateStore(dir);
    const setup = await store.lock("apply", 1000);
    await setup.init(TEST_LINEAGE);
    for (const n of ["web-1", "web-2", "web-3"]) await setup.putInstance("web", makeInstance(n, "a"));
    await setup.commit("setup\n");
    await setup.release();

    const state = (await store.read())!;
    const obs = makeObservation("a", { domains: [makeDomain("web-1"), makeDomain("web-2", { state: "crashed" }), makeDomain("web-9")] });
    const plan = computeRefreshPlan(makeInput({ config: makeConfig({ groups: [{ desired: 3 }] }), state, observations: [obs] }));
    const lock = await store.lock("apply", 1000);
    const r = await applyRefresh(plan, lock);
    await lock.release();

    expect(r.recorded.map((u) => u.action)).toEqual(["mark_stopped", "forget", "adopt"]);
    const after = (await store.read())!.groups[0]!.instances;
    expect(after.map((i) => [i.name, i.stopped?.state ?? null])).toEqual([
      ["web-1", null],
      ["web-2", "crashed"],
      ["web-9", null],
    ]);
    const log = (await git(dir, ["log", "-1", "--format=%B"])).stdout;
    expect(log).toMatch(/^premiscale apply --refresh-only: 3 updates recorded, no VM changed\n/);
    expect(log).toContain("  forget web[web-3] on a: no longer exists on the host");
    expect((await git(dir, ["rev-list", "--count", "HEAD"])).stdout.trim()).toBe("2");
  });

  it("writes nothing and makes no commit when there is nothing to record", async () => {
    const dir = join(await mkdtemp(join(tmpdir(), "premiscale-refresh-")), "state");
    const store = new GitStateStore(dir);
    const plan = computeRefreshPlan(makeInput({ config: makeConfig(), observations: [makeObservation("a")] }));
    const lock = await store.lock("apply", 1000);
    expect(await applyRefresh(plan, lock)).toEqual({ recorded: [], commit: null });
    await lock.release();
    expect(await store.read()).toBeNull();
  });
});
