import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { NetworkingConfig, PlacementStrategyName } from "../config/types.js";
import type { HostObservation, OwnedVm } from "../providers/provider.js";
import type { Instance } from "../state/types.js";
import { computePlan, type PlanInput } from "./compute-plan.js";
import { GiB, TEST_LINEAGE, makeConfig, makeDomain, makeInput, makeInstance, makeObservation, makeState, simulateApply, uuidSequence } from "./testing.js";

const strategies: PlacementStrategyName[] = ["round-robin", "most-free", "fill-first", "random"];

const arbHost = fc.record({
  reachable: fc.integer({ min: 0, max: 4 }).map((n) => n > 0),
  cpus: fc.integer({ min: 1, max: 16 }),
  allocatedVcpus: fc.integer({ min: 0, max: 8 }),
  cpuOvercommit: fc.integer({ min: 1, max: 4 }),
  freeMemoryMiB: fc.integer({ min: 0, max: 12000 }),
  reservedMemoryMiB: fc.constantFrom(0, 256, 512),
  availableGiB: fc.integer({ min: 0, max: 60 }),
  hasImage: fc.integer({ min: 0, max: 5 }).map((n) => n > 0),
});

const arbGroup = fc.record({
  min: fc.integer({ min: 0, max: 2 }),
  span: fc.integer({ min: 0, max: 4 }),
  desiredOffset: fc.integer({ min: 0, max: 4 }),
  vcpus: fc.integer({ min: 1, max: 3 }),
  memoryMiB: fc.constantFrom(64, 256, 1024),
  sizeGiB: fc.integer({ min: 1, max: 8 }),
  placement: fc.constantFrom(...strategies),
  hostMask: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
  staticPool: fc.option(fc.integer({ min: 0, max: 9 }), { nil: undefined, freq: 2 }),
  instances: fc.array(
    fc.record({
      host: fc.integer({ min: 0, max: 2 }),
      fate: fc.constantFrom("running", "running", "paused", "stopped", "crashed", "missing"),
      day: fc.integer({ min: 1, max: 28 }),
      status: fc.constantFrom("running", "running", "running", "creating", "deleting"),
      recordsSize: fc.boolean(),
    }),
    { maxLength: 5 },
  ),
  orphans: fc.array(fc.record({ host: fc.integer({ min: 0, max: 2 }), foreign: fc.boolean() }), { maxLength: 2 }),
});

const arbWorld = fc.record({
  hosts: fc.array(arbHost, { minLength: 1, maxLength: 3 }),
  groups: fc.array(arbGroup, { minLength: 1, maxLength: 3 }),
  hasState: fc.boolean(),
  seed: fc.string({ maxLength: 6 }),
});

type World = typeof arbWorld extends fc.Arbitrary<infer T> ? T : never;

