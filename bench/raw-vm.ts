import { randomUUID } from "node:crypto";
import { macFromUuid, renderNetworkConfig } from "../providers/libvirt/network.js";
import type { InstalledGuest } from "../test/support/guests.js";

/**
 * The VM a raw-virsh baseline makes by hand: the guest's disk, kernel and boot line, one vCPU, user networking, and
 * cloud-init user-data that phones home to 10.0.2.2:`port` (the host's loopback seen from QEMU user networking).
 * What premiscale's domain XML and seed functions take, so the baseline runs the same guest premiscale does.
 */
export function rawGuestVm(guest: InstalledGuest, group: string, port: number, memoryMiB = guest.memoryMiB) {
  const uuid = randomUUID();
  const mac = macFromUuid(uuid);
  return {
    name: `${group}-${uuid.slice(0, 8)}`,
    uuid,
    group,
    lineage: "bench-raw",
    createdAt: new Date().toISOString(),
    vcpus: 1,
    memoryMiB,
    accelerator: "qemu" as const,
    pool: guest.pool,
    baseImage: guest.baseImage,
    diskSizeGiB: guest.minDiskGiB,
    mac,
    nic: { type: "user" as const },
    boot: { kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline },
    userData: `#cloud-config\nphone_home:\n  url: http://10.0.2.2:${port}/phone-home/$INSTANCE_ID\n  post: all\n  tries: 10\n`,
    networkConfig: renderNetworkConfig(mac, { mode: "dhcp" }),
  };
}
