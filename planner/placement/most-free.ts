import { best, type PlacementStrategy } from "./types.js";

/** The host with the most free memory after what this plan already puts there, ties by config order. */
export const mostFree = {
  name: "most-free",
  pick: (candidates, _ctx) => best(candidates, (a, b) => b.freeMemoryMiB - a.freeMemoryMiB),
} satisfies PlacementStrategy;
