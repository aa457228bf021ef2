import type { Config, GroupConfig } from "../config/types.js";
import type { Decision, DecisionSource } from "./decision.js";

/** A group's size from the config's `desired` field, within min and max. */
export function decideFromGroup(g: GroupConfig): Decision {
  return { group: g.name, desired: Math.min(g.max, Math.max(g.min, g.desired)), code: "config", reason: `desired: ${g.desired} in config`, source: "config" };
}

/**
 * Decides each group's desired size from the config's `desired` field.
 * The metrics-driven policy engine replaces this source of decisions; the planner does not know the difference.
 */
export function decideFromConfig(config: Config): Decision[] {
  return config.groups.map(decideFromGroup);
}

/** The decision source of groups that have no other: the config's `desired`. */
export const configSource: DecisionSource = {
  name: "config",
  owns: () => true,
  decide: (group) => decideFromGroup(group),
};
