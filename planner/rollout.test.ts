import { describe, expect, it } from "vitest";
import type { GroupConfig } from "../config/types.js";
import type { RolloutState, State } from "../state/types.js";
import { computePlan } from "./compute-plan.js";
import type { Change, Plan } from "./plan.js";
import { renderPlanText } from "./render-text.js";
import { makeConfig, makeInput, makeObservation, simulateApply, TEST_NOW, uuidSequence } from "./testing.js";

// Template roll-outs (issue 14): instances record the fingerprint of what they were made from; a changed template,
// an instance past its lifetime, or --replace makes the plan replace them in chained batches.

type GroupSpec = Parameters<typeof makeConfig>[0] extends infer O ? (O extends { groups?: (infer G)[] } ? G : never) : never;

/** A world where `count` VMs of group web were made from the original template, then the config changed by `change`. */
function rolled(count: number, change: Partial<GroupSpec>, opts: { hosts?: string[]; rollout?: RolloutState; tweak?: (s: State) => void } = {}) {
  const hosts = opts.hosts ?? ["a"];
  const before = makeConfig({ hosts, groups: [{ desired: count }] });
  const observations = hosts.map((h) => makeObservation(h));
  const first = computePlan(makeInput({ config: before, observations }));
  const applied = simulateApply(first, null, makeInput({ config: before, observations }).observations);
  const state = applied.state;
  if (opts.rollout) state.groups[0]!.rollout = opts.rollout;
  opts.tweak?.(state);
  const config = makeConfig({ hosts, groups: [{ desired: count, ...change }] });
  return { config, state, observations: applied.observations, names: state.groups[0]!.instances.map((i) => i.name) };
}

const plan = (w: ReturnType<typeof rolled>, extra: Partial<Parameters<typeof makeInput>[0]> = {}): Plan =>
  computePlan(makeInput({ config: w.config, state: w.state, observations: w.observations, newUuid: uuidSequence(100), ...extra }));

const bigger: Partial<GroupSpec> = { template: { memoryMiB: 256 } };
const rollout = (r: Partial<GroupConfig["rollout"]>): Partial<GroupSpec> => ({ rollout: { strategy: "rolling", maxSurge: 1, maxUnavailable: 0, checkpoints: [], checkpointPauseSeconds: 0, rollback: true, ...r } });

