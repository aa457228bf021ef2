/**
 * Bin-packing of pending pods onto new nodes of one group: first-fit decreasing, the biggest pods first (by their
 * larger share of a node's CPU or memory), each on the first node with room, a new node opened when none has, up
 * to a limit. Nodes already on their way (created, not yet Ready) are filled first and cost nothing. Pure and
 * deterministic: ties are broken by the pods' shape, then namespace and name.
 *
 * Pods with the same requests and constraints form a **class** and are packed together: a pod that did not fit nodes
 * 0…k-1 tells the next identical pod the same, so a class fills node k with as many as fit at once, then k+1. That
 * is exactly what placing them one by one would do, in O(classes × nodes) instead of O(pods × nodes): a burst of
 * replicas is a handful of classes however many pods it has.
 */
import { podKey, type Resources, type SimPod } from "./cluster-model.js";
import type { GroupTemplate } from "./group-template.js";
import { repelsItself, resourceFit, staticFit, type FitFailure } from "./predicates.js";

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
  /** Every node used, upcoming ones first (built when read). */
  readonly nodes: PackedNode[];
  /** Pods placed on new nodes (built when read). */
  readonly placed: SimPod[];
  /** How many pods are placed on new nodes. */
  placedCount: number;
  /** Pods placed on upcoming nodes (no new node for them; built when read). */
  readonly onUpcoming: SimPod[];
  /** Pods that would fit a new node but are past the limit (built when read). */
  readonly overLimit: SimPod[];
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

/** Pods that need the same (requests and constraints), sorted by namespace and name. */
export interface PodClass {
  key: string;
  /** What every pod of the class asks (the first pod stands for all). */
  shape: SimPod;
  pods: SimPod[];
}

const shapeKeys = new WeakMap<SimPod, string>();
/** The class key of a pod: its requests and constraints. */
export function shapeKey(p: SimPod): string {
  let k = shapeKeys.get(p);
  if (k === undefined) {
    k = `${p.requests.cpuMillis}/${p.requests.memoryBytes}/${p.requests.pods}/${JSON.stringify(p.nodeSelector)}/${JSON.stringify(p.affinityTerms)}/${JSON.stringify(p.tolerations)}`;
    // One per node (self anti-affinity, a spread over nodes) or not judged at all: such pods pack differently.
    if (p.unmodelled || p.spreadByNode || p.antiAffinity) k += `/${p.unmodelled ? "inter-pod" : p.spreadByNode || repelsItself(p) ? "one-per-node" : ""}`;
    shapeKeys.set(p, k);
  }
  return k;
}

/** Groups pods into classes (each class's pods by namespace and name; classes by key). */
export function classify(pods: readonly SimPod[]): PodClass[] {
  const byKey = new Map<string, SimPod[]>();
  for (const p of pods) {
    const k = shapeKey(p);
    const list = byKey.get(k);
    if (list) list.push(p);
    else byKey.set(k, [p]);
  }
  return [...byKey]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([key, list]) => ({ key, shape: list[0]!, pods: list.sort((a, b) => podKey(a).localeCompare(podKey(b))) }));
}

/** The share of a node's free room a pod takes: the larger of CPU and memory (0 for a node with no room). */
function size(p: SimPod, free: Resources): number {
  const c = free.cpuMillis > 0 ? p.requests.cpuMillis / free.cpuMillis : 0;
  const m = free.memoryBytes > 0 ? p.requests.memoryBytes / free.memoryBytes : 0;
  return Math.max(c, m);
}

/** How many pods needing `r` fit in `free` less `used` (Infinity when they need nothing). */
function howMany(r: Resources, free: Resources, used: Resources): number {
  const c = r.cpuMillis <= 0 ? Infinity : Math.floor((free.cpuMillis - used.cpuMillis) / r.cpuMillis);
  const m = r.memoryBytes <= 0 ? Infinity : Math.floor((free.memoryBytes - used.memoryBytes) / r.memoryBytes);
  const p = r.pods <= 0 ? Infinity : Math.floor((free.pods - used.pods) / r.pods);
  return c < m ? (c < p ? c : p) : m < p ? m : p;
}

