import { execa } from "execa";
import { randomUUID } from "node:crypto";
import type { HostConfig } from "../../config/types.js";
import type { LibvirtVmSettings } from "../../providers/libvirt/libvirt-provider.js";
import type { VmSpec } from "../../providers/provider.js";

/** The real local libvirtd the libvirt tests use (started by providers/libvirt/setup-host.sh). */
export const SYSTEM_URI = "qemu:///system";

/** A host config for the local libvirtd's `default` pool, run under plain QEMU (KVM cannot run guests here). */
export function systemHost(overrides: Partial<HostConfig> & { uri?: string } = {}): HostConfig {
  const { uri, ...rest } = overrides;
  return {
    name: "local",
    kind: "libvirt",
    settings: { uri: uri ?? SYSTEM_URI, pool: "default", accelerator: "qemu" },
    reservedMemoryMiB: 512,
    cpuOvercommit: 8,
    maxParallel: 4,
    callTimeoutSeconds: 60,
    ...rest,
  };
}

/** Runs virsh once against the local libvirtd. */
export async function virsh(...args: string[]): Promise<string> {
  const r = await execa("virsh", ["-q", "-c", SYSTEM_URI, ...args], { reject: false });
  if (r.exitCode !== 0) throw new Error(`virsh ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** An empty qcow2 base image in the default pool: VMs made from it start and run (firmware finds nothing to boot). */
export async function ensureBlankBase(name = "premiscale-blank.qcow2"): Promise<string> {
  const vols = await virsh("vol-list", "default");
  if (!vols.split("\n").some((l) => l.trim().split(/\s+/)[0] === name)) {
    await virsh("vol-create-as", "default", name, "64M", "--format", "qcow2");
  }
  return name;
}

/** Domains and volumes whose names start with `prefix` (to prove a test left nothing behind). */
export async function leftovers(prefix: string): Promise<string[]> {
  const domains = (await virsh("list", "--all", "--name")).split("\n").map((s) => s.trim());
  const vols = (await virsh("vol-list", "default")).split("\n").map((l) => l.trim().split(/\s+/)[0] ?? "");
  return [...domains, ...vols].filter((n) => n.startsWith(prefix));
}

/** A small VM on the blank base image (it sits in firmware and still burns CPU under TCG), named `<prefix>-<8 hex>`. */
export function blankVmSpec(prefix: string, baseImage: string, overrides: Partial<VmSpec> = {}): VmSpec {
  const uuid = randomUUID();
  return {
    name: `${prefix}-${uuid.slice(0, 8)}`,
    uuid,
    group: prefix,
    lineage: `lineage-${prefix}`,
    createdAt: new Date().toISOString(),
    vcpus: 1,
    memoryMiB: 96,
    userData: "#cloud-config\n{}\n",
    network: { mode: "dhcp" },
    settings: { libvirt: { pool: "default", baseImage, diskSizeGiB: 1, nic: { type: "user" }, accelerator: "qemu" } satisfies LibvirtVmSettings },
    ...overrides,
  };
}
