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
function rolled(count: number, change: Partial<GroupSpec>, opts: { hosts?: string[]; rollout?: RolloutState; tweak?: (s: State) => void; volumes?: string[] } = {}) {
  const hosts = opts.hosts ?? ["a"];
  const before = makeConfig({ hosts, groups: [{ desired: count }] });
  const observations = hosts.map((h) => makeObservation(h, opts.volumes ? { capacity: { volumes: opts.volumes } } : {}));
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

/**
 * A group of `count` VMs made from the original template, of which the first `onNew` were replaced by a roll-out to
 * `change` before one of its replacements failed and the roll-out was rolled back (as apply records it).
 */
function failedRollOut(count: number, onNew: number, change: Partial<GroupSpec>, opts: { rollbackFailed?: boolean; volumes?: string[] } = {}) {
  const w = rolled(count, change, opts.volumes ? { volumes: opts.volumes } : {});
  const p = plan(w);
  const r = p.groups[0]!.rollout!;
  const creates = p.changes.filter((c): c is Extract<Change, { action: "create" }> => c.action === "create").slice(0, onNew);
  const done = new Set([...creates.map((c) => c.address), ...creates.map((c) => c.replaces!)]);
  const partial: Plan = { ...p, groups: p.groups.map(({ template: _t, ...g }) => g), changes: p.changes.filter((c) => done.has(c.address)) };
  const after = simulateApply(partial, w.state, w.observations);
  const failedVm = `web[web-${"f".repeat(8)}]`;
  const reason = `roll-out of template ${r.config} failed: ${failedVm}: web-ffffffff did not check in within 900 s`;
  after.state.groups[0]!.rollout = {
    template: r.template,
    config: r.config!,
    total: count,
    replaced: onNew,
    previous: r.previous!,
    failed: { at: "2025-06-01T11:00:00.000Z", message: `${failedVm}: web-ffffffff did not check in within 900 s` },
    rollback: { at: "2025-06-01T11:00:00.000Z", reason, ...(opts.rollbackFailed ? { failed: { at: "2025-06-01T11:30:00.000Z", message: "web[web-eeeeeeee]: web-eeeeeeee did not check in within 900 s" } } : {}) },
  };
  const newNames = creates.map((c) => c.name);
  return { ...w, state: after.state, observations: after.observations, newNames, oldNames: w.names, reason, rollout: r };
}

describe("roll-back of a failed roll-out", () => {
  it("pins the template the group settled on when a roll-out starts, so a roll-back knows where to go back to", () => {
    const w = rolled(2, bigger);
    expect(w.state.groups[0]!.template).toMatchObject({ memoryMiB: 128, digest: expect.stringMatching(/^sha256:/) });
    const r = plan(w).groups[0]!.rollout!;
    expect(r).toMatchObject({ start: true, previous: w.state.groups[0]!.template });
    expect(r.config).not.toBe(r.previous!.digest);
  });

  it("does not pin a previous template when roll-back is off, and warns when state has none to pin", () => {
    const off = plan(rolled(2, { ...bigger, ...rollout({ rollback: false }) })).groups[0]!.rollout!;
    expect(off.previous).toBeUndefined();
    const none = rolled(2, bigger, { tweak: (s) => delete s.groups[0]!.template });
    const p = plan(none);
    expect(p.groups[0]!.rollout!.previous).toBeUndefined();
    expect(p.warnings.find((x) => x.includes("cannot be rolled back"))).toMatch(/no record of the template the group ran before/);
  });

  it("replaces the VMs the failed roll-out made with the previous template, create before destroy, saying why", () => {
    const w = failedRollOut(3, 1, bigger);
    const p = plan(w);
    const [b1] = w.newNames as [string];
    const creates = p.changes.filter((c): c is Extract<Change, { action: "create" }> => c.action === "create");
    expect(creates.map((c) => [c.reason, c.replaces, c.vm.memoryMiB])).toEqual([["replace_rollback", `web[${b1}]`, 128]]);
    expect(creates[0]!.detail).toMatch(/roll-out of template sha256:\w+ failed: web\[web-ffffffff\]: web-ffffffff did not check in within 900 s: back to the previous template: memoryMiB 256 → 128/);
    expect(creates[0]!.template).toEqual(w.state.groups[0]!.instances.find((i) => i.name === w.oldNames[1])!.template);
    const del = p.changes.find((c) => c.action === "delete")!;
    expect([del.name, del.reason, del.waits_for]).toEqual([b1, "replace_rollback", [creates[0]!.address]]);
    expect(p.drift).toEqual([expect.objectContaining({ kind: "out_of_date", name: b1, detail: "not made from the previous template, which the group goes back to: memoryMiB 256 → 128" })]);
    expect(p.groups[0]!.rollback).toEqual({ from: w.rollout.config, to: w.rollout.previous!.digest, reason: w.reason, planned: 1 });
    expect(p.groups[0]!.rollout).toBeUndefined();
    expect(p.warnings.find((x) => x.startsWith("group web runs its previous template"))).toContain("fix it, or revert it to the previous one");
    const text = renderPlanText(p);
    expect(text).toContain(`+/- ${creates[0]!.address} on host a (1 vCPU, 128 MiB) replaces web[${b1}]   # replace rollback`);
    expect(text).toContain(`  - web[${b1}] on host a   # replace rollback, waits for ${creates[0]!.address}`);
  });

  it("goes back with the group's surge and unavailability, and ignores checkpoints", () => {
    const w = failedRollOut(4, 2, { ...bigger, ...rollout({ maxSurge: 0, maxUnavailable: 1, checkpoints: [50], checkpointPauseSeconds: 3600 }) });
    const p = plan(w);
    const [b1, b2] = w.newNames as [string, string];
    const first = p.changes.find((c) => c.name === b1)!;
    expect(first.waits_for).toBeUndefined(); // maxUnavailable 1: deleted first
    const c1 = p.changes.find((c) => c.action === "create" && c.replaces === `web[${b1}]`)!;
    expect(c1.waits_for).toEqual([`web[${b1}]`]);
    const second = p.changes.find((c) => c.name === b2)!;
    expect(second.waits_for).toEqual([c1.address, `web[${b1}]`].sort());
    expect(p.groups[0]!.rollback?.planned).toBe(2);
  });

  it("makes a rolled-back group's new VMs from the previous template too", () => {
    const w = failedRollOut(2, 1, bigger);
    const p = plan({ ...w, config: makeConfig({ groups: [{ desired: 3, ...bigger }] }) });
    const out = p.changes.filter((c): c is Extract<Change, { action: "create" }> => c.action === "create" && c.reason === "scale_out");
    expect(out.map((c) => c.vm.memoryMiB)).toEqual([128]);
  });

  it("refuses the failed template once the group is back: no changes, and every plan says what runs and what to do", () => {
    const w = failedRollOut(3, 1, bigger);
    const back = simulateApply(plan(w), w.state, w.observations);
    const p = plan({ ...w, state: back.state, observations: back.observations });
    expect(p.changes).toEqual([]);
    expect(p.drift).toEqual([]);
    expect(p.groups[0]!.rollback).toMatchObject({ planned: 0, reason: w.reason });
    expect(p.groups[0]!.template).toBeUndefined(); // the record stays the previous template; the refusal stays in state
    expect(p.warnings).toContain(
      `group web runs its previous template ${w.rollout.previous!.digest}, not the config's ${w.rollout.config}, since 2025-06-01T11:00:00.000Z: ${w.reason}. ` +
        "The config's template is not tried again until it changes: fix it, or revert it to the previous one (premiscale apply --replace web tries it again as it is)",
    );
    expect(back.state.groups[0]!.instances.map((i) => i.memoryMiB)).toEqual([128, 128, 128]);
  });

  it("starts a new roll-out from the settled template when the config's template changes again", () => {
    const w = failedRollOut(3, 1, bigger);
    const p = plan({ ...w, config: makeConfig({ groups: [{ desired: 3, template: { memoryMiB: 512 } }] }) });
    expect(p.groups[0]!.rollback).toBeUndefined();
    expect(p.groups[0]!.rollout).toMatchObject({ start: true, total: 3, replaced: 0, previous: w.rollout.previous });
    expect(p.changes.filter((c) => c.action === "create").map((c) => (c as Extract<Change, { action: "create" }>).vm.memoryMiB)).toEqual([512, 512, 512]);
  });

  it("reverting the config to the previous template replaces the failed template's VMs as an ordinary roll-out, then settles", () => {
    const w = failedRollOut(3, 1, bigger);
    const p = plan({ ...w, config: makeConfig({ groups: [{ desired: 3 }] }) });
    expect(p.groups[0]!.rollback).toBeUndefined();
    expect(p.changes.filter((c) => c.action === "delete").map((c) => [c.name, c.reason])).toEqual([[w.newNames[0], "replace_drift"]]);
    expect(p.groups[0]!.rollout).toMatchObject({ start: true, total: 1 });
    expect(p.groups[0]!.rollout!.previous).toBeUndefined(); // nothing older to go back to
    expect(p.groups[0]!.template?.digest).toBe(w.rollout.previous!.digest); // once done, the record ends the failed roll-out's record
  });

  it("--replace GROUP tries the refused template again: a new roll-out that can roll back again", () => {
    const w = failedRollOut(3, 1, bigger);
    const p = plan(w, { replace: ["web"] });
    expect(p.groups[0]!.rollback).toBeUndefined();
    expect(p.groups[0]!.rollout).toMatchObject({ start: true, total: 2, replaced: 0, config: w.rollout.config, previous: w.rollout.previous });
    expect(p.changes.filter((c) => c.action === "delete").map((c) => [c.name, c.reason]).sort()).toEqual(w.oldNames.slice(1).map((n) => [n, "replace_drift"]).sort());
  });

  it("--replace GROUP[NAME] in a rolled-back group replaces that VM with the previous template", () => {
    const w = failedRollOut(3, 0, bigger);
    const p = plan(w, { replace: [`web[${w.oldNames[0]}]`] });
    const c = p.changes.find((x): x is Extract<Change, { action: "create" }> => x.action === "create")!;
    expect([c.reason, c.vm.memoryMiB]).toEqual(["replace_requested", 128]);
  });

  it("stops a roll-back whose own VMs failed too, and says so: nothing flaps", () => {
    const w = failedRollOut(3, 2, bigger, { rollbackFailed: true });
    const p = plan(w);
    expect(p.changes).toEqual([]);
    expect(p.groups[0]!.rollback).toMatchObject({ planned: 0, stopped: { message: expect.stringMatching(/web-eeeeeeee did not check in/) } });
    expect(p.warnings.find((x) => x.includes("the roll-back stopped"))).toMatch(/2 VMs still run another template than the previous one.*apply --replace web\[NAME\]/);
  });

  it("with rollback: false, a failed roll-out stops where it is, as before", () => {
    const w = failedRollOut(3, 1, bigger);
    const p = plan({ ...w, config: makeConfig({ groups: [{ desired: 3, ...bigger, ...rollout({ rollback: false }) }] }) });
    expect(p.changes).toEqual([]);
    expect(p.groups[0]!.rollback).toBeUndefined();
    expect(p.warnings.find((x) => x.includes("roll-out of this template stopped"))).toMatch(/old VMs were left alone/);
  });

  it("rolls back only where the previous template still fits: a host without its base image takes none", () => {
    const w = failedRollOut(2, 1, { template: { memoryMiB: 256, disk: { baseImage: "new.qcow2", sizeGiB: 1 } } }, { volumes: ["base.qcow2", "new.qcow2"] });
    // Someone deleted the old base image since: the hosts say the previous template fits nowhere.
    const observations = w.observations.map((o) => (o.status === "ok" ? { ...o, volumes: ["new.qcow2"], fits: {} } : o));
    const p = computePlan(makeInput({ config: w.config, state: w.state, observations, newUuid: uuidSequence(100) }));
    expect(p.changes).toEqual([]);
    expect(p.warnings).toContain(`group web: the previous template cannot be made on host a (base image "base.qcow2" not in pool "default"): its VMs there are not rolled back, and it takes no new VM`);
  });

  it("proposes recording the group's template once every member runs it, and not while members are out of date", () => {
    const manual = rolled(2, { ...bigger, ...rollout({ strategy: "manual" }) });
    expect(plan(manual).groups[0]!.template).toBeUndefined();
    const w = rolled(2, bigger);
    const p = plan(w);
    expect(p.groups[0]!.template).toMatchObject({ memoryMiB: 256, digest: p.groups[0]!.rollout!.config });
    const done = simulateApply(p, w.state, w.observations);
    expect(done.state.groups[0]!.template?.memoryMiB).toBe(256);
    expect(done.state.groups[0]!.rollout).toBeUndefined();
    expect(plan({ ...w, state: done.state, observations: done.observations }).groups[0]!.template).toBeUndefined();
  });
});
