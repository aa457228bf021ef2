import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Config } from "../config/types.js";
import { observeHosts } from "../pipeline/make-plan.js";
import { computePlan } from "../planner/compute-plan.js";
import type { Plan } from "../planner/plan.js";
import { makeConfig, makeInput, uuidSequence } from "../planner/testing.js";
import { FakeProvider } from "../providers/fake-provider.js";
import type { VmSpec } from "../providers/provider.js";
import { GitStateStore } from "../state/git-state-store.js";
import type { StateLock } from "../state/state-store.js";
import type { State } from "../state/types.js";
import { applyPlan, commitRecommendations, readinessHooks, type ApplyResult, type Readiness } from "./apply-plan.js";

// Roll-backs in apply (issue 14), with the fake provider and real git state: a roll-out whose later replacement never
// checks in is recorded as failed and rolled back as it happens; the next plan's apply puts the group back on the
// previous template. Then the same story with a crash (the process "dies": no more state writes or host calls) after
// each state write of each apply, and applies run again until nothing is left to do: it always converges.

const OLD = 128;
const NEW = 256;
const SIZE = 3;

/** The group: SIZE VMs that wait for their check-in, on one host, rolled with surge 1 and none unavailable. */
const configWith = (memoryMiB: number): Config =>
  makeConfig({ groups: [{ desired: SIZE, template: { memoryMiB }, readiness: { checkIn: true, timeoutSeconds: 1, heartbeatSeconds: 0, unhealthyAfterSeconds: 180 } }] });

/** Check-ins as a test controls them: the first VM of the new template checks in, every later one never does. */
function newTemplateFailsAfterOne(): Readiness & { failed: string[] } {
  const doomed = new Set<string>();
  let made = 0;
  const failed: string[] = [];
  return {
    failed,
    prepare(spec: VmSpec) {
      if (spec.memoryMiB === NEW && ++made > 1) doomed.add(spec.uuid);
      return spec;
    },
    async wait(vm) {
      if (doomed.has(vm.uuid)) {
        failed.push(vm.name);
        throw new Error(`${vm.name} did not check in within 1 s`);
      }
    },
  };
}

/** A state lock that "dies" after `after` writes: later writes (and the commit) never happen and never return. */
function dyingLock(lock: StateLock, after: number, onDeath: () => void): StateLock & { writes: () => number } {
  let writes = 0;
  let dead = false;
  const never = new Promise<never>(() => undefined);
  const write =
    <A extends unknown[], R>(fn: (...a: A) => Promise<R>) =>
    (...a: A): Promise<R> => {
      if (dead) return never;
      if (writes++ >= after) {
        dead = true;
        onDeath();
        return never;
      }
      return fn(...a);
    };
  return {
    info: lock.info,
    current: () => lock.current(),
    init: (l) => lock.init(l),
    putInstance: write((g, i) => lock.putInstance(g, i)),
    removeInstance: write((g, n) => lock.removeInstance(g, n)),
    putHistory: write((g, h) => lock.putHistory(g, h)),
    putRollout: write((g, r) => lock.putRollout(g, r)),
    putTemplate: write((g, t) => lock.putTemplate(g, t)),
    commit: write((m) => lock.commit(m)),
    release: () => lock.release(),
    writes: () => writes,
  };
}

async function world() {
  const dir = join(await mkdtemp(join(tmpdir(), "premiscale-rollback-")), "state");
  return { store: new GitStateStore(dir), host: new FakeProvider("a"), readiness: newTemplateFailsAfterOne(), uuids: uuidSequence(1) };
}
type World = Awaited<ReturnType<typeof world>>;

async function planFor(w: World, config: Config, provider: FakeProvider): Promise<Plan> {
  const state = await w.store.read();
  const observations = await observeHosts(new Map([["a", provider]]), config.hosts, state, config.groups);
  return computePlan(makeInput({ config, state, observations, newUuid: w.uuids, ...(state ? {} : { newLineage: "lin" }) }));
}

/**
 * Plans and applies once; with `dieAfter`, the process dies after that many state writes (the lock file goes, as
 * when a process is killed; the dead apply's calls to the host that had started finish, later ones never start).
 * Returns the result, or null when it died, and how many writes it made.
 */
