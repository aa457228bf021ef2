import { best, type PlacementStrategy } from "./types.js";

/** Fills hosts in config order: the first host with room. */
export const fillFirst = {
  name: "fill-first",
  pick: (candidates, _ctx) => best(candidates, () => 0),
} satisfies PlacementStrategy;
