/**
 * What a new node of a group will look like, for cluster-autoscaler's scale-up simulations (and scale from zero):
 * the labels its kubelet registers with, its taints, and its capacity and allocatable from the group's template.
 * Pure.
 */
import type { GroupConfig } from "../config/types.js";
import type { NodeObject } from "./node-proto.js";

/** Label every node of a premiscale node group carries (the join sets it; cluster-autoscaler's template has it). */
export const GROUP_LABEL = "premiscale.io/group";

/** The labels every node of the group registers with: the group's own, and `premiscale.io/group`. */
export function groupNodeLabels(group: GroupConfig): Record<string, string> {
  return { ...(group.kubernetes?.labels ?? {}), [GROUP_LABEL]: group.name };
}

/** Millicores as a canonical quantity: whole cores without a suffix. */
function cpuQuantity(millis: number): string {
  return millis % 1000 === 0 ? String(millis / 1000) : `${millis}m`;
}

/**
 * The template Node of a Kubernetes group: Ready (as cluster-autoscaler's own templates are), the kubelet's
 * well-known labels (os, arch: these hosts are x86_64 KVM; hostname), the group's labels and taints, capacity from the
 * template (vCPUs, memory, maxPods, and ephemeral-storage when declared) and allocatable after `reserved`.
 */
export function templateNode(group: GroupConfig, now: Date): NodeObject {
  const k = group.kubernetes;
  if (!k) throw new Error(`group ${group.name} is not a Kubernetes node group`);
  const name = `template-node-for-${group.name}`;
  const t = group.template;
  const capacity: Record<string, string> = { cpu: cpuQuantity(t.vcpus * 1000), memory: `${t.memoryMiB}Mi`, pods: String(k.maxPods) };
  const allocatable: Record<string, string> = {
    cpu: cpuQuantity(Math.max(0, t.vcpus * 1000 - k.reservedCpuMillis)),
    memory: `${Math.max(0, t.memoryMiB - k.reservedMemoryMiB)}Mi`,
    pods: String(k.maxPods),
  };
  if (k.ephemeralStorageGiB !== undefined) capacity["ephemeral-storage"] = allocatable["ephemeral-storage"] = `${Math.floor(k.ephemeralStorageGiB * 1024)}Mi`;
  const since = new Date(now.getTime() - 60_000);
  const condition = (type: string, status: string, reason: string) => ({ type, status, lastHeartbeatTime: now, lastTransitionTime: since, reason });
  return {
    name,
    creationTimestamp: now,
    labels: { "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, ...groupNodeLabels(group) },
    taints: k.taints.map((x) => ({ key: x.key, ...(x.value !== undefined ? { value: x.value } : {}), effect: x.effect })),
    capacity,
    allocatable,
    phase: "Running",
    conditions: [
      condition("Ready", "True", "KubeletReady"),
      condition("NetworkUnavailable", "False", "RouteCreated"),
      condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
      condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
      condition("PIDPressure", "False", "KubeletHasSufficientPID"),
    ],
    nodeInfo: { operatingSystem: "linux", architecture: "amd64" },
  };
}
