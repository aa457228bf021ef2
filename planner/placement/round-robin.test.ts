import { describe, expect, it } from "vitest";
import type { HostRoom } from "./types.js";
import { roundRobin } from "./round-robin.js";

const room = (name: string, order: number, freeMemoryMiB = 1000): HostRoom => ({ name, order, freeMemoryMiB, freeVcpus: 4, free: {} });
const ctx = (counts: Record<string, number>) => ({ group: "web", index: 0, rng: () => 0, groupCountByHost: new Map(Object.entries(counts)) });

describe("round-robin placement", () => {
  it("picks the host with the fewest instances of the group", () => {
    expect(roundRobin.pick([room("a", 0), room("b", 1), room("c", 2)], ctx({ a: 2, b: 1, c: 3 }))).toBe("b");
  });

  it("breaks ties by config order, counting hosts without instances as zero", () => {
    expect(roundRobin.pick([room("c", 2), room("b", 1), room("a", 0)], ctx({ a: 1 }))).toBe("b");
  });
});
