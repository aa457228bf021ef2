/**
 * Scale-down and consolidation: which nodes go, simulated before anything is touched. Pure; the clock is `now`.
 *
 *   each Ready node of a group ─▶ utilisation = max(cpu, memory requests ÷ allocatable) < threshold?
 *        ─▶ not `scale-down-disabled`, no pod `safe-to-evict: "false"`, none without a controller, no kube-system pod
 *           without a PDB (those two unless `safe-to-evict: "true"`: cluster-autoscaler's defaults)
 *        ─▶ least used first: may its pods (not DaemonSet, not mirror) be evicted within what the PodDisruptionBudgets
 *           have left after the nodes taken before it (pdb-tracker.ts), and do they fit on the nodes that stay
 *           (same predicates)? yes: it is unneeded, its evictions are taken from the PDBs and its pods are moved in
 *           the simulation (the nodes they land on get fuller, so they may no longer be under the threshold: four
 *           half-empty nodes become two, not zero)
 *        ─▶ unneeded for `unneededMs` in a row (the first time it was seen unneeded is carried between scans)
 *        ─▶ within the group's min size and its disruption budget now (disruption-budget.ts: `10%` of its nodes by
 *           default, rounded up; the most restrictive scheduled budget in force; less its nodes being deleted)
 *           ─▶ removed, all of a group's in one plan
 *
 * The PDBs are counted over every node the simulation takes, across groups, whether it goes in this plan or waits
 * for its unneeded time: no plan needs more evictions from a PDB than its `disruptionsAllowed`.
 *
 * Never the last node with pods: pods that move need a node that stays, and the cluster always keeps one Ready node.
 */
import { bindPods, freeOf, podsByNode } from "./cluster-state.js";
import { podKey, type Resources, type SimNode, type SimPod } from "./cluster-model.js";
import { budgetNodes, budgetNow, type ScheduledBudget } from "./disruption-budget.js";
import { PdbTracker, type SimPdb } from "./pdb-tracker.js";
import { namePods } from "./scale-up.js";

export { budgetNodes };

/** A group that may shrink. */
export interface ScaleDownGroup {
  name: string;
  min: number;
  /** VMs the group has. */
  current: number;
  /** Below this utilisation a node may go. @default 0.5 */
  threshold: number;
  /** How long a node must have been unneeded. */
  unneededMs: number;
  /** The disruption budget: a node count (`"2"`) or a share of the group's nodes (`"10%"`, rounded up). */
  budget: string;
  /** Budgets in force on a schedule; the most restrictive in force wins. @default [] */
  scheduledBudgets?: readonly ScheduledBudget[];
  /** Its nodes being deleted now (they count against the budget). @default 0 */
  deleting?: number;
  /** Leave DaemonSet pods out of the utilisation. @default false (cluster-autoscaler's default) */
  ignoreDaemonSetsUtilization?: boolean;
}

/** The inputs of a scale-down decision. */
export interface ScaleDownInput {
  nodes: readonly SimNode[];
  /** Pods bound to nodes (active). */
  pods: readonly SimPod[];
  /** The cluster's PodDisruptionBudgets. @default [] */
  pdbs?: readonly SimPdb[];
  groups: readonly ScaleDownGroup[];
  /** The group of a node (undefined: not premiscale's; it stays and takes moved pods). */
  groupOf(node: SimNode): string | undefined;
  /** When each node was first seen unneeded (ISO 8601), from the previous scan. */
  unneededSince: Readonly<Record<string, string>>;
  now: Date;
}

/** Why a node of a group stays, or that it goes. */
export type NodeVerdict =
  | { verdict: "remove"; utilisation: number; movedTo: Record<string, string> }
  | { verdict: "unneeded"; utilisation: number; since: string; waitMs: number }
  | { verdict: "keep"; utilisation: number; why: string; by?: "pdb" | "budget" };

/** A group's removals. */
export interface GroupScaleDown {
  group: string;
  nodes: string[];
  reason: string;
}

/** What scale-down decided. */
export interface ScaleDownResult {
  remove: GroupScaleDown[];
  /** Per node of a group: what it is and why. */
  nodes: Record<string, NodeVerdict>;
  /** The nodes unneeded now, with when they were first seen so (carry it to the next scan). */
  unneededSince: Record<string, string>;
}

/** max(cpu, memory) requests ÷ allocatable of a node, and both parts. */
export function utilisation(node: SimNode, pods: readonly SimPod[]): { value: number; cpu: number; memory: number } {
  let cpu = 0;
  let mem = 0;
  for (const p of pods) {
    cpu += p.requests.cpuMillis;
    mem += p.requests.memoryBytes;
  }
  const c = node.allocatable.cpuMillis > 0 ? cpu / node.allocatable.cpuMillis : 1;
  const m = node.allocatable.memoryBytes > 0 ? mem / node.allocatable.memoryBytes : 1;
  return { value: Math.max(c, m), cpu: c, memory: m };
}

