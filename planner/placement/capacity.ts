import type { HostConfig, VmTemplate } from "../../config/types.js";
import type { HostObservation } from "../../providers/provider.js";
import type { HostRoom } from "./types.js";

const GiB = 1024 ** 3;

/** Resources this plan already gives to new VMs on one host. */
export interface HostUse {
  memoryMiB: number;
  vcpus: number;
  diskBytes: number;
}

/** Bytes a VM's disk may grow to: the full virtual size, since overlays grow without asking. */
export function diskBytes(template: VmTemplate): number {
  return template.disk.sizeGiB * GiB;
}

const gib = (bytes: number): string => `${Math.round((Math.max(0, bytes) / GiB) * 10) / 10} GiB`;

/**
 * Whether one more VM of `template` fits on a host, given what the plan already puts there.
 * VMs the same plan deletes free nothing: apply runs steps in parallel, so a create may come first.
 */
export function assessHost(args: {
  name: string;
  order: number;
  host: HostConfig | undefined;
  observation: HostObservation | undefined;
  template: VmTemplate;
  planned: HostUse;
}): { room: HostRoom } | { reason: string } {
  const { name, order, host, observation: obs, template, planned } = args;
  if (!host) return { reason: "not in config" };
  if (!obs) return { reason: "not observed" };
  if (obs.status !== "ok") return { reason: "unreachable" };
  const cap = obs.capacity;
  if (!cap.pool) return { reason: `pool "${host.pool}" not found` };
  if (!cap.volumes.includes(template.disk.baseImage))
    return { reason: `base image "${template.disk.baseImage}" not in pool "${cap.pool.name}"` };
  const room: HostRoom = {
    name,
    order,
    freeMemoryMiB: cap.freeMemoryMiB - host.reservedMemoryMiB - planned.memoryMiB,
    freeVcpus: cap.cpus * host.cpuOvercommit - cap.allocatedVcpus - planned.vcpus,
    freeDiskBytes: cap.pool.availableBytes - planned.diskBytes,
  };
  if (room.freeMemoryMiB < template.memoryMiB)
    return { reason: `${Math.max(0, room.freeMemoryMiB)} MiB free memory < ${template.memoryMiB} MiB needed` };
  if (room.freeVcpus < template.vcpus)
    return { reason: `${Math.max(0, room.freeVcpus)} free vCPUs < ${template.vcpus} needed` };
  if (room.freeDiskBytes < diskBytes(template))
    return { reason: `${gib(room.freeDiskBytes)} free in pool "${cap.pool.name}" < ${template.disk.sizeGiB} GiB needed` };
  return { room };
}
