import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { PlacementStrategyName } from "../config/types.js";
import type { HostObservation } from "../providers/provider.js";
import type { State } from "../state/types.js";
import { computePlan } from "./compute-plan.js";
import type { Change, Plan } from "./plan.js";
import { makeConfig, makeInput, makeObservation, simulateApply, uuidSequence } from "./testing.js";

// Roll-backs (issue 14) as properties: whatever the group's size, how much of it the failed roll-out had replaced,
// its surge and unavailability, the hosts and their room, and in whatever order apply runs the plan's changes (only
// `waits_for` orders them), a roll-back never leaves the group with fewer VMs up than its size minus maxUnavailable;
// and with room, applying its plans ends with every member back on the previous template and nothing left to do.

const arbCase = fc.record({
  size: fc.integer({ min: 1, max: 6 }),
  replacedShare: fc.integer({ min: 0, max: 100 }),
  maxSurge: fc.integer({ min: 0, max: 3 }),
  maxUnavailable: fc.integer({ min: 0, max: 2 }),
  hosts: fc.integer({ min: 1, max: 3 }),
  placement: fc.constantFrom<PlacementStrategyName>("round-robin", "most-free", "fill-first", "random"),
  // Free memory per host, in VMs of the new (larger) template beyond what the group holds: 0 is tight.
  spare: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 3, maxLength: 3 }),
  order: fc.array(fc.nat(), { maxLength: 64 }),
});
type Case = typeof arbCase extends fc.Arbitrary<infer T> ? T : never;

const OLD = 128;
const NEW = 256;
const RESERVED = 512;

/** The group after a roll-out to the bigger template replaced some of it and failed, recorded as apply records it. */
function rolledBack(c: Case): { config: ReturnType<typeof makeConfig>; state: State; observations: HostObservation[] } | null {
  const hosts = ["a", "b", "c"].slice(0, c.hosts);
  const rollout = { strategy: "rolling" as const, maxSurge: c.maxSurge, maxUnavailable: c.maxUnavailable, checkpoints: [], checkpointPauseSeconds: 0, rollback: true };
  const group = { desired: c.size, placement: c.placement, rollout };
  const before = makeConfig({ hosts, groups: [group] });
  // Room for the whole group on every host, plus `spare` more VMs of the new template.
  const observations = hosts.map((h, i) => makeObservation(h, { capacity: { freeMemoryMiB: RESERVED + c.size * OLD + c.spare[i]! * NEW } }));
  const made = simulateApply(computePlan(makeInput({ config: before, observations, newUuid: uuidSequence(1) })), null, makeInput({ config: before, observations }).observations);
  const config = makeConfig({ hosts, groups: [{ ...group, template: { memoryMiB: NEW } }] });
  const p = computePlan(makeInput({ config, state: made.state, observations: made.observations, newUuid: uuidSequence(1000) }));
  const r = p.groups[0]!.rollout;
  if (!r?.previous) return null; // no room to start the roll-out at all: nothing was replaced
  const creates = p.changes.filter((x): x is Extract<Change, { action: "create" }> => x.action === "create");
  const k = Math.round((creates.length * c.replacedShare) / 100);
  const done = new Set(creates.slice(0, k).flatMap((x) => [x.address, x.replaces!]));
  const partial: Plan = { ...p, groups: p.groups.map(({ template: _t, ...g }) => g), changes: p.changes.filter((x) => done.has(x.address)) };
  const after = simulateApply(partial, made.state, made.observations);
  const reason = `roll-out of template ${r.config} failed: web[web-ffffffff]: did not check in`;
  after.state.groups[0]!.rollout = { template: r.template, config: r.config!, total: r.total, replaced: k, previous: r.previous, failed: { at: "2025-06-01T11:00:00.000Z", message: "did not check in" }, rollback: { at: "2025-06-01T11:00:00.000Z", reason } };
  return { config, state: after.state, observations: after.observations };
}

describe("roll-back properties", () => {
  it("never leaves the group with fewer VMs up than its size minus maxUnavailable, in any order apply may run the roll-back", () => {
    fc.assert(
      fc.property(arbCase, (c) => {
        const world = rolledBack(c);
        if (!world) return;
        const p = computePlan(makeInput({ ...world, newUuid: uuidSequence(5000) }));
        const members = world.state.groups[0]!.instances.filter((i) => i.pool !== "warm").length;
        const unavailable = c.maxSurge === 0 && c.maxUnavailable === 0 ? 0 : c.maxUnavailable;
        const floor = Math.min(members, c.size) - unavailable;
        // Each change as one event (a create counts once it is up, a delete from when it starts), run in any order the
        // plan's waits allow: the generated `order` picks among the changes that may run.
        let up = members;
        const done = new Set<string>();
        const pending = [...p.changes];
        let step = 0;
        while (pending.length > 0) {
          const ready = pending.filter((x) => (x.waits_for ?? []).every((a) => done.has(a)));
          expect(ready.length, `a change waits for one that can never run: ${pending.map((x) => x.address).join(", ")}`).toBeGreaterThan(0);
          const next = ready[(c.order[step++] ?? 0) % ready.length]!;
          pending.splice(pending.indexOf(next), 1);
          done.add(next.address);
          if (next.action === "create" && !next.pool) up++;
          if (next.action === "delete" && !next.pool) up--;
          expect(up, `after ${next.action} ${next.address}`).toBeGreaterThanOrEqual(floor);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("with room, ends with every member on the previous template and plans nothing more", () => {
    fc.assert(
      fc.property(arbCase, (c) => {
        const world = rolledBack({ ...c, spare: [6, 6, 6] });
        if (!world) return;
        let { state, observations } = world;
        let p = computePlan(makeInput({ config: world.config, state, observations, newUuid: uuidSequence(5000) }));
        for (let round = 0; round < 3 && p.changes.length > 0; round++) {
          ({ state, observations } = simulateApply(p, state, observations));
          p = computePlan(makeInput({ config: world.config, state, observations, newUuid: uuidSequence(6000 + 1000 * round) }));
        }
        expect(p.changes).toEqual([]);
        expect(state.groups[0]!.instances.map((i) => i.memoryMiB)).toEqual(Array(c.size).fill(OLD));
        expect(p.groups[0]!.rollback).toMatchObject({ planned: 0 });
      }),
      { numRuns: 200 },
    );
  });
});
