/**
 * Scale-up: which groups grow, and by how many nodes, for the pods the scheduler could not place. Pure.
 *
 *   pending pods ─▶ fit an existing node now? (the scheduler will place them: no node for them)
 *                ─▶ fit a node on its way?    (no new node either: they wait for it)
 *                ─▶ per group: first-fit decreasing onto new template nodes, within max ─▶ options
 *                ─▶ the expander chain picks one; its pods are taken; again with the rest, until none fits
 *                ─▶ what no group can take is reported (per group: why), never scaled for
 *
 * Several groups may grow in one decision (a GPU pod and a web pod need different templates); each group's reason
 * names its pods and the numbers: "3 pods unschedulable (cpu): +2 on web-workers, least waste 12%".
 */
import { bindPods, freeOf, podsByNode } from "./cluster-state.js";
import { podKey, type SimNode, type SimPod } from "./cluster-model.js";
import { classify, packClasses, packPods } from "./bin-pack.js";
import { expand, type ExpanderContext, type ExpanderName, type ExpansionOption } from "./expander.js";
import type { GroupTemplate } from "./group-template.js";
import type { FitFailure } from "./predicates.js";

/** A group that may grow. */
export interface ScaleUpGroup {
  template: GroupTemplate;
  /** VMs the group has (running and being created). */
  current: number;
  max: number;
  /** Of `current`, the VMs whose Node is not Ready yet (still within the max provision time). */
  upcoming: number;
  /** Why the group may not grow now (backed off after failures); undefined: it may. */
  blocked?: string;
}

/** The inputs of a scale-up decision. */
export interface ScaleUpInput {
  /** Pods with PodScheduled=False/Unschedulable (and no node). */
  pending: readonly SimPod[];
  /** The cluster's nodes and the pods bound to them (for "fits an existing node now"). */
  nodes: readonly SimNode[];
  bound: readonly SimPod[];
  groups: readonly ScaleUpGroup[];
  expander: readonly ExpanderName[];
  expanderContext?: ExpanderContext;
}

/** One group's growth. */
export interface GroupScaleUp {
  group: string;
  add: number;
  pods: SimPod[];
  /** The expander's words. */
  why: string[];
  waste: { cpu: number; memory: number };
  reason: string;
}

/** A pod no group can take, and each group's reason. */
export interface Unplaceable {
  pod: SimPod;
  /** Per group: the constraint or resource that stops it, `max` (the group is full) or the group's block. */
  groups: Record<string, FitFailure | "max" | "blocked">;
}

/** What scale-up decided. */
export interface ScaleUpResult {
  adds: GroupScaleUp[];
  /** Pods that fit an existing node now (the scheduler should place them; no node is added for them). */
  schedulable: SimPod[];
  /** Pods that fit a node on its way, per group. */
  waiting: { group: string; pods: SimPod[] }[];
  unplaceable: Unplaceable[];
}

/** What the scheduler said was short, from its message ("0/3 nodes are available: 3 Insufficient cpu."). */
export function unschedulableCauses(pods: readonly SimPod[]): string[] {
  const causes = new Set<string>();
  for (const p of pods) {
    const m = p.unschedulable?.message ?? "";
    if (/Insufficient cpu/i.test(m)) causes.add("cpu");
    if (/Insufficient memory/i.test(m)) causes.add("memory");
    if (/Too many pods/i.test(m)) causes.add("pods");
    for (const r of m.matchAll(/Insufficient ([a-z0-9./-]*[a-z0-9])/gi)) if (!["cpu", "memory"].includes(r[1]!.toLowerCase())) causes.add(r[1]!);
    if (/taint|node affinity|selector/i.test(m)) causes.add("constraints");
    if (/no nodes available|^0\/0 nodes/i.test(m)) causes.add("no nodes");
  }
  return [...causes].sort();
}

/** "default/a, default/b, default/c and 4 more". */
export function namePods(pods: readonly SimPod[], show = 3): string {
  const names = pods.slice(0, show).map(podKey);
  return pods.length > show ? `${names.join(", ")} and ${pods.length - show} more` : names.join(", ");
}

