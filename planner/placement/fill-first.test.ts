import { describe, expect, it } from "vitest";
import type { HostRoom } from "./types.js";
import { fillFirst } from "./fill-first.js";

const room = (name: string, order: number): HostRoom => ({ name, order, freeMemoryMiB: 100, freeVcpus: 1, free: {} });

describe("fill-first placement", () => {
  it("picks the first host with room in config order, whatever the counts", () => {
    const ctx = { group: "web", index: 3, rng: () => 0.9, groupCountByHost: new Map([["b", 9]]) };
    expect(fillFirst.pick([room("c", 2), room("b", 1)], ctx)).toBe("b");
  });
});
