/**
 * The cluster as native mode's simulations see it: plain data read from the API's Pods, Nodes and DaemonSets
 * (`podFromApi`, `nodeFromApi`, `daemonSetPod`), with what scheduling needs and nothing else. Pure: the reader
 * (cluster-reader.ts) fetches the objects, these functions only convert them.
 *
 * What is modelled: resource requests (CPU, memory, pods), nodeSelector, required node affinity, tolerations against
 * NoSchedule / NoExecute taints, cordoned nodes, required pod anti-affinity over `kubernetes.io/hostname` (both
 * ways, on existing nodes; one pod of a class per new node when it repels itself), and topology spread over
 * `kubernetes.io/hostname` (one per new node). Other inter-pod constraints are *unmodelled* (`SimPod.unmodelled`):
 * such a pod gets no new node and keeps its node from consolidation, rather than be judged wrongly. Not modelled at
 * all: host ports, volumes and their zones, extended resources (GPUs).
 */
import type { NodeTaint } from "../../config/kubernetes.js";
import { selectorFromApi, type LabelSelector } from "./label-selector.js";
import { count, cpuMillis, memoryBytes } from "./quantity.js";

/** The node label whose values are single nodes: the topology key of "not on the same node". */
export const HOSTNAME_KEY = "kubernetes.io/hostname";

/** A required pod anti-affinity term over `kubernetes.io/hostname`: no pod it selects may share the node. */
export interface AntiAffinityTerm {
  selector: LabelSelector | null;
  /** Namespaces of the pods it selects. Absent: the pod's own. */
  namespaces?: string[];
}

/** CPU, memory and a pod slot: what a pod takes and a node offers. */
export interface Resources {
  cpuMillis: number;
  memoryBytes: number;
  pods: number;
}

/** A toleration, as in a pod's `spec.tolerations`. */
export interface Toleration {
  key?: string;
  operator?: "Exists" | "Equal";
  value?: string;
  effect?: string;
}

/** One requirement of a node selector term (`matchExpressions`, or `matchFields` on `metadata.name`). */
export interface NodeSelectorRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt";
  values?: string[];
  /** A `matchFields` requirement: `key` is a field of the Node (only `metadata.name` exists), not a label. */
  field?: boolean;
}

/** A pod as the simulations see it. */
export interface SimPod {
  uid: string;
  name: string;
  namespace: string;
  /** Effective requests (containers, init containers, sidecars, overhead); `pods` is always 1. */
  requests: Resources;
  nodeSelector: Record<string, string>;
  /** Required node affinity: the node must match one term (each term: all its requirements). Empty: no affinity. */
  affinityTerms: NodeSelectorRequirement[][];
  tolerations: Toleration[];
  /** The node it is bound to, if any. */
  nodeName?: string;
  /** Made by a DaemonSet: it follows its node, never moves. */
  daemonSet: boolean;
  /** A static pod's mirror: it belongs to its node, never moves. */
  mirror: boolean;
  /** `cluster-autoscaler.kubernetes.io/safe-to-evict`: true, false, or not set. */
  safeToEvict?: boolean;
  /** The scheduler's `PodScheduled=False` with reason `Unschedulable`: its message, and when it was set. */
  unschedulable?: { message: string; since?: string };
  /** Which owner it has, `Kind/name` (for reasons and drain decisions). */
  owner?: string;
  /** No owner reference is its controller: evicting it would lose it (the drain refuses, unless safe-to-evict). */
  uncontrolled?: boolean;
  /** Its labels (PodDisruptionBudgets select pods by them). Absent: none. */
  labels?: Record<string, string>;
  /** `status.phase`; a bound pod still `Pending` is evicted without asking its PDB (the Eviction API's rule). */
  phase?: string;
  /** Its `Ready` condition is True (a PDB counts only ready pods as healthy). Absent: not known, taken as ready. */
  ready?: boolean;
  /** Required pod anti-affinity over `kubernetes.io/hostname`. Absent: none. */
  antiAffinity?: AntiAffinityTerm[];
  /** A topology spread over `kubernetes.io/hostname` that must be met (`whenUnsatisfiable: DoNotSchedule`). */
  spreadByNode?: boolean;
  /**
   * An inter-pod constraint the simulations do not judge (required pod affinity; anti-affinity or a DoNotSchedule
   * spread over another topology key; a namespaceSelector or matchLabelKeys): what it is, for reasons.
   */
  unmodelled?: string;
}

