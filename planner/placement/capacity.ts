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
 * Whether one more VM of `template` fits on a host, given what the plan already puts there (`planned`) and what the
 * plan's deletes on that host give back (`freed`: the vCPUs and memory of running VMs it removes). A VM that fits
 * only thanks to `freed` gets `waits: true`: apply must finish those deletes before it starts the create, since it
 * otherwise runs steps in parallel.
 */
export function assessHost(args: {
  name: string;
  order: number;
  host: HostConfig | undefined;
  observation: HostObservation | undefined;
  template: VmTemplate;
  planned: HostUse;
  freed?: HostUse;
}): { room: HostRoom; waits?: true } | { reason: string } {
  const { name, order, host, observation: obs, template, planned } = args;
  if (!host) return { reason: "not in config" };
  if (!obs) return { reason: "not observed" };
  if (obs.status !== "ok") return { reason: "unreachable" };
  const cap = obs.capacity;
  if (!cap.pool) return { reason: `pool "${host.pool}" not found` };
  if (!cap.volumes.includes(template.disk.baseImage))
    return { reason: `base image "${template.disk.baseImage}" not in pool "${cap.pool.name}"` };
  const roomWith = (freed: HostUse): HostRoom => ({
    name,
    order,
    freeMemoryMiB: cap.freeMemoryMiB - host.reservedMemoryMiB - planned.memoryMiB + freed.memoryMiB,
    freeVcpus: cap.cpus * host.cpuOvercommit - cap.allocatedVcpus - planned.vcpus + freed.vcpus,
    freeDiskBytes: cap.pool!.availableBytes - planned.diskBytes + freed.diskBytes,
  });
  const shortOf = (room: HostRoom): string | null => {
    if (room.freeMemoryMiB < template.memoryMiB)
      return `${Math.max(0, room.freeMemoryMiB)} MiB free memory < ${template.memoryMiB} MiB needed`;
    if (room.freeVcpus < template.vcpus) return `${Math.max(0, room.freeVcpus)} free vCPUs < ${template.vcpus} needed`;
    if (room.freeDiskBytes < diskBytes(template))
      return `${gib(room.freeDiskBytes)} free in pool "${cap.pool!.name}" < ${template.disk.sizeGiB} GiB needed`;
    return null;
  };
  const room = roomWith(NOTHING);
  const short = shortOf(room);
  if (short === null) return { room };
  const freed = args.freed ?? NOTHING;
  if (freed.memoryMiB === 0 && freed.vcpus === 0 && freed.diskBytes === 0) return { reason: short };
  const after = roomWith(freed);
  const stillShort = shortOf(after);
  if (stillShort === null) return { room: after, waits: true };
  return { reason: `${stillShort}, counting what this plan's deletes on it free` };
}

const NOTHING: HostUse = { memoryMiB: 0, vcpus: 0, diskBytes: 0 };
