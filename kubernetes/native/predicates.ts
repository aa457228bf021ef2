/**
 * Whether a pod may go on a node, as the scheduler's filters judge it for what native mode models: the node's
 * labels against the pod's nodeSelector and required node affinity, its NoSchedule / NoExecute taints against the
 * pod's tolerations, cordons, and room for the pod's CPU, memory and pod slot. Pure.
 */
import type { NodeTaint } from "../../config/kubernetes.js";
import type { AntiAffinityTerm, NodeSelectorRequirement, Resources, SimPod, Toleration } from "./cluster-model.js";
import { selectorMatches } from "./label-selector.js";

/**
 * Why a pod does not fit a node: a resource it lacks, or a constraint it breaks. `inter-pod`: a constraint between
 * pods the simulation does not judge (`SimPod.unmodelled`), so it never promises such a pod a node.
 */
export type FitFailure = "cpu" | "memory" | "pods" | "node-selector" | "node-affinity" | "taint" | "unschedulable" | "pod-anti-affinity" | "inter-pod";

/** What a node looks like to the predicates: its name, labels, taints, and whether it is cordoned. */
export interface NodeShape {
  name: string;
  labels: Record<string, string>;
  taints: readonly NodeTaint[];
  unschedulable?: boolean;
}

/** Whether one toleration tolerates one taint (the scheduler's ToleratesTaint). */
export function tolerates(t: Toleration, taint: NodeTaint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.operator === "Exists") return !t.key || t.key === taint.key;
  // Equal (the default): key and value both match; an absent value is "".
  return t.key === taint.key && (t.value ?? "") === (taint.value ?? "");
}

/** The first NoSchedule / NoExecute taint no toleration tolerates, if any (PreferNoSchedule only prefers). */
export function untoleratedTaint(tolerations: readonly Toleration[], taints: readonly NodeTaint[]): NodeTaint | undefined {
  return taints.find((taint) => taint.effect !== "PreferNoSchedule" && !tolerations.some((t) => tolerates(t, taint)));
}

/** Whether a node matches one requirement (Gt / Lt compare integers, as upstream does). */
export function matchesRequirement(r: NodeSelectorRequirement, node: NodeShape): boolean {
  const has = r.field ? r.key === "metadata.name" : r.key in node.labels;
  const value = r.field ? (r.key === "metadata.name" ? node.name : undefined) : node.labels[r.key];
  const values = r.values ?? [];
  switch (r.operator) {
    case "In":
      return has && values.includes(value!);
    case "NotIn":
      return !has || !values.includes(value!);
    case "Exists":
      return has;
    case "DoesNotExist":
      return !has;
    case "Gt":
    case "Lt": {
      if (!has || values.length !== 1 || !/^-?\d+$/.test(value!) || !/^-?\d+$/.test(values[0]!)) return false;
      const a = Number(value);
      const b = Number(values[0]);
      return r.operator === "Gt" ? a > b : a < b;
    }
    default:
      return false;
  }
}

/** Whether a node matches the pod's required node affinity (any term; a term with no requirement matches nothing). */
export function matchesAffinity(terms: readonly NodeSelectorRequirement[][], node: NodeShape): boolean {
  if (terms.length === 0) return true;
  return terms.some((term) => term.length > 0 && term.every((r) => matchesRequirement(r, node)));
}

/**
 * Whether the pod may land on the node at all, resources aside (the same for every node of a template, so it is
 * computed once per pod and group). Null when it may; else which constraint stops it.
 */
export function staticFit(pod: Pick<SimPod, "nodeSelector" | "affinityTerms" | "tolerations">, node: NodeShape): FitFailure | null {
  if (node.unschedulable) return "unschedulable";
  for (const [k, v] of Object.entries(pod.nodeSelector)) if (node.labels[k] !== v) return "node-selector";
  if (!matchesAffinity(pod.affinityTerms, node)) return "node-affinity";
  if (untoleratedTaint(pod.tolerations, node.taints)) return "taint";
  return null;
}

/** Whether `need` fits in `free`; null when it does, else the first resource short. */
export function resourceFit(need: Resources, free: Resources): FitFailure | null {
  if (need.cpuMillis > free.cpuMillis) return "cpu";
  if (need.memoryBytes > free.memoryBytes) return "memory";
  if (need.pods > free.pods) return "pods";
  return null;
}

/** Whether the pod fits the node with `free` resources left: constraints first, then room. */
export function fits(pod: SimPod, node: NodeShape, free: Resources): FitFailure | null {
  return staticFit(pod, node) ?? resourceFit(pod.requests, free);
}

const selects = (owner: SimPod, t: AntiAffinityTerm, other: SimPod): boolean =>
  (t.namespaces ?? [owner.namespace]).includes(other.namespace) && selectorMatches(t.selector, other.labels ?? {});

/** Whether the pod's required anti-affinity selects pods like itself: then no two of them share a node. */
export function repelsItself(pod: SimPod): boolean {
  return (pod.antiAffinity ?? []).some((t) => selects(pod, t, pod));
}

/**
 * Whether `pod` may join `others` on one node as required anti-affinity over the hostname judges it, both ways (the
 * scheduler also refuses a pod that an existing pod's anti-affinity selects). Null when it may.
 */
export function antiAffinityFit(pod: SimPod, others: readonly SimPod[]): FitFailure | null {
  for (const q of others) {
    if (q.uid === pod.uid) continue;
    if ((pod.antiAffinity ?? []).some((t) => selects(pod, t, q)) || (q.antiAffinity ?? []).some((t) => selects(q, t, pod))) return "pod-anti-affinity";
  }
  return null;
}