/** A node as the simulations see it. */
export interface SimNode {
  name: string;
  labels: Record<string, string>;
  taints: NodeTaint[];
  allocatable: Resources;
  ready: boolean;
  /** Cordoned (`spec.unschedulable`): no new pods. */
  unschedulable: boolean;
  /** `cluster-autoscaler.kubernetes.io/scale-down-disabled: "true"`. */
  scaleDownDisabled: boolean;
  providerID?: string;
  createdAt?: string;
  /**
   * Marks of a drain (drain.ts) that was cut short (an API outage, a crash): the `ToBeDeletedByClusterAutoscaler`
   * taint, and whether the drain made the cordon (`premiscale.io/cordoned-for-drain`). Absent: neither.
   */
  drain?: { tainted: boolean; cordoned: boolean };
}

/** The annotation that keeps a pod's node (false) or lets it go despite other blockers (true). */
export const SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict";
/** The node annotation that keeps a node from scale-down. */
export const SCALE_DOWN_DISABLED = "cluster-autoscaler.kubernetes.io/scale-down-disabled";
/** The annotation of a static pod's mirror. */
export const MIRROR_ANNOTATION = "kubernetes.io/config.mirror";

// The API's objects, as far as they are read here.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type ApiObject = any;

const zero = (): Resources => ({ cpuMillis: 0, memoryBytes: 0, pods: 0 });
const plus = (a: Resources, b: Resources): Resources => ({ cpuMillis: a.cpuMillis + b.cpuMillis, memoryBytes: a.memoryBytes + b.memoryBytes, pods: a.pods + b.pods });
const max = (a: Resources, b: Resources): Resources => ({ cpuMillis: Math.max(a.cpuMillis, b.cpuMillis), memoryBytes: Math.max(a.memoryBytes, b.memoryBytes), pods: Math.max(a.pods, b.pods) });
const requestsOf = (c: ApiObject): Resources => ({ cpuMillis: cpuMillis(c?.resources?.requests?.cpu), memoryBytes: memoryBytes(c?.resources?.requests?.memory), pods: 0 });

/**
 * A pod spec's effective requests, as the scheduler computes them: the larger of the containers' sum (plus the
 * sidecars, init containers with `restartPolicy: Always`, which run beside them) and each init container's own
 * request plus the sidecars started before it; then the RuntimeClass `overhead`; one pod slot.
 */
export function podRequests(spec: ApiObject): Resources {
  let sidecars = zero();
  let init = zero();
  for (const c of spec?.initContainers ?? []) {
    const r = requestsOf(c);
    if (c.restartPolicy === "Always") {
      sidecars = plus(sidecars, r);
      init = max(init, sidecars);
    } else init = max(init, plus(r, sidecars));
  }
  const containers = (spec?.containers ?? []).map(requestsOf).reduce(plus, zero());
  const overhead: Resources = { cpuMillis: cpuMillis(spec?.overhead?.cpu), memoryBytes: memoryBytes(spec?.overhead?.memory), pods: 0 };
  return { ...plus(max(init, plus(containers, sidecars)), overhead), pods: 1 };
}

function requirements(list: ApiObject[] | undefined, field: boolean): NodeSelectorRequirement[] {
  return (list ?? []).map((r: ApiObject) => ({ key: String(r.key), operator: r.operator, ...(Array.isArray(r.values) ? { values: r.values.map(String) } : {}), ...(field ? { field: true } : {}) }));
}

function schedulingOf(spec: ApiObject): Pick<SimPod, "nodeSelector" | "affinityTerms" | "tolerations"> {
  const terms: ApiObject[] = spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  return {
    nodeSelector: { ...(spec?.nodeSelector ?? {}) },
    affinityTerms: terms.map((t) => [...requirements(t.matchExpressions, false), ...requirements(t.matchFields, true)]),
    tolerations: (spec?.tolerations ?? []).map((t: ApiObject) => ({ ...(t.key ? { key: t.key } : {}), ...(t.operator ? { operator: t.operator } : {}), ...(t.value !== undefined ? { value: t.value } : {}), ...(t.effect ? { effect: t.effect } : {}) })),
  };
}

