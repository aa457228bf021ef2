/**
 * The room left on existing nodes, and placing pods on it (first fit): the simulation scale-up uses for "would the
 * scheduler place it now" and scale-down for "do this node's pods fit elsewhere". Pure.
 */
import type { Resources, SimNode, SimPod } from "./cluster-model.js";
import { antiAffinityFit, resourceFit, staticFit } from "./predicates.js";

/** The pods bound to each node, by node name (pods without one are left out). */
export function podsByNode(pods: readonly SimPod[]): Map<string, SimPod[]> {
  const on = new Map<string, SimPod[]>();
  for (const p of pods) if (p.nodeName) (on.get(p.nodeName) ?? on.set(p.nodeName, []).get(p.nodeName)!).push(p);
  return on;
}

/** Free room per node: allocatable less the requests of the pods bound to it. */
export function freeOf(nodes: readonly SimNode[], bound: readonly SimPod[]): Map<string, Resources> {
  const free = new Map<string, Resources>(nodes.map((n) => [n.name, { ...n.allocatable }]));
  for (const p of bound) {
    const f = p.nodeName ? free.get(p.nodeName) : undefined;
    if (!f) continue;
    f.cpuMillis -= p.requests.cpuMillis;
    f.memoryBytes -= p.requests.memoryBytes;
    f.pods -= p.requests.pods;
  }
  return free;
}

/**
 * Places each of `pods` on the first of `nodes` it fits (constraints and the room in `free`, which is reduced:
 * WARNING: mutates `free`). `occupants`, the pods on each node now, are checked against required anti-affinity (both
 * ways, and against the pods placed by this call). A pod with a constraint the simulation does not model
 * (`unmodelled`) or a spread over nodes is placed nowhere: the scheduler's own verdict stands for it. Returns the
 * node each placed pod went to, by pod uid.
 */
export function bindPods(pods: readonly SimPod[], nodes: readonly SimNode[], free: Map<string, Resources>, occupants: ReadonlyMap<string, readonly SimPod[]> = new Map()): Map<string, string> {
  const placed = new Map<string, string>();
  const added = new Map<string, SimPod[]>();
  // Only where some pod has anti-affinity can it refuse a pod that has none.
  const repelling = new Set<string>();
  for (const [n, ps] of occupants) if (ps.some((q) => q.antiAffinity)) repelling.add(n);
  for (const p of pods) {
    if (p.unmodelled || p.spreadByNode) continue;
    for (const n of nodes) {
      const f = free.get(n.name);
      if (!f || staticFit(p, n) !== null || resourceFit(p.requests, f) !== null) continue;
      if ((p.antiAffinity || repelling.has(n.name)) && antiAffinityFit(p, [...(occupants.get(n.name) ?? []), ...(added.get(n.name) ?? [])]) !== null) continue;
      f.cpuMillis -= p.requests.cpuMillis;
      f.memoryBytes -= p.requests.memoryBytes;
      f.pods -= p.requests.pods;
      placed.set(p.uid, n.name);
      (added.get(n.name) ?? added.set(n.name, []).get(n.name)!).push(p);
      if (p.antiAffinity) repelling.add(n.name);
      break;
    }
  }
  return placed;
}
