import { describe, expect, it } from "vitest";
import { GiB, makeHost, makeObservation, makeTemplate } from "../testing.js";
import { assessHost } from "./capacity.js";

const none = { memoryMiB: 0, vcpus: 0, diskBytes: 0 };
const assess = (obs = makeObservation("a"), planned = none, template = makeTemplate()) =>
  assessHost({ name: "a", order: 0, host: makeHost({ name: "a", reservedMemoryMiB: 512, cpuOvercommit: 2 }), observation: obs, template, planned });

describe("assessHost", () => {
  it("reports the room left after the host's reserve and what the plan already puts there", () => {
    const obs = makeObservation("a", { capacity: { cpus: 4, allocatedVcpus: 3, freeMemoryMiB: 2000 } });
    expect(assess(obs, { memoryMiB: 256, vcpus: 1, diskBytes: 2 * GiB })).toEqual({
      room: { name: "a", order: 0, freeMemoryMiB: 2000 - 512 - 256, freeVcpus: 4 * 2 - 3 - 1, freeDiskBytes: 98 * GiB },
    });
  });

  it("fits a VM that needs exactly the room left", () => {
    const obs = makeObservation("a", { capacity: { cpus: 1, allocatedVcpus: 1, freeMemoryMiB: 512 + 128, pool: { name: "default", capacityBytes: GiB, availableBytes: GiB } } });
    expect(assess(obs)).toHaveProperty("room");
  });

  it("says why a host has no room", () => {
    expect(assess(makeObservation("a", { unreachable: "x" }))).toEqual({ reason: "unreachable" });
    expect(assessHost({ name: "a", order: 0, host: makeHost({ name: "a" }), observation: undefined, template: makeTemplate(), planned: none })).toEqual({ reason: "not observed" });
    expect(assess(makeObservation("a", { capacity: { freeMemoryMiB: 600 } }))).toEqual({ reason: "88 MiB free memory < 128 MiB needed" });
    expect(assess(makeObservation("a", { capacity: { freeMemoryMiB: 100 } }))).toEqual({ reason: "0 MiB free memory < 128 MiB needed" });
    expect(assess(makeObservation("a", { capacity: { volumes: [] } }))).toEqual({ reason: 'base image "base.qcow2" not in pool "default"' });
  });
});