/** A pod spec's inter-pod constraints (pod affinity, anti-affinity, topology spread), as far as they are modelled. */
export function interPodOf(spec: ApiObject): Pick<SimPod, "antiAffinity" | "spreadByNode" | "unmodelled"> {
  const unmodelled: string[] = [];
  if ((spec?.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []).length > 0) unmodelled.push("required pod affinity");
  const anti: AntiAffinityTerm[] = [];
  for (const t of spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []) {
    if (t.topologyKey !== HOSTNAME_KEY) unmodelled.push(`required pod anti-affinity over ${t.topologyKey}`);
    else if (t.namespaceSelector || (t.matchLabelKeys ?? []).length > 0 || (t.mismatchLabelKeys ?? []).length > 0) unmodelled.push("required pod anti-affinity with a namespaceSelector or matchLabelKeys");
    else anti.push({ selector: selectorFromApi(t.labelSelector), ...(Array.isArray(t.namespaces) && t.namespaces.length > 0 ? { namespaces: t.namespaces.map(String) } : {}) });
  }
  let spreadByNode = false;
  for (const c of spec?.topologySpreadConstraints ?? []) {
    if ((c.whenUnsatisfiable ?? "DoNotSchedule") !== "DoNotSchedule") continue;
    if (c.topologyKey === HOSTNAME_KEY) spreadByNode = true;
    else unmodelled.push(`topology spread over ${c.topologyKey}`);
  }
  return {
    ...(anti.length > 0 ? { antiAffinity: anti } : {}),
    ...(spreadByNode ? { spreadByNode } : {}),
    ...(unmodelled.length > 0 ? { unmodelled: [...new Set(unmodelled)].join(", ") } : {}),
  };
}

/** A v1.Pod as a `SimPod`. */
export function podFromApi(p: ApiObject): SimPod {
  const meta = p.metadata ?? {};
  const annotations: Record<string, string> = meta.annotations ?? {};
  const owner = (meta.ownerReferences ?? []).find((o: ApiObject) => o.controller) ?? meta.ownerReferences?.[0];
  const cond = (p.status?.conditions ?? []).find((c: ApiObject) => c.type === "PodScheduled");
  const safe = annotations[SAFE_TO_EVICT];
  return {
    uid: meta.uid ?? `${meta.namespace}/${meta.name}`,
    name: meta.name,
    namespace: meta.namespace ?? "default",
    requests: podRequests(p.spec),
    ...schedulingOf(p.spec),
    ...interPodOf(p.spec),
    ...(p.spec?.nodeName ? { nodeName: p.spec.nodeName } : {}),
    daemonSet: owner?.kind === "DaemonSet",
    mirror: MIRROR_ANNOTATION in annotations,
    ...(safe === "true" ? { safeToEvict: true } : safe === "false" ? { safeToEvict: false } : {}),
    ...(cond?.status === "False" && cond.reason === "Unschedulable" ? { unschedulable: { message: String(cond.message ?? ""), ...(cond.lastTransitionTime ? { since: cond.lastTransitionTime } : {}) } } : {}),
    ...(owner ? { owner: `${owner.kind}/${owner.name}` } : {}),
    ...(!(meta.ownerReferences ?? []).some((o: ApiObject) => o.controller) ? { uncontrolled: true } : {}),
    ...(meta.labels ? { labels: { ...meta.labels } } : {}),
    ...(p.status?.phase ? { phase: String(p.status.phase) } : {}),
    ready: (p.status?.conditions ?? []).some((c: ApiObject) => c.type === "Ready" && c.status === "True"),
  };
}

/** Whether a pod still holds its node's resources (bound, neither Succeeded nor Failed). */
export function isActive(p: ApiObject): boolean {
  const phase = p.status?.phase;
  return phase !== "Succeeded" && phase !== "Failed" && !p.metadata?.deletionTimestamp;
}

/** A v1.Node as a `SimNode`. */
export function nodeFromApi(n: ApiObject): SimNode {
  const meta = n.metadata ?? {};
  const a = n.status?.allocatable ?? {};
  const ready = (n.status?.conditions ?? []).some((c: ApiObject) => c.type === "Ready" && c.status === "True");
  return {
    name: meta.name,
    labels: { ...(meta.labels ?? {}) },
    taints: (n.spec?.taints ?? []).map((t: ApiObject) => ({ key: t.key, ...(t.value !== undefined ? { value: t.value } : {}), effect: t.effect })),
    allocatable: { cpuMillis: cpuMillis(a.cpu), memoryBytes: memoryBytes(a.memory), pods: count(a.pods) },
    ready,
    unschedulable: n.spec?.unschedulable === true,
    scaleDownDisabled: meta.annotations?.[SCALE_DOWN_DISABLED] === "true",
    ...(n.spec?.providerID ? { providerID: n.spec.providerID } : {}),
    ...(meta.creationTimestamp ? { createdAt: meta.creationTimestamp } : {}),
    ...drainMarks(n),
  };
}

