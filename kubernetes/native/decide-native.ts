/**
 * One scan of native mode, pure: the cluster (nodes, pods, DaemonSets), the node groups and their VMs, what the loop
 * remembers, and the clock in; per group a decision (how many nodes to add, which VMs to remove, why) and the report
 * out. The loop (native-loop.ts) reads the cluster and applies; this decides.
 *
 *   cluster health (unready nodes) ─▶ halted? every group keeps its size
 *   pending pods (Unschedulable, not held by the batcher) ─▶ scale-up (scale-up.ts)
 *   no scale-up this scan, no delay in force ─▶ scale-down and consolidation (scale-down.ts)
 */
import type { GroupConfig } from "../../config/types.js";
import type { Member } from "../../policies/aggregate.js";
import type { SimNode, SimPod } from "./cluster-model.js";
import type { ExpanderName, PriorityRule } from "./expander.js";
import { groupTemplate } from "./group-template.js";
import { scheduledBudget, type ScheduledBudget } from "./disruption-budget.js";
import type { SimPdb } from "./pdb-tracker.js";
import { computeScaleDown, formatDuration, keptNotes, type NodeVerdict, type ScaleDownGroup } from "./scale-down.js";
import { computeScaleUp, namePods, type ScaleUpGroup, type Unplaceable } from "./scale-up.js";
import { clusterHealth, groupBackoff, scaleDownDelay, type NativeMemory, type SafetyOptions } from "./safety.js";

/** Native mode's options (config `kubernetes.native`, milliseconds here). */
export interface NativeOptions extends SafetyOptions {
  /** @default ["least-waste"] */
  expander: ExpanderName[];
  priorities: PriorityRule[];
  scaleDown: {
    enabled: boolean;
    /** @default 0.5 (a group's kubernetes.autoscaling.scaleDownUtilizationThreshold overrides) */
    utilizationThreshold: number;
    /** @default 600000 (a group's kubernetes.autoscaling.scaleDownUnneededSeconds overrides) */
    unneededMs: number;
    /** Per group, unless the group sets its own. @default "10%" */
    budget: string;
    /** Budgets on a schedule, per group unless the group sets its own list; the most restrictive in force wins. @default [] */
    budgets: ScheduledBudget[];
  };
}

/** The cluster as read for one scan. */
export interface ClusterSnapshot {
  nodes: SimNode[];
  /** Active pods: bound ones, and pending ones (with their scheduler condition). */
  pods: SimPod[];
  /** The pods the cluster's DaemonSets would put on a node. */
  daemonSets: SimPod[];
  /** The PodDisruptionBudgets: scale-down never plans more evictions than they allow. */
  pdbs: SimPdb[];
}

/** What one scan decides for one group. */
export interface NativeGroupDecision {
  group: string;
  /** VMs counted (the planner's members). */
  current: number;
  add: number;
  /** VMs (= Node names) to remove. */
  remove: string[];
  code: "pending_pods" | "unneeded_nodes" | "steady" | "too_many_unready" | "waiting_for_nodes" | "backed_off";
  reason: string;
}

/** The inputs of a scan. */
export interface NativeInput {
  groups: readonly GroupConfig[];
  /** Per group: its VMs (state), as the planner counts them. */
  members: ReadonlyMap<string, readonly Member[]>;
  cluster: ClusterSnapshot;
  /** Pods the batcher still holds (their batch is open): left for the next scan. */
  held?: ReadonlySet<string>;
  memory: NativeMemory;
  now: Date;
  options: NativeOptions;
  random?: () => number;
}

/** What a scan decided, and why. */
export interface NativeResult {
  decisions: Map<string, NativeGroupDecision>;
  /** Pods no group can take (reported every scan, never scaled for). */
  unplaceable: Unplaceable[];
  /** Pods the simulation places on an existing node (left to the scheduler). */
  schedulable: SimPod[];
  /** Halted by the unready rule. */
  halted?: string;
  /** Why scale-down did not run this scan. */
  scaleDownSkipped?: string;
  /** Per node of a group: scale-down's verdict. */
  nodes: Record<string, NodeVerdict>;
  /** VMs whose Node is not Ready after the max provision time. */
  stuck: { group: string; name: string; ageMs: number }[];
  /** The memory with the unneeded times of this scan. */
  memory: NativeMemory;
}

