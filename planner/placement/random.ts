import type { PlacementStrategy } from "./types.js";

/** A host drawn from the seeded generator, so the same seed gives the same placement. */
export const random = {
  name: "random",
  pick: (candidates, ctx) => {
    const sorted = [...candidates].sort((a, b) => a.order - b.order);
    const chosen = sorted[Math.floor(ctx.rng() * sorted.length)] ?? sorted[0];
    if (!chosen) throw new Error("placement strategy called without candidates");
    return chosen.name;
  },
} satisfies PlacementStrategy;
