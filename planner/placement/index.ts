import type { PlacementStrategyName } from "../../config/types.js";
import { fillFirst } from "./fill-first.js";
import { mostFree } from "./most-free.js";
import { random } from "./random.js";
import { roundRobin } from "./round-robin.js";
import type { PlacementStrategy } from "./types.js";

export type { HostRoom, PlacementContext, PlacementStrategy } from "./types.js";

/** Every placement strategy by the name groups use in config. */
export const placementStrategies: Record<PlacementStrategyName, PlacementStrategy> = {
  "round-robin": roundRobin,
  "most-free": mostFree,
  "fill-first": fillFirst,
  random,
};
