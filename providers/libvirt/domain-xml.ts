import type { VmRunState, VmSpec } from "../provider.js";
import type { Accelerator, KernelBoot, NicConfig } from "./config.js";

/** What the libvirt adapter needs of a VM: the neutral spec, its libvirt settings and what derives from them. */
export interface LibvirtVm extends Omit<VmSpec, "settings" | "network"> {
  pool: string;
  baseImage: string;
  diskSizeGiB: number;
  nic: NicConfig;
  boot?: KernelBoot;
  accelerator: Accelerator;
  /** Derived from the UUID, so a retried create defines the same NIC. */
  mac: string;
  /** cloud-init network-config (v2) text. */
  networkConfig: string;
}

/** Names of what a VM owns on its host, derived from its name alone so a crashed create can be cleaned up. */
export interface VmVolumes {
  disk: string;
  seed: string;
}

/** premiscale's XML namespace for domain metadata. Only domains carrying it are ever treated as ours. */
export const METADATA_NS = "https://premiscale.dev/xmlns/instance/v1";

/** The metadata premiscale writes on every domain it creates. */
export interface DomainMetadata {
  instance: string;
  group: string;
  lineage: string;
  created: string;
}

/** Volume names of a VM, derived from its name so a half-finished create can be found and removed. */
export function volumesOf(name: string): VmVolumes {
  return { disk: `${name}.qcow2`, seed: `${name}-seed.iso` };
}

function esc(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

/** The metadata element as stored in the domain. */
export function metadataXml(m: DomainMetadata): string {
  return `<premiscale:instance xmlns:premiscale="${METADATA_NS}" instance="${esc(m.instance)}" group="${esc(m.group)}" lineage="${esc(m.lineage)}" created="${esc(m.created)}"/>`;
}

/** Reads the element printed by `virsh metadata DOMAIN NS` (libvirt strips the prefix). */
export function parseMetadata(xml: string): DomainMetadata | null {
  if (!/<(?:\w+:)?instance\b/.test(xml)) return null;
  const attr = (n: string) => new RegExp(`\\b${n}="([^"]*)"`).exec(xml)?.[1];
  const unesc = (v: string) =>
    v.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  const instance = attr("instance");
  const group = attr("group");
  const lineage = attr("lineage");
  const created = attr("created");
  if (!instance || !group || !lineage || !created) return null;
  return { instance: unesc(instance), group: unesc(group), lineage: unesc(lineage), created: unesc(created) };
}

/**
 * The libvirt domain XML of a VM. Disks are pool volumes (`type='volume'`) so the same XML works on a remote
 * host. Machine type `pc` with an IDE cdrom for the seed: Debian's cloud kernel has ata_piix but no AHCI.
 */
export function domainXml(spec: LibvirtVm, driver: "qemu" | "test"): string {
  const vols = volumesOf(spec.name);
  const type = driver === "test" ? "test" : spec.accelerator;
  const boot = spec.boot
    ? [
        `    <kernel>${esc(spec.boot.kernel)}</kernel>`,
        spec.boot.initrd ? `    <initrd>${esc(spec.boot.initrd)}</initrd>` : "",
        spec.boot.cmdline ? `    <cmdline>${esc(spec.boot.cmdline)}</cmdline>` : "",
      ].filter(Boolean)
    : [`    <boot dev='hd'/>`];
  // Under TCG QEMU's translation cache defaults to ~1 GiB of RSS per guest; 128 MiB costs no speed (GUESTS.md).
  const tcg = type === "qemu" ? `\n    <tcg><tb-cache unit='MiB'>128</tb-cache></tcg>` : "";
  const nic =
    spec.nic.type === "user"
      ? `    <interface type='user'>`
      : spec.nic.type === "network"
        ? `    <interface type='network'>\n      <source network='${esc(spec.nic.source)}'/>`
        : `    <interface type='bridge'>\n      <source bridge='${esc(spec.nic.source)}'/>`;
  return `<domain type='${type}'>
  <name>${esc(spec.name)}</name>
  <uuid>${esc(spec.uuid)}</uuid>
  <title>premiscale ${esc(spec.group)}</title>
  <metadata>
    ${metadataXml({ instance: spec.uuid, group: spec.group, lineage: spec.lineage, created: spec.createdAt })}
  </metadata>
  <memory unit='MiB'>${spec.memoryMiB}</memory>
  <vcpu>${spec.vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
${boot.join("\n")}
  </os>
  <features>
    <acpi/>
    <apic/>${tcg}
  </features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='${esc(spec.pool)}' volume='${esc(vols.disk)}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='volume' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source pool='${esc(spec.pool)}' volume='${esc(vols.seed)}'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
${nic}
      <mac address='${esc(spec.mac)}'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'/>
    <console type='pty'/>
    <!-- guest-reported memory (balloon.available/unused/usable) is what the memory metric reads; every 10 s -->
    <memballoon model='virtio'>
      <stats period='10'/>
    </memballoon>
  </devices>
</domain>
`;
}

/** Maps `domstats` `state.state` numbers (virDomainState) to premiscale's states. */
export function runStateOf(code: number): VmRunState {
  switch (code) {
    case 1:
    case 2: // blocked: running but idle
      return "running";
    case 3:
    case 7: // pmsuspended
      return "paused";
    case 4: // being shut down
    case 5:
      return "stopped";
    case 6:
      return "crashed";
    default:
      return "other";
  }
}