/** cluster-autoscaler's taint on a node being deleted (drain.ts sets it; its value is the unix time). */
export const TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler";
/** premiscale's mark on a node its drain cordoned (so only that cordon is undone). */
export const CORDONED_BY_DRAIN = "premiscale.io/cordoned-for-drain";

function drainMarks(n: ApiObject): Pick<SimNode, "drain"> {
  const tainted = (n.spec?.taints ?? []).some((t: ApiObject) => t.key === TO_BE_DELETED_TAINT);
  const cordoned = n.metadata?.annotations?.[CORDONED_BY_DRAIN] !== undefined;
  return tainted || cordoned ? { drain: { tainted, cordoned } } : {};
}

/**
 * The cluster as it will be once the marks of drains cut short are gone from the nodes of `groups`
 * (`premiscale://<group>/…` providerIDs): no `ToBeDeletedByClusterAutoscaler` taint, and no cordon the drain made (an
 * operator's stays). Scans are one at a time and drains run inside them, so any such mark a scan sees is left from
 * one that did not finish. The scan decides on this view: a node it removes again resumes its drain (the drain keeps
 * the taint it finds); the others, `marked` less the removed ones, must have their marks taken off (drain.ts
 * releaseNode) so they take pods again.
 */
export function withoutDrainMarks<T extends { nodes: SimNode[] }>(cluster: T, groups: readonly string[]): { cluster: T; marked: string[] } {
  const ours = (n: SimNode) => groups.some((g) => n.providerID?.startsWith(`premiscale://${g}/`));
  const marked: string[] = [];
  const nodes = cluster.nodes.map((n) => {
    if (!n.drain || !ours(n)) return n;
    marked.push(n.name);
    const { drain, ...rest } = n;
    return { ...rest, taints: n.taints.filter((t) => t.key !== TO_BE_DELETED_TAINT), unschedulable: drain.cordoned ? false : n.unschedulable };
  });
  return { cluster: { ...cluster, nodes }, marked };
}

/**
 * The cluster as it will be once the nodes `names` are gone: those nodes left out, their pods pending again (with a
 * message saying why), their DaemonSet and mirror pods gone with them. For the VMs a scan's plan removes whatever
 * it decides (an interrupted apply's half-made VMs): their pods need room elsewhere in the same decision.
 */
export function withoutNodes<T extends { nodes: SimNode[]; pods: SimPod[] }>(cluster: T, names: ReadonlySet<string>): T {
  if (!cluster.nodes.some((n) => names.has(n.name))) return cluster;
  const pods = cluster.pods.flatMap((p): SimPod[] => {
    if (!p.nodeName || !names.has(p.nodeName)) return [p];
    if (p.daemonSet || p.mirror) return [];
    const { nodeName, ...rest } = p;
    return [{ ...rest, unschedulable: { message: `its node ${nodeName} is removed: an interrupted apply left its VM half-made` } }];
  });
  return { ...cluster, nodes: cluster.nodes.filter((n) => !names.has(n.name)), pods };
}

/** The pod a DaemonSet would put on a matching node (its template), for the overhead of a new node. */
export function daemonSetPod(ds: ApiObject): SimPod {
  const meta = ds.metadata ?? {};
  return {
    uid: `daemonset:${meta.namespace}/${meta.name}`,
    name: meta.name,
    namespace: meta.namespace ?? "default",
    requests: podRequests(ds.spec?.template?.spec),
    ...schedulingOf(ds.spec?.template?.spec),
    daemonSet: true,
    mirror: false,
    owner: `DaemonSet/${meta.name}`,
  };
}

/** Total requests of some pods. */
export function sumRequests(pods: readonly SimPod[]): Resources {
  let r = zero();
  for (const p of pods) r = plus(r, p.requests);
  return r;
}

/** `namespace/name` of a pod, for reasons. */
export const podKey = (p: Pick<SimPod, "namespace" | "name">): string => `${p.namespace}/${p.name}`;
