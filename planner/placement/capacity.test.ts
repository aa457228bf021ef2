import { describe, expect, it } from "vitest";
import type { HostObservation } from "../../providers/provider.js";
import { GiB, makeConfig, makeHost, makeObservation, withFits } from "../testing.js";
import { assessHost, groupCapacityProblems, NO_USE, type HostUse } from "./capacity.js";

const config = makeConfig({ hosts: [{ name: "a", reservedMemoryMiB: 512, cpuOvercommit: 2 }] });
const group = config.groups[0]!;
const none = NO_USE;
const assess = (obs: HostObservation = makeObservation("a"), planned: HostUse = none, freed?: HostUse) =>
  assessHost({ name: "a", order: 0, host: config.hosts[0], observation: withFits(obs, config), group, planned, ...(freed ? { freed } : {}) });

describe("assessHost", () => {
  it("reports the room left after the host's reserve and what the plan already puts there", () => {
    const obs = makeObservation("a", { capacity: { cpus: 4, allocatedVcpus: 3, freeMemoryMiB: 2000 } });
    expect(assess(obs, { memoryMiB: 256, vcpus: 1, resources: { "pool:default": 2 * GiB } })).toEqual({
      room: { name: "a", order: 0, freeMemoryMiB: 2000 - 512 - 256, freeVcpus: 4 * 2 - 3 - 1, free: { "pool:default": 98 * GiB } },
      need: { memoryMiB: 128, vcpus: 1, resources: { "pool:default": GiB } },
    });
  });

  it("fits a VM that needs exactly the room left", () => {
    const obs = makeObservation("a", { capacity: { cpus: 1, allocatedVcpus: 1, freeMemoryMiB: 512 + 128, pool: { name: "default", capacityBytes: GiB, availableBytes: GiB } } });
    expect(assess(obs)).toHaveProperty("room");
  });

  it("says why a host has no room", () => {
    expect(assess(makeObservation("a", { unreachable: "x" }))).toEqual({ reason: "unreachable" });
    expect(assessHost({ name: "a", order: 0, host: makeHost({ name: "a" }), observation: undefined, group, planned: none })).toEqual({ reason: "not observed" });
    expect(assess(makeObservation("a", { capacity: { freeMemoryMiB: 600 } }))).toEqual({ reason: "88 MiB free memory < 128 MiB needed" });
    expect(assess(makeObservation("a", { capacity: { freeMemoryMiB: 100 } }))).toEqual({ reason: "0 MiB free memory < 128 MiB needed" });
    expect(assess(makeObservation("a", { capacity: { volumes: [] } }))).toEqual({ reason: 'base image "base.qcow2" not in pool "default"' });
    expect(assess(makeObservation("a", { capacity: { pool: { name: "default", capacityBytes: GiB, availableBytes: GiB / 2 } } }))).toEqual({ reason: '0.5 GiB free in pool "default" < 1 GiB needed' });
  });

  it("counts what the plan's deletes free only when nothing fits without it, and says the create must wait", () => {
    const full = makeObservation("a", { capacity: { cpus: 1, allocatedVcpus: 2, freeMemoryMiB: 512 + 128 } });
    expect(assess(full)).toEqual({ reason: "0 free vCPUs < 1 needed" });
    expect(assess(full, none, { memoryMiB: 0, vcpus: 1, resources: {} })).toMatchObject({ waits: true, room: { freeVcpus: 1 } });
    expect(assess(full, none, { memoryMiB: 128, vcpus: 0, resources: {} })).toEqual({ reason: "0 free vCPUs < 1 needed, counting what this plan's deletes on it free" });
    expect(assess(makeObservation("a"), none, { memoryMiB: 0, vcpus: 4, resources: {} })).not.toHaveProperty("waits");
  });
});

describe("groupCapacityProblems", () => {
  const two = makeConfig({ hosts: ["a", "b"], groups: [{ max: 3, template: { disk: { baseImage: "base.qcow2", sizeGiB: 10 } } }] });
  const observed = (aGiB: number, bGiB: number) =>
    new Map(
      [makeObservation("a", { capacity: { pool: { name: "default", capacityBytes: aGiB * GiB, availableBytes: GiB } } }), makeObservation("b", { capacity: { pool: { name: "default", capacityBytes: bGiB * GiB, availableBytes: GiB } } })].map((o) => [o.host, withFits(o, two)]),
    );

  it("reports hosts whose resources together could never hold max VMs, whatever is free now", () => {
    expect(groupCapacityProblems(two.groups[0]!, observed(10, 10))).toEqual(['pool "default" of a, b hold 20.0 GiB, but max 3 × 10.0 GiB needs 30.0 GiB']);
    expect(groupCapacityProblems(two.groups[0]!, observed(20, 10))).toEqual([]);
  });

  it("skips a group with a host that was not observed", () => {
    const partial = observed(1, 1);
    partial.delete("b");
    expect(groupCapacityProblems(two.groups[0]!, partial)).toEqual([]);
  });
});
