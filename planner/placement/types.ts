import type { PlacementStrategyName } from "../../config/types.js";

/** A host that has room for one more VM of the group being placed, with what is left after planned creates. */
export interface HostRoom {
  name: string;
  /** Position of the host in the group's `hosts` list: the tie-breaker every strategy uses. */
  order: number;
  freeMemoryMiB: number;
  freeVcpus: number;
  /** What is left of each other resource the VM takes (by the adapter's key, e.g. `pool:default`, in its unit). */
  free: Record<string, number>;
}

/** What a strategy may look at besides the candidates. */
export interface PlacementContext {
  group: string;
  /** Index of this VM among the group's new VMs in this plan. */
  index: number;
  /** Seeded generator in [0, 1); the only randomness a strategy may use. */
  rng: () => number;
  /** Instances of this group per host: present ones plus those already placed in this plan. */
  groupCountByHost: Map<string, number>;
}

/** Picks the host for one new VM among hosts that have room (never an empty list). */
export interface PlacementStrategy {
  name: PlacementStrategyName;
  /** Returns the name of one of `candidates`. */
  pick(candidates: HostRoom[], ctx: PlacementContext): string;
}

/** The candidate that sorts first under `compare`, ties broken by config order. */
export function best(candidates: HostRoom[], compare: (a: HostRoom, b: HostRoom) => number): string {
  const [first] = [...candidates].sort((a, b) => compare(a, b) || a.order - b.order);
  if (!first) throw new Error("placement strategy called without candidates");
  return first.name;
}
