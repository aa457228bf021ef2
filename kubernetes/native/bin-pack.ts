/**
 * Bin-packing of pending pods onto new nodes of one group: first-fit decreasing, the biggest pods first (by their
 * larger share of a node's CPU or memory), each on the first node with room, a new node opened when none has, up
 * to a limit. Nodes already on their way (created, not yet Ready) are filled first and cost nothing. Pure and
 * deterministic: ties are broken by the pod's namespace and name.
 *
 * Pods with the same requests and constraints are packed as a run: a pod that did not fit nodes 0…k-1 tells the
 * next identical pod the same, so it starts at k. That keeps a burst of identical replicas linear in pods + nodes.
 */
import { podKey, type Resources, type SimPod } from "./cluster-model.js";
import type { GroupTemplate } from "./group-template.js";
import { resourceFit, staticFit, type FitFailure } from "./predicates.js";

/** One node of a packing. */
export interface PackedNode {
  /** A node already on its way (true) or one to create (false). */
  upcoming: boolean;
  pods: SimPod[];
  /** Requests of `pods` (the DaemonSet pods are already out of the template's `free`). */
  used: Resources;
}

/** What packing some pods onto a group's new nodes gave. */
export interface PackResult {
  group: string;
  /** New nodes needed (upcoming ones not counted). */
  newNodes: number;
  /** Every node used, upcoming ones first. */
  nodes: PackedNode[];
  /** Pods placed on new nodes. */
  placed: SimPod[];
  /** Pods placed on upcoming nodes (no new node for them). */
  onUpcoming: SimPod[];
  /** Pods that would fit a new node but are past the limit. */
  overLimit: SimPod[];
  /** Pods no node of this group can hold, with the reason. */
  misfits: { pod: SimPod; why: FitFailure }[];
  /**
   * Unused share of the new nodes' allocatable (DaemonSet pods count as used): CPU and memory, 0…1 each.
   * cluster-autoscaler's least-waste expander scores cpu + memory.
   */
  waste: { cpu: number; memory: number };
}

/** Options of a packing. */
export interface PackOptions {
  /** New nodes the group may still add. */
  limit: number;
  /** Nodes on their way (empty templates that cost nothing). @default 0 */
  upcoming?: number;
}

/** The share of a node's free room a pod takes: the larger of CPU and memory (0 for a node with no room). */
function size(p: SimPod, free: Resources): number {
  const c = free.cpuMillis > 0 ? p.requests.cpuMillis / free.cpuMillis : 0;
  const m = free.memoryBytes > 0 ? p.requests.memoryBytes / free.memoryBytes : 0;
  return Math.max(c, m);
}

/** Pods that need the same: their requests and constraints. */
function shapeKey(p: SimPod): string {
  return `${p.requests.cpuMillis}/${p.requests.memoryBytes}/${JSON.stringify(p.nodeSelector)}/${JSON.stringify(p.affinityTerms)}/${JSON.stringify(p.tolerations)}`;
}

/** Packs `pods` onto new nodes of `template` (first-fit decreasing), within `limit` new nodes. */
export function packPods(pods: readonly SimPod[], template: GroupTemplate, o: PackOptions): PackResult {
  const free = template.free;
  const misfits: PackResult["misfits"] = [];
  const candidates: { pod: SimPod; size: number; key: string }[] = [];
  const staticCache = new Map<string, FitFailure | null>();
  for (const pod of pods) {
    const key = shapeKey(pod);
    let why = staticCache.get(key);
    if (why === undefined) {
      why = staticFit(pod, template) ?? resourceFit(pod.requests, free);
      staticCache.set(key, why);
    }
    if (why) misfits.push({ pod, why });
    else candidates.push({ pod, size: size(pod, free), key });
  }
  candidates.sort((a, b) => b.size - a.size || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) || podKey(a.pod).localeCompare(podKey(b.pod)));

  const nodes: PackedNode[] = Array.from({ length: o.upcoming ?? 0 }, () => ({ upcoming: true, pods: [], used: { cpuMillis: 0, memoryBytes: 0, pods: 0 } }));
  const placed: SimPod[] = [];
  const onUpcoming: SimPod[] = [];
  const overLimit: SimPod[] = [];
  let newNodes = 0;
  let runKey = "";
  let runStart = 0;
  for (const { pod, key } of candidates) {
    const r = pod.requests;
    if (key !== runKey) {
      runKey = key;
      runStart = 0;
    }
    let i = runStart;
    for (; i < nodes.length; i++) {
      const u = nodes[i]!.used;
      if (u.cpuMillis + r.cpuMillis <= free.cpuMillis && u.memoryBytes + r.memoryBytes <= free.memoryBytes && u.pods + r.pods <= free.pods) break;
    }
    if (i === nodes.length) {
      if (newNodes >= o.limit) {
        overLimit.push(pod);
        runStart = i;
        continue;
      }
      newNodes++;
      nodes.push({ upcoming: false, pods: [], used: { cpuMillis: 0, memoryBytes: 0, pods: 0 } });
    }
    runStart = i;
    const n = nodes[i]!;
    n.pods.push(pod);
    n.used = { cpuMillis: n.used.cpuMillis + r.cpuMillis, memoryBytes: n.used.memoryBytes + r.memoryBytes, pods: n.used.pods + r.pods };
    (n.upcoming ? onUpcoming : placed).push(pod);
  }

  const fresh = nodes.filter((n) => !n.upcoming);
  const alloc = template.allocatable;
  const dsUsed = { cpu: alloc.cpuMillis - free.cpuMillis, memory: alloc.memoryBytes - free.memoryBytes };
  const share = (used: number, total: number) => (total > 0 ? Math.max(0, 1 - used / total) : 0);
  const waste =
    fresh.length === 0
      ? { cpu: 0, memory: 0 }
      : {
          cpu: share(fresh.reduce((s, n) => s + n.used.cpuMillis + dsUsed.cpu, 0), fresh.length * alloc.cpuMillis),
          memory: share(fresh.reduce((s, n) => s + n.used.memoryBytes + dsUsed.memory, 0), fresh.length * alloc.memoryBytes),
        };
  return { group: template.group, newNodes, nodes, placed, onUpcoming, overLimit, misfits, waste };
}