/** Turns a generated world into a PlanInput (config, state and observations that agree with each other). */
function buildInput(world: World): PlanInput {
  const hostNames = world.hosts.map((_, i) => `h${i}`);
  const groups = world.groups.map((g, gi) => {
    const hosts = hostNames.filter((_, i) => g.hostMask[i]);
    return {
      name: `g${gi}`,
      min: g.min,
      max: g.min + g.span,
      desired: Math.min(g.min + g.span, g.min + g.desiredOffset),
      hosts: hosts.length > 0 ? hosts : [hostNames[0] ?? "h0"],
      placement: g.placement,
      template: { vcpus: g.vcpus, memoryMiB: g.memoryMiB, disk: { baseImage: "base.qcow2", sizeGiB: g.sizeGiB } },
      networking: (g.staticPool === undefined
        ? { mode: "dhcp" }
        : { mode: "static", addresses: Array.from({ length: g.staticPool }, (_, i) => `10.${gi}.0.${i + 2}`), prefix: 24, dns: [] }) satisfies NetworkingConfig,
    };
  });
  const config = makeConfig({
    hosts: world.hosts.map((h, i) => ({ name: `h${i}`, cpuOvercommit: h.cpuOvercommit, reservedMemoryMiB: h.reservedMemoryMiB })),
    groups,
  });
  const lineage = world.hasState ? TEST_LINEAGE : "22222222-2222-4222-8222-222222222222";
  const domains = new Map<string, OwnedVm[]>(hostNames.map((h) => [h, []]));
  const instances: Record<string, Instance[]> = {};
  world.groups.forEach((g, gi) => {
    const group = `g${gi}`;
    const list: Instance[] = [];
    g.instances.forEach((inst, ii) => {
      const host = hostNames[inst.host % hostNames.length] ?? "h0";
      const name = `${group}-i${ii}`;
      const created = `2025-01-${String(inst.day).padStart(2, "0")}T00:00:00.000Z`;
      const address = g.staticPool !== undefined && ii < g.staticPool ? `10.${gi}.0.${ii + 2}` : undefined;
      const size = inst.recordsSize ? { vcpus: g.vcpus, memoryMiB: g.memoryMiB } : {};
      if (world.hasState) list.push(makeInstance(name, host, { created, status: inst.status as Instance["status"], ...size, ...(address ? { address } : {}) }));
      if (inst.fate !== "missing") {
        domains.get(host)?.push(makeDomain(name, { group, lineage, state: inst.fate as OwnedVm["state"], createdAt: created }));
      }
    });
    g.orphans.forEach((o, oi) => {
      const host = hostNames[o.host % hostNames.length] ?? "h0";
      domains.get(host)?.push(makeDomain(`${group}-o${oi}`, { group, lineage: o.foreign ? "foreign" : lineage }));
    });
    instances[group] = list;
  });
  const observations: HostObservation[] = world.hosts.map((h, i) => {
    const name = `h${i}`;
    return h.reachable
      ? makeObservation(name, {
          domains: domains.get(name) ?? [],
          capacity: {
            cpus: h.cpus,
            allocatedVcpus: h.allocatedVcpus,
            freeMemoryMiB: h.freeMemoryMiB,
            pool: { name: "default", capacityBytes: 100 * GiB, availableBytes: h.availableGiB * GiB },
            volumes: h.hasImage ? ["base.qcow2"] : [],
          },
        })
      : makeObservation(name, { unreachable: "no route to host" });
  });
  return makeInput({ config, state: world.hasState ? makeState(instances, { serial: 4 }) : null, observations, seed: world.seed });
}

