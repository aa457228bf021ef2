/**
 * What a new node of a group offers pending pods: the template node of template-node.ts (the kubelet's labels, the
 * group's labels and taints, allocatable = the VM template's vCPUs and memory less `reserved`, `maxPods` slots),
 * less what the DaemonSets that would land on it take. Pure.
 */
import type { GroupConfig } from "../../config/types.js";
import { groupNodeLabels } from "../template-node.js";
import { podKey, sumRequests, type Resources, type SimPod } from "./cluster-model.js";
import { staticFit, type NodeShape } from "./predicates.js";

/** A group's new node as the simulations see it. */
export interface GroupTemplate extends NodeShape {
  group: string;
  /** Allocatable of a new node (template less `reserved`). */
  allocatable: Resources;
  /** The DaemonSet pods that would land on it. */
  daemonSets: SimPod[];
  /** What is left for pending pods: allocatable less the DaemonSet pods (never below 0). */
  free: Resources;
}

/** The labels a new node of the group registers with (as templateNode gives cluster-autoscaler). */
export function templateLabels(group: GroupConfig): Record<string, string> {
  const name = `template-node-for-${group.name}`;
  return { "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, ...groupNodeLabels(group) };
}

/** The template of a Kubernetes group, less the DaemonSet pods (of `daemonSets`) that would land on it. */
export function groupTemplate(group: GroupConfig, daemonSets: readonly SimPod[]): GroupTemplate {
  const k = group.kubernetes;
  if (!k) throw new Error(`group ${group.name} is not a Kubernetes node group`);
  const shape: NodeShape = { name: `template-node-for-${group.name}`, labels: templateLabels(group), taints: k.taints };
  const allocatable: Resources = {
    cpuMillis: Math.max(0, group.template.vcpus * 1000 - k.reservedCpuMillis),
    memoryBytes: Math.max(0, group.template.memoryMiB - k.reservedMemoryMiB) * 2 ** 20,
    pods: k.maxPods,
  };
  const landing = daemonSets.filter((d) => staticFit(d, shape) === null);
  const taken = sumRequests(landing);
  return {
    ...shape,
    group: group.name,
    allocatable,
    daemonSets: landing,
    free: { cpuMillis: Math.max(0, allocatable.cpuMillis - taken.cpuMillis), memoryBytes: Math.max(0, allocatable.memoryBytes - taken.memoryBytes), pods: Math.max(0, allocatable.pods - taken.pods) },
  };
}

/** "2 DaemonSet pods (kube-system/fluentd, …) take 200m, 256Mi" style summary, for reasons. */
export function daemonSetNames(t: GroupTemplate): string[] {
  return t.daemonSets.map(podKey);
}
