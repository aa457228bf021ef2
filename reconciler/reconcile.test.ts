import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parsePlan } from "../planner/plan-file.js";
import { FakeProvider } from "../providers/fake-provider.js";
import type { CallOptions, VmSpec } from "../providers/provider.js";
import { ConfigRepo } from "./config-repo.js";
import { git } from "../state/git.js";
import { reconcileOnce, type ReconcileEvent, type ReconcileOptions } from "./reconcile.js";
import { RemoteLock } from "./remote-lock.js";
import { localSteps } from "./steps.js";
import { makeRemote, pushUserCommit, remoteFile, remoteRef, tempDir, userClone } from "./testing.js";

const config = (desired: number, extra = "") => `version: v1alpha1
state:
  path: ./premiscale-state
hosts:
  - name: kvm1
    uri: test:///default
groups:
  - name: web
    max: 10
    desired: ${desired}
    hosts: [kvm1]
    template:
      memoryMiB: 128
      disk: { baseImage: base.qcow2 }
    readiness: { checkIn: false }
${extra}`;

/** A reconciler on its own clone (its own machine), driving `provider` through the real planner, applier and state. */
async function reconciler(remote: string, provider: FakeProvider, host = "machine") {
  const repo = new ConfigRepo({ source: remote, branch: "main", workDir: join(await tempDir(), "work") });
  const lock = new RemoteLock({ dir: repo.dir, ttlSeconds: 60, identity: { host } });
  const steps = localSteps({ makeProvider: () => provider, env: {} });
  const events: ReconcileEvent[] = [];
  const run = (o: Partial<ReconcileOptions> = {}, now?: () => Date) =>
    reconcileOnce({ repo, lock, steps, now }, { mode: "auto", onEvent: (e) => events.push(e), ...o });
  return { repo, run, events };
}

async function stateOnRemote(remote: string): Promise<{ serial: number; names: string[] }> {
  const root = JSON.parse((await remoteFile(remote, "main", "premiscale-state/state.json")) ?? '{"serial":0}') as { serial: number };
  const group = await remoteFile(remote, "main", "premiscale-state/groups/web.json");
  const names = group ? (JSON.parse(group) as { instances: { name: string }[] }).instances.map((i) => i.name) : [];
  return { serial: root.serial, names };
}

const commitsOnMain = async (remote: string) => Number((await git(remote, ["rev-list", "--count", "main"])).stdout.trim());
const isAncestor = async (remote: string, a: string, b: string) => (await git(remote, ["merge-base", "--is-ancestor", a, b], { allowFail: true })).exitCode === 0;

