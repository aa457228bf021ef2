/**
 * premiscale's cloud-init NoCloud seed for a PVE VM, as an ISO (volume label `cidata`). PVE cannot take snippets
 * through its API (upload takes iso, vztmpl and import only), so the seed travels as an ISO upload and is attached as
 * a CD-ROM: the busybox test guest and Debian's cloud-init both read NoCloud from it.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import type { VmNetwork } from "../provider.js";

/** The files of a NoCloud seed. */
export interface SeedFiles {
  "meta-data": string;
  "user-data": string;
  "network-config": string;
}

/** The seed ISO's file name for a VM: named after the VM, so people and premiscale find it by the VM's name. */
export function seedFileName(vmName: string): string {
  return `${vmName}-seed.iso`;
}

/**
 * cloud-init network-config version 2 for the guest's one NIC, matched by the MAC PVE gave it at clone, with the
 * group's DHCP or static address and the template's search domains.
 */
export function renderNetworkConfig(mac: string, network: VmNetwork, searchDomains: readonly string[]): string {
  let text = `version: 2\nethernets:\n  eth0:\n    match: {macaddress: "${mac.toLowerCase()}"}\n    set-name: eth0\n`;
  if (network.mode === "dhcp") text += "    dhcp4: true\n";
  else {
    text += `    dhcp4: false\n    addresses: [${network.address}/${network.prefix}]\n`;
    if (network.gateway) text += `    routes:\n      - to: default\n        via: ${network.gateway}\n`;
  }
  const dns = network.mode === "static" ? network.dns : [];
  if (dns.length > 0 || searchDomains.length > 0) {
    text += "    nameservers:\n";
    if (dns.length > 0) text += `      addresses: [${dns.join(", ")}]\n`;
    if (searchDomains.length > 0) text += `      search: [${searchDomains.join(", ")}]\n`;
  }
  return text;
}

/** A VM's seed files: meta-data names the instance; user-data as apply prepared it (with the check-in). */
export function seedFiles(vm: { uuid: string; name: string; userData: string }, networkConfig: string): SeedFiles {
  const nl = (s: string) => (s.endsWith("\n") ? s : `${s}\n`);
  return {
    "meta-data": `instance-id: ${vm.uuid}\nlocal-hostname: ${vm.name}\n`,
    "user-data": vm.userData.trim() ? nl(vm.userData) : "#cloud-config\n{}\n",
    "network-config": nl(networkConfig),
  };
}

/** Why an ISO could not be built; the adapter turns it into a ProviderError naming the host. */
export class SeedBuildError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

/** Builds the seed ISO in a private temporary directory (the user-data may hold secrets) and returns its bytes. */
export async function buildSeedIso(files: SeedFiles, o: { isoTool?: string; timeoutMs?: number } = {}): Promise<Buffer> {
  const tool = o.isoTool ?? "genisoimage";
  const dir = await mkdtemp(join(tmpdir(), "premiscale-pve-seed-"));
  try {
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text, { mode: 0o600 });
    const iso = join(dir, "seed.iso");
    try {
      await execa(tool, ["-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock", "user-data", "meta-data", "network-config"], {
        cwd: dir,
        timeout: o.timeoutMs ?? 30_000,
      });
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw new SeedBuildError(
        code === "ENOENT" ? `${tool} is not installed on this machine (it builds the cloud-init seed ISO)` : `building the cloud-init seed ISO failed: ${(e as Error).message}`,
        "apt-get install genisoimage on the machine running premiscale, or use cloudInit: proxmox",
      );
    }
    return await readFile(iso);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
