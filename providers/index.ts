import type { HostConfig } from "../config/types.js";
import { LibvirtProvider } from "./libvirt/libvirt-provider.js";
import type { Provider } from "./provider.js";

/**
 * Makes the provider for a host. Every libvirt URI goes to the libvirt adapter; a Proxmox VE adapter would be
 * chosen here by its own host kind.
 */
export function makeProvider(host: HostConfig): Provider {
  return new LibvirtProvider(host);
}
