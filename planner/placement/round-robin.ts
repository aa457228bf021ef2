import { best, type PlacementStrategy } from "./types.js";

/** Spreads a group evenly: the host with the fewest instances of the group, ties by config order. */
export const roundRobin = {
  name: "round-robin",
  pick: (candidates, ctx) =>
    best(candidates, (a, b) => (ctx.groupCountByHost.get(a.name) ?? 0) - (ctx.groupCountByHost.get(b.name) ?? 0)),
} satisfies PlacementStrategy;
