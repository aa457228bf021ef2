import { describe, expect, it } from "vitest";
import type { Config, GroupConfig, WarmPoolConfig } from "../config/types.js";
import type { HostObservation } from "../providers/provider.js";
import type { State } from "../state/types.js";
import { computePlan } from "./compute-plan.js";
import type { Change, Plan } from "./plan.js";
import { renderPlanText } from "./render-text.js";
import { makeConfig, makeInput, makeObservation, simulateApply, TEST_NOW, uuidSequence, type TemplateSpec } from "./testing.js";

// Warm pools (issue 14): VMs made ahead of need wait outside the group; a scale-out takes them instead of creating,
// the pool is refilled in the same plan, and they are never members.

type Take = Extract<Change, { action: "take" }>;
type Create = Extract<Change, { action: "create" }>;

const pool = (p: Partial<WarmPoolConfig> = {}): WarmPoolConfig => ({ state: "stopped", reuseOnScaleIn: false, size: 2, ...p });
const group = (g: Partial<Omit<GroupConfig, "template">> & { template?: TemplateSpec } = {}) => ({
  readiness: { checkIn: true, timeoutSeconds: 120, heartbeatSeconds: 0, unhealthyAfterSeconds: 180 },
  warmPool: pool(),
  ...g,
});

/** A world after applying the plans for `config` until nothing changes (at most 3 rounds). */
function converge(config: Config, start: { state: State | null; observations: HostObservation[] } = { state: null, observations: config.hosts.map((h) => makeObservation(h.name)) }) {
  let { state, observations } = start;
  const uuids = uuidSequence(1000);
  for (let round = 0; round < 3; round++) {
    const p = computePlan(makeInput({ config, state, observations, newUuid: uuids }));
    if (p.changes.length === 0) return { state: state!, observations };
    ({ state, observations } = simulateApply(p, state, makeInput({ config, observations }).observations));
  }
  throw new Error("did not converge in 3 rounds");
}

const planOf = (config: Config, w: { state: State; observations: HostObservation[] }, extra: Partial<Parameters<typeof makeInput>[0]> = {}): Plan =>
  computePlan(makeInput({ config, state: w.state, observations: w.observations, newUuid: uuidSequence(500), ...extra }));

const poolNames = (s: State) => s.groups[0]!.instances.filter((i) => i.pool === "warm").map((i) => i.name);
const memberNames = (s: State) => s.groups[0]!.instances.filter((i) => i.pool !== "warm").map((i) => i.name);