describe("reconcileOnce, auto mode", () => {
  it("applies the config, pushes one state commit, and converges", async () => {
    const remote = await makeRemote({ "premiscale.yaml": config(2) });
    const provider = new FakeProvider("kvm1");
    const r = await reconciler(remote, provider);
    const first = await r.run({ trigger: "start" });
    expect(first).toMatchObject({ outcome: "applied", applied: { added: 2, destroyed: 0, failed: 0 } });
    expect(provider.domains.size).toBe(2);
    expect((await stateOnRemote(remote)).names).toHaveLength(2);
    expect(await remoteRef(remote, "refs/heads/main")).toBe(first.commit);
    expect(await commitsOnMain(remote)).toBe(2);
    expect((await git(remote, ["log", "-1", "--format=%s", "main"])).stdout).toContain("premiscale apply: 2 added");
    // The lock is released.
    expect(await remoteRef(remote, "refs/premiscale/lock")).toBeNull();
    expect(r.events.map((e) => e.type)).toEqual(
      expect.arrayContaining(["pass_start", "lock_acquired", "synced", "plan_ready", "apply", "applied", "state_pushed", "pass_done"]),
    );

    expect((await r.run()).outcome).toBe("no_changes");
    expect(await commitsOnMain(remote)).toBe(2);

    await pushUserCommit(await userClone(remote), { "premiscale.yaml": config(3) }, "web: 3");
    expect(await r.run({ trigger: "webhook" })).toMatchObject({ outcome: "applied", applied: { added: 1 } });
    expect((await stateOnRemote(remote)).names).toHaveLength(3);
  });

  it("does not apply an invalid config commit, reports it, and keeps the last good state", async () => {
    const remote = await makeRemote({ "premiscale.yaml": config(1) });
    const provider = new FakeProvider("kvm1");
    const r = await reconciler(remote, provider);
    await r.run();
    const before = await stateOnRemote(remote);
    const bad = await pushUserCommit(await userClone(remote), { "premiscale.yaml": config(1).replace("max: 10", "max: -1") }, "broken");
    provider.calls.length = 0;
    const res = await r.run();
    expect(res).toMatchObject({ outcome: "invalid_config", error: { code: "config_invalid", message: expect.stringContaining("groups[0].max") } });
    expect(r.events).toContainEqual(expect.objectContaining({ type: "config_invalid", commit: bad }));
    expect(provider.calls).toEqual([]);
    expect(await stateOnRemote(remote)).toEqual(before);
    expect(await remoteRef(remote, "refs/heads/main")).toBe(bad);
  });

  it("lets exactly one of two racing reconcilers apply; the other says who holds the lock", async () => {
    const remote = await makeRemote({ "premiscale.yaml": config(2) });
    const provider = new FakeProvider("kvm1");
    provider.delayMs = 100;
    const a = await reconciler(remote, provider, "machine-a");
    const b = await reconciler(remote, provider, "machine-b");
    await Promise.all([a.repo.ensureClone(), b.repo.ensureClone()]);
    const results = await Promise.all([a.run(), b.run()]);
    const outcomes = results.map((x) => x.outcome).sort();
    expect(outcomes).toEqual(["applied", "locked"]);
    const loser = results.find((x) => x.outcome === "locked")!;
    expect(["machine-a", "machine-b"]).toContain(loser.holder?.host);
    expect(provider.calls.filter((c) => c.startsWith("create"))).toHaveLength(2);
    expect(await commitsOnMain(remote)).toBe(2);
    // The loser, once the lock is free, finds nothing to do.
    const again = loser === results[0] ? a : b;
    expect((await again.run()).outcome).toBe("no_changes");
  });

  it("when the remote moves during the apply: fetches, re-plans on the new config, applies and pushes, never forcing", async () => {
    const remote = await makeRemote({ "premiscale.yaml": config(2) });
    const user = await userClone(remote);
    let pushing: Promise<string> | null = null;
    // The user pushes desired: 3 while the first VM is being created.
    class PushingProvider extends FakeProvider {
      override async createVm(spec: VmSpec, options?: CallOptions): Promise<void> {
        pushing ??= pushUserCommit(user, { "premiscale.yaml": config(3) }, "web: 3 (pushed during apply)");
        await pushing;
        return super.createVm(spec, options);
      }
    }
    const provider = new PushingProvider("kvm1");
    const r = await reconciler(remote, provider);
    const res = await r.run();
    expect(res.outcome).toBe("applied");
    expect(r.events.filter((e) => e.type === "remote_moved")).toHaveLength(1);
    expect(r.events.filter((e) => e.type === "applied").map((e) => (e.type === "applied" ? e.added : 0))).toEqual([2, 1]);
    expect(provider.domains.size).toBe(3);
    expect((await stateOnRemote(remote)).names).toHaveLength(3);
    // The user's commit is kept (the remote refuses non-fast-forward pushes, so nothing was forced).
    expect(await isAncestor(remote, await pushing!, "main")).toBe(true);
    expect(await remoteRef(remote, "refs/heads/main")).toBe(res.commit);
  });

  it("leaves suspended groups alone", async () => {
    const remote = await makeRemote({ "premiscale.yaml": config(2) });
    const provider = new FakeProvider("kvm1");
    const r = await reconciler(remote, provider);
    expect((await r.run({ isSuspended: (g) => g.name === "web" })).outcome).toBe("suspended");
    expect(r.events).toContainEqual({ type: "group_suspended", group: "web" });
    expect(provider.calls).toEqual([]);
  });

  it("on abort finishes the changes in flight, commits and pushes state, releases the lock; the next pass converges", async () => {
    const remote = await makeRemote({ "premiscale.yaml": config(4) });
    const provider = new FakeProvider("kvm1");
    provider.delayMs = 150;
    const r = await reconciler(remote, provider);
    const ac = new AbortController();
    const steps = localSteps({ makeProvider: () => provider, env: {}, parallelism: 1 });
    const lock = new RemoteLock({ dir: r.repo.dir, ttlSeconds: 60 });
    const events: ReconcileEvent[] = [];
    const pass = reconcileOnce({ repo: r.repo, lock, steps }, { mode: "auto", signal: ac.signal, onEvent: (e) => {
      events.push(e);
      if (e.type === "apply" && e.event.type === "apply_start") ac.abort();
    } });
    const res = await pass;
    expect(res.outcome).toBe("interrupted");
    expect(res.applied).toEqual({ added: 1, destroyed: 0, failed: 3 });
    expect((await stateOnRemote(remote)).names).toHaveLength(1);
    expect(await remoteRef(remote, "refs/premiscale/lock")).toBeNull();
    expect(await r.run()).toMatchObject({ outcome: "applied", applied: { added: 3 } });
    expect(provider.domains.size).toBe(4);
  });

  it("reports an unreachable remote as a failed pass, without throwing", async () => {
    const r = await reconciler(join(await tempDir(), "gone.git"), new FakeProvider("kvm1"));
    const res = await r.run();
    expect(res).toMatchObject({ outcome: "failed", error: { code: "remote_unreachable" } });
    expect(r.events.map((e) => e.type)).toEqual(["pass_start", "pass_failed", "pass_done"]);
  });
});