/** Decides the scale-up for `input`: see the module comment. */
export function computeScaleUp(input: ScaleUpInput): ScaleUpResult {
  // Pods the simulation places on an existing node are the scheduler's: it has not retried them yet.
  const schedulable: SimPod[] = [];
  let remaining: SimPod[] = [];
  const free = freeOf(input.nodes, input.bound);
  const ready = input.nodes.filter((n) => n.ready && !n.unschedulable);
  const ordered = [...input.pending].sort((a, b) => b.requests.cpuMillis - a.requests.cpuMillis || b.requests.memoryBytes - a.requests.memoryBytes || podKey(a).localeCompare(podKey(b)));
  const placedNow = bindPods(ordered, ready, free, podsByNode(input.bound));
  for (const p of ordered) (placedNow.has(p.uid) ? schedulable : remaining).push(p);

  const waiting: ScaleUpResult["waiting"] = [];
  for (const g of [...input.groups].sort((a, b) => a.template.group.localeCompare(b.template.group))) {
    if (g.upcoming <= 0 || remaining.length === 0) continue;
    const r = packPods(remaining, g.template, { limit: 0, upcoming: g.upcoming });
    if (r.onUpcoming.length === 0) continue;
    waiting.push({ group: g.template.group, pods: r.onUpcoming });
    const taken = new Set(r.onUpcoming.map((p) => p.uid));
    remaining = remaining.filter((p) => !taken.has(p.uid));
  }

  const adds: GroupScaleUp[] = [];
  const added = new Map<string, number>();
  const open = input.groups.filter((g) => !g.blocked);
  // Whether a class may go on a group's template at all does not change between rounds.
  const fitCaches = new Map<string, Map<string, FitFailure | null>>(input.groups.map((g) => [g.template.group, new Map()]));
  let classes = classify(remaining);
  while (remaining.length > 0) {
    const options: ExpansionOption[] = [];
    for (const g of open) {
      const room = g.max - g.current - (added.get(g.template.group) ?? 0);
      if (room <= 0) continue;
      const pack = packClasses(classes, g.template, { limit: room }, fitCaches.get(g.template.group));
      if (pack.placedCount > 0)
        options.push({
          group: g.template.group,
          newNodes: pack.newNodes,
          podCount: pack.placedCount,
          waste: pack.waste,
          get pods() {
            return pack.placed;
          },
        });
    }
    if (options.length === 0) break;
    const { option, why } = expand(input.expander, options, input.expanderContext);
    const pods = [...option.pods];
    added.set(option.group, (added.get(option.group) ?? 0) + option.newNodes);
    adds.push({ group: option.group, add: option.newNodes, pods, why, waste: option.waste, reason: "" });
    const taken = new Set(pods.map((p) => p.uid));
    remaining = remaining.filter((p) => !taken.has(p.uid));
    classes = classes.map((c) => ({ ...c, pods: c.pods.filter((p) => !taken.has(p.uid)) })).filter((c) => c.pods.length > 0);
  }

  const unplaceable: Unplaceable[] = [];
  for (const c of classes) {
    const groups: Unplaceable["groups"] = {};
    for (const g of input.groups) {
      if (g.blocked) groups[g.template.group] = "blocked";
      else groups[g.template.group] = packClasses([{ ...c, pods: [c.shape] }], g.template, { limit: 1 }, fitCaches.get(g.template.group)).misfits[0]?.why ?? "max";
    }
    for (const pod of c.pods) unplaceable.push({ pod, groups });
  }
  unplaceable.sort((a, b) => podKey(a.pod).localeCompare(podKey(b.pod)));

  // One entry per group (a group chosen twice, after another took some pods, adds up).
  const merged = new Map<string, GroupScaleUp>();
  for (const a of adds) {
    const m = merged.get(a.group);
    if (m) {
      m.add += a.add;
      m.pods.push(...a.pods);
      m.why.push(...a.why.filter((w) => !m.why.includes(w)));
    } else merged.set(a.group, { ...a, pods: [...a.pods], why: [...a.why] });
  }
  const result = [...merged.values()].map((a) => {
    const causes = unschedulableCauses(a.pods);
    return {
      ...a,
      reason: `${a.pods.length} pod${a.pods.length === 1 ? "" : "s"} unschedulable${causes.length > 0 ? ` (${causes.join(", ")})` : ""}: +${a.add} on ${a.group}, ${a.why.join(", ")} [${namePods(a.pods)}]`,
    };
  });
  return { adds: result, schedulable, waiting, unplaceable };
}