describe("computePlan properties", () => {
  it("never plans a group outside its min and max, and says how many VMs short of its size it stays", () => {
    fc.assert(
      fc.property(arbWorld, (world) => {
        const input = buildInput(world);
        const plan = computePlan(input);
        for (const g of input.config.groups) {
          if (plan.errors.some((e) => e.group === g.name)) continue;
          if (plan.warnings.some((w) => w.startsWith(`group ${g.name}:`) && w.includes("should go"))) continue;
          const gp = plan.groups.find((p) => p.name === g.name);
          const adds = plan.changes.filter((c) => c.group === g.name && c.action === "create").length;
          const scaleIns = plan.changes.filter((c) => c.group === g.name && c.reason === "scale_in").length;
          const after = (gp?.current ?? 0) + adds - scaleIns;
          const missing = plan.shortfalls.filter((s) => s.group === g.name).reduce((n, s) => n + s.missing, 0);
          expect(gp?.desired).toBeGreaterThanOrEqual(g.min);
          expect(gp?.desired).toBeLessThanOrEqual(g.max);
          expect(after + missing).toBe(gp?.desired);
          if (missing === 0) expect(after).toBeGreaterThanOrEqual(g.min);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("never puts more on a host than its free memory, vCPUs and disk allow, counting deletes only for creates that wait for them", () => {
    fc.assert(
      fc.property(arbWorld, (world) => {
        const input = buildInput(world);
        const plan = computePlan(input);
        const deletes = new Map(plan.changes.flatMap((c) => (c.action === "delete" ? [[c.address, c] as const] : [])));
        for (const host of input.config.hosts) {
          const made = plan.changes.flatMap((c) => (c.action === "create" && c.host === host.name ? [c] : []));
          if (made.length === 0) continue;
          const obs = input.observations.find((o) => o.host === host.name);
          if (obs?.status !== "ok") throw new Error(`created on unreachable host ${host.name}`);
          const cap = obs.capacity;
          // What the plan's deletes on this host give back: running or paused VMs, at their recorded or template size.
          const freed = { memoryMiB: 0, vcpus: 0 };
          const giving: string[] = [];
          for (const d of deletes.values()) {
            if (d.host !== host.name) continue;
            const domain = obs.vms.find((x) => x.name === d.name);
            if (domain?.state !== "running" && domain?.state !== "paused") continue;
            const inst = input.state?.groups.find((g) => g.name === d.group)?.instances.find((i) => i.name === d.name);
            const template = input.config.groups.find((g) => g.name === d.group)?.template;
            freed.memoryMiB += inst?.memoryMiB ?? template?.memoryMiB ?? 0;
            freed.vcpus += inst?.vcpus ?? template?.vcpus ?? 0;
            giving.push(d.address);
          }
          const sum = (list: typeof made, f: (c: (typeof made)[number]) => number) => list.reduce((n, c) => n + f(c), 0);
          // Only a create that waits for every delete giving room on its host may count on that room.
          const waiting = made.filter((c) => giving.every((a) => c.waits_for?.includes(a)));
          const notWaiting = made.filter((c) => !waiting.includes(c));
          const fit = (g: string) => obs.fits[g];
          for (const c of made) expect(fit(c.group)?.ok, `${c.group} fits ${host.name}`).toBe(true);
          if (notWaiting.length > 0) {
            expect(sum(notWaiting, (c) => c.vm.memoryMiB)).toBeLessThanOrEqual(cap.freeMemoryMiB - host.reservedMemoryMiB);
            expect(sum(notWaiting, (c) => c.vm.vcpus)).toBeLessThanOrEqual(cap.cpus * host.cpuOvercommit - cap.allocatedVcpus);
          }
          expect(sum(made, (c) => c.vm.memoryMiB)).toBeLessThanOrEqual(cap.freeMemoryMiB - host.reservedMemoryMiB + freed.memoryMiB);
          expect(sum(made, (c) => c.vm.vcpus)).toBeLessThanOrEqual(cap.cpus * host.cpuOvercommit - cap.allocatedVcpus + freed.vcpus);
          const pool = cap.resources["pool:default"];
          expect(sum(made, (c) => (c.vm.settings.test as { diskSizeGiB: number }).diskSizeGiB * GiB)).toBeLessThanOrEqual(pool?.available ?? 0);
          // Every create waits only for deletes of the same plan.
          for (const c of made) for (const a of c.waits_for ?? []) expect(deletes.has(a), a).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("plans no changes after its plan was applied, except for groups the first plan left short", () => {
    fc.assert(
      fc.property(arbWorld, (world) => {
        const input = buildInput(world);
        const plan = computePlan(input);
        const after = simulateApply(plan, input.state, input.observations);
        const again = computePlan({ ...input, state: after.state, observations: after.observations, newUuid: uuidSequence(1000) });
        const short = new Set([...plan.errors, ...plan.shortfalls].map((e) => e.group));
        expect(again.changes.filter((c) => c.action === "delete")).toEqual([]);
        expect(again.changes.filter((c) => !short.has(c.group))).toEqual([]);
        expect(again.errors.filter((e) => !short.has(e.group))).toEqual([]);
        expect(again.shortfalls.filter((e) => !short.has(e.group))).toEqual([]);
        if (plan.errors.length === 0 && plan.shortfalls.length === 0) expect(again.changes).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it("never gives two VMs the same name, UUID, MAC or static address", () => {
    fc.assert(
      fc.property(arbWorld, (world) => {
        const input = buildInput(world);
        const plan = computePlan(input);
        const made = plan.changes.flatMap((c) => (c.action === "create" ? [c] : []));
        const existing = input.state?.groups.flatMap((g) => g.instances.map((i) => i.name)) ?? [];
        for (const values of [[...existing, ...made.map((c) => c.name)], made.map((c) => c.uuid), made.map((c) => c.uuid.slice(0, 8))])
          expect(new Set(values).size).toBe(values.length);
        const deleted = new Map(plan.changes.flatMap((c) => (c.action === "delete" ? [[c.name, c.address] as const] : [])));
        for (const g of input.config.groups) {
          const kept = input.state?.groups.find((s) => s.name === g.name)?.instances.filter((i) => !deleted.has(i.name)) ?? [];
          const used = [
            ...kept.flatMap((i) => (i.address ? [i.address] : [])),
            ...made.filter((c) => c.group === g.name).flatMap((c) => (c.address_v4 ? [c.address_v4] : [])),
          ];
          expect(new Set(used).size).toBe(used.length);
          // An address taken over from a VM this plan deletes is used only once that delete finished.
          for (const c of made.filter((m) => m.group === g.name && m.address_v4)) {
            const previous = input.state?.groups.find((s) => s.name === g.name)?.instances.find((i) => i.address === c.address_v4);
            if (previous) expect(c.waits_for).toContain(deleted.get(previous.name));
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