const pct = (x: number) => `${Math.round(x * 100)}%`;
const movable = (p: SimPod) => !p.daemonSet && !p.mirror;

/**
 * The nodes kept for a PDB or the disruption budget among `names`, as "web-c kept: pod … is covered by PDB …", for
 * the reasons of a scan: what an operator needs to know to see why a group did not shrink.
 */
export function keptNotes(verdicts: Readonly<Record<string, NodeVerdict>>, names: readonly string[]): string[] {
  const byWhy = new Map<string, string[]>();
  for (const n of names) {
    const v = verdicts[n];
    if (v?.verdict === "keep" && v.by) (byWhy.get(v.why) ?? byWhy.set(v.why, []).get(v.why)!).push(n);
  }
  return [...byWhy].map(([why, ns]) => `${ns.join(", ")} kept: ${why}`);
}

/** "10m0s" from milliseconds. */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${s % 60}s` : `${s}s`;
}

/** Decides the scale-down for `input`: see the module comment. */
export function computeScaleDown(input: ScaleDownInput): ScaleDownResult {
  const groups = new Map(input.groups.map((g) => [g.name, g]));
  const podsOn = podsByNode(input.pods);
  const usable = input.nodes.filter((n) => n.ready && !n.unschedulable);
  const free = freeOf(input.nodes, input.pods);
  const verdicts: Record<string, NodeVerdict> = {};
  const ofGroup = new Map<string, SimNode[]>();
  for (const n of input.nodes) {
    const g = input.groupOf(n);
    if (g && groups.has(g)) (ofGroup.get(g) ?? ofGroup.set(g, []).get(g)!).push(n);
  }

  const util = (n: SimNode) => {
    const g = groups.get(input.groupOf(n)!)!;
    return utilisation(n, (podsOn.get(n.name) ?? []).filter((p) => !(g.ignoreDaemonSetsUtilization && p.daemonSet)));
  };
  const candidates: { node: SimNode; u: number }[] = [];
  // Which PDBs cover a pod here; below, what they have left as the simulation takes nodes.
  const pdbs = new PdbTracker(input.pdbs ?? []);
  for (const [gname, nodes] of ofGroup) {
    const g = groups.get(gname)!;
    for (const n of nodes) {
      const u = util(n);
      const on = podsOn.get(n.name) ?? [];
      const blocker = on.filter((p) => p.safeToEvict === false);
      // cluster-autoscaler's defaults: a pod no controller owns would be lost (the drain refuses it), and a
      // kube-system pod without a PDB may be one the cluster needs (--skip-nodes-with-system-pods); safe-to-evict
      // "true" lets either go. Judged here, so such a node is never tainted for a drain that must refuse.
      const unowned = on.filter((p) => movable(p) && p.uncontrolled && p.safeToEvict !== true);
      const system = on.filter((p) => movable(p) && p.namespace === "kube-system" && p.safeToEvict !== true && pdbs.covering(p).length === 0);
      if (!n.ready) verdicts[n.name] = { verdict: "keep", utilisation: u.value, why: "not Ready" };
      else if (n.unschedulable) verdicts[n.name] = { verdict: "keep", utilisation: u.value, why: "cordoned (by someone else, or being drained)" };
      else if (n.scaleDownDisabled) verdicts[n.name] = { verdict: "keep", utilisation: u.value, why: "annotated cluster-autoscaler.kubernetes.io/scale-down-disabled" };
      else if (u.value >= g.threshold) verdicts[n.name] = { verdict: "keep", utilisation: u.value, why: `utilisation ${pct(u.value)} (cpu ${pct(u.cpu)}, memory ${pct(u.memory)}) ≥ ${pct(g.threshold)}` };
      else if (blocker.length > 0) verdicts[n.name] = { verdict: "keep", utilisation: u.value, why: `pod ${namePods(blocker)} is annotated safe-to-evict: "false"` };
      else if (unowned.length > 0) verdicts[n.name] = { verdict: "keep", utilisation: u.value, why: `pod ${namePods(unowned)} is not managed by a controller (annotate it safe-to-evict: "true" to let it go)` };
      else if (system.length > 0) verdicts[n.name] = { verdict: "keep", utilisation: u.value, why: `kube-system pod ${namePods(system)} has no PodDisruptionBudget (add one, or annotate it safe-to-evict: "true")` };
      else candidates.push({ node: n, u: u.value });
    }
  }
  candidates.sort((a, b) => a.u - b.u || a.node.name.localeCompare(b.node.name));

  // The simulation: take candidates least used first; each goes only if its pods may be evicted within the PDBs and
  // fit on the nodes that stay.
  const removed = new Set<string>();
  const removedOf = new Map<string, number>();
  const moves = new Map<string, Record<string, string>>();
  for (const { node } of candidates) {
    const gname = input.groupOf(node)!;
    const g = groups.get(gname)!;
    const u = util(node);
    if (u.value >= g.threshold) {
      verdicts[node.name] = { verdict: "keep", utilisation: u.value, why: `utilisation ${pct(u.value)} ≥ ${pct(g.threshold)} once pods of removed nodes move here` };
      continue;
    }
    if (g.current - (removedOf.get(gname) ?? 0) - (g.deleting ?? 0) <= g.min) {
      verdicts[node.name] = { verdict: "keep", utilisation: u.value, why: `group ${gname} at its min size ${g.min}` };
      continue;
    }
    const targets = usable.filter((n) => n.name !== node.name && !removed.has(n.name));
    if (targets.length === 0) {
      verdicts[node.name] = { verdict: "keep", utilisation: u.value, why: "the last Ready node of the cluster" };
      continue;
    }
    const pods = (podsOn.get(node.name) ?? []).filter(movable);
    // Where such a pod could go is not simulated: it stays where the scheduler put it, and so does its node.
    const unjudged = pods.filter((p) => p.unmodelled || p.spreadByNode);
    if (unjudged.length > 0) {
      const what = unjudged[0]!.unmodelled ?? "a topology spread over kubernetes.io/hostname";
      verdicts[node.name] = { verdict: "keep", utilisation: u.value, why: `pod ${namePods(unjudged)} has ${what}, which native mode does not simulate` };
      continue;
    }
    const refused = pdbs.check(pods);
    if (refused) {
      verdicts[node.name] = { verdict: "keep", utilisation: u.value, why: refused.why, by: "pdb" };
      continue;
    }
    const trial = new Map<string, Resources>([...free].map(([k, v]) => [k, { ...v }]));
    const placed = bindPods(pods, targets, trial, podsOn);
    const stuck = pods.filter((p) => !placed.has(p.uid));
    if (stuck.length > 0) {
      verdicts[node.name] = { verdict: "keep", utilisation: u.value, why: `pod ${namePods(stuck)} fits on no other node` };
      continue;
    }
    pdbs.take(pods, node.name);
    for (const [k, v] of trial) free.set(k, v);
    for (const p of pods) {
      const to = placed.get(p.uid)!;
      (podsOn.get(to) ?? podsOn.set(to, []).get(to)!).push({ ...p, nodeName: to });
    }
    podsOn.set(node.name, (podsOn.get(node.name) ?? []).filter((p) => !movable(p)));
    removed.add(node.name);
    removedOf.set(gname, (removedOf.get(gname) ?? 0) + 1);
    moves.set(node.name, Object.fromEntries(pods.map((p) => [podKey(p), placed.get(p.uid)!])));
    verdicts[node.name] = { verdict: "unneeded", utilisation: u.value, since: "", waitMs: 0 };
  }

  // Unneeded long enough, then within the budget.
  const now = input.now.getTime();
  const unneededSince: Record<string, string> = {};
  const remove: GroupScaleDown[] = [];
  for (const [gname, nodes] of [...ofGroup].sort((a, b) => a[0].localeCompare(b[0]))) {
    const g = groups.get(gname)!;
    const budget = budgetNow(g.budget, g.scheduledBudgets ?? [], nodes.length, input.now);
    const allowed = Math.max(0, budget.allowed - (g.deleting ?? 0));
    const going: string[] = [];
    const ready: { name: string; u: number; since: number }[] = [];
    for (const { node, u } of candidates) {
      if (input.groupOf(node) !== gname || !removed.has(node.name)) continue;
      const since = input.unneededSince[node.name] ?? input.now.toISOString();
      unneededSince[node.name] = since;
      const waited = now - Date.parse(since);
      if (waited >= g.unneededMs) ready.push({ name: node.name, u, since: waited });
      else verdicts[node.name] = { verdict: "unneeded", utilisation: u, since, waitMs: g.unneededMs - waited };
    }
    for (const r of ready) {
      if (going.length < allowed) {
        going.push(r.name);
        verdicts[r.name] = { verdict: "remove", utilisation: r.u, movedTo: moves.get(r.name) ?? {} };
      } else verdicts[r.name] = { verdict: "keep", utilisation: r.u, why: `${budget.by} of ${nodes.length} nodes (${allowed} now) is used`, by: "budget" };
    }
    if (going.length === 0) continue;
    const parts = going.map((n) => {
      const v = verdicts[n] as Extract<NodeVerdict, { verdict: "remove" }>;
      const moved = Object.keys(v.movedTo).length;
      const to = [...new Set(Object.values(v.movedTo))].sort();
      return `${n} ${pct(v.utilisation)}${moved > 0 ? ` (${moved} pod${moved === 1 ? "" : "s"} fit on ${to.join(", ")})` : " (empty)"}`;
    });
    remove.push({
      group: gname,
      nodes: going,
      reason: [`${going.length} node${going.length === 1 ? "" : "s"} under ${pct(g.threshold)} for ${formatDuration(g.unneededMs)}: -${going.length} on ${gname}: ${parts.join("; ")}${going.length > 1 ? " (consolidated in one plan)" : ""}`, ...keptNotes(verdicts, nodes.map((n) => n.name))].join("; "),
    });
  }
  return { remove, nodes: verdicts, unneededSince };
}