describe("warm pools", () => {
  it("fills the pool after the group's own VMs, stopped once ready, every VM with a boot beacon, and converges", () => {
    const config = makeConfig({ groups: [group({ desired: 1 })] });
    const p = computePlan(makeInput({ config }));
    const creates = p.changes as Create[];
    expect(creates.map((c) => [c.reason, c.pool ?? null])).toEqual([
      ["scale_out", null],
      ["pool_fill", { state: "stopped" }],
      ["pool_fill", { state: "stopped" }],
    ]);
    expect(creates.every((c) => c.ready?.bootBeacon === true)).toBe(true);
    expect(p.summary).toEqual({ add: 3, change: 0, destroy: 0 });
    expect(p.groups[0]).toMatchObject({ current: 0, desired: 1, pool: { state: "stopped", size: 2, vms: [], fill: 2 } });
    const w = converge(config);
    expect(memberNames(w.state)).toHaveLength(1);
    expect(poolNames(w.state)).toHaveLength(2);
    expect(planOf(config, w).changes).toEqual([]);
  });

  it("takes pool VMs on scale-out instead of creating, starts and waits for stopped ones, and refills the pool in the same plan", () => {
    const w = converge(makeConfig({ groups: [group({ desired: 1 })] }));
    const bigger = makeConfig({ groups: [group({ desired: 3 })] });
    const p = planOf(bigger, w);
    const takes = p.changes.filter((c): c is Take => c.action === "take");
    expect(takes.map((t) => t.name).sort()).toEqual(poolNames(w.state).sort());
    expect(takes.every((t) => t.start && t.ready?.timeoutSeconds === 120 && t.reason === "scale_out")).toBe(true);
    expect(takes[0]!.detail).toMatch(/^desired 3 > current 1 .*: taken from the warm pool and started$/);
    expect(p.changes.filter((c) => c.action === "create").map((c) => c.reason)).toEqual(["pool_fill", "pool_fill"]);
    expect(p.summary).toEqual({ add: 2, change: 2, destroy: 0 });
    const after = simulateApply(p, w.state, makeInput({ config: bigger, observations: w.observations }).observations);
    expect(memberNames(after.state)).toHaveLength(3);
    expect(poolNames(after.state)).toHaveLength(2);
    expect(planOf(bigger, after).changes).toEqual([]);
  });

  it("creates what the pool cannot give, and takes running pool VMs first, without starting or waiting for them", () => {
    const w = converge(makeConfig({ groups: [group({ desired: 1 })] }));
    const [a, b] = poolNames(w.state) as [string, string];
    // b runs (started by hand, or a running pool): it goes first.
    const obs = w.observations.map((o) => (o.status === "ok" ? { ...o, vms: o.vms.map((d) => (d.name === b ? { ...d, state: "running" as const } : d)) } : o));
    const one = planOf(makeConfig({ groups: [group({ desired: 2 })] }), { state: w.state, observations: obs });
    expect(one.changes.filter((c): c is Take => c.action === "take").map((t) => [t.name, t.start, t.ready ?? null])).toEqual([[b, false, null]]);
    const p = planOf(makeConfig({ groups: [group({ desired: 4 })] }), { state: w.state, observations: obs });
    const takes = p.changes.filter((c): c is Take => c.action === "take");
    expect(takes.map((t) => [t.name, t.start, t.ready ?? null]).sort()).toEqual(
      [
        [b, false, null],
        [a, true, { timeoutSeconds: 120 }],
      ].sort(),
    );
    expect(p.changes.filter((c) => c.action === "create").map((c) => c.reason)).toEqual(["scale_out", "pool_fill", "pool_fill"]);
  });

  it("sizes the pool as maxPrepared minus the desired size: a scale-out by one takes one and makes none", () => {
    const config = makeConfig({ groups: [group({ desired: 1, warmPool: { state: "running", reuseOnScaleIn: false, maxPrepared: 3 } })] });
    const w = converge(config);
    expect(poolNames(w.state)).toHaveLength(2);
    const p = planOf(makeConfig({ groups: [group({ desired: 2, warmPool: { state: "running", reuseOnScaleIn: false, maxPrepared: 3 } })] }), w);
    expect(p.changes.map((c) => [c.action, c.reason])).toEqual([["take", "scale_out"]]);
    expect((p.changes[0] as Take).start).toBe(false);
  });

  it("never counts pool VMs as members: not in the decision's members, not in current, never a scale-in victim", () => {
    const config = makeConfig({ groups: [group({ desired: 2 })] });
    const w = converge(config);
    const seen: string[][] = [];
    const p = planOf(makeConfig({ groups: [group({ desired: 1 })] }), w, {
      decide: (_g, members) => {
        seen.push(members.map((m) => m.name).sort());
        return { group: "web", desired: 1, code: "config", reason: "test" };
      },
    });
    expect(seen).toEqual([memberNames(w.state).sort()]);
    expect(p.groups[0]?.current).toBe(2);
    const deleted = p.changes.filter((c) => c.action === "delete").map((c) => c.name);
    expect(deleted).toHaveLength(1);
    expect(memberNames(w.state)).toContain(deleted[0]);
  });

  it("replaces pool VMs made from an older template at once, and refills the pool with the new one", () => {
    const w = converge(makeConfig({ groups: [group({ desired: 1, rollout: { strategy: "manual", maxSurge: 1, maxUnavailable: 0, checkpoints: [], checkpointPauseSeconds: 0, rollback: true } })] }));
    const config = makeConfig({ groups: [group({ desired: 1, template: { memoryMiB: 256 }, rollout: { strategy: "manual", maxSurge: 1, maxUnavailable: 0, checkpoints: [], checkpointPauseSeconds: 0, rollback: true } })] });
    const p = planOf(config, w);
    const deletes = p.changes.filter((c) => c.action === "delete");
    expect(deletes.map((d) => [d.name, d.reason, d.action === "delete" && d.pool]).sort()).toEqual(poolNames(w.state).sort().map((n) => [n, "replace_drift", true]));
    expect(p.drift.filter((d) => d.kind === "out_of_date").map((d) => d.detail)).toEqual(expect.arrayContaining(["made from an older template: memoryMiB 128 → 256 (warm pool)"]));
    const fills = p.changes.filter((c): c is Create => c.action === "create");
    expect(fills.map((f) => [f.reason, f.vm.memoryMiB])).toEqual([
      ["pool_fill", 256],
      ["pool_fill", 256],
    ]);
    // The manual group's member is only shown, not replaced: the pool is not part of its roll-out.
    expect(p.groups[0]?.rollout).toBeUndefined();
  });

  it("with reuseOnScaleIn, returns victims to the pool while it has room, and deletes the rest", () => {
    const reuse = (desired: number, size: number) => makeConfig({ groups: [group({ desired, warmPool: pool({ size, reuseOnScaleIn: true }) })] });
    const w = converge(reuse(3, 2));
    const p = planOf(reuse(1, 3), w);
    expect(p.changes.map((c) => [c.action, c.reason])).toEqual([
      ["delete", "scale_in"],
      ["return", "scale_in"],
    ]);
    const ret = p.changes.find((c) => c.action === "return")!;
    expect(ret).toMatchObject({ stop: true, detail: expect.stringMatching(/: back to the warm pool, stopped$/) });
    const after = simulateApply(p, w.state, makeInput({ config: reuse(1, 3), observations: w.observations }).observations);
    expect(poolNames(after.state)).toContain(ret.name);
    expect(planOf(reuse(1, 3), after).changes).toEqual([]);
  });

  it("does not return a VM without a boot beacon to a stopped pool: once stopped it could not be waited for", () => {
    const reuse = makeConfig({ groups: [group({ desired: 1, warmPool: pool({ size: 2, reuseOnScaleIn: true }) })] });
    const w = converge(makeConfig({ groups: [group({ desired: 2, warmPool: pool({ size: 0 }) })] }));
    for (const i of w.state.groups[0]!.instances) delete i.bootBeacon;
    const p = planOf(reuse, w);
    expect(p.changes.filter((c) => c.group === "web" && c.reason === "scale_in").map((c) => c.action)).toEqual(["delete"]);
  });

  it("keeps room on the host for stopped pool VMs: what they will need when started is not given to new VMs", () => {
    // 512 MiB reserved, 128 MiB per VM: room for 3 VMs; 1 member and 2 stopped pool VMs take it all.
    const hostFree = (free: number) => (o: HostObservation) => (o.status === "ok" ? { ...o, capacity: { ...o.capacity, freeMemoryMiB: free } } : o);
    const config = makeConfig({ groups: [group({ desired: 1 })] });
    const w = converge(config, { state: null, observations: [makeObservation("a", { capacity: { freeMemoryMiB: 512 + 3 * 128 } })] });
    const other = makeConfig({ groups: [group({ desired: 1 }), { name: "db", desired: 1 }] });
    const p = planOf(other, { ...w, observations: w.observations.map(hostFree(512 + 2 * 128)) });
    expect(p.changes.filter((c) => c.group === "db")).toEqual([]);
    expect(p.shortfalls).toEqual([expect.objectContaining({ group: "db", missing: 1, reason: expect.stringMatching(/memory/) })]);
  });

  it("forgets a pool VM that is gone, removes a half-made one and one stopped without a boot beacon, and refills", () => {
    const config = makeConfig({ groups: [group({ desired: 1, warmPool: pool({ size: 3 }) })] });
    const w = converge(config);
    const [gone, half, silent] = poolNames(w.state) as [string, string, string];
    const inst = (n: string) => w.state.groups[0]!.instances.find((i) => i.name === n)!;
    inst(half).status = "creating";
    delete inst(silent).bootBeacon;
    const obs = w.observations.map((o) => (o.status === "ok" ? { ...o, vms: o.vms.filter((d) => d.name !== gone) } : o));
    const p = planOf(config, { state: w.state, observations: obs });
    expect(p.changes.filter((c) => c.action === "delete").map((c) => [c.name, c.reason, c.action === "delete" && c.gone]).sort()).toEqual(
      [
        [gone, "replace_missing", true],
        [half, "interrupted_create", false],
        [silent, "pool_trim", false],
      ].sort(),
    );
    expect(p.drift).toEqual([expect.objectContaining({ kind: "missing", name: gone, detail: "no longer exists on the host (warm pool)" })]);
    expect(p.changes.filter((c) => c.action === "create").map((c) => c.reason)).toEqual(["pool_fill", "pool_fill", "pool_fill"]);
  });

  it("empties the pool when the group no longer has one, and --replace of a pool VM replaces it", () => {
    const w = converge(makeConfig({ groups: [group({ desired: 1 })] }));
    const none = makeConfig({ groups: [group({ desired: 1, warmPool: undefined })] });
    const p = planOf(none, w);
    expect(p.changes.map((c) => [c.action, c.reason]).sort()).toEqual([
      ["delete", "pool_trim"],
      ["delete", "pool_trim"],
    ]);
    const [first] = poolNames(w.state);
    const r = planOf(makeConfig({ groups: [group({ desired: 1 })] }), w, { replace: [`web[${first}]`] });
    expect(r.changes.map((c) => [c.action, c.reason, c.name === first])).toEqual([
      ["delete", "replace_requested", true],
      ["create", "pool_fill", false],
    ]);
  });

  it("shows takes and fills in the text plan, with the pool before and after, and the pool of an unchanged group", () => {
    const w = converge(makeConfig({ groups: [group({ desired: 1 })] }));
    const [a] = poolNames(w.state).sort() as [string];
    const text = renderPlanText(planOf(makeConfig({ groups: [group({ desired: 2 })] }), w));
    expect(text).toContain(`  # group web: 1 → 2 (desired: 2 in config); warm pool 2 waiting of 2 (stopped)`);
    expect(text).toMatch(new RegExp(`  ~ web\\[${a}\\] on host a: take from the warm pool and start it   # scale out`));
    expect(text).toMatch(/ {2}\+ web\[web-[0-9a-f]{8}\] on host a \(1 vCPU, 128 MiB\) into the warm pool, stopped once ready {3}# pool fill/);
    expect(text).toContain("Plan: 1 to add, 1 to change, 0 to destroy.");
    const idle = renderPlanText(planOf(makeConfig({ groups: [group({ desired: 1 })] }), w));
    expect(idle).toContain("Warm pools:\n\n  # group web: 2 waiting of 2 (stopped)");
    expect(idle).toContain("No changes.");
  });

  describe("paused pools", () => {
    const paused = (desired: number, p: Partial<WarmPoolConfig> = {}) => makeConfig({ groups: [group({ desired, warmPool: pool({ state: "paused", ...p }) })] });
    const observedState = (w: { observations: HostObservation[] }, name: string) => {
      for (const o of w.observations) if (o.status === "ok") for (const d of o.vms) if (d.name === name) return d.state;
      return undefined;
    };

    it("fills the pool with VMs paused once ready, takes them by resuming them with nothing to wait for, refills, and converges", () => {
      const config = paused(1);
      const first = computePlan(makeInput({ config }));
      expect(first.changes.filter((c): c is Create => c.action === "create" && Boolean(c.pool)).map((c) => c.pool)).toEqual([{ state: "paused" }, { state: "paused" }]);
      const w = converge(config);
      expect(poolNames(w.state).map((n) => observedState(w, n))).toEqual(["paused", "paused"]);
      expect(w.state.groups[0]!.instances.filter((i) => i.pool === "warm").map((i) => i.poolState)).toEqual(["paused", "paused"]);
      const p = planOf(paused(2), w);
      const takes = p.changes.filter((c): c is Take => c.action === "take");
      expect(takes.map((t) => [t.start, t.resume, t.ready ?? null])).toEqual([[true, true, null]]);
      expect(takes[0]!.detail).toMatch(/: taken from the warm pool and resumed$/);
      expect(p.changes.filter((c) => c.action === "create").map((c) => [c.reason, c.action === "create" && c.pool?.state])).toEqual([["pool_fill", "paused"]]);
      const after = simulateApply(p, w.state, makeInput({ config: paused(2), observations: w.observations }).observations);
      expect(observedState(after, takes[0]!.name)).toBe("running");
      expect(after.state.groups[0]!.instances.find((i) => i.name === takes[0]!.name)).toMatchObject({ joined: p.created_at });
      expect(planOf(paused(2), after).changes).toEqual([]);
    });

    it("takes running pool VMs first, then paused ones, then stopped ones", () => {
      const w = converge(paused(0, { size: 3 }));
      const [a, b, c] = poolNames(w.state).sort() as [string, string, string];
      const states: Record<string, "running" | "paused" | "stopped"> = { [a]: "stopped", [b]: "paused", [c]: "running" };
      const obs = w.observations.map((o) => (o.status === "ok" ? { ...o, vms: o.vms.map((d) => (states[d.name] ? { ...d, state: states[d.name]! } : d)) } : o));
      for (const [n, order] of [[1, [c]], [2, [c, b]], [3, [c, b, a]]] as const) {
        const p = planOf(paused(n, { size: 3 }), { state: w.state, observations: obs });
        expect(p.changes.filter((x): x is Take => x.action === "take").map((t) => t.name).sort()).toEqual([...order].sort());
      }
      const all = planOf(paused(3, { size: 3 }), { state: w.state, observations: obs }).changes.filter((x): x is Take => x.action === "take");
      expect(Object.fromEntries(all.map((t) => [t.name, [t.start, t.resume ?? false, t.ready ?? null]]))).toEqual({
        [a]: [true, false, { timeoutSeconds: 120 }],
        [b]: [true, true, null],
        // A paused pool's VM reported running is resumed too: a host may report a pause late, and starting a running VM changes nothing.
        [c]: [true, true, null],
      });
    });

    it("returns scale-in victims to a paused pool paused, without asking for a boot beacon", () => {
      const w = converge(paused(2, { size: 1, reuseOnScaleIn: true }));
      for (const i of w.state.groups[0]!.instances) delete i.bootBeacon;
      const p = planOf(paused(1, { size: 2, reuseOnScaleIn: true }), w);
      const ret = p.changes.find((c) => c.action === "return");
      expect(ret).toMatchObject({ stop: false, pause: true, detail: expect.stringMatching(/: back to the warm pool, paused$/) });
      const after = simulateApply(p, w.state, makeInput({ config: paused(1, { size: 2, reuseOnScaleIn: true }), observations: w.observations }).observations);
      expect(observedState(after, ret!.name)).toBe("paused");
      expect(after.state.groups[0]!.instances.find((i) => i.name === ret!.name)).toMatchObject({ pool: "warm", poolState: "paused" });
      expect(planOf(paused(1, { size: 2, reuseOnScaleIn: true }), after).changes).toEqual([]);
    });

    it("counts a paused pool VM's memory once: its host's free memory already lacks it, so it is not booked again", () => {
      // 512 MiB reserved, 128 MiB per VM: room for 4 VMs. 1 member and 2 paused pool VMs hold 3 of them; a db VM takes the last.
      const w = converge(paused(1), { state: null, observations: [makeObservation("a", { capacity: { freeMemoryMiB: 512 + 4 * 128 } })] });
      const free = w.observations[0]!.status === "ok" ? w.observations[0]!.capacity.freeMemoryMiB : 0;
      expect(free).toBe(512 + 128);
      const withDb = makeConfig({ groups: [group({ desired: 1, warmPool: pool({ state: "paused" }) }), { name: "db", desired: 2 }] });
      const p = planOf(withDb, w);
      expect(p.changes.filter((c) => c.group === "db").map((c) => c.action)).toEqual(["create"]);
      expect(p.shortfalls).toEqual([expect.objectContaining({ group: "db", missing: 1, reason: expect.stringMatching(/memory/) })]);
      // A paused pool VM that is removed gives its memory back, like a running one.
      const trimmed = planOf(makeConfig({ groups: [group({ desired: 1, warmPool: pool({ state: "paused", size: 1 }) }), { name: "db", desired: 2 }] }), w);
      expect(trimmed.changes.filter((c) => c.group === "db").map((c) => [c.action, c.waits_for ?? []])).toEqual([
        ["create", []],
        ["create", [expect.stringMatching(/^web\[/)]],
      ]);
      expect(trimmed.shortfalls).toEqual([]);
    });

    it("judges a VM taken from the pool by heartbeats from when it joined, not from its last beat before the pause", () => {
      const hb = { checkIn: true, timeoutSeconds: 120, heartbeatSeconds: 10, unhealthyAfterSeconds: 30 };
      const config = makeConfig({ groups: [group({ desired: 2, readiness: hb, warmPool: pool({ state: "paused", size: 0 }) })] });
      const w = converge(config);
      const [old, taken] = memberNames(w.state).sort() as [string, string];
      const at = (s: number) => new Date(TEST_NOW.getTime() - s * 1000).toISOString();
      const withJoined = (joinedAgo: number): State => ({
        ...w.state,
        groups: [{ ...w.state.groups[0]!, instances: w.state.groups[0]!.instances.map((i) => (i.name === taken ? { ...i, joined: at(joinedAgo) } : i)) }],
      });
      const lastSeen = new Map([[old, at(5)], [taken, at(3600)]]);
      const fresh = planOf(config, { state: withJoined(10), observations: w.observations }, { lastSeen, now: TEST_NOW });
      expect(fresh.drift).toEqual([]);
      expect(fresh.changes).toEqual([]);
      const silent = planOf(config, { state: withJoined(100), observations: w.observations }, { lastSeen, now: TEST_NOW });
      expect(silent.drift).toEqual([expect.objectContaining({ kind: "unhealthy", name: taken, detail: expect.stringMatching(/^not heard from for 100s/) })]);
    });

    it("shows each pool VM's state in the text plan, the takes as resumes and the fills as paused once ready", () => {
      const w = converge(paused(1));
      const [a, b] = poolNames(w.state).sort() as [string, string];
      const text = renderPlanText(planOf(paused(2), w));
      expect(text).toMatch(new RegExp(`# group web: 1 → 2 \\(desired: 2 in config\\); warm pool 2 waiting of 2 \\(paused\\): ${a} paused, ${b} paused`));
      expect(text).toMatch(/~ web\[web-[0-9a-f]{8}\] on host a: take from the warm pool and resume it {3}# scale out/);
      expect(text).toMatch(/\+ web\[web-[0-9a-f]{8}\] on host a \(1 vCPU, 128 MiB\) into the warm pool, paused once ready {3}# pool fill/);
      const gone = w.observations.map((o) => (o.status === "ok" ? { ...o, vms: o.vms.filter((d) => d.name !== a) } : o));
      const idle = planOf(paused(1), { state: w.state, observations: gone });
      expect(idle.groups[0]?.pool?.states).toEqual({ [a]: "missing", [b]: "paused" });
    });
  });

  it("leaves a suspended group's pool alone", () => {
    const w = converge(makeConfig({ groups: [group({ desired: 1 })] }));
    expect(planOf(makeConfig({ groups: [group({ desired: 3, suspend: true })] }), w).changes).toEqual([]);
  });

  it("plans the same for the same input (the clock is an input)", () => {
    const config = makeConfig({ groups: [group({ desired: 1 })] });
    const a = computePlan(makeInput({ config, now: TEST_NOW }));
    const b = computePlan(makeInput({ config, now: TEST_NOW }));
    expect(a).toEqual(b);
  });
});