describe("template drift", () => {
  it("shows each VM made from an older template with the field that changed", () => {
    const w = rolled(2, bigger);
    const p = plan(w);
    expect(p.drift).toEqual(w.names.map((name) => ({ kind: "out_of_date", group: "web", name, host: "a", detail: "made from an older template: memoryMiB 128 → 256" })));
  });

  it("renders out-of-date VMs as drift and their replacements as create-before-destroy", () => {
    const w = rolled(1, bigger);
    const text = renderPlanText(plan(w));
    const [a] = w.names as [string];
    expect(text).toContain(`  ~ web[${a}] on host a: made from an older template: memoryMiB 128 → 256`);
    expect(text).toContain(`+/- web[web-00000064] on host a (1 vCPU, 256 MiB) replaces web[${a}]   # replace drift`);
    expect(text).toContain(`  - web[${a}] on host a   # replace drift, waits for web[web-00000064]`);
  });

  it("plans no change when the template is the same", () => {
    const w = rolled(3, {});
    expect(plan(w).changes).toEqual([]);
    expect(plan(w).drift).toEqual([]);
  });

  it("replaces them one at a time with surge 1 and none unavailable: create, then delete the old once it is ready, then the next", () => {
    const w = rolled(3, bigger);
    const p = plan(w);
    const [a, b, c] = w.names as [string, string, string];
    const creates = p.changes.filter((x) => x.action === "create") as Extract<Change, { action: "create" }>[];
    expect(creates.map((x) => [x.reason, x.replaces, x.vm.memoryMiB])).toEqual([
      ["replace_drift", `web[${a}]`, 256],
      ["replace_drift", `web[${b}]`, 256],
      ["replace_drift", `web[${c}]`, 256],
    ]);
    const byName = new Map<string, Change>(p.changes.map((x) => [x.name, x]));
    expect(byName.get(a)?.waits_for).toEqual([creates[0]!.address]);
    expect(creates[1]!.waits_for).toEqual([creates[0]!.address, `web[${a}]`].sort());
    expect(byName.get(b)?.waits_for).toEqual([creates[1]!.address]);
    expect(creates[2]!.waits_for).toEqual([creates[1]!.address, `web[${b}]`].sort());
    expect(p.groups[0]?.rollout).toEqual({
      template: expect.stringMatching(/^sha256:/),
      total: 3,
      replaced: 0,
      planned: 3,
      config: expect.stringMatching(/^sha256:/),
      start: true,
      // What a roll-back would go back to: the template the group settled on when it was made.
      previous: { ...w.state.groups[0]!.template!, memoryMiB: 128 },
    });
    expect(p.summary).toEqual({ add: 3, change: 0, destroy: 3 });
  });

  it("with maxUnavailable, deletes that many first and creates their replacements after", () => {
    const w = rolled(2, { ...bigger, ...rollout({ maxSurge: 0, maxUnavailable: 1 }) });
    const p = plan(w);
    const [a] = w.names;
    const del = p.changes.find((x) => x.name === a)!;
    expect(del.waits_for).toBeUndefined();
    const create = p.changes.find((x) => x.action === "create" && x.replaces === `web[${a}]`)!;
    expect(create.waits_for).toEqual([`web[${a}]`]);
  });

  it("resolves percentages of the size: 50% of 4 is a batch of two, both created before their olds go", () => {
    const w = rolled(4, { ...bigger, ...rollout({ maxSurge: "50%" }) });
    const p = plan(w);
    const creates = p.changes.filter((x) => x.action === "create");
    expect(creates[0]!.waits_for).toBeUndefined();
    expect(creates[1]!.waits_for).toBeUndefined();
    expect(creates[2]!.waits_for).toHaveLength(4); // the whole first batch: two creates and two deletes
  });

  it("shows a manual group's out-of-date VMs without replacing them, until --replace names the group or one VM", () => {
    const w = rolled(2, { ...bigger, ...rollout({ strategy: "manual" }) });
    const p = plan(w);
    expect(p.changes).toEqual([]);
    expect(p.warnings).toContain("group web: 2 VMs out of date, roll-out is manual: premiscale apply --replace web (or web[NAME]) replaces them");
    expect(plan(w, { replace: ["web"] }).changes.filter((c) => c.action === "delete").map((c) => c.name)).toEqual(w.names);
    const one = plan(w, { replace: [`web[${w.names[1]}]`] });
    expect(one.changes.filter((c) => c.action === "delete").map((c) => [c.name, c.reason])).toEqual([[w.names[1], "replace_requested"]]);
  });

  it("never replaces a protected VM for drift or age, only when --replace names it", () => {
    const w = rolled(2, bigger, { tweak: (s) => (s.groups[0]!.instances[0]!.protected = true) });
    const p = plan(w);
    const [a, b] = w.names;
    expect(p.changes.filter((c) => c.action === "delete").map((c) => c.name)).toEqual([b]);
    expect(p.drift.find((d) => d.name === a)?.detail).toMatch(/\(protected\)$/);
    expect(plan(w, { replace: [`web[${a}]`] }).changes.filter((c) => c.action === "delete").map((c) => c.name).sort()).toEqual([a, b].sort());
  });

  it("never chooses a protected VM for scale-in, also when a decision names it, and says why the group stays larger", () => {
    const w = rolled(3, { desired: 1 }, { tweak: (s) => s.groups[0]!.instances.forEach((i, k) => k < 2 && (i.protected = true)) });
    const [a, b, c] = w.names as [string, string, string];
    const p = plan(w);
    expect(p.changes.map((x) => [x.action, x.name])).toEqual([["delete", c]]);
    expect(p.warnings).toContain("group web: 1 more instance should go, but the rest are kept, protected or on hosts that were not checked");
    const named = plan(w, { decide: () => ({ group: "web", desired: 2, code: "test", reason: "test", source: "test", remove: [a] }) });
    expect(named.changes.map((x) => [x.action, x.name])).toEqual([["delete", c]]);
    expect(named.warnings).toContain(`group web: ${a} is named for removal by test, but it is protected from scale-in (premiscale unprotect, or apply --replace): it is kept`);
    expect(plan(w, { replace: [`web[${b}]`] }).changes.filter((x) => x.action === "delete").map((x) => x.name)).toContain(b);
  });

  it("replaces VMs older than maxInstanceLifetimeSeconds the same way", () => {
    const w = rolled(2, { maxInstanceLifetimeSeconds: 3600 }, { tweak: (s) => (s.groups[0]!.instances[1]!.created = new Date(TEST_NOW.getTime() - 7200_000).toISOString()) });
    const p = plan(w);
    expect(p.changes.filter((c) => c.action === "delete").map((c) => [c.name, c.reason])).toEqual([[w.names[1], "replace_lifetime"]]);
    expect(p.drift).toEqual([expect.objectContaining({ kind: "expired", name: w.names[1] })]);
  });

  it("takes out-of-date VMs first when the group also shrinks", () => {
    const w = rolled(3, { desired: 2 }, { tweak: (s) => (s.groups[0]!.instances[2]!.template = { ...s.groups[0]!.instances[2]!.template, memoryMiB: 64 }) });
    const p = plan(w);
    expect(p.changes.map((c) => [c.action, c.name, c.reason])).toEqual([["delete", w.names[2], "scale_in"]]);
  });

  it("stops a roll-out whose replacements failed, leaving the old VMs, until the template changes again", () => {
    const first = plan(rolled(2, bigger));
    const failed: RolloutState = { template: first.groups[0]!.rollout!.template, total: 2, replaced: 0, failed: { at: "2025-06-01T11:00:00.000Z", message: "web[web-00000064]: did not check in" } };
    const w = rolled(2, bigger, { rollout: failed });
    const p = plan(w);
    expect(p.changes).toEqual([]);
    expect(p.warnings.find((x) => x.includes("roll-out of this template stopped"))).toMatch(/did not check in.*old VMs were left alone/);
    expect(plan(rolled(2, { template: { memoryMiB: 512 } }, { rollout: failed })).changes).toHaveLength(4);
  });

  it("stops at each checkpoint and waits out the pause before the next batch", () => {
    const cp = rollout({ checkpoints: [50], checkpointPauseSeconds: 600 });
    const p = plan(rolled(4, { ...bigger, ...cp }));
    expect(p.changes.filter((c) => c.action === "delete")).toHaveLength(2);
    expect(p.groups[0]?.rollout).toMatchObject({ total: 4, replaced: 0, planned: 2, checkpoint: 50 });
    const template = p.groups[0]!.rollout!.template;
    const paused = rolled(4, { ...bigger, ...cp }, { rollout: { template, total: 4, replaced: 2, checkpointAt: new Date(TEST_NOW.getTime() - 60_000).toISOString() } });
    const during = plan(paused);
    expect(during.changes).toEqual([]);
    expect(during.warnings).toContain(`group web: roll-out paused at a checkpoint (2 of 4 replaced) until ${new Date(TEST_NOW.getTime() + 540_000).toISOString()}`);
    const resumed = rolled(4, { ...bigger, ...cp }, { rollout: { template, total: 4, replaced: 2, checkpointAt: new Date(TEST_NOW.getTime() - 601_000).toISOString() } });
    expect(plan(resumed).groups[0]?.rollout).toMatchObject({ replaced: 2, checkpoint: 100 });
  });

  it("does not judge instances recorded before templates were tracked, and says how to roll them", () => {
    const w = rolled(2, bigger, { tweak: (s) => delete s.groups[0]!.instances[0]!.template });
    const p = plan(w);
    expect(p.changes.filter((c) => c.action === "delete").map((c) => c.name)).toEqual([w.names[1]]);
    expect(p.warnings).toContain("group web: 1 instance predate template tracking and are not checked for drift (premiscale apply --replace web replaces them)");
  });

  it("stops the roll-out when a replacement fits nowhere, keeping the old VM", () => {
    const w = rolled(2, bigger);
    const full = w.observations.map((o) => (o.status === "ok" ? { ...o, capacity: { ...o.capacity, freeMemoryMiB: 512 + 100 } } : o));
    const p = computePlan(makeInput({ config: w.config, state: w.state, observations: full, newUuid: uuidSequence(100) }));
    expect(p.changes).toEqual([]);
    expect(p.warnings.find((x) => x.includes("roll-out stopped"))).toMatch(/no room for a replacement of .*free memory.*maxUnavailable/);
  });
});
