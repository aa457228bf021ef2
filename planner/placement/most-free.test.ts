import { describe, expect, it } from "vitest";
import type { HostRoom } from "./types.js";
import { mostFree } from "./most-free.js";

const room = (name: string, order: number, freeMemoryMiB: number): HostRoom => ({ name, order, freeMemoryMiB, freeVcpus: 4, free: {} });
const ctx = { group: "web", index: 0, rng: () => 0, groupCountByHost: new Map<string, number>() };

describe("most-free placement", () => {
  it("picks the host with the most free memory", () => {
    expect(mostFree.pick([room("a", 0, 500), room("b", 1, 2000), room("c", 2, 1000)], ctx)).toBe("b");
  });

  it("breaks ties by config order", () => {
    expect(mostFree.pick([room("c", 2, 900), room("b", 1, 900), room("a", 0, 100)], ctx)).toBe("b");
  });
});