/** Decides one scan: see the module comment. */
export function decideNative(input: NativeInput): NativeResult {
  const { now, options: o, cluster } = input;
  const groups = input.groups.filter((g) => g.kubernetes && !g.suspend);
  const memberOf = new Map<string, string>();
  for (const g of groups) for (const m of input.members.get(g.name) ?? []) memberOf.set(m.name, g.name);
  const nodeByName = new Map(cluster.nodes.map((n) => [n.name, n]));
  const groupOf = (n: SimNode) => memberOf.get(n.name);
  const decisions = new Map<string, NativeGroupDecision>();
  const base = (g: GroupConfig): NativeGroupDecision => ({ group: g.name, current: (input.members.get(g.name) ?? []).length, add: 0, remove: [], code: "steady", reason: "" });
  for (const g of groups) decisions.set(g.name, base(g));

  const result: NativeResult = { decisions, unplaceable: [], schedulable: [], nodes: {}, stuck: [], memory: { ...input.memory } };
  const health = clusterHealth(cluster.nodes, o);
  if (!health.healthy) {
    for (const d of decisions.values()) Object.assign(d, { code: "too_many_unready", reason: health.reason! });
    return { ...result, halted: health.reason! };
  }

  // Nodes on their way: VMs without a Ready Node, younger than the group's max provision time.
  const upcoming = new Map<string, number>();
  for (const g of groups) {
    const maxMs = (g.kubernetes!.autoscaling.maxNodeProvisionSeconds ?? 900) * 1000;
    for (const m of input.members.get(g.name) ?? []) {
      if (nodeByName.get(m.name)?.ready) continue;
      const age = now.getTime() - Date.parse(m.createdAt);
      if (age < maxMs) upcoming.set(g.name, (upcoming.get(g.name) ?? 0) + 1);
      else result.stuck.push({ group: g.name, name: m.name, ageMs: age });
    }
  }

  const bound = cluster.pods.filter((p) => p.nodeName);
  const pending = cluster.pods.filter((p) => !p.nodeName && p.unschedulable && !input.held?.has(p.uid));
  const up = computeScaleUp({
    pending,
    nodes: cluster.nodes,
    bound,
    groups: groups.map((g): ScaleUpGroup => {
      const blocked = groupBackoff(input.memory, g.name, now, o);
      return { template: groupTemplate(g, cluster.daemonSets), current: decisions.get(g.name)!.current, max: g.max, upcoming: upcoming.get(g.name) ?? 0, ...(blocked ? { blocked } : {}) };
    }),
    expander: o.expander,
    expanderContext: { priorities: o.priorities, ...(input.random ? { random: input.random } : {}) },
  });
  result.unplaceable = up.unplaceable;
  result.schedulable = up.schedulable;
  for (const a of up.adds) Object.assign(decisions.get(a.group)!, { add: a.add, code: "pending_pods", reason: a.reason });
  for (const w of up.waiting) {
    const d = decisions.get(w.group)!;
    if (d.add === 0) Object.assign(d, { code: "waiting_for_nodes", reason: `${w.pods.length} pod${w.pods.length === 1 ? "" : "s"} wait for the ${upcoming.get(w.group)} node(s) of ${w.group} on their way [${namePods(w.pods)}]` });
  }
  for (const g of groups) {
    const d = decisions.get(g.name)!;
    const blocked = groupBackoff(input.memory, g.name, now, o);
    if (d.code === "steady" && blocked && up.unplaceable.some((u) => u.groups[g.name] === "blocked")) Object.assign(d, { code: "backed_off", reason: blocked });
  }

  if (!o.scaleDown.enabled) result.scaleDownSkipped = "scale-down is off (kubernetes.native.scaleDown.enabled: false)";
  else if (up.adds.length > 0) result.scaleDownSkipped = "this scan scales up";
  else result.scaleDownSkipped = scaleDownDelay(input.memory, now, o);
  if (result.scaleDownSkipped === undefined) {
    delete result.scaleDownSkipped;
    const down = computeScaleDown({
      nodes: cluster.nodes,
      pods: bound,
      pdbs: cluster.pdbs,
      groups: groups.map((g): ScaleDownGroup => {
        const a = g.kubernetes!.autoscaling;
        return {
          name: g.name,
          min: g.min,
          current: decisions.get(g.name)!.current,
          threshold: a.scaleDownUtilizationThreshold ?? o.scaleDown.utilizationThreshold,
          unneededMs: a.scaleDownUnneededSeconds !== undefined ? a.scaleDownUnneededSeconds * 1000 : o.scaleDown.unneededMs,
          budget: a.disruptionBudget ?? o.scaleDown.budget,
          scheduledBudgets: a.disruptionBudgets ? a.disruptionBudgets.map(scheduledBudget) : o.scaleDown.budgets,
          ...(a.ignoreDaemonSetsUtilization ? { ignoreDaemonSetsUtilization: true } : {}),
        };
      }),
      groupOf,
      unneededSince: input.memory.unneededSince,
      now,
    });
    result.nodes = down.nodes;
    result.memory.unneededSince = down.unneededSince;
    for (const r of down.remove) Object.assign(decisions.get(r.group)!, { remove: r.nodes, code: "unneeded_nodes", reason: r.reason });
  }

  for (const g of groups) {
    const d = decisions.get(g.name)!;
    if (d.code !== "steady") continue;
    const mine = Object.entries(result.nodes).filter(([n]) => memberOf.get(n) === g.name);
    const waiting = mine.filter(([, v]) => v.verdict === "unneeded") as [string, Extract<NodeVerdict, { verdict: "unneeded" }>][];
    const parts = [`${d.current} VM${d.current === 1 ? "" : "s"}`];
    if (pending.length === 0) parts.push("no unschedulable pods");
    if (waiting.length > 0) parts.push(`unneeded: ${waiting.map(([n, v]) => `${n} ${Math.round(v.utilisation * 100)}% (${formatDuration(v.waitMs)} to go)`).join(", ")}`);
    parts.push(...keptNotes(result.nodes, mine.map(([n]) => n)));
    if (result.scaleDownSkipped && o.scaleDown.enabled && result.scaleDownSkipped !== "this scan scales up") parts.push(result.scaleDownSkipped);
    d.reason = parts.join("; ");
  }
  return result;
}