describe("reconcileOnce, review mode", () => {
  it("publishes the plan on a branch with plan.json and plan.md, once; merging it applies it", async () => {
    const remote = await makeRemote({ "premiscale.yaml": config(2) });
    const provider = new FakeProvider("kvm1");
    const r = await reconciler(remote, provider);
    const published = await r.run({ mode: "review" });
    expect(published.outcome).toBe("published");
    const branch = published.branch!;
    expect(branch).toBe(`premiscale/plan/${published.planId}`);
    const plan = parsePlan((await remoteFile(remote, branch, ".premiscale/plan.json"))!);
    expect(plan.summary).toEqual({ add: 2, change: 0, destroy: 0 });
    const md = (await remoteFile(remote, branch, ".premiscale/plan.md"))!;
    expect(md).toContain("**Plan: 2 to add, 0 to change, 0 to destroy.**");
    expect(md).toContain("```diff\n# group web: 0 -> 2");
    expect(md).toContain(`Merge branch \`${branch}\` into \`main\``);
    expect(provider.calls).toEqual([]);
    expect(await commitsOnMain(remote)).toBe(1);

    expect(await r.run({ mode: "review" })).toMatchObject({ outcome: "already_published", branch });

    const user = await userClone(remote);
    await git(user, ["fetch", "--quiet", "origin", branch]);
    await git(user, ["merge", "--quiet", "--no-edit", "FETCH_HEAD"]);
    await git(user, ["push", "--quiet", "origin", "HEAD:main"]);

    const applied = await r.run({ mode: "review" });
    expect(applied).toMatchObject({ outcome: "applied", planId: published.planId, applied: { added: 2 } });
    // Exactly the reviewed VMs were made.
    expect([...provider.domains.keys()].sort()).toEqual(plan.changes.map((c) => c.name).sort());
    expect(await remoteFile(remote, "main", ".premiscale/plan.json")).toBeNull();
    expect((await stateOnRemote(remote)).names).toHaveLength(2);
    expect((await r.run({ mode: "review" })).outcome).toBe("no_changes");
  });

  it("refuses a merged plan made stale by a newer state, reports it and plans again", async () => {
    const remote = await makeRemote({ "premiscale.yaml": config(2) });
    const provider = new FakeProvider("kvm1");
    const r = await reconciler(remote, provider);
    const published = await r.run({ mode: "review" });
    // Meanwhile state moves on (an apply in auto mode), then the old plan is merged.
    await r.run({ mode: "auto" });
    await pushUserCommit(await userClone(remote), { "premiscale.yaml": config(3) }, "web: 3");
    const user = await userClone(remote);
    await git(user, ["fetch", "--quiet", "origin", published.branch!]);
    await git(user, ["merge", "--quiet", "--no-edit", "FETCH_HEAD"]);
    await git(user, ["push", "--quiet", "origin", "HEAD:main"]);
    const creates = provider.calls.length;

    const res = await r.run({ mode: "review" });
    expect(r.events).toContainEqual(expect.objectContaining({ type: "plan_refused", planId: published.planId, error: expect.objectContaining({ code: "plan_stale" }) }));
    expect(provider.calls.length).toBe(creates);
    expect(res.outcome).toBe("published");
    expect(await remoteFile(remote, "main", ".premiscale/plan.json")).toBeNull();
    const md = (await remoteFile(remote, res.branch!, ".premiscale/plan.md"))!;
    expect(md).toContain(`the merged plan ${published.planId} was refused: Saved plan is stale`);
    expect(md).toContain("**Plan: 1 to add, 0 to change, 0 to destroy.**");
  });

  it("refuses an expired merged plan", async () => {
    const remote = await makeRemote({ "premiscale.yaml": config(1) });
    const r = await reconciler(remote, new FakeProvider("kvm1"));
    const published = await r.run({ mode: "review" });
    const user = await userClone(remote);
    await git(user, ["fetch", "--quiet", "origin", published.branch!]);
    await git(user, ["merge", "--quiet", "--no-edit", "FETCH_HEAD"]);
    await git(user, ["push", "--quiet", "origin", "HEAD:main"]);
    const later = new Date(Date.now() + 2 * 86_400_000);
    await r.run({ mode: "review" }, () => later);
    expect(r.events).toContainEqual(expect.objectContaining({ type: "plan_refused", error: expect.objectContaining({ code: "plan_expired" }) }));
  });

  it("publishes an invalid config's error as markdown on a branch, and applies nothing", async () => {
    const remote = await makeRemote({ "premiscale.yaml": "version: v1alpha1\nhosts: []\n" });
    const provider = new FakeProvider("kvm1");
    const r = await reconciler(remote, provider);
    const res = await r.run({ mode: "review" });
    const head = (await remoteRef(remote, "refs/heads/main"))!;
    expect(res).toMatchObject({ outcome: "invalid_config", branch: `premiscale/plan/invalid-${head.slice(0, 12)}` });
    const md = (await remoteFile(remote, res.branch!, ".premiscale/plan.md"))!;
    expect(md).toContain(`the config at \`${head.slice(0, 12)}\` on \`main\` is invalid`);
    expect(md).toContain("premiscale.yaml");
    expect(provider.calls).toEqual([]);
  });
});

describe("planId", () => {
  it("is the same for a plan and the plan read back from its file", async () => {
    const { computePlan } = await import("../planner/compute-plan.js");
    const { serializePlan } = await import("../planner/plan-file.js");
    const { makeConfig, makeInput } = await import("../planner/testing.js");
    const { planId } = await import("./reconcile.js");
    const plan = computePlan(makeInput({ config: makeConfig({ groups: [{ desired: 2 }] }) }));
    expect(planId(parsePlan(serializePlan(plan)))).toBe(planId(plan));
    const other = computePlan(makeInput({ config: makeConfig({ groups: [{ desired: 3 }] }) }));
    expect(planId(other)).not.toBe(planId(plan));
  });
});