/** Packs `pods` onto new nodes of `template` (first-fit decreasing), within `limit` new nodes. */
export function packPods(pods: readonly SimPod[], template: GroupTemplate, o: PackOptions): PackResult {
  return packClasses(classify(pods), template, o);
}

/**
 * Packs classes of pods (see `classify`) onto new nodes of `template`. `fitCache`, when given, remembers per class
 * key whether the class may go on this template at all (the same for every packing onto it).
 */
export function packClasses(classes: readonly PodClass[], template: GroupTemplate, o: PackOptions, fitCache?: Map<string, FitFailure | null>): PackResult {
  const free = template.free;
  const misfits: PackResult["misfits"] = [];
  const candidates: { c: PodClass; size: number }[] = [];
  for (const c of classes) {
    if (c.pods.length === 0) continue;
    let why = fitCache?.get(c.key);
    if (why === undefined) {
      why = staticFit(c.shape, template) ?? (c.shape.unmodelled ? "inter-pod" : null) ?? resourceFit(c.shape.requests, free);
      fitCache?.set(c.key, why);
    }
    if (why) for (const pod of c.pods) misfits.push({ pod, why });
    else candidates.push({ c, size: size(c.shape, free) });
  }
  candidates.sort((a, b) => b.size - a.size || (a.c.key < b.c.key ? -1 : a.c.key > b.c.key ? 1 : 0));

  // Nodes hold runs of a class's pods (class, from, to), not the pods: most packings are only compared, never read,
  // so the pod lists are built when asked for.
  type Run = { c: PodClass; from: number; to: number };
  const bins: { upcoming: boolean; runs: Run[]; used: Resources }[] = Array.from({ length: o.upcoming ?? 0 }, () => ({ upcoming: true, runs: [], used: { cpuMillis: 0, memoryBytes: 0, pods: 0 } }));
  const over: Run[] = [];
  let newNodes = 0;
  let placedCount = 0;
  for (const { c } of candidates) {
    const r = c.shape.requests;
    // Pods that must not share a node with each other: one of the class per node. (Anti-affinity between different
    // classes on new nodes is not judged: they may share one in the packing, and the scheduler will say.)
    const perNode = c.shape.spreadByNode || repelsItself(c.shape) ? 1 : Infinity;
    let next = 0;
    // Nodes before `i` had no room for this class: its later pods start at `i` (first fit, one node at a time).
    for (let i = 0; next < c.pods.length; i++) {
      if (i === bins.length) {
        if (newNodes >= o.limit) break;
        newNodes++;
        bins.push({ upcoming: false, runs: [], used: { cpuMillis: 0, memoryBytes: 0, pods: 0 } });
      }
      const n = bins[i]!;
      const k = Math.min(c.pods.length - next, howMany(r, free, n.used), perNode);
      if (k <= 0) continue;
      n.runs.push({ c, from: next, to: next + k });
      next += k;
      if (!n.upcoming) placedCount += k;
      n.used.cpuMillis += k * r.cpuMillis;
      n.used.memoryBytes += k * r.memoryBytes;
      n.used.pods += k * r.pods;
    }
    if (next < c.pods.length) over.push({ c, from: next, to: c.pods.length });
  }
  const expandRuns = (runs: readonly Run[]): SimPod[] => runs.flatMap((x) => x.c.pods.slice(x.from, x.to));
  const lazy = <T>(make: () => T): (() => T) => {
    let v: T | undefined;
    return () => (v ??= make());
  };
  const nodes = lazy((): PackedNode[] => bins.map((b) => ({ upcoming: b.upcoming, used: b.used, pods: expandRuns(b.runs) })));
  const placed = lazy(() => expandRuns(bins.filter((b) => !b.upcoming).flatMap((b) => b.runs)));
  const onUpcoming = lazy(() => expandRuns(bins.filter((b) => b.upcoming).flatMap((b) => b.runs)));
  const overLimit = lazy(() => expandRuns(over));

  const fresh = bins.filter((n) => !n.upcoming);
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
  return {
    group: template.group,
    newNodes,
    get nodes() {
      return nodes();
    },
    placedCount,
    get placed() {
      return placed();
    },
    get onUpcoming() {
      return onUpcoming();
    },
    get overLimit() {
      return overLimit();
    },
    misfits,
    waste,
  };
}
