/**
 * The provider registry: every kind of host premiscale can talk to, with its config fragment and its adapter.
 * Adding a kind is adding one entry here (see README: what adding a provider takes).
 */
import { PremiscaleError } from "../config/errors.js";
import type { ProviderConfigFragment } from "../config/provider-kinds.js";
import type { HostConfig } from "../config/types.js";
import { libvirtConfig, libvirtHost } from "./libvirt/config.js";
import { LibvirtProvider } from "./libvirt/libvirt-provider.js";
import type { Provider } from "./provider.js";
import { proxmoxConfig, proxmoxHost, proxmoxNode } from "./proxmox/config.js";
import { ProxmoxProvider } from "./proxmox/proxmox-provider.js";

/** Options any adapter may take when it is opened. */
export interface OpenOptions {
  /** Overrides the host's `callTimeoutSeconds` for every call of this adapter (serve's collector uses its interval). */
  callTimeoutMs?: number;
}

/** One kind of host: its part of the config, and how to open its adapter for a host of that kind. */
export interface ProviderKind {
  config: ProviderConfigFragment;
  open(host: HostConfig, options?: OpenOptions): Provider;
  /** Where the host is, for messages (libvirt: its URI). */
  where(host: HostConfig): string;
  /** What to check when the host cannot be reached. */
  unreachableHint(host: HostConfig): string;
}

/** Every kind premiscale knows, in the order `--help` and the schema list them. */
export const providerKinds: readonly ProviderKind[] = [
  {
    config: libvirtConfig as ProviderConfigFragment,
    open: (host, options) => new LibvirtProvider(host, options),
    where: (host) => libvirtHost(host).uri,
    unreachableHint: (host) => `check that \`virsh -c ${libvirtHost(host).uri} list\` works from this machine`,
  },
  {
    config: proxmoxConfig as ProviderConfigFragment,
    open: (host, options) => new ProxmoxProvider(host, options),
    where: (host) => {
      const api = proxmoxHost(host).api;
      const own = api.endpoints.find((e) => e.node === proxmoxNode(host));
      return `node ${proxmoxNode(host)} of PVE cluster ${api.cluster}, ${own ? own.url : `through ${api.endpoints[0]?.url ?? "?"}`}`;
    },
    unreachableHint: (host) =>
      `check that node ${proxmoxNode(host)} is online (\`pvecm status\` on another node) and that its API answers from this machine (\`curl --cacert CA https://HOST:8006/api2/json/version\`)`,
  },
];

/** The config fragments of every kind (what the config loader and the JSON Schema are given). */
export const configFragments: readonly ProviderConfigFragment[] = providerKinds.map((k) => k.config);

/** Opens the adapter of a host's kind. */
export function makeProvider(host: HostConfig, options?: OpenOptions): Provider {
  return kindOf(host).open(host, options);
}

/** The kind of a host. */
export function kindOf(host: HostConfig): ProviderKind {
  const kind = providerKinds.find((k) => k.config.kind === host.kind);
  if (!kind) {
    throw new PremiscaleError(
      `host ${host.name} is of kind ${JSON.stringify(host.kind)}, which this premiscale does not know`,
      "unknown_kind",
      `use one of ${providerKinds.map((k) => k.config.kind).join(", ")}`,
    );
  }
  return kind;
}
