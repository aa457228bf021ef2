import type { Config } from "../config/types.js";
import type { Decision } from "./decision.js";

/**
 * Decides each group's desired size from the config's `desired` field.
 * The metrics-driven policy engine replaces this source of decisions; the planner does not know the difference.
 */
export function decideFromConfig(config: Config): Decision[] {
  return config.groups.map((g) => ({
    group: g.name,
    desired: Math.min(g.max, Math.max(g.min, g.desired)),
    code: "config" as const,
    reason: `desired: ${g.desired} in config`,
  }));
}
