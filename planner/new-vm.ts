import type { NetworkingConfig } from "../config/types.js";

/** A locally administered QEMU MAC (`52:54:00:…`) whose last three bytes are the UUID's last six hex digits. */
export function macFromUuid(uuid: string): string {
  const hex = uuid.replace(/[^0-9a-f]/gi, "").toLowerCase().padStart(6, "0").slice(-6);
  return `52:54:00:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
}

/** cloud-init network-config version 2 for the guest's single NIC, matched by MAC. */
export function renderNetworkConfig(mac: string, networking: NetworkingConfig, address?: string): string {
  const head = `version: 2\nethernets:\n  eth0:\n    match: {macaddress: "${mac}"}\n    set-name: eth0\n`;
  if (networking.mode === "dhcp" || address === undefined) return `${head}    dhcp4: true\n`;
  let text = `${head}    dhcp4: false\n    addresses: [${address}/${networking.prefix}]\n`;
  if (networking.gateway) text += `    routes:\n      - to: default\n        via: ${networking.gateway}\n`;
  if (networking.dns.length > 0) text += `    nameservers:\n      addresses: [${networking.dns.join(", ")}]\n`;
  return text;
}

const ipv4Value = (address: string): number => {
  const parts = address.split(".").map(Number);
  return parts.length === 4 && parts.every((p) => Number.isInteger(p) && p >= 0 && p <= 255)
    ? parts.reduce((n, p) => n * 256 + p, 0)
    : Number.POSITIVE_INFINITY;
};

/** The `count` lowest addresses of `pool` not in `used`, or null when the pool has fewer free. */
export function allocateAddresses(pool: string[], used: ReadonlySet<string>, count: number): string[] | null {
  const free = [...new Set(pool)].filter((a) => !used.has(a)).sort((a, b) => ipv4Value(a) - ipv4Value(b) || (a < b ? -1 : 1));
  return free.length >= count ? free.slice(0, count) : null;
}