async function applyOnce(w: World, config: Config, dieAfter = Infinity): Promise<{ plan: Plan; result: ApplyResult | null; writes: number }> {
  const provider = w.host.reopen();
  const plan = await planFor(w, config, provider);
  const real = await w.store.lock("apply", 5000);
  let died: () => void = () => undefined;
  const death = new Promise<null>((resolve) => (died = () => resolve(null)));
  const lock = dyingLock(real, dieAfter, () => {
    provider.gate = new Promise(() => undefined);
    died();
  });
  const applying = applyPlan(plan, { providers: new Map([["a", provider]]), lock, hostLimits: new Map(), env: {}, hooks: () => readinessHooks(w.readiness) }, { shutdownTimeoutMs: 0 });
  const result = await Promise.race([applying, death]);
  await real.release();
  return { plan, result, writes: lock.writes() };
}

/** Applies until a plan has nothing to do (at most `rounds` applies); returns the last plan. */
async function converge(w: World, config: Config, rounds = 6): Promise<Plan> {
  for (let i = 0; i < rounds; i++) {
    const { plan } = await applyOnce(w, config);
    if (plan.changes.length === 0) return plan;
  }
  return planFor(w, config, w.host.reopen());
}

/** The group is whole, back on the previous template, refusing the new one, with nothing half-made or leaked. */
async function expectRolledBack(w: World, last: Plan): Promise<State> {
  expect(last.changes).toEqual([]);
  const state = (await w.store.read())!;
  const g = state.groups.find((x) => x.name === "web")!;
  expect(g.instances.map((i) => [i.status, i.memoryMiB])).toEqual(Array(SIZE).fill(["running", OLD]));
  expect([...w.host.domains.keys()].sort()).toEqual(g.instances.map((i) => i.name).sort());
  expect(g.rollout?.rollback?.reason).toMatch(/^roll-out of template sha256:\w+ failed: web\[web-\w+\]: web-\w+ did not check in within 1 s$/);
  expect(g.rollout?.rollback?.failed).toBeUndefined();
  expect(g.template?.memoryMiB).toBe(OLD);
  expect(last.groups[0]!.rollback).toMatchObject({ planned: 0 });
  expect(last.warnings.find((x) => x.startsWith("group web runs its previous template"))).toBeDefined();
  return state;
}

