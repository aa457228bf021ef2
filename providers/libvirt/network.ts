/** A libvirt VM's NIC address and its cloud-init network-config, both derived so a retried create repeats them. */
import type { VmNetwork } from "../provider.js";

/**
 * A locally administered unicast MAC from the UUID's first six bytes (random in a v4 UUID): 46 random bits, so
 * collisions on one network stay negligible at fleet size (24 bits, as in `52:54:00:xx:xx:xx`, reach even odds
 * near 5,000 VMs).
 */
export function macFromUuid(uuid: string): string {
  const hex = uuid.replace(/[^0-9a-f]/gi, "").toLowerCase().padEnd(12, "0").slice(0, 12);
  const bytes = hex.match(/../g)!.map((b) => Number.parseInt(b, 16));
  bytes[0] = (bytes[0]! & 0xfc) | 0x02; // locally administered (bit 1), unicast (bit 0 clear)
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** cloud-init network-config version 2 for the guest's single NIC, matched by MAC. */
export function renderNetworkConfig(mac: string, network: VmNetwork): string {
  const head = `version: 2\nethernets:\n  eth0:\n    match: {macaddress: "${mac}"}\n    set-name: eth0\n`;
  if (network.mode === "dhcp") return `${head}    dhcp4: true\n`;
  let text = `${head}    dhcp4: false\n    addresses: [${network.address}/${network.prefix}]\n`;
  if (network.gateway) text += `    routes:\n      - to: default\n        via: ${network.gateway}\n`;
  if (network.dns.length > 0) text += `    nameservers:\n      addresses: [${network.dns.join(", ")}]\n`;
  return text;
}
