/**
 * The decision source of node groups in native mode: one scan's decisions (decide-native.ts) as `Decision`s. The
 * desired size is the group's VMs plus the nodes to add, less the VMs to remove, which are named (`remove`: the
 * planner takes them first). Without a scan (`premiscale plan` outside serve's loop) a group keeps its VMs. Pure.
 */
import type { NativeModeConfig } from "../../config/kubernetes.js";
import type { GroupConfig } from "../../config/types.js";
import type { Member } from "../../policies/aggregate.js";
import type { Decision, DecisionSource } from "../../policies/decision.js";
import type { NativeOptions, NativeResult } from "./decide-native.js";
import { scheduledBudget } from "./disruption-budget.js";

/** `Decision.source` of node groups in native mode. */
export const NATIVE_SOURCE = "kubernetes-native";

/** Native mode's options in the units decideNative takes. */
export function nativeOptions(n: NativeModeConfig): NativeOptions {
  return {
    scanIntervalMs: n.scanIntervalSeconds * 1000,
    delayAfterAddMs: n.scaleDown.delayAfterAddSeconds * 1000,
    delayAfterDeleteMs: n.scaleDown.delayAfterDeleteSeconds * 1000,
    delayAfterFailureMs: n.scaleDown.delayAfterFailureSeconds * 1000,
    maxTotalUnreadyPercentage: n.maxTotalUnreadyPercentage,
    okTotalUnreadyCount: n.okTotalUnreadyCount,
    initialBackoffMs: 300_000,
    maxBackoffMs: 1_800_000,
    expander: [...n.expander],
    priorities: n.priorities.map((p) => ({ priority: p.priority, patterns: [...p.patterns] })),
    scaleDown: { enabled: n.scaleDown.enabled, utilizationThreshold: n.scaleDown.utilizationThreshold, unneededMs: n.scaleDown.unneededSeconds * 1000, budget: n.scaleDown.budget, budgets: n.scaleDown.budgets.map(scheduledBudget) },
  };
}

/** The source for one scan's result (null: no scan, every group keeps its VMs). */
export function nativeSource(result: NativeResult | null): DecisionSource {
  return {
    name: NATIVE_SOURCE,
    owns: (g: GroupConfig) => g.kubernetes !== undefined,
    decide(g: GroupConfig, members: Member[]): Decision {
      const clamp = (n: number) => Math.min(g.max, Math.max(g.min, n));
      const d = result?.decisions.get(g.name);
      if (!d) return { group: g.name, desired: clamp(members.length), code: "native_idle", reason: `native mode: premiscale serve's scans decide this group; keeping its ${members.length} VM(s)` };
      const present = new Set(members.map((m) => m.name));
      const remove = d.remove.filter((n) => present.has(n));
      const desired = clamp(members.length + d.add - remove.length);
      const bound = desired !== members.length + d.add - remove.length ? ` (within min ${g.min} and max ${g.max})` : "";
      return { group: g.name, desired, code: d.code, reason: `${d.reason}${bound}`, ...(remove.length > 0 ? { remove } : {}) };
    },
  };
}