describe("roll-back in apply", () => {
  it("records the roll-out with the template to go back to before any change, and its failure with the roll-back as it happens", async () => {
    const w = await world();
    const made = await applyOnce(w, configWith(OLD));
    expect(made.result?.failed).toEqual([]);
    const settled = (await w.store.read())!.groups[0]!;
    expect(settled.template).toMatchObject({ memoryMiB: OLD, digest: expect.stringMatching(/^sha256:/) });
    const old = settled.instances.map((i) => i.name);

    // The first host call of the roll-out already finds the roll-out, and the previous template, in state.
    const seen: (string | undefined)[] = [];
    const createVm = FakeProvider.prototype.createVm;
    FakeProvider.prototype.createVm = async function (this: FakeProvider, spec, o) {
      seen.push((await w.store.read())?.groups[0]?.rollout?.previous?.digest);
      return createVm.call(this, spec, o);
    };
    let out;
    try {
      out = await applyOnce(w, configWith(NEW));
    } finally {
      FakeProvider.prototype.createVm = createVm;
    }
    expect(seen[0]).toBe(settled.template!.digest);
    expect(out.plan.groups[0]!.rollout).toMatchObject({ start: true, total: SIZE, previous: settled.template });
    expect(out.result!.failed.map((f) => f.change.action + " " + f.change.reason)).toEqual(["create replace_drift", "delete replace_drift", "create replace_drift", "delete replace_drift"]);
    const after = (await w.store.read())!.groups[0]!;
    // One old VM was replaced before the second replacement failed; that one was destroyed; the rest are untouched.
    expect(after.instances.map((i) => i.memoryMiB).sort()).toEqual([OLD, OLD, NEW]);
    expect(after.instances.filter((i) => i.memoryMiB === OLD).map((i) => i.name)).toEqual(old.slice(1));
    expect([...w.host.domains.keys()].sort()).toEqual(after.instances.map((i) => i.name).sort());
    expect(after.rollout).toMatchObject({ replaced: 1, total: SIZE, previous: settled.template, failed: { message: `web[${w.readiness.failed[0]}]: ${w.readiness.failed[0]} did not check in within 1 s` } });
    expect(after.rollout?.rollback?.reason).toBe(`roll-out of template ${out.plan.groups[0]!.rollout!.config} failed: ${after.rollout!.failed!.message}`);
    expect(after.template).toEqual(settled.template); // the group did not settle on the new template

    // The next apply replaces the one new VM back, create before destroy, and the plan after it has nothing to do.
    const back = await applyOnce(w, configWith(NEW));
    expect(back.plan.changes.map((c) => `${c.action} ${c.reason}`)).toEqual(["delete replace_rollback", "create replace_rollback"]);
    expect(back.result?.failed).toEqual([]);
    await expectRolledBack(w, await planFor(w, configWith(NEW), w.host.reopen()));
  });

  it("stops a roll-back whose own VMs do not come up, and records why", async () => {
    const w = await world();
    await applyOnce(w, configWith(OLD));
    await applyOnce(w, configWith(NEW));
    // Now no VM checks in at all: the previous template's cannot either.
    w.readiness.wait = async (vm) => {
      throw new Error(`${vm.name} did not check in within 1 s`);
    };
    const r = await applyOnce(w, configWith(NEW));
    expect(r.result?.failed.map((f) => f.change.reason)).toEqual(["replace_rollback", "replace_rollback"]);
    const g = (await w.store.read())!.groups[0]!;
    expect(g.rollout?.rollback?.failed?.message).toMatch(/did not check in within 1 s/);
    expect(g.instances.map((i) => i.memoryMiB).sort()).toEqual([OLD, OLD, NEW]);
    const next = await planFor(w, configWith(NEW), w.host.reopen());
    expect(next.changes).toEqual([]);
    expect(next.warnings.find((x) => x.includes("the roll-back stopped"))).toBeDefined();
  });

  it("records the template of a group whose state predates roll-backs with a plan that changes nothing", async () => {
    const w = await world();
    await applyOnce(w, configWith(OLD));
    const lock = await w.store.lock("test", 1000);
    await lock.putTemplate("web", undefined);
    await lock.commit("test: state from before roll-backs\n");
    await lock.release();
    const plan = await planFor(w, configWith(OLD), w.host.reopen());
    expect(plan.changes).toEqual([]);
    expect(plan.groups[0]!.template?.memoryMiB).toBe(OLD);
    const again = await w.store.lock("apply", 1000);
    expect(await commitRecommendations(plan, again, new Date())).toMatch(/^[0-9a-f]{40}$/);
    await again.release();
    expect((await w.store.read())!.groups[0]!.template?.memoryMiB).toBe(OLD);
  });

  it(
    "converges after the process dies after any state write of the roll-out or of the roll-back: whole, back on the previous template, nothing leaked",
    async () => {
      // How many writes each apply makes when nothing dies.
      const clean = await world();
      await applyOnce(clean, configWith(OLD));
      const rollWrites = (await applyOnce(clean, configWith(NEW))).writes;
      const backWrites = (await applyOnce(clean, configWith(NEW))).writes;
      await expectRolledBack(clean, await planFor(clean, configWith(NEW), clean.host.reopen()));
      expect(rollWrites).toBeGreaterThan(5);
      expect(backWrites).toBeGreaterThan(3);

      const cases: { phase: "roll-out" | "roll-back"; after: number }[] = [
        ...Array.from({ length: rollWrites }, (_, after) => ({ phase: "roll-out" as const, after })),
        ...Array.from({ length: backWrites }, (_, after) => ({ phase: "roll-back" as const, after })),
      ];
      for (const { phase, after } of cases) {
        const w = await world();
        await applyOnce(w, configWith(OLD));
        if (phase === "roll-back") await applyOnce(w, configWith(NEW));
        const died = await applyOnce(w, configWith(NEW), after);
        expect(died.result, `${phase}: died after write ${after}`).toBeNull();
        await expectRolledBack(w, await converge(w, configWith(NEW)));
      }
    },
    120_000,
  );
});
