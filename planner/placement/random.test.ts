import { describe, expect, it } from "vitest";
import { seededRng } from "../random.js";
import type { HostRoom } from "./types.js";
import { random } from "./random.js";

const rooms: HostRoom[] = ["c", "a", "b"].map((name) => ({ name, order: name.charCodeAt(0) - 97, freeMemoryMiB: 100, freeVcpus: 1, free: {} }));
const ctx = (rng: () => number) => ({ group: "web", index: 0, rng, groupCountByHost: new Map<string, number>() });

describe("random placement", () => {
  it("maps the generator's number onto the candidates in config order", () => {
    expect(random.pick(rooms, ctx(() => 0))).toBe("a");
    expect(random.pick(rooms, ctx(() => 0.5))).toBe("b");
    expect(random.pick(rooms, ctx(() => 0.99))).toBe("c");
  });

  it("makes the same picks from the same seed and spreads over every host", () => {
    const draw = (seed: string) => {
      const rng = seededRng(seed);
      return Array.from({ length: 30 }, () => random.pick(rooms, ctx(rng)));
    };
    expect(draw("lineage:web")).toEqual(draw("lineage:web"));
    expect(draw("lineage:web")).not.toEqual(draw("lineage:db"));
    expect(new Set(draw("lineage:web"))).toEqual(new Set(["a", "b", "c"]));
  });

  it("draws numbers in [0, 1)", () => {
    const rng = seededRng("x");
    for (let i = 0; i < 1000; i++) expect(rng()).toSatisfy((n: number) => n >= 0 && n < 1);
  });
});
